"""API keys: ``Authorization: Bearer rsk_...`` checked against the store's hashed keys, with roles.

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

from recsmith.store.serving_records import ROLES

KEY_CACHE_SECONDS = 10.0


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


class KeyChecker:
    """Verifies bearer keys against the store, caching the answers briefly."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def principal(self, key: str) -> Principal | None:
        """The key's principal, or None when it is not a valid key."""
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = self.store.verify_api_key(key)
        found = None if record is None else Principal(record["key_id"], record["role"], record["dataset_group"])
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now + KEY_CACHE_SECONDS, found)
        return found


async def _bearer(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise HTTPException(401, "missing API key: send the header 'Authorization: Bearer <key>' (make a key with "
                                 "`recsmith keys create`)", headers={"WWW-Authenticate": "Bearer"})
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise HTTPException(401, "the Authorization header must be 'Bearer <key>'",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = request.app.state.keys.principal(key.strip())
    if principal is None:
        raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(role: str) -> Any:
    """A dependency admitting keys with at least ``role`` on the path's ``group`` (403 otherwise)."""

    async def check(request: Request, principal: Annotated[Principal, Depends(_bearer)]) -> Principal:
        group = request.path_params.get("group")
        if not principal.may(role, group):
            where = f"dataset group {group!r}" if group else "this server"
            raise HTTPException(403, f"API key {principal.key_id} (role {principal.role}"
                                     f"{', group ' + repr(principal.dataset_group) if principal.dataset_group else ''})"
                                     f" may not do this: it needs role {role} on {where}")
        return principal

    return check


Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
