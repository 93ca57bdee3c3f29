"""Trending-Now: items whose popularity grows fastest in the latest window, then what is popular in it."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsmith.data.training import TrainingData
from recsmith.recipes.base import Recipe, RecipeParams
from recsmith.recipes.options import FitOptions
from recsmith.recipes.tags import RecipeTags

TRENDING = "trending"
"""The reason of an item with a growth signal (a riser)."""
POPULAR = "popular"
"""The reason of every other item (ranked by its popularity in the recent window)."""


class TrendingParams(RecipeParams):
    """Params of :class:`Trending`."""

    window_hours: float = Field(default=168.0, gt=0.0)
    """Length of the recent window (and of the window before it), e.g. 1 for an hour, 168 for a week."""

    smoothing: float = Field(default=5.0, gt=0.0)
    """Added to the earlier window's count in the growth rate, so that items going from 0 to 1 are no risers."""

    min_growth: float = Field(default=1.0, ge=0.0)
    """The growth rate ``(recent - earlier) / (earlier + smoothing)`` an item needs to count as a riser: 1 (the
    default) asks that the recent sum be at least twice the earlier one plus ``smoothing`` (0 -> 5, 10 -> 25)."""

    min_recent: float = Field(default=10.0, ge=0.0)
    """The least sum of weights in the recent window for a riser (with unit weights: users), whatever its growth
    rate, so that a handful of interactions, noise in a quiet window, is never a trend."""

    popularity_prior: float = Field(default=0.0, ge=0.0)
    """How much all-time popularity counts in the fallback's order, in recent windows' worth of interactions: the
    items without a growth signal rank by ``recent + popularity_prior × R × share`` (``R``: the recent window's
    total weight; ``share``: the item's share of the whole log). 0 (the default): by the recent window alone,
    all-time popularity only breaking ties. Raise it (1 to 4) where a window holds one or two interactions per
    item, so that all-time popularity orders that noise."""


class Trending(Recipe):
    """Trending-Now (Amazon Personalize's ``aws-trending-now``): growth of popularity, falling back to popularity.

    Sums each item's interaction weights in the last ``window_hours`` before the newest interaction
    (``recent``) and in the window before that (``earlier``; ``earlier⁺`` is it floored at 0). An item is a
    *riser* when ``recent >= min_recent`` and its growth rate ``(recent - earlier⁺) / (earlier⁺ + smoothing)``
    is at least ``min_growth``. The list:

    1. the risers, by their increase ``recent - earlier⁺`` (the interactions gained per window: a big item that
       went from 40 to 100 beats a small one that went from 0 to 20), then by growth rate;
    2. every other item by its popularity in the recent window (``recent``, plus all-time popularity as far as
       ``popularity_prior`` asks), then in both windows (``recent + earlier``), then over the whole log, then
       by index: the list is never arbitrary, and an item with no interactions in the two windows comes by its
       popularity over the log (as Personalize falls back to popular items).

    A pair weighs what its events do after event-type weights and decay, at its latest interaction: with unit
    weights this counts users, a purchase can count more than a view, and a dislike (negative weight) counts
    against the item, so a net-disliked item sinks below every neutral one. The same list for everyone
    (``tags.same_for_everyone``), minus exclusions; :meth:`reason_kinds` labels each item ``"trending"`` (a
    riser) or ``"popular"``. Scores are the list's order, ``1 - position / n_items`` (1 for the first item):
    the sums behind the two tiers are not on one scale. Needs timestamps. It cannot rank users for items
    (``tags.top_users`` is false).

    References
    ----------
    Amazon Personalize Developer Guide, "Trending-Now recipe". Gorse's "latest"/"popular" recommenders
    with a time window follow the same idea.
    """

    name = "trending"
    Params = TrendingParams
    tags = RecipeTags(needs_timestamps=True, same_for_everyone=True, top_users=False)

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        matrix = data.interactions.matrix
        stamps = data.interactions.timestamps  # never None: the needs_timestamps tag makes fit check
        newest = int(stamps.max()) if len(stamps) else 0
        window = self.params.window_hours * 3600.0
        n_items = matrix.shape[1]
        weights = matrix.data.astype(np.float64)
        recent_mask = stamps > newest - window
        earlier_mask = (stamps <= newest - window) & (stamps > newest - 2 * window)
        recent = np.bincount(matrix.indices[recent_mask], weights[recent_mask], minlength=n_items)
        earlier = np.bincount(matrix.indices[earlier_mask], weights[earlier_mask], minlength=n_items)
        overall = np.bincount(matrix.indices, weights, minlength=n_items)
        floored = np.maximum(earlier, 0.0)
        growth = (recent - floored) / (floored + self.params.smoothing)
        rising = (recent >= self.params.min_recent) & (recent > 0) & (growth >= self.params.min_growth)
        increase = np.where(rising, recent - floored, 0.0)
        # lexsort: the last key is the primary one; every key descends (ties by index: lexsort is stable)
        share = overall / max(float(np.maximum(overall, 0.0).sum()), 1e-12)
        popular_now = recent + self.params.popularity_prior * float(np.maximum(recent, 0.0).sum()) * share
        order = np.lexsort((-overall, -(recent + earlier), -popular_now, -np.where(rising, growth, 0.0), -increase,
                            ~rising))
        position = np.empty(n_items, dtype=np.float64)
        position[order] = np.arange(n_items)
        self.trend_ = (1.0 - position / max(n_items, 1)).astype(np.float32)
        self.rising_ = rising
        self.reference_time_ = np.asarray([newest], dtype=np.int64)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return np.broadcast_to(self.trend_, (histories.shape[0], len(self.trend_)))

    def reason_kinds(self, items: np.ndarray) -> list[str] | None:
        """``"trending"`` for the risers among ``items``, ``"popular"`` for the others (None for a model saved
        before risers were kept)."""
        self._check_fitted()
        if self.rising_ is None:
            return None
        return [TRENDING if rising else POPULAR for rising in self.rising_[np.asarray(items, dtype=np.int64)].tolist()]

    def _state(self) -> dict[str, np.ndarray]:
        return {"trend": self.trend_, "rising": self.rising_, "reference_time": self.reference_time_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.trend_ = arrays["trend"]
        self.rising_ = arrays.get("rising")
        self.reference_time_ = arrays["reference_time"]
