"""session-knn (V-SKNN): the shared contract, session boundaries, position weighting, order, artifacts and
quality against popularity on real session data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError
from recsmith.recipes import HistoryQuery, Recipe, create, recipe_class
from recsmith.recipes.session_knn import position_weights
from recsmith.testing import RecipeContract, datasets_dir, synthetic_interactions

DAY = 86_400


class TestSessionKNNContract(RecipeContract):
    """The default V-SKNN (linear position weights): the shared contract, whose sequential branch checks that
    the order of a query is read."""

    recipe_name = "session-knn"
    min_ndcg = 0.055  # measured 0.0675; popularity 0.030, item-knn 0.037 on this split


class TestSessionKNNUnweightedContract(RecipeContract):
    """With ``weighting="same"`` (plain SKNN) the order within the session does not matter: the whole shared
    contract applies, its ``test_recommend_for_queries`` included."""

    recipe_name = "session-knn"
    params = {"weighting": "same", "similarity": "jaccard", "neighbors": 50}
    min_ndcg = 0.06  # measured 0.0746 (MovieLens ratings are entered in bulk: their order says little)

    def test_recommend_for_queries(self) -> None:
        """Same weights read a session as a set: a training user's query scores as ``recommend``, and a
        history reversed, with repeats or with -1 items scores as the plain list (a sequential contract that
        asks reversal to change a ranking does not apply to this setting)."""
        from recsmith.errors import DataError

        data = synthetic_interactions()
        recipe = self.fitted(data)
        own = [HistoryQuery(items, timestamps=times, user=u)
               for u, (items, times) in ((u, recipe.user_sequence(u)) for u in range(6))]
        np.testing.assert_array_equal(recipe.recommend_for_queries(own, k=5, exclude_seen=False).ids,
                                      recipe.recommend(np.arange(6), k=5, exclude_seen=False).ids)
        lists = [data.user_history(u) for u in range(6)]
        plain = recipe.recommend_from_history(lists, k=5, exclude_seen=False)
        variants = [[x[::-1] for x in lists], [np.concatenate([[-1], x, x[:2]]) for x in lists]]
        for variant in variants:
            other = recipe.recommend_for_queries([HistoryQuery(x) for x in variant], k=5, exclude_seen=False)
            np.testing.assert_array_equal(other.ids, plain.ids)
            np.testing.assert_allclose(other.scores, plain.scores, rtol=1e-6)
        with pytest.raises(DataError, match="query item index"):
            recipe.recommend_for_queries([HistoryQuery(np.array([data.n_items]))], k=3)


# ------------------------------------------------------------------------------------------ helpers
def frame_data(rows: list[tuple[str, str, int]], session: bool = False) -> TrainingData:
    """TrainingData from (user-or-session, item, time) rows; ``session`` also passes the first column as
    session ids."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    if session:
        frame["session_id"] = frame["user_id"]
    return TrainingData.from_frame(frame, timestamp="timestamp", session="session_id" if session else None)


def index(data: TrainingData, *raw: str) -> np.ndarray:
    return np.array([data.item_vocab.index(r) for r in raw], dtype=np.int64)


def top(recipe: Recipe, items: np.ndarray, k: int = 3, **query: object) -> list[int]:
    recs = recipe.recommend_for_queries([HistoryQuery(items, **query)], k=k, exclude_seen=True)
    return [int(i) for i, s in zip(recs.ids[0], recs.scores[0], strict=True) if i >= 0 and s > 0]


# ------------------------------------------------------------------------------------------ sessions
def test_sessions_split_at_the_inactivity_gap() -> None:
    # one user, two visits two days apart: a-b then c-d. Inside a visit the items co-occur, across not.
    t = 1_700_000_000
    rows = [("u", "a", t), ("u", "b", t + 60), ("u", "c", t + 2 * DAY), ("u", "d", t + 2 * DAY + 60),
            ("v", "x", t), ("v", "y", t + 60)]
    data = frame_data(rows)
    recipe = create("session-knn").fit(data)
    assert recipe.n_sessions == 3
    a, b, c, d = index(data, "a", "b", "c", "d")
    assert top(recipe, np.array([a])) == [b]
    assert top(recipe, np.array([c])) == [d]
    # one session per user without a gap: everything the user saw co-occurs
    wide = create("session-knn", session_gap_minutes=10_000.0).fit(data)
    assert wide.n_sessions == 2
    assert set(top(wide, np.array([a]))) == {b, c, d}


def test_session_ids_of_the_log_win_over_gaps() -> None:
    t = 1_700_000_000
    # sessions s1 = a b, s2 = a c, with no gap between them, each its own session id
    rows = [("s1", "a", t), ("s1", "b", t + 1), ("s2", "a", t + 2), ("s2", "c", t + 3)]
    frame = pd.DataFrame(rows, columns=["session_id", "item_id", "timestamp"])
    frame["user_id"] = "same-user"
    data = TrainingData.from_frame(frame, timestamp="timestamp", session="session_id")
    recipe = create("session-knn").fit(data)
    assert recipe.n_sessions == 2


