"""Biased matrix factorisation for explicit ratings (the model of Surprise's SVD), fitted by ALS."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsmith.data.interactions import Interactions
from recsmith.data.training import TrainingData
from recsmith.recipes.base import FloatRange, IntRange, ItemSets, Recipe, RecipeParams, SetScorer
from recsmith.recipes.factorization import factor_set_scorer
from recsmith.recipes.options import FitOptions
from recsmith.recipes.tags import RecipeTags


class SVDParams(RecipeParams):
    """Params of :class:`SVD`."""

    factors: int = Field(default=20, ge=1)
    """Latent dimensions."""

    reg: float = Field(default=0.15, ge=0.0)
    """L2 regularisation, scaled by each user's or item's number of ratings (weighted-λ)."""

    bias_reg: float = Field(default=2.0, ge=0.0)
    """Regularisation of the user and item biases (in ratings)."""

    epochs: int = Field(default=8, ge=1)
    """Alternating sweeps (users, then items)."""

    seed: int = 0
    """Seed of the initial factors."""

    search_space = {
        "factors": IntRange(low=4, high=200, log=True),
        "reg": FloatRange(low=1e-3, high=1.0, log=True),
        "bias_reg": FloatRange(low=0.1, high=50.0, log=True),
        "epochs": IntRange(low=2, high=30),
    }


def ratings_matrix(interactions: Interactions) -> sp.csr_matrix:
    """Users × items ratings: the pairs' EVENT_VALUEs, or their weights when there are none."""
    matrix = sp.csr_matrix(interactions.matrix, dtype=np.float64, copy=True)
    if interactions.values is not None:
        values = interactions.values.astype(np.float64)
        keep = np.isfinite(values)
        matrix.data = np.where(keep, values, 0.0)
        matrix.eliminate_zeros()
    return matrix


def row_grams(pattern: sp.csr_matrix, features: np.ndarray) -> np.ndarray:
    """``float64[n_rows, d, d]``: for each row ``r``, ``Σ_c features[c] features[c]ᵀ`` over its stored columns.

    One sparse × dense product of the row's indicator with the per-column outer products (one triangle,
    in float32), instead of a Python loop over rows.
    """
    n_rows, d = pattern.shape[0], features.shape[1]
    indicator = sp.csr_matrix((np.ones(pattern.nnz, dtype=np.float32), pattern.indices, pattern.indptr),
                              shape=pattern.shape)
    upper_i, upper_j = np.triu_indices(d)
    outer = (features[:, upper_i] * features[:, upper_j]).astype(np.float32)
    triangle = np.asarray(indicator @ outer, dtype=np.float64)
    grams = np.empty((n_rows, d, d))
    grams[:, upper_i, upper_j] = triangle
    grams[:, upper_j, upper_i] = triangle
    return grams


def minus_columns(matrix: sp.csr_matrix, offsets: np.ndarray) -> sp.csr_matrix:
    """A copy of ``matrix`` with ``offsets[column]`` subtracted from every stored entry."""
    out = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    out.data -= offsets[out.indices]
    return out


def with_ones(features: np.ndarray) -> np.ndarray:
    """``features`` with a constant-1 last column (its weight is the bias)."""
    return np.hstack([features, np.ones((features.shape[0], 1), dtype=features.dtype)])


def ridge_rows(targets: sp.csr_matrix, features: np.ndarray, reg: float, bias_reg: float) -> np.ndarray:
    """Solve every row's ridge regression ``targets[r] ≈ features @ w_r`` (stored entries only) at once.

    ``features`` has a constant-1 last column whose weight is the row's bias (regularised by ``bias_reg``);
    the other weights get ``reg`` times the row's number of ratings (weighted-λ).
    """
    n_rows, d = targets.shape[0], features.shape[1]
    grams = row_grams(targets, features)
    rhs = np.asarray(targets @ features)
    counts = np.diff(targets.indptr).astype(np.float64)
    penalty = np.full((n_rows, d), 0.0)
    penalty[:, :-1] = reg * np.maximum(counts, 1.0)[:, None]
    penalty[:, -1] = bias_reg
    grams[:, np.arange(d), np.arange(d)] += penalty
    return np.linalg.solve(grams, rhs[:, :, None])[:, :, 0]


