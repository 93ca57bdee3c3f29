"""User-based collaborative filtering: recommend what similar users have."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsmith.data.training import TrainingData
from recsmith.recipes.base import Choice, FloatRange, IntRange, Recipe, RecipeParams
from recsmith.recipes.item_knn import weight_matrix
from recsmith.recipes.options import FitOptions


class UserKNNParams(RecipeParams):
    """Params of :class:`UserKNN`."""

    neighbors: int = Field(default=50, ge=1)
    """How many most-similar users vote."""

    shrink: float = Field(default=10.0, ge=0.0)
    """Shrinkage added to the cosine denominator."""

    weighting: Literal["none", "bm25", "tfidf"] = "bm25"
    """Re-weight the user-item matrix (items as terms) before computing similarities."""

    search_space = {
        "neighbors": IntRange(low=5, high=500, log=True),
        "shrink": FloatRange(low=0.0, high=200.0),
        "weighting": Choice(choices=("none", "bm25", "tfidf")),
    }


class UserKNN(Recipe):
    """User-based collaborative filtering (UCF) with shrunk cosine similarity.

    For each user, the ``neighbors`` most similar training users (cosine over their interaction rows,
    shrunk by ``shrink``) vote for their items with their similarity as the weight. Similarities are
    computed at request time from the user's history, so users unseen at training time are served the
    same way.

    References
    ----------
    Resnick, Iacovou, Suchak, Bergstrom and Riedl, "GroupLens: an open architecture for collaborative
    filtering of netnews", CSCW 1994. Herlocker, Konstan, Borchers and Riedl, "An algorithmic framework for
    performing collaborative filtering", SIGIR 1999.
    """

    name = "user-knn"
    Params = UserKNNParams

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        self._prepare()

    def _prepare(self) -> None:
        matrix = self._check_fitted()
        weighted = weight_matrix(matrix.T.tocsr(), self.params.weighting).T.tocsr()
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel()).astype(np.float32)
        self.user_norms_ = norms
        self.user_vectors_t_ = sp.csr_matrix(weighted.T)  # items × users, for history @ vectors.T
        positive = matrix.copy()
        positive.data = np.maximum(positive.data, 0)
        self.votes_ = sp.csr_matrix(positive)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        h = sp.csr_matrix(histories, dtype=np.float32)
        h.data = np.maximum(h.data, 0)
        dots = (h @ self.user_vectors_t_).toarray()
        own = np.sqrt(np.asarray(h.multiply(h).sum(axis=1)).ravel())
        sims = dots / (own[:, None] * self.user_norms_[None, :] + self.params.shrink + 1e-9)
        if users is not None:
            sims[np.arange(len(users)), users] = 0.0  # a user is not their own neighbour
        k = min(self.params.neighbors, sims.shape[1])
        if k < sims.shape[1]:
            cut = np.partition(sims, -k, axis=1)[:, -k][:, None]
            sims[sims < cut] = 0.0
        return np.asarray(self.votes_.T @ sims.T.astype(np.float32)).T  # sparse @ dense

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._prepare()
