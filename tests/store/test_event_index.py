"""The unique event-id index is partial (migration 0005): bulk rows (no event id) stay out of it, real-time
events are still stored once per event id and group, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recsmith.data.schema import Schema
from recsmith.store.store import Store

INDEX = "uq_interactions_group_event"


def index_definition(store: Store) -> str:
    with store.engine.connect() as conn:
        if store.is_sqlite:
            sql = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"
        else:
            sql = "SELECT indexdef FROM pg_indexes WHERE indexname = :name AND schemaname = current_schema()"
        return conn.execute(sa.text(sql), {"name": INDEX}).scalar_one()


def event(event_id: str, item: str) -> dict:
    return {"event_id": event_id, "user_id": "live", "item_id": item, "timestamp": 2_000_000_000}


def test_after_migration_the_event_index_is_partial(db_url: str) -> None:
    store = Store(db_url)
    store.migrate("0004")  # a store made before the partial index, with bulk rows and an event in it
    group = store.create_dataset_group("g")
    store.write_interactions(group.id, pd.DataFrame({
        "USER_ID": ["u1", "u2"], "ITEM_ID": ["a", "b"], "TIMESTAMP": np.array([1, 2], dtype=np.int64)}),
        schema=Schema.default("interactions").to_dict())
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO interactions (dataset_group_id, user_id, item_id, timestamp, event_id) "
                             "VALUES (:g, 'live', 'x', 3, 'old')"), {"g": group.id})
    assert "WHERE" not in index_definition(store).upper()

    store.migrate()
    assert "event_id IS NOT NULL" in index_definition(store).replace("(", "").replace(")", "")
    # bulk rows have no event id: many of them, all stored (distinct records: an incremental import leaves out
    # the ones identical to a stored record)
    n = 60_000  # above BULK_INDEX_REBUILD_ROWS
    bulk = pd.DataFrame({"USER_ID": ["u1"] * n, "ITEM_ID": ["a"] * n, "TIMESTAMP": np.arange(10, 10 + n)})
    assert store.write_interactions(group.id, bulk, mode="incremental") == n
    assert store.count_interactions(group.id) == 2 + 1 + n
    # an event id is stored once per group: within a batch, across batches, and after the migration
    assert store.write_events(group.id, [event("e1", "a"), event("e1", "b")]) == (1, 1)
    assert store.write_events(group.id, [event("e1", "c"), event("e2", "d"), event("old", "y")]) == (1, 2)
    other = store.create_dataset_group("other")
    assert store.write_events(other.id, [event("e1", "a")]) == (1, 0)  # another group's ids are its own
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT event_id, item_id FROM interactions WHERE dataset_group_id = :g "
                                      "AND event_id IS NOT NULL ORDER BY id"), {"g": group.id}).all()
    assert [tuple(row) for row in stored] == [("old", "x"), ("e1", "a"), ("e2", "d")]
    store.close()
