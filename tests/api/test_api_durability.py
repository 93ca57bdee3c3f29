"""kill -9 of the whole server (supervisor and workers) while events pour in: every acknowledged event is stored.

``POST /v1/dataset-groups/{group}/events`` answers 200 only after the batch is committed, so a 200 must survive
the server's sudden death, and a batch is stored whole or not at all. The server runs in its own session (process
group) so that SIGKILL reaches the supervisor and both workers at once, and nothing of pytest's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from recsmith.store import tables
from recsmith.store.store import Store
from recsmith.testing import free_port

POSTGRES_URL = os.environ.get("RECSMITH_TEST_POSTGRES_URL")
CLIENTS = 4
BATCH = 10
KILL_AFTER_BATCHES = 40  # acknowledged batches before the kill (~0.5 s of ingestion)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated store: a new SQLite file, or the PostgreSQL test database (left as it is: this test writes only
    to its own dataset group)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'home' / 'recsmith.db'}"
        (tmp_path / "home").mkdir()
    elif not POSTGRES_URL:
        pytest.skip("RECSMITH_TEST_POSTGRES_URL is not set")
    else:
        url = POSTGRES_URL
    store = Store(url)
    store.migrate()
    store.close()
    return url


class ServerProcess:
    """``recsmith serve --workers 2`` in its own process group, on the given store."""

    def __init__(self, home: Path, database_url: str, log: Path) -> None:
        self.home, self.database_url, self.log = home, database_url, log
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> None:
        port = free_port()
        env = os.environ | {"RECSMITH_HOME": str(self.home), "RECSMITH_DATABASE_URL": self.database_url}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "recsmith", "serve", "--port", str(port), "--workers", "2"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # /health, not /ready: other tests' campaigns may share the database
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not start in time: {self.log.read_text(errors='replace')[-3000:]}")

    def kill_group(self) -> None:
        """SIGKILL the supervisor and every worker at once; wait until none of them is left."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        raise AssertionError("server processes survived SIGKILL of their process group")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def setup(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, Store, str, str]]:
    """A server on the store, a dataset group of this run only and a write key for it; cleaned up after."""
    store = Store(database_url)
    group = f"durability-{uuid.uuid4().hex[:10]}"
    store.create_dataset_group(group)
    key = store.create_api_key("write", group, "durability test")["key"]
    server = ServerProcess(tmp_path / "home", database_url, tmp_path / "serve.log")
    try:
        yield server, store, group, key
    finally:
        server.stop()
        store.delete_dataset_group(group)
        store.close()


def stored_ids(store: Store, group: str) -> set[str]:
    i = tables.interactions
    group_id = store.get_dataset_group(group).id
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(i.c.event_id).where(i.c.dataset_group_id == group_id)).scalars())


def test_acknowledged_events_survive_kill_9_of_the_server(setup: tuple[ServerProcess, Store, str, str]) -> None:
    server, store, group, key = setup
    server.start()
    path = f"{server.url}/v1/dataset-groups/{group}/events"
    acknowledged: list[list[str]] = []
    sent: list[list[str]] = []
    refused: list[tuple[int, str]] = []
    stopped_by_error: list[int] = []
    lock = threading.Lock()

    def post_batches(client_number: int) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
            for sequence in range(1_000_000):
                ids = [f"c{client_number}-b{sequence}-e{j}" for j in range(BATCH)]
                body = {"user_id": f"user-{client_number}", "session_id": f"s-{client_number}",
                        "events": [{"event_id": event_id, "event_type": "click", "item_id": str(j),
                                    "sent_at": 1764064800 + sequence} for j, event_id in enumerate(ids)]}
                with lock:
                    sent.append(ids)
                try:
                    response = client.post(path, json=body)
                except httpx.TransportError:
                    with lock:
                        stopped_by_error.append(client_number)
                    return
                with lock:
                    if response.status_code == 200:
                        acknowledged.append(ids)
                    else:
                        refused.append((response.status_code, response.text[:200]))

    # one batch alone first: it creates the group's interactions dataset (the concurrent first batches of a new
    # group race to create it, a separate matter from durability)
    first = httpx.post(path, headers={"Authorization": f"Bearer {key}"}, timeout=10, json={
        "user_id": "user-first", "session_id": "s-first",
        "events": [{"event_id": "first", "event_type": "click", "item_id": "0", "sent_at": 1764064800}]})
    assert first.status_code == 200, first.text
    acknowledged.append(["first"])
    clients = [threading.Thread(target=post_batches, args=(n,), daemon=True) for n in range(CLIENTS)]
    for thread in clients:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < KILL_AFTER_BATCHES and time.monotonic() < deadline and not refused:
        time.sleep(0.01)
    server.kill_group()  # mid-ingestion: every client has a request in flight or about to go
    with lock:
        acknowledged_at_kill = len(acknowledged)
    for thread in clients:
        thread.join(15)
    assert not refused, refused[:3]
    assert acknowledged_at_kill >= KILL_AFTER_BATCHES
    assert sorted(stopped_by_error) == list(range(CLIENTS))  # every client was cut off by the kill

    server.start()  # recovers (SQLite's WAL, PostgreSQL's log) and serves again, on a new port
    stored = stored_ids(store, group)
    acknowledged_ids = {event_id for ids in acknowledged for event_id in ids}
    missing = acknowledged_ids - stored
    assert not missing, f"{len(missing)} of {len(acknowledged_ids)} acknowledged events lost: {sorted(missing)[:5]}"
    assert len(stored) >= len(acknowledged_ids)
    assert stored <= {event_id for ids in sent for event_id in ids} | {"first"}
    partly = [ids for ids in sent if 0 < len(stored & set(ids)) < len(ids)]
    assert not partly, f"batches stored in part: {partly[:3]}"
    after = {"user_id": "user-0", "session_id": "s-0", "events": [  # one acknowledged before the kill, one new
        {"event_id": acknowledged[-1][0], "event_type": "click", "item_id": "0", "sent_at": 1764064800},
        {"event_id": "after-restart", "event_type": "click", "item_id": "1", "sent_at": 1764064800}]}
    again = httpx.post(f"{server.url}/v1/dataset-groups/{group}/events", json=after,
                       headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert again.status_code == 200 and again.json() == {"accepted": 1, "duplicates": 1}, again.text
