"""Erasure through a real two-worker server, with the database alone and with Redis: after
``DELETE /v1/dataset-groups/G/users/U`` nothing of the user is left in the store, its files or Redis, the
campaigns answer them as a stranger, and ``recsmith users delete --purge-models`` takes them out of the artifacts
while the server keeps serving."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from recsmith.cli.main import app
from recsmith.client import Client
from recsmith.datasets.synthetic import synthetic_frame
from recsmith.jobs.training import train_solution_version
from recsmith.settings import Settings
from recsmith.store import tables as t
from recsmith.store.store import Store

REDIS_URL = os.environ.get("RECSMITH_TEST_REDIS_URL")
BACKENDS = ["database", pytest.param("redis", marks=[
    pytest.mark.redis, pytest.mark.skipif(not REDIS_URL, reason="RECSMITH_TEST_REDIS_URL is not set")])]
VICTIM = "erase-victim-5d2e81"
SESSION = "erase-session-90c4aa"
EMAIL = "erase.victim.5d2e81@example.org"


@dataclass
class Erasing:
    url: str
    key: str
    store: Store
    home: Path
    env: dict[str, str]
    prefix: str | None

    def client(self) -> Client:
        return Client(self.url, self.key)


@pytest.fixture(scope="module", params=BACKENDS)
def erasing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            serve_process) -> Iterator[Erasing]:
    start_server, stop_server = serve_process
    home: Path = tmp_path_factory.mktemp(f"erase-{request.param}") / "home"
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.migrate()
    group = store.create_dataset_group("shop")
    frame = synthetic_frame(n_users=80, n_items=40, n_interactions=3000, seed=5)
    store.write_events(group.id, [
        {"event_id": f"b{n}", "user_id": str(r.USER_ID), "session_id": f"s-{r.USER_ID}", "item_id": str(r.ITEM_ID),
         "timestamp": int(r.TIMESTAMP), "event_type": "view"} for n, r in enumerate(frame.itertuples())])
    # the victim's history before training: anonymous first (an email in a property), then signed in
    now = int(frame.TIMESTAMP.max())
    victim = [{"event_id": f"v{n}", "user_id": user, "session_id": SESSION, "item_id": item, "timestamp": now + n,
               "event_type": "view", "context": {"email": EMAIL}}
              for n, (user, item) in enumerate([(SESSION, "i1"), (SESSION, "i2"), (VICTIM, "i3"), (VICTIM, "i4"),
                                                (VICTIM, "i5")])]
    store.write_events(group.id, victim)
    for recipe, params in (("item-knn", {}), ("als", {"factors": 4, "epochs": 3})):
        version = train_solution_version(store, settings, "shop", recipe, params, with_metrics=False)
        store.create_campaign("shop", recipe, version["id"])
    key = store.create_api_key("admin", None, "tests")["key"]
    env: dict[str, str] = {}
    prefix = None
    if request.param == "redis":
        prefix = f"erase-{uuid.uuid4().hex[:8]}"
        env = {"RECSMITH_REDIS_URL": REDIS_URL, "RECSMITH_REDIS_PREFIX": prefix}
    url, process = start_server(home, workers=2, env=env)
    try:
        yield Erasing(url, key, store, home, env, prefix)
    finally:
        stop_server(process)
        store.close()
        if prefix is not None:
            from recsmith.serving.live import connect_redis

            client = connect_redis(REDIS_URL)
            for name in client.scan_iter(f"{prefix}:*"):
                client.delete(name)
            client.close()


def eventually(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def on_every_worker(erasing: Erasing, check, rounds: int = 8) -> bool:
    for _ in range(rounds):
        with erasing.client() as client:
            if not check(client):
                return False
    return True


def _reasons(client: Client, **request) -> set[str]:
    return {item.reason for item in client.recommend("shop", "item-knn", num_results=5, **request).items}


def _redis_traces(erasing: Erasing, ids: tuple[str, ...]) -> list[str]:
    """Keys of the server's prefix whose name or value names one of ``ids``."""
    from recsmith.serving.live import connect_redis

    client = connect_redis(REDIS_URL)
    found = []
    try:
        for name in client.scan_iter(f"{erasing.prefix}:*"):
            kind = client.type(name).decode()
            if kind == "string":
                values = [client.get(name) or b""]
            elif kind == "list":
                values = client.lrange(name, 0, -1)
            elif kind == "zset":
                values = client.zrange(name, 0, -1)
            else:
                values = []
            text = name.decode() + " " + b" ".join(values).decode(errors="replace")
            found += [f"{name.decode()}: {value}" for value in ids if value in text]
    finally:
        client.close()
    return found


