"""``recsmith dataset-groups list|delete``: the dataset groups of the store, and deleting one with everything in
it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from recsmith.cli.app import JsonOption, confirm_or_exit, err, handle_errors, open_store, out, print_json
from recsmith.errors import ConflictError
from recsmith.settings import Settings

groups_app = typer.Typer(help="Dataset groups: list them, delete one with everything in it.", no_args_is_help=True)

COUNT_LABELS = {"interactions": "interaction(s)", "users": "user record(s)", "items": "item record(s)",
                "solution_versions": "solution version(s)", "campaigns": "campaign(s)", "filters": "filter(s)",
                "import_jobs": "import job(s)"}


def _campaigns_in_the_way(group: str, campaigns: Sequence[str]) -> ConflictError:
    return ConflictError(f"dataset group {group!r} has {len(campaigns)} campaign(s): {', '.join(campaigns)}; "
                         f"delete them first (`recsmith campaign delete {campaigns[0]} -g {group}`), or pass --force "
                         "to delete them with the group", campaigns=campaigns)


@groups_app.command("list")
@handle_errors
def groups_list(as_json: JsonOption = False) -> None:
    """List dataset groups with their counts."""
    store = open_store()
    counts = store.dataset_group_counts()
    records = [{"name": g.name, "created_at": g.created_at, **counts.get(g.id, {})}
               for g in store.list_dataset_groups()]
    if as_json:
        print_json(records)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  caption="users, items: metadata records; versions: solution versions; dates UTC")
    table.add_column("dataset group", overflow="fold", min_width=13)  # a long name folds; the numbers stay whole
    for name in ("interactions", "users", "items", "versions", "campaigns"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    table.add_column("created", no_wrap=True, min_width=10)
    for r in records:
        table.add_row(r["name"], f"{r['interactions']:,}", f"{r['users']:,}", f"{r['items']:,}",
                      str(r["solution_versions"]), str(r["campaigns"]), f"{r['created_at']:%Y-%m-%d}")
    out.print(table)


@groups_app.command("delete")
@handle_errors
def groups_delete(
    name: Annotated[str, typer.Argument(help="Dataset group name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Delete its campaigns too (without it, a group with "
                                                        "campaigns is refused).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a dataset group and everything in it: its data, schemas, import jobs, solutions and solution versions
    (their artifacts too), campaigns (with --force), filters, API keys scoped to it, served-items ledger,
    retraining decisions and tuning studies. Running servers stop serving its campaigns within a second. The
    audit log keeps its entries."""
    from recsmith.jobs.runs import fail_abandoned_jobs
    from recsmith.serving.campaign import CampaignRuntime, live_backends

    settings = Settings()
    store = open_store(settings)
    group = store.get_dataset_group(name)
    fail_abandoned_jobs(store, settings.resolved_artifact_dir())  # a killed job no longer holds the group
    campaigns = [c["name"] for c in store.list_campaigns(name)]
    if campaigns and not force:
        raise _campaigns_in_the_way(name, campaigns)
    if not yes:
        counts = store.dataset_group_counts(group.id).get(group.id, {})
        held = ", ".join(f"{counts[key]:,} {label}" for key, label in COUNT_LABELS.items() if counts.get(key))
        confirm_or_exit(f"Delete dataset group {name!r} and everything in it ({held or 'nothing stored yet'})"
                 f"{'; campaigns ' + ', '.join(campaigns) + ' stop serving' if campaigns else ''}? It cannot be undone")
    runtime = CampaignRuntime(store, **live_backends(store, settings.redis_url, settings.redis_prefix))
    with store.audited("dataset_group.delete", f"dataset-groups/{name}", {"force": force}) as detail:
        try:
            result = runtime.delete_dataset_group(name, force=force)
        except ConflictError as exc:  # campaigns made since the check
            if not exc.campaigns:
                raise
            raise _campaigns_in_the_way(name, exc.campaigns) from None
        detail.update({key: result[key] for key in ("campaigns", "rows", "artifacts", "keys", "left")},
                      studies=len(result["studies"]))
    if as_json:
        print_json(result)
        return
    _report(result)


def _report(result: dict[str, Any]) -> None:
    rows = result["rows"]
    parts = [f"{rows.get(key, 0):,} {label}" for key, label in COUNT_LABELS.items()
             if key != "campaigns" and rows.get(key)]
    out.print(f"dataset group [bold]{escape(result['deleted'])}[/] deleted: {', '.join(parts) or 'it held nothing'}",
              soft_wrap=True, highlight=False)
    if result["campaigns"]:
        out.print(f"campaigns deleted: {', '.join(result['campaigns'])} (running servers stop serving them within a "
                  "second)", soft_wrap=True, highlight=False)
    extra = [f"{result['artifacts']} artifact folder(s)"] + (
        [f"{len(result['studies'])} tuning study(ies)"] if result["studies"] else []) + (
        [f"{rows['api_keys']} API key(s) of the group"] if rows.get("api_keys") else []) + (
        [f"{result['keys']} Redis key(s)"] if result["keys"] else [])
    out.print(f"also deleted: {', '.join(extra)}", highlight=False)
    for problem in result["left"]:
        err.print(f"[yellow]not removed:[/] {escape(problem)}", soft_wrap=True, highlight=False)
