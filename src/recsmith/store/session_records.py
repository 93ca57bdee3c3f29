"""The web console's sign-in sessions (the ``console_sessions`` table).

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine`` and ``begin``). A session stands for
one API key: the browser's cookie holds a random token whose SHA-256 is the row's key, and the row names the key
and the session's CSRF token. A session ends when it expires, when it is signed out, or when its key is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionRecords:
    """Mixin of :class:`recsmith.store.store.Store`: console sessions."""

    engine: Engine  # and Store's own begin

    def create_console_session(self, key_id: str, ttl_seconds: float) -> dict[str, Any]:
        """Open a session for the key ``key_id``; returns ``{"token", "csrf_token", "expires_at"}`` (the token is
        shown once: only its hash is stored). Expired sessions are removed on the way."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.time()
        s = t.console_sessions
        with self.begin() as conn:
            conn.execute(s.delete().where(s.c.expires_at < now))
            conn.execute(s.insert().values(token_hash=_hash(token), key_id=key_id, csrf_token=csrf,
                                           created_at=t.utc_now(), expires_at=now + ttl_seconds))
        return {"token": token, "csrf_token": csrf, "expires_at": now + ttl_seconds}

    def console_session(self, token: str) -> dict[str, Any] | None:
        """The live session of ``token``: ``{"key_id", "role", "dataset_group", "key_name", "csrf_token",
        "expires_at"}``, or None when there is none, it has expired, or its key was revoked."""
        if not token or len(token) > 128:
            return None
        s, k, g = t.console_sessions, t.api_keys, t.dataset_groups
        query = (sa.select(s.c.key_id, s.c.csrf_token, s.c.expires_at, k.c.role, k.c.name,
                           g.c.name.label("dataset_group"))
                 .join(k, k.c.key_id == s.c.key_id).outerjoin(g, g.c.id == k.c.dataset_group_id)
                 .where(s.c.token_hash == _hash(token), s.c.expires_at >= time.time()))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return {"key_id": row.key_id, "role": row.role, "dataset_group": row.dataset_group, "key_name": row.name,
                "csrf_token": row.csrf_token, "expires_at": row.expires_at}

    def delete_console_session(self, token: str) -> None:
        """Sign a session out (nothing happens when there is none)."""
        with self.begin() as conn:
            conn.execute(t.console_sessions.delete().where(t.console_sessions.c.token_hash == _hash(token)))
