"""API keys: ``Authorization: Bearer rsk_...`` checked against the store's hashed keys, with roles.

:class:`RequireKey` refuses a ``/v1`` request without a valid key before the app runs (its body is never read);
each route's :func:`require` dependency then checks the key's role on the path's dataset group.

Verified keys are remembered for :data:`KEY_CACHE_SECONDS` per worker, so a request does not hit the
database to authenticate; a deleted key stops working within that time. The dependencies are ``async`` (a
sync one costs a thread-pool hop per request); the one database read per key and period runs on the loop.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from recsmith.api.metrics import AUTHORISED
from recsmith.api.responses import error
from recsmith.store.serving_records import ROLES

KEY_CACHE_SECONDS = 10.0
KEY_CACHE_ENTRIES = 10_000
"""Keys remembered per worker, valid and invalid ones each."""
MAX_KEY_LENGTH = 256
"""Longer bearer keys are refused without a look-up (recsmith's keys are about 60 characters)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and dataset group (None: every group)."""

    key_id: str
    role: str
    dataset_group: str | None

    def may(self, role: str, group: str | None) -> bool:
        """Whether this key has at least ``role`` on ``group`` (None: an action on no particular group)."""
        if ROLES.index(self.role) < ROLES.index(role):
            return False
        return self.dataset_group is None or group == self.dataset_group

    def refusal(self, role: str, group: str | None) -> str | None:
        """Why this key may not act with ``role`` on ``group`` (which role and group it needs, what it holds, never
        its id), or None when it may."""
        if self.may(role, group):
            return None
        where = f"dataset group {group!r}" if group else "this server"
        holds = f"role {self.role}" + (f" on dataset group {self.dataset_group!r}" if self.dataset_group else "")
        return f"this API key may not do this: it needs role {role} on {where}, and it has {holds}"


class KeyChecker:
    """Verifies bearer keys against the store, caching the answers briefly.

    Valid and invalid keys are cached apart, each up to :data:`KEY_CACHE_ENTRIES`: a flood of made-up keys fills
    (and clears) only the cache of invalid ones, so the valid keys' entries stay. A key longer than
    :data:`MAX_KEY_LENGTH` is invalid without a look-up.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self._valid: dict[str, tuple[float, Principal]] = {}
        self._invalid: dict[str, float] = {}
        self._lock = threading.Lock()

    def principal(self, key: str) -> Principal | None:
        """The key's principal, or None when it is not a valid key."""
        if len(key) > MAX_KEY_LENGTH:
            return None
        now = time.monotonic()
        valid = self._valid.get(key)
        if valid is not None and valid[0] > now:
            return valid[1]
        if self._invalid.get(key, 0.0) > now:
            return None
        record = self.store.verify_api_key(key)
        found = None if record is None else Principal(record["key_id"], record["role"], record["dataset_group"])
        with self._lock:
            cache: dict[str, Any] = self._invalid if found is None else self._valid
            if len(cache) >= KEY_CACHE_ENTRIES:
                cache.clear()
            if found is None:
                self._invalid[key] = now + KEY_CACHE_SECONDS
                self._valid.pop(key, None)
            else:
                self._valid[key] = (now + KEY_CACHE_SECONDS, found)
        return found


PRINCIPAL = "recsmith.principal"
"""Where :class:`~recsmith.api.middleware.RequireKey` leaves the verified principal in the request's state."""


class Unauthorized(Exception):
    """No valid API key: the message says what to send."""


def authenticate(keys: KeyChecker, header: str | None) -> Principal:
    """The principal of an ``Authorization: Bearer <key>`` header.

    Raises
    ------
    Unauthorized
        When the header is missing, not a bearer key, or names no valid key.
    """
    if not header:
        raise Unauthorized("missing API key: send the header 'Authorization: Bearer <key>' (make a key with "
                           "`recsmith keys create`)")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    principal = keys.principal(key.strip())
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    return principal


async def _bearer(request: Request) -> Principal:
    principal = (request.scope.get("state") or {}).get(PRINCIPAL)  # checked by RequireKey before the body was read
    if principal is not None:
        return principal
    try:
        return authenticate(request.app.state.keys, request.headers.get("authorization"))
    except Unauthorized as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


def require(role: str) -> Any:
    """A dependency admitting keys with at least ``role`` on the path's ``group`` (403 otherwise).

    The 403 says which role and group the action needs and what the key holds, never the key's id."""

    async def check(request: Request, principal: Annotated[Principal, Depends(_bearer)]) -> Principal:
        refusal = principal.refusal(role, request.path_params.get("group"))
        if refusal is not None:
            raise HTTPException(403, refusal)
        request.scope.setdefault("state", {})[AUTHORISED] = True
        return principal

    return check


class RequireKey:
    """Refuse ``/v1`` requests without a valid API key with 401 before the app runs, so their body is never read.

    The principal is left in the request's state for the routes' role check (:func:`recsmith.api.auth.require`).
    """

    def __init__(self, app: ASGIApp, prefix: str = "/v1") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        try:
            principal = authenticate(scope["app"].state.keys, header)
        except Unauthorized as exc:
            await error(401, str(exc), headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        scope.setdefault("state", {})[PRINCIPAL] = principal
        await self.app(scope, receive, send)


Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
