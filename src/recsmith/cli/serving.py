"""CLI for serving: ``recsmith campaign``, ``filter``, ``keys``, ``serve``, ``events``, ``users`` and ``items``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from recsmith.cli.app import (
    GroupOption,
    JsonOption,
    LegacyNameOption,
    err,
    handle_errors,
    open_store,
    out,
    print_json,
    resource_name,
)
from recsmith.errors import ConfigError, DataError
from recsmith.settings import Settings

campaign_app = typer.Typer(help="Campaigns: deployed solution versions served over HTTP.", no_args_is_help=True)
filter_app = typer.Typer(help="Stored filters (Amazon Personalize's filter grammar).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of the HTTP API (roles read, write, admin).", no_args_is_help=True)


DescribeJsonOption = Annotated[bool, typer.Option("--json", help="Accepted as by every command; describe always "
                                                          "prints JSON.")]


def _campaign_table(records: list[dict[str, Any]]) -> Table:
    table = Table("dataset group", "campaign", "solution version", "recipe", "config", "updated")
    for r in records:
        table.add_row(r["dataset_group"], r["name"], str(r["solution_version_id"]), r["recipe"],
                      json.dumps(r["config"]) if r["config"] else "", str(r["updated_at"]))
    return table


# ------------------------------------------------------------------------------------------ campaigns
ConfigOption = Annotated[str | None, typer.Option(
    "--config", help='Campaign config as a JSON object, as HTTP\'s "config": \'{"new_items_share": 0.2}\'.')]


def _campaign_config(config: str | None, exclude_seen: bool | None, base: dict[str, Any]) -> dict[str, Any]:
    """A campaign's config: ``base``, updated by ``--config`` (a JSON object) and ``--exclude-seen`` (when given)."""
    merged = dict(base)
    if config is not None:
        try:
            value = json.loads(config)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config: invalid JSON at column {exc.colno} of {config!r}: {exc.msg}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"--config must be a JSON object such as '{{\"exclude_seen\": false}}', got {config!r}")
        merged.update(value)
    if exclude_seen is not None:
        merged["exclude_seen"] = exclude_seen
    return merged


@campaign_app.command("create")
@handle_errors
def campaign_create(
    group: GroupOption,
    solution_version: Annotated[int, typer.Option(help="The solution version to serve.")],
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="Campaign name.", show_default=False)] = None,
    exclude_seen: Annotated[bool, typer.Option(help="Default for requests that do not say.")] = True,
    config: ConfigOption = None,
    legacy_name: LegacyNameOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy a solution version as a campaign; running servers start serving it within a second."""
    name = resource_name("campaign", name, legacy_name,
                         f"recsmith campaign create NAME -g {group} --solution-version {solution_version}")
    store = open_store()
    with store.audited("campaign.create", f"dataset-groups/{group}/campaigns/{name}",
                       {"solution_version_id": solution_version}):
        record = store.create_campaign(group, name, solution_version, _campaign_config(config, exclude_seen, {}))
    if as_json:
        print_json(record)
        return
    out.print(f"campaign [bold]{name}[/] of {group!r} serves solution version {solution_version}")


@campaign_app.command("update")
@handle_errors
def campaign_update(
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    group: GroupOption,
    solution_version: Annotated[int | None, typer.Option(help="The solution version to switch to.")] = None,
    exclude_seen: Annotated[bool | None, typer.Option(
        "--exclude-seen/--no-exclude-seen", help="Default for requests that do not say.", show_default=False)] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Switch a campaign to another version and/or change its config; servers load a new version in the
    background and swap atomically."""
    if solution_version is None and config is None and exclude_seen is None:
        raise ConfigError("nothing to change: give --solution-version V, --config JSON or --exclude-seen/"
                          "--no-exclude-seen")
    store = open_store()
    new_config = None
    if config is not None or exclude_seen is not None:
        new_config = _campaign_config(config, exclude_seen, store.get_campaign(group, name)["config"])
    with store.audited("campaign.update", f"dataset-groups/{group}/campaigns/{name}",
                       {"solution_version_id": solution_version, "config": new_config}):
        record = store.update_campaign(group, name, solution_version_id=solution_version, config=new_config)
    if as_json:
        print_json(record)
        return
    if solution_version is not None:
        out.print(f"campaign [bold]{name}[/] of {group!r} switches to solution version {solution_version}")
    if new_config is not None:
        out.print(f"campaign [bold]{name}[/] of {group!r} has config {json.dumps(record['config'])}",
                  highlight=False, soft_wrap=True)


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
def campaign_describe(name: Annotated[str, typer.Argument(help="Campaign name.")], group: GroupOption,
                      as_json: DescribeJsonOption = True) -> None:
    """A campaign as JSON, with its ARNs in the Personalize-compatible API (``RECSMITH_AWS_REGION``,
    ``RECSMITH_AWS_ACCOUNT``)."""
    from recsmith.api.personalize.arns import Arns

    campaign = open_store().get_campaign(group, name)
    print_json(campaign | Arns.from_settings(Settings()).of_campaign(campaign))


