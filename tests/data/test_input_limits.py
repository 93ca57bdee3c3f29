"""Input limits below HTTP: filter expressions and values, the byte-bounded filter cache, non-finite numbers and
NUL characters in imports and events, and training over bad stored rows."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import resource
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsmith.data.filters import (
    FILTER_MAX_DEPTH,
    FILTER_MAX_EXPRESSION_LENGTH,
    FILTER_MAX_NUMBER_DIGITS,
    FILTER_MAX_PARAMETERS,
    FILTER_MAX_VALUE_LENGTH,
    FILTER_MAX_VALUES,
    FilterCache,
    ItemCatalog,
    check_filter_values,
    compile_filter,
    parse_filter,
)
from recsmith.data.readers import read_dataset
from recsmith.data.schema import Schema
from recsmith.data.training import SKIPPED_NON_FINITE, TrainingData
from recsmith.datasets.synthetic import synthetic_frame
from recsmith.errors import DataError, FilterError
from recsmith.jobs.events import event_rows
from recsmith.jobs.training import load_training_data, train_solution_version
from recsmith.serving.campaign import CampaignRuntime
from recsmith.settings import Settings
from recsmith.store.store import Store

GENRE_FILTER = "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)"


# ------------------------------------------------------------------------------------------ expressions
def test_a_number_of_5000_digits_is_a_filter_error_naming_the_position() -> None:
    expression = "INCLUDE ItemID WHERE Items.PRICE < " + "9" * 5000
    with pytest.raises(FilterError) as info:
        parse_filter(expression)
    assert info.value.position == expression.index("9")
    assert "5,000 digits" in str(info.value) and str(FILTER_MAX_NUMBER_DIGITS) in str(info.value)
    assert len(str(info.value)) < 400  # the part around the position, not 5,000 digits


def test_a_number_at_the_digit_limit_parses_and_one_that_overflows_does_not() -> None:
    digits = "1" * FILTER_MAX_NUMBER_DIGITS
    assert parse_filter(f"INCLUDE ItemID WHERE Items.PRICE < {digits}").expressions[0].where.values[0].value \
        == int(digits)
    with pytest.raises(FilterError, match="out of range") as info:
        parse_filter("INCLUDE ItemID WHERE Items.PRICE < 1e400")
    assert info.value.position == len("INCLUDE ItemID WHERE Items.PRICE < ")


def test_400_nested_parentheses_are_a_filter_error_not_a_recursion_error() -> None:
    expression = "INCLUDE ItemID WHERE " + "(" * 400 + 'Items.GENRE IN ("a")' + ")" * 400
    with pytest.raises(FilterError, match=f"more than {FILTER_MAX_DEPTH} levels") as info:
        parse_filter(expression)
    assert info.value.position == len("INCLUDE ItemID WHERE ") + FILTER_MAX_DEPTH


def test_nesting_up_to_the_limit_parses_and_evaluates() -> None:
    depth = FILTER_MAX_DEPTH
    expression = "INCLUDE ItemID WHERE " + "(" * depth + 'Items.GENRE IN ("a")' + ")" * depth
    catalog = ItemCatalog(["x", "y"], {"x": {"GENRE": "a"}, "y": {"GENRE": "b"}})
    assert compile_filter(parse_filter(expression), catalog).tolist() == [True, False]
    with pytest.raises(FilterError):
        parse_filter("INCLUDE ItemID WHERE " + "(" * (depth + 1) + 'Items.GENRE IN ("a")' + ")" * (depth + 1))


def test_an_over_long_expression_is_refused_before_it_is_read() -> None:
    expression = 'INCLUDE ItemID WHERE Items.GENRE IN ("' + "a" * FILTER_MAX_EXPRESSION_LENGTH + '")'
    with pytest.raises(FilterError, match=f"at most {FILTER_MAX_EXPRESSION_LENGTH:,}"):
        parse_filter(expression)


# ------------------------------------------------------------------------------------------ values
@pytest.fixture
def catalog() -> ItemCatalog:
    return ItemCatalog([f"i{n}" for n in range(1000)], {f"i{n}": {"GENRE": f"g{n % 50}"} for n in range(1000)})


@pytest.mark.parametrize(("values", "message"), [
    ({f"P{n}": "x" for n in range(FILTER_MAX_PARAMETERS + 1)}, f"at most {FILTER_MAX_PARAMETERS} are allowed"),
    ({"GENRE": [f"g{n}" for n in range(FILTER_MAX_VALUES + 1)]}, r"\$GENRE has 101 values"),
    ({"GENRE": ["g1", "x" * (FILTER_MAX_VALUE_LENGTH + 1)]}, r"\$GENRE is 1,001 characters long"),
    ({"GENRE": (value for value in ["g1"])}, r"\$GENRE must be one value or a list"),
])
def test_filter_values_over_the_limits_are_refused_naming_the_parameter(catalog: ItemCatalog, values: dict,
                                                                         message: str) -> None:
    with pytest.raises(FilterError, match=message):
        check_filter_values(values)
    with pytest.raises(FilterError, match=message):
        compile_filter(GENRE_FILTER, catalog, values=values)
    cache = FilterCache()
    with pytest.raises(FilterError, match=message):
        cache.get(GENRE_FILTER, catalog, values=values)
    assert cache.misses == 0 and len(cache) == 0  # refused before any work


def test_filter_values_at_the_limits_are_accepted(catalog: ItemCatalog) -> None:
    values = {"GENRE": [f"g{n}" for n in range(FILTER_MAX_VALUES)]} | {
        f"P{n}": "x" * FILTER_MAX_VALUE_LENGTH for n in range(FILTER_MAX_PARAMETERS - 1)}
    assert compile_filter(GENRE_FILTER, catalog, values=values).sum() == 1000


# ------------------------------------------------------------------------------------------ the cache
def test_1000_distinct_filter_values_keep_the_cache_under_its_byte_budget(catalog: ItemCatalog) -> None:
    budget = 64 * 1024
    cache = FilterCache(max_bytes=budget)
    for n in range(1000):
        mask = cache.get(GENRE_FILTER, catalog, values={"GENRE": [f"g{n % 50}", f"request-{n}"]})
        assert mask.sum() == 20
        assert cache.nbytes <= budget
    assert 0 < len(cache) < 1000 and cache.nbytes > budget // 2  # it filled, then dropped the oldest
    one = mask.nbytes
    assert cache.nbytes >= len(cache) * one  # keys are accounted on top of the masks
    newest = cache.get(GENRE_FILTER, catalog, values={"GENRE": ["g49", "request-999"]})
    assert newest is mask and cache.hits == 1  # the last one is still there
    cache.clear()
    assert cache.nbytes == 0 and len(cache) == 0


def test_a_huge_key_is_answered_but_not_cached(catalog: ItemCatalog) -> None:
    cache = FilterCache(max_key_bytes=4096)
    values = {"GENRE": ["g1"] + [f"{n:0>900}" for n in range(FILTER_MAX_VALUES - 1)]}
    first = cache.get(GENRE_FILTER, catalog, values=values)
    assert first.sum() == 20 and len(cache) == 0 and cache.nbytes == 0
    assert cache.get(GENRE_FILTER, catalog, values={"GENRE": "g1"}) is cache.get(GENRE_FILTER, catalog,
                                                                                 values={"GENRE": ["g1"]})
    assert len(cache) == 1


def test_a_zero_budget_caches_nothing(catalog: ItemCatalog) -> None:
    cache = FilterCache(max_bytes=0)
    assert cache.get(GENRE_FILTER, catalog, values={"GENRE": "g1"}).sum() == 20
    assert len(cache) == 0 and cache.nbytes == 0


def test_the_setting_names_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSMITH_FILTER_CACHE_BYTES", "1048576")
    assert Settings().filter_cache_bytes == 1_048_576
    monkeypatch.delenv("RECSMITH_FILTER_CACHE_BYTES")
    assert Settings().filter_cache_bytes == 64 * 2**20


def _rss_bytes() -> int:
    """This process's resident memory now (Linux /proc), or its peak elsewhere."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


