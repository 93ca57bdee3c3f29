"""The audit log's records: who changed what, when, from where, and how it ended (the ``audit_log`` table).

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine`` and ``begin``). The log is
append-only: this module has no method that updates or deletes an entry, no route changes it, and the table's
triggers refuse ``UPDATE`` and ``DELETE``. Entries have no foreign keys, so a deleted key, campaign or dataset
group leaves its entries.

Who acts is said once per process or block with :func:`acting_as` (the scheduler); without it an entry made
outside HTTP is the command line's: ``cli:<os user>`` from this host. The HTTP API names the key and the client
address itself (:mod:`recsmith.api.audit`).

Examples
--------
>>> with store.audited("campaign.create", "dataset-groups/shop/campaigns/top"):  # doctest: +SKIP
...     store.create_campaign("shop", "top", 3)
>>> store.audit_entries(limit=1)[0]["action"]  # doctest: +SKIP
'campaign.create'
"""

from __future__ import annotations

import contextvars
import getpass
import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.errors import ConfigError
from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

OUTCOMES = ("ok", "denied", "failed")
"""How a change ended: ``ok``, ``denied`` (the caller may not do it: HTTP 401 or 403) or ``failed`` (it was
allowed but did not happen: a bad request, a missing resource, a failed job)."""

MAX_ENTRIES = 10_000
"""The most entries one read returns."""

MAX_FIELD_CHARS = 512
"""Longer actors, resources and sources are cut to this (they may come from a request's path)."""

SECRET_NAMES = re.compile(r"secret|password|passwd|token|credential|^key$|api_?key", re.IGNORECASE)
API_KEY = re.compile(r"rsk_[A-Za-z0-9-]+_[A-Za-z0-9-]+")

_ACTING: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("recsmith_audit_actor",
                                                                                 default=None)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def current_actor() -> tuple[str, str]:
    """``(actor, source)`` of the entries made now: those of :func:`acting_as`, else ``("cli:<os user>",
    <host name>)``."""
    acting = _ACTING.get()
    return acting if acting is not None else (f"cli:{_os_user()}", socket.gethostname() or "cli")


@contextmanager
def acting_as(actor: str, source: str | None = None) -> Iterator[None]:
    """Within the block, audit entries made without an explicit actor name ``actor`` (from ``source``, default
    this host): ``acting_as("scheduler")`` around automatic retraining."""
    token = _ACTING.set((actor, source or socket.gethostname() or actor))
    try:
        yield
    finally:
        _ACTING.reset(token)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS - 3] + "..."


def scrub(value: Any) -> Any:
    """``value`` with every secret-looking part replaced by ``***``: the values of keys named like secrets
    (``password``, ``token``, ``secret``, ``key``...) and anything shaped like an API key (``rsk_<id>_<secret>``)."""
    if isinstance(value, dict):
        return {str(k): ("***" if SECRET_NAMES.search(str(k)) else scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return API_KEY.sub("rsk_***", value)
    return value


def _entry(row: Any) -> dict[str, Any]:
    out = {str(key): t.as_utc(value) for key, value in row._mapping.items()}  # plain str keys: orjson needs them
    out["detail"] = json.loads(out["detail"]) if out["detail"] else {}
    return out


class AuditRecords:
    """Mixin of :class:`recsmith.store.store.Store`: the append-only audit log."""

    engine: Engine  # begin is Store's own method

    def audit(self, action: str, resource: str, *, outcome: str = "ok", status: int | None = None,
              detail: dict[str, Any] | None = None, actor: str | None = None, source: str | None = None) -> None:
        """Append one entry to the audit log (its own transaction, committed when this returns).

        Parameters
        ----------
        action : str
            What was done, ``<resource kind>.<verb>``: ``campaign.create``, ``filter.delete``, ``key.create``,
            ``solution_version.create``, ``import.create``, ``user.delete``, ``schedule.switch``...
        resource : str
            What it was done to, as the API's path names it: ``dataset-groups/shop/campaigns/top``.
        outcome : {"ok", "denied", "failed"}
            How it ended (see :data:`OUTCOMES`).
        status : int, optional
            The HTTP status of the answer (None outside HTTP).
        detail : dict, optional
            More about it, JSON-ready; values of secret-named keys and anything shaped like an API key are
            replaced by ``***`` (:func:`scrub`).
        actor, source : str, optional
            Who did it and from where; default :func:`current_actor`.

        Raises
        ------
        ConfigError
            If ``outcome`` is not one of :data:`OUTCOMES` or ``action`` is empty.
        """
        if outcome not in OUTCOMES:
            raise ConfigError(f"unknown audit outcome {outcome!r}; use one of {', '.join(OUTCOMES)}")
        if not action:
            raise ConfigError("an audit entry needs an action, e.g. 'campaign.create'")
        default_actor, default_source = current_actor()
        values = {
            "at": t.utc_now(), "actor": _cut(actor or default_actor)[:64], "action": action[:64],
            "resource": _cut(resource), "source": _cut(source or default_source)[:256], "outcome": outcome,
            "status": status,
            "detail": json.dumps(scrub(detail), default=str, sort_keys=True) if detail else None,
        }
        with self.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(t.audit_log.insert().values(**values))

    def audit_quietly(self, action: str, resource: str, **fields: Any) -> None:
        """:meth:`audit`, logging instead of raising when the entry cannot be written (for paths where a failure
        is already on its way, or the change is already made and answered)."""
        try:
            self.audit(action, resource, **fields)
        except Exception:  # the store itself may be what failed
            logger.exception("could not write the audit entry %s %s (%s)", action, resource, fields.get("outcome"))

    @contextmanager
    def audited(self, action: str, resource: str, detail: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Audit the block: an ``ok`` entry when it ends, ``failed`` (with the exception's type) when it raises.

        Yields the entry's ``detail`` dict, which the block may add to (a job's id, rows loaded).
        """
        details = dict(detail or {})
        try:
            yield details
        except BaseException as exc:
            self.audit_quietly(action, resource, outcome="failed", detail=details | {"error": type(exc).__name__})
            raise
        self.audit(action, resource, detail=details)

    def audit_entries(self, since: datetime | None = None, limit: int = 100, *,
                      action: str | None = None) -> list[dict[str, Any]]:
        """Audit-log entries, newest first.

        Parameters
        ----------
        since : datetime, optional
            Only entries at or after this time (naive: UTC).
        limit : int
            At most this many (the newest), 1 to :data:`MAX_ENTRIES`.
        action : str, optional
            Only this action (``campaign.create``), or a kind's actions (``campaign.``).

        Returns
        -------
        list of dict
            Each with ``id``, ``at`` (UTC), ``actor``, ``action``, ``resource``, ``source``, ``outcome``,
            ``status`` (int or None) and ``detail`` (dict).

        Raises
        ------
        ConfigError
            If ``limit`` is out of range.
        """
        if not 1 <= limit <= MAX_ENTRIES:
            raise ConfigError(f"limit must be from 1 to {MAX_ENTRIES}, got {limit}")
        a = t.audit_log
        query = sa.select(a).order_by(a.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(a.c.at >= t.as_utc(since).astimezone(UTC))  # SQLite compares the text
        if action:
            query = query.where(a.c.action.startswith(action, autoescape=True) if action.endswith(".")
                                else a.c.action == action)
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query).all()]
