"""Automatic retraining through the Python API: retrain_once, run_schedule, parse_period and the decision records."""

from __future__ import annotations

import logging
import threading

import pandas as pd
import pytest

from recsmith.data.schema import Schema
from recsmith.datasets.synthetic import synthetic_frame
from recsmith.errors import ConfigError, NotFoundError
from recsmith.jobs import schedule
from recsmith.jobs.schedule import parse_period, retrain_once, run_schedule
from recsmith.jobs.training import train_solution_version
from recsmith.settings import Settings
from recsmith.store.store import Store

GROUP = "shop"


@pytest.fixture
def deployed(store: Store, settings: Settings) -> int:
    """A small synthetic group, solution 'knn' (item-knn) trained once, campaign 'home' serving it."""
    group = store.create_dataset_group(GROUP)
    store.write_interactions(group.id, synthetic_frame(300, 150, 6000, seed=1),
                             schema=Schema.default("interactions").to_dict())
    version = train_solution_version(store, settings, GROUP, "item-knn", {"neighbors": 20}, solution_name="knn")
    assert version["status"] == "ACTIVE" and version["metrics"]["ndcg@10"] > 0
    store.create_campaign(GROUP, "home", version["id"])
    return int(version["id"])


def _ndcg(store: Store, version_id: int) -> float:
    return store.get_solution_version(version_id)["metrics"]["ndcg@10"]


