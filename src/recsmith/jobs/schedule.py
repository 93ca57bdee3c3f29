"""Automatic retraining: train a solution again on a period and switch its campaigns when it is not worse.

Each run trains a new version of a solution (its recipe, params and config as stored, on the dataset group's
current interactions, with offline metrics), then compares the new version's offline metric with the metric of
the version each campaign of that solution serves. A campaign switches to the new version when
``candidate >= current * (1 - tolerance)``; otherwise it keeps its version. Every decision (``switched``,
``kept``, ``failed``, ``no-campaign``) is stored (:meth:`~recsmith.store.store.Store.record_retrain_decision`)
and logged.

Examples
--------
>>> retrain_once(store, settings, "shop", "knn", metric="ndcg@10", tolerance=0.02)  # doctest: +SKIP
{'decision': 'switched', 'reason': 'ndcg@10 0.3120 (version 8) vs 0.3051 (version 5), tolerance 2%: better by
2.3%', ...}
>>> run_schedule(store, settings, "shop", "knn", every_seconds=parse_period("6h"))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from recsmith.errors import ConfigError, NotFoundError
from recsmith.jobs.config import SolutionConfig
from recsmith.jobs.runs import FAILED, ProgressCallback, failure_message
from recsmith.jobs.training import DEFAULT_METRICS, metric_names, train_solution_version
from recsmith.settings import Settings
from recsmith.store.audit_records import acting_as
from recsmith.store.store import Store

logger = logging.getLogger(__name__)

DEFAULT_METRIC = "ndcg@10"
"""The offline metric compared by default (the training job stores ``ndcg@K`` for its cut-off ``K``)."""

DEFAULT_TOLERANCE = 0.02
"""By default the new version may be at most 2% worse (relative) than the one a campaign serves."""

UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
PERIOD = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*$", re.IGNORECASE)

#: Called with each run's decision, as :func:`retrain_once` returns it.
DecisionCallback = Callable[[dict[str, Any]], None]

AUDIT_ACTIONS = {"switched": "schedule.switch", "kept": "schedule.keep", "failed": "schedule.fail",
                 "no-campaign": "schedule.no_campaign"}
"""The audit log's action for each decision; the scheduler is the actor of its decisions and trainings."""

F = TypeVar("F", bound=Callable[..., Any])


