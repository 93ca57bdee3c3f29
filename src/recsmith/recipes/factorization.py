"""Matrix factorisation for implicit feedback: ALS and BPR, trained with the ``implicit`` library.

``implicit`` (Frederickson) is the field's well-kept implementation of both; recsmith adds the contract:
dense ids, exclusions, fold-in for users unseen at training time, and npz artifacts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from threadpoolctl import threadpool_limits

from recsmith.data.training import TrainingData
from recsmith.recipes.base import (
    FloatRange,
    IntRange,
    ItemSets,
    Recipe,
    RecipeParams,
    Recommendations,
    SetScorer,
    minus_seen,
    top_k,
)
from recsmith.recipes.options import FitOptions
from recsmith.recipes.tags import RecipeTags


def factor_set_scorer(user_vectors: np.ndarray, item_vectors: np.ndarray, sets: ItemSets,
                      user_offsets: np.ndarray | None = None, item_offsets: np.ndarray | None = None) -> SetScorer:
    """The :class:`~recsmith.recipes.base.SetScorer` of a model scoring ``x_u·y_i + a_u + b_i`` (transpose
    scoring for :meth:`~recsmith.recipes.base.Recipe.top_users`).

    A set's sum is linear: ``x_u·(Σ y_i) + |set|·a_u + Σ b_i``, one vector per set, so a block of users costs
    one ``users × factors × sets`` product; the seen items of shared sets are then taken off pair by pair.

    Parameters
    ----------
    user_vectors, item_vectors : numpy.ndarray
        ``n_users × f`` and ``n_items × f`` factors.
    sets : ItemSets
        The sets to score.
    user_offsets, item_offsets : numpy.ndarray, optional
        ``a_u`` per user and ``b_i`` per item (biases, a global mean folded into ``a_u``); zero when None.
    """
    set_vectors = np.asarray(sets.membership.T @ np.asarray(item_vectors, dtype=np.float64))
    set_offsets = None if item_offsets is None else sets.membership.T @ np.asarray(item_offsets, dtype=np.float64)

    def sums(histories: sp.csr_matrix, users: np.ndarray, seen: sp.csr_matrix | None) -> np.ndarray:
        vectors = np.asarray(user_vectors[users], dtype=np.float64)
        totals = vectors @ set_vectors.T
        if user_offsets is not None:
            totals += np.asarray(user_offsets[users], dtype=np.float64)[:, None] * sets.sizes[None, :]
        if set_offsets is not None:
            totals += set_offsets[None, :]

        def pairs(rows: np.ndarray, items: np.ndarray) -> np.ndarray:
            values = np.einsum("ij,ij->i", vectors[rows], np.asarray(item_vectors[items], dtype=np.float64))
            if user_offsets is not None:
                values += user_offsets[users[rows]]
            if item_offsets is not None:
                values += item_offsets[items]
            return values

        return minus_seen(totals, seen, sets, pairs)

    return SetScorer(sums, width=sets.n_sets)


class FactorModel(Recipe):
    """Base of recipes scoring with ``user_factors_ @ item_factors_.T``.

    Users unseen at training time are folded in by ridge regression of their history on the item
    factors (``_fold_in``), which subclasses may refine.
    """

    user_factors_: np.ndarray
    item_factors_: np.ndarray
    tags = RecipeTags(similar_items=True, iterative=True)

    def _implicit_callback(self, model: object, options: FitOptions) -> object | None:
        """The ``callback`` for an ``implicit`` model's ``fit``: reports each epoch (:meth:`_epoch_done`), with
        the model's factors exposed when there is an epoch callback; None without callbacks, so training is
        unchanged."""
        if options.epoch_callback is None and options.progress is None:
            return None

        def after_epoch(iteration: int, *_: object) -> None:
            if options.epoch_callback is not None:
                self.user_factors_ = model.user_factors  # type: ignore[attr-defined] (updated in place)
                self.item_factors_ = model.item_factors  # type: ignore[attr-defined]
            self._epoch_done(options, iteration + 1)

        return after_epoch

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        vectors = self.user_factors_[users] if users is not None else self._fold_in(histories)
        return vectors @ self.item_factors_.T

    def _set_scorer(self, sets: ItemSets) -> SetScorer:
        """``U @ (Σ V[set])`` (:func:`factor_set_scorer`); subclasses that score otherwise (fm, two-tower) get
        the base class's dense path unless they override this too."""
        if type(self)._scores is not FactorModel._scores:
            return super()._set_scorer(sets)
        return factor_set_scorer(self.user_factors_, self.item_factors_, sets)

    def similar_items(self, items: np.ndarray | Sequence[int], k: int = 10) -> Recommendations:
        """The ``k`` items whose factors have the highest cosine with each given item's (never the item itself)."""
        items = self._item_indices(items)
        norms = np.linalg.norm(self.item_factors_, axis=1)
        norms[norms == 0] = 1.0
        cosine = (self.item_factors_[items] @ self.item_factors_.T) / (norms[items, None] * norms[None, :])
        cosine = np.asarray(cosine, dtype=np.float32)
        cosine[np.arange(len(items)), items] = -np.inf
        return top_k(cosine, k)

    def _fold_in(self, histories: sp.csr_matrix) -> np.ndarray:
        y = self.item_factors_.astype(np.float64)
        gram = y.T @ y + self._fold_in_reg() * np.eye(y.shape[1])
        targets = (sp.csr_matrix(histories) @ y).T
        return np.linalg.solve(gram, targets).T.astype(np.float32)

    def _fold_in_reg(self) -> float:
        return 0.1

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_ = np.ascontiguousarray(arrays["user_factors"])
        self.item_factors_ = np.ascontiguousarray(arrays["item_factors"])


