"""How a server process learns what other processes changed: new events, users and items, campaign switches.

Two implementations with one interface:

- :class:`DatabaseLive` (one host, no Redis): the group's event watermark and catalogue version (one row of
  ``dataset_groups``) are read every :data:`POLL_SECONDS` by a background thread; a known user's events since
  training come from the store. Other workers see an event within :data:`POLL_SECONDS`.
- :class:`RedisLive` (``RECSMITH_REDIS_URL``): every write is published on a Redis channel that each process
  listens to, so other workers and other hosts see new events, catalogue changes and campaign switches within
  milliseconds; the users' events since training are kept in Redis lists (``tag:item`` entries, the newest
  :data:`HISTORY_LENGTH`), so a request reads them with one Redis call instead of a SQL query. The database stays
  the durable record: events are committed there first.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from recsmith.store.live_records import LiveState
from recsmith.store.store import EventBatch, Store, UserEvent

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
"""Without Redis: how stale a process's view of another process's writes may be."""
HISTORY_LENGTH = 500
"""With Redis: events since training kept per user (older ones are read from the store)."""
HISTORY_TTL_SECONDS = 7 * 24 * 3600
CHANNEL = "changes"
RESYNC_SECONDS = 5.0
FIELD = "\x1f"
"""Separates an entry's event type, timestamp and item id (the ASCII unit separator: in no id or type)."""
APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('RPUSH', KEYS[1], ARGV[1]) end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
"""
"""Append events to a user's list (ARGV: marker, length, ttl, entries...); a new list starts with the marker."""


