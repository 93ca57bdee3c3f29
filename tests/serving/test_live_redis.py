"""The Redis live-state backend and ledger, against a real Redis (RECSMITH_TEST_REDIS_URL)."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from recsmith.serving.ledger import RedisLedger
from recsmith.serving.live import HISTORY_LENGTH, RedisLive, connect_redis
from recsmith.store.live_records import Served
from recsmith.store.store import Store

pytestmark = [pytest.mark.redis,
              pytest.mark.skipif(not os.environ.get("RECSMITH_TEST_REDIS_URL"), reason="RECSMITH_TEST_REDIS_URL unset")]


@pytest.fixture
def redis_client():
    client = connect_redis(os.environ["RECSMITH_TEST_REDIS_URL"])
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    for key in redis_client.scan_iter(f"{name}:*"):
        redis_client.delete(key)


def _write(store: Store, group_id: int, user: str, items: list[str], live: RedisLive) -> None:
    rows = [{"event_id": uuid.uuid4().hex, "user_id": user, "item_id": item, "timestamp": 1764064800}
            for item in items]
    live.events_written(group_id, rows, store.record_events(group_id, rows))


def item_ids(events) -> list[str]:
    return [event.item_id for event in events]


def test_events_reach_another_process_through_the_channel(tmp_path, redis_client, prefix):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    group = store.create_dataset_group("g")
    writer, reader = RedisLive(store, redis_client, prefix=prefix), RedisLive(store, redis_client, prefix=prefix)
    woken = []
    reader.on_change = lambda: woken.append(True)
    reader.start()
    try:
        assert reader.state(group.id).last_event_id == 0
        _write(store, group.id, "u1", ["a", "b"], writer)
        newest = store.last_event_id(group.id)
        deadline = time.monotonic() + 10  # generous: a loaded machine may be slow
        while reader.state(group.id).last_event_id < newest and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.state(group.id).last_event_id == newest  # pushed, not polled
        assert item_ids(reader.user_events_after(group.id, "u1", 0)) == ["a", "b"]
        assert item_ids(reader.user_events_after(group.id, "u1", newest)) == []
        store.delete_item(group.id, "a")
        writer.catalog_changed(group.id)
        deadline = time.monotonic() + 10  # generous: a loaded machine may be slow
        while not woken and time.monotonic() < deadline:
            time.sleep(0.01)
        assert woken and reader.state(group.id).catalog_version == store.live_state(group.id).catalog_version
    finally:
        reader.stop()
        store.close()


def test_a_history_longer_than_the_list_falls_back_to_the_store(tmp_path, redis_client, prefix):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    group = store.create_dataset_group("g")
    live = RedisLive(store, redis_client, prefix=prefix)
    _write(store, group.id, "u1", [f"i{n}" for n in range(HISTORY_LENGTH + 20)], live)
    items = item_ids(live.user_events_after(group.id, "u1", 0))
    assert len(items) == HISTORY_LENGTH + 20 and items[0] == "i0"  # the list holds 500; the store has them all
    assert item_ids(live.user_events_after(group.id, "nobody", 0)) == []
    store.close()


def test_the_redis_ledger(redis_client, prefix):
    ledger = RedisLedger(redis_client, prefix=prefix, retention_seconds=3600)
    now = time.time()
    first = Served("r1", 1, "home", "u1", ("a", "b"), now - 120)
    second = Served("r2", 1, "home", "u1", ("c",), now)
    for entry in (first, second, Served("r3", 1, "home", None, ("d",), now)):
        ledger.record(entry)
    assert ledger.served_to(1, "u1", now - 60) == [second]
    assert ledger.served_to(1, "u1", now - 600) == [first, second]
    assert ledger.lookup(["r1", "r3", "nope"]).keys() == {"r1", "r3"}
    assert ledger.lookup(["r1"])["r1"] == first


def test_events_from_before_the_list_began_come_from_the_store(tmp_path, redis_client, prefix):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    group = store.create_dataset_group("g")
    live = RedisLive(store, redis_client, prefix=prefix)
    store.write_events(group.id, [{"event_id": "early", "user_id": "u1", "item_id": "a", "timestamp": 1}])
    _write(store, group.id, "u1", ["b"], live)  # the user's Redis list begins here, after "a"
    early = store.last_event_id(group.id) - 1  # "a"'s row id
    assert item_ids(live.user_events_after(group.id, "u1", 0)) == ["a", "b"]  # "a": from the store
    assert item_ids(live.user_events_after(group.id, "u1", early)) == ["b"]
    store.write_events(group.id, [{"event_id": "hidden", "user_id": "u1", "item_id": "z", "timestamp": 2}])
    assert item_ids(live.user_events_after(group.id, "u1", early)) == ["b"]  # Redis alone
    redis_client.delete(f"{prefix}:{group.id}:events2:u1")  # expired: a new list begins after "b" and "z"
    _write(store, group.id, "u1", ["c"], live)
    assert item_ids(live.user_events_after(group.id, "u1", early)) == ["b", "z", "c"]
    store.close()


def test_redis_keeps_each_events_type_and_time(tmp_path, redis_client, prefix):
    """Serving weighs live events like training (event-type weights, decay): Redis must give back both."""
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    group = store.create_dataset_group("g")
    live = RedisLive(store, redis_client, prefix=prefix)
    rows = [{"event_id": "e1", "user_id": "u1", "item_id": "a:b", "timestamp": 1764064800, "event_type": "dislike"},
            {"event_id": "e2", "user_id": "u1", "item_id": "c", "timestamp": 1764064900, "event_type": None}]
    live.events_written(group.id, rows, store.record_events(group.id, rows))
    store.write_events(group.id, [{"event_id": "hidden", "user_id": "u1", "item_id": "z", "timestamp": 2}])
    events = live.user_events_after(group.id, "u1", 0)
    assert [tuple(e[:3]) for e in events] == [("a:b", "dislike", 1764064800), ("c", None, 1764064900)]
    stored = [e for e in store.user_events(group.id, "u1") if e.item_id != "z"]
    assert [e[:3] for e in events] == [e[:3] for e in stored]
    assert all(e.row >= s.row for e, s in zip(events, stored, strict=True))
    store.close()
