"""Readers: every format and source, column mapping, typed fields, and each bad input with its location."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recsmith.data.readers import ReadResult, Reject, detect_format, read_dataset, read_sql, validate_frame
from recsmith.data.schema import Schema
from recsmith.errors import ConfigError, DataError

MAP = {"userId": "USER_ID", "movieId": "ITEM_ID", "rating": "EVENT_VALUE", "timestamp": "TIMESTAMP"}
NAMES = ["USER_ID", "ITEM_ID", "EVENT_VALUE", "TIMESTAMP"]
HEADER = "userId,movieId,rating,timestamp\n"
ITEMS = Schema.from_json({"type": "record", "name": "Items", "fields": [
    {"name": "ITEM_ID", "type": "string"},
    {"name": "GENRES", "type": ["null", "string"], "categorical": True},
    {"name": "PRICE", "type": ["null", "float"]},
    {"name": "STOCK", "type": "int"},
    {"name": "IN_STOCK", "type": ["null", "boolean"]},
    {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
]})
DATASETS = Path(os.environ.get("RECSMITH_DATASETS")
                or Path(__file__).resolve().parents[2].parent / "shared" / "datasets")
POSTGRES_URL = os.environ.get("RECSMITH_TEST_POSTGRES_URL")


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def _fails(source: str, **kwargs: object) -> DataError:
    kwargs.setdefault("dataset_type", "interactions")
    with pytest.raises(DataError) as info:
        read_dataset(source, **kwargs)  # type: ignore[arg-type]
    return info.value


# ------------------------------------------------------------------------------------------ formats
def test_real_movielens_latest_small_csv() -> None:
    path = DATASETS / "ml-latest-small" / "ratings.csv"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    result = read_dataset(str(path), dataset_type="interactions", column_map=MAP)
    expected = sum(1 for _ in path.open()) - 1
    assert result.rows_read == expected == len(result.frame) and not result.rejects
    assert list(result.frame.columns) == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    first = result.frame.iloc[0]
    assert first.USER_ID == "1" and isinstance(first.ITEM_ID, str) and first.EVENT_TYPE is None
    assert result.frame["TIMESTAMP"].dtype == np.int64 and result.frame["EVENT_VALUE"].dtype == np.float64
    assert result.frame["EVENT_VALUE"].between(0.5, 5.0).all()


def test_real_movielens_100k_headerless_tsv() -> None:
    path = DATASETS / "ml-100k" / "u.data"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    result = read_dataset(str(path), dataset_type="interactions", header=False, names=NAMES)
    assert len(result.frame) == result.rows_read == 100_000 and not result.rejects
    assert result.frame["EVENT_VALUE"].isin([1.0, 2.0, 3.0, 4.0, 5.0]).all()
    assert result.frame["TIMESTAMP"].min() > 8e8


def test_csv_with_header_default_schema(tmp_path: Path) -> None:
    source = _write(tmp_path / "events.csv",
                    "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE\n u1 ,i1,100,click,\nu2,i2,101,,2.5\n")
    frame = read_dataset(source, dataset_type="interactions").frame
    assert frame["USER_ID"].tolist() == ["u1", "u2"]  # ids are trimmed
    assert frame["TIMESTAMP"].tolist() == [100, 101]
    assert frame["EVENT_TYPE"].tolist() == ["click", None]
    assert np.isnan(frame["EVENT_VALUE"].iloc[0]) and frame["EVENT_VALUE"].iloc[1] == 2.5


def test_headerless_tsv_and_double_colon(tmp_path: Path) -> None:
    source = _write(tmp_path / "u.data", "1\t10\t4\t1000\n2\t11\t3\t1001\n")
    result = read_dataset(source, dataset_type="interactions", header=False, names=NAMES)
    assert result.frame["ITEM_ID"].tolist() == ["10", "11"] and result.frame["TIMESTAMP"].tolist() == [1000, 1001]
    dat = _write(tmp_path / "ratings.dat", "1::10::4::1000\n2::11::3::1001\n")
    for kwargs in ({}, {"sep": "::"}):
        frame = read_dataset(dat, dataset_type="interactions", header=False, names=NAMES, **kwargs).frame
        assert frame["EVENT_VALUE"].tolist() == [4.0, 3.0]
    tsv = _write(tmp_path / "r.tsv", "userId\tmovieId\trating\ttimestamp\n1\t2\t3\t4\n")
    assert read_dataset(tsv, dataset_type="interactions", column_map=MAP).frame["ITEM_ID"].tolist() == ["2"]
    custom = _write(tmp_path / "r.txt", "userId;movieId;rating;timestamp\n1;2;3;4\n")
    assert len(read_dataset(custom, dataset_type="interactions", column_map=MAP, sep=";").frame) == 1


def test_double_colon_file_reports_lines_and_values(tmp_path: Path) -> None:
    dat = _write(tmp_path / "ratings.dat", "1::10::4::1000\n2::11::x::1001\n")
    error = _fails(dat, sep="::", header=False, names=NAMES)
    assert str(error).startswith(f"{dat} line 2, field EVENT_VALUE: value 'x' is not a number")


def test_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"USER_ID": [1, 2], "ITEM_ID": ["a", "b"], "TIMESTAMP": [5, 6], "EVENT_VALUE": [1, 2]})
    frame.to_parquet(tmp_path / "e.parquet")
    result = read_dataset(str(tmp_path / "e.parquet"), dataset_type="interactions")
    assert result.frame["USER_ID"].tolist() == ["1", "2"] and result.frame["TIMESTAMP"].tolist() == [5, 6]
    assert result.frame["EVENT_VALUE"].dtype == np.float64
    stamps = pd.DataFrame({"u": ["a"], "i": ["b"], "when": pd.to_datetime(["2020-01-01T00:00:10"])})
    stamps.to_parquet(tmp_path / "t.pq")
    frame = read_dataset(str(tmp_path / "t.pq"), dataset_type="interactions",
                         column_map={"u": "USER_ID", "i": "ITEM_ID", "when": "TIMESTAMP"}).frame
    assert frame["TIMESTAMP"].tolist() == [1577836810]


def test_parquet_bad_value_names_the_row(tmp_path: Path) -> None:
    pd.DataFrame({"USER_ID": ["a", "b", None], "ITEM_ID": ["x", "y", "z"], "TIMESTAMP": [1, 2, 3]}).to_parquet(
        tmp_path / "e.parquet")
    error = _fails(str(tmp_path / "e.parquet"))
    assert "e.parquet row 3, field USER_ID" in str(error) and error.line == 3  # type: ignore[attr-defined]


def test_jsonl_fast_and_slow_paths(tmp_path: Path) -> None:
    records = [{"USER_ID": "u", "ITEM_ID": "i", "TIMESTAMP": 7, "EVENT_TYPE": "click"}] * 3
    source = _write(tmp_path / "e.jsonl", "\n".join(json.dumps(r) for r in records) + "\n\n")
    assert read_dataset(source, dataset_type="interactions").frame["EVENT_TYPE"].tolist() == ["click"] * 3
    # ids that change type between lines, a list for a categorical field and a blank line
    mixed = _write(tmp_path / "items.ndjson", '{"ITEM_ID": 1, "GENRES": ["a", "b"], "STOCK": 3}\n\n'
                                               '{"ITEM_ID": "x", "GENRES": "c", "STOCK": "4"}\n')
    frame = read_dataset(mixed, dataset_type="items", schema=ITEMS).frame
    assert frame["ITEM_ID"].tolist() == ["1", "x"] and frame["STOCK"].tolist() == [3, 4]
    lists = _write(tmp_path / "lists.json", '{"ITEM_ID": "a", "GENRES": ["x", "y"], "STOCK": 1}\n')
    assert read_dataset(lists, dataset_type="items", schema=ITEMS).frame["GENRES"].tolist() == ["x|y"]


def test_jsonl_bad_value_line_counts_blank_lines(tmp_path: Path) -> None:
    source = _write(tmp_path / "e.jsonl", '{"USER_ID": "u", "ITEM_ID": "i", "TIMESTAMP": 1}\n\n'
                                          '{"USER_ID": "u", "ITEM_ID": "i", "TIMESTAMP": "soon"}\n')
    error = _fails(source)
    assert str(error).startswith(f"{source} line 3, field TIMESTAMP: value 'soon' is not a number")


def test_fsspec_memory_url_and_gzip(tmp_path: Path) -> None:
    name = f"memory://recsmith-test-{uuid.uuid4().hex}/ratings.csv"
    with fsspec.open(name, "w") as handle:
        handle.write(HEADER + "1,2,3,4\n5,6,7,x\n")
    assert len(read_dataset(name, dataset_type="interactions", column_map=MAP, on_error="skip").frame) == 1
    error = _fails(name, column_map=MAP)
    assert str(error).startswith(f"{name} line 3, field TIMESTAMP")
    fsspec.filesystem("memory").rm(name)
    with gzip.open(tmp_path / "r.csv.gz", "wt") as handle:
        handle.write(HEADER + "1,2,3,4\n")
    assert detect_format(str(tmp_path / "r.csv.gz")) == "csv"
    assert read_dataset(str(tmp_path / "r.csv.gz"), dataset_type="interactions", column_map=MAP).rows_read == 1


def test_detect_format() -> None:
    assert detect_format("x.parquet") == "parquet" and detect_format("s3://b/x.ndjson") == "jsonl"
    assert detect_format("x.tsv") == "tsv" and detect_format("x.tsv", sep=",") == "csv"
    assert detect_format("x.bin", fmt="json") == "jsonl" and detect_format("x") == "csv"
    with pytest.raises(ConfigError, match="unknown format 'xml'"):
        detect_format("x", fmt="xml")


def test_items_typed_fields(tmp_path: Path) -> None:
    source = _write(tmp_path / "items.csv",
                    'ITEM_ID,GENRES,PRICE,STOCK,IN_STOCK,DESCRIPTION\n'
                    'a,Comedy | Drama,9.5,3,TRUE,"Funny, and\nsad"\n'
                    'b,,,0,false,\n'
                    'c,Horror,1e2,7,,plain\n')
    frame = read_dataset(source, dataset_type="items", schema=ITEMS).frame
    assert list(frame.columns) == ["ITEM_ID", "GENRES", "PRICE", "STOCK", "IN_STOCK", "DESCRIPTION"]
    assert frame["GENRES"].tolist() == ["Comedy|Drama", None, "Horror"]
    assert frame["PRICE"].iloc[0] == 9.5 and np.isnan(frame["PRICE"].iloc[1]) and frame["PRICE"].iloc[2] == 100.0
    assert frame["STOCK"].dtype == np.int64 and frame["STOCK"].tolist() == [3, 0, 7]
    assert frame["IN_STOCK"].tolist() == [True, False, None]
    assert frame["DESCRIPTION"].tolist() == ["Funny, and\nsad", None, "plain"]


def test_quoted_newlines_keep_line_numbers_right(tmp_path: Path) -> None:
    source = _write(tmp_path / "items.csv",
                    'ITEM_ID,GENRES,PRICE,STOCK,IN_STOCK,DESCRIPTION\n'
                    'a,x,1,1,true,"line one\nline two\nline three"\n'
                    'b,x,1,1,yes,plain\n')
    error = _fails(source, dataset_type="items", schema=ITEMS)
    assert str(error).startswith(f"{source} line 5, field IN_STOCK: value 'yes' is not a boolean")


def test_users_dataset(tmp_path: Path) -> None:
    schema = Schema.from_json({"type": "record", "name": "Users", "fields": [
        {"name": "USER_ID", "type": "string"}, {"name": "AGE", "type": ["null", "int"]},
        {"name": "MEMBER", "type": "boolean"}]})
    source = _write(tmp_path / "users.csv", "USER_ID,AGE,MEMBER\nu1,31,True\nu2,,FALSE\n")
    frame = read_dataset(source, dataset_type="users", schema=schema).frame
    assert frame["AGE"].iloc[0] == 31 and np.isnan(frame["AGE"].iloc[1])
    assert frame["MEMBER"].dtype == bool and frame["MEMBER"].tolist() == [True, False]
    bad = _write(tmp_path / "bad.csv", "USER_ID,AGE,MEMBER\nu1,31.5,true\n")
    assert "line 2, field AGE: value '31.5' is not a whole number" in str(_fails(bad, dataset_type="users",
                                                                                 schema=schema))


# ------------------------------------------------------------------------------------------ column mapping
def test_map_renames_and_drops_columns(tmp_path: Path) -> None:
    source = _write(tmp_path / "r.csv", "userId,movieId,rating,timestamp,junk\n1,2,3,4,x\n")
    result = read_dataset(source, dataset_type="interactions", column_map=MAP | {"junk": "-"})
    assert result.frame.iloc[0][["USER_ID", "ITEM_ID", "TIMESTAMP"]].tolist() == ["1", "2", 4]
    error = _fails(source, column_map=MAP | {"nope": "-"})
    assert "'nope'" in str(error) and "junk" in str(error)
    with pytest.raises(ConfigError, match="'RATING'"):
        read_dataset(source, dataset_type="interactions", column_map=MAP | {"junk": "RATING"})


def test_missing_required_column(tmp_path: Path) -> None:
    source = _write(tmp_path / "ratings.csv", "userId,movieId,rating\n1,2,3\n")
    error = _fails(source, column_map={"userId": "USER_ID", "movieId": "ITEM_ID", "rating": "EVENT_VALUE"},
                   on_error="skip")
    message = str(error)
    assert message.startswith(f"{source} line 1, field TIMESTAMP: required column TIMESTAMP is missing")
    assert "['USER_ID', 'ITEM_ID', 'EVENT_VALUE']" in message and "--map SOURCE=TIMESTAMP" in message
    assert (error.line, error.field) == (1, "TIMESTAMP")  # type: ignore[attr-defined]


def test_unknown_field(tmp_path: Path) -> None:
    source = _write(tmp_path / "ratings.csv", "USER_ID,ITEM_ID,TIMESTAMP,foo\n1,2,3,4\n")
    error = _fails(source, on_error="skip")
    assert str(error).startswith(f"unknown field 'foo' in {source} line 1: the interactions schema has USER_ID, ")
    assert "a schema that also has FOO with --schema FILE" in str(error)
    assert "--map foo=-" in str(error) and error.field == "foo"  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------ bad values
def test_non_numeric_timestamp_message_and_attributes(tmp_path: Path) -> None:
    source = _write(tmp_path / "ratings.csv", HEADER + "1,2,3,4\n" * 15 + "1,2,3,abc\n")
    error = _fails(source, column_map=MAP)
    assert str(error) == f"{source} line 17, field TIMESTAMP: value 'abc' is not a number (epoch seconds expected)"
    assert (error.source, error.line, error.field, error.value) == (  # type: ignore[attr-defined]
        source, 17, "TIMESTAMP", "abc")


@pytest.mark.parametrize(("row", "field", "needle"), [
    ("1,2,3,", "TIMESTAMP", "is empty (epoch seconds expected)"),
    (",2,3,4", "USER_ID", "is empty: every row needs a user id"),
    ("1,  ,3,4", "ITEM_ID", "is empty: every row needs an item id"),
    ("1,2,five,4", "EVENT_VALUE", "value 'five' is not a number (float expected)"),
    ("1,2,3,99999999999999999999999", "TIMESTAMP", "is out of range"),
])
def test_bad_values(tmp_path: Path, row: str, field: str, needle: str) -> None:
    source = _write(tmp_path / "ratings.csv", HEADER + "1,2,3,4\n" + row + "\n")
    error = _fails(source, column_map=MAP)
    assert str(error).startswith(f"{source} line 3, field {field}: ") and needle in str(error)


def test_numbers_in_other_notations_are_accepted(tmp_path: Path) -> None:
    source = _write(tmp_path / "r.csv", HEADER + "1,2,+3.5,1.5e9\n1,2,.5, 1000 \n")
    frame = read_dataset(source, dataset_type="interactions", column_map=MAP).frame
    assert frame["TIMESTAMP"].tolist() == [1_500_000_000, 1000] and frame["EVENT_VALUE"].tolist() == [3.5, 0.5]


def test_bad_boolean(tmp_path: Path) -> None:
    source = _write(tmp_path / "items.csv", "ITEM_ID,STOCK,IN_STOCK\na,1,true\nb,1,maybe\n")
    error = _fails(source, dataset_type="items", schema=ITEMS)
    assert str(error).startswith(f"{source} line 3, field IN_STOCK: value 'maybe' is not a boolean")


def test_first_problem_in_file_order_is_reported(tmp_path: Path) -> None:
    source = _write(tmp_path / "r.csv", HEADER + "1,2,3,4\n1,2,3,later\n,2,3,5\n")
    error = _fails(source, column_map=MAP)
    assert (error.line, error.field, error.value) == (3, "TIMESTAMP", "later")  # type: ignore[attr-defined]


def test_blank_lines_keep_line_numbers_right(tmp_path: Path) -> None:
    source = _write(tmp_path / "r.csv", HEADER + "1,2,3,4\n\n\r\n1,2,3,x\n")
    assert "line 5, field TIMESTAMP" in str(_fails(source, column_map=MAP))


def test_encoding_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "movies.csv"
    path.write_bytes(HEADER.encode() + b"1,2,3,4\n1,Caf\xe9,3,4\n5,6,7,8\n")
    error = _fails(str(path), column_map=MAP)
    assert str(error).startswith(f"{path} line 3, field movieId: encoding error: byte 0xe9")
    assert "UTF-8" in str(error)
    result = read_dataset(str(path), dataset_type="interactions", column_map=MAP, on_error="skip")
    assert result.frame["USER_ID"].tolist() == ["1", "5"] and result.rows_read == 3
    assert [(r.line, r.field) for r in result.rejects] == [(3, "movieId")]
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_bytes(b'{"USER_ID": "u", "ITEM_ID": "i", "TIMESTAMP": 1}\n{"USER_ID": "\xff"}\n')
    assert str(_fails(str(jsonl))).startswith(f"{jsonl} line 2: encoding error")


# ------------------------------------------------------------------------------------------ truncated files
def test_truncated_last_row(tmp_path: Path) -> None:
    source = _write(tmp_path / "r.csv", HEADER + "1,2,3,4\n8,9")
    error = _fails(source, column_map=MAP)
    assert str(error).startswith(f"{source} line 3: has 2 columns, 4 expected")
    assert "truncated" in str(error) and error.value == "8,9"  # type: ignore[attr-defined]


def test_wrong_column_count_mid_file(tmp_path: Path) -> None:
    source = _write(tmp_path / "r.csv", HEADER + "1,2,3,4\n1,2,3,4,5\n1,2,3,4\n")
    error = _fails(source, column_map=MAP)
    assert str(error).startswith(f"{source} line 3: has 5 columns, 4 expected") and "truncated" not in str(error)


def test_unterminated_quote(tmp_path: Path) -> None:
    source = _write(tmp_path / "q.csv", HEADER + '1,2,3,4\n1,"2,3,4\n')
    error = _fails(source, column_map=MAP)
    assert str(error).startswith(f"{source} line 3: unterminated quote (the file looks truncated)")


def test_incomplete_last_json_line(tmp_path: Path) -> None:
    source = _write(tmp_path / "t.jsonl", '{"USER_ID": "u", "ITEM_ID": "i", "TIMESTAMP": 1}\n{"USER_ID": "u", "IT')
    error = _fails(source)
    assert str(error).startswith(f"{source} line 2: not a valid JSON object") and "truncated" in str(error)
    result = read_dataset(source, dataset_type="interactions", on_error="skip")
    assert len(result.frame) == 1 and result.rows_read == 2 and result.rejects[0].line == 2


def test_truncated_parquet_raises_even_with_skip(tmp_path: Path) -> None:
    pd.DataFrame({"USER_ID": ["a"] * 100, "ITEM_ID": ["b"] * 100, "TIMESTAMP": range(100)}).to_parquet(
        tmp_path / "full.parquet")
    (tmp_path / "cut.parquet").write_bytes((tmp_path / "full.parquet").read_bytes()[:300])
    error = _fails(str(tmp_path / "cut.parquet"), on_error="skip")
    assert str(error).startswith(f"{tmp_path / 'cut.parquet'}: is not a readable Parquet file")


# ------------------------------------------------------------------------------------------ skip mode
def test_skip_mode_collects_rejects_and_writes_them(tmp_path: Path) -> None:
    source = _write(tmp_path / "r.csv", HEADER + "1,2,3,4\n1,2,3,x\n,2,3,5\n4,5,6,7\n1,2,zz,\n8,9")
    result = read_dataset(source, dataset_type="interactions", column_map=MAP, on_error="skip")
    assert isinstance(result, ReadResult) and result.source == source
    assert result.frame["USER_ID"].tolist() == ["1", "4"] and result.rows_read == 6 and result.rows_loaded == 2
    assert [(r.line, r.field, r.value) for r in result.rejects] == [
        (3, "TIMESTAMP", "x"), (4, "USER_ID", None), (6, "EVENT_VALUE", "zz"), (7, None, "8,9")]
    assert result.rejects[0] == Reject(3, "TIMESTAMP", "x", "is not a number (epoch seconds expected)")
    result.write_rejects(tmp_path / "rejects.csv")
    written = pd.read_csv(tmp_path / "rejects.csv", keep_default_na=False)
    assert list(written.columns) == ["line", "field", "value", "reason"]
    assert written["line"].tolist() == [3, 4, 6, 7] and written["value"].tolist() == ["x", "", "zz", "8,9"]
    assert "columns" in written["reason"].iloc[3]


def test_skip_mode_on_a_big_file_is_exact(tmp_path: Path) -> None:
    """Bad rows deep in a big file are found at their exact lines (speed is measured in benchmarks/)."""
    n = 200_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"userId": rng.integers(0, 5000, n), "movieId": rng.integers(0, 3000, n),
                          "rating": rng.integers(1, 6, n), "timestamp": rng.integers(0, 10**9, n)}).astype(str)
    bad = [10, 99_999, n - 1]
    frame.loc[bad, "timestamp"] = "oops"
    frame.to_csv(tmp_path / "big.csv", index=False)
    result = read_dataset(str(tmp_path / "big.csv"), dataset_type="interactions", column_map=MAP, on_error="skip")
    assert len(result.frame) == n - 3 and [r.line for r in result.rejects] == [i + 2 for i in bad]


# ------------------------------------------------------------------------------------------ arguments
def test_argument_errors(tmp_path: Path) -> None:
    source = _write(tmp_path / "r.csv", HEADER + "1,2,3,4\n")
    with pytest.raises(ConfigError, match="unknown dataset type 'ratings'"):
        read_dataset(source, dataset_type="ratings")
    with pytest.raises(ConfigError, match="on_error"):
        read_dataset(source, dataset_type="interactions", on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="without a header needs column names"):
        read_dataset(source, dataset_type="interactions", header=False)
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_dataset(str(tmp_path / "nope.csv"), dataset_type="interactions")
    empty = _write(tmp_path / "empty.csv", "")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        read_dataset(empty, dataset_type="interactions")


def test_validate_frame() -> None:
    frame = pd.DataFrame({"user": ["a", "b"], "item": [1, 2], "ts": ["5", "x"]})
    mapping = {"user": "USER_ID", "item": "ITEM_ID", "ts": "TIMESTAMP"}
    with pytest.raises(DataError, match="events row 2, field TIMESTAMP: value 'x'"):
        validate_frame(frame, source="events", dataset_type="interactions", column_map=mapping)
    result = validate_frame(frame, source="events", dataset_type="interactions", column_map=mapping,
                            on_error="skip")
    assert result.frame["ITEM_ID"].tolist() == ["1"] and result.rejects[0].line == 2


# ------------------------------------------------------------------------------------------ SQL
def _clicks_table(url: str, name: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE TABLE {name} (customer TEXT, product INTEGER, at BIGINT, score REAL)")
        conn.exec_driver_sql(f"INSERT INTO {name} VALUES ('c1', 1, 100, 1.5), ('c2', 2, 101, NULL), "
                             f"('c3', 3, NULL, 2.0)")
    engine.dispose()


def _check_sql(url: str, table: str) -> None:
    query = f"SELECT customer AS user_id, product AS item_id, at AS timestamp, score AS event_value FROM {table}"
    with pytest.raises(DataError) as info:
        read_sql(query + " ORDER BY customer", url, dataset_type="interactions")
    assert "row 3, field TIMESTAMP: is empty" in str(info.value) and "@" not in str(info.value).split(":")[0]
    result = read_sql(query + " ORDER BY customer", url, dataset_type="interactions", on_error="skip")
    assert result.frame["USER_ID"].tolist() == ["c1", "c2"] and result.frame["ITEM_ID"].tolist() == ["1", "2"]
    assert result.frame["TIMESTAMP"].tolist() == [100, 101] and result.frame["EVENT_VALUE"].iloc[0] == 1.5
    assert np.isnan(result.frame["EVENT_VALUE"].iloc[1]) and [r.line for r in result.rejects] == [3]
    mapped = read_sql(f"SELECT customer, product, at FROM {table} WHERE at IS NOT NULL", url,
                      dataset_type="interactions",
                      column_map={"customer": "USER_ID", "product": "ITEM_ID", "at": "TIMESTAMP"})
    assert sorted(mapped.frame["USER_ID"]) == ["c1", "c2"]
    with pytest.raises(DataError, match="the query failed"):
        read_sql(f"SELECT nope FROM {table}", url, dataset_type="interactions")


def test_read_sql_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    _clicks_table(url, "clicks")
    _check_sql(url, "clicks")


@pytest.mark.postgres
def test_read_sql_postgres() -> None:
    if not POSTGRES_URL:
        pytest.skip("RECSMITH_TEST_POSTGRES_URL is not set")
    table = f"recsmith_test_clicks_{uuid.uuid4().hex[:12]}"
    _clicks_table(POSTGRES_URL, table)
    try:
        _check_sql(POSTGRES_URL, table)
    finally:
        engine = sa.create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        engine.dispose()


# ------------------------------------------------------------------------------------------ several bad rows
def test_fail_mode_lists_bad_encodings_and_json_lines_with_the_other_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + b"1,2,3,4\n1,Caf\xe9,3,4\n1,2,3,soon\n5,\xe96,7,8\n")
    error = _fails(str(path), column_map=MAP)
    lines = str(error).splitlines()
    assert lines[0].startswith(f"{path} line 3, field movieId: encoding error: byte 0xe9")
    assert lines[1].startswith("... and 2 more bad lines; nothing was imported")
    assert lines[2].startswith("  line 4, field TIMESTAMP: value 'soon' is not a number")
    assert lines[3].startswith("  line 5, field movieId: encoding error") and len(lines) == 4
    assert [r.line for r in error.rejects] == [3, 4, 5]  # type: ignore[attr-defined]
    many = tmp_path / "many.csv"
    many.write_bytes(HEADER.encode() + b"1,\xe9,3,4\n" * 30)
    error = _fails(str(many), column_map=MAP)  # the reading stops at 20 bad encodings
    assert "at least 19 more bad lines" in str(error) and "... maybe more" in str(error)
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text('{"USER_ID": "u", "ITEM_ID": "i", "TIMESTAMP": 1}\n{"USER_ID": \n'
                     '{"USER_ID": "u", "ITEM_ID": "i", "TIMESTAMP": "later"}\n[1]\n')
    error = _fails(str(jsonl))
    assert str(error).startswith(f"{jsonl} line 2: not a valid JSON object")
    assert [r.line for r in error.rejects] == [2, 3, 4]  # type: ignore[attr-defined]
    assert "line 3, field TIMESTAMP: value 'later'" in str(error)