class DatabaseLive:
    """Live state from the store alone (one host).

    Once started, a background thread reads every known group's row each :attr:`poll_seconds`, so requests read
    the state from memory and never wait on the database (a group's first use reads it at once). Not started
    (the CLI), a stale state is read again on use.

    Parameters
    ----------
    store : Store
        The store the events are written to.
    poll_seconds : float
        How often the group's row is read at most.
    """

    def __init__(self, store: Store, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self._state: dict[int, tuple[float, LiveState]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_change: Callable[[], None] = lambda: None

    def _merge(self, group_id: int, state: LiveState) -> LiveState:
        """Keep the newer of what is known and ``state`` (a poll that began before this process's own write
        never takes the watermark back)."""
        with self._lock:
            known = self._state.get(group_id)
            merged = state if known is None else _newest(known[1], state)
            self._state[group_id] = (time.monotonic(), merged)
        return merged

    def state(self, group_id: int) -> LiveState:
        """The group's event watermark and catalogue version, at most :attr:`poll_seconds` old."""
        entry = self._state.get(group_id)
        if entry is None or (self._thread is None and time.monotonic() - entry[0] > self.poll_seconds):
            return self._merge(group_id, self.store.live_state(group_id))
        return entry[1]

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            for group_id in list(self._state):
                try:
                    state = self.store.live_state(group_id)
                except Exception:  # the database may be briefly away; the next poll tries again
                    logger.exception("reading the live state of group %s failed", group_id)
                    continue
                if state.exists:
                    self._merge(group_id, state)
                else:  # deleted (by another process): a new group may get its id, and starts from nothing
                    self.forget_group(group_id)

    def events_written(self, group_id: int, rows: Sequence[Mapping[str, Any]], batch: EventBatch) -> None:
        """This process stored events: its next request answers from them."""
        if group_id in self._state:
            self._merge(group_id, LiveState(batch.newest, 0))

    def catalog_changed(self, group_id: int) -> None:
        """This process changed users or items."""
        self._merge(group_id, self.store.live_state(group_id))

    def campaigns_changed(self) -> None:
        """This process changed campaigns (other processes notice at their next sync)."""

    def user_events_after(self, group_id: int, user_id: str, after_id: int) -> list[UserEvent]:
        """The user's events stored after row ``after_id``, oldest first."""
        return self.store.user_events(group_id, user_id, after_id)

    def forget(self, group_id: int, user_ids: Sequence[str]) -> int:
        """Erased users: nothing of theirs is kept outside the store (0 keys deleted)."""
        return 0

    def forget_group(self, group_id: int) -> int:
        """A deleted group: drop its remembered state (other processes drop theirs at their next poll); returns 0,
        the keys deleted outside the store (none)."""
        with self._lock:
            self._state.pop(group_id, None)
        return 0

    def start(self) -> None:
        """Poll the known groups' state in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="recsmith-live-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class RedisLive:
    """Live state shared through Redis (several workers, several hosts).

    Parameters
    ----------
    store : Store
        The durable store (read at start and as a fallback).
    client : redis.Redis
        A connected client.
    prefix : str
        Key and channel prefix.
    """

    def __init__(self, store: Store, client: Any, *, prefix: str = "recsmith") -> None:
        self.store = store
        self.redis = client
        self.prefix = prefix
        self._state: dict[int, LiveState] = {}
        self._read_at: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pubsub: Any = None
        self.on_change: Callable[[], None] = lambda: None
        self._append = client.register_script(APPEND)

    @property
    def channel(self) -> str:
        """The channel every process listens to."""
        return f"{self.prefix}:{CHANNEL}"

    def _history_key(self, group_id: int, user_id: str) -> str:
        # "events2": entries with types and times; lists of the older format are left to expire
        return f"{self.prefix}:{group_id}:events2:{user_id}"

    def state(self, group_id: int) -> LiveState:
        """The group's state as the last message said (read from the store the first time, and every
        :data:`RESYNC_SECONDS` in case a message was lost while the subscription reconnected)."""
        state = self._state.get(group_id)
        now = time.monotonic()
        if state is None or now - self._read_at.get(group_id, -math.inf) > RESYNC_SECONDS:
            stored = self.store.live_state(group_id)
            with self._lock:
                known = self._state.get(group_id)
                self._state[group_id] = stored if known is None else _newest(known, stored)
                self._read_at[group_id] = now
        return self._state[group_id]

    def _advance(self, group_id: int, *, event: int = 0, catalog: int = 0) -> None:
        with self._lock:
            known = self._state.get(group_id)
            if known is None:
                return  # read from the store on first use
            self._state[group_id] = _newest(known, LiveState(event, catalog))

    def events_written(self, group_id: int, rows: Sequence[Mapping[str, Any]], batch: EventBatch) -> None:
        """Append the committed events to their users' Redis lists, tagged with the batch's watermark (at least
        their row ids), and tell every process (one pipelined round trip). A list begun now starts with a marker,
        ``from:<the watermark before the batch>``: it holds every event after that; older ones are in the store."""
        if not rows:
            return
        pipe = self.redis.pipeline(transaction=False)
        for user_id in dict.fromkeys(row["user_id"] for row in rows):
            entries = [_entry(batch.newest, row) for row in rows if row["user_id"] == user_id]
            self._append(keys=[self._history_key(group_id, user_id)],
                         args=[f"from:{batch.before}", HISTORY_LENGTH, HISTORY_TTL_SECONDS, *entries], client=pipe)
        pipe.publish(self.channel, f"event {group_id} {batch.newest}")
        pipe.execute()
        self._advance(group_id, event=batch.newest)

    def catalog_changed(self, group_id: int) -> None:
        """Tell every process to reload the group's users and items."""
        version = self.store.live_state(group_id).catalog_version
        self._advance(group_id, catalog=version)
        self.redis.publish(self.channel, f"catalog {group_id} {version}")

    def campaigns_changed(self) -> None:
        """Tell every process to sync its campaigns now."""
        self.redis.publish(self.channel, "campaigns")

    def user_events_after(self, group_id: int, user_id: str, after_id: int) -> list[UserEvent]:
        """The user's events since row ``after_id`` from Redis (an entry's tag is at least its row id, so none is
        missed; an older one that slips in is already in the training row). Read from the store instead when the
        list cannot hold them all: none, one begun after ``after_id`` (it expired, or events came before Redis
        was used), or a full one that dropped some."""
        entries = [e.decode() if isinstance(e, bytes) else e
                   for e in self.redis.lrange(self._history_key(group_id, user_id), 0, -1)]
        if entries and entries[0].startswith("from:"):  # the list holds every event after this watermark
            complete = int(entries[0][5:]) <= after_id
            entries = entries[1:]
        else:  # the marker was trimmed away: complete if what was dropped is at most after_id
            complete = bool(entries) and int(entries[0].partition(":")[0]) <= after_id
        if not complete:
            return self.store.user_events(group_id, user_id, after_id)
        events = []
        for tag, _, rest in (e.partition(":") for e in entries):
            if int(tag) > after_id:
                event_type, timestamp, item_id = rest.split(FIELD, 2)
                events.append(UserEvent(item_id, event_type or None, int(timestamp), int(tag)))
        return events

    def forget(self, group_id: int, user_ids: Sequence[str]) -> int:
        """Delete erased users' (and sessions') event lists; returns how many keys were deleted."""
        if not user_ids:
            return 0
        return int(self.redis.delete(*(self._history_key(group_id, user_id) for user_id in user_ids)))

    def forget_group(self, group_id: int) -> int:
        """A deleted group: delete every user's event list of it (a new group may get its id) and tell every
        process to drop its state; returns how many keys were deleted."""
        deleted = delete_prefixed(self.redis, self._history_key(group_id, ""))
        self._drop(group_id)
        self.redis.publish(self.channel, f"forget {group_id}")
        return deleted

    def _drop(self, group_id: int) -> None:
        with self._lock:
            self._state.pop(group_id, None)
            self._read_at.pop(group_id, None)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            except Exception:
                logger.exception("Redis subscription failed; reconnecting")
                self._stop.wait(1.0)
                try:
                    self._subscribe()
                except Exception:
                    logger.exception("Redis resubscription failed")
                continue
            if not message:
                continue
            data = message["data"].decode() if isinstance(message["data"], bytes) else str(message["data"])
            kind, *args = data.split()
            if kind == "event" and len(args) == 2:
                self._advance(int(args[0]), event=int(args[1]))
            elif kind == "catalog" and len(args) == 2:
                self._advance(int(args[0]), catalog=int(args[1]))
                self.on_change()
            elif kind == "campaigns":
                self.on_change()
            elif kind == "forget" and len(args) == 1:
                self._drop(int(args[0]))
                self.on_change()

    def _subscribe(self) -> None:
        self._pubsub = self.redis.pubsub()
        self._pubsub.subscribe(self.channel)

    def start(self) -> None:
        """Subscribe to the channel and listen in a daemon thread."""
        self._subscribe()
        self._stop.clear()
        self._thread = threading.Thread(target=self._listen, name="recsmith-redis-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._pubsub is not None:
            self._pubsub.close()


def _entry(tag: int, row: Mapping[str, Any]) -> str:
    """A Redis history entry: ``tag:type<FS>timestamp<FS>item`` (FS: the ASCII field separator)."""
    return f"{tag}:{row.get('event_type') or ''}{FIELD}{int(row['timestamp'])}{FIELD}{row['item_id']}"


def _newest(a: LiveState, b: LiveState) -> LiveState:
    return LiveState(max(a.last_event_id, b.last_event_id), max(a.catalog_version, b.catalog_version))


def prefix_pattern(prefix: str) -> str:
    """The Redis ``SCAN``/``KEYS`` pattern of the keys that start with ``prefix`` (its glob characters escaped)."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", prefix) + "*"


def delete_prefixed(client: Any, prefix: str) -> int:
    """Delete every Redis key that starts with ``prefix`` (``SCAN``, then deletes of 500 keys at a time, so the
    server is never blocked by one long command); returns how many were deleted."""
    deleted = 0
    batch: list[Any] = []
    for key in client.scan_iter(match=prefix_pattern(prefix), count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += int(client.delete(*batch))
            batch = []
    if batch:
        deleted += int(client.delete(*batch))
    return deleted


def connect_redis(url: str) -> Any:
    """A Redis client for ``url`` (``pip install 'recsmith[redis]'``), checked with a ping."""
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the install
        from recsmith.errors import ConfigError

        raise ConfigError("RECSMITH_REDIS_URL is set but the redis package is missing: "
                          "pip install 'recsmith[redis]'") from exc
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
    client.ping()
    return client
