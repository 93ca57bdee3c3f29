"""ASGI middleware that writes every change made over HTTP, and every refused attempt at one, to the audit log.

A request is audited when its method changes something (POST, PUT, PATCH, DELETE) on a ``/v1`` route, except
the POSTs that only read (recommendations, personalized ranking). The entry says:

- ``action``: from the route template and method, ``<kind>.<verb>`` (``DELETE .../campaigns/{campaign}`` is
  ``campaign.delete``, ``POST .../filters`` is ``filter.create``);
- ``resource``: the template with its path parameters filled in (``dataset-groups/shop/campaigns/top``; for a
  create, the ``name`` its answer gives is added), but a user's id stays ``{user_id}``: the audit log outlives
  erasure and keeps no personal id;
- ``actor``: the key id of the ``Authorization: Bearer rsk_<key id>_<secret>`` header (the id a refused key
  claims, for a 401), ``anonymous`` without a key; the secret is never read here;
- ``source``: the client's address; ``outcome`` and ``status``: from the answer's HTTP status.

The entry is written before the answer's first byte goes out, so a client never sees a change succeed that was
not audited. Data ingestion that succeeds (``POST .../events``, ``PUT .../users``, ``PUT .../items``) is not
audited: it is the data, counted in ``/metrics``; refused attempts at it are. Refused attempts (401, 403) are
written at most ``denied_per_minute`` times a minute per worker, so that a flood of unauthenticated requests
cannot fill the disk; the entries left out are counted in one ``audit.suppressed`` entry.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recsmith.api.routing import route_of
from recsmith.store.serving_records import split_key

logger = logging.getLogger(__name__)

MUTATING = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
READ_ONLY_POSTS = ("recommendations", "personalized-ranking")
"""Last segments of the POST routes that change nothing."""
INGESTION = {("POST", "events"), ("PUT", "users"), ("PUT", "items")}
"""Routes whose successful requests are data, not changes to audit (their refusals are audited)."""
PERSONAL_PARAMS = {"user_id"}
"""Path parameters whose values are kept out of the audit log."""
KEY_ID = re.compile(r"^[A-Za-z0-9-]{1,32}$")
MAX_PARAM_CHARS = 128


def action_of(method: str, template: str) -> str | None:
    """The audit action of a request to a route (None: not audited), e.g. ``("DELETE",
    "/v1/dataset-groups/{group}/campaigns/{campaign}")`` gives ``"campaign.delete"``."""
    verb = MUTATING.get(method)
    if verb is None or not template.startswith("/v1/"):
        return None
    static = [part for part in template[4:].split("/") if part and not part.startswith("{")]
    if not static or (method == "POST" and static[-1] in READ_ONLY_POSTS):
        return None
    kind = static[-1].replace("-", "_")
    if kind.endswith("s") and not kind.endswith("ss"):
        kind = kind[:-1]
    return f"{kind}.{verb}"


def resource_of(template: str, params: dict[str, Any]) -> str:
    """The route template with its path parameters filled in (personal ones left as ``{name}``), without
    ``/v1/``."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in PERSONAL_PARAMS or name not in params:
            return match.group(0)
        value = str(params[name])
        return value if len(value) <= MAX_PARAM_CHARS else value[:MAX_PARAM_CHARS] + "..."

    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", fill, template.removeprefix("/v1/"))


def actor_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The key id named by the request's bearer key (never its secret), or ``anonymous``."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            parts = split_key(key.strip()) if scheme.lower() == "bearer" else None
            if parts is None:
                return "anonymous"
            return parts[0] if KEY_ID.match(parts[0]) else "malformed-key"
    return "anonymous"


def _audited_create(scope: Scope) -> bool:
    """Whether the request is a create whose success is audited (its answer is held to read the name)."""
    template = route_of(scope)[0]
    if not template or action_of(scope["method"], template) is None:
        return False
    return (scope["method"], template.rstrip("/").rsplit("/", 1)[-1]) not in INGESTION


def _created_name(body: bytes) -> str | None:
    """The ``name`` of what a create's JSON answer describes (a campaign, a filter), or None."""
    if len(body) > 65_536:
        return None
    try:
        name = json.loads(body).get("name")
    except (ValueError, AttributeError):
        return None
    return name[:MAX_PARAM_CHARS] if isinstance(name, str) and name and "/" not in name else None


def outcome_of(status: int) -> str:
    """``ok`` below 400, ``denied`` for 401 and 403, ``failed`` otherwise."""
    if status < 400:
        return "ok"
    return "denied" if status in (401, 403) else "failed"


class _DeniedBudget:
    """How many refused attempts a worker still writes this minute, and how many it left out."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.window = -60.0
        self.used = 0
        self.dropped = 0

    def roll(self) -> int:
        """Start a new minute if the last one is over; returns the entries left out in it (to report once)."""
        now = time.monotonic()
        if now - self.window < 60.0:
            return 0
        dropped, self.dropped, self.used, self.window = self.dropped, 0, 0, now
        return dropped

    def take(self) -> bool:
        """Whether one more refused attempt may be written this minute."""
        if self.used < self.per_minute:
            self.used += 1
            return True
        self.dropped += 1
        return False


class AuditLog:
    """Write the audit entry of each mutating ``/v1`` request (see the module's description).

    Parameters
    ----------
    app : ASGI app
        The application (its ``state.store`` is where entries go).
    denied_per_minute : int
        The most refused attempts (401, 403) written per minute by this worker.
    """

    def __init__(self, app: ASGIApp, denied_per_minute: int = 60) -> None:
        self.app = app
        self.budget = _DeniedBudget(denied_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        written = False
        held: Message | None = None  # a create's answer start, held until its body names what was made

        async def audit_first(message: Message) -> None:
            nonlocal written, held
            if message["type"] == "http.response.start" and not written:
                if scope["method"] == "POST" and message["status"] in (200, 201) and _audited_create(scope):
                    held = message
                    return
                written = True
                await self._write(scope, message["status"])
            elif held is not None and message["type"] == "http.response.body":
                start, held, written = held, None, True
                created = None if message.get("more_body") else _created_name(message.get("body", b""))
                await self._write(scope, start["status"], created)
                await send(start)
            await send(message)

        try:
            await self.app(scope, receive, audit_first)
        except Exception:
            if not written:
                written = True
                await self._write(scope, 500)
            raise

    async def _write(self, scope: Scope, status: int, created: str | None = None) -> None:
        template, params = route_of(scope)
        action = action_of(scope["method"], template) if template else None
        if action is None:
            return
        outcome = outcome_of(status)
        last = template.rstrip("/").rsplit("/", 1)[-1]
        if outcome == "ok" and (scope["method"], last) in INGESTION:
            return
        store = getattr(getattr(scope.get("app"), "state", None), "store", None)
        if store is None:
            return
        client = scope.get("client")
        entry: dict[str, Any] = {
            "outcome": outcome, "status": status, "actor": actor_of(scope.get("headers", [])),
            "source": client[0] if client else "unknown", "detail": {"method": scope["method"]},
        }
        dropped = self.budget.roll()
        if dropped:
            await run_in_threadpool(store.audit_quietly, "audit.suppressed", "audit", actor="recsmith",
                                    outcome="ok",
                                    detail={"denied_entries_left_out": dropped, "per_minute": self.budget.per_minute})
        if outcome == "denied" and not self.budget.take():
            return
        resource = resource_of(template, params)
        if created:
            resource = f"{resource}/{created}"
        await run_in_threadpool(store.audit_quietly, action, resource, **entry)
