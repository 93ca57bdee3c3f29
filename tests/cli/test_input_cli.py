"""Bad input at the CLI's entrances: non-finite numbers and NUL characters in `events put` and `import`, filters
over the limits in `recommend`, and `train` / `schedule run` over a bad row stored before these checks."""

from __future__ import annotations

import csv
import json
import math

import pytest

from recsmith.data.filters import FILTER_MAX_VALUES
from recsmith.data.schema import Schema
from recsmith.datasets.synthetic import synthetic_frame
from recsmith.store.store import Store


@pytest.fixture
def shop(db_url: str):
    """A store with group 'shop': 2,000 synthetic interactions, and one stored row with an infinite value."""
    store = Store(db_url)
    store.migrate()
    group = store.create_dataset_group("shop")
    store.write_interactions(group.id, synthetic_frame(100, 80, 2000, seed=7),
                             schema=Schema.default("interactions").to_dict())
    store.write_events(group.id, [{"event_id": "poison", "user_id": "u-bad", "item_id": "i-bad", "timestamp": 10,
                                   "event_value": math.inf}])
    yield store, group.id
    store.close()


@pytest.mark.parametrize(("value", "shown"), [("1e309", "inf"), ("NaN", "nan"), ("-Infinity", "-inf")])
def test_events_put_refuses_non_finite_values_naming_the_line_and_field(cli, db_url, tmp_path, value, shown):
    store = Store(db_url)
    store.migrate()
    group = store.create_dataset_group("shop")
    source = tmp_path / "events.jsonl"
    source.write_text('{"user_id": "u1", "session_id": "s1", "event_type": "view", "item_id": "a", "sent_at": 1}\n'
                      '{"user_id": "u1", "session_id": "s1", "event_type": "rate", "item_id": "b", "sent_at": 2, '
                      f'"event_value": {value}}}\n')
    result = cli("events", "put", source, "-g", "shop")
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert f"events.jsonl, line 2: event_value: {shown} is not a finite number" in message
    assert store.count_interactions(group.id) == 0  # nothing of the file was written
    store.close()


def test_events_put_refuses_nul_characters(cli, db_url, tmp_path):
    store = Store(db_url)
    store.migrate()
    group = store.create_dataset_group("shop")
    source = tmp_path / "events.jsonl"
    source.write_text('{"user_id": "u\\u0000", "session_id": "s1", "event_type": "view", "item_id": "a", '
                      '"sent_at": 1}\n')
    result = cli("events", "put", source, "-g", "shop")
    assert result.exit_code == 1
    assert "line 1: user_id: holds a NUL character" in " ".join(result.output.split())
    source.write_text('{"user_id": "u1", "session_id": "s1", "event_type": "view", "item_id": "a", "sent_at": 1, '
                      '"properties": {"note": "x\\u0000y"}}\n')
    result = cli("events", "put", source, "-g", "shop")
    assert result.exit_code == 1 and "properties.note" in result.output
    assert store.count_interactions(group.id) == 0
    store.close()


def test_import_rejects_non_finite_and_nul_rows_and_reports_them(cli, tmp_path):
    source = tmp_path / "events.csv"
    source.write_bytes(b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE\nu1,a,100,1\nu2,b,101,inf\nu3,c\x00,102,2\n"
                       b"u4,d,103,3\n")
    failed = cli("import", "interactions", source, "-g", "imp")
    assert failed.exit_code == 1
    assert "line 3, field EVENT_VALUE: value 'inf' is not a finite number" in " ".join(failed.output.split())
    rejects = tmp_path / "rejects.csv"
    result = cli("import", "interactions", source, "-g", "imp", "--on-error", "skip", "--reject-file", rejects,
                 "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["rows_read"], report["rows_loaded"], report["rows_rejected"]) == (4, 2, 2)
    with rejects.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert [row[:3] for row in rows[1:]] == [["3", "EVENT_VALUE", "inf"], ["4", "ITEM_ID", "c\\x00"]]
    assert rows[1][3].startswith("is not a finite number") and rows[2][3].startswith("holds a NUL character")


def test_train_over_a_stored_infinite_value_succeeds_and_reports_the_skipped_row(cli, shop):
    result = cli("train", "-g", "shop", "--recipe", "item-knn", "--json")
    assert result.exit_code == 0, result.output
    version = json.loads(result.stdout)
    assert version["status"] == "ACTIVE" and version["metrics"]["rows_skipped"] == 1
    assert version["num_items"] == 80  # the poisoned row's item is not in the model
    human = cli("train", "-g", "shop", "--recipe", "popularity", "--no-metrics")
    assert human.exit_code == 0, human.output
    assert "rows_skipped: 1" in human.stdout


def test_a_scheduled_retrain_over_a_stored_infinite_value_succeeds(cli, shop):
    store, _ = shop
    assert cli("train", "-g", "shop", "--recipe", "item-knn", "--solution", "knn").exit_code == 0
    first = store.list_solution_versions()[-1]["id"]
    assert cli("campaign", "create", "-g", "shop", "--name", "home", "--solution-version", first).exit_code == 0
    result = cli("schedule", "run", "-g", "shop", "--solution", "knn", "--once", "--json")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout.splitlines()[0])
    candidate = store.get_solution_version(decision["candidate_version_id"])
    assert candidate["status"] == "ACTIVE" and candidate["metrics"]["rows_skipped"] == 1


def test_recommend_refuses_filters_over_the_limits(cli, shop):
    trained = cli("train", "-g", "shop", "--recipe", "popularity", "--no-metrics", "--json")
    version = json.loads(trained.stdout)["id"]
    huge = cli("recommend", "--solution-version", version, "--user", "u1",
               "--filter", "INCLUDE ItemID WHERE Items.PRICE < " + "9" * 5000)
    assert huge.exit_code == 1 and "5,000 digits" in huge.output and "position 35" in huge.output
    deep = cli("recommend", "--solution-version", version, "--user", "u1",
               "--filter", "INCLUDE ItemID WHERE " + "(" * 400 + 'Items.GENRE IN ("a")' + ")" * 400)
    assert deep.exit_code == 1 and "levels deep" in deep.output
    many = [arg for n in range(FILTER_MAX_VALUES + 1) for arg in ("--filter-value", f"G=v{n}")]
    values = cli("recommend", "--solution-version", version, "--user", "u1",
                 "--filter", "EXCLUDE ItemID WHERE Items.GENRE IN ($G)", *many)
    assert values.exit_code == 1 and "$G has 101 values" in values.output
