"""EASE: an item-item linear model with a closed-form solution."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from pydantic import Field

from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError
from recsmith.recipes.base import (
    SCORE_BLOCK_CELLS,
    FloatRange,
    ItemSets,
    Recipe,
    RecipeParams,
    SetScorer,
    minus_seen,
    set_column_sums,
    strongest_contributor,
)
from recsmith.recipes.options import FitOptions


class EASEParams(RecipeParams):
    """Params of :class:`EASE`."""

    reg: float = Field(default=250.0, gt=0.0)
    """L2 regularisation λ added to the diagonal of the Gram matrix (Steck uses 100–1000)."""

    max_items: int = Field(default=30_000, ge=1)
    """Refuse catalogues larger than this: the dense items × items matrix needs 4·n² bytes (twice while
    solving); use ``item-knn`` or ``als`` for bigger ones."""

    search_space = {"reg": FloatRange(low=1.0, high=10_000.0, log=True)}


class EASE(Recipe):
    """Embarrassingly Shallow Autoencoder (EASE^R).

    Learns a dense item-item weight matrix ``B`` with zero diagonal minimising
    ``||X - XB||² + λ||B||²``; the closed form is ``B = I - P·diag(1/diag(P))`` with
    ``P = (XᵀX + λI)⁻¹``. The inverse comes from a float32 Cholesky factorisation (LAPACK ``potrf`` +
    ``potri``), never a float64 general inverse. Scores are ``x_u·B``, so users unseen at training time
    are scored from their history directly. Strong on MovieLens-sized catalogues. The solve runs on
    ``FitOptions.num_threads`` BLAS threads (0: BLAS's default).

    References
    ----------
    Harald Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019.
    """

    name = "ease"
    Params = EASEParams

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        n_items = data.n_items
        if n_items > self.params.max_items:
            gib = 8 * n_items**2 / 2**30
            raise ConfigError(
                f"ease needs a dense {n_items:,} × {n_items:,} matrix (about {gib:.1f} GiB while solving), over "
                f"max_items={self.params.max_items:,}; use item-knn (sparse neighbours) or als for this catalogue, "
                "or raise max_items if the memory is there"
            )
        x = sp.csr_matrix(data.interactions.matrix, dtype=np.float32)
        gram = (x.T @ x).toarray().astype(np.float32)
        gram[np.diag_indices(n_items)] += np.float32(self.params.reg)
        # (fit limits the BLAS threads to options.num_threads around this)
        factor, info = scipy.linalg.lapack.spotrf(gram, lower=False, overwrite_a=True)
        if info != 0:
            raise ConfigError(f"ease: the Gram matrix is not positive definite (LAPACK info {info}); "
                              f"raise reg (now {self.params.reg})")
        inverse, info = scipy.linalg.lapack.spotri(factor, lower=False, overwrite_c=True)
        if info != 0:
            raise ConfigError(f"ease: inverting the Gram matrix failed (LAPACK info {info}); raise reg")
        upper = np.triu(inverse)
        precision = upper + np.triu(upper, 1).T  # potri fills one triangle only
        weights = -precision / np.diag(precision)[None, :]
        weights[np.diag_indices(n_items)] = 0.0
        self.weights_ = np.ascontiguousarray(weights, dtype=np.float32)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return np.asarray(histories @ self.weights_)

    def _set_scorer(self, sets: ItemSets) -> SetScorer:
        """Transpose scoring: ``histories @ (B @ membership)``, one dense column of ``B``'s sums per set (an
        ``n_items × n_sets`` float64 matrix, gathered once per call); seen items of shared sets are taken off
        as ``history · B[:, item]`` per pair. With more sets than that matrix may hold (over
        :data:`~recsmith.recipes.base.SCORE_BLOCK_CELLS` values), the dense path, which costs as much then."""
        weights = self.weights_
        if weights.shape[0] * sets.n_sets > SCORE_BLOCK_CELLS:
            return super()._set_scorer(sets)
        set_columns = set_column_sums(weights, sets)

        def sums(histories: sp.csr_matrix, users: np.ndarray, seen: sp.csr_matrix | None) -> np.ndarray:
            totals = np.asarray(histories @ set_columns, dtype=np.float64)

            def pairs(rows: np.ndarray, items: np.ndarray) -> np.ndarray:
                picked = histories[rows]
                owner = np.repeat(np.arange(len(rows)), np.diff(picked.indptr))
                contributions = picked.data.astype(np.float64) * weights[picked.indices, items[owner]]
                return np.bincount(owner, contributions, minlength=len(rows))

            return minus_seen(totals, seen, sets, pairs)

        return SetScorer(sums, width=sets.n_sets)

    def explain(self, history: np.ndarray, weights: np.ndarray, items: np.ndarray) -> np.ndarray | None:
        """Each item's strongest contributor ``argmax_h weight_h · B[h, item]`` (see Recipe.explain)."""
        history = np.asarray(history, dtype=np.int64)
        block = self.weights_[np.ix_(history, np.asarray(items, dtype=np.int64))]
        return strongest_contributor(block * np.asarray(weights, dtype=np.float32)[:, None], history)

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = np.ascontiguousarray(arrays["weights"], dtype=np.float32)
