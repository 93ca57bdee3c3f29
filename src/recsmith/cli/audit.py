"""``recsmith audit list``: read the audit log (who changed what, when, from where, and how it ended)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from recsmith.cli.app import JsonOption, handle_errors, open_store, out, print_json

audit_app = typer.Typer(help="The audit log of changes: campaigns, filters, keys, trainings, imports, deletions and "
                             "retraining decisions (append-only).", no_args_is_help=True)


@audit_app.command("list")
@handle_errors
def audit_list(
    since: Annotated[str | None, typer.Option(help="Only entries since this ISO 8601 time (UTC unless it says) or "
                                                   "this long ago: 90s, 30m, 1h, 2d.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, the newest.")] = 100,
    action: Annotated[str | None, typer.Option(help="Only this action (campaign.create), or a kind's "
                                                    "(campaign.).")] = None,
    as_json: JsonOption = False,
) -> None:
    """List audit-log entries, newest first."""
    from recsmith.jobs.schedule import parse_since

    entries = open_store().audit_entries(parse_since(since) if since else None, limit, action=action)
    if as_json:
        print_json(entries)
        return
    table = Table("at (UTC)", "actor", "action", "resource", "source", "outcome")
    for e in entries:
        outcome = e["outcome"] if e["status"] is None else f"{e['outcome']} ({e['status']})"
        table.add_row(e["at"].strftime("%Y-%m-%d %H:%M:%S"), e["actor"], e["action"], e["resource"], e["source"],
                      outcome)
    out.print(table)
