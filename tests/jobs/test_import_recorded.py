"""Import jobs recorded before they run (the console's uploads), their progress in the store, and the bad rows of a
failed import in its report."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsmith.data.readers import format_of_name, parse_column_map
from recsmith.errors import ConfigError, DataError, NotFoundError
from recsmith.jobs.importing import import_dataset, record_import_job
from recsmith.store.data_records import progress_of
from recsmith.store.store import Store

ROWS = "user,item,when\nu1,i1,1700000000\nu2,i2,1700000100\nu1,i2,1700000200\n"
BAD = "user,item,when\nu1,i1,1700000000\nu2,i2,soon\nu1,i2,1700000200\n"
MAP = {"user": "USER_ID", "item": "ITEM_ID", "when": "TIMESTAMP"}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    store.create_dataset_group("shop")
    return store


def _file(tmp_path: Path, text: str, name: str = "upload-1234-events.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_recorded_job_runs_under_its_id_and_names_its_source(store: Store, tmp_path: Path) -> None:
    job_id = record_import_job(store, "shop", "interactions", "events.csv", "full")
    job = store.get_import_job(job_id)
    assert (job["status"], job["source"], job["progress"]) == ("CREATE_IN_PROGRESS", "events.csv", None)
    report = import_dataset(store, "shop", "interactions", str(_file(tmp_path, ROWS)), column_map=MAP,
                            job_id=job_id)
    assert (report.job_id, report.status, report.source, report.rows_loaded) == (job_id, "ACTIVE", "events.csv", 3)
    done = store.get_import_job(job_id)
    assert done["status"] == "ACTIVE" and done["rows_loaded"] == 3
    assert progress_of(done) == {"stage": "write", "done": 0, "total": 3}
    assert len(store.list_import_jobs(store.get_dataset_group("shop").id)) == 1  # no second job


def test_a_recorded_job_that_fails_names_the_upload_and_keeps_the_bad_rows(store: Store, tmp_path: Path) -> None:
    group_id = store.get_dataset_group("shop").id
    import_dataset(store, "shop", "interactions", str(_file(tmp_path, ROWS, "first.csv")), column_map=MAP)
    job_id = record_import_job(store, "shop", "interactions", "events.csv", "incremental")
    with pytest.raises(DataError, match=r"^events\.csv line 3, field TIMESTAMP: value 'soon'"):
        import_dataset(store, "shop", "interactions", str(_file(tmp_path, BAD)), column_map=MAP,
                       mode="incremental", job_id=job_id)
    job = store.get_import_job(job_id)
    assert job["status"] == "CREATE_FAILED" and "upload-1234" not in job["error"]
    assert [(r["line"], r["field"], r["value"]) for r in job["report"]["rejects_sample"]] == [(3, "TIMESTAMP", "soon")]
    assert store.count_interactions(group_id) == 3  # unchanged


def test_skipped_rows_are_sampled_in_the_report(store: Store, tmp_path: Path) -> None:
    report = import_dataset(store, "shop", "interactions", str(_file(tmp_path, BAD)), column_map=MAP,
                            on_error="skip", reject_path=tmp_path / "rejects.csv")
    assert (report.rows_loaded, report.rows_rejected) == (2, 1)
    assert report.rejects_sample == [{"line": 3, "field": "TIMESTAMP", "value": "soon",
                                      "reason": report.rejects_sample[0]["reason"]}]
    assert "not a number" in report.rejects_sample[0]["reason"]


def test_a_recorded_job_that_cannot_start_is_recorded_as_failed(store: Store, tmp_path: Path) -> None:
    job_id = record_import_job(store, "shop", "interactions", "events.csv", "full")
    with pytest.raises(ConfigError, match="--infer-schema is for users and items"):
        import_dataset(store, "shop", "interactions", str(_file(tmp_path, ROWS)), infer_schema=True, job_id=job_id)
    job = store.get_import_job(job_id)
    assert job["status"] == "CREATE_FAILED" and "--infer-schema" in job["error"]
    other = record_import_job(store, "shop", "items", "items.csv", "full")
    with pytest.raises(ConfigError, match=f"import job {other} is a CREATE_IN_PROGRESS full import of items"):
        import_dataset(store, "shop", "interactions", str(_file(tmp_path, ROWS)), column_map=MAP, job_id=other)
    assert store.get_import_job(other)["status"] == "CREATE_FAILED"


def test_recording_needs_an_existing_group_and_known_choices(store: Store) -> None:
    with pytest.raises(NotFoundError):
        record_import_job(store, "nowhere", "interactions", "x.csv", "full")
    with pytest.raises(ConfigError, match="unknown dataset type 'ratings'"):
        record_import_job(store, "shop", "ratings", "x.csv", "full")
    with pytest.raises(ConfigError, match="unknown import mode 'append'"):
        record_import_job(store, "shop", "interactions", "x.csv", "append")


def test_progress_writes_are_throttled_within_a_stage(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from recsmith.jobs import importing

    job_id = record_import_job(store, "shop", "interactions", "x.csv", "full")
    writes: list[dict] = []
    monkeypatch.setattr(store, "set_import_progress", lambda _, progress: writes.append(progress))
    progress = importing._Progress(store, job_id)
    for done in range(100):
        progress("write", done, 100)
    progress("validate", 0, 100)
    assert [w["stage"] for w in writes] == ["write", "validate"]  # a new stage always, the same one at most 4/s


def test_column_maps_and_format_names() -> None:
    assert parse_column_map(" userId=USER_ID , title=-,") == {"userId": "USER_ID", "title": "-"}
    assert parse_column_map(None) == {}
    with pytest.raises(ConfigError, match=r"^--map: 'userId' is not of the form SOURCE=FIELD"):
        parse_column_map("userId")
    with pytest.raises(ConfigError, match=r"^column_map: '=USER_ID'"):
        parse_column_map("=USER_ID", "column_map")
    assert [format_of_name(n) for n in ("a.CSV", "b.tsv.gz", "c.parquet", "d.ndjson", "e.dat", "f.xlsx", "g")] == [
        "csv", "tsv", "parquet", "jsonl", "csv", None, None]
