"""Readers: every format and source, column mapping, typed fields, and each bad input with its location."""

import json
import time
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recsmith.data.readers import read_dataset, read_sql
from recsmith.data.schema import Schema
from recsmith.errors import DataError

MAP = {"userId": "USER_ID", "movieId": "ITEM_ID", "rating": "EVENT_VALUE", "timestamp": "TIMESTAMP"}
ITEMS = Schema.from_json({"type": "record", "name": "Items", "fields": [
    {"name": "ITEM_ID", "type": "string"},
    {"name": "GENRES", "type": ["null", "string"], "categorical": True},
    {"name": "PRICE", "type": ["null", "float"]},
    {"name": "IN_STOCK", "type": ["null", "boolean"]},
]})


def test_real_movielens_csv(datasets_dir: Path) -> None:
    path = datasets_dir / "ml-latest-small" / "ratings.csv"
    if not path.is_file():
        pytest.skip("ml-latest-small absent")
    result = read_dataset(str(path), dataset_type="interactions", column_map=MAP)
    assert result.rows_read == 100_004 and len(result.frame) == 100_004 and not result.rejects
    first = result.frame.iloc[0]
    assert (first.USER_ID, first.ITEM_ID, first.TIMESTAMP, first.EVENT_VALUE) == ("1", "31", 1260759144, 2.5)
    assert first.EVENT_TYPE is None
    assert list(result.frame.columns) == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]


def test_headerless_tsv_and_double_colon(tmp_path: Path) -> None:
    names = ["USER_ID", "ITEM_ID", "EVENT_VALUE", "TIMESTAMP"]
    (tmp_path / "u.data").write_text("1\t10\t4\t1000\n2\t11\t3\t1001\n")
    result = read_dataset(str(tmp_path / "u.data"), dataset_type="interactions", header=False, names=names)
    assert result.frame["ITEM_ID"].tolist() == ["10", "11"]
    (tmp_path / "ratings.dat").write_text("1::10::4::1000\n2::11::x::1001\n")
    with pytest.raises(DataError, match=r"ratings.dat line 2, field EVENT_VALUE: value 'x' is not a number"):
        read_dataset(str(tmp_path / "ratings.dat"), dataset_type="interactions", sep="::", header=False, names=names)


def test_parquet_jsonl_and_fsspec_memory_url(tmp_path: Path) -> None:
    frame = pd.DataFrame({"USER_ID": [1, 2], "ITEM_ID": ["a", "b"], "TIMESTAMP": [5, 6]})
    frame.to_parquet(tmp_path / "e.parquet")
    result = read_dataset(str(tmp_path / "e.parquet"), dataset_type="interactions")
    assert result.frame["USER_ID"].tolist() == ["1", "2"] and result.frame["TIMESTAMP"].tolist() == [5, 6]
    lines = [{"USER_ID": "u", "ITEM_ID": "i", "TIMESTAMP": 7, "EVENT_TYPE": "click"}] * 3
    with fsspec.open("memory://bucket/events.jsonl", "w") as handle:
        handle.write("\n".join(json.dumps(x) for x in lines) + "\n")
    result = read_dataset("memory://bucket/events.jsonl", dataset_type="interactions")
    assert result.frame["EVENT_TYPE"].tolist() == ["click"] * 3


