"""Cold-start baselines: ``random`` (seeded random scores) and ``feature-popularity`` (popular within the item's
genres).

Both score items the model never saw (``tags.cold_start_items``), so they are the floor of the ``cold-items``
protocol (:mod:`recsmith.evaluation.split`) and of serving items put after training: a learned cold-start recipe
(two-tower, fm with item features) has to beat ``feature-popularity`` to be worth its training.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsmith.data.training import FeatureTable, TrainingData
from recsmith.errors import DataError
from recsmith.recipes.base import Choice, FloatRange, Recipe, RecipeParams, SearchDimension
from recsmith.recipes.options import FitOptions

logger = logging.getLogger(__name__)

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser over ``uint64`` values: a fast, well-spread, stateless hash."""
    z = values.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return z ^ (z >> np.uint64(31))


class RandomParams(RecipeParams):
    """Params of :class:`RandomScores`."""

    seed: int = 42
    """Seed of the scores: the same seed gives the same ranking for the same user."""


class RandomScores(Recipe):
    """Random scores (LensKit's ``Random``): the floor every recipe must clear, also on cold items.

    A (user, item) pair's score is a hash of the seed, the user and the item, uniform in [0, 1): the same for
    every call (so batches, single requests and ``score`` agree), different for each user. A user the model
    never saw is keyed by their history's items; an item put after training by its position among the new items
    (:meth:`score_new_items`).
    """

    name = "random"
    Params = RandomParams
    tags = dataclasses.replace(Recipe.tags, uses_event_weights=False, cold_start_items=True)

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        self.n_items_ = data.n_items

    def _user_keys(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        if users is not None:
            return np.asarray(users, dtype=np.uint64)
        keys = np.empty(histories.shape[0], dtype=np.uint64)
        for row in range(histories.shape[0]):  # a stranger: keyed by their items, never by a training user's index
            items = np.sort(histories.indices[histories.indptr[row]:histories.indptr[row + 1]]).astype(np.uint64)
            keys[row] = np.bitwise_xor.reduce(_mix(items), initial=np.uint64(1 << 62))
        return keys

    def _random(self, keys: np.ndarray, items: np.ndarray) -> np.ndarray:
        seed = _mix(np.asarray([self.params.seed & 0xFFFFFFFF], dtype=np.uint64))[0]
        with np.errstate(over="ignore"):
            user_part = _mix(keys ^ seed)
            hashed = _mix(user_part[:, None] ^ items.astype(np.uint64)[None, :])
        return ((hashed >> np.uint64(40)).astype(np.float64) / float(1 << 24)).astype(np.float32)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return self._random(self._user_keys(histories, users), np.arange(histories.shape[1]))

    def score_new_items(self, histories: sp.csr_matrix, users: np.ndarray | None,
                        features: FeatureTable) -> np.ndarray:
        """Random scores for ``features.n_rows`` new items (keyed after the training items)."""
        n_items = self._check_fitted().shape[1]
        return self._random(self._user_keys(histories, users), n_items + np.arange(features.n_rows))


class FeaturePopularityParams(RecipeParams):
    """Params of :class:`FeaturePopularity`."""

    search_space: ClassVar[dict[str, SearchDimension]] = {
        "smoothing": FloatRange(low=0.01, high=100.0, log=True),
        "aggregate": Choice(choices=("sum", "mean")),
    }

    field: str | None = None
    """The categorical item feature to count (e.g. ``GENRES``); default: every categorical item feature."""

    smoothing: float = Field(default=1.0, ge=0.0)
    """Added to a user's count of every category (and to their number of items), so categories the user never
    touched still count, and a user with no history ranks by plain category popularity."""

    aggregate: Literal["sum", "mean"] = "sum"
    """How an item's categories combine: ``sum`` (items of many genres score more) or ``mean`` (each of an item's
    ``n`` categories weighs ``1 / n``)."""


class FeaturePopularity(Recipe):
    """Popular within the item's genres: ``score(u, i) = Σ_c∈cat(i) pop(c) · affinity(u, c)``.

    ``pop(c)`` is the share of the training's positive interactions that went to items of category ``c``;
    ``affinity(u, c) = (n_uc + s) / (n_u + s)``, with ``n_uc`` the user's positive items of category ``c``,
    ``n_u`` all their positive items and ``s`` the ``smoothing``: a user with no history gets
    ``s / s = 1`` for every category, i.e. plain category popularity. Categories are those of the ``field`` param
    (default: every categorical item feature, each field's categories apart). With ``aggregate="mean"`` the sum
    is divided by the item's number of categories.

    Items are scored from their categories only, so an item never seen in training (an empty column of a
    ``cold-items`` split, or an item put after training, :meth:`score_new_items`) scores like any other of its
    genres; categories unknown at training count for nothing. Without categorical item features (a bare matrix)
    each item is its own category: personalised popularity.
    """

    name = "feature-popularity"
    Params = FeaturePopularityParams
    tags = dataclasses.replace(Recipe.tags, uses_item_features=True, cold_start_items=True)

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        table = data.item_features
        categorical = table.of_kind("categorical")
        if self.params.field is not None:
            if self.params.field not in table:
                if not len(table):
                    raise DataError(f"feature-popularity: field {self.params.field!r} is not an item feature: the "
                                    "items have no features (import an items dataset, or drop the field param)")
                raise DataError(f"feature-popularity: field {self.params.field!r} is not an item feature; the items "
                                f"have {', '.join(table.names)}")
            if table[self.params.field].kind != "categorical":
                raise DataError(f"feature-popularity: field {self.params.field!r} is "
                                f"{table[self.params.field].kind}, not categorical; give a categorical field")
            categorical = [table[self.params.field]]
        if categorical:
            blocks = [sp.csr_matrix(f.values, dtype=np.float32) for f in categorical]
            self.item_categories_ = sp.hstack(blocks, format="csr", dtype=np.float32)
            self.field_names_ = np.asarray([f.name for f in categorical for _ in f.categories], dtype=str)
            self.category_names_ = np.asarray([c for f in categorical for c in f.categories], dtype=str)
        else:  # no features: each item its own category
            logger.info("feature-popularity: no categorical item features; each item is its own category")
            self.item_categories_ = sp.identity(data.n_items, dtype=np.float32, format="csr")
            self.field_names_ = np.asarray([], dtype=str)
            self.category_names_ = np.asarray([], dtype=str)
        positive = (data.interactions.matrix > 0).astype(np.float32)
        per_item = np.asarray(positive.sum(axis=0), dtype=np.float64).ravel()
        counts = np.asarray(self.item_categories_.T @ per_item, dtype=np.float64).ravel()
        total = counts.sum()
        self.popularity_ = (counts / total if total > 0 else counts).astype(np.float32)
        self.item_rows_ = self._combined(self.item_categories_)

    def _combined(self, membership: sp.csr_matrix) -> sp.csr_matrix:
        """Items' category rows as scored: the multi-hot rows, or (``mean``) each divided by its count."""
        if self.params.aggregate == "sum":
            return membership
        counts = np.asarray(membership.sum(axis=1), dtype=np.float64).ravel()
        scale = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
        return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ membership, dtype=np.float32)

    def _weights(self, histories: sp.csr_matrix) -> np.ndarray:
        """``pop(c) · affinity(u, c)`` for every user of ``histories`` and category: ``float32[n, C]``."""
        positive = sp.csr_matrix(histories, dtype=np.float32, copy=True)
        positive.data = (positive.data > 0).astype(np.float32)
        counts = np.asarray((positive @ self.item_categories_).todense(), dtype=np.float64)
        n_user = np.asarray(positive.sum(axis=1), dtype=np.float64)
        s = float(self.params.smoothing)
        denominator = n_user + s
        affinity = np.divide(counts + s, denominator, out=np.ones_like(counts), where=denominator > 0)
        return (affinity * self.popularity_[None, :]).astype(np.float32)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return np.asarray((self.item_rows_ @ self._weights(histories).T).T, dtype=np.float32)

    def new_item_categories(self, features: FeatureTable) -> sp.csr_matrix:
        """The new items' multi-hot rows over the training's categories (those it never saw are dropped).

        Raises
        ------
        DataError
            When the recipe was trained without categorical features (each item its own category: a new item
            has none), or the table lacks the trained fields.
        """
        n_new = features.n_rows
        if not len(self.category_names_):
            return sp.csr_matrix((n_new, self.item_categories_.shape[1]), dtype=np.float32)
        fields = self.field_names_.tolist()
        names = self.category_names_.tolist()
        column = {(f, c): j for j, (f, c) in enumerate(zip(fields, names, strict=True))}
        rows, cols = [], []
        for name in dict.fromkeys(fields):
            if name not in features or features[name].kind != "categorical":
                continue
            feature = features[name]
            mapping = np.asarray([column.get((name, c), -1) for c in feature.categories], dtype=np.int64)
            values = sp.csr_matrix(feature.values).tocoo()
            target = mapping[values.col] if len(mapping) else np.empty(0, dtype=np.int64)
            keep = target >= 0
            rows.append(values.row[keep])
            cols.append(target[keep])
        row = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
        col = np.concatenate(cols) if cols else np.empty(0, dtype=np.int64)
        matrix = sp.csr_matrix((np.ones(len(row), dtype=np.float32), (row, col)),
                               shape=(n_new, len(names)))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def score_new_items(self, histories: sp.csr_matrix, users: np.ndarray | None,
                        features: FeatureTable) -> np.ndarray:
        """Scores of new items from their categories (as :meth:`_scores` scores the known ones)."""
        self._check_fitted()
        histories = sp.csr_matrix(histories, dtype=np.float32)
        new = self._combined(self.new_item_categories(features))
        return np.asarray((new @ self._weights(histories).T).T, dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        matrix = self.item_categories_
        return {"category_data": matrix.data, "category_indices": matrix.indices, "category_indptr": matrix.indptr,
                "category_shape": np.asarray(matrix.shape, dtype=np.int64), "popularity": self.popularity_,
                "field_names": self.field_names_, "category_names": self.category_names_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        shape = tuple(int(x) for x in arrays["category_shape"])
        self.item_categories_ = sp.csr_matrix((arrays["category_data"], arrays["category_indices"],
                                               arrays["category_indptr"]), shape=shape)
        self.popularity_ = np.asarray(arrays["popularity"], dtype=np.float32)
        self.field_names_ = np.asarray(arrays["field_names"], dtype=str)
        self.category_names_ = np.asarray(arrays["category_names"], dtype=str)
        self.item_rows_ = self._combined(self.item_categories_)
