"""TrainingData: the matrix exactly as Interactions builds it, the ordered event log, typed feature tables, and
the store's snapshot in one read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.data.schema import Schema
from recsmith.data.training import FeatureTable, TrainingData
from recsmith.errors import DataError
from recsmith.jobs.config import SolutionConfig
from recsmith.jobs.training import load_training_data
from recsmith.store.store import Store

DAY = 86_400


def events() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": ["a", "a", "b", "b", "a", "c", "a"],
        "item_id": ["x", "y", "x", "x", "x", "z", "y"],
        "timestamp": [3 * DAY, 1 * DAY, 2 * DAY, 2 * DAY, 1 * DAY, 5 * DAY, 3 * DAY],
        "type": ["like", "dislike", "view", "like", None, "view", "like"],
        "rating": [4.0, None, None, 5.0, 3.0, None, 2.0],
        "session": ["s1", None, "s2", "s2", "s1", None, "s3"],
        "device": ["m", None, "d", "d", "m", None, "m"],
    })


WEIGHTS = {"dislike": -1.0, "view": 0.0, "like": 2.0}


def build(**options: object) -> TrainingData:
    return TrainingData.from_frame(events(), timestamp="timestamp", event_type="type", value="rating",
                                   session="session", context=["device"], event_weights=WEIGHTS, **options)


def test_the_matrix_is_exactly_what_interactions_builds() -> None:
    for half_life in (None, 1.5):
        data = build(half_life_days=half_life)
        plain = Interactions.from_frame(events(), timestamp="timestamp", event_type="type", value="rating",
                                        event_weights=WEIGHTS, half_life_days=half_life)
        for name in ("data", "indices", "indptr"):
            np.testing.assert_array_equal(getattr(data.interactions.matrix, name), getattr(plain.matrix, name))
        np.testing.assert_array_equal(data.interactions.timestamps, plain.timestamps)
        np.testing.assert_array_equal(data.interactions.values, plain.values)
        assert data.user_vocab == plain.user_vocab and data.item_vocab == plain.item_vocab


def test_the_event_log_keeps_order_repeats_types_sessions_and_context() -> None:
    data = build()
    log = data.events
    users, items = data.user_vocab, data.item_vocab
    # views weigh 0: left out, as from the matrix; the rest by time, ties in input order
    assert [users.raw(u) for u in log.users] == ["a", "a", "b", "a", "a"]
    assert [items.raw(i) for i in log.items] == ["y", "x", "x", "x", "y"]
    assert log.timestamps.tolist() == [DAY, DAY, 2 * DAY, 3 * DAY, 3 * DAY]
    assert log.event_type_labels().tolist() == ["dislike", None, "like", "like", "like"]
    assert log.weights.tolist() == [-1.0, 1.0, 2.0, 2.0, 2.0]
    np.testing.assert_array_equal(log.values, np.array([np.nan, 3.0, 5.0, 4.0, 2.0], dtype=np.float32))
    assert [None if s < 0 else log.session_ids[s] for s in log.sessions] == [None, "s1", "s2", "s1", "s3"]
    assert log.context_records() == [{}, {"device": "m"}, {"device": "d"}, {"device": "m"}, {"device": "m"}]
    assert data.has_event_log
    # a pair's events sum to its matrix entry
    summed = sp.csr_matrix((log.weights, (log.users, log.items)), shape=data.interactions.matrix.shape)
    np.testing.assert_allclose(summed.toarray(), data.interactions.matrix.toarray())
    indptr, positions = log.by_user(data.n_users)
    a = users.index("a")
    assert log.timestamps[positions[indptr[a]:indptr[a + 1]]].tolist() == [DAY, DAY, 3 * DAY, 3 * DAY]


def test_decayed_weights_in_the_log_match_the_matrix() -> None:
    data = build(half_life_days=1.0)
    log = data.events
    summed = sp.csr_matrix((log.weights, (log.users, log.items)), shape=data.interactions.matrix.shape)
    np.testing.assert_allclose(summed.toarray(), data.interactions.matrix.toarray(), rtol=1e-6)
    assert log.weights[0] == pytest.approx(-0.25)  # a dislike two days before the newest kept event


def test_without_timestamps_the_log_is_in_input_order() -> None:
    frame = pd.DataFrame({"user_id": ["u", "v", "u"], "item_id": ["i", "i", "j"]})
    log = TrainingData.from_frame(frame).events
    assert log.timestamps is None and log.event_types is None and log.sessions is None
    assert log.users.tolist() == [0, 1, 0] and log.items.tolist() == [0, 0, 1]


def test_a_bare_matrix_gets_a_log_of_its_pairs() -> None:
    matrix = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=np.float32))
    wrapped = TrainingData.wrap(Interactions.from_csr(matrix, timestamps=np.array([30, 10, 20])))
    assert not wrapped.has_event_log
    log = wrapped.events
    assert list(zip(log.users.tolist(), log.items.tolist(), strict=True)) == [(0, 2), (1, 1), (0, 0)]
    assert log.weights.tolist() == [2.0, 3.0, 1.0] and log.timestamps.tolist() == [10, 20, 30]
    assert len(wrapped.item_features) == 0 and wrapped.item_features.n_rows == 3
    with pytest.raises(DataError, match="TrainingData or Interactions"):
        TrainingData.wrap(matrix)


ITEM_SCHEMA = {"type": "record", "name": "Items", "fields": [
    {"name": "ITEM_ID", "type": "string"},
    {"name": "GENRES", "type": ["null", "string"], "categorical": True},
    {"name": "STUDIO", "type": ["null", "string"]},
    {"name": "YEAR", "type": ["null", "int"]},
    {"name": "ADULT", "type": ["null", "boolean"]},
    {"name": "PLOT", "type": ["null", "string"], "textual": True},
]}


def test_feature_tables_are_typed_by_the_schema() -> None:
    items = pd.DataFrame({
        "item_id": ["x", "y", "z", "unknown"],
        "GENRES": ["Drama|War", "Comedy", None, "Horror"],
        "STUDIO": ["A|B", "C", "C", "D"],
        "YEAR": [1999, None, 2001, 1980],
        "ADULT": [True, False, None, True],
        "PLOT": ["a war", None, "a zoo", "scary"],
    })
    data = build(items=items, item_schema=ITEM_SCHEMA)
    table = data.item_features
    rows = [data.item_vocab.index(raw) for raw in ("x", "y", "z")]
    assert table.names == ["GENRES", "STUDIO", "YEAR", "ADULT", "PLOT"] and table.present.all()
    genres = table["GENRES"]
    assert genres.kind == "categorical" and genres.multi_valued
    assert genres.categories == ("Comedy", "Drama", "War")  # the unknown item's Horror is left out
    assert genres.values[rows].toarray().tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0]]
    studio = table["STUDIO"]
    assert studio.kind == "categorical" and not studio.multi_valued and studio.categories == ("A|B", "C")
    np.testing.assert_array_equal(table["YEAR"].values[rows], [1999.0, np.nan, 2001.0])
    np.testing.assert_array_equal(table["ADULT"].values[rows], [1.0, 0.0, np.nan])
    assert table["PLOT"].kind == "textual" and table["PLOT"].values[rows].tolist() == ["a war", None, "a zoo"]
    assert [f.name for f in table.of_kind("numerical")] == ["YEAR", "ADULT"]
    with pytest.raises(KeyError, match="no feature 'NOPE'"):
        table["NOPE"]


def test_feature_types_are_inferred_without_a_schema() -> None:
    users = pd.DataFrame({"user_id": ["a", "b"], "AGE": [31, None], "TAGS": ["x|y", "y"], "VIP": [True, False]})
    table = build(users=users).user_features
    assert [(f.name, f.kind) for f in table] == [("AGE", "numerical"), ("TAGS", "categorical"), ("VIP", "numerical")]
    assert table["TAGS"].categories == ("x", "y") and table["TAGS"].multi_valued
    assert not table.present[build().user_vocab.index("c")]  # c has no record


def test_a_numerical_field_that_is_not_a_number_is_named() -> None:
    schema = Schema.from_json(ITEM_SCHEMA)
    with pytest.raises(DataError, match="feature YEAR is numerical"):
        FeatureTable.from_records({"x": {"YEAR": "old"}}, build().item_vocab, schema)


def test_per_event_arrays_must_match() -> None:
    with pytest.raises(DataError, match="session_ids has 1 entries"):
        TrainingData.from_arrays(np.array(["a", "b"]), np.array(["x", "y"]), session_ids=np.array(["s"]))


INTERACTIONS_SCHEMA = {"type": "record", "name": "Interactions", "fields": [
    {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
    {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": ["null", "string"]},
    {"name": "EVENT_VALUE", "type": ["null", "float"]}, {"name": "DEVICE", "type": ["null", "string"]}]}


def test_the_store_snapshot_reads_the_interactions_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    group = store.create_dataset_group("g")
    frame = pd.DataFrame({"USER_ID": ["u0", "u1", "u0"], "ITEM_ID": ["i0", "i1", "i2"], "TIMESTAMP": [1002, 1001, 1000],
                          "EVENT_TYPE": ["click", None, "buy"], "EVENT_VALUE": [1.5, None, 2.0],
                          "DEVICE": ["ios", None, "web"]})
    store.write_interactions(group.id, frame, schema=INTERACTIONS_SCHEMA)
    store.write_items(group.id, pd.DataFrame({"ITEM_ID": ["i0", "i2"], "GENRES": ["a|b", "b"]}),
                      schema={"type": "record", "name": "Items", "fields": [
                          {"name": "ITEM_ID", "type": "string"},
                          {"name": "GENRES", "type": ["null", "string"], "categorical": True}]})
    store.record_events(group.id, [{"user_id": "u1", "item_id": "i0", "timestamp": 1003, "event_id": "e1",
                                    "event_type": "click", "session_id": "s-9", "context": {"DEVICE": "tv"}}])
    reads = []
    real = store.read_interactions
    monkeypatch.setattr(store, "read_interactions", lambda *a, **k: reads.append(1) or real(*a, **k))
    data = load_training_data(store, "g", SolutionConfig(event_weights={"buy": 3.0}))
    assert reads == [1]
    log = data.events
    assert log.timestamps.tolist() == [1000, 1001, 1002, 1003]
    assert [data.item_vocab.raw(i) for i in log.items] == ["i2", "i1", "i0", "i0"]
    assert log.weights.tolist() == [3.0, 1.0, 1.0, 1.0]
    assert [None if s < 0 else log.session_ids[s] for s in log.sessions] == [None, None, None, "s-9"]
    assert [json.loads(c) if c else None for c in log.context] == [{"DEVICE": "web"}, None, {"DEVICE": "ios"},
                                                                   {"DEVICE": "tv"}]
    genres = data.item_features["GENRES"]
    assert genres.categories == ("a", "b")
    assert genres.values[data.item_vocab.indices(["i0", "i1", "i2"])].toarray().tolist() == [[1, 1], [0, 0], [0, 1]]
    bare = load_training_data(store, "g", item_features=False, context=False)
    assert len(bare.item_features) == 0 and bare.events.context is None
    with pytest.raises(DataError, match="has no interactions"):
        load_training_data(store, store.create_dataset_group("empty").name)