def test_without_timestamps_one_session_per_user() -> None:
    dense = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0]], dtype=np.float32)
    data = TrainingData.from_interactions(Interactions.from_csr(sp.csr_matrix(dense)))
    recipe = create("session-knn").fit(data)
    assert recipe.n_sessions == 3
    assert top(recipe, np.array([0]), k=3) == [1]
    assert top(recipe, np.array([2]), k=3) == [3]


def test_the_query_session_starts_after_its_last_gap() -> None:
    t = 1_700_000_000
    rows = [("s1", "a", t), ("s1", "b", t + 1), ("s2", "c", t + 2), ("s2", "d", t + 3)]
    data = frame_data(rows, session=True)
    recipe = create("session-knn").fit(data)
    a, b, c, d = index(data, "a", "b", "c", "d")
    old_then_new = np.array([a, c])
    # no times: both items are the session, both neighbours score
    assert set(top(recipe, old_then_new)) == {b, d}
    # a day between them: only c is the current session
    assert top(recipe, old_then_new, timestamps=np.array([t, t + DAY])) == [d]
    # session_items given: they are the session
    assert top(recipe, old_then_new, session_items=np.array([a])) == [b]
    # max_len: only the last item is read
    assert top(create("session-knn", max_len=1).fit(data), old_then_new) == [d]


