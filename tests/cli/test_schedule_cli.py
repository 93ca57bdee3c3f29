"""``recsmith schedule run`` and ``recsmith schedule history`` through the CLI, on a small synthetic group."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recsmith.store.store import Store


@pytest.fixture
def shop(cli, db_url: str):
    """Group 'shop' (synthetic), solution 'knn' trained once and served by campaign 'home'; gives (cli, version)."""
    result = cli("datasets", "synthetic", "-g", "shop", "--users", 300, "--items", 150, "--interactions", 6000,
                 "--seed", 1, "--json")
    assert result.exit_code == 0, result.output
    result = cli("train", "-g", "shop", "--recipe", "item-knn", "--param", "neighbors=20", "--solution", "knn",
                 "--json")
    assert result.exit_code == 0, result.output
    version = json.loads(result.stdout)["id"]
    assert cli("campaign", "create", "-g", "shop", "--name", "home", "--solution-version", version).exit_code == 0
    return cli, version


@pytest.fixture
def store(db_url: str):
    instance = Store(db_url)
    yield instance
    instance.close()


def _serving(cli) -> int:
    result = cli("campaign", "describe", "home", "-g", "shop")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["solution_version_id"]


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_once_switches_the_campaign(shop) -> None:
    cli, version = shop
    result = cli("schedule", "run", "-g", "shop", "--solution", "knn", "--once", "--json")
    assert result.exit_code == 0, result.output
    [decision] = _lines(result.stdout)
    assert decision["decision"] == "switched" and decision["current_version_id"] == version
    assert decision["candidate_version_id"] > version and decision["campaigns"] == ["home"]
    assert _serving(cli) == decision["candidate_version_id"]
    assert "fitting" in result.stderr  # the stage lines

    human = cli("schedule", "run", "-g", "shop", "--solution", "knn", "--once")
    assert human.exit_code == 0, human.output
    assert "switched" in human.stdout and "[home]" in human.stdout and "ndcg@10" in human.stdout


def test_periodic_runs_then_history(shop) -> None:
    cli, version = shop
    result = cli("schedule", "run", "-g", "shop", "--solution", "knn", "--every", "0.05s", "--max-runs", 2,
                 "--json")
    assert result.exit_code == 0, result.output
    decisions = _lines(result.stdout)
    assert [d["decision"] for d in decisions] == ["switched", "switched"]
    assert "stopped after 2 run(s): 2 switched" in result.stderr
    assert _serving(cli) == decisions[1]["candidate_version_id"]

    history = cli("schedule", "history", "-g", "shop", "--json")
    assert history.exit_code == 0, history.output
    records = json.loads(history.stdout)
    assert [r["id"] for r in records] == [decisions[1]["id"], decisions[0]["id"]]
    assert records[1]["current_version_id"] == version

    table = cli("schedule", "history", "-g", "shop")
    assert table.exit_code == 0 and table.stdout.count("switched") >= 2 and "knn" in table.stdout
    assert json.loads(cli("schedule", "history", "-g", "shop", "--solution", "other", "--json").stdout) == []
    assert len(json.loads(cli("schedule", "history", "-g", "shop", "--limit", 1, "--json").stdout)) == 1


def test_kept_failed_and_no_campaign_are_recorded(shop, store: Store) -> None:
    cli, version = shop
    store.update_solution_version(version, metrics={"ndcg@10": 0.99})  # the served version now looks far better
    kept = cli("schedule", "run", "-g", "shop", "--solution", "knn", "--once", "--tolerance", 0.1, "--json")
    assert kept.exit_code == 0, kept.output
    [decision] = _lines(kept.stdout)
    assert decision["decision"] == "kept" and "beyond the tolerance" in decision["reason"]
    assert "tolerance 10%" in decision["reason"] and "0.9900" in decision["reason"]
    assert _serving(cli) == version

    assert cli("train", "-g", "shop", "--recipe", "popularity", "--solution", "pop").exit_code == 0
    lone = cli("schedule", "run", "-g", "shop", "--solution", "pop", "--once", "--json")
    assert lone.exit_code == 0, lone.output
    assert _lines(lone.stdout)[0]["decision"] == "no-campaign"

    group_id = store.get_dataset_group("shop").id
    store.write_interactions(group_id, pd.DataFrame({"USER_ID": [], "ITEM_ID": [], "TIMESTAMP": []}), mode="full")
    failed = cli("schedule", "run", "-g", "shop", "--solution", "knn", "--once")
    assert failed.exit_code == 1
    assert "failed" in failed.stdout and "no interactions" in failed.stdout
    assert _serving(cli) == version

    records = json.loads(cli("schedule", "history", "-g", "shop", "--json").stdout)
    assert [(r["solution"], r["decision"]) for r in records] == [("knn", "failed"), ("pop", "no-campaign"),
                                                                ("knn", "kept")]
    knn_only = json.loads(cli("schedule", "history", "-g", "shop", "--solution", "knn", "--json").stdout)
    assert [r["decision"] for r in knn_only] == ["failed", "kept"]


def test_named_campaign_only(shop) -> None:
    cli, version = shop
    assert cli("campaign", "create", "-g", "shop", "--name", "side", "--solution-version", version).exit_code == 0
    result = cli("schedule", "run", "-g", "shop", "--solution", "knn", "--once", "--campaign", "side", "--json")
    assert result.exit_code == 0, result.output
    [decision] = _lines(result.stdout)
    assert decision["campaigns"] == ["side"]
    assert _serving(cli) == version  # home untouched


@pytest.mark.parametrize(("args", "message"), [
    (["-g", "nowhere", "--solution", "knn", "--once"], "nowhere"),
    (["-g", "shop", "--solution", "nope", "--once"], "no solution 'nope'"),
    (["-g", "shop", "--solution", "knn", "--once", "--campaign", "nope"], "no campaign 'nope'"),
    (["-g", "shop", "--solution", "knn", "--every", "5w"], "invalid period '5w'"),
    (["-g", "shop", "--solution", "knn"], "--every PERIOD"),
    (["-g", "shop", "--solution", "knn", "--once", "--every", "1h"], "--once"),
    (["-g", "shop", "--solution", "knn", "--every", "1h", "--max-runs", "0"], "--max-runs"),
    (["-g", "shop", "--solution", "knn", "--once", "--metric", "map"], "unknown metric 'map'"),
    (["-g", "shop", "--solution", "knn", "--once", "--tolerance", "2"], "tolerance"),
])
def test_errors_exit_non_zero_with_a_message(shop, args: list[str], message: str) -> None:
    cli, version = shop
    result = cli("schedule", "run", *args)
    assert result.exit_code == 1
    assert "error:" in result.stderr and message in result.stderr
    assert json.loads(cli("schedule", "history", "-g", "shop", "--json").stdout) == []  # nothing ran
    assert _serving(cli) == version


def test_history_of_an_unknown_group(cli) -> None:
    result = cli("schedule", "history", "-g", "nowhere")
    assert result.exit_code == 1 and "nowhere" in result.stderr
