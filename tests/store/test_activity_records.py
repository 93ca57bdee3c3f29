"""A group's activity counts (the console's overview): event types, interactions per day, live events per minute
and the newest live events, counted by the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recsmith.data.schema import Schema
from recsmith.errors import ConfigError
from recsmith.store.store import Store

DAY = 86_400
NOW = 1_800_000_000  # a minute boundary: 1_800_000_000 % 60 == 0


def _bulk(store: Store, group_id: int, stamps: list[int], types: list[str | None] | None = None,
          mode: str = "full") -> None:
    frame = pd.DataFrame({"USER_ID": [f"u{k}" for k in range(len(stamps))],
                          "ITEM_ID": [f"i{k % 3}" for k in range(len(stamps))],
                          "TIMESTAMP": np.array(stamps, dtype=np.int64)})
    if types is not None:
        frame["EVENT_TYPE"] = types
    store.write_interactions(group_id, frame, mode=mode, schema=Schema.default("interactions").to_dict())


def _events(store: Store, group_id: int, stamps: list[int], prefix: str = "e") -> None:
    store.record_events(group_id, [{"event_id": f"{prefix}{k}", "user_id": "live", "item_id": f"i{k}",
                                    "timestamp": stamp, "event_type": "click", "session_id": "s1",
                                    "event_value": 1.5 if k == 0 else None} for k, stamp in enumerate(stamps)])


def test_event_type_counts_most_first_and_only_the_group(store: Store) -> None:
    group, other = store.create_dataset_group("g"), store.create_dataset_group("other")
    _bulk(store, group.id, [1, 2, 3, 4, 5, 6], ["click", "click", "view", None, "click", None])
    _bulk(store, other.id, [1, 2], ["buy", "buy"])
    assert store.event_type_counts(group.id) == {"click": 3, "": 2, "view": 1}
    assert list(store.event_type_counts(group.id)) == ["click", "", "view"]
    assert store.describe(group.id)["event_types"] == {"click": 3, "": 2, "view": 1}  # describe reads the same
    assert store.event_type_counts(store.create_dataset_group("empty").id) == {}


def test_interactions_per_day_in_utc_days_before_and_after_1970(store: Store) -> None:
    group, other = store.create_dataset_group("g"), store.create_dataset_group("other")
    _bulk(store, group.id, [-1, -DAY, 0, DAY - 1, DAY, 10 * DAY + 5, 10 * DAY + 6, 10 * DAY + 7])
    _bulk(store, other.id, [5 * DAY])
    assert store.interactions_per_day(group.id) == [(-DAY, 2), (0, 2), (DAY, 1), (10 * DAY, 3)]
    _events(store, group.id, [10 * DAY + 100])  # live events are interactions too
    assert store.interactions_per_day(group.id)[-1] == (10 * DAY, 4)
    assert store.interactions_per_day(store.create_dataset_group("empty").id) == []


def test_live_events_per_minute_count_only_live_events_in_the_window(store: Store) -> None:
    group, other = store.create_dataset_group("g"), store.create_dataset_group("other")
    since, until = NOW - 3600, NOW + 60
    _bulk(store, group.id, [NOW - 10, NOW - 20, NOW - 30])  # bulk rows in the window: not live
    _events(store, group.id, [NOW, NOW + 59, NOW - 1, NOW - 3600, NOW - 3601, NOW + 60, NOW - 1800])
    _events(store, other.id, [NOW, NOW])
    assert store.live_events_per_minute(group.id, since, until) == [
        (NOW - 3600, 1), (NOW - 1800, 1), (NOW - 60, 1), (NOW, 2)]
    assert store.live_events_per_minute(group.id, NOW, NOW) == []
    with pytest.raises(ConfigError, match="before its start"):
        store.live_events_per_minute(group.id, NOW, NOW - 1)


def test_recent_live_events_newest_arrival_first(store: Store) -> None:
    group = store.create_dataset_group("g")
    assert store.recent_live_events(group.id) == []
    _events(store, group.id, [NOW, NOW - 500, NOW - 100])
    _bulk(store, group.id, [NOW + 5, NOW + 6], mode="incremental")  # newer rows, but not live
    _events(store, group.id, [NOW - 9999], prefix="late")  # arrived last, sent long ago
    recent = store.recent_live_events(group.id, 3)
    assert [e.event_id for e in recent] == ["late0", "e2", "e1"]
    assert [e.row for e in recent] == sorted((e.row for e in recent), reverse=True)
    first = store.recent_live_events(group.id, 10)[-1]
    assert (first.event_id, first.user_id, first.item_id, first.timestamp, first.event_type, first.event_value,
            first.session_id) == ("e0", "live", "i0", NOW, "click", 1.5, "s1")
    for bad in (0, 101, True, 2.5):
        with pytest.raises(ConfigError, match="limit"):
            store.recent_live_events(group.id, bad)


@contextmanager
def _statements(store: Store) -> Iterator[list[tuple[str, object]]]:
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        seen.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)


def test_live_reads_use_the_partial_event_index_on_sqlite(store: Store) -> None:
    if not store.is_sqlite:
        pytest.skip("PostgreSQL's plan follows its statistics")
    group = store.create_dataset_group("g")
    _bulk(store, group.id, list(range(NOW - 2000, NOW)))
    _events(store, group.id, [NOW - 5, NOW - 65])
    with _statements(store) as seen:
        store.live_events_per_minute(group.id, NOW - 3600, NOW + 60)
        store.recent_live_events(group.id)
    with store.engine.connect() as conn:
        for statement, parameters in seen:
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                         parameters))
            assert "uq_interactions_group_event" in plan, plan  # the group's live events only, no bulk row read
