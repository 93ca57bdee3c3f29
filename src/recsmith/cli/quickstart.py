"""``recsmith quickstart``: import, evaluate, train and recommend on the bundled MovieLens data, offline."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from recsmith.cli.app import handle_errors, open_store, out, stage_progress
from recsmith.cli.evaluate import build_experiment, print_leaderboard, run_evaluation
from recsmith.cli.recommend import print_recommendations, recommendations_for
from recsmith.settings import Settings
from recsmith.store.store import Store


@handle_errors
def quickstart(
    group: Annotated[str, typer.Option("--dataset-group", "-g", help="Dataset group to create.")] = "quickstart",
    user: Annotated[str, typer.Option(help="User to recommend for.")] = "1",
) -> None:
    """Import the bundled MovieLens data, train and evaluate two recipes, recommend for one user (offline)."""
    from recsmith.datasets import load_dataset
    from recsmith.jobs.training import train_solution_version

    started = time.perf_counter()
    settings = Settings()
    store = open_store(settings)
    out.rule("[bold]recsmith quickstart")
    out.print(f"store: {settings.resolved_database_url()}")
    with stage_progress("load ml-latest-small", {"read": "reading", "write": "writing"}) as progress:
        reports = load_dataset(store, "ml-latest-small", group, progress=progress)
    for report in reports:
        out.print(f"imported {report.rows_loaded:,} {report.dataset_type} rows in {report.duration_seconds:.2f} s")
    run = run_evaluation(store, group, build_experiment(None, "popularity,item-knn", None, {}, {}))
    print_leaderboard(run)
    stages = {"read": "reading", "metrics": "measuring", "fit": "fitting", "save": "saving"}
    with stage_progress("train item-knn", stages) as progress:  # with its offline metrics, for the console
        version = train_solution_version(store, settings, group, "item-knn", progress=progress)
    recs = recommendations_for(store, version["id"], user, 10)
    print_recommendations(recs, f"top 10 movies for user {user} (item-knn, solution version {version['id']})")
    campaign = _deploy(store, group, version["id"])
    out.print(f"done in {time.perf_counter() - started:.1f} s. Next:")
    for line in (
        f"recsmith serve    # then open http://127.0.0.1:8000/console (campaign {campaign!r} serves version "
        f"{version['id']}; sign in with the key the first start prints)",
        f"recsmith describe --dataset-group {group}",
        f"recsmith recommend --solution-version {version['id']} --user 42 --num 10",
        f"recsmith evaluate --dataset-group {group} --recipes popularity,item-knn --param item-knn.neighbors=50",
        "recsmith import interactions YOUR.csv --dataset-group shop --map userId=USER_ID,itemId=ITEM_ID",
    ):
        out.print(f"  [cyan]{line}[/]", soft_wrap=True)


def _deploy(store: Store, group: str, version_id: int) -> str:
    """Deploy ``version_id`` as the group's campaign ``knn`` (made, or switched to it on a second run)."""
    name = "knn"
    if any(c["name"] == name for c in store.list_campaigns(group)):
        store.update_campaign(group, name, solution_version_id=version_id)
    else:
        store.create_campaign(group, name, version_id)
    return name
