"""Trending-Now: items whose popularity grows fastest in the latest window."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsmith.data.training import TrainingData
from recsmith.recipes.base import Recipe, RecipeParams
from recsmith.recipes.options import FitOptions
from recsmith.recipes.tags import RecipeTags


class TrendingParams(RecipeParams):
    """Params of :class:`Trending`."""

    window_hours: float = Field(default=168.0, gt=0.0)
    """Length of the recent window (and of the window before it), e.g. 1 for an hour, 168 for a week."""

    smoothing: float = Field(default=5.0, gt=0.0)
    """Added to the earlier window's count so that items going from 0 to 1 do not top the list."""


class Trending(Recipe):
    """Trending-Now (Amazon Personalize's ``aws-trending-now``): growth of popularity.

    Sums each item's interaction weights in the last ``window_hours`` before the newest interaction and in
    the window before that, and scores ``(recent - earlier⁺) / (earlier⁺ + smoothing)`` (``earlier⁺`` is
    the earlier sum floored at 0) plus a small tie-break on the recent sum. A pair weighs what its events
    do after event-type weights and decay, at its latest interaction: with unit weights this counts users,
    a purchase can count more than a view, and a dislike (negative weight) counts against the item, so
    a net-disliked item sinks below every neutral one. The same list for everyone, minus exclusions.
    Needs timestamps.

    References
    ----------
    Amazon Personalize Developer Guide, "Trending-Now recipe". Gorse's "latest"/"popular" recommenders
    with a time window follow the same idea.
    """

    name = "trending"
    Params = TrendingParams
    tags = RecipeTags(needs_timestamps=True)

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        matrix = data.interactions.matrix
        stamps = data.interactions.timestamps  # never None: the needs_timestamps tag makes fit check
        newest = int(stamps.max()) if len(stamps) else 0
        window = self.params.window_hours * 3600.0
        weights = matrix.data.astype(np.float64)
        recent_mask = stamps > newest - window
        earlier_mask = (stamps <= newest - window) & (stamps > newest - 2 * window)
        recent = np.bincount(matrix.indices[recent_mask], weights[recent_mask], minlength=matrix.shape[1])
        earlier = np.maximum(np.bincount(matrix.indices[earlier_mask], weights[earlier_mask],
                                         minlength=matrix.shape[1]), 0.0)
        growth = (recent - earlier) / (earlier + self.params.smoothing)
        self.trend_ = (growth + 1e-6 * recent).astype(np.float32)
        self.reference_time_ = np.asarray([newest], dtype=np.int64)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return np.broadcast_to(self.trend_, (histories.shape[0], len(self.trend_)))

    def _state(self) -> dict[str, np.ndarray]:
        return {"trend": self.trend_, "reference_time": self.reference_time_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.trend_ = arrays["trend"]
        self.reference_time_ = arrays["reference_time"]