def _artifact_traces(home: Path, ids: tuple[str, ...]) -> list[str]:
    found = []
    for path in (home / "artifacts").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {value}" for value in ids
                      if value.encode() in data or value.encode("utf-32-le") in data]
    return found


def test_a_deleted_user_leaves_no_trace_in_the_store_redis_or_answers(erasing: Erasing) -> None:
    store, ids = erasing.store, (VICTIM, SESSION)
    with erasing.client() as client:
        assert "popular" not in _reasons(client, user_id=VICTIM)  # the model knows them
        # live traffic: an anonymous event and a signed-in one (Redis event lists), answers (the ledger)
        client.put_events("shop", session_id=SESSION, events=[
            {"event_type": "view", "item_id": "i6", "sent_at": time.time(), "properties": {"email": EMAIL}}])
        client.put_events("shop", user_id=VICTIM, session_id=SESSION,
                          events=[{"event_type": "view", "item_id": "i7", "sent_at": time.time()}])
        answered = client.recommend("shop", "item-knn", user_id=VICTIM, num_results=5)
        client.recommend("shop", "als", session_id=SESSION, num_results=5)
        client.put_events("shop", user_id=VICTIM, session_id=SESSION, events=[
            {"event_type": "click", "item_id": answered.items[0].item_id, "sent_at": time.time(),
             "recommendation_id": answered.recommendation_id}])
    if erasing.prefix is not None:
        assert _redis_traces(erasing, ids)  # the check below can fail
    time.sleep(0.6)  # the database ledger's batches are written
    with erasing.client() as client:
        removed = client.delete_user("shop", VICTIM)
    assert removed["deleted"] == VICTIM and removed["interactions"] == 8 and removed["sessions"] == 1
    time.sleep(0.6)  # what another worker served just before is written (and refused) after
    with store.engine.connect() as conn:
        i, s = t.interactions, t.served_items
        assert conn.execute(sa.select(sa.func.count()).select_from(i).where(
            sa.or_(i.c.user_id.in_(ids), i.c.session_id.in_(ids)))).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(s).where(s.c.user_id.in_(ids))).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(s).where(
            s.c.recommendation_id == answered.recommendation_id)).scalar_one() == 0
        tombstones = conn.execute(sa.select(t.deletions.c.entity_id)).scalars().all()
    assert sorted(tombstones) == sorted(store.entity_hash(value) for value in ids)
    if erasing.prefix is not None:
        assert _redis_traces(erasing, ids) == []
    database = erasing.home / "recsmith.db"
    content = b"".join(p.read_bytes() for p in database.parent.iterdir() if p.name.startswith("recsmith.db"))
    for value in (*ids, EMAIL):
        assert value.encode() not in content, value
    # both workers answer them, and the session, as strangers (the models still hold them, hidden)
    assert eventually(lambda: on_every_worker(erasing, lambda c: _reasons(c, user_id=VICTIM) == {"popular"}
                                              and _reasons(c, session_id=SESSION) == {"popular"}))
    assert _artifact_traces(erasing.home, ids)  # until --purge-models


def test_purge_models_rewrites_the_artifacts_while_the_server_serves(erasing: Erasing, monkeypatch) -> None:
    monkeypatch.setenv("RECSMITH_HOME", str(erasing.home))
    monkeypatch.delenv("RECSMITH_DATABASE_URL", raising=False)
    for name, value in erasing.env.items():
        monkeypatch.setenv(name, value)
    with erasing.client() as client:
        client.put_events("shop", user_id=VICTIM, session_id=SESSION,
                          events=[{"event_type": "view", "item_id": "i9", "sent_at": time.time()}])
    result = CliRunner().invoke(app, ["users", "delete", VICTIM, "-g", "shop", "--purge-models", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["users"][VICTIM]["interactions"] == 1
    assert len(report["models"]["rewritten"]) == 2 and report["models"]["needs_retraining"] == []
    assert _artifact_traces(erasing.home, (VICTIM, SESSION)) == []
    versions = erasing.store.list_solution_versions()
    assert all(v["artifact_uri"].endswith("-r1") for v in versions)
    # the workers load the rewritten artifacts (the old folders are gone) and keep answering
    assert eventually(lambda: on_every_worker(erasing, lambda c: "popular" not in _reasons(c, user_id="u3")
                                              and _reasons(c, user_id=VICTIM) == {"popular"}))
    text = CliRunner().invoke(app, ["users", "delete", "nobody", "-g", "shop"], catch_exceptions=False).output
    assert "deleted from the next trained model" in text
