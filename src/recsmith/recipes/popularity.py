"""Popularity-Count: the same best-seller list for everyone (minus what each user already has)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from recsmith.data.training import TrainingData
from recsmith.recipes.base import Recipe, RecipeParams
from recsmith.recipes.options import FitOptions
from recsmith.recipes.tags import RecipeTags


class PopularityParams(RecipeParams):
    """Params of :class:`Popularity`."""

    by: Literal["users", "weight"] = "users"
    """``users``: count the users with a positive interaction; ``weight``: sum the event weights
    (negative weights subtract)."""


class Popularity(Recipe):
    """Popularity-Count (Amazon Personalize's ``aws-popularity-count``).

    Scores every item by how many users interacted with it positively (or by the sum of event weights),
    and recommends the most popular items each user has not seen. The baseline every personalised
    recipe must beat; also the fallback for users nobody knows. See Cremonesi, Koren and Turrin,
    "Performance of recommender algorithms on top-N recommendation tasks", RecSys 2010, for its role as
    a baseline. Its scores do not depend on the user, so it cannot rank users for items
    (``tags.top_users`` is false: ``top_users`` raises ``ConfigError``).
    """

    name = "popularity"
    Params = PopularityParams
    tags = RecipeTags(top_users=False)

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        matrix = data.interactions.matrix
        if self.params.by == "users":
            positive = (matrix > 0).astype(np.float32)
            counts = np.asarray(positive.sum(axis=0)).ravel()
        else:
            counts = np.asarray(matrix.sum(axis=0)).ravel()
        self.popularity_ = counts.astype(np.float32)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (histories.shape[0], len(self.popularity_)))

    def reason_kinds(self, items: np.ndarray) -> list[str] | None:
        """``"popular"`` for every item: the list is not personalized, whoever asks."""
        return ["popular"] * len(items)

    def _state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity_ = arrays["popularity"]
