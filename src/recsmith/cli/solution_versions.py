"""``recsmith solution-versions list|describe``: trained solution versions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from recsmith.cli.app import JsonOption, handle_errors, open_store, out, print_json

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
