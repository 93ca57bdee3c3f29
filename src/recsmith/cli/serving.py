"""CLI for serving: ``recsmith campaign``, ``filter``, ``keys``, ``serve``, ``events``, ``users`` and ``items``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from recsmith.cli.app import GroupOption, JsonOption, err, handle_errors, open_store, out, print_json
from recsmith.errors import ConfigError
from recsmith.settings import Settings

campaign_app = typer.Typer(help="Campaigns: deployed solution versions served over HTTP.", no_args_is_help=True)
filter_app = typer.Typer(help="Stored filters (Amazon Personalize's filter grammar).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of the HTTP API (roles read, write, admin).", no_args_is_help=True)


def _campaign_table(records: list[dict[str, Any]]) -> Table:
    table = Table("dataset group", "campaign", "solution version", "recipe", "config", "updated")
    for r in records:
        table.add_row(r["dataset_group"], r["name"], str(r["solution_version_id"]), r["recipe"],
                      json.dumps(r["config"]) if r["config"] else "", str(r["updated_at"]))
    return table


# ------------------------------------------------------------------------------------------ campaigns
@campaign_app.command("create")
@handle_errors
def campaign_create(
    group: GroupOption,
    name: Annotated[str, typer.Option(help="Campaign name.")],
    solution_version: Annotated[int, typer.Option(help="The solution version to serve.")],
    exclude_seen: Annotated[bool, typer.Option(help="Default for requests that do not say.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Deploy a solution version as a campaign; running servers start serving it within a second."""
    record = open_store().create_campaign(group, name, solution_version, {"exclude_seen": exclude_seen})
    if as_json:
        print_json(record)
        return
    out.print(f"campaign [bold]{name}[/] of {group!r} serves solution version {solution_version}")


@campaign_app.command("update")
@handle_errors
def campaign_update(
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    group: GroupOption,
    solution_version: Annotated[int, typer.Option(help="The solution version to switch to.")],
    as_json: JsonOption = False,
) -> None:
    """Switch a campaign to another version; servers load it in the background and swap atomically."""
    record = open_store().update_campaign(group, name, solution_version_id=solution_version)
    if as_json:
        print_json(record)
        return
    out.print(f"campaign [bold]{name}[/] of {group!r} switches to solution version {solution_version}")


