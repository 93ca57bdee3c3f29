"""gru4rec: the contract, numpy serving against torch, sessions, order, artifacts, quality on ml-100k."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.data.training import EventLog, TrainingData
from recsmith.recipes import create
from recsmith.recipes.gru4rec import current_session, session_starts
from recsmith.recipes.query import HistoryQuery
from recsmith.testing import RecipeContract, ml100k_split, synthetic_interactions

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

FAST = {"epochs": 3, "factors": 16, "batch_size": 16, "lr": 0.01, "patience": 0,
        "session_gap_minutes": 1e7}  # synthetic events are days apart: one session per user


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


class TestGRU4RecContract(RecipeContract):
    recipe_name = "gru4rec"
    params = FAST
    min_ndcg = 0.035  # ml-100k leave-last: popularity 0.030, item-knn 0.037 (benchmarks/gru4rec_check.py)

    @pytest.mark.slow
    def test_quality_on_movielens_100k(self) -> None:
        super().test_quality_on_movielens_100k()


def chains(n_users: int = 60, n_items: int = 30, length: int = 12, seed: int = 0) -> Interactions:
    """Users walk the items in a circle, one step a minute (item i, then i + 1, ...): the next item follows
    from the last one, not from the bag. Item indices are the items' numbers."""
    rng = np.random.default_rng(seed)
    rows, cols, stamps = [], [], []
    for user in range(n_users):
        start = int(rng.integers(n_items))
        items = (start + np.arange(length)) % n_items
        for step in np.argsort(items):  # CSR order: by item index
            rows.append(user)
            cols.append(int(items[step]))
            stamps.append(1_700_000_000 + 60 * int(step))
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    return Interactions.from_csr(matrix, timestamps=np.asarray(stamps, dtype=np.int64))


@pytest.fixture(scope="module")
def chain_data() -> Interactions:
    return chains()


@pytest.fixture(scope="module", params=["ce", "bpr-max"])
def chain_model(request: pytest.FixtureRequest, chain_data: Interactions):
    torch.set_num_threads(1)
    return create("gru4rec", loss=request.param, n_negatives=8, epochs=15, factors=32, batch_size=16,
                  lr=0.02, patience=0, val_fraction=0.0).fit(chain_data)


# ------------------------------------------------------------------------------ sessions
def test_session_starts_by_id_gap_or_user() -> None:
    users = np.array([0, 0, 0, 0, 1, 1])
    times = np.array([0, 60, 5000, 5060, 0, 99_999])
    assert session_starts(users).tolist() == [True, False, False, False, True, False]
    assert session_starts(users, times, gap_seconds=1800).tolist() == [True, False, True, False, True, True]
    ids = np.array([3, 3, 3, 4, 5, 5])  # ids win over the gap; a new id starts a session
    assert session_starts(users, times, ids, 1800).tolist() == [True, False, False, True, True, False]
    untracked = np.array([-1, -1, -1, 4, 5, 5])  # events without an id fall back to the gap
    assert session_starts(users, times, untracked, 1800).tolist() == [True, False, True, True, True, False]


def test_current_session_of_a_query() -> None:
    stamps = np.array([0, 60, 9000, 9060])
    query = HistoryQuery(np.array([1, 2, 3, -1]), timestamps=stamps)
    assert current_session(query, 1800, None).tolist() == [3]  # after the last gap, unknown items dropped
    assert current_session(query, None, None).tolist() == [1, 2, 3]
    assert current_session(query, None, 2).tolist() == [2, 3]
    with_session = HistoryQuery(np.array([1, 2, 3]), timestamps=np.array([0, 60, 9000]), session_items=[2, 7])
    assert current_session(with_session, 1800, None).tolist() == [2, 7]


def test_recommendations_read_only_the_current_session(chain_data: Interactions) -> None:
    model = create("gru4rec", **FAST | {"session_gap_minutes": 30.0}).fit(chain_data)
    hour = 3600
    split = HistoryQuery(np.array([0, 1, 2, 10, 11]), timestamps=np.array([0, 60, 120, 5 * hour, 5 * hour + 60]))
    alone = HistoryQuery(np.array([10, 11]))
    given = HistoryQuery(np.array([0, 1, 2]), session_items=np.array([10, 11]))
    whole = HistoryQuery(np.array([0, 1, 2, 10, 11]))
    recs = model.recommend_for_queries([split, alone, given, whole], k=5, exclude_seen=False)
    np.testing.assert_allclose(recs.scores[0], recs.scores[1], rtol=1e-5)
    np.testing.assert_allclose(recs.scores[2], recs.scores[1], rtol=1e-5)
    assert not np.allclose(recs.scores[3], recs.scores[1])


def test_training_users_start_from_their_last_session_id() -> None:
    """With session ids in the log, recommend(users) reads the user's last session (by id), not the gap."""
    data = chains(n_users=20, length=8)
    base = TrainingData(data).events
    indptr, positions = base.by_user(data.n_users)
    rank = np.empty(len(base), dtype=np.int64)  # each event's place in its user's sequence
    rank[positions] = np.arange(len(base)) - np.repeat(indptr[:-1], np.diff(indptr))
    codes = (2 * base.users + (rank >= 5)).astype(np.int32)  # per user: events 0-4, then 5-7
    log = EventLog(base.users, base.items, base.weights, base.timestamps, sessions=codes,
                   session_ids=np.array([str(c) for c in range(2 * data.n_users)], dtype=object))
    model = create("gru4rec", **FAST).fit(TrainingData(data, log))
    user = 3
    last = model.user_sequence(user)[0][5:]
    ours = model.recommend(np.array([user]), k=5, exclude_seen=False)
    theirs = model.recommend_for_queries([HistoryQuery(last)], k=5, exclude_seen=False)
    np.testing.assert_array_equal(ours.ids, theirs.ids)
    np.testing.assert_allclose(ours.scores, theirs.scores, rtol=1e-5)


