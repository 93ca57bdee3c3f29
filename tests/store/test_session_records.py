"""Console sessions in the store: a token stands for its key until it expires, is signed out or the key goes."""

from __future__ import annotations

import time

import sqlalchemy as sa

from recsmith.store import tables as t


def test_a_session_stands_for_its_key_and_keeps_only_the_tokens_hash(store) -> None:
    store.create_dataset_group("shop")
    key = store.create_api_key("read", "shop", "reader")
    session = store.create_console_session(key["key_id"], ttl_seconds=60)
    found = store.console_session(session["token"])
    assert found == {"key_id": key["key_id"], "role": "read", "dataset_group": "shop", "key_name": "reader",
                     "csrf_token": session["csrf_token"], "expires_at": found["expires_at"]}
    assert abs(found["expires_at"] - (time.time() + 60)) < 5
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(t.console_sessions.c.token_hash)).scalars().all()
    assert stored and session["token"] not in stored  # a copy of the database cannot sign in
    assert store.console_session("not-a-token") is None
    assert store.console_session("") is None
    assert store.console_session("x" * 500) is None


def test_a_session_ends_when_it_expires_is_signed_out_or_its_key_is_revoked(store) -> None:
    admin = store.create_api_key("admin", None, "boss")
    expired = store.create_console_session(admin["key_id"], ttl_seconds=-1)
    assert store.console_session(expired["token"]) is None
    out = store.create_console_session(admin["key_id"], ttl_seconds=60)
    store.delete_console_session(out["token"])
    assert store.console_session(out["token"]) is None
    kept = store.create_console_session(admin["key_id"], ttl_seconds=60)
    assert store.console_session(kept["token"])["dataset_group"] is None
    with store.engine.connect() as conn:  # the expired session was removed when a new one was opened
        assert conn.execute(sa.select(sa.func.count()).select_from(t.console_sessions)).scalar_one() == 1
    store.delete_api_key(admin["key_id"])
    assert store.console_session(kept["token"]) is None


def test_deleting_a_group_ends_the_sessions_of_its_keys(store) -> None:
    store.create_dataset_group("gone")
    key = store.create_api_key("admin", "gone")
    session = store.create_console_session(key["key_id"], ttl_seconds=60)
    store.delete_dataset_group("gone")
    assert store.console_session(session["token"]) is None