@campaign_app.command("list")
@handle_errors
def campaign_list(
    group: Annotated[str | None, typer.Option("--dataset-group", "-g", help="Only this group.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List campaigns."""
    records = open_store().list_campaigns(group)
    if as_json:
        print_json(records)
        return
    out.print(_campaign_table(records))


@campaign_app.command("describe")
@handle_errors
def campaign_describe(name: Annotated[str, typer.Argument(help="Campaign name.")], group: GroupOption) -> None:
    """A campaign as JSON."""
    print_json(open_store().get_campaign(group, name))


@campaign_app.command("delete")
@handle_errors
def campaign_delete(name: Annotated[str, typer.Argument(help="Campaign name.")], group: GroupOption) -> None:
    """Stop serving a campaign and delete it (its solution version stays)."""
    open_store().delete_campaign(group, name)
    out.print(f"campaign {name!r} of {group!r} deleted")


# -------------------------------------------------------------------------------------------- filters
@filter_app.command("create")
@handle_errors
def filter_create(
    group: GroupOption,
    name: Annotated[str, typer.Option(help="Filter name.")],
    expression: Annotated[str, typer.Option(help="e.g. 'EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)'.")],
    as_json: JsonOption = False,
) -> None:
    """Store a filter; requests name it with "filter" and bind its $PARAMs with "filter_values"."""
    record = open_store().create_filter(group, name, expression)
    if as_json:
        print_json(record)
        return
    out.print(f"filter [bold]{name}[/] of {group!r}: {expression}", soft_wrap=True)


@filter_app.command("list")
@handle_errors
def filter_list(group: GroupOption, as_json: JsonOption = False) -> None:
    """List a group's filters."""
    records = open_store().list_filters(group)
    if as_json:
        print_json(records)
        return
    table = Table("filter", "expression", "created")
    for r in records:
        table.add_row(r["name"], r["expression"], str(r["created_at"]))
    out.print(table)


@filter_app.command("describe")
@handle_errors
def filter_describe(name: Annotated[str, typer.Argument(help="Filter name.")], group: GroupOption) -> None:
    """A filter as JSON."""
    print_json(open_store().get_filter(group, name))


@filter_app.command("delete")
@handle_errors
def filter_delete(name: Annotated[str, typer.Argument(help="Filter name.")], group: GroupOption) -> None:
    """Delete a filter."""
    open_store().delete_filter(group, name)
    out.print(f"filter {name!r} of {group!r} deleted")


# ----------------------------------------------------------------------------------------------- keys
@keys_app.command("create")
@handle_errors
def keys_create(
    role: Annotated[str, typer.Option(help="read (recommendations), write (events, users, items) or admin.")],
    group: Annotated[str | None, typer.Option("--dataset-group", "-g",
                                              help="The group it works on (default: every group).")] = None,
    name: Annotated[str | None, typer.Option(help="A label to recognise it by.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Make an API key. It is printed once; only its hash is stored."""
    record = open_store().create_api_key(role, group, name)
    if as_json:
        print_json(record)
        return
    out.print(f"API key {record['key_id']} (role {role}, {'group ' + repr(group) if group else 'every group'}); "
              "shown once, keep it safe:")
    print(record["key"])


@keys_app.command("list")
@handle_errors
def keys_list(as_json: JsonOption = False) -> None:
    """List API keys (ids, roles and groups; never the keys)."""
    records = open_store().list_api_keys()
    if as_json:
        print_json(records)
        return
    table = Table("key id", "role", "dataset group", "name", "created")
    for r in records:
        table.add_row(r["key_id"], r["role"], r["dataset_group"] or "(every group)", r["name"] or "",
                      str(r["created_at"]))
    out.print(table)


@keys_app.command("delete")
@handle_errors
def keys_delete(key_id: Annotated[str, typer.Argument(help="The key id (from `recsmith keys list`).")]) -> None:
    """Revoke a key (servers stop accepting it within 10 seconds)."""
    open_store().delete_api_key(key_id)
    out.print(f"API key {key_id} revoked")


# ---------------------------------------------------------------------------------------------- serve
@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the campaigns over HTTP (OpenAPI docs at /docs). The first start prints an admin API key."""
    from recsmith.api import server

    settings = Settings()
    store = open_store(settings)
    if store.count_api_keys() == 0:
        record = store.create_api_key("admin", None, "first admin key")
        err.print("[bold]No API keys yet: made an admin key for every dataset group. It is shown once; keep it "
                  "safe (more with `recsmith keys create`):[/]")
        print(record["key"], flush=True)
    store.close()
    limits = server.connection_limits(settings.header_timeout_seconds, settings.body_timeout_seconds,
                                      settings.max_connections)
    with server.metrics_folder() as metrics_dir:  # removes dead servers' folders first, and its own at the end
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # the workers share their metrics through it
        err.print(f"serving on http://{host}:{port} with {workers} worker(s); docs at http://{host}:{port}/docs; "
                  f"up to {limits.max_connections} connections per worker (file-descriptor limit "
                  f"{limits.fd_limit or 'unlimited'} per process)")
        try:
            server.run(host, port, workers, log_level, limits)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port") from None


# --------------------------------------------------------------------------------------------- events
events_app = typer.Typer(help="Real-time events (the event tracker), without a server.", no_args_is_help=True)


@events_app.command("put")
@handle_errors
def events_put(
    source: Annotated[Path, typer.Argument(help="JSON Lines: one event per line, with session_id (and user_id).")],
    group: GroupOption,
    as_json: JsonOption = False,
) -> None:
    """Record events as `POST /v1/dataset-groups/G/events` does: validated first, then one transaction;
    events stored before (same event_id) are skipped."""
    import pydantic

    from recsmith.api.schemas import EventsIn
    from recsmith.jobs.events import event_rows

    if not source.is_file():
        raise ConfigError(f"{source}: no such file")
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(source.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            body = EventsIn(user_id=record.pop("user_id", None), session_id=record.pop("session_id", None),
                            events=[record])
        except (ValueError, pydantic.ValidationError) as exc:
            problems = (exc.errors() if isinstance(exc, pydantic.ValidationError) else [{"loc": (), "msg": str(exc)}])
            where = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p not in ('events', 0)) or 'line'}: {e['msg']}"
                              for e in problems)
            raise ConfigError(f"{source}, line {number}: {where}") from None
        rows.extend(event_rows(body.user_id, body.session_id, (event.model_dump() for event in body.events)))
    store = open_store()
    accepted, duplicates = store.write_events(store.get_dataset_group(group).id, rows)
    if as_json:
        print_json({"accepted": accepted, "duplicates": duplicates})
        return
    out.print(f"{accepted:,} events stored in {group!r}, {duplicates:,} already there")


# ---------------------------------------------------------------------------------------- users, items
users_app = typer.Typer(help="Users of a dataset group (deletion for privacy requests).", no_args_is_help=True)
items_app = typer.Typer(help="Items of a dataset group.", no_args_is_help=True)


def _delete(group: str, ids: list[str], kind: str) -> dict[str, dict[str, int]]:
    """Delete users or items (``kind``) of a group; with RECSMITH_REDIS_URL set, running servers are told at once
    (else they notice at their next poll)."""
    store = open_store()
    group_id = store.get_dataset_group(group).id
    delete = store.delete_user if kind == "user" else store.delete_item
    removed = {entity_id: delete(group_id, entity_id) for entity_id in ids}
    settings = Settings()
    if settings.redis_url:
        from recsmith.serving.live import RedisLive, connect_redis

        RedisLive(store, connect_redis(settings.redis_url), prefix=settings.redis_prefix).catalog_changed(group_id)
    return removed


@users_app.command("delete")
@handle_errors
def users_delete(
    user_ids: Annotated[list[str], typer.Argument(help="The user ids to delete.")],
    group: GroupOption,
    as_json: JsonOption = False,
) -> None:
    """Delete users' interactions and metadata, as `DELETE /v1/dataset-groups/G/users/ID` does: running servers
    stop serving them within a second, and the next training does not see them."""
    removed = _delete(group, user_ids, "user")
    if as_json:
        print_json(removed)
        return
    for user_id, counts in removed.items():
        out.print(f"user {user_id!r} deleted from {group!r}: {counts['interactions']:,} interactions, "
                  f"{counts['records']} metadata record(s)")


@items_app.command("delete")
@handle_errors
def items_delete(
    item_ids: Annotated[list[str], typer.Argument(help="The item ids to stop recommending.")],
    group: GroupOption,
    as_json: JsonOption = False,
) -> None:
    """Stop recommending items, as `DELETE /v1/dataset-groups/G/items/ID` does (running servers within a
    second); their metadata is deleted and training leaves them out until they are put again."""
    removed = _delete(group, item_ids, "item")
    if as_json:
        print_json(removed)
        return
    for item_id in removed:
        out.print(f"item {item_id!r} deleted from {group!r}")
