"""A dataset group's activity, as the console's overview shows it: its event types, its interactions per day and
the real-time events of the last hour.

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine``). Every read is one grouped query:
the counting is done by the database (SQLite or PostgreSQL), and what comes back is one row per event type, day
or minute, never the interactions themselves.

Times are the interactions' ``timestamp`` (epoch seconds: the data's TIMESTAMP, or a real-time event's
``sentAt``), bucketed in UTC. *Real-time* events are those the event tracker stored (``POST
/v1/dataset-groups/{group}/events``): they carry an ``event_id``, bulk-imported rows do not, and the reads of
real-time events name ``event_id IS NOT NULL`` so that they go through the partial index of events
(``uq_interactions_group_event``) and read no bulk-imported row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.errors import ConfigError
from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DAY_SECONDS = 86_400
MINUTE_SECONDS = 60
MAX_RECENT_EVENTS = 100
"""The most real-time events :meth:`ActivityRecords.recent_live_events` returns."""


@dataclass(frozen=True)
class LiveEvent:
    """One stored real-time event (:meth:`ActivityRecords.recent_live_events`).

    Attributes
    ----------
    row : int
        The interaction row id (newer events have higher ids).
    user_id, item_id : str
        Who and what (for an anonymous event, the user id is the session id).
    timestamp : int
        When it was sent (epoch seconds).
    event_type : str or None
        Its type.
    event_value : float or None
        Its value.
    session_id : str or None
        The session it was sent in.
    event_id : str
        Its id (given by the client, or derived from the event).
    """

    row: int
    user_id: str
    item_id: str
    timestamp: int
    event_type: str | None
    event_value: float | None
    session_id: str | None
    event_id: str


def bucket_start(column: Any, seconds: int) -> Any:
    """SQL for the start (epoch seconds) of the ``seconds``-long UTC bucket holding ``column`` (epoch seconds): the
    floor to a multiple of ``seconds``, right for times before 1970 too (SQL's ``%`` keeps the dividend's sign).
    The constant is written into the SQL, not bound, so that PostgreSQL sees the same expression in the select
    list and in ``GROUP BY``."""
    width = sa.literal_column(str(int(seconds)), sa.BigInteger)
    return column - ((column % width) + width) % width


class ActivityRecords:
    """Mixin of :class:`recsmith.store.store.Store`: counts of a group's interactions by event type, day and minute,
    and its newest real-time events."""

    engine: Engine

    def event_type_counts(self, group_id: int) -> dict[str, int]:
        """The group's interactions per event type, most first (``""`` for interactions without a type); one
        grouped query."""
        i = t.interactions
        count = sa.func.count()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(i.c.event_type, count).where(i.c.dataset_group_id == group_id)
                                .group_by(i.c.event_type).order_by(count.desc(), i.c.event_type)).all()
        return {(kind if kind is not None else ""): int(n) for kind, n in rows}

    def interactions_per_day(self, group_id: int) -> list[tuple[int, int]]:
        """The group's interactions per UTC day of their timestamp: ``(day start in epoch seconds, count)`` for each
        day that has any, oldest first; one grouped query (a row per day, not per interaction)."""
        i = t.interactions
        day = bucket_start(i.c.timestamp, DAY_SECONDS).label("day")
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(day, sa.func.count()).where(i.c.dataset_group_id == group_id)
                                .group_by(day).order_by(day)).all()
        return [(int(start), int(n)) for start, n in rows]

    def live_events_per_minute(self, group_id: int, since: int, until: int) -> list[tuple[int, int]]:
        """The group's real-time events (with an ``event_id``) whose timestamp is at or after ``since`` and before
        ``until`` (epoch seconds), per UTC minute: ``(minute start, count)`` for each minute that has any, oldest
        first; one grouped query over the partial index of events."""
        if until < since:
            raise ConfigError(f"the window's end ({until}) is before its start ({since})")
        i = t.interactions
        minute = bucket_start(i.c.timestamp, MINUTE_SECONDS).label("minute")
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(minute, sa.func.count())
                                .where(*_live(group_id), i.c.timestamp >= int(since), i.c.timestamp < int(until))
                                .group_by(minute).order_by(minute)).all()
        return [(int(start), int(n)) for start, n in rows]

    def recent_live_events(self, group_id: int, limit: int = 10) -> list[LiveEvent]:
        """The group's newest real-time events, as stored (newest first, by arrival: the row id), at most ``limit``
        (1 to :data:`MAX_RECENT_EVENTS`)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RECENT_EVENTS:
            raise ConfigError(f"limit must be an integer from 1 to {MAX_RECENT_EVENTS}, got {limit!r}")
        i = t.interactions
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(i.c.id, i.c.user_id, i.c.item_id, i.c.timestamp, i.c.event_type,
                                          i.c.event_value, i.c.session_id, i.c.event_id)
                                .where(*_live(group_id)).order_by(i.c.id.desc()).limit(limit)).all()
        return [LiveEvent(int(row.id), row.user_id, row.item_id, int(row.timestamp), row.event_type,
                          None if row.event_value is None else float(row.event_value), row.session_id, row.event_id)
                for row in rows]


def _live(group_id: int) -> tuple[Any, ...]:
    """The conditions of a group's real-time events, in the words of the partial index of events (so both
    databases use it)."""
    i = t.interactions
    return i.c.dataset_group_id == group_id, i.c.event_id.is_not(None)
