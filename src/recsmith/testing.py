"""Shared tests every recipe must pass (DESIGN.md convention 9), adapting to the recipe's tags.

Subclass :class:`RecipeContract` in a test module and set ``recipe_name`` (and ``params``,
``min_ndcg``)::

    class TestItemKNN(RecipeContract):
        recipe_name = "item-knn"
        min_ndcg = 0.3

pytest then runs every ``test_*`` method below against that recipe. The tests read the recipe class's
:class:`~recsmith.recipes.tags.RecipeTags`: sequential recipes are measured on ``leave_last``, recipes that are
not deterministic are compared with a tolerance, the event-weight test runs where weights are used, the
similar-items test where the recipe has item similarity, the epoch-callback test where it is iterative, the
top-users test (batch segments) where the recipe ranks users (the others must refuse).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError, DataError, NotFittedError
from recsmith.recipes import FitOptions, HistoryQuery, Recipe, create, load_recipe, recipe_class
from recsmith.recipes.tags import RecipeTags


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


def ml100k_split(seed: int = 42, protocol: str = "random") -> tuple[Interactions, Interactions]:
    """MovieLens 100K, split by ``protocol``: ``random`` 80/20 (seeded), ``leave_last`` (each user's last
    interaction) or ``temporal`` (the latest 10 % of the pairs, after one global time cut); skips the test when
    the dataset is absent."""
    import pandas as pd

    from recsmith.evaluation.split import split_leave_last, split_random, split_temporal

    path = datasets_dir() / "ml-100k" / "u.data"
    if not path.is_file():
        pytest.skip(f"MovieLens 100K not found at {path}")
    frame = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "timestamp"])
    data = Interactions.from_frame(frame, user="user", item="item", timestamp="timestamp", value="rating")
    if protocol == "leave_last":
        return split_leave_last(data, n=1)
    if protocol == "temporal":
        return split_temporal(data, fraction=0.1)
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
        The least ndcg@10 on MovieLens 100K: the random 80/20 split (seed 42), or ``leave_last`` for
        sequential recipes; the test skips when the dataset is absent (``$RECSMITH_DATASETS``).
    min_overlap : float
        For recipes not tagged ``deterministic``: the least mean share of top-k items two fits with the same
        seed must have in common (deterministic recipes must agree exactly).
    """

    recipe_name: ClassVar[str]
    params: ClassVar[dict[str, Any]] = {}
    min_ndcg: ClassVar[float] = 0.1
    min_overlap: ClassVar[float] = 0.7

    @property
    def tags(self) -> RecipeTags:
        """The tags of the recipe under test."""
        return recipe_class(self.recipe_name).tags

    def make_recipe(self, **overrides: Any) -> Recipe:
        """A new, unfitted recipe with the class's params."""
        return create(self.recipe_name, **(self.params | overrides))

    def fitted(self, data: Interactions | TrainingData | None = None, options: FitOptions | None = None) -> Recipe:
        """A recipe fitted on ``data`` (the synthetic set by default)."""
        return self.make_recipe().fit(data or synthetic_interactions(), options)

    def assert_same_recommendations(self, first: Any, second: Any) -> None:
        """Equal ids and scores for deterministic recipes; top-k sets that mostly agree for the others."""
        if self.tags.deterministic:
            np.testing.assert_array_equal(first.ids, second.ids)
            np.testing.assert_allclose(first.scores, second.scores, rtol=1e-6)
            return
        shared = [len(set(a[a >= 0].tolist()) & set(b[b >= 0].tolist())) / max((a >= 0).sum(), 1)
                  for a, b in zip(first.ids, second.ids, strict=True)]
        assert float(np.mean(shared)) >= self.min_overlap, shared

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
        if not recipe.tags.similar_items:
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
        self.assert_same_recommendations(first, second)

    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        recipe = self.fitted()
        path = recipe.save(tmp_path / "model")
        assert {p.name for p in path.iterdir()} == {"arrays", "meta.json"}
        for file in (path / "arrays").iterdir():  # each loads without pickle
            assert file.suffix == ".npy" and np.load(file, allow_pickle=False).dtype != object
        meta = json.loads((path / "meta.json").read_text())
        assert meta["recipe"] == recipe.name and meta["params"] == recipe.get_params() and meta["recsmith_version"]
        before = recipe.recommend(np.arange(10), k=7)
        for mmap, load in ((False, Recipe.load), (True, Recipe.load), (True, load_recipe), (False, type(recipe).load)):
            # serving memory-maps the arrays read-only: nothing may write to them
            loaded = load(path, mmap=mmap)
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
        their item lower for the users who never touched it (recipes tagged ``uses_event_weights``)."""
        if not self.tags.uses_event_weights:
            pytest.skip(f"{self.recipe_name} does not use event weights (tags.uses_event_weights)")
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

    def test_top_users_rank_by_the_scores(self) -> None:
        """``top_users`` (batch segments) ranks training users by ``score`` of a one-item set's item, and by
        their mean score over a bigger set: over the items they have not seen with ``exclude_seen`` (a user
        who has seen them all is left out), over all of them without; padded, restricted to ``users`` when
        given, with clear errors. Recipes whose tags say they cannot rank users refuse."""
        data = synthetic_interactions()
        recipe = self.fitted(data)
        sets = [np.array([0]), np.array([7]), np.array([1, 2, 5, 5, -1]), np.arange(data.n_items),
                np.array([], dtype=np.int64)]
        if not self.tags.top_users:
            with pytest.raises(ConfigError, match="cannot rank users"):
                recipe.top_users(sets, k=5)
            return
        n_users, n_items = data.n_users, data.n_items
        full = recipe.score(np.repeat(np.arange(n_users), n_items), np.tile(np.arange(n_items), n_users))
        full = full.reshape(n_users, n_items).astype(np.float64)
        seen = np.zeros((n_users, n_items), dtype=bool)
        matrix = data.matrix.tocoo()
        seen[matrix.row, matrix.col] = True
        k = n_users + 3  # every user who qualifies, then padding
        for exclude_seen in (True, False):
            result = recipe.top_users(sets, k=k, exclude_seen=exclude_seen)
            assert result.ids.shape == result.scores.shape == (len(sets), k)
            assert result.ids.dtype == np.int32 and result.scores.dtype == np.float32
            for row, items in enumerate(sets):
                items = np.unique(items[items >= 0])
                counted = ~seen[:, items] if exclude_seen else np.ones((n_users, len(items)), dtype=bool)
                count = counted.sum(axis=1)
                total = np.where(counted, full[:, items], 0.0).sum(axis=1)
                expected = np.where(count > 0, total / np.maximum(count, 1), -np.inf)
                qualify = np.flatnonzero(np.isfinite(expected))
                ids, scores = result.ids[row], result.scores[row]
                n = len(qualify)
                assert sorted(ids[:n].tolist()) == qualify.tolist(), (row, exclude_seen)
                assert (ids[n:] == -1).all() and np.isneginf(scores[n:]).all()
                np.testing.assert_allclose(scores[:n], expected[ids[:n]], rtol=1e-4, atol=1e-5)
                assert np.all(np.diff(scores[:n]) <= 1e-5 * max(1.0, float(np.abs(scores[:n]).max(initial=0))))
            if exclude_seen:
                assert not seen[result.ids[0][result.ids[0] >= 0], 0].any()
            np.testing.assert_array_equal(recipe.top_users(sets, k=4, exclude_seen=exclude_seen).ids,
                                          result.ids[:, :4])
        chosen = np.array([9, 2, 2, 30])
        subset = recipe.top_users(sets[:3], k=5, users=chosen)
        everyone = recipe.top_users(sets[:3], k=n_users)
        for row in range(3):
            valid = subset.ids[row][subset.ids[row] >= 0]
            assert set(valid.tolist()) <= {2, 9, 30}
            expected_ids = [u for u in everyone.ids[row].tolist() if u in {2, 9, 30}]
            assert sorted(valid.tolist()) == sorted(expected_ids)
        one = recipe.top_users(np.array([0, 7]), k=3)  # a 1-D array: one set per item
        np.testing.assert_array_equal(one.ids, recipe.top_users([[0], [7]], k=3).ids)
        with pytest.raises(ConfigError, match="k must be a positive integer"):
            recipe.top_users(sets, k=0)
        with pytest.raises(DataError, match="item set 1: item index"):
            recipe.top_users([[0], [n_items]], k=3)
        with pytest.raises(DataError, match="user index"):
            recipe.top_users(sets, k=3, users=[n_users])

    def test_unfitted_raises(self, tmp_path: Path) -> None:
        recipe = self.make_recipe()
        with pytest.raises(NotFittedError):
            recipe.recommend(np.arange(2), k=3)
        with pytest.raises(NotFittedError):
            recipe.recommend_from_history([np.array([0])], k=3)
        with pytest.raises(NotFittedError):
            recipe.save(tmp_path / "model")
        with pytest.raises(NotFittedError):
            recipe.top_users([np.array([0])], k=3)

    def test_params_round_trip(self) -> None:
        recipe = self.make_recipe()
        clone = recipe.clone()
        assert clone.get_params() == recipe.get_params() and clone is not recipe

    def test_quality_on_movielens_100k(self) -> None:
        from recsmith.evaluation.evaluate import evaluate_recipes

        train, test = ml100k_split(protocol="leave_last" if self.tags.sequential else "random")
        row = evaluate_recipes({self.recipe_name: self.make_recipe()}, train, test, metrics=["ndcg@10"])[0]
        assert row["ndcg@10"] >= self.min_ndcg, row

    # ------------------------------------------------------------------------------ contract v2
    def test_tags_are_declared_on_the_class(self) -> None:
        klass = recipe_class(self.recipe_name)
        assert isinstance(klass.tags, RecipeTags)
        for old in ("supports_similar_items", "supports_epoch_callback", "epoch_callback"):
            assert not hasattr(klass, old), f"{old} was replaced by tags and FitOptions"
        if klass.tags.iterative:
            assert "epochs" in klass.Params.model_fields, "an iterative recipe counts its epochs in an epochs param"

    def test_fit_options_are_never_saved(self, tmp_path: Path) -> None:
        """A model fitted with FitOptions(device="cpu", num_threads=1) saves and loads without them."""
        seen: list[tuple[int, int]] = []
        options = FitOptions(device="cpu", num_threads=1, progress=lambda done, total: seen.append((done, total)))
        recipe = self.fitted(options=options)
        assert seen and seen[-1][0] == seen[-1][1] and seen[0][0] == 0, seen
        assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False)), seen
        path = recipe.save(tmp_path / "model")

        def keys(value: Any) -> set[str]:
            if isinstance(value, dict):
                return set(value) | set().union(*(keys(v) for v in value.values()))
            if isinstance(value, list):
                return set().union(*(keys(v) for v in value))
            return set()

        meta = json.loads((path / "meta.json").read_text())
        assert not keys(meta) & {"device", "num_threads", "progress", "epoch_callback", "options"}, meta
        loaded = load_recipe(path)
        np.testing.assert_array_equal(loaded.recommend(np.arange(10), k=5).ids,
                                      recipe.recommend(np.arange(10), k=5).ids)

    def test_cuda_is_refused_where_it_cannot_run(self) -> None:
        """``device="cuda"`` trains on a GPU, or says clearly why it cannot: a CPU-only recipe, or no CUDA here
        (``auto`` then trains on the CPU)."""
        klass = recipe_class(self.recipe_name)
        if "cuda" not in klass.tags.devices:
            with pytest.raises(ConfigError, match="trains on the CPU only"):
                self.fitted(options=FitOptions(device="cuda"))
        elif not klass.cuda_available():
            with pytest.raises(ConfigError, match="no CUDA device"):
                self.fitted(options=FitOptions(device="cuda"))
        else:
            assert self.fitted(options=FitOptions(device="cuda")).recommend(np.arange(3), k=3).ids.shape == (3, 3)
        assert self.fitted(options=FitOptions(device="auto")).recommend(np.arange(3), k=3).ids.shape == (3, 3)

    def test_fit_takes_training_data_or_interactions(self) -> None:
        data = synthetic_interactions()
        from_matrix = self.make_recipe().fit(data).recommend(np.arange(12), k=6)
        from_data = self.make_recipe().fit(TrainingData.from_interactions(data)).recommend(np.arange(12), k=6)
        self.assert_same_recommendations(from_matrix, from_data)
        with pytest.raises(DataError, match="TrainingData or Interactions"):
            self.make_recipe().fit(data.matrix)  # type: ignore[arg-type]

    def test_score_matches_the_ranking(self) -> None:
        """``score(users, items)`` gives what ``recommend`` ranks by (rating recipes: the predicted rating)."""
        recipe = self.fitted()
        recs = recipe.recommend(np.arange(8), k=5, exclude_seen=False)
        users = np.repeat(np.arange(8), 5)
        valid = recs.ids.ravel() >= 0
        scores = recipe.score(users[valid], recs.ids.ravel()[valid])
        assert scores.dtype == np.float32 and scores.shape == (int(valid.sum()),)
        np.testing.assert_allclose(scores, recs.scores.ravel()[valid], rtol=1e-4, atol=1e-5)
        with pytest.raises(DataError):
            recipe.score(np.array([0, 1]), np.array([0]))
        unknown = recipe.score(np.array([-1, 0]), np.array([0, -1]))
        assert unknown.shape == (2,)
        if not self.tags.predicts_ratings:
            assert np.isnan(unknown).all()

    def test_recommend_for_queries(self) -> None:
        """A query of a training row scores as ``recommend`` for its user, a query without user as
        ``recommend_from_history``; repeated events sum their weights; -1 items are ignored."""
        data = synthetic_interactions()
        recipe = self.fitted(data)
        if self.tags.sequential:
            self._check_ordered_queries(recipe, data)
            return
        rows = recipe.train_matrix_
        own = [HistoryQuery.from_row(rows[u], user=u) for u in range(4)]
        np.testing.assert_array_equal(recipe.recommend_for_queries(own, k=5).ids,
                                      recipe.recommend(np.arange(4), k=5).ids)
        history = data.user_history(0)
        repeated = np.concatenate([history, history[:2], [-1]])
        query = HistoryQuery(repeated, np.ones(len(repeated), dtype=np.float32))
        weights = np.ones(len(history), dtype=np.float32)
        weights[:2] = 2.0
        expected = recipe.recommend_from_history(
            sp.csr_matrix((weights, history, [0, len(history)]), shape=(1, data.n_items)), k=5)
        mixed = recipe.recommend_for_queries([query, own[1]], k=5, exclude=[np.array([], dtype=np.int64)] * 2)
        np.testing.assert_array_equal(mixed.ids[0], expected.ids[0])
        np.testing.assert_array_equal(mixed.ids[1], recipe.recommend(np.array([1]), k=5).ids[0])
        with pytest.raises(DataError, match="query item index"):
            recipe.recommend_for_queries([HistoryQuery(np.array([data.n_items]))], k=3)

    @staticmethod
    def _check_ordered_queries(recipe: Recipe, data: Interactions) -> None:
        """Sequential recipes: a query of a training user's kept sequence (in order) scores as ``recommend``
        for the user, and as ``recommend_from_history`` of the same ordered list; -1 items are skipped; the
        order of a history is read (reversing long histories changes some rankings)."""
        sequences = [recipe.user_sequence(u) for u in range(6)]
        own = [HistoryQuery(items, timestamps=times, user=u) for u, (items, times) in enumerate(sequences)]
        # (not excluding the seen items: a kept sequence may be shorter than the training row recommend excludes)
        np.testing.assert_array_equal(recipe.recommend_for_queries(own, k=5, exclude_seen=False).ids,
                                      recipe.recommend(np.arange(6), k=5, exclude_seen=False).ids)
        lists = [items for items, _ in sequences]
        from_lists = recipe.recommend_from_history(lists, k=5)
        np.testing.assert_array_equal(recipe.recommend_for_queries([HistoryQuery(x) for x in lists], k=5).ids,
                                      from_lists.ids)
        gapped = [HistoryQuery(np.concatenate([[-1], x[:1], [-1], x[1:]])) for x in lists]
        np.testing.assert_array_equal(recipe.recommend_for_queries(gapped, k=5).ids, from_lists.ids)
        reversed_ids = recipe.recommend_from_history([x[::-1] for x in lists], k=5).ids
        assert (reversed_ids != from_lists.ids).any(), "reversing the histories changed no ranking"
        with pytest.raises(DataError, match="query item index"):
            recipe.recommend_for_queries([HistoryQuery(np.array([data.n_items]))], k=3)

    def test_epoch_callback_and_progress_of_iterative_recipes(self) -> None:
        if not self.tags.iterative:
            pytest.skip(f"{self.recipe_name} is not iterative (tags.iterative)")
        epochs = 3
        data = synthetic_interactions()
        seen: list[tuple[int, np.ndarray]] = []
        steps: list[tuple[int, int]] = []
        options = FitOptions(epoch_callback=lambda epoch, model: seen.append((epoch, model.recommend([0], k=3).ids)),
                             progress=lambda done, total: steps.append((done, total)))
        hooked = self.make_recipe(epochs=epochs).fit(data, options)
        assert [epoch for epoch, _ in seen] == list(range(1, epochs + 1))
        assert steps == [(e, epochs) for e in range(epochs + 1)]
        np.testing.assert_array_equal(seen[-1][1], hooked.recommend([0], k=3).ids)
        plain = self.make_recipe(epochs=epochs).fit(data)
        self.assert_same_recommendations(plain.recommend(np.arange(10), k=5), hooked.recommend(np.arange(10), k=5))


# ------------------------------------------------------------------------------ a real server for tests
def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until the server at ``url`` answers ``/ready`` with 200 (RuntimeError if it exits or takes longer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {process.stderr.read()[-3000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready in time")


def start_server(home: Path, *, workers: int = 2, env: dict[str, str] | None = None) -> tuple[str, subprocess.Popen]:
    """``recsmith serve`` in a child process; returns its URL once /ready answers 200."""
    port = free_port()
    environment = os.environ | {"RECSMITH_HOME": str(home), "RECSMITH_CAMPAIGN_SYNC_SECONDS": "0.5"} | (env or {})
    environment.pop("RECSMITH_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "recsmith", "serve", "--port", str(port), "--workers", str(workers)],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process)
    return url, process


def stop_server(process: subprocess.Popen) -> None:
    """Stop a server that :func:`start_server` started (SIGTERM, then SIGKILL after 20 s)."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
