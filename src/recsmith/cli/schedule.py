"""CLI for automatic retraining: ``recsmith schedule run`` and ``recsmith schedule history``."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from recsmith.cli.app import GroupOption, JsonOption, err, handle_errors, open_store, out, print_json
from recsmith.errors import ConfigError
from recsmith.settings import Settings

schedule_app = typer.Typer(
    help="Automatic retraining: retrain a solution on a period and switch its campaigns to the new version "
         "when its offline metric is not worse beyond a tolerance; every decision is recorded.",
    no_args_is_help=True,
)

COLOURS = {"switched": "green", "kept": "yellow", "failed": "red", "no-campaign": "cyan"}
STAGES = {"read": "reading interactions", "metrics": "measuring offline metrics", "fit": "fitting", "save": "saving"}


def _clock(epoch: float | None = None) -> str:
    """A time in UTC, as ``schedule history`` shows them."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _print_decision(decision: dict[str, Any]) -> None:
    """One line per recorded decision (several when the campaigns served different versions)."""
    for record in decision.get("decisions") or [decision]:
        colour = COLOURS.get(record["decision"], "white")
        campaigns = f" [{', '.join(record['campaigns'])}]" if record["campaigns"] else ""
        out.print(f"[dim]{_clock()}[/] [bold {colour}]{record['decision']}[/]{escape(campaigns)}: "
                  f"{escape(record['reason'])}", soft_wrap=True, highlight=False)


@contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM (``docker stop``, systemd) sets ``stop``: the run in progress finishes, then the schedule ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        err.print("[yellow]SIGTERM: stopping after the run in progress[/]")
        stop.set()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@schedule_app.command("run")
@handle_errors
def schedule_run(
    group: GroupOption,
    solution: Annotated[str, typer.Option(help="The solution to retrain (its stored recipe, params and config).")],
    every: Annotated[str | None, typer.Option(help="Period between runs: 90 (seconds), 30m, 6h, 1d.")] = None,
    metric: Annotated[str, typer.Option(help="Offline metric compared: ndcg@K, precision@K, recall@K, coverage@K.")]
    = "ndcg@10",
    tolerance: Annotated[float, typer.Option(
        help="How much worse (relative) the new version may be and still replace the current one.")] = 0.02,
    campaign: Annotated[list[str] | None, typer.Option(
        "--campaign", help="Only this campaign (repeat for several); default: every campaign of the solution.")]
    = None,
    once: Annotated[bool, typer.Option("--once", help="Run one retraining now and exit (for cron).")] = False,
    max_runs: Annotated[int | None, typer.Option(help="Stop after this many runs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each decision as one line of JSON.")] = False,
) -> None:
    """Retrain a solution on a period (the first run at once) and switch its campaigns when it is not worse.

    Each run trains a new version with offline metrics and compares its metric with the version each campaign
    serves: a campaign switches when new >= current * (1 - tolerance). Decisions are switched, kept, failed or
    no-campaign; `recsmith schedule history` lists them. A failed run is recorded and the schedule goes on;
    Ctrl-C or SIGTERM stops it. With --once the exit status is 1 when the run failed.
    """
    from recsmith.jobs.schedule import check_schedule, parse_period, retrain_once, run_schedule

    if once and (every is not None or max_runs is not None):
        raise ConfigError("--once runs one retraining now; drop --every and --max-runs")
    if not once and every is None:
        raise ConfigError("say when to retrain: --every PERIOD (e.g. 6h) or --once")
    every_seconds = parse_period(every) if every is not None else 0.0
    if max_runs is not None and max_runs < 1:
        raise ConfigError(f"--max-runs must be at least 1, got {max_runs}")
    settings = Settings()
    store = open_store(settings)
    options: dict[str, Any] = {"metric": metric, "tolerance": tolerance, "campaigns": campaign or None}
    check_schedule(store, group, solution, **options)

    def progress(stage: str) -> None:
        if stage in STAGES:
            err.print(f"[dim]{_clock()}[/] {solution}: {STAGES[stage]}", highlight=False)

    def report(decision: dict[str, Any]) -> None:
        if as_json:
            sys.stdout.write(json.dumps(decision, default=str) + "\n")
            sys.stdout.flush()
        else:
            _print_decision(decision)

    if once:
        decision = retrain_once(store, settings, group, solution, progress=progress, **options)
        report(decision)
        if decision["decision"] == "failed":
            raise typer.Exit(1)
        return

    runs: list[str] = []
    run_started: list[float | None] = [None]  # set when a run starts reading, to say when the next one starts

    def staged(stage: str) -> None:
        if stage == "read":
            run_started[0] = time.monotonic()
        progress(stage)

    def announce(decision: dict[str, Any]) -> None:
        report(decision)
        runs.append(decision["decision"])
        started, run_started[0] = run_started[0], None
        if max_runs is None or len(runs) < max_runs:
            elapsed = 0.0 if started is None else time.monotonic() - started
            err.print(f"[dim]next run at {_clock(time.time() + max(0.0, every_seconds - elapsed))} UTC[/]",
                      highlight=False)

    scope = f"campaigns {', '.join(campaign)}" if campaign else "its campaigns"
    err.print(f"retraining solution [bold]{escape(solution)}[/] of {group!r} every {every} and switching {scope} "
              f"when its {metric} is at most {tolerance * 100:.3g}% worse; times in UTC; Ctrl-C stops", highlight=False)
    stop = threading.Event()
    with _stop_on_sigterm(stop):
        decisions = run_schedule(store, settings, group, solution, every_seconds=every_seconds, max_runs=max_runs,
                                 stop=stop, on_decision=announce, progress=staged, **options)
    counts = {name: sum(d["decision"] == name for d in decisions) for name in COLOURS}
    summary = ", ".join(f"{count} {name}" for name, count in counts.items() if count) or "no run"
    err.print(f"schedule stopped after {len(decisions)} run(s): {summary}", highlight=False)


@schedule_app.command("history")
@handle_errors
def schedule_history(
    group: GroupOption,
    solution: Annotated[str | None, typer.Option(help="Only this solution's decisions.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the newest N decisions.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The decisions of automatic retraining, newest first."""
    from recsmith.jobs.schedule import decision_versions

    records = open_store().list_retrain_decisions(group, solution, limit)
    if as_json:
        print_json(records)
        return
    table = Table(title=f"retraining decisions of {group}")
    for header in ("id", "when (UTC)", "solution", "decision", "version"):
        table.add_column(header, no_wrap=True)
    table.add_column("campaigns")
    table.add_column("reason", ratio=1, overflow="fold")
    for r in records:
        colour = COLOURS.get(r["decision"], "white")
        when = r["created_at"].strftime("%Y-%m-%d %H:%M") if r["created_at"] is not None else ""
        table.add_row(str(r["id"]), when, escape(r["solution"]), f"[{colour}]{r['decision']}[/]", decision_versions(r),
                      escape(", ".join(r["campaigns"])), escape(r["reason"]))
    out.print(table)
    if not records:
        out.print(f"no decisions yet; start one with: recsmith schedule run -g {group} --solution NAME --every 6h")