@campaign_app.command("delete")
@handle_errors
def campaign_delete(name: Annotated[str, typer.Argument(help="Campaign name.")], group: GroupOption) -> None:
    """Stop serving a campaign and delete it (its solution version stays)."""
    store = open_store()
    with store.audited("campaign.delete", f"dataset-groups/{group}/campaigns/{name}"):
        store.delete_campaign(group, name)
    out.print(f"campaign {name!r} of {group!r} deleted")


@campaign_app.command("stats")
@handle_errors
def campaign_stats(
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    group: GroupOption,
    since: Annotated[str, typer.Option(help="From this long ago (90s, 30m, 24h, 2d) or this ISO 8601 time (UTC "
                                            "unless it says).")] = "24h",
    every: Annotated[str, typer.Option(help="One row per this long: 30m, 1h, 1d.")] = "1h",
    as_json: JsonOption = False,
) -> None:
    """Click-through over time: responses, served items, impressions, clicks and click-through rate (clicks per
    impression, or per served item where events report no impressions, as /metrics) per interval, from the
    served-items ledger and the events that carry a recommendation_id."""
    from datetime import UTC, datetime

    from recsmith.jobs.schedule import parse_period, parse_since
    from recsmith.serving.campaign import CampaignRuntime, live_backends
    from recsmith.serving.ledger import RETENTION_SECONDS, engagement_report, format_clock, format_rate

    settings = Settings()
    store = open_store(settings)
    store.get_campaign(group, name)  # NotFoundError naming the group's campaigns
    now = datetime.now(UTC)
    end, period = now.timestamp(), parse_period(every)
    start = parse_since(since, now=now).timestamp()
    if start >= end:
        raise ConfigError(f"--since {since}: that is not in the past")
    ledger = CampaignRuntime(store, **live_backends(store, settings.redis_url, settings.redis_prefix)).ledger
    report = engagement_report(store, ledger, store.get_dataset_group(group).id, name, start=start, end=end,
                               every=period)
    rows, total = report.rows, report.total
    if report.beyond_ledger:
        err.print(f"note: the served-items ledger keeps {RETENTION_SECONDS / 3600:g} h; earlier intervals count "
                  "nothing", highlight=False)
    if as_json:
        print_json({"dataset_group": group, "campaign": name, "every_seconds": period,
                    "intervals": [_stamped(row.to_dict()) for row in rows], "total": _stamped(total.to_dict())})
        return
    table = Table("from (UTC)", "responses", "items served", "impressions", "clicks", "CTR",
                  title=f"campaign {name} of {group!r} since {since}, every {every}")
    for row in [*rows, total]:
        table.add_row("total" if row is total else format_clock(row.start), f"{row.responses:,}",
                      f"{row.served_items:,}", f"{row.impressions:,}", f"{row.clicks:,}",
                      format_rate(row.click_through_rate),
                      end_section=bool(rows) and row is rows[-1])
    out.print(table)


def _stamped(row: dict[str, Any]) -> dict[str, Any]:
    """An interval's counts with its bounds as ISO 8601 UTC times."""
    from datetime import UTC, datetime

    return row | {key: datetime.fromtimestamp(row[key], UTC).isoformat(timespec="seconds") for key in ("start", "end")}


