"""The served-items ledger: what each recommendation response returned, to whom and when.

Requests can then ask to suppress items a user was shown in the last N minutes and did not act on, and events
that carry a ``recommendation_id`` are linked back to the campaign and the items of that response (clicks,
impressions, click-through rate per campaign in ``/metrics``).

Two backends with one interface:

- :class:`DatabaseLedger` (one host, no Redis): entries are buffered in memory and written to the store's
  ``served_items`` table in one transaction every :data:`FLUSH_SECONDS` by a background thread, so a
  recommendation request never waits for a database write; other processes see an entry after the next
  flush.
- :class:`RedisLedger` (``RECSMITH_REDIS_URL``): every entry is written to Redis as it is served (one pipelined
  round trip), so every worker on every host sees it at once; entries expire after the retention.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from recsmith.errors import ConfigError
from recsmith.serving.live import delete_prefixed, prefix_pattern
from recsmith.store.live_records import Served
from recsmith.store.store import Store

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25
MAX_PENDING = 100_000
RETENTION_SECONDS = 24 * 3600.0
"""Ledger entries older than this are dropped (the longest suppression window a request can ask for)."""


class Ledger(Protocol):
    """What the campaign runtime and the event tracker need from a ledger."""

    def record(self, entry: Served) -> None:
        """Log one recommendation response."""

    def served_to(self, group_id: int, user_id: str, since: float) -> list[Served]:
        """A user's entries served at or after ``since`` (epoch seconds)."""

    def lookup(self, recommendation_ids: Iterable[str]) -> dict[str, Served]:
        """Entries by recommendation id (unknown ids left out)."""

    def served_in(self, group_id: int, campaign: str, start: float, end: float) -> list[Served]:
        """A campaign's entries served at or after ``start`` and before ``end`` (epoch seconds)."""

    def forget(self, group_id: int, user_ids: Sequence[str], recommendation_ids: Iterable[str] = ()) -> int:
        """Drop erased users' entries, and those of the responses named, that the store does not hold; returns
        how many keys of another system (Redis) were deleted."""

    def forget_group(self, group_id: int) -> int:
        """Drop a deleted group's entries that the store does not hold; returns how many keys of another system
        (Redis) were deleted."""

    def start(self) -> None:
        """Start background work."""

    def stop(self) -> None:
        """Write what is pending and stop."""


