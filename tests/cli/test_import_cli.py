"""Import jobs through the CLI: every format, the report, and every bad input leaving the store unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from recsmith.settings import Settings
from recsmith.store.store import Store

GOOD = "userId,movieId,rating,timestamp\n1,10,4.0,1000\n1,11,3.5,1001\n2,10,5.0,1002\n"
MAP = "userId=USER_ID,movieId=ITEM_ID,rating=EVENT_VALUE,timestamp=TIMESTAMP"


def interaction_count(group: str) -> int:
    store = Store.from_settings(Settings())
    try:
        return store.count_interactions(store.get_dataset_group(group).id)
    finally:
        store.close()


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_import_csv_with_map_prints_json_report(cli, tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", GOOD)
    result = cli("import", "interactions", path, "--dataset-group", "g1", "--map", MAP, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "ACTIVE"
    assert (report["rows_read"], report["rows_loaded"], report["rows_rejected"]) == (3, 3, 0)
    assert report["duration_seconds"] >= 0
    assert interaction_count("g1") == 3


def test_full_replaces_and_incremental_adds_only_new_records(cli, tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", GOOD)
    assert cli("import", "interactions", path, "-g", "g2", "--map", MAP).exit_code == 0
    assert cli("import", "interactions", path, "-g", "g2", "--map", MAP).exit_code == 0
    assert interaction_count("g2") == 3
    result = cli("import", "interactions", path, "-g", "g2", "--map", MAP, "--mode", "incremental", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["rows_read"], report["rows_loaded"], report["duplicates_skipped"]) == (3, 0, 3)
    assert interaction_count("g2") == 3  # Personalize upserts identical records: the same file again adds nothing
    # one stored row again (its rating changed: still the same record), a new row twice, a new event type, a new time
    more = write(tmp_path, "more.csv", "userId,movieId,rating,timestamp,type\n1,10,1.0,1000,\n3,12,4.0,1003,\n"
                 "3,12,4.0,1003,\n1,10,4.0,1000,click\n1,10,4.0,999,\n")
    result = cli("import", "interactions", more, "-g", "g2", "--map", MAP + ",type=EVENT_TYPE", "--mode",
                 "incremental")
    assert result.exit_code == 0, result.output
    assert re.search(r"rows loaded\W+3\W", result.stdout) and re.search(r"duplicates skipped\W+2\W", result.stdout)
    assert interaction_count("g2") == 6
    store = Store.from_settings(Settings())
    try:
        stored = store.read_interactions(store.get_dataset_group("g2").id)
    finally:
        store.close()
    rows = sorted(zip(stored["user_id"].tolist(), stored["item_id"].tolist(), stored["timestamp"].tolist(),
                      [None if v is None else str(v) for v in stored["event_type"].tolist()], strict=True),
                  key=str)
    assert rows == sorted([("1", "10", 1000, None), ("1", "11", 1001, None), ("2", "10", 1002, None),
                           ("3", "12", 1003, None), ("1", "10", 1000, "click"), ("1", "10", 999, None)], key=str)
    assert cli("import", "interactions", path, "-g", "g2", "--map", MAP).exit_code == 0  # full still replaces
    assert interaction_count("g2") == 3


def test_import_tsv_double_colon_parquet_jsonl(cli, tmp_path: Path) -> None:
    tsv = write(tmp_path, "u.data", "1\t10\t4\t1000\n2\t11\t3\t1001\n")
    result = cli("import", "interactions", tsv, "-g", "fmt", "--sep", "\t", "--no-header",
                 "--names", "USER_ID,ITEM_ID,EVENT_VALUE,TIMESTAMP")
    assert result.exit_code == 0, result.output
    assert interaction_count("fmt") == 2
    dat = write(tmp_path, "ratings.dat", "1::10::4::1000\n2::11::3::1001\n3::12::5::1002\n")
    result = cli("import", "interactions", dat, "-g", "fmt", "--sep", "::", "--no-header",
                 "--names", "USER_ID,ITEM_ID,EVENT_VALUE,TIMESTAMP")
    assert result.exit_code == 0, result.output
    assert interaction_count("fmt") == 3
    frame = pd.DataFrame({"USER_ID": ["a", "b"], "ITEM_ID": ["x", "y"], "TIMESTAMP": [5, 6]})
    frame.to_parquet(tmp_path / "events.parquet")
    assert cli("import", "interactions", tmp_path / "events.parquet", "-g", "fmt").exit_code == 0
    assert interaction_count("fmt") == 2
    jsonl = write(tmp_path, "events.jsonl", '{"USER_ID": "u", "ITEM_ID": "i", "TIMESTAMP": 7}\n' * 4)
    assert cli("import", "interactions", jsonl, "-g", "fmt").exit_code == 0
    assert interaction_count("fmt") == 4


def test_import_from_sql(cli, tmp_path: Path) -> None:
    import sqlalchemy as sa

    app_db = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(app_db)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE clicks (customer TEXT, product TEXT, at INTEGER)")
        conn.exec_driver_sql("INSERT INTO clicks VALUES ('c1', 'p1', 100), ('c2', 'p1', 101), ('c2', 'p2', 102)")
    engine.dispose()
    result = cli("import", "interactions", "-g", "sql", "--sql",
                 "SELECT customer AS USER_ID, product AS ITEM_ID, at AS TIMESTAMP FROM clicks", "--db-url", app_db)
    assert result.exit_code == 0, result.output
    assert interaction_count("sql") == 3


BAD_INPUTS = {
    "missing_column": ("userId,movieId,rating\n1,10,4\n", ["bad.csv", "line 1", "TIMESTAMP"]),
    "non_numeric_timestamp": (GOOD + "3,12,4.0,yesterday\n", ["bad.csv", "line 5", "TIMESTAMP", "yesterday"]),
    "empty_id": (GOOD + ",12,4.0,1003\n", ["bad.csv", "line 5", "USER_ID"]),
    "unknown_field": ("userId,movieId,rating,timestamp,mood\n1,10,4,1000,happy\n", ["bad.csv", "line 1", "mood"]),
    "encoding": (GOOD.encode() + b"3,caf\xe9,4.0,1003\n", ["bad.csv", "line 5"]),
    "truncated": (GOOD + "3,12", ["bad.csv", "line 5"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_clearly_and_changes_nothing(cli, tmp_path: Path, case: str) -> None:
    good = write(tmp_path, "ratings.csv", GOOD)
    assert cli("import", "interactions", good, "-g", "bad", "--map", MAP).exit_code == 0
    content, expected = BAD_INPUTS[case]
    bad = write(tmp_path, "bad.csv", content)
    result = cli("import", "interactions", bad, "-g", "bad", "--map", MAP)
    assert result.exit_code != 0
    message = " ".join(result.stderr.split())
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert interaction_count("bad") == 3  # the earlier full import is intact


def test_skip_mode_loads_good_rows_and_writes_rejects(cli, tmp_path: Path) -> None:
    bad = write(tmp_path, "mixed.csv", GOOD + "3,12,4.0,yesterday\n,13,1.0,1004\n4,14,2.0,1005\n")
    rejects = tmp_path / "rejects.csv"
    result = cli("import", "interactions", bad, "-g", "skip", "--map", MAP, "--on-error", "skip",
                 "--reject-file", rejects, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["rows_read"], report["rows_loaded"], report["rows_rejected"]) == (6, 4, 2)
    assert interaction_count("skip") == 4
    lines = pd.read_csv(rejects)
    assert sorted(lines["line"].tolist()) == [5, 6]
    assert set(lines["field"]) == {"TIMESTAMP", "USER_ID"}


def test_bad_options_exit_nonzero(cli, tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", GOOD)
    result = cli("import", "interactions", path, "-g", "opt", "--map", MAP, "--mode", "sometimes")
    assert result.exit_code == 1
    assert "sometimes" in result.stderr
    result = cli("import", "interactions", tmp_path / "nope.csv", "-g", "opt")
    assert result.exit_code == 1
    assert "nope.csv" in result.stderr


def test_failed_and_interrupted_jobs_are_recorded(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recsmith.jobs import importing

    good = write(tmp_path, "ratings.csv", GOOD)
    assert cli("import", "interactions", good, "-g", "jobs", "--map", MAP).exit_code == 0
    assert cli("import", "interactions", write(tmp_path, "bad.csv", GOOD + ",1,1,1\n"), "-g", "jobs",
               "--map", MAP).exit_code == 1

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importing, "read_dataset", interrupted)
    result = cli("import", "interactions", good, "-g", "jobs", "--map", MAP)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    store = Store.from_settings(Settings())
    jobs = store.list_import_jobs(store.get_dataset_group("jobs").id)
    store.close()
    assert [(j["status"], j["rows_loaded"]) for j in jobs] == [("ACTIVE", 3), ("CREATE_FAILED", 0),
                                                                     ("CREATE_FAILED", 0)]
    assert "line 5" in jobs[1]["error"] and jobs[2]["error"] == "interrupted; nothing was written"
    assert interaction_count("jobs") == 3