@pytest.fixture
def served(tmp_path: Path) -> tuple[Store, int]:
    """A SQLite store with 2,000 items in 40 genres, and a popularity model trained on them."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    group = store.create_dataset_group("shop")
    frame = synthetic_frame(200, 2000, 8000, seed=3)
    store.write_interactions(group.id, frame, schema=Schema.default("interactions").to_dict())
    items = pd.DataFrame({"ITEM_ID": sorted(set(frame["ITEM_ID"])), "GENRE": None})
    items["GENRE"] = [f"g{n % 40}" for n in range(len(items))]
    store.write_items(group.id, items, schema=Schema.from_json({
        "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
        "fields": [{"name": "ITEM_ID", "type": "string"},
                   {"name": "GENRE", "type": "string", "categorical": True}], "version": "1.0"}).to_dict())
    version = train_solution_version(store, Settings(home=tmp_path / "home"), "shop", "popularity",
                                     with_metrics=False)
    yield store, int(version["id"])
    store.close()


def test_serving_1000_distinct_filter_values_keeps_worker_memory_flat(served: tuple[Store, int]) -> None:
    from recsmith.serving.campaign import load_version

    store, version_id = served
    budget = 256 * 1024
    runtime = CampaignRuntime(store, filter_cache_bytes=budget)
    deployed = load_version(store, version_id)
    parsed = parse_filter(GENRE_FILTER)

    def ask(n: int) -> None:
        values = {"GENRE": [f"g{n % 40}"] + [f"unknown-{n}-{m}" for m in range(FILTER_MAX_VALUES - 1)]}
        answer = runtime.answer(deployed, user_id=f"u{n % 200}", num_results=5, filter=parsed,
                                filter_values=values, log=False)
        assert answer["items"]

    for n in range(200):  # warm up: allocator pools, the catalogue, the first cache entries
        ask(n)
    before = _rss_bytes()
    for n in range(200, 1200):
        ask(n)
        assert runtime.masks.nbytes <= budget
    grown = _rss_bytes() - before
    assert runtime.masks.misses == 1200 and 0 < len(runtime.masks) < 1000
    assert grown < 32 * 2**20, f"the process grew by {grown / 2**20:.1f} MiB over 1,000 requests"


# ------------------------------------------------------------------------------------------ imports
def test_csv_rows_with_non_finite_values_or_nul_are_rejected_with_line_field_and_value(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE\nu1,a,100,1.5\nu2,b,101,1e309\nu3,c,102,NaN\n"
                     b"u4,d,103,-inf\nu\x005,e,104,2\nu6,f,105,3\n")
    result = read_dataset(path, dataset_type="interactions", on_error="skip")
    assert result.frame["USER_ID"].tolist() == ["u1", "u6"]
    assert [(r.line, r.field, r.value) for r in result.rejects] == [
        (3, "EVENT_VALUE", "1e309"), (4, "EVENT_VALUE", "NaN"), (5, "EVENT_VALUE", "-inf"), (6, "USER_ID", "u\\x005")]
    assert all("not a finite number" in r.reason for r in result.rejects[:3])
    assert "NUL" in result.rejects[3].reason
    with pytest.raises(DataError) as info:
        read_dataset(path, dataset_type="interactions")
    assert str(info.value).startswith(f"{path} line 3, field EVENT_VALUE: value '1e309' is not a finite number")
    rejects = tmp_path / "rejects.csv"
    result.write_rejects(rejects)
    assert "u\\x005" in rejects.read_text()


def test_json_lines_with_nan_infinity_nul_or_surrogates_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"USER_ID": "u1", "ITEM_ID": "a", "TIMESTAMP": 100, "EVENT_VALUE": 1}\n'
                    '{"USER_ID": "u2", "ITEM_ID": "b", "TIMESTAMP": 101, "EVENT_VALUE": NaN}\n'
                    '{"USER_ID": "u3", "ITEM_ID": "c", "TIMESTAMP": 102, "EVENT_VALUE": -Infinity}\n'
                    '{"USER_ID": "u4", "ITEM_ID": "d\\u0000", "TIMESTAMP": 103}\n'
                    '{"USER_ID": "u5", "ITEM_ID": "e", "TIMESTAMP": 104, "EVENT_VALUE": 1e309}\n'
                    '{"USER_ID": "u6\\ud800", "ITEM_ID": "f", "TIMESTAMP": 105}\n'
                    '{"USER_ID": "u7", "ITEM_ID": "g", "TIMESTAMP": 106}\n')
    result = read_dataset(path, dataset_type="interactions", on_error="skip")
    assert result.frame["USER_ID"].tolist() == ["u1", "u7"]
    found = [(r.line, r.field, r.value) for r in result.rejects]
    assert found[:4] == [(2, "EVENT_VALUE", "NaN"), (3, "EVENT_VALUE", "-Infinity"), (4, "ITEM_ID", "d\\x00"),
                         (5, "EVENT_VALUE", "Infinity")]
    assert found[4][0] == 6 and "surrogate" in result.rejects[4].reason
    with pytest.raises(DataError, match=r"line 6: not a valid JSON object \(field 'USER_ID' holds an unpaired"):
        read_dataset(path, dataset_type="interactions")  # a line that does not parse fails at once
    path.write_text("\n".join(path.read_text().splitlines()[:5]) + "\n")
    with pytest.raises(DataError, match=r"line 2, field EVENT_VALUE: value 'NaN' is not a finite number"):
        read_dataset(path, dataset_type="interactions")


def test_parquet_and_metadata_numbers_must_be_finite(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    pd.DataFrame({"ITEM_ID": ["a", "b", "c"], "PRICE": [9.5, math.inf, np.nan]}).to_parquet(path)
    schema = Schema.from_json({"type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
                               "fields": [{"name": "ITEM_ID", "type": "string"},
                                          {"name": "PRICE", "type": ["null", "float"]}], "version": "1.0"})
    result = read_dataset(path, dataset_type="items", schema=schema, on_error="skip")
    assert result.frame["ITEM_ID"].tolist() == ["a", "c"]  # pandas writes NaN as a Parquet null: a missing value
    assert [(r.line, r.field, r.value) for r in result.rejects] == [(2, "PRICE", "inf")]
    with pytest.raises(DataError, match=r"row 2, field PRICE: value 'inf' is not a finite number"):
        read_dataset(path, dataset_type="items", schema=schema)
    pq.write_table(pa.table({"ITEM_ID": ["a", "b"], "PRICE": pa.array([1.0, math.nan], from_pandas=False)}), path)
    result = read_dataset(path, dataset_type="items", schema=schema, on_error="skip")  # a NaN value, not a null
    assert [(r.line, r.field, r.value) for r in result.rejects] == [(2, "PRICE", "nan")]


# ------------------------------------------------------------------------------------------ events
def _event(**changes: object) -> dict:
    return {"event_id": None, "event_type": "click", "item_id": "a", "event_value": 1.0,
            "sent_at": dt.datetime(2026, 11, 25, tzinfo=dt.UTC), "properties": {}, "recommendation_id": None,
            "impression": []} | changes


@pytest.mark.parametrize(("user", "event", "field"), [
    ("u1", _event(event_value=math.inf), "events[1].event_value"),
    ("u1", _event(event_value=math.nan), "events[1].event_value"),
    ("u1", _event(event_value=-math.inf), "events[1].event_value"),
    ("u1", _event(properties={"price": math.inf}), "events[1].properties.price"),
    ("u1", _event(item_id="a\x00b"), "events[1].item_id"),
    ("u1", _event(properties={"note": "x\x00"}), "events[1].properties.note"),
    ("u1", _event(impression=["a", "b\x00"]), "events[1].impression[1]"),
    ("u\x00", _event(), "user_id"),
    ("u1", _event(event_type="\ud800"), "events[1].event_type"),
])
def test_event_rows_refuse_what_the_store_or_training_cannot_use(user: str, event: dict, field: str) -> None:
    with pytest.raises(DataError) as info:
        event_rows(user, "s1", iter([_event(), event]))
    assert str(info.value).startswith(f"{field}: ") and info.value.field == field


def test_event_rows_accept_a_good_generator() -> None:
    rows = event_rows(None, "s1", (e for e in [_event(), _event(item_id="b", event_value=None)]))
    assert [(r["user_id"], r["item_id"]) for r in rows] == [("s1", "a"), ("s1", "b")]


# ------------------------------------------------------------------------------------------ training
def test_training_data_leaves_out_stored_infinite_values_and_counts_them(caplog: pytest.LogCaptureFixture) -> None:
    columns = {"user_id": np.array(["u1", "u1", "u2", "u2"], dtype=object),
               "item_id": np.array(["a", "b", "a", "c"], dtype=object),
               "timestamp": np.array([1, 2, 3, 4]), "event_type": np.array([None] * 4, dtype=object),
               "event_value": np.array([1.0, np.inf, np.nan, -np.inf])}
    with caplog.at_level("WARNING", logger="recsmith.data.training"):
        data = TrainingData.from_columns(columns)
    assert data.rows_skipped == 2 and data.skipped == {SKIPPED_NON_FINITE: 2}
    assert data.interactions.nnz == 2 and data.interactions.item_vocab.ids.tolist() == ["a"]
    assert "left out 2 stored interaction(s)" in caplog.text
    clean = TrainingData.from_columns(columns | {"event_value": np.array([1.0, 2.0, np.nan, 3.0])})
    assert clean.rows_skipped == 0 and clean.skipped == {}


def test_training_over_a_stored_infinite_value_succeeds_and_reports_it(store: Store, tmp_path: Path) -> None:
    group = store.create_dataset_group("shop")
    store.write_interactions(group.id, synthetic_frame(100, 80, 2000, seed=5),
                             schema=Schema.default("interactions").to_dict())
    store.write_events(group.id, [
        {"event_id": "bad", "user_id": "u-bad", "item_id": "i-bad", "timestamp": 1, "event_value": math.inf},
        {"event_id": "nan", "user_id": "u-nan", "item_id": "i-nan", "timestamp": 2, "event_value": math.nan}])
    data = load_training_data(store, "shop")
    assert data.rows_skipped == 1  # NaN reads back as no value (SQLite stores it as NULL), which training takes
    assert "i-nan" in data.interactions.item_vocab and "i-bad" not in data.interactions.item_vocab
    version = train_solution_version(store, Settings(home=tmp_path / "home"), "shop", "item-knn")
    assert version["status"] == "ACTIVE" and version["metrics"]["rows_skipped"] == 1
    meta = json.loads((Path(version["artifact_uri"]) / "meta.json").read_text())
    assert meta["rows_skipped"] == {SKIPPED_NON_FINITE: 1}