# -------------------------------------------------------------------------------------------- filters
@filter_app.command("create")
@handle_errors
def filter_create(
    group: GroupOption,
    expression: Annotated[str, typer.Option(help="e.g. 'EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)'.")],
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="Filter name.", show_default=False)] = None,
    legacy_name: LegacyNameOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a filter; `recsmith recommend --filter NAME` and HTTP requests ("filter") name it, and bind its
    $PARAMs with --filter-value / "filter_values"."""
    name = resource_name("filter", name, legacy_name, f"recsmith filter create NAME -g {group} --expression '...'")
    store = open_store()
    with store.audited("filter.create", f"dataset-groups/{group}/filters/{name}"):
        record = store.create_filter(group, name, expression)
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
def filter_describe(name: Annotated[str, typer.Argument(help="Filter name.")], group: GroupOption,
                    as_json: DescribeJsonOption = True) -> None:
    """A filter as JSON, with its ARN in the Personalize-compatible API."""
    from recsmith.api.personalize.arns import Arns

    print_json(open_store().get_filter(group, name) | {"filter_arn": Arns.from_settings(Settings()).filter(name)})


@filter_app.command("delete")
@handle_errors
def filter_delete(name: Annotated[str, typer.Argument(help="Filter name.")], group: GroupOption) -> None:
    """Delete a filter."""
    store = open_store()
    with store.audited("filter.delete", f"dataset-groups/{group}/filters/{name}"):
        store.delete_filter(group, name)
    out.print(f"filter {name!r} of {group!r} deleted")


# ----------------------------------------------------------------------------------------------- keys
@keys_app.command("create")
@handle_errors
def keys_create(
    role: Annotated[str | None, typer.Option(
        help="read (recommendations), write (events, users, items) or admin.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="The same as --role admin.")] = False,
    group: Annotated[str | None, typer.Option("--dataset-group", "-g",
                                              help="The group it works on (default: every group).")] = None,
    name: Annotated[str | None, typer.Option(help="A label to recognise it by.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Make an API key. It is printed once; its hash is stored, and its secret sealed under the erasure key (for
    AWS Signature Version 4: the access key id is the key's id, the secret access key its secret)."""
    if admin and role not in (None, "admin"):
        raise ConfigError(f"--admin and --role {role} contradict each other: give one")
    role = "admin" if admin else role
    if role is None:
        raise ConfigError("give the key's role: --role read, --role write or --role admin (or --admin)")
    store = open_store()
    with store.audited("key.create", "keys", {"role": role, "dataset_group": group, "name": name}) as detail:
        record = store.create_api_key(role, group, name)
        detail["key_id"] = record["key_id"]
    if as_json:
        print_json(record)
        return
    out.print(f"API key {record['key_id']} (role {role}, {'group ' + repr(group) if group else 'every group'}); "
              "shown once, keep it safe (for AWS SDKs: access key id "
              f"{record['key_id']}, secret access key the part after 'rsk_{record['key_id']}_'):")
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
    store = open_store()
    with store.audited("key.delete", f"keys/{key_id}"):
        store.delete_api_key(key_id)
    out.print(f"API key {key_id} revoked")


# ---------------------------------------------------------------------------------------------- serve
FIRST_KEY_FILE = "first-admin-key"
"""Where under ``RECSMITH_HOME`` the first admin key goes when ``serve`` is not run from a terminal."""


def _first_admin_key(store: Any, settings: Settings) -> None:
    """Make an admin key for every group when there is no key. It is printed only when stdout and stderr are a
    terminal; otherwise (a service manager, a pipe, a log file keeps what is printed) it is written to a file
    only its owner can read (0600) under ``RECSMITH_HOME``, and the file's path is printed instead."""
    if store.count_api_keys() > 0:
        return
    with store.audited("key.create", "keys", {"role": "admin", "dataset_group": None,
                                              "name": "first admin key"}) as detail:
        record = store.create_api_key("admin", None, "first admin key")
        detail["key_id"] = record["key_id"]
    if sys.stdout.isatty() and sys.stderr.isatty():
        err.print("[bold]No API keys yet: made an admin key for every dataset group. It is shown once; keep it "
                  "safe (more with `recsmith keys create --role admin`):[/]")
        print(record["key"], flush=True)
        return
    path = _write_private(Path(settings.home) / FIRST_KEY_FILE, record["key"] + "\n")
    err.print(f"No API keys yet: made an admin key for every dataset group (key id {record['key_id']}) and wrote it "
              f"to {path}, readable by you only (not printed: this is not a terminal). Keep it safe and delete the "
              "file; more with `recsmith keys create --role admin`.", soft_wrap=True, highlight=False)
    print(path, flush=True)