class DatabaseLedger:
    """The ledger in the store's ``served_items`` table, written in batches by a background thread.

    Parameters
    ----------
    store : Store
        Where entries are kept.
    flush_seconds : float
        How often pending entries are written.
    retention_seconds : float
        Entries older than this are pruned (once a minute).
    """

    def __init__(self, store: Store, *, flush_seconds: float = FLUSH_SECONDS,
                 retention_seconds: float = RETENTION_SECONDS) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.retention_seconds = retention_seconds
        self._pending: list[Served] = []
        self._warned = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0

    def record(self, entry: Served) -> None:
        """Queue an entry (written within :attr:`flush_seconds`; while the database is away, at most
        :data:`MAX_PENDING` are kept, the oldest dropped first)."""
        with self._lock:
            self._pending.append(entry)
            if len(self._pending) > MAX_PENDING:
                del self._pending[:len(self._pending) - MAX_PENDING]
                if not self._warned:
                    self._warned = True
                    logger.warning("the served-items ledger has %d unwritten entries; dropping the oldest "
                                   "(is the database away, or the runtime not started?)", MAX_PENDING)

    def flush(self) -> int:
        """Write the pending entries now; returns how many (kept pending if the write fails)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            self.store.write_served(batch)
        except Exception:
            with self._lock:  # the database may be briefly away: try again next time
                self._pending[:0] = batch
            raise
        return len(batch)

    def served_to(self, group_id: int, user_id: str, since: float) -> list[Served]:
        """Stored entries of the user since ``since``, and this process's pending ones."""
        with self._lock:
            pending = [e for e in self._pending if e.group_id == group_id and e.user_id == user_id
                       and e.served_at >= since]
        return self.store.served_to(group_id, user_id, since) + pending

    def lookup(self, recommendation_ids: Iterable[str]) -> dict[str, Served]:
        """Entries by id: this process's pending ones, then the stored ones."""
        wanted = set(recommendation_ids)
        with self._lock:
            found = {e.recommendation_id: e for e in self._pending if e.recommendation_id in wanted}
        missing = wanted - set(found)
        if missing:
            found.update(self.store.served_by_id(missing))
        return found

    def served_in(self, group_id: int, campaign: str, start: float, end: float) -> list[Served]:
        """Stored entries of the campaign in the interval, and this process's pending ones, oldest first."""
        with self._lock:
            pending = [e for e in self._pending if e.group_id == group_id and e.campaign == campaign
                       and start <= e.served_at < end]
        stored = self.store.served_between(group_id, campaign, start, end)
        known = {e.recommendation_id for e in stored}
        return sorted(stored + [e for e in pending if e.recommendation_id not in known], key=lambda e: e.served_at)

    def forget(self, group_id: int, user_ids: Sequence[str], recommendation_ids: Iterable[str] = ()) -> int:
        """Drop this process's pending entries of erased users (the stored ones went with
        :meth:`~recsmith.store.store.Store.delete_user`, which also refuses entries written later that were
        served before the deletion, from other processes); returns 0, the keys deleted elsewhere (none)."""
        users, responses = set(user_ids), set(recommendation_ids)
        with self._lock:
            self._pending = [e for e in self._pending if not ((e.group_id == group_id and e.user_id in users)
                                                              or e.recommendation_id in responses)]
        return 0

    def forget_group(self, group_id: int) -> int:
        """Drop this process's pending entries of a deleted group (the stored ones went with the group, and
        :meth:`~recsmith.store.store.Store.write_served` drops other processes' when they flush them); returns 0."""
        with self._lock:
            self._pending = [e for e in self._pending if e.group_id != group_id]
        return 0

    def start(self) -> None:
        """Flush every :attr:`flush_seconds` in a daemon thread."""
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.flush_seconds):
                try:
                    self.flush()
                    if time.monotonic() - self._last_prune > 60:
                        self._last_prune = time.monotonic()
                        self.store.prune_served(time.time() - self.retention_seconds)
                except Exception:
                    logger.exception("writing the served-items ledger failed; retrying")

        self._thread = threading.Thread(target=loop, name="recsmith-ledger", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write what is pending."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self.flush()
        except Exception:
            logger.exception("writing the served-items ledger at shutdown failed")


class RedisLedger:
    """The ledger in Redis: a sorted set of entries per user (scored by time) and a key per recommendation id,
    both expiring after the retention.

    Parameters
    ----------
    client : redis.Redis
        A connected client.
    prefix : str
        Key prefix.
    retention_seconds : float
        How long entries are kept.
    """

    def __init__(self, client: Any, *, prefix: str = "recsmith", retention_seconds: float = RETENTION_SECONDS) -> None:
        self.redis = client
        self.prefix = prefix
        self.retention = int(retention_seconds)

    def _user_key(self, group_id: int, user_id: str) -> str:
        return f"{self.prefix}:{group_id}:served:{user_id}"

    def _id_key(self, recommendation_id: str) -> str:
        return f"{self.prefix}:rec:{recommendation_id}"

    def record(self, entry: Served) -> None:
        """Write the entry (one pipelined round trip)."""
        value = json.dumps([entry.recommendation_id, entry.group_id, entry.campaign, entry.user_id,
                            list(entry.items), entry.served_at])
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self._id_key(entry.recommendation_id), value, ex=self.retention)
        if entry.user_id is not None:
            key = self._user_key(entry.group_id, entry.user_id)
            pipe.zadd(key, {value: entry.served_at})
            pipe.zremrangebyscore(key, "-inf", entry.served_at - self.retention)
            pipe.expire(key, self.retention)
        pipe.execute()

    def served_to(self, group_id: int, user_id: str, since: float) -> list[Served]:
        """The user's entries since ``since``, oldest first."""
        values = self.redis.zrangebyscore(self._user_key(group_id, user_id), since, "+inf")
        return [_decode(v) for v in values]

    def lookup(self, recommendation_ids: Iterable[str]) -> dict[str, Served]:
        """Entries by id."""
        ids = list(dict.fromkeys(recommendation_ids))
        if not ids:
            return {}
        values = self.redis.mget([self._id_key(i) for i in ids])
        return {i: _decode(v) for i, v in zip(ids, values, strict=True) if v is not None}

    def served_in(self, group_id: int, campaign: str, start: float, end: float) -> list[Served]:
        """The campaign's entries in the interval, oldest first: every entry's key is read (a scan of the last
        :data:`RETENTION_SECONDS`; for statistics, not requests)."""
        found = []
        keys = self.redis.scan_iter(match=self._id_key("*"), count=1000)
        while True:
            batch = [key for _, key in zip(range(500), keys, strict=False)]
            if not batch:
                break
            for value in self.redis.mget(batch):
                if value is None:
                    continue
                entry = _decode(value)
                if entry.group_id == group_id and entry.campaign == campaign and start <= entry.served_at < end:
                    found.append(entry)
        return sorted(found, key=lambda e: e.served_at)

    def forget(self, group_id: int, user_ids: Sequence[str], recommendation_ids: Iterable[str] = ()) -> int:
        """Delete erased users' entry sets and the per-response keys of every response in them (and of
        ``recommendation_ids``); returns how many keys were deleted."""
        keys = [self._user_key(group_id, user_id) for user_id in user_ids]
        responses = set(recommendation_ids)
        for key in keys:
            responses.update(_decode(value).recommendation_id for value in self.redis.zrange(key, 0, -1))
        keys += [self._id_key(recommendation_id) for recommendation_id in sorted(responses)]
        deleted = 0
        for start in range(0, len(keys), 500):
            deleted += int(self.redis.delete(*keys[start:start + 500]))
        return deleted

    def forget_group(self, group_id: int) -> int:
        """Delete a deleted group's entry sets and the per-response keys of the responses in them (a new group
        may get its id); returns how many keys were deleted. Responses to no user (related items) have no set:
        their keys expire with the retention."""
        prefix = self._user_key(group_id, "")
        responses: set[str] = set()
        for key in self.redis.scan_iter(match=prefix_pattern(prefix), count=1000):
            responses.update(_decode(value).recommendation_id for value in self.redis.zrange(key, 0, -1))
        keys = [self._id_key(recommendation_id) for recommendation_id in sorted(responses)]
        deleted = delete_prefixed(self.redis, prefix)
        for start in range(0, len(keys), 500):
            deleted += int(self.redis.delete(*keys[start:start + 500]))
        return deleted

    def start(self) -> None:
        """Nothing runs in the background."""

    def stop(self) -> None:
        """Nothing is pending."""