# ------------------------------------------------------------------------------ the forward
@pytest.mark.parametrize("layers", [1, 2])
def test_numpy_forward_matches_torch(layers: int) -> None:
    data = synthetic_interactions()
    model = create("gru4rec", **FAST | {"layers": layers, "dropout": 0.2}).fit(data)
    users = np.arange(20)
    recs = model.recommend(users, k=data.n_items, exclude_seen=False)
    pair_users = np.repeat(users, data.n_items)
    logits = model.torch_logits(pair_users, recs.ids.ravel().astype(np.int64))
    np.testing.assert_allclose(recs.scores.ravel(), logits, atol=1e-4)


def test_order_of_the_history_changes_the_ranking(chain_model, chain_data: Interactions) -> None:
    forward = HistoryQuery(np.array([3, 4, 5, 6]))
    backward = HistoryQuery(np.array([6, 5, 4, 3]))
    recs = chain_model.recommend_for_queries([forward, backward], k=3)
    assert recs.ids[0, 0] == 7, recs.ids  # the chain goes on
    assert recs.ids[1, 0] != 7 and set(recs.ids[0].tolist()) != set(recs.ids[1].tolist())


def test_chain_next_item_for_training_users(chain_model, chain_data: Interactions) -> None:
    recs = chain_model.recommend(np.arange(chain_data.n_users), k=1)
    last = np.array([chain_model.user_sequence(u)[0][-1] for u in range(chain_data.n_users)])
    assert float(np.mean(recs.ids[:, 0] == (last + 1) % chain_data.n_items)) >= 0.9


# ------------------------------------------------------------------------------ artifacts
def test_serving_loads_and_ranks_without_torch(tmp_path: Path) -> None:
    data = synthetic_interactions()
    model = create("gru4rec", **FAST).fit(data)
    path = model.save(tmp_path / "model")
    expected = model.recommend_for_queries([HistoryQuery(np.array([4, 9, 2]))], k=5)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # torch out of reach
        import numpy as np
        from recsmith.recipes import load_recipe
        from recsmith.recipes.query import HistoryQuery
        model = load_recipe({str(path)!r}, mmap=True)
        recs = model.recommend_for_queries([HistoryQuery(np.array([4, 9, 2]))], k=5)
        print(" ".join(map(str, recs.ids[0].tolist())))
        print(" ".join(repr(float(s)) for s in recs.scores[0]))
        print(" ".join(map(str, model.recommend(np.arange(3), k=2).ids.ravel().tolist())))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    ids, scores, users = done.stdout.strip().splitlines()
    assert [int(x) for x in ids.split()] == expected.ids[0].tolist()
    np.testing.assert_allclose([float(x) for x in scores.split()], expected.scores[0], rtol=1e-6)
    assert [int(x) for x in users.split()] == model.recommend(np.arange(3), k=2).ids.ravel().tolist()


def test_quantized_tables_keep_the_ranking(chain_data: Interactions, tmp_path: Path) -> None:
    params = FAST | {"epochs": 8, "factors": 32, "lr": 0.02}
    plain = create("gru4rec", **params).fit(chain_data)
    small = create("gru4rec", **params | {"quantize": True}).fit(chain_data)
    assert small.arrays_["int8_in_proj"].dtype == np.int8 and "out_item" not in small.arrays_
    users = np.arange(chain_data.n_users)
    a, b = plain.recommend(users, k=5), small.recommend(users, k=5)
    shared = np.mean([len(set(x) & set(y)) / 5 for x, y in zip(a.ids.tolist(), b.ids.tolist(), strict=True)])
    assert shared >= 0.8
    loaded = type(small).load(small.save(tmp_path / "q"))
    np.testing.assert_array_equal(loaded.recommend(users, k=5).ids, b.ids)


def test_too_short_sessions_are_refused_clearly() -> None:
    frame = pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"]})
    with pytest.raises(Exception, match="two or more events"):
        create("gru4rec", **FAST).fit(Interactions.from_frame(frame, user="user", item="item"))


# ------------------------------------------------------------------------------ quality
@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ce", "bpr-max"])
def test_both_losses_beat_popularity_on_movielens_leave_last(loss: str) -> None:
    from recsmith.evaluation.evaluate import evaluate_recipes

    train, test = ml100k_split(protocol="leave_last")
    recipes = {"popularity": create("popularity"),
               "gru4rec": create("gru4rec", loss=loss, n_negatives=128 if loss == "bpr-max" else 0,
                                      epochs=8 if loss == "bpr-max" else 4)}
    rows = {row["recipe"]: row for row in evaluate_recipes(recipes, train, test, metrics=["ndcg@10"])}
    assert rows["gru4rec"]["ndcg@10"] > 1.2 * rows["popularity"]["ndcg@10"], rows