def _as_scheduler(func: F) -> F:
    """Run ``func`` with the audit log's actor ``scheduler``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with acting_as("scheduler"):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def parse_period(text: str | float) -> float:
    """Seconds in a period written ``90``, ``90s``, ``30m``, ``6h``, ``1.5d``.

    Parameters
    ----------
    text : str or float
        A positive number of seconds, or a positive number followed by ``s``, ``m``, ``h`` or ``d``.

    Returns
    -------
    float
        The period in seconds.

    Raises
    ------
    ConfigError
        If the period cannot be read or is not positive (the message names the value).

    Examples
    --------
    >>> parse_period("30m")
    1800.0
    >>> parse_period("1.5h")
    5400.0
    """
    match = PERIOD.match(str(text))
    if match is None:
        raise ConfigError(f"invalid period {text!r}: write a number of seconds or a number followed by s, m, h or d, "
                          "e.g. 90, 30m, 6h, 1d")
    seconds = float(match.group(1)) * UNITS[match.group(2).lower()]
    if seconds <= 0:
        raise ConfigError(f"invalid period {text!r}: it must be longer than zero")
    return seconds


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """The time ``text`` names: an ISO 8601 time (UTC unless it gives an offset), or a period back from now as
    :func:`parse_period` reads it (``90s``, ``30m``, ``1h``, ``2d``).

    Raises
    ------
    ConfigError
        If it is neither (the message names the value and both forms).

    Examples
    --------
    >>> parse_since("1h", now=datetime(2026, 12, 1, 12, tzinfo=UTC)).isoformat()
    '2026-12-01T11:00:00+00:00'
    >>> parse_since("2026-12-01T09:30:00").isoformat()
    '2026-12-01T09:30:00+00:00'
    """
    text = str(text).strip()
    if PERIOD.match(text):
        return (now or datetime.now(UTC)) - timedelta(seconds=parse_period(text))
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"invalid time {text!r}: give an ISO 8601 time (2026-12-01T09:00:00Z) or a period back "
                          "from now (90s, 30m, 1h, 2d)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def metric_cutoff(metric: str) -> int:
    """The cut-off ``K`` of an offline metric the training job stores (``precision``, ``recall``, ``ndcg`` or
    ``coverage`` ``@K``); ConfigError naming the metrics it stores otherwise."""
    name, at, cutoff = metric.partition("@")
    known = [m.replace("@k", "") for m in DEFAULT_METRICS]
    if not at or name not in known or not cutoff.isdigit() or int(cutoff) < 1:
        raise ConfigError(f"unknown metric {metric!r}: training stores {', '.join(metric_names(10))} "
                          "(any cut-off, e.g. ndcg@20)")
    return int(cutoff)


def _check_tolerance(tolerance: float) -> None:
    if not 0 <= tolerance < 1:
        raise ConfigError(f"tolerance {tolerance!r} must be at least 0 and below 1 (0.02: at most 2% worse)")


def _find_solution(store: Store, group: str, solution: str) -> tuple[int, dict[str, Any]]:
    group_id = store.get_dataset_group(group).id
    saved = store.find_solution(group_id, solution)
    if saved is None:
        names = sorted({v["solution_name"] for v in store.list_solution_versions(group_id)})
        raise NotFoundError(f"dataset group {group!r} has no solution {solution!r}; its solutions: "
                            f"{', '.join(names) or '(none)'}. Train one first: recsmith train -g {group} "
                            f"--recipe RECIPE --solution {solution}")
    return group_id, saved


def _target_campaigns(store: Store, group: str, solution: str, names: list[str] | None) -> list[dict[str, Any]]:
    """The campaigns to consider: those named (each must exist), else every campaign serving the solution."""
    if names:
        return [store.get_campaign(group, name) for name in dict.fromkeys(names)]
    return [c for c in store.list_campaigns(group) if c["solution"] == solution]


def check_schedule(store: Store, group: str, solution: str, *, metric: str = DEFAULT_METRIC,
                   tolerance: float = DEFAULT_TOLERANCE, campaigns: list[str] | None = None) -> None:
    """Fail fast on what no run could fix: an unknown group, solution, campaign or metric, a bad tolerance.

    Raises
    ------
    NotFoundError
        If the dataset group, the solution or a named campaign does not exist.
    ConfigError
        If the metric is not one training stores or the tolerance is not in [0, 1).
    """
    metric_cutoff(metric)
    _check_tolerance(tolerance)
    _find_solution(store, group, solution)
    _target_campaigns(store, group, solution, campaigns)


def decision_versions(record: dict[str, Any]) -> str:
    """A recorded decision's versions as ``recsmith schedule history`` and the console show them: ``current ->
    candidate`` (either may be missing; empty when both are)."""
    current, candidate = record["current_version_id"], record["candidate_version_id"]
    if current is None and candidate is None:
        return ""
    return f"{'' if current is None else current} -> {'' if candidate is None else candidate}".strip()


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


def _compare(metric: str, tolerance: float, candidate_id: int, candidate: float, current_id: int,
             current: Any) -> tuple[bool, str]:
    """Whether to switch from ``current_id`` to ``candidate_id``, and the reason with the numbers."""
    if not isinstance(current, int | float) or isinstance(current, bool):
        return True, (f"current version {current_id} has no {metric} (trained without metrics?); switching to "
                      f"version {candidate_id} ({metric} {candidate:.4f})")
    numbers = (f"{metric} {candidate:.4f} (version {candidate_id}) vs {current:.4f} (version {current_id}), "
               f"tolerance {_percent(tolerance)}")
    change = (candidate - current) / current if current > 0 else 0.0
    if candidate >= current * (1 - tolerance):
        if candidate > current:
            verdict = f"better by {_percent(change)}" if current > 0 else "better"
        elif candidate == current:
            verdict = "equal"
        else:
            verdict = f"worse by {_percent(-change)}, within the tolerance"
        return True, f"{numbers}: {verdict}; switched"
    return False, f"{numbers}: worse by {_percent(-change)}, beyond the tolerance; kept version {current_id}"


def _decide(store: Store, group: str, solution: str, decision: str, reason: str, candidate_id: int | None,
            current_id: int | None, campaigns: list[str]) -> dict[str, Any]:
    """Record a decision and log it."""
    record = store.record_retrain_decision(group, solution, decision=decision, reason=reason,
                                           candidate_version_id=candidate_id, current_version_id=current_id,
                                           campaigns=campaigns)
    store.audit_quietly(AUDIT_ACTIONS[decision], f"dataset-groups/{group}/solutions/{solution}",
                        outcome="failed" if decision == "failed" else "ok",
                        detail={"decision_id": record["id"], "candidate_version_id": candidate_id,
                                "current_version_id": current_id, "campaigns": campaigns})
    level = logging.WARNING if decision == "failed" else logging.INFO
    where = f" (campaigns: {', '.join(campaigns)})" if campaigns else ""
    logger.log(level, "retraining %s/%s: %s%s: %s", group, solution, decision, where, reason)
    return record


def _failed_version(store: Store, group_id: int, solution: str, after: int) -> int | None:
    """The version a failed training made (:data:`~recsmith.jobs.runs.FAILED`, newer than ``after``), if it made
    one."""
    failed = [v["id"] for v in store.list_solution_versions(group_id)
              if v["solution_name"] == solution and v["id"] > after and v["status"] == FAILED]
    return failed[-1] if failed else None


@_as_scheduler
def retrain_once(
    store: Store,
    settings: Settings,
    group: str,
    solution: str,
    *,
    metric: str = DEFAULT_METRIC,
    tolerance: float = DEFAULT_TOLERANCE,
    campaigns: list[str] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Train a new version of a solution and switch its campaigns to it unless it is worse beyond the tolerance.

    Parameters
    ----------
    store, settings
        Where the data, the solution and the campaigns are, and where the artifact goes.
    group : str
        The dataset group.
    solution : str
        The solution's name; its stored recipe, params and config are trained again on the current data.
    metric : str
        The offline metric compared, one training stores: ``ndcg@K``, ``precision@K``, ``recall@K`` or
        ``coverage@K`` (the version is trained with metrics at cut-off ``K``).
    tolerance : float
        How much worse, relative, the new version may be: a campaign switches when
        ``candidate >= current * (1 - tolerance)``. A current version without the metric is always replaced.
    campaigns : list of str, optional
        Only these campaigns of the group (whatever they serve now); default: every campaign serving a version
        of this solution.
    progress : callable, optional
        Called with the training's stage names (see :func:`~recsmith.jobs.training.train_solution_version`).

    Returns
    -------
    dict
        The recorded decision (``id``, ``dataset_group``, ``solution``, ``decision``, ``reason``,
        ``candidate_version_id``, ``current_version_id``, ``campaigns``, ``created_at``) with ``decisions``: the
        list of every decision the run recorded. When the campaigns served different versions, one decision is
        recorded per current version, and the returned dict sums them up: ``id`` and ``current_version_id`` are
        None, ``decision`` is ``switched`` if any campaign switched, ``campaigns`` the campaigns switched.
        A failed training is recorded as ``failed`` and returned, not raised; campaigns keep their versions.

    Raises
    ------
    NotFoundError
        If the dataset group, the solution or a named campaign does not exist.
    ConfigError
        If the metric or the tolerance is invalid.
    """
    cutoff = metric_cutoff(metric)
    _check_tolerance(tolerance)
    group_id, saved = _find_solution(store, group, solution)
    targets = _target_campaigns(store, group, solution, campaigns)
    by_version: dict[int, list[str]] = {}
    for campaign in targets:
        by_version.setdefault(int(campaign["solution_version_id"]), []).append(campaign["name"])
    names = [c["name"] for c in targets]
    only_current = next(iter(by_version)) if len(by_version) == 1 else None
    newest = max((v["id"] for v in store.list_solution_versions(group_id)), default=0)
    logger.info("retraining %s/%s (%s, campaigns: %s)", group, solution, saved["recipe"], ", ".join(names) or "none")
    try:
        version = train_solution_version(
            store, settings, group, saved["recipe"], saved.get("params") or {},
            config=SolutionConfig(**(saved.get("config") or {})), solution_name=solution, with_metrics=True,
            k=cutoff, progress=progress,
        )
    except Exception as exc:  # KeyboardInterrupt and SystemExit go through
        logger.debug("retraining %s/%s failed", group, solution, exc_info=True)
        failed = _failed_version(store, group_id, solution, newest)
        made = f" (version {failed} is {FAILED})" if failed is not None else ""
        reason = f"training failed{made}: {failure_message(exc)}; campaigns keep their versions"
        record = _decide(store, group, solution, "failed", reason, failed, only_current, names)
        return record | {"decisions": [record]}
    candidate_id = int(version["id"])
    candidate = (version.get("metrics") or {}).get(metric)
    if not targets:
        shown = f"{metric} {candidate:.4f}" if isinstance(candidate, int | float) else f"no {metric}"
        reason = (f"no campaign of {group!r} serves solution {solution!r}; version {candidate_id} ({shown}) is "
                  f"trained but not deployed (recsmith campaign create NAME -g {group} "
                  f"--solution-version {candidate_id})")
        record = _decide(store, group, solution, "no-campaign", reason, candidate_id, None, [])
        return record | {"decisions": [record]}
    records: list[dict[str, Any]] = []
    if not isinstance(candidate, int | float) or isinstance(candidate, bool):
        reason = f"the new version {candidate_id} has no {metric}; campaigns keep their versions"
        for current_id, served in by_version.items():
            records.append(_decide(store, group, solution, "kept", reason, candidate_id, current_id, served))
    else:
        for current_id, served in by_version.items():
            current = (store.get_solution_version(current_id).get("metrics") or {}).get(metric)
            switch, reason = _compare(metric, tolerance, candidate_id, float(candidate), current_id, current)
            if switch:
                for name in served:
                    store.update_campaign(group, name, solution_version_id=candidate_id)
            records.append(_decide(store, group, solution, "switched" if switch else "kept", reason, candidate_id,
                                   current_id, served))
    if len(records) == 1:
        return records[0] | {"decisions": records}
    switched = [name for r in records if r["decision"] == "switched" for name in r["campaigns"]]
    return {
        "id": None, "dataset_group": group, "solution": solution,
        "decision": "switched" if switched else "kept",
        "reason": "; ".join(f"{', '.join(r['campaigns'])}: {r['reason']}" for r in records),
        "candidate_version_id": candidate_id, "current_version_id": None,
        "campaigns": switched or names, "created_at": records[-1]["created_at"], "decisions": records,
    }


