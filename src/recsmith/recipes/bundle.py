"""The model bundle: a fitted recipe with the vocabularies it was trained on, written atomically.

This is what a solution version's artifact holds, and what serving, batch jobs and the CLI load (it lives
with the recipes, below the store, which only records where an artifact is).

Layout of an artifact folder::

    model/          the recipe's own ``arrays/*.npy`` + ``meta.json``
    users.npy       raw user ids in dense order (unicode array, no pickle)
    items.npy       raw item ids in dense order
    popularity.npy  float32 item popularity (users with a positive interaction), the fallback ranking
    meta.json       solution version id, recipe, counts
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsmith.atomic import atomic_folder
from recsmith.data.interactions import Interactions
from recsmith.data.training import TrainingData
from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import DataError, NotFoundError
from recsmith.recipes.base import Recipe
from recsmith.recipes.registry import load_recipe


def _save_ids(path: Path, ids: np.ndarray) -> None:
    np.save(path, np.asarray([str(x) for x in ids], dtype=str), allow_pickle=False)


@dataclass
class TrainedModel:
    """A fitted recipe with the raw-id vocabularies it was trained on.

    Attributes
    ----------
    recipe : Recipe
        The fitted recipe (dense ids inside).
    users, items : Vocabulary
        Raw <-> dense ids of the training data.
    popularity : numpy.ndarray
        float32 per-item popularity used for fallbacks.
    meta : dict
        What was recorded at training time.
    """

    recipe: Recipe
    users: Vocabulary
    items: Vocabulary
    popularity: np.ndarray
    meta: dict[str, Any]

    @functools.cached_property
    def popular_order(self) -> np.ndarray:
        """Item indices by decreasing popularity (ties by index): the fallback ranking, sorted once."""
        return np.argsort(-self.popularity, kind="stable")

    @classmethod
    def from_fit(cls, recipe: Recipe, data: TrainingData | Interactions, meta: dict[str, Any]) -> TrainedModel:
        """Wrap a recipe fitted on ``data`` (its matrix gives the vocabularies and the fallback popularity)."""
        interactions = data.interactions if isinstance(data, TrainingData) else data
        positive = interactions.matrix.copy()
        positive.data = (positive.data > 0).astype(np.float32)
        popularity = np.asarray(positive.sum(axis=0)).ravel().astype(np.float32)
        return cls(recipe, interactions.user_vocab, interactions.item_vocab, popularity, dict(meta))

    def save(self, path: str | Path) -> Path:
        """Write the artifact to ``path`` atomically (a temp folder beside it, then a rename)."""
        target = Path(path)
        with atomic_folder(target) as tmp:
            self.recipe.save(tmp / "model")
            _save_ids(tmp / "users.npy", self.users.ids)
            _save_ids(tmp / "items.npy", self.items.ids)
            np.save(tmp / "popularity.npy", self.popularity.astype(np.float32), allow_pickle=False)
            (tmp / "meta.json").write_text(json.dumps(self.meta, indent=2, default=str))
        return target

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = False) -> TrainedModel:
        """Read an artifact written by :meth:`save` (no pickle); ``mmap`` memory-maps the recipe's arrays
        (see :meth:`recsmith.recipes.Recipe.load`).

        Raises
        ------
        NotFoundError
            When the folder holds no artifact.
        DataError
            When the artifact is damaged or incomplete.
        """
        folder = Path(path)
        if not (folder / "meta.json").is_file():
            raise NotFoundError(f"no trained model at {folder} (meta.json missing); was the training finished?")
        try:
            recipe = load_recipe(folder / "model", mmap=mmap)
            users = Vocabulary(np.load(folder / "users.npy", allow_pickle=False).tolist())
            items = Vocabulary(np.load(folder / "items.npy", allow_pickle=False).tolist())
            popularity = np.load(folder / "popularity.npy", allow_pickle=False)
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"the model artifact at {folder} is damaged or incomplete: {exc}") from exc
        return cls(recipe, users, items, popularity, meta)