def test_items_typed_fields(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("ITEM_ID,GENRES,PRICE,IN_STOCK\na,Comedy|Drama,9.5,TRUE\nb,,,false\n")
    frame = read_dataset(str(tmp_path / "items.csv"), dataset_type="items", schema=ITEMS).frame
    assert frame["GENRES"].tolist() == ["Comedy|Drama", None]
    assert frame["PRICE"].iloc[0] == 9.5 and np.isnan(frame["PRICE"].iloc[1])
    assert frame["IN_STOCK"].tolist() == [True, False]
    (tmp_path / "bad.csv").write_text("ITEM_ID,GENRES,PRICE,IN_STOCK\na,x,1,maybe\n")
    with pytest.raises(DataError, match="bad.csv line 2, field IN_STOCK: value 'maybe' is not a boolean"):
        read_dataset(str(tmp_path / "bad.csv"), dataset_type="items", schema=ITEMS)


def test_map_can_drop_columns(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("userId,movieId,rating,timestamp,junk\n1,2,3,4,x\n")
    result = read_dataset(str(tmp_path / "r.csv"), dataset_type="interactions", column_map=MAP | {"junk": "-"})
    assert len(result.frame) == 1


def test_first_problem_in_file_order_is_reported(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("userId,movieId,rating,timestamp\n1,2,3,4\n1,2,3,later\n,2,3,5\n")
    with pytest.raises(DataError) as info:
        read_dataset(str(tmp_path / "r.csv"), dataset_type="interactions", column_map=MAP)
    assert (info.value.line, info.value.field, info.value.value) == (3, "TIMESTAMP", "later")


def test_blank_lines_keep_line_numbers_right(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("userId,movieId,rating,timestamp\n1,2,3,4\n\n1,2,3,x\n")
    with pytest.raises(DataError, match="line 4, field TIMESTAMP"):
        read_dataset(str(tmp_path / "r.csv"), dataset_type="interactions", column_map=MAP)


def test_truncated_inputs(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text('userId,movieId,rating,timestamp\n1,2,3,4\n1,"2,3,4\n')
    with pytest.raises(DataError, match="q.csv line 3: unterminated quote"):
        read_dataset(str(tmp_path / "q.csv"), dataset_type="interactions", column_map=MAP)
    (tmp_path / "t.jsonl").write_text('{"USER_ID": "u", "ITEM_ID": "i", "TIMESTAMP": 1}\n{"USER_ID": "u", "IT')
    with pytest.raises(DataError, match="t.jsonl line 2: .*truncated"):
        read_dataset(str(tmp_path / "t.jsonl"), dataset_type="interactions")
    pd.DataFrame({"USER_ID": ["a"] * 100, "ITEM_ID": ["b"] * 100, "TIMESTAMP": range(100)}).to_parquet(
        tmp_path / "full.parquet")
    (tmp_path / "cut.parquet").write_bytes((tmp_path / "full.parquet").read_bytes()[:300])
    with pytest.raises(DataError, match="cut.parquet: is not a readable Parquet file"):
        read_dataset(str(tmp_path / "cut.parquet"), dataset_type="interactions")


def test_skip_mode_collects_rejects(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("userId,movieId,rating,timestamp\n1,2,3,4\n1,2,3,x\n,2,3,5\n4,5,6,7\n8,9")
    result = read_dataset(str(tmp_path / "r.csv"), dataset_type="interactions", column_map=MAP, on_error="skip")
    assert len(result.frame) == 2 and result.rows_read == 5
    assert [(r.line, r.field) for r in result.rejects] == [(3, "TIMESTAMP"), (4, "USER_ID"), (6, None)]
    result.write_rejects(tmp_path / "rejects.csv")
    written = pd.read_csv(tmp_path / "rejects.csv")
    assert written["line"].tolist() == [3, 4, 6] and "columns" in written["reason"].iloc[2]


def test_missing_file() -> None:
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_dataset("/nonexistent/nope.csv", dataset_type="interactions")


def _clicks_table(url: str, name: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE TABLE {name} (customer TEXT, product TEXT, at BIGINT)")
        conn.exec_driver_sql(f"INSERT INTO {name} VALUES ('c1', 'p1', 100), ('c2', 'p2', 101), ('c3', 'p3', NULL)")
    engine.dispose()


def test_read_sql_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _clicks_table(url, "clicks")
    query = "SELECT customer AS USER_ID, product AS ITEM_ID, at AS TIMESTAMP FROM clicks"
    with pytest.raises(DataError, match="row 3, field TIMESTAMP"):
        read_sql(query, url, dataset_type="interactions")
    result = read_sql(query, url, dataset_type="interactions", on_error="skip")
    assert result.frame["USER_ID"].tolist() == ["c1", "c2"] and len(result.rejects) == 1


@pytest.mark.postgres
def test_read_sql_postgres(postgres_ready: str) -> None:
    _clicks_table(postgres_ready, "recsmith_test_clicks")
    try:
        result = read_sql("SELECT customer AS user_id, product AS item_id, at AS timestamp FROM recsmith_test_clicks "
                          "WHERE at IS NOT NULL", postgres_ready, dataset_type="interactions")
        assert result.frame["ITEM_ID"].tolist() == ["p1", "p2"]
    finally:
        engine = sa.create_engine(postgres_ready)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE recsmith_test_clicks")
        engine.dispose()


def test_reading_is_vectorised(tmp_path: Path) -> None:
    """200k rows read and validated well within a second or two (a per-row Python loop would not be)."""
    rng = np.random.default_rng(0)
    n = 200_000
    pd.DataFrame({"userId": rng.integers(0, 5000, n), "movieId": rng.integers(0, 3000, n),
                  "rating": rng.integers(1, 6, n), "timestamp": rng.integers(0, 10**9, n)}).to_csv(
        tmp_path / "big.csv", index=False)
    started = time.perf_counter()
    result = read_dataset(str(tmp_path / "big.csv"), dataset_type="interactions", column_map=MAP)
    assert len(result.frame) == n
    assert time.perf_counter() - started < 5.0
