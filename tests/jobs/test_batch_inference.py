"""Batch inference jobs through the CLI and the Python API, on SQLite and PostgreSQL: the campaign's answers, bad
lines, Parquet and SQL-table outputs, outputs that cannot be written, and resuming an interrupted job."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from recsmith.data.readers import mask_url
from recsmith.jobs import batch
from recsmith.serving import batch as serving_batch
from recsmith.serving.campaign import CampaignRuntime, load_version
from recsmith.settings import Settings
from recsmith.store.store import Store


@pytest.fixture
def trained(movielens, db_url: str):
    """ml-latest-small in group 'ml' with an item-knn version and a genre filter; returns (cli, version id)."""
    result = movielens("train", "-g", "ml", "--recipe", "item-knn", "--param", "neighbors=50", "--no-metrics",
                       "--json")
    assert result.exit_code == 0, result.output
    version = json.loads(result.stdout)["id"]
    result = movielens("filter", "create", "no-genre", "-g", "ml", "--expression",
                       "EXCLUDE ItemID WHERE Items.GENRES IN ($G)")
    assert result.exit_code == 0, result.output
    return movielens, version


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_batch_answers_equal_the_campaigns(trained, db_url: str, tmp_path: Path) -> None:
    cli, version = trained
    store = Store(db_url)
    group_id = store.get_dataset_group("ml").id
    now = int(time.time())
    store.record_events(group_id, [{"user_id": "1", "item_id": "2571", "timestamp": now, "event_id": "e1"},
                                   {"user_id": "new-user", "item_id": "1", "timestamp": now, "event_id": "e2"}])
    out = tmp_path / "out.jsonl"
    result = cli("batch-inference", "create", "-g", "ml", "--solution-version", version, "--all-users", "-o", out,
                 "--num-results", 15, "--filter", "no-genre", "--filter-value", "G=Comedy", "--filter-value",
                 "G=Drama", "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["status"] == "ACTIVE" and job["lines_read"] == job["lines_written"] == 672 and job["lines_failed"] == 0
    lines = _lines(out)
    assert [line["input"]["userId"] for line in lines] == sorted(store.group_user_ids(group_id))
    runtime, deployed = CampaignRuntime(store), load_version(store, version)
    genres = {item: record.get("GENRES", "") for item, record in store.read_items(group_id).items()}
    for line in lines:
        answer = runtime.answer(deployed, user_id=line["input"]["userId"], num_results=15, filter="no-genre",
                                filter_values={"G": ["Comedy", "Drama"]}, log=False)
        assert line["error"] is None
        assert line["output"]["recommendedItems"] == [item["item_id"] for item in answer["items"]]
        assert line["output"]["scores"] == pytest.approx([item["score"] for item in answer["items"]], rel=1e-6)
        assert line["output"]["reasons"] == [item["reason"] for item in answer["items"]]
        assert len(line["output"]["recommendedItems"]) == 15
        assert not any({"Comedy", "Drama"} & set(genres[item].split("|"))
                       for item in line["output"]["recommendedItems"])
    by_user = {line["input"]["userId"]: line["output"] for line in lines}
    assert "2571" not in by_user["1"]["recommendedItems"]  # the live event counts: seen items are excluded
    assert by_user["new-user"]["reasons"][0] != "popular"  # folded in from its one event
    listed = json.loads(cli("batch-inference", "list", "-g", "ml", "--json").stdout)
    assert [j["id"] for j in listed] == [job["id"]]
    described = json.loads(cli("batch-inference", "describe", job["id"]).stdout)
    assert described["config"]["filter_values"] == {"G": ["Comedy", "Drama"]}


def test_bad_lines_get_errors_and_the_job_goes_on(trained, db_url: str, tmp_path: Path) -> None:
    cli, version = trained
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([
        '{"userId": "1"}',
        '{"userId": "no-such-user"}',
        '{"userId": ',
        '{"user": "1"}',
        '{"itemId": "1"}',
        '{"userId": "2", "itemList": ["1", "2", "3", "unknown-item"]}',
        '{"userId": "3", "filterValues": {"G": "Comedy"}}',
        '[1, 2]',
        '{"userId": true}',
        '{"itemId": "no-such-item"}',
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    result = cli("batch-inference", "create", "-g", "ml", "--solution-version", version, "-i", source, "-o", out,
                 "--num-results", 5, "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert (job["lines_read"], job["lines_written"], job["lines_failed"]) == (10, 3, 7)
    lines = _lines(out)
    errors = [line["error"] for line in lines]
    assert errors[0] is None and len(lines[0]["output"]["recommendedItems"]) == 5
    assert "line 2: user 'no-such-user' is not in dataset group 'ml'" in errors[1]
    assert errors[2].startswith("line 3: not JSON") and lines[2]["input"] == '{"userId": '
    assert "line 4: unknown field(s) 'user'" in errors[3]
    assert errors[4] is None and lines[4]["output"]["reasons"][0].startswith("similar to 1")
    ranked = lines[5]["output"]
    assert errors[5] is None and sorted(ranked["recommendedItems"]) == ["1", "2", "3", "unknown-item"]
    assert ranked["recommendedItems"][-1] == "unknown-item" and ranked["scores"][-1] is None
    assert "line 7: filterValues given, but the job has no filter" in errors[6]
    assert "line 8: expected a JSON object" in errors[7]
    assert "line 9: userId must be a non-empty string" in errors[8]
    assert "line 10: item 'no-such-item' is not in dataset group 'ml'" in errors[9]
    parquet = tmp_path / "out.parquet"
    result = cli("batch-inference", "create", "-g", "ml", "--solution-version", version, "-i", source, "-o", parquet,
                 "--num-results", 5, "--json")
    assert result.exit_code == 0, result.output
    table = pq.read_table(parquet).to_pylist()
    assert [row["recommendedItems"] for row in table] == [(line["output"] or {}).get("recommendedItems")
                                                          for line in lines]
    assert [row["error"] for row in table] == errors
    assert json.loads(table[0]["input"]) == {"userId": "1"}


def test_line_filter_values_override_the_jobs(trained, db_url: str, tmp_path: Path) -> None:
    cli, version = trained
    source = tmp_path / "in.jsonl"
    source.write_text('{"userId": "1", "filterValues": {"G": ["Drama"]}}\n{"userId": "1"}\n')
    out = tmp_path / "out.jsonl"
    result = cli("batch-inference", "create", "-g", "ml", "--solution-version", version, "-i", source, "-o", out,
                 "--filter", "no-genre", "--filter-value", "G=Comedy", "--json")
    assert result.exit_code == 0, result.output
    store = Store(db_url)
    genres = {item: set(str(record.get("GENRES", "")).split("|"))
              for item, record in store.read_items(store.get_dataset_group("ml").id).items()}
    own, default = (line["output"]["recommendedItems"] for line in _lines(out))
    assert not any("Drama" in genres[item] for item in own) and any("Comedy" in genres[item] for item in own)
    assert not any("Comedy" in genres[item] for item in default)


def test_output_table_is_replaced_atomically(trained, db_url: str, tmp_path: Path) -> None:
    cli, version = trained
    source = tmp_path / "in.jsonl"
    source.write_text('{"userId": "1"}\n{"userId": "2"}\n{"itemId": "1"}\n{"userId": "nobody"}\n')
    target = db_url  # the application's own database: here the test database itself
    for _ in range(2):  # the second run replaces the table, it does not append
        result = cli("batch-inference", "create", "-g", "ml", "--solution-version", version, "-i", source,
                     "--output-table", "recs", "--db-url", target, "--num-results", 7, "--json")
        assert result.exit_code == 0, result.output
    engine = sa.create_engine(target)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT user_id, source_item_id, rank, item_id, score, reason FROM recs "
                                    "ORDER BY user_id, source_item_id, rank")).all()
        names = sa.inspect(conn).get_table_names()
    engine.dispose()
    assert len(rows) == 21
    assert [r.rank for r in rows if r.user_id == "1"] == list(range(1, 8))
    assert {r.source_item_id for r in rows if r.user_id is None} == {"1"}
    assert "recs__recsmith_new" not in names
    job = json.loads(cli("batch-inference", "list", "-g", "ml", "--json").stdout)[-1]
    assert job["output"] == "table:recs" and job["config"]["db_url"] == mask_url(target)


@pytest.mark.parametrize("output, message", [
    ("{file}/out.jsonl", "cannot be written"),
    ("{tmp}/out.csv", "end the name in .jsonl"),
    ("nosuchprotocol://bucket/out.jsonl", "cannot be written"),
])
def test_unwritable_outputs_are_refused_before_any_work(trained, tmp_path: Path, output: str, message: str) -> None:
    cli, version = trained
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli("batch-inference", "create", "-g", "ml", "--solution-version", version, "--all-users", "-o",
                 output.format(file=blocker, tmp=tmp_path))
    assert result.exit_code == 1
    assert message in result.stderr
    assert json.loads(cli("batch-inference", "list", "-g", "ml", "--json").stdout) == []


def test_bad_requests_are_refused(trained, tmp_path: Path) -> None:
    cli, version = trained
    cases = [
        (["--all-users", "--output-table", "recs"], "needs --db-url"),
        (["--all-users", "--output-table", "bad name", "--db-url", "sqlite://"], "not a plain SQL name"),
        (["--all-users", "--output-table", "recs", "--db-url", "postgresql+psycopg://nobody@127.0.0.1:1/x"],
         "cannot connect"),
        (["-o", tmp_path / "o.jsonl"], "give one input"),
        (["-i", tmp_path / "missing.jsonl", "-o", tmp_path / "o.jsonl"], "input file not found"),
        (["--all-users", "-o", tmp_path / "o.jsonl", "--filter", "nope"], "has no filter 'nope'"),
        (["--all-users", "-o", tmp_path / "o.jsonl", "--filter", "no-genre", "--filter-value", 'G="Comedy'],
         "unterminated quoted value"),  # refused before the job starts, not on every line
    ]
    for args, message in cases:
        result = cli("batch-inference", "create", "-g", "ml", "--solution-version", version, *args)
        assert result.exit_code == 1, args
        assert message in result.stderr, (args, result.stderr)
    result = cli("batch-inference", "create", "-g", "ml", "--solution-version", 999, "--all-users", "-o",
                 tmp_path / "o.jsonl")
    assert result.exit_code == 1 and "no solution version 999" in result.stderr


def test_an_interrupted_job_resumes_without_duplicates(trained, db_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cli, version = trained
    settings = Settings(home=Path(os.environ["RECSMITH_HOME"]), database_url=db_url)
    store = Store(db_url)
    whole = tmp_path / "whole.jsonl"
    job = batch.create_batch_inference_job(store, settings, group="ml", solution_version_id=version, all_users=True,
                                           output=str(whole))
    batch.run_batch_job(store, settings, job["id"])

    monkeypatch.setattr(serving_batch, "PART_LINES", 100)
    answer = serving_batch.InferenceScorer.answer
    calls = {"n": 0}

    def interrupted(self, lines):  # the third part is interrupted (Ctrl-C)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return answer(self, lines)

    monkeypatch.setattr(serving_batch.InferenceScorer, "answer", interrupted)
    out = tmp_path / "resumed.jsonl"
    job = batch.create_batch_inference_job(store, settings, group="ml", solution_version_id=version, all_users=True,
                                           output=str(out), workers=1)
    with pytest.raises(KeyboardInterrupt):
        batch.run_batch_job(store, settings, job["id"])
    failed = store.get_batch_job(job["id"])
    assert failed["status"] == "CREATE_FAILED" and failed["parts_done"] == 2 and failed["lines_read"] == 200
    assert "resume with `recsmith batch-inference resume" in failed["error"]
    assert not out.exists()
    result = cli("batch-inference", "resume", job["id"], "--json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["status"] == "ACTIVE" and done["lines_read"] == 671 and done["parts_done"] == 7
    assert out.read_text() == whole.read_text()
    assert not batch.staging_folder(settings, job["id"]).exists()
    again = cli("batch-inference", "resume", job["id"])
    assert again.exit_code == 1 and "is done" in again.stderr


def test_worker_processes_write_what_one_process_writes(trained, db_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cli, version = trained
    settings = Settings(home=Path(os.environ["RECSMITH_HOME"]), database_url=db_url)
    store = Store(db_url)
    monkeypatch.setattr(serving_batch, "PART_LINES", 150)  # 5 parts over 671 users
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"out-{workers}.jsonl"
        job = batch.create_batch_inference_job(store, settings, group="ml", solution_version_id=version,
                                               all_users=True, output=str(out), workers=workers,
                                               filter="no-genre", filter_values={"G": ["Drama"]})
        done = batch.run_batch_job(store, settings, job["id"])
        assert done["parts_done"] == 5 and done["lines_written"] == 671 and done["config"]["workers"] == workers
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]