# ------------------------------------------------------------------------------------------ weighting
def test_position_weights_favour_the_latest_items() -> None:
    for scheme in ("linear", "div", "log", "quadratic"):
        w = position_weights(5, scheme)
        assert np.all(np.diff(w) > 0), (scheme, w)
    np.testing.assert_allclose(position_weights(4, "linear"), [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(position_weights(3, "same"), [1, 1, 1])


def order_data() -> tuple[TrainingData, dict[str, int]]:
    """Past sessions a-x and b-y. A query a, b (b last) must favour y; b, a must favour x."""
    t = 1_700_000_000
    rows = [("s1", "a", t), ("s1", "x", t + 1), ("s3", "b", t + 4), ("s3", "y", t + 5)]
    data = frame_data(rows, session=True)
    return data, {r: int(data.item_vocab.index(r)) for r in ("a", "b", "x", "y")}


def test_the_last_item_of_the_session_matters_more() -> None:
    data, i = order_data()
    recipe = create("session-knn").fit(data)  # linear weights
    recs = recipe.recommend_for_queries([HistoryQuery(np.array([i["a"], i["b"]])),
                                         HistoryQuery(np.array([i["b"], i["a"]]))], k=2)
    assert recs.ids[0].tolist() == [i["y"], i["x"]]  # b is last: its neighbour wins
    assert recs.ids[1].tolist() == [i["x"], i["y"]]
    assert recs.scores[0, 0] > recs.scores[0, 1] > 0


def test_order_does_not_matter_with_same_weights() -> None:
    data, i = order_data()
    recipe = create("session-knn", weighting="same").fit(data)
    forward = recipe.recommend_for_queries([HistoryQuery(np.array([i["a"], i["b"]]))], k=2)
    backward = recipe.recommend_for_queries([HistoryQuery(np.array([i["b"], i["a"]]))], k=2)
    np.testing.assert_array_equal(forward.ids, backward.ids)
    np.testing.assert_allclose(forward.scores, backward.scores)
    # ordered lists through recommend_from_history read the order too
    lists = create("session-knn").fit(data).recommend_from_history([[i["a"], i["b"]], [i["b"], i["a"]]], k=1)
    assert lists.ids[:, 0].tolist() == [i["y"], i["x"]]


def test_a_revisited_item_counts_at_its_last_position() -> None:
    data, i = order_data()
    recipe = create("session-knn").fit(data)
    recs = recipe.recommend_for_queries([HistoryQuery(np.array([i["a"], i["b"], i["a"]]))], k=2)
    assert recs.ids[0].tolist() == [i["x"], i["y"]]


def test_similarities_are_cosine_and_jaccard() -> None:
    data, i = order_data()
    # query a (one item, weight 1): the a-x session has cosine 1/sqrt(2) and Jaccard 1/2
    cosine = create("session-knn", similarity="cosine").fit(data)
    jaccard = create("session-knn", similarity="jaccard").fit(data)
    x = i["x"]
    assert cosine.recommend_for_queries([HistoryQuery([i["a"]])], k=1).ids[0, 0] == x
    np.testing.assert_allclose(cosine.recommend_for_queries([HistoryQuery([i["a"]])], k=1).scores[0, 0],
                               1 / np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(jaccard.recommend_for_queries([HistoryQuery([i["a"]])], k=1).scores[0, 0],
                               0.5, rtol=1e-6)


def test_neighbors_and_sample_size_limit_the_sessions() -> None:
    t = 1_700_000_000
    # three sessions share a: the oldest holds o, the middle one m and m2, the newest n
    rows = [("s0", "a", t), ("s0", "o", t + 1),
            ("s1", "a", t + 10), ("s1", "m", t + 11), ("s1", "m2", t + 12),
            ("s2", "a", t + 20), ("s2", "n", t + 21)]
    data = frame_data(rows, session=True)
    a, o, m, m2, n = index(data, "a", "o", "m", "m2", "n")
    assert set(top(create("session-knn").fit(data), np.array([a]), k=5)) == {o, m, m2, n}
    # only the two most recent candidates: the oldest session (with o) is never compared
    assert set(top(create("session-knn", sample_size=2).fit(data), np.array([a]), k=5)) == {m, m2, n}
    # one neighbour: the most similar session (s0 and s2 tie at 1/sqrt(2): the most recent wins)
    assert top(create("session-knn", neighbors=1).fit(data), np.array([a]), k=5) == [n]


def test_bad_params_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="weighting"):
        create("session-knn", weighting="cubic")
    with pytest.raises(ConfigError, match="neighbors"):
        create("session-knn", neighbors=0)
    tags = recipe_class("session-knn").tags
    assert tags.sequential and tags.deterministic and not tags.uses_event_weights


def test_save_load_keeps_sessions_and_order(tmp_path: Path) -> None:
    data, i = order_data()
    recipe = create("session-knn", neighbors=5).fit(data)
    path = recipe.save(tmp_path / "m")
    names = {p.stem for p in (path / "arrays").iterdir()}
    assert {"state_session_indptr", "state_index_sessions", "state_seq_items"} <= names
    queries = [HistoryQuery(np.array([i["a"], i["b"]])), HistoryQuery(np.array([i["b"], i["a"]]))]
    for mmap in (False, True):
        loaded = Recipe.load(path, mmap=mmap)
        assert loaded.n_sessions == recipe.n_sessions
        before = recipe.recommend_for_queries(queries, k=3, exclude_seen=False)
        after = loaded.recommend_for_queries(queries, k=3, exclude_seen=False)
        np.testing.assert_array_equal(before.ids, after.ids)
        np.testing.assert_allclose(before.scores, after.scores)


def test_a_batch_scores_as_its_queries_one_by_one() -> None:
    data = synthetic_interactions(n_users=80, n_items=30, density=0.3)
    recipe = create("session-knn", session_gap_minutes=100_000.0, neighbors=7, sample_size=20).fit(data)
    rng = np.random.default_rng(3)
    queries = [HistoryQuery(rng.integers(0, 30, size=rng.integers(1, 6))) for _ in range(12)]
    together = recipe.recommend_for_queries(queries, k=6, exclude_seen=False)
    for row, query in enumerate(queries):
        alone = recipe.recommend_for_queries([query], k=6, exclude_seen=False)
        np.testing.assert_allclose(alone.scores[0], together.scores[row], rtol=1e-6)


# ------------------------------------------------------------------------------------------ quality
def diginetica() -> tuple[TrainingData, list[HistoryQuery], np.ndarray]:
    """The Diginetica sample split as ``benchmarks/sessions.py`` splits it (the last 7 days' sessions)."""
    from recsmith.evaluation.sessions import read_diginetica, split_sessions

    path = datasets_dir() / "diginetica-sample" / "sample_train-item-views.csv"
    if not path.is_file():
        pytest.skip(f"the Diginetica sample is absent ({path})")
    split = split_sessions(read_diginetica(path), 7)
    return split.train, split.queries, split.targets


def hit_rate(recipe: Recipe, queries: list[HistoryQuery], targets: np.ndarray, k: int = 20) -> float:
    recs = recipe.recommend_for_queries(queries, k=k, exclude_seen=False)
    return float((recs.ids == targets[:, None]).any(axis=1).mean())


def test_beats_popularity_on_diginetica_sessions() -> None:
    data, queries, targets = diginetica()
    assert len(queries) == 116
    sknn = hit_rate(create("session-knn").fit(data), queries, targets)
    popular = hit_rate(create("popularity").fit(data), queries, targets)
    assert sknn > popular + 0.2, (sknn, popular)  # measured 0.44 against 0.03


def test_beats_popularity_on_movielens_leave_last() -> None:
    from recsmith.evaluation.evaluate import evaluate_recipes
    from recsmith.testing import ml100k_split

    train, test = ml100k_split(protocol="leave_last")
    rows = evaluate_recipes({"session-knn": create("session-knn"), "popularity": create("popularity")},
                            train, test, metrics=["hit_rate@10"])
    scores = {row["recipe"]: row["hit_rate@10"] for row in rows}
    assert scores["session-knn"] > scores["popularity"], scores
