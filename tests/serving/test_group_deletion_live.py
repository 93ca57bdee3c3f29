"""What a deleted dataset group leaves outside its rows: Redis event lists and ledger keys (deleted, others' kept),
other processes' remembered live state and unwritten ledger entries (dropped, so that a new group given the
deleted group's id starts from nothing)."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from recsmith.serving.campaign import CampaignRuntime
from recsmith.serving.ledger import DatabaseLedger, RedisLedger
from recsmith.serving.live import DatabaseLive, RedisLive, connect_redis, delete_prefixed, prefix_pattern
from recsmith.store.live_records import Served
from recsmith.store.store import Store


@pytest.fixture
def sqlite_store(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'live.db'}")
    store.migrate()
    yield store
    store.close()


def _events(store: Store, group_id: int, user: str, live) -> None:
    rows = [{"event_id": uuid.uuid4().hex, "user_id": user, "item_id": item, "timestamp": 1764064800}
            for item in ("1", "2")]
    live.events_written(group_id, rows, store.record_events(group_id, rows))


def _served(group_id: int, user: str | None) -> Served:
    return Served(uuid.uuid4().hex, group_id, "top", user, ("1", "2"), time.time())


@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("RECSMITH_TEST_REDIS_URL"), reason="RECSMITH_TEST_REDIS_URL unset")
@pytest.mark.parametrize("prefix_shape", ["t-{}", "t*?[{}]"], ids=["plain", "glob-characters"])
def test_deleting_a_group_deletes_its_redis_keys_and_no_others(sqlite_store: Store, prefix_shape: str) -> None:
    client = connect_redis(os.environ["RECSMITH_TEST_REDIS_URL"])
    prefix = prefix_shape.format(uuid.uuid4().hex[:10])
    try:
        kept, gone = sqlite_store.create_dataset_group("kept"), sqlite_store.create_dataset_group("gone")
        live, ledger = RedisLive(sqlite_store, client, prefix=prefix), RedisLedger(client, prefix=prefix)
        listener = RedisLive(sqlite_store, client, prefix=prefix)
        listener.start()
        for group in (gone, kept):
            _events(sqlite_store, group.id, "u1", live)
            for user in ("u1", "u2"):
                ledger.record(_served(group.id, user))
        assert listener.state(gone.id).last_event_id > 0
        before = {k.decode() for k in client.scan_iter(match=prefix_pattern(prefix))}
        assert len(before) == 2 * (1 + 2 + 2)  # per group: one event list, two served sets, two response keys

        result = CampaignRuntime(sqlite_store, live=live, ledger=ledger).delete_dataset_group("gone")
        assert result["keys"] == 5 and result["left"] == []
        after = {k.decode() for k in client.scan_iter(match=prefix_pattern(prefix))}
        assert len(after) == 5 and all(f":{gone.id}:" not in key or key.startswith(f"{prefix}:rec:") for key in after)
        assert ledger.served_to(kept.id, "u1", 0) and not ledger.served_to(gone.id, "u1", 0)
        again = sqlite_store.create_dataset_group("again")  # SQLite gives it the deleted group's id
        assert again.id == gone.id
        deadline = time.monotonic() + 5
        while listener.state(again.id).last_event_id and time.monotonic() < deadline:  # told through the channel
            time.sleep(0.02)
        assert listener.state(again.id).last_event_id == 0
        assert live.user_events_after(again.id, "u1", 0) == []
        listener.stop()
    finally:
        delete_prefixed(client, prefix)
        client.close()


def test_another_processs_live_state_of_a_deleted_group_is_dropped(sqlite_store: Store) -> None:
    old = sqlite_store.create_dataset_group("old")
    live = DatabaseLive(sqlite_store, poll_seconds=0.02)
    live.start()
    try:
        _events(sqlite_store, old.id, "u1", DatabaseLive(sqlite_store))
        deadline = time.monotonic() + 5
        while not live.state(old.id).last_event_id and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live.state(old.id).last_event_id > 0
        sqlite_store.delete_dataset_group("old")  # by another process: this one learns it at its next poll
        time.sleep(0.2)
        new = sqlite_store.create_dataset_group("new")
        assert new.id == old.id  # SQLite gives the next group the deleted one's id
        assert live.state(new.id).last_event_id == 0 and live.state(new.id).catalog_version == 0
    finally:
        live.stop()


def test_unwritten_ledger_entries_of_a_deleted_group_are_dropped(sqlite_store: Store) -> None:
    gone, kept = sqlite_store.create_dataset_group("gone"), sqlite_store.create_dataset_group("kept")
    ledger = DatabaseLedger(sqlite_store)
    ledger.record(_served(gone.id, "u1"))
    ledger.record(_served(kept.id, "u1"))
    sqlite_store.delete_dataset_group("gone")  # by another process, before this one flushed
    assert ledger.flush() == 2  # no foreign-key failure holding every later entry back
    assert len(ledger.served_to(kept.id, "u1", 0)) == 1
    assert sqlite_store.dataset_group_counts() == {kept.id: sqlite_store.dataset_group_counts()[kept.id]}
    pending = DatabaseLedger(sqlite_store)
    pending.record(_served(kept.id, "u2"))
    runtime = CampaignRuntime(sqlite_store, ledger=pending)
    assert runtime.delete_dataset_group("kept")["keys"] == 0
    assert pending.flush() == 0  # this process's pending entries went with the group
