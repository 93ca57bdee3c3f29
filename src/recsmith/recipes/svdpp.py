"""SVD++: biased matrix factorisation of explicit ratings plus implicit feedback (Koren 2008), batched."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsmith.data.training import TrainingData
from recsmith.recipes.base import FloatRange, IntRange
from recsmith.recipes.options import FitOptions
from recsmith.recipes.svd import SVD, SVDParams, minus_columns, ratings_matrix, ridge_rows, row_grams, with_ones


class SVDppParams(SVDParams):
    """Params of :class:`SVDpp` (those of :class:`~recsmith.recipes.svd.SVD` plus the implicit factors')."""

    factors: int = Field(default=50, ge=1)
    """Latent dimensions (of ``p_u``, ``q_i`` and ``y_j``)."""

    bias_reg: float = Field(default=5.0, ge=0.0)
    """Regularisation of the user and item biases (in ratings)."""

    implicit_reg: float = Field(default=1.0, ge=0.0)
    """L2 regularisation of the implicit item factors ``y_j``, scaled by how many users interacted with ``j``."""

    cg_steps: int = Field(default=3, ge=1)
    """Conjugate-gradient steps per epoch for the implicit factors (warm-started from the last epoch)."""

    search_space = {
        "factors": IntRange(low=4, high=200, log=True),
        "reg": FloatRange(low=1e-3, high=1.0, log=True),
        "bias_reg": FloatRange(low=0.1, high=50.0, log=True),
        "implicit_reg": FloatRange(low=0.01, high=10.0, log=True),
        "epochs": IntRange(low=2, high=30),
    }


def _normalised_rows(pattern: sp.csr_matrix) -> sp.csr_matrix:
    """``N(u)`` with Koren's ``|N(u)|^-1/2`` normalisation: every stored pair, rated or not, counts (a copy)."""
    out = sp.csr_matrix(pattern, dtype=np.float64, copy=True)
    counts = np.diff(out.indptr)
    out.data = np.repeat(1.0 / np.sqrt(np.maximum(counts, 1)), counts)
    return out


def _per_rating_dot(ratings: sp.csr_matrix, user_vectors: np.ndarray, item_vectors: np.ndarray) -> np.ndarray:
    """``user_vectors[u] · item_vectors[i]`` for every stored ``(u, i)`` of ``ratings``, in storage order."""
    rows = np.repeat(np.arange(ratings.shape[0]), np.diff(ratings.indptr))
    return np.einsum("ij,ij->i", user_vectors[rows], item_vectors[ratings.indices])


def _solve_implicit(residual: sp.csr_matrix, implicit: sp.csr_matrix, item_factors: np.ndarray,
                    start: np.ndarray, reg: np.ndarray, steps: int) -> np.ndarray:
    """Least squares for the implicit factors ``Y`` by conjugate gradient on the normal equations.

    Minimises ``Σ_(u,i) (e_ui - q_iᵀ (N Y)_u)² + Σ_j reg_j |y_j|²`` where ``e`` is ``residual`` and ``N``
    is ``implicit``. The operator is applied with sparse × dense products and the users' Gram matrices of
    ``q`` (:func:`row_grams`), so one step costs a few passes over the ratings.
    """
    grams = row_grams(residual, item_factors)
    implicit_t = implicit.T.tocsr()

    def apply(y: np.ndarray) -> np.ndarray:
        z = implicit @ y
        return implicit_t @ np.einsum("ude,ue->ud", grams, z) + reg[:, None] * y

    rhs = implicit_t @ np.asarray(residual @ item_factors)
    y = start.copy()
    r = rhs - apply(y)
    direction = r.copy()
    rr = float(np.vdot(r, r))
    for _ in range(steps):
        if rr <= 1e-20:
            break
        a_dir = apply(direction)
        step = rr / float(np.vdot(direction, a_dir))
        y += step * direction
        r -= step * a_dir
        rr_next = float(np.vdot(r, r))
        direction = r + (rr_next / rr) * direction
        rr = rr_next
    return y


class SVDpp(SVD):
    """SVD++: ``r̂_ui = μ + b_u + b_i + q_iᵀ(p_u + |N(u)|^-½ Σ_{j∈N(u)} y_j)``.

    Koren's model adds to biased matrix factorisation an implicit-feedback term: every item ``j`` the
    user interacted with (rated or not) moves the user's vector by ``y_j``. Surprise fits it by SGD with an
    inner loop over ``N(u)`` for every rating, which is what makes it slow (about 6 minutes on a rating
    set of MovieLens 1M's shape, about 15x this recipe's time: ``benchmarks/ratings.py --ml-1m-scale``). Here
    each epoch is three batched solves: all users' ``(p_u, b_u)`` and all items'
    ``(q_i, b_i)`` by ridge regression with weighted-λ (as :class:`~recsmith.recipes.svd.SVD`), and the
    implicit factors ``Y`` jointly by a few warm-started conjugate-gradient steps. Users the model never
    saw are folded in from their history: ``y`` of their items, then a ridge solve for ``p_u, b_u``.

    The stored user factors are ``p_u + z_u`` (``z_u`` the implicit term), so prediction costs what SVD's
    does.

    References
    ----------
    Yehuda Koren, "Factorization Meets the Neighborhood: a Multifaceted Collaborative Filtering Model",
    KDD 2008. Takács, Pilászy and Tikk, "Applications of the conjugate gradient method for implicit
    feedback collaborative filtering", RecSys 2011.
    """

    name = "svdpp"
    Params = SVDppParams
    params: SVDppParams

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        p = self.params
        ratings = ratings_matrix(data.interactions)
        implicit = _normalised_rows(data.interactions.matrix)
        n_users, n_items = ratings.shape
        mean = float(ratings.data.mean()) if ratings.nnz else 0.0
        centred = ratings.copy()
        centred.data -= mean
        by_item = centred.T.tocsr()
        rng = np.random.default_rng(p.seed)
        item_factors = rng.normal(0.0, 0.1, (n_items, p.factors))
        implicit_factors = np.zeros((n_items, p.factors))
        item_bias = np.zeros(n_items)
        users_per_item = np.bincount(implicit.indices, minlength=n_items).astype(np.float64)
        implicit_reg = p.implicit_reg * np.maximum(users_per_item, 1.0)
        user_factors = np.zeros((n_users, p.factors))
        user_bias = np.zeros(n_users)
        for epoch in range(p.epochs):
            z = implicit @ implicit_factors
            targets = minus_columns(centred, item_bias)
            targets.data -= _per_rating_dot(targets, z, item_factors)
            solved = ridge_rows(targets, with_ones(item_factors), p.reg, p.bias_reg)
            user_factors, user_bias = solved[:, :-1], solved[:, -1]

            solved = ridge_rows(minus_columns(by_item, user_bias), with_ones(user_factors + z), p.reg, p.bias_reg)
            item_factors, item_bias = solved[:, :-1], solved[:, -1]

            residual = minus_columns(centred, item_bias)
            residual.data -= user_bias[np.repeat(np.arange(n_users), np.diff(residual.indptr))]
            residual.data -= _per_rating_dot(residual, user_factors, item_factors)
            implicit_factors = _solve_implicit(residual, implicit, item_factors, implicit_factors, implicit_reg,
                                               p.cg_steps)
            if options.epoch_callback is not None:
                self._set_state(mean, user_factors + implicit @ implicit_factors, user_bias, item_factors, item_bias)
                self.implicit_factors_ = implicit_factors.astype(np.float32)
            self._epoch_done(options, epoch + 1)
        self._set_state(mean, user_factors + implicit @ implicit_factors, user_bias, item_factors, item_bias)
        self.implicit_factors_ = implicit_factors.astype(np.float32)

    def _fold_in(self, histories: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """``p_u + z_u`` and ``b_u`` of new users: ``z_u`` from their items, ``p_u`` and ``b_u`` from their ratings."""
        histories = sp.csr_matrix(histories, dtype=np.float64)
        item_factors = self.item_factors_.astype(np.float64)
        z = _normalised_rows(histories) @ self.implicit_factors_.astype(np.float64)
        targets = minus_columns(histories, self.item_bias_.astype(np.float64) + self.mean_[0])
        targets.data -= _per_rating_dot(targets, z, item_factors)
        solved = ridge_rows(targets, with_ones(item_factors), self.params.reg, self.params.bias_reg)
        return (solved[:, :-1] + z).astype(np.float32), solved[:, -1].astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return super()._state() | {"implicit_factors": self.implicit_factors_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        super()._restore(arrays)
        self.implicit_factors_ = arrays["implicit_factors"]