# ------------------------------------------------------------------------------------------ engagement
def click_through_rate(clicks: float, impressions: float, served_items: float) -> float | None:
    """Clicks per impression, or per served item where events report no impressions; None when nothing was
    shown. The one definition: ``/metrics``' ``recsmith_click_through_rate`` and ``recsmith campaign stats``."""
    shown = impressions or served_items
    return clicks / shown if shown else None


def attribution(item_id: str, impression: Sequence[str], entry: Served) -> tuple[int, int]:
    """What an event carrying ``entry``'s ``recommendation_id`` counts for ``entry``'s campaign: ``(impressions,
    clicks)``, the items it reports shown, and a click when its item is one the response returned."""
    return len(impression), int(item_id in entry.items)


@dataclass
class Engagement:
    """A campaign's responses, served items, impressions and clicks over an interval.

    Attributes
    ----------
    start, end : float
        The interval, epoch seconds (``end`` excluded).
    responses, served_items, impressions, clicks : int
        Counted from the served-items ledger (responses served in the interval and their items) and the events
        sent in the interval that carry a ``recommendation_id`` of the campaign (:func:`attribution`).
    """

    start: float
    end: float
    responses: int = 0
    served_items: int = 0
    impressions: int = 0
    clicks: int = 0

    @property
    def click_through_rate(self) -> float | None:
        """:func:`click_through_rate` of the interval."""
        return click_through_rate(self.clicks, self.impressions, self.served_items)

    def to_dict(self) -> dict[str, Any]:
        """The counts and the rate, with the interval as epoch seconds."""
        return {"start": self.start, "end": self.end, "responses": self.responses,
                "served_items": self.served_items, "impressions": self.impressions, "clicks": self.clicks,
                "click_through_rate": self.click_through_rate}


