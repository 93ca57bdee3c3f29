"""Shared tests every recipe must pass (DESIGN.md convention 9).

Subclass :class:`RecipeContract` in a test module and set ``recipe_name`` (and ``params``,
``min_ndcg``)::

    class TestItemKNN(RecipeContract):
        recipe_name = "item-knn"
        min_ndcg = 0.3

pytest then runs every ``test_*`` method below against that recipe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError, NotFittedError
from recsmith.recipes import Recipe, create


def datasets_dir() -> Path:
    """Where the shared real datasets are: ``$RECSMITH_DATASETS`` or ``../shared/datasets`` beside the repo."""
    env = os.environ.get("RECSMITH_DATASETS")
    if env:
        return Path(env)
    beside_checkout = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    return beside_checkout if beside_checkout.is_dir() else Path.cwd().parent / "shared" / "datasets"


def synthetic_interactions(n_users: int = 60, n_items: int = 40, density: float = 0.15, seed: int = 0
                           ) -> Interactions:
    """A small random implicit-feedback dataset with some structure (two taste groups)."""
    rng = np.random.default_rng(seed)
    taste = rng.integers(0, 2, n_users)
    probability = np.where(taste[:, None] == (np.arange(n_items)[None, :] % 2), density * 1.6, density * 0.4)
    dense = (rng.random((n_users, n_items)) < probability).astype(np.float32)
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # nobody is empty
    matrix = sp.csr_matrix(dense)
    timestamps = 1_700_000_000 + rng.integers(0, 30 * 86_400, matrix.nnz)  # a month of activity
    return Interactions.from_csr(matrix, timestamps=timestamps)


def ml100k_split(seed: int = 42) -> tuple[Interactions, Interactions]:
    """MovieLens 100K, random 80/20 split (skips the test when the dataset is absent)."""
    import pandas as pd

    from recsmith.evaluation.split import split_random

    path = datasets_dir() / "ml-100k" / "u.data"
    if not path.is_file():
        pytest.skip(f"MovieLens 100K not found at {path}")
    frame = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "timestamp"])
    data = Interactions.from_frame(frame, user="user", item="item", timestamp="timestamp", value="rating")
    return split_random(data, test_fraction=0.2, seed=seed)


class RecipeContract:
    """The tests every recipe shares; subclasses set ``recipe_name`` and optionally ``params``.

    Attributes
    ----------
    recipe_name : str
        Registry name of the recipe under test.
    params : dict
        Params passed to :func:`recsmith.recipes.create` (override :meth:`make_recipe` for more).
    min_ndcg : float
        The least ndcg@10 on the MovieLens 100K random 80/20 split (seed 42); the test skips when the
        dataset is absent (``$RECSMITH_DATASETS``).
    """

    recipe_name: ClassVar[str]
    params: ClassVar[dict[str, Any]] = {}
    min_ndcg: ClassVar[float] = 0.1

    def make_recipe(self, **overrides: Any) -> Recipe:
        """A new, unfitted recipe with the class's params."""
        return create(self.recipe_name, **(self.params | overrides))

    def fitted(self, data: Interactions | None = None) -> Recipe:
        """A recipe fitted on ``data`` (the synthetic set by default)."""
        return self.make_recipe().fit(data or synthetic_interactions())

    def test_shapes_and_dtypes(self) -> None:
        recs = self.fitted().recommend(np.arange(7), k=5)
        assert recs.ids.shape == (7, 5) and recs.scores.shape == (7, 5)
        assert recs.ids.dtype == np.int32 and recs.scores.dtype == np.float32

    def test_scores_descend_and_ids_unique(self) -> None:
        recs = self.fitted().recommend(np.arange(20), k=10)
        for ids, scores in zip(recs.ids, recs.scores, strict=True):
            valid = ids >= 0
            assert len(set(ids[valid].tolist())) == valid.sum()
            assert np.all(np.diff(scores[valid]) <= 1e-6)

    def test_padding_when_k_exceeds_catalogue(self) -> None:
        data = synthetic_interactions()
        recs = self.fitted(data).recommend(np.arange(3), k=data.n_items + 5)
        for user, (ids, scores) in enumerate(zip(recs.ids, recs.scores, strict=True)):
            seen = len(data.user_history(user))
            assert (ids[data.n_items - seen:] == -1).all()
            assert np.isneginf(scores[ids == -1]).all()
            assert np.isfinite(scores[ids >= 0]).all()

    def test_exclude_seen(self) -> None:
        data = synthetic_interactions()
        recs = self.fitted(data).recommend(np.arange(data.n_users), k=10, exclude_seen=True)
        for user in range(data.n_users):
            assert not set(recs.ids[user].tolist()) & set(data.user_history(user).tolist())

    def test_exclude_and_candidates(self) -> None:
        recipe = self.fitted()
        banned = np.array([0, 1, 2, 3, 4])
        recs = recipe.recommend(np.arange(10), k=10, exclude=banned, exclude_seen=False)
        assert not np.isin(recs.ids, banned).any()
        allowed = np.array([5, 6, 7, 8, 9, 10])
        recs = recipe.recommend(np.arange(10), k=10, candidates=allowed, exclude_seen=False)
        assert np.isin(recs.ids[recs.ids >= 0], allowed).all()
        assert (recs.ids[:, len(allowed):] == -1).all()
        per_user = recipe.recommend(np.arange(2), k=3, candidates=[np.array([1, 2, 3]), np.array([4])],
                                    exclude_seen=False)
        assert set(per_user.ids[0].tolist()) <= {1, 2, 3} and per_user.ids[1, 1:].tolist() == [-1, -1]

    def test_exclude_per_user(self) -> None:
        recipe = self.fitted()
        everything = recipe.recommend(np.arange(2), k=3, exclude_seen=False)
        banned = [everything.ids[0, :2], np.array([], dtype=np.int64)]
        recs = recipe.recommend(np.arange(2), k=3, exclude=banned, exclude_seen=False)
        assert not np.isin(recs.ids[0], banned[0]).any()
        np.testing.assert_array_equal(recs.ids[1], everything.ids[1])

    def test_bad_arguments_name_the_problem(self) -> None:
        with pytest.raises(ConfigError, match="no_such_param"):
            self.make_recipe(no_such_param=1)
        recipe = self.fitted()
        with pytest.raises(ConfigError, match="k must be a positive integer"):
            recipe.recommend(np.arange(2), k=0)
        with pytest.raises(DataError, match="user indices"):
            recipe.recommend(np.array([10_000]), k=3)
        with pytest.raises(ConfigError, match="one per user"):
            recipe.recommend(np.arange(3), k=3, exclude=[np.array([1]), np.array([2])])

    def test_similar_items_or_a_clear_refusal(self) -> None:
        recipe = self.fitted()
        if not recipe.supports_similar_items:
            with pytest.raises(ConfigError, match="item similarity"):
                recipe.similar_items(np.array([0]), k=3)
            return
        similar = recipe.similar_items(np.arange(5), k=4)
        assert similar.ids.shape == (5, 4) and similar.ids.dtype == np.int32 and similar.scores.dtype == np.float32
        assert not (similar.ids == np.arange(5)[:, None]).any(), "an item is not its own neighbour"
        assert np.isneginf(similar.scores[similar.ids < 0]).all()

    def test_deterministic_for_a_seed(self) -> None:
        data = synthetic_interactions()
        first = self.make_recipe().fit(data).recommend(np.arange(15), k=8)
        second = self.make_recipe().fit(data).recommend(np.arange(15), k=8)
        np.testing.assert_array_equal(first.ids, second.ids)
        np.testing.assert_allclose(first.scores, second.scores, rtol=1e-6)

    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        recipe = self.fitted()
        path = recipe.save(tmp_path / "model")
        assert {p.name for p in path.iterdir()} == {"arrays", "meta.json"}
        for file in (path / "arrays").iterdir():  # each loads without pickle
            assert file.suffix == ".npy" and np.load(file, allow_pickle=False).dtype != object
        meta = json.loads((path / "meta.json").read_text())
        assert meta["recipe"] == recipe.name and meta["params"] == recipe.get_params() and meta["recsmith_version"]
        before = recipe.recommend(np.arange(10), k=7)
        for mmap in (False, True):  # serving memory-maps the arrays read-only: nothing may write to them
            loaded = Recipe.load(path, mmap=mmap)
            assert type(loaded) is type(recipe) and loaded.get_params() == recipe.get_params()
            after = loaded.recommend(np.arange(10), k=7)
            np.testing.assert_array_equal(before.ids, after.ids)
            np.testing.assert_allclose(before.scores, after.scores, rtol=1e-6)
            history = loaded.recommend_from_history([np.array([0, 1, 2], dtype=np.int32)], k=5)
            np.testing.assert_array_equal(history.ids, recipe.recommend_from_history([np.array([0, 1, 2])], k=5).ids)
        assert not list(tmp_path.glob(".model.*")), "the temporary folder was left behind"

    def test_explain_names_items_from_the_history(self) -> None:
        data = synthetic_interactions()
        recipe = self.fitted(data)
        history = data.user_history(0)
        recs = recipe.recommend_from_history([history], k=5)
        items = recs.ids[0][recs.ids[0] >= 0]
        why = recipe.explain(history, np.ones(len(history), dtype=np.float32), items)
        if why is None:  # the recipe's scores are not sums over the history: no item-level reason
            return
        assert why.shape == items.shape
        assert set(why[why >= 0].tolist()) <= set(history.tolist())
        assert (why >= 0).any(), "no recommended item was explained by the history it was scored from"

    def test_recommend_from_history_for_new_user(self) -> None:
        data = synthetic_interactions()
        recipe = self.fitted(data)
        history = data.user_history(0)
        recs = recipe.recommend_from_history([history], k=5)
        assert recs.ids.shape == (1, 5)
        assert not set(recs.ids[0].tolist()) & set(history.tolist())
        assert (recs.ids[0] >= 0).all()

    def test_negative_weights_push_items_down(self) -> None:
        """Event weights reach the model: the same events weighing -1 (a "dislike") instead of +1 rank
        their item lower for the users who never touched it."""
        liked = synthetic_interactions()
        target = int(np.argmax(np.bincount(liked.matrix.indices, minlength=liked.n_items)))
        flipped = liked.matrix.copy()
        flipped.data[flipped.indices == target] = -1.0
        disliked = liked.with_matrix(flipped, timestamps=liked.timestamps)
        probes = np.flatnonzero(np.asarray(liked.matrix[:, target].todense()).ravel() == 0)

        def mean_position(data: Interactions) -> float:
            ids = self.make_recipe().fit(data).recommend(probes, k=data.n_items).ids
            positions = np.where(ids == target, np.arange(data.n_items)[None, :], data.n_items).min(axis=1)
            return float(positions.mean())

        assert mean_position(disliked) > mean_position(liked) + 1.0

    def test_unfitted_raises(self, tmp_path: Path) -> None:
        recipe = self.make_recipe()
        with pytest.raises(NotFittedError):
            recipe.recommend(np.arange(2), k=3)
        with pytest.raises(NotFittedError):
            recipe.recommend_from_history([np.array([0])], k=3)
        with pytest.raises(NotFittedError):
            recipe.save(tmp_path / "model")

    def test_params_round_trip(self) -> None:
        recipe = self.make_recipe()
        clone = recipe.clone()
        assert clone.get_params() == recipe.get_params() and clone is not recipe

    def test_quality_on_movielens_100k(self) -> None:
        from recsmith.evaluation.evaluate import evaluate_recipes

        train, test = ml100k_split()
        row = evaluate_recipes({self.recipe_name: self.make_recipe()}, train, test, metrics=["ndcg@10"])[0]
        assert row["ndcg@10"] >= self.min_ndcg, row