class SVD(Recipe):
    """Biased matrix factorisation for explicit ratings: ``r̂_ui = μ + b_u + b_i + p_uᵀq_i``.

    The model of Surprise's ``SVD`` (Funk; Koren, Bell and Volinsky), fitted here by alternating ridge
    regressions with weighted-λ regularisation (Zhou et al.) instead of SGD: each half-step solves every
    user (or item) at once with batched linear algebra. ``score(users, items)`` predicts ratings; top-N
    lists rank the predicted ratings. Ratings come from the interactions' ``EVENT_VALUE``.

    References
    ----------
    Koren, Bell and Volinsky, "Matrix Factorization Techniques for Recommender Systems", IEEE Computer
    42(8), 2009. Zhou, Wilkinson, Schreiber and Pan, "Large-scale Parallel Collaborative Filtering for the
    Netflix Prize", AAIM 2008.
    """

    name = "svd"
    Params = SVDParams
    tags = RecipeTags(predicts_ratings=True, iterative=True)

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        p = self.params
        ratings = ratings_matrix(data.interactions)
        n_users, n_items = ratings.shape
        mean = float(ratings.data.mean()) if ratings.nnz else 0.0
        centred = ratings.copy()
        centred.data = centred.data - mean
        rng = np.random.default_rng(p.seed)
        item_factors = rng.normal(0.0, 0.1, (n_items, p.factors))
        item_bias = np.zeros(n_items)
        user_factors = np.zeros((n_users, p.factors))
        user_bias = np.zeros(n_users)
        by_item = centred.T.tocsr()
        for epoch in range(p.epochs):
            solved = ridge_rows(minus_columns(centred, item_bias), with_ones(item_factors), p.reg, p.bias_reg)
            user_factors, user_bias = solved[:, :-1], solved[:, -1]
            solved = ridge_rows(minus_columns(by_item, user_bias), with_ones(user_factors), p.reg, p.bias_reg)
            item_factors, item_bias = solved[:, :-1], solved[:, -1]
            if options.epoch_callback is not None:
                self._set_state(mean, user_factors, user_bias, item_factors, item_bias)
            self._epoch_done(options, epoch + 1)
        self._set_state(mean, user_factors, user_bias, item_factors, item_bias)

    def _set_state(self, mean: float, user_factors: np.ndarray, user_bias: np.ndarray, item_factors: np.ndarray,
                   item_bias: np.ndarray) -> None:
        self.mean_ = np.asarray([mean], dtype=np.float64)
        self.user_factors_ = user_factors.astype(np.float32)
        self.user_bias_ = user_bias.astype(np.float32)
        self.item_factors_ = item_factors.astype(np.float32)
        self.item_bias_ = item_bias.astype(np.float32)

    def _fold_in(self, histories: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """Factors and bias of users from their ratings (the history's values)."""
        targets = minus_columns(histories, self.item_bias_.astype(np.float64) + self.mean_[0])
        solved = ridge_rows(targets, with_ones(self.item_factors_.astype(np.float64)), self.params.reg,
                             self.params.bias_reg)
        return solved[:, :-1].astype(np.float32), solved[:, -1].astype(np.float32)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        if users is not None:
            factors, bias = self.user_factors_[users], self.user_bias_[users]
        else:
            factors, bias = self._fold_in(histories)
        return (self.mean_[0] + bias[:, None] + self.item_bias_[None, :] + factors @ self.item_factors_.T).astype(
            np.float32)

    def _set_scorer(self, sets: ItemSets) -> SetScorer:
        """Transpose scoring of the predicted ratings ``μ + b_u + b_i + p_u·q_i`` (:func:`factor_set_scorer`)."""
        if type(self)._scores is not SVD._scores:
            return super()._set_scorer(sets)
        return factor_set_scorer(self.user_factors_, self.item_factors_, sets,
                                 user_offsets=self.user_bias_.astype(np.float64) + float(self.mean_[0]),
                                 item_offsets=self.item_bias_)

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings of (user, item) pairs (dense indices, same length); ``-1`` ids get the mean
        plus the known side's bias, as Surprise does for unknown users or items.

        Raises
        ------
        DataError
            For arrays of different lengths, or indices outside the model.
        """
        users, items = self._pair_indices(users, items)
        known_u, known_i = users >= 0, items >= 0
        prediction = np.full(len(users), self.mean_[0], dtype=np.float64)
        prediction[known_u] += self.user_bias_[users[known_u]]
        prediction[known_i] += self.item_bias_[items[known_i]]
        both = known_u & known_i
        prediction[both] += np.einsum("ij,ij->i", self.user_factors_[users[both]], self.item_factors_[items[both]])
        return prediction.astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "user_factors": self.user_factors_, "user_bias": self.user_bias_,
                "item_factors": self.item_factors_, "item_bias": self.item_bias_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.mean_ = arrays["mean"]
        self.user_factors_, self.user_bias_ = arrays["user_factors"], arrays["user_bias"]
        self.item_factors_, self.item_bias_ = arrays["item_factors"], arrays["item_bias"]