def campaign_engagement(store: Store, ledger: Ledger, group_id: int, campaign: str, *, start: float, end: float,
                        every: float) -> list[Engagement]:
    """A campaign's engagement per ``every`` seconds from ``start`` to ``end``, counted as ``/metrics`` counts it:
    responses and their items in the interval they were served in, impressions and clicks in the interval the
    event was sent in, attributed through the ledger to the response it names (an event naming a response the
    ledger no longer holds, older than :data:`RETENTION_SECONDS`, counts for none).

    Parameters
    ----------
    store : Store
        Where the events are.
    ledger : Ledger
        Where the served items are (the store's table, or Redis).
    group_id : int
        The campaign's dataset group.
    campaign : str
        The campaign's name.
    start, end : float
        Epoch seconds.
    every : float
        Seconds per interval; the last one ends at ``end`` and may be shorter.

    Returns
    -------
    list of Engagement
        One per interval, oldest first.

    Raises
    ------
    ConfigError
        If ``end`` is not after ``start``, ``every`` is not positive, or there would be over 10,000 intervals.
    """
    if not end > start:
        raise ConfigError("the interval is empty: its start must be before its end")
    if not every > 0:
        raise ConfigError(f"the interval length must be positive, got {every}")
    count = math.ceil((end - start) / every)
    if count > 10_000:
        raise ConfigError(f"{count:,} intervals of {every:g} s is too many (at most 10,000): choose a longer one")
    buckets = [Engagement(start + n * every, min(start + (n + 1) * every, end)) for n in range(count)]

    def bucket(at: float) -> Engagement:
        return buckets[min(int((at - start) // every), count - 1)]

    entries = {e.recommendation_id: e for e in ledger.served_in(group_id, campaign, start, end)}
    for entry in entries.values():
        counts = bucket(entry.served_at)
        counts.responses += 1
        counts.served_items += len(entry.items)
    events = store.linked_events(group_id, start, end)
    missing = {event.recommendation_id for event in events} - set(entries)
    if missing:  # responses served before the interval, acted on within it
        entries.update(ledger.lookup(missing))
    for event in events:
        entry = entries.get(event.recommendation_id)
        if entry is None or entry.group_id != group_id or entry.campaign != campaign:
            continue
        impressions, clicks = attribution(event.item_id, event.impression, entry)
        counts = bucket(event.timestamp)
        counts.impressions += impressions
        counts.clicks += clicks
    return buckets


@dataclass
class EngagementReport:
    """A campaign's engagement per interval and over the whole span (:func:`engagement_report`).

    Attributes
    ----------
    every : float
        Seconds per interval.
    rows : list of Engagement
        One per interval, oldest first; the first starts on a whole multiple of ``every``.
    total : Engagement
        The sums over every row, from the first row's start to the end.
    beyond_ledger : bool
        Whether the span reaches further back than the ledger keeps (:data:`RETENTION_SECONDS`): earlier
        intervals count nothing.
    """

    every: float
    rows: list[Engagement]
    total: Engagement
    beyond_ledger: bool


def engagement_report(store: Store, ledger: Ledger, group_id: int, campaign: str, *, start: float, end: float,
                      every: float) -> EngagementReport:
    """:func:`campaign_engagement` from ``start`` to ``end`` on intervals aligned to whole multiples of ``every``
    (13:00, 14:00, ... for an hour), with the totals: what ``recsmith campaign stats`` prints and the console's
    campaign page draws.

    Parameters
    ----------
    store, ledger, group_id, campaign
        As for :func:`campaign_engagement`.
    start, end : float
        Epoch seconds; ``start`` is moved back to the start of its interval.
    every : float
        Seconds per interval.

    Returns
    -------
    EngagementReport
        The rows, their totals and whether the span outreaches the ledger.

    Raises
    ------
    ConfigError
        As :func:`campaign_engagement` does.
    """
    beyond_ledger = end - start > RETENTION_SECONDS
    if every > 0:
        start = math.floor(start / every) * every
    rows = campaign_engagement(store, ledger, group_id, campaign, start=start, end=end, every=every)
    total = Engagement(start, end)
    for row in rows:
        total.responses += row.responses
        total.served_items += row.served_items
        total.impressions += row.impressions
        total.clicks += row.clicks
    return EngagementReport(every, rows, total, beyond_ledger)


def format_clock(epoch: float) -> str:
    """An interval's start as ``2026-12-01 13:05`` (UTC): the rows of ``recsmith campaign stats`` and the console."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def format_rate(rate: float | None) -> str:
    """A click-through rate as a percentage with two decimals (``3.25%``), ``-`` when there is none."""
    return "-" if rate is None else f"{rate:.2%}"


def _decode(value: bytes | str) -> Served:
    recommendation_id, group_id, campaign, user_id, items, served_at = json.loads(value)
    return Served(recommendation_id, int(group_id), campaign, user_id, tuple(items), float(served_at))