# ------------------------------------------------------------------------------------------ parse_period
@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("6h", 21_600.0), ("1.5d", 129_600.0), (" 2H ", 7200.0),
    (".5m", 30.0), (45, 45.0),
])
def test_parse_period(text: str, seconds: float) -> None:
    assert parse_period(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5w", "-1m", "1h30m", "m", "0", "0s"])
def test_parse_period_rejects_bad_values_naming_them(text: str) -> None:
    with pytest.raises(ConfigError, match=f"invalid period {text!r}"):
        parse_period(text)


# ----------------------------------------------------------------------------------------- retrain_once
def test_same_metrics_switch_the_campaign(store: Store, settings: Settings, deployed: int,
                                          caplog: pytest.LogCaptureFixture) -> None:
    stages: list[str] = []
    with caplog.at_level(logging.INFO, logger="recsmith.jobs.schedule"):
        decision = retrain_once(store, settings, GROUP, "knn", progress=stages.append)
    new = decision["candidate_version_id"]
    assert decision["decision"] == "switched" and new != deployed
    assert decision["current_version_id"] == deployed and decision["campaigns"] == ["home"]
    value = _ndcg(store, deployed)
    assert _ndcg(store, new) == value  # same recipe, params, data and split: the same metrics
    assert f"ndcg@10 {value:.4f} (version {new}) vs {value:.4f} (version {deployed})" in decision["reason"]
    assert "equal" in decision["reason"]
    assert store.get_campaign(GROUP, "home")["solution_version_id"] == new
    version = store.get_solution_version(new)
    assert version["status"] == "ACTIVE" and version["solution_name"] == "knn" and version["params"]["neighbors"] == 20
    assert stages[0] == "read" and "metrics" in stages and stages[-1] == "done"
    assert [r["id"] for r in store.list_retrain_decisions(GROUP)] == [decision["id"]]
    assert decision["decisions"] == [{k: v for k, v in decision.items() if k != "decisions"}]
    assert any("switched" in r.getMessage() and "home" in r.getMessage() for r in caplog.records)


def test_a_worse_candidate_is_kept_beyond_the_tolerance_only(store: Store, settings: Settings, deployed: int) -> None:
    value = _ndcg(store, deployed)
    store.update_solution_version(deployed, metrics={"ndcg@10": value * 1.5})  # the current one now looks better
    kept = retrain_once(store, settings, GROUP, "knn")
    assert kept["decision"] == "kept" and kept["current_version_id"] == deployed
    assert "worse by 33.3%, beyond the tolerance" in kept["reason"] and "tolerance 2%" in kept["reason"]
    assert store.get_campaign(GROUP, "home")["solution_version_id"] == deployed
    assert store.get_solution_version(kept["candidate_version_id"])["status"] == "ACTIVE"  # trained, not deployed

    store.update_solution_version(deployed, metrics={"ndcg@10": value * 1.01})  # 1% better: within 2%
    strict = retrain_once(store, settings, GROUP, "knn", tolerance=0.0)
    assert strict["decision"] == "kept"
    assert store.get_campaign(GROUP, "home")["solution_version_id"] == deployed
    within = retrain_once(store, settings, GROUP, "knn", tolerance=0.02)
    assert within["decision"] == "switched" and "within the tolerance" in within["reason"]
    assert store.get_campaign(GROUP, "home")["solution_version_id"] == within["candidate_version_id"]
    assert [r["decision"] for r in store.list_retrain_decisions(GROUP, "knn")] == ["switched", "kept", "kept"]


def test_a_current_version_without_the_metric_is_replaced(store: Store, settings: Settings, deployed: int) -> None:
    store.update_solution_version(deployed, metrics={})
    decision = retrain_once(store, settings, GROUP, "knn")
    assert decision["decision"] == "switched"
    assert f"current version {deployed} has no ndcg@10" in decision["reason"]
    assert store.get_campaign(GROUP, "home")["solution_version_id"] == decision["candidate_version_id"]


def test_another_metric_and_cutoff(store: Store, settings: Settings, deployed: int) -> None:
    decision = retrain_once(store, settings, GROUP, "knn", metric="recall@5")
    assert decision["decision"] == "switched"  # the current version has recall@10, not recall@5
    assert "recall@5" in store.get_solution_version(decision["candidate_version_id"])["metrics"]
    with pytest.raises(ConfigError, match="unknown metric 'map@10'"):
        retrain_once(store, settings, GROUP, "knn", metric="map@10")
    with pytest.raises(ConfigError, match="tolerance"):
        retrain_once(store, settings, GROUP, "knn", tolerance=1.5)


def test_a_failed_training_is_recorded_and_keeps_the_campaign(store: Store, settings: Settings,
                                                              deployed: int) -> None:
    empty = pd.DataFrame({"USER_ID": [], "ITEM_ID": [], "TIMESTAMP": []})
    store.write_interactions(store.get_dataset_group(GROUP).id, empty, mode="full")
    decision = retrain_once(store, settings, GROUP, "knn")
    assert decision["decision"] == "failed"
    assert "training failed" in decision["reason"] and "no interactions" in decision["reason"]
    failed = decision["candidate_version_id"]
    assert failed is not None and store.get_solution_version(failed)["status"] == "CREATE_FAILED"
    assert decision["current_version_id"] == deployed and decision["campaigns"] == ["home"]
    assert store.get_campaign(GROUP, "home")["solution_version_id"] == deployed
    assert store.list_retrain_decisions(GROUP)[0]["decision"] == "failed"


def test_no_campaign_trains_without_switching(store: Store, settings: Settings, deployed: int) -> None:
    train_solution_version(store, settings, GROUP, "popularity", solution_name="pop")
    decision = retrain_once(store, settings, GROUP, "pop")
    assert decision["decision"] == "no-campaign" and decision["campaigns"] == []
    assert store.get_solution_version(decision["candidate_version_id"])["status"] == "ACTIVE"
    assert "no campaign" in decision["reason"]
    assert store.get_campaign(GROUP, "home")["solution_version_id"] == deployed  # serves another solution


def test_named_campaigns_only(store: Store, settings: Settings, deployed: int) -> None:
    store.create_campaign(GROUP, "side", deployed)
    count = len(store.list_solution_versions())
    with pytest.raises(NotFoundError, match="no campaign 'nope'"):
        retrain_once(store, settings, GROUP, "knn", campaigns=["nope"])
    assert len(store.list_solution_versions()) == count  # checked before training
    decision = retrain_once(store, settings, GROUP, "knn", campaigns=["side"])
    assert decision["decision"] == "switched" and decision["campaigns"] == ["side"]
    assert store.get_campaign(GROUP, "side")["solution_version_id"] == decision["candidate_version_id"]
    assert store.get_campaign(GROUP, "home")["solution_version_id"] == deployed


def test_campaigns_on_different_versions_are_decided_apart(store: Store, settings: Settings, deployed: int) -> None:
    second = train_solution_version(store, settings, GROUP, "item-knn", solution_name="knn")["id"]
    store.create_campaign(GROUP, "side", second)
    store.update_solution_version(deployed, metrics={"ndcg@10": 1.0})  # nothing beats home's version
    decision = retrain_once(store, settings, GROUP, "knn")
    new = decision["candidate_version_id"]
    assert decision["decision"] == "switched" and decision["campaigns"] == ["side"] and decision["id"] is None
    by_current = {r["current_version_id"]: r for r in decision["decisions"]}
    assert by_current[deployed]["decision"] == "kept" and by_current[deployed]["campaigns"] == ["home"]
    assert by_current[second]["decision"] == "switched" and by_current[second]["campaigns"] == ["side"]
    assert store.get_campaign(GROUP, "home")["solution_version_id"] == deployed
    assert store.get_campaign(GROUP, "side")["solution_version_id"] == new
    assert len(store.list_retrain_decisions(GROUP)) == 2


def test_unknown_group_or_solution(store: Store, settings: Settings, deployed: int) -> None:
    with pytest.raises(NotFoundError, match="no solution 'nope'.*knn"):
        retrain_once(store, settings, GROUP, "nope")
    with pytest.raises(NotFoundError, match="elsewhere"):
        retrain_once(store, settings, "elsewhere", "knn")
    assert store.list_retrain_decisions() == []


# ----------------------------------------------------------------------------------------- the records
def test_decision_records(store: Store, deployed: int) -> None:
    store.create_dataset_group("other")
    first = store.record_retrain_decision(GROUP, "a", decision="kept", reason="r1", candidate_version_id=None,
                                          current_version_id=deployed, campaigns=["home"])
    store.record_retrain_decision(GROUP, "b", decision="no-campaign", reason="r2", candidate_version_id=deployed,
                                  current_version_id=None, campaigns=[])
    store.record_retrain_decision("other", "a", decision="failed", reason="r3", candidate_version_id=None,
                                  current_version_id=None, campaigns=[])
    assert first["campaigns"] == ["home"] and first["dataset_group"] == GROUP and first["created_at"].tzinfo
    assert [r["reason"] for r in store.list_retrain_decisions()] == ["r3", "r2", "r1"]  # newest first
    assert [r["reason"] for r in store.list_retrain_decisions(GROUP)] == ["r2", "r1"]
    assert [r["reason"] for r in store.list_retrain_decisions(GROUP, "a")] == ["r1"]
    assert [r["reason"] for r in store.list_retrain_decisions(limit=1)] == ["r3"]
    with pytest.raises(ConfigError, match="unknown retraining decision 'maybe'"):
        store.record_retrain_decision(GROUP, "a", decision="maybe", reason="", candidate_version_id=None,
                                      current_version_id=None, campaigns=[])
    with pytest.raises(NotFoundError):
        store.list_retrain_decisions("missing")


# ----------------------------------------------------------------------------------------- run_schedule
def test_run_schedule_runs_max_runs(store: Store, settings: Settings, deployed: int) -> None:
    seen: list[str] = []
    decisions = run_schedule(store, settings, GROUP, "knn", every_seconds=0, max_runs=2,
                             on_decision=lambda d: seen.append(d["decision"]))
    assert [d["decision"] for d in decisions] == seen == ["switched", "switched"]
    assert decisions[1]["current_version_id"] == decisions[0]["candidate_version_id"]
    assert store.get_campaign(GROUP, "home")["solution_version_id"] == decisions[1]["candidate_version_id"]
    assert [r["id"] for r in store.list_retrain_decisions(GROUP)] == [decisions[1]["id"], decisions[0]["id"]]


def test_run_schedule_survives_a_failed_run(store: Store, settings: Settings, deployed: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = schedule.retrain_once

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(schedule, "retrain_once", flaky)
    decisions = run_schedule(store, settings, GROUP, "knn", every_seconds=0, max_runs=2, tolerance=0.05)
    assert [d["decision"] for d in decisions] == ["failed", "switched"]
    assert "RuntimeError: disk full" in decisions[0]["reason"]
    history = store.list_retrain_decisions(GROUP, "knn")
    assert [r["decision"] for r in history] == ["switched", "failed"]
    assert "tolerance 5%" in history[0]["reason"]  # the options reach retrain_once


def test_run_schedule_stops_on_the_event_during_the_wait(store: Store, settings: Settings, deployed: int) -> None:
    stop = threading.Event()
    first = threading.Event()
    result: list[list[dict]] = []
    thread = threading.Thread(target=lambda: result.append(run_schedule(
        store, settings, GROUP, "knn", every_seconds=3600, stop=stop, on_decision=lambda d: first.set())))
    thread.start()
    assert first.wait(30)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert [d["decision"] for d in result[0]] == ["switched"]


def test_run_schedule_stops_on_keyboard_interrupt(store: Store, settings: Settings, deployed: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(decision: dict) -> None:
        raise KeyboardInterrupt

    decisions = run_schedule(store, settings, GROUP, "knn", every_seconds=3600, on_decision=interrupt)
    assert [d["decision"] for d in decisions] == ["switched"]  # between runs: nothing more recorded

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(schedule, "retrain_once", interrupted)
    decisions = run_schedule(store, settings, GROUP, "knn", every_seconds=3600)
    assert [d["decision"] for d in decisions] == ["failed"] and "interrupted" in decisions[0]["reason"]
    assert [r["decision"] for r in store.list_retrain_decisions(GROUP)] == ["failed", "switched"]


def test_run_schedule_checks_before_the_first_run(store: Store, settings: Settings, deployed: int) -> None:
    with pytest.raises(ConfigError, match="negative"):
        run_schedule(store, settings, GROUP, "knn", every_seconds=-1)
    with pytest.raises(ConfigError, match="max_runs"):
        run_schedule(store, settings, GROUP, "knn", every_seconds=1, max_runs=0)
    with pytest.raises(NotFoundError, match="no solution 'nope'"):
        run_schedule(store, settings, GROUP, "nope", every_seconds=1)
    with pytest.raises(ConfigError, match="unknown metric"):
        run_schedule(store, settings, GROUP, "knn", every_seconds=1, metric="ndcg")
    with pytest.raises(ConfigError, match="colour"):
        run_schedule(store, settings, GROUP, "knn", every_seconds=1, colour="blue")
    assert store.list_retrain_decisions() == []