def _write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (mode 0600, its folder 0700 if made here) atomically; returns the full path."""
    from recsmith.store.store import private_dir

    folder = private_dir(path.parent.resolve())
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a stale tmp file of another mode
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    final = folder / path.name
    os.replace(tmp, final)
    return final


@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the campaigns over HTTP (OpenAPI at /openapi.json); a first start without keys makes an admin key."""
    from recsmith.api import server

    settings = Settings()
    store = open_store(settings)
    _first_admin_key(store, settings)
    store.close()
    limits = server.connection_limits(settings.header_timeout_seconds, settings.body_timeout_seconds,
                                      settings.max_connections)
    with server.metrics_folder():  # PROMETHEUS_MULTIPROC_DIR; removes dead servers' folders first, its own at the end
        docs = "/docs" if settings.docs else "/openapi.json (RECSMITH_DOCS=1 serves /docs)"
        err.print(f"serving on http://{host}:{port} with {workers} worker(s); API at http://{host}:{port}{docs}; "
                  f"up to {limits.max_connections} connections per worker (file-descriptor limit "
                  f"{limits.fd_limit or 'unlimited'} per process)")
        err.print(f"console at http://{host}:{port}/console (sign in with an API key)", highlight=False)
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
        try:  # the checks every entrance shares: finite numbers, no NUL characters
            rows.extend(event_rows(body.user_id, body.session_id, (event.model_dump() for event in body.events)))
        except DataError as exc:
            raise ConfigError(f"{source}, line {number}: {str(exc).removeprefix('events[0].')}") from None
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
    """Delete users (erased through :meth:`CampaignRuntime.delete_user`, as over HTTP: the store, and with
    RECSMITH_REDIS_URL set the Redis event lists and ledger entries) or items (``kind``) of a group; running
    servers are told at once through Redis (else they notice at their next poll). Each deletion is audited
    (a user's id is not: the audit log outlives erasure)."""
    from recsmith.serving.campaign import CampaignRuntime, live_backends

    settings = Settings()
    store = open_store(settings)
    group_id = store.get_dataset_group(group).id
    runtime = CampaignRuntime(store, **live_backends(store, settings.redis_url, settings.redis_prefix))
    if kind == "user":
        removed = {entity_id: runtime.delete_user(group, group_id, entity_id) for entity_id in ids}
    else:
        removed = {entity_id: store.delete_item(group_id, entity_id) for entity_id in ids}
        runtime.catalog_changed(group, group_id)
    for entity_id, counts in removed.items():
        shown = "{user_id}" if kind == "user" else entity_id
        store.audit(f"{kind}.delete", f"dataset-groups/{group}/{kind}s/{shown}", detail=counts)
    return removed


@users_app.command("delete")
@handle_errors
def users_delete(
    user_ids: Annotated[list[str], typer.Argument(help="The user ids to delete.")],
    group: GroupOption,
    purge_models: Annotated[bool, typer.Option(
        "--purge-models", help="Also rewrite deleted users out of every trained artifact of the group and delete "
        "superseded versions' artifacts (RECSMITH_ARTIFACT_RETENTION_DAYS, RECSMITH_ARTIFACT_KEEP_VERSIONS).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Erase users, as `DELETE /v1/dataset-groups/G/users/ID` does: their events and every event of their linked
    sessions, metadata, served-items ledger and live state go; running servers stop serving them within
    a second, and the next training does not see them. Models trained before keep their row (hidden by a
    keyed-hash tombstone) until --purge-models rewrites them."""
    removed: dict[str, Any] = _delete(group, user_ids, "user")
    report = None
    if purge_models:
        from recsmith.jobs.erasure import purge_models as purge

        settings = Settings()
        report = purge(open_store(settings), settings, group).to_dict()
    if as_json:
        print_json(removed if report is None else {"users": removed, "models": report})
        return
    for user_id, counts in removed.items():
        out.print(f"user {user_id!r} erased from {group!r}: {counts['interactions']:,} interactions "
                  f"({counts['sessions']} linked session(s)), {counts['records']} metadata record(s), "
                  f"{counts['served']} served-items entries, {counts['keys']} Redis key(s)")
    if report is None:
        out.print("trained models keep hiding them; they are deleted from the next trained model "
                  "(--purge-models rewrites the existing ones)")
        return
    for version_id, count in report["rewritten"].items():
        out.print(f"solution version {version_id}: {count} deleted user(s) rewritten out of its artifact")
    for version_id in report["deleted"]:
        out.print(f"solution version {version_id}: superseded, artifact deleted")
    for version_id in report["needs_retraining"]:
        err.print(f"solution version {version_id}: its recipe's artifact cannot be rewritten; retrain it "
                  "(campaigns keep hiding the deleted users meanwhile)")


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