def _record_failed_run(store: Store, group: str, solution: str, reason: str) -> dict[str, Any]:
    """Record (best effort) and log a run that failed outside the training."""
    try:
        record = _decide(store, group, solution, "failed", reason, None, None, [])
    except Exception:  # the store itself may be what failed: log, and let the next run try again
        logger.exception("retraining %s/%s: could not record the failed run (%s)", group, solution, reason)
        record = {"id": None, "dataset_group": group, "solution": solution, "decision": "failed", "reason": reason,
                  "candidate_version_id": None, "current_version_id": None, "campaigns": [], "created_at": None}
    return record | {"decisions": [record]}


@_as_scheduler
def run_schedule(
    store: Store,
    settings: Settings,
    group: str,
    solution: str,
    *,
    every_seconds: float,
    max_runs: int | None = None,
    stop: threading.Event | None = None,
    on_decision: DecisionCallback | None = None,
    **retrain_kwargs: Any,
) -> list[dict[str, Any]]:
    """Retrain a solution every period: the first run at once, the next ones ``every_seconds`` after each start.

    A run that raises is logged and recorded as ``failed``, and the schedule goes on. The group, solution,
    campaigns, metric and tolerance are checked once before the first run (those errors are raised).

    Parameters
    ----------
    store, settings, group, solution
        As for :func:`retrain_once`.
    every_seconds : float
        The period, from the start of one run to the start of the next (a run longer than the period is
        followed at once by the next); see :func:`parse_period`.
    max_runs : int, optional
        Stop after this many runs; default: run until stopped.
    stop : threading.Event, optional
        Set it (from another thread or a signal handler) to stop: a wait between runs ends at once, a run in
        progress finishes first.
    on_decision : callable, optional
        Called with each run's decision.
    **retrain_kwargs
        ``metric``, ``tolerance``, ``campaigns`` and ``progress``, passed to :func:`retrain_once`.

    Returns
    -------
    list of dict
        Each run's decision, oldest first. KeyboardInterrupt stops the schedule and returns them too (a run it
        interrupts is recorded as ``failed``; its training version is marked CREATE_FAILED).

    Raises
    ------
    ConfigError
        If ``every_seconds`` is negative, ``max_runs`` is below 1, or a retraining setting is invalid.
    NotFoundError
        If the group, the solution or a named campaign does not exist.
    """
    if every_seconds < 0:
        raise ConfigError(f"the period must not be negative, got {every_seconds} s")
    if max_runs is not None and max_runs < 1:
        raise ConfigError(f"max_runs must be at least 1, got {max_runs}")
    unknown = set(retrain_kwargs) - {"metric", "tolerance", "campaigns", "progress"}
    if unknown:
        raise ConfigError(f"unknown retraining option(s) {sorted(unknown)}: use metric, tolerance, campaigns, "
                          "progress")
    check_schedule(store, group, solution, **{k: v for k, v in retrain_kwargs.items() if k != "progress"})
    stop = stop or threading.Event()
    decisions: list[dict[str, Any]] = []
    in_run = False
    try:
        while not stop.is_set():
            started = time.monotonic()
            in_run = True
            try:
                decision = retrain_once(store, settings, group, solution, **retrain_kwargs)
            except Exception as exc:
                logger.exception("retraining %s/%s: the run failed", group, solution)
                decision = _record_failed_run(store, group, solution, f"the run failed: {failure_message(exc)}")
            in_run = False
            decisions.append(decision)
            if on_decision is not None:
                on_decision(decision)
            if max_runs is not None and len(decisions) >= max_runs:
                break
            wait = max(0.0, every_seconds - (time.monotonic() - started))
            logger.info("retraining %s/%s: next run in %.0f s", group, solution, wait)
            if stop.wait(wait):
                break
    except KeyboardInterrupt:
        logger.warning("retraining %s/%s: interrupted after %d run(s)", group, solution, len(decisions))
        if in_run:
            decision = _record_failed_run(store, group, solution,
                                          f"interrupted during the run (a training in progress is marked {FAILED})")
            decisions.append(decision)
            if on_decision is not None:
                on_decision(decision)
    return decisions
