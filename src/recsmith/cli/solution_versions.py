"""``recsmith solution-versions list|describe|delete``: trained solution versions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from recsmith.cli.app import JsonOption, confirm_or_exit, err, handle_errors, open_store, out, print_json
from recsmith.errors import ConflictError
from recsmith.settings import Settings

versions_app = typer.Typer(help="Trained solution versions.", no_args_is_help=True)


@versions_app.command("list")
@handle_errors
def versions_list(
    group: Annotated[str | None, typer.Option("--dataset-group", "-g", help="Only this group.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List solution versions."""
    store = open_store()
    group_id = store.get_dataset_group(group).id if group else None
    versions = store.list_solution_versions(group_id)
    if as_json:
        print_json(versions)
        return
    table = Table("id", "dataset group", "solution", "recipe", "status", "ndcg@10", "fit s", "created")
    for v in versions:
        ndcg = (v.get("metrics") or {}).get("ndcg@10")
        table.add_row(str(v["id"]), str(v.get("dataset_group", "")), str(v.get("solution_name", "")),
                      str(v.get("recipe", "")), v["status"], f"{ndcg:.4f}" if ndcg is not None else "",
                      f"{v['fit_seconds']:.2f}" if v.get("fit_seconds") is not None else "", str(v["created_at"]))
    out.print(table)


@versions_app.command("describe")
@handle_errors
def versions_describe(version_id: Annotated[int, typer.Argument(help="Solution version id.")]) -> None:
    """Everything stored about a solution version, as JSON."""
    print_json(open_store().get_solution_version(version_id))


def _served(version_id: int, group: str, campaigns: tuple[str, ...] | list[str]) -> ConflictError:
    first = campaigns[0]
    return ConflictError(f"solution version {version_id} is served by campaign(s) {', '.join(campaigns)} of dataset "
                         f"group {group!r}; switch each campaign to another version first (`recsmith campaign update "
                         f"{first} -g {group} --solution-version OTHER`) or delete the campaign (`recsmith campaign "
                         f"delete {first} -g {group}`)", campaigns=campaigns)


@versions_app.command("delete")
@handle_errors
def versions_delete(
    version_id: Annotated[int, typer.Argument(help="Solution version id.")],
    group: Annotated[str | None, typer.Option("--dataset-group", "-g",
                                              help="Its dataset group (default: the one it belongs to).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a solution version (its row, metrics included) and its artifact folder. Refused while a campaign
    serves it: switch the campaign to another version, or delete it, first."""
    from recsmith.jobs.runs import fail_abandoned_jobs
    from recsmith.serving.campaign import delete_solution_version

    settings = Settings()
    store = open_store(settings)
    version = store.get_solution_version(version_id)
    group = group or version["dataset_group"]
    fail_abandoned_jobs(store, settings.resolved_artifact_dir())  # a killed training no longer holds it
    serving = [c["name"] for c in store.list_campaigns(group) if c["solution_version_id"] == version_id]
    if serving:
        raise _served(version_id, group, serving)
    if not yes:
        question = (f"Delete solution version {version_id} ({version['recipe']}, solution "
                    f"{version['solution_name']!r}, {version['status']}) of dataset group {group!r} and its artifact? "
                    "It cannot be undone")
        confirm_or_exit(question)
    with store.audited("solution_version.delete", f"dataset-groups/{group}/solution-versions/{version_id}",
                       {"recipe": version["recipe"], "solution": version["solution_name"]}) as detail:
        try:
            result = delete_solution_version(store, group, version_id)
        except ConflictError as exc:  # deployed since the check
            if not exc.campaigns:
                raise
            raise _served(version_id, group, exc.campaigns) from None
        detail.update(artifact=result["artifact"], left=result["left"])
    if as_json:
        print_json(result)
        return
    out.print(f"solution version {version_id} of {group!r} deleted"
              + (" with its artifact folder" if result["artifact"] else " (it had no artifact folder)"))
    for problem in result["left"]:
        err.print(f"[yellow]not removed:[/] {problem}", soft_wrap=True, highlight=False)