class ALSParams(RecipeParams):
    """Params of :class:`ALS`."""

    factors: int = Field(default=32, ge=1)
    """Latent dimensions."""

    reg: float = Field(default=1.0, ge=0.0)
    """L2 regularisation."""

    alpha: float = Field(default=2.0, gt=0.0)
    """Confidence scaling: an interaction of weight ``w`` has confidence ``1 + alpha·w``."""

    epochs: int = Field(default=15, ge=1)
    """Alternating sweeps over users and items."""

    seed: int = 0
    """Seed of the initial factors."""

    search_space = {
        "factors": IntRange(low=8, high=256, log=True),
        "reg": FloatRange(low=1e-3, high=100.0, log=True),
        "alpha": FloatRange(low=0.1, high=50.0, log=True),
        "epochs": IntRange(low=5, high=30),
    }


class ALS(FactorModel):
    """Implicit-feedback matrix factorisation by alternating least squares with conjugate gradient.

    Minimises ``Σ c_ui (p_ui - x_uᵀy_i)² + reg (|x|² + |y|²)`` with preference ``p = [w > 0]`` and
    confidence ``c = 1 + alpha·w``. Fold-in solves the same weighted least squares for a new user's
    history against the fixed item factors, which is what a fresh ALS half-step would do. Trains on
    ``FitOptions.num_threads`` of ``implicit``'s threads (0: all cores).

    References
    ----------
    Hu, Koren and Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008.
    Takács, Pilászy and Tikk, "Applications of the conjugate gradient method for implicit feedback
    collaborative filtering", RecSys 2011.
    """

    name = "als"
    Params = ALSParams

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        p = self.params
        with threadpool_limits(1, "blas"):  # implicit runs its own threads; BLAS threads would fight them
            model = AlternatingLeastSquares(factors=p.factors, regularization=p.reg, alpha=p.alpha,
                                            iterations=p.epochs, random_state=p.seed,
                                            num_threads=options.num_threads)
            model.fit(sp.csr_matrix(data.interactions.matrix, dtype=np.float32), show_progress=False,
                      callback=self._implicit_callback(model, options))
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _fold_in(self, histories: sp.csr_matrix) -> np.ndarray:
        y = self.item_factors_.astype(np.float64)
        base = y.T @ y + self.params.reg * np.eye(y.shape[1])
        histories = sp.csr_matrix(histories)
        out = np.zeros((histories.shape[0], y.shape[1]), dtype=np.float32)
        for row in range(histories.shape[0]):  # one small k × k solve per new user
            start, end = histories.indptr[row], histories.indptr[row + 1]
            items, weights = histories.indices[start:end], histories.data[start:end].astype(np.float64)
            if not len(items):
                continue
            confidence = 1.0 + self.params.alpha * np.abs(weights)
            preference = (weights > 0).astype(np.float64)
            yi = y[items]
            a = base + (yi.T * (confidence - 1.0)) @ yi
            out[row] = np.linalg.solve(a, yi.T @ (confidence * preference))
        return out


class BPRParams(RecipeParams):
    """Params of :class:`BPR`."""

    factors: int = Field(default=64, ge=1)
    """Latent dimensions."""

    learning_rate: float = Field(default=0.01, gt=0.0)
    """SGD step size."""

    reg: float = Field(default=0.01, ge=0.0)
    """L2 regularisation."""

    epochs: int = Field(default=50, ge=1)
    """Passes over the positive interactions."""

    seed: int = 0
    """Seed of the initial factors and the sampling."""

    search_space = {
        "factors": IntRange(low=8, high=256, log=True),
        "learning_rate": FloatRange(low=1e-3, high=0.2, log=True),
        "reg": FloatRange(low=1e-5, high=0.1, log=True),
        "epochs": IntRange(low=10, high=150),
    }


class BPR(FactorModel):
    """Bayesian Personalised Ranking matrix factorisation.

    Learns factors (with item biases) so that each user's observed items score above sampled unobserved
    ones, by stochastic gradient ascent on ``Σ ln σ(x_ui - x_uj)``. New users are folded in by ridge
    regression of their history on the item factors. Trains on ``FitOptions.num_threads`` threads, where
    0 (the default) means one: with more, the lock-free SGD is faster but not reproducible.

    References
    ----------
    Rendle, Freudenthaler, Gantner and Schmidt-Thieme, "BPR: Bayesian Personalized Ranking from Implicit
    Feedback", UAI 2009.
    """

    name = "bpr"
    Params = BPRParams

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        p = self.params
        positive = sp.csr_matrix(data.interactions.matrix, dtype=np.float32)
        positive.data = (positive.data > 0).astype(np.float32)
        positive.eliminate_zeros()
        with threadpool_limits(1, "blas"):
            model = BayesianPersonalizedRanking(factors=p.factors, learning_rate=p.learning_rate,
                                                regularization=p.reg, iterations=p.epochs, random_state=p.seed,
                                                num_threads=options.num_threads or 1)
            model.fit(positive, show_progress=False, callback=self._implicit_callback(model, options))
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _fold_in_reg(self) -> float:
        return self.params.reg + 0.1
