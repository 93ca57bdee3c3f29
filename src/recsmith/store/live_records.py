"""The store's live records: what changes while campaigns serve.

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine``, ``begin``, ``is_sqlite`` and
``_write_entities``):

- deleting users (their interactions, those of the sessions linked to them, their metadata and their
  served-items ledger entries) and items, with a tombstone per deletion so that campaigns serving a model trained
  before it stop showing them at once. A tombstone holds a keyed hash (HMAC-SHA256, :meth:`LiveRecords.entity_hash`)
  of the id, never the id itself; on SQLite the write-ahead log is checkpointed after a deletion and deleted
  rows are overwritten (``secure_delete``), so no copy of the id stays in the database files;
- the per-group catalogue version and event watermark that server processes poll (one row);
- the served-items ledger: what each recommendation response returned, to whom, and when.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.settings import Settings
from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

logger = logging.getLogger(__name__)

KINDS = ("user", "item")
CHUNK = 500
CHECKPOINT_WAIT_MS = 2000
"""How long the checkpoint after a deletion waits for other connections (then the next one completes it)."""


def keyed_hash(key: bytes, entity_id: str) -> str:
    """The tombstone of an id: HMAC-SHA256 of its UTF-8 bytes under ``key``, in hex (64 characters)."""
    return hmac.new(key, entity_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


class Tombstones:
    """A group's deleted users or items, as stored: keyed hashes and the interaction watermark at each deletion.

    Ask it about raw ids (``"u1" in tombstones``, ``tombstones.get("u1")``); it hashes them (and remembers the
    answers, so asking about every row of a table costs one hash per distinct id).
    """

    def __init__(self, key: bytes, marks: Mapping[str, int]) -> None:
        self._key = key
        self.marks: dict[str, int] = dict(marks)
        """Keyed hash -> watermark."""
        self._seen: dict[str, int | None] = {}

    def get(self, entity_id: str) -> int | None:
        """The watermark of ``entity_id``'s deletion, or None if it is not deleted."""
        if not self.marks:
            return None
        try:
            return self._seen[entity_id]
        except KeyError:
            mark = self._seen[entity_id] = self.marks.get(keyed_hash(self._key, entity_id))
            return mark

    def __contains__(self, entity_id: object) -> bool:
        return isinstance(entity_id, str) and self.get(entity_id) is not None

    def __getitem__(self, entity_id: str) -> int:
        mark = self.get(entity_id)
        if mark is None:
            raise KeyError(entity_id)
        return mark

    def __len__(self) -> int:
        return len(self.marks)

    def hashes(self) -> Iterator[str]:
        """The stored keyed hashes."""
        return iter(self.marks)


@dataclass(frozen=True)
class UserDeletion:
    """What :meth:`LiveRecords.delete_user` removed.

    Attributes
    ----------
    interactions : int
        Events deleted: the user's and those of every session linked to them.
    records : int
        User metadata records deleted (0 or 1).
    sessions : tuple of str
        The linked sessions (every ``session_id`` on one of the user's events): their anonymous events are
        stored under the session id, which got a tombstone too.
    served : int
        Served-items ledger rows deleted.
    recommendation_ids : tuple of str
        The responses those ledger rows and events named (for ledgers kept elsewhere, such as Redis).
    """

    user_id: str
    interactions: int
    records: int
    sessions: tuple[str, ...] = ()
    served: int = 0
    recommendation_ids: tuple[str, ...] = field(default=(), repr=False)

    @property
    def ids(self) -> tuple[str, ...]:
        """The user id and the linked session ids: every id this deletion erased."""
        return (self.user_id, *self.sessions)

    def counts(self) -> dict[str, int]:
        """``{"interactions", "records", "sessions", "served"}``: how much was deleted."""
        return {"interactions": self.interactions, "records": self.records, "sessions": len(self.sessions),
                "served": self.served}


@dataclass(frozen=True)
class LiveState:
    """What server processes poll to notice changes made by other processes.

    Attributes
    ----------
    last_event_id : int
        At least the row id of the group's newest real-time event (0 before any).
    catalog_version : int
        Bumped by every put or delete of users or items through the event tracker.
    exists : bool
        False when the group is gone (deleted): what a process remembers of it is to be forgotten.
    """

    last_event_id: int
    catalog_version: int
    exists: bool = True


@dataclass(frozen=True)
class Served:
    """One ledger entry: a recommendation response.

    Attributes
    ----------
    recommendation_id : str
        The response's id.
    group_id : int
        Its dataset group.
    campaign : str
        The campaign that answered.
    user_id : str or None
        Who it was for (None for related-items requests without a user).
    items : tuple of str
        The item ids returned, best first.
    served_at : float
        Epoch seconds.
    """

    recommendation_id: str
    group_id: int
    campaign: str
    user_id: str | None
    items: tuple[str, ...]
    served_at: float


@dataclass(frozen=True)
class LinkedEvent:
    """A stored event that names the recommendation response it acted on.

    Attributes
    ----------
    item_id : str
        The item acted on.
    timestamp : int
        When it was sent (epoch seconds).
    recommendation_id : str
        The response (a served-items ledger entry).
    impression : tuple of str
        The items it reports shown.
    """

    item_id: str
    timestamp: int
    recommendation_id: str
    impression: tuple[str, ...] = ()


class LiveRecords:
    """Deletions, catalogue versions and the served-items ledger (mixed into :class:`~recsmith.store.store.Store`)."""

    engine: Engine
    is_sqlite: bool
    erasure_settings: Settings | None = None
    """Where the tombstones' key comes from (:meth:`Settings.resolved_erasure_key`); None: ``Settings()``, the
    environment's. :meth:`Store.from_settings` sets it."""
    _erasure_key: bytes | None = None

    if TYPE_CHECKING:
        from contextlib import AbstractContextManager

        def begin(self) -> AbstractContextManager[Connection]: ...

        def sqlite_write_transaction(self) -> AbstractContextManager[Any]: ...

        def _write_entities(self, kind: str, id_column: str, group_id: int, frame: Any, mode: str,
                            schema: dict[str, Any] | None, *, conn: Connection | None = None) -> int: ...

    # ------------------------------------------------------------------------------- polled state
    def live_state(self, group_id: int) -> LiveState:
        """The group's event watermark and catalogue version (one primary-key row; cheap to poll)."""
        g = t.dataset_groups
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(g.c.last_event_id, g.c.catalog_version).where(g.c.id == group_id)).first()
        if row is None:
            return LiveState(0, 0, exists=False)
        return LiveState(int(row[0] or 0), int(row[1] or 0))

    @staticmethod
    def _bump_catalog(conn: Connection, group_id: int) -> None:
        g = t.dataset_groups
        conn.execute(g.update().where(g.c.id == group_id).values(catalog_version=g.c.catalog_version + 1))

    # ---------------------------------------------------------------------------------- deletions
    @property
    def erasure_key(self) -> bytes:
        """The HMAC key of the tombstones (resolved, and the key file made if needed, on first use)."""
        if self._erasure_key is None:
            self._erasure_key = (self.erasure_settings or Settings()).resolved_erasure_key()
        return self._erasure_key

    def entity_hash(self, entity_id: str) -> str:
        """The keyed hash a deletion of ``entity_id`` stores (:func:`keyed_hash` under :attr:`erasure_key`)."""
        return keyed_hash(self.erasure_key, entity_id)

    def delete_user(self, group_id: int, user_id: str) -> UserDeletion:
        """Erase a user in one transaction: their events, every event of the sessions linked to them (any
        ``session_id`` on one of their events; anonymous events, sent before they signed in, are stored under
        that session id), their metadata and their served-items ledger rows (under their id or a linked
        session's, and the responses their events name); then record the deletion of the user and of each
        anonymous session as a keyed hash, and on SQLite checkpoint the write-ahead log so no copy of the deleted
        rows stays in it.

        Campaigns serving a model trained before the deletion treat the user (and the sessions) as unknown from
        then on; the next training does not see them (their interactions are gone). Models already trained keep
        their row until ``recsmith users delete --purge-models`` rewrites them.

        Returns
        -------
        UserDeletion
            What was deleted (``.counts()`` for the numbers).
        """
        i, u, s = t.interactions, t.users, t.served_items
        with self.begin() as conn:
            self._secure_delete(conn)
            watermark = self._deletion_watermark(conn, group_id)
            # no "session_id IS NOT NULL" in SQL: it made SQLite read the partial session index of the whole group
            sessions = sorted(v for v in conn.execute(sa.select(i.c.session_id).distinct().where(
                i.c.dataset_group_id == group_id, i.c.user_id == user_id)).scalars() if v is not None and v != user_id)
            anonymous: set[str] = set()  # linked sessions with anonymous events: stored under the session id
            for chunk in _chunks(sessions):
                anonymous.update(conn.execute(sa.select(i.c.user_id).distinct().where(
                    i.c.dataset_group_id == group_id, i.c.user_id.in_(chunk), i.c.session_id == i.c.user_id)).scalars())
            responses: set[str] = set()
            events = ledger = 0
            # the user's events (the (group, user) index), then every event of the linked sessions (the partial
            # (group, session) index): the anonymous ones and any other in those sessions
            wheres = [(i.c.user_id == user_id,)] + [(i.c.session_id.in_(chunk),) for chunk in _chunks(sessions)]
            for where in wheres:
                responses.update(conn.execute(sa.select(i.c.recommendation_id).distinct().where(
                    i.c.dataset_group_id == group_id, *where, i.c.recommendation_id.is_not(None))).scalars())
                events += conn.execute(i.delete().where(i.c.dataset_group_id == group_id, *where)).rowcount
            for chunk in _chunks([user_id, *sessions]):  # what was served to them, or to the sessions
                responses.update(conn.execute(sa.select(s.c.recommendation_id).where(
                    s.c.dataset_group_id == group_id, s.c.user_id.in_(chunk))).scalars())
            records = conn.execute(u.delete().where(u.c.dataset_group_id == group_id, u.c.user_id == user_id)).rowcount
            for chunk in _chunks(sorted(responses)):  # the responses to them, and those their events name
                ledger += conn.execute(s.delete().where(s.c.recommendation_id.in_(chunk))).rowcount
            for entity_id in [user_id, *sorted(anonymous)]:  # the ids a model can have been trained on
                self._tombstone(conn, group_id, "user", entity_id, watermark)
            self._bump_catalog(conn, group_id)
        self.checkpoint()
        return UserDeletion(user_id, int(events), int(records), tuple(sessions), int(ledger), tuple(sorted(responses)))

    def delete_item(self, group_id: int, item_id: str) -> dict[str, int]:
        """Delete an item's metadata and stop it being recommended: campaigns leave it out at once, and
        training leaves out its interactions (which are kept: they are part of users' histories) until the
        item is put again.

        Returns
        -------
        dict
            ``{"records": 0 or 1}``.
        """
        it = t.items
        with self.begin() as conn:
            self._secure_delete(conn)
            watermark = self._deletion_watermark(conn, group_id)
            records = conn.execute(it.delete().where(it.c.dataset_group_id == group_id,
                                                     it.c.item_id == item_id)).rowcount
            self._tombstone(conn, group_id, "item", item_id, watermark)
            self._bump_catalog(conn, group_id)
        self.checkpoint()
        return {"records": int(records)}

    @staticmethod
    def _deletion_watermark(conn: Connection, group_id: int) -> int:
        """A deletion's watermark: at least every interaction row id any model of the group can have been trained
        on. The newest row id alone is not: SQLite gives a new row the highest id plus one, so once a deletion
        removed the newest rows their ids are given again; the group's event watermark and earlier deletions'
        watermarks keep it from going back."""
        i, g, d = t.interactions, t.dataset_groups, t.deletions
        newest = conn.execute(sa.select(sa.func.max(i.c.id))).scalar_one()
        events = conn.execute(sa.select(g.c.last_event_id).where(g.c.id == group_id)).scalar_one_or_none()
        deleted = conn.execute(sa.select(sa.func.max(d.c.watermark))
                               .where(d.c.dataset_group_id == group_id)).scalar_one()
        return max(int(newest or 0), int(events or 0), int(deleted or 0))

    def _secure_delete(self, conn: Connection) -> None:
        """On SQLite, overwrite what this connection deletes with zeros (else deleted rows stay in free space)."""
        if self.is_sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete = ON")

    def checkpoint(self) -> bool:
        """On SQLite, copy the write-ahead log into the database and truncate it (``wal_checkpoint(TRUNCATE)``),
        so deleted rows leave no copy in the log; True when it completed (a reader in the middle of a long read
        can hold it back: the next checkpoint finishes the job). Nothing to do on PostgreSQL (True)."""
        if not self.is_sqlite:
            return True
        with self.engine.connect() as conn:
            # waits for readers of older snapshots (a training's long read) at most CHECKPOINT_WAIT_MS, not the
            # connection's 30 s: the deletion is committed either way
            usual = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
            try:
                busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            finally:
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {usual}")
        if busy:
            logger.warning("the SQLite write-ahead log could not be checkpointed after a deletion (a reader was "
                           "busy); the next deletion's checkpoint, or SQLite's own, completes it")
        return not busy

    def _tombstone(self, conn: Connection, group_id: int, kind: str, entity_id: str, watermark: int) -> None:
        d = t.deletions
        hashed = self.entity_hash(entity_id)
        conn.execute(d.delete().where(d.c.dataset_group_id == group_id, d.c.kind == kind, d.c.entity_id == hashed))
        conn.execute(d.insert().values(dataset_group_id=group_id, kind=kind, entity_id=hashed, watermark=watermark,
                                       deleted_at=t.utc_now()))

    def deletions(self, group_id: int, kind: str) -> Tombstones:
        """The group's deleted users or items (``kind``: ``"user"`` or ``"item"``) and the interaction watermark
        at each deletion: ask it about raw ids (``"u1" in store.deletions(g, "user")``)."""
        d = t.deletions
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(d.c.entity_id, d.c.watermark)
                                .where(d.c.dataset_group_id == group_id, d.c.kind == kind)).all()
        return Tombstones(self.erasure_key if rows else b"", {row[0]: int(row[1]) for row in rows})

    def upsert_entities(self, group_id: int, kind: str, frame: Any, schema: Mapping[str, Any]) -> int:
        """Upsert validated user or item records (``kind``: ``"users"``/``"items"``) in one transaction and lift
        the deletion of any id put again (every write of users or items bumps the catalogue version, so that
        serving processes reload)."""
        key = "USER_ID" if kind == "users" else "ITEM_ID"
        ids = [str(v) for v in frame[key].tolist()]
        d = t.deletions
        with self.begin() as conn:
            count = self._write_entities(kind, key, group_id, frame, "incremental", dict(schema), conn=conn)
            if conn.execute(sa.select(d.c.entity_id).where(d.c.dataset_group_id == group_id,
                                                           d.c.kind == kind[:-1]).limit(1)).first():
                for chunk in _chunks([self.entity_hash(entity_id) for entity_id in ids]):
                    conn.execute(d.delete().where(d.c.dataset_group_id == group_id, d.c.kind == kind[:-1],
                                                  d.c.entity_id.in_(chunk)))
        return count

    # ------------------------------------------------------------------------------------- ledger
    def write_served(self, entries: Sequence[Served]) -> None:
        """Append ledger entries in one transaction (an id already recorded is kept as it is); through the driver,
        since every recommendation response makes one (25 µs an entry through SQLAlchemy Core, 12 through the
        driver). Entries of a dataset group deleted since they were served are dropped."""
        entries = self._not_erased(self._of_existing_groups(entries))
        if not entries:
            return
        rows = [(e.recommendation_id, e.group_id, e.campaign, e.user_id, json.dumps(list(e.items)), e.served_at)
                for e in entries]
        columns = "recommendation_id, dataset_group_id, campaign, user_id, items, served_at"
        if self.is_sqlite:
            with self.sqlite_write_transaction() as cursor:
                cursor.executemany(f"INSERT INTO served_items ({columns}) VALUES (?, ?, ?, ?, ?, ?) "
                                   "ON CONFLICT (recommendation_id) DO NOTHING", rows)
            return
        with self.begin() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.execute(f"INSERT INTO served_items ({columns}) SELECT * FROM unnest(%s::text[], %s::int[], "
                           "%s::text[], %s::text[], %s::text[], %s::float8[]) "
                           "ON CONFLICT (recommendation_id) DO NOTHING",
                           [list(column) for column in zip(*rows, strict=True)])
            cursor.close()

    def _of_existing_groups(self, entries: Sequence[Served]) -> Sequence[Served]:
        """``entries`` less those of dataset groups that no longer exist (one primary-key read per batch)."""
        groups = {e.group_id for e in entries}
        if not groups:
            return entries
        g = t.dataset_groups
        with self.engine.connect() as conn:
            existing = set(conn.execute(sa.select(g.c.id).where(g.c.id.in_(sorted(groups)))).scalars())
        if existing == groups:
            return entries
        return [e for e in entries if e.group_id in existing]

    def _not_erased(self, entries: Sequence[Served]) -> Sequence[Served]:
        """``entries`` less those served to a user before the user's deletion (another process may write what it
        served just before a deletion just after it)."""
        users = {(e.group_id, e.user_id) for e in entries if e.user_id is not None}
        if not users:
            return entries
        hashes = {self.entity_hash(user): (group, user) for group, user in users}
        d = t.deletions
        groups = sorted({group for group, _ in users})
        erased: dict[tuple[int, str], float] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(hashes)):
                for hashed, group, at in conn.execute(sa.select(d.c.entity_id, d.c.dataset_group_id, d.c.deleted_at)
                                                      .where(d.c.dataset_group_id.in_(groups), d.c.kind == "user",
                                                             d.c.entity_id.in_(chunk))):
                    if hashes[hashed][0] == group:
                        erased[hashes[hashed]] = t.as_utc(at).timestamp()
        if not erased:
            return entries
        return [e for e in entries if e.user_id is None or e.served_at > erased.get((e.group_id, e.user_id), -1.0)]

    def served_to(self, group_id: int, user_id: str, since: float) -> list[Served]:
        """The ledger entries of a user served at or after ``since`` (epoch seconds), oldest first."""
        s = t.served_items
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(s).where(s.c.dataset_group_id == group_id, s.c.user_id == user_id,
                                                   s.c.served_at >= since).order_by(s.c.served_at)).all()
        return [_served(row) for row in rows]

    def served_by_id(self, recommendation_ids: Iterable[str]) -> dict[str, Served]:
        """Ledger entries by recommendation id (ids not in the ledger are left out)."""
        wanted = sorted(set(recommendation_ids))
        s = t.served_items
        out: dict[str, Served] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                for row in conn.execute(sa.select(s).where(s.c.recommendation_id.in_(wanted[start:start + 500]))):
                    out[row.recommendation_id] = _served(row)
        return out

    def prune_served(self, before: float) -> int:
        """Drop ledger entries served before ``before`` (epoch seconds); returns how many."""
        s = t.served_items
        with self.begin() as conn:
            return int(conn.execute(s.delete().where(s.c.served_at < before)).rowcount)

    def user_items_since(self, group_id: int, user_id: str, since: int) -> set[str]:
        """Items a user interacted with at or after epoch second ``since`` (what they acted on)."""
        i = t.interactions
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(i.c.item_id).where(
                i.c.dataset_group_id == group_id, i.c.user_id == user_id, i.c.timestamp >= since)).scalars())

    def served_between(self, group_id: int, campaign: str, start: float, end: float) -> list[Served]:
        """The ledger entries of a campaign served at or after ``start`` and before ``end`` (epoch seconds),
        oldest first (``recsmith campaign stats``)."""
        s = t.served_items
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(s).where(s.c.dataset_group_id == group_id, s.c.campaign == campaign,
                                                   s.c.served_at >= start, s.c.served_at < end)
                                .order_by(s.c.served_at)).all()
        return [_served(row) for row in rows]

    def linked_events(self, group_id: int, start: float, end: float) -> list[LinkedEvent]:
        """The group's stored events that carry a ``recommendation_id``, sent at or after ``start`` and before
        ``end`` (epoch seconds), with the items they report shown (``impression``)."""
        i = t.interactions
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(i.c.item_id, i.c.timestamp, i.c.recommendation_id, i.c.context).where(
                i.c.dataset_group_id == group_id, i.c.recommendation_id.is_not(None),
                i.c.timestamp >= int(start), i.c.timestamp < end)).all()
        out = []
        for item_id, timestamp, recommendation_id, context in rows:
            shown = (json.loads(context) if context else {}).get("impression")
            out.append(LinkedEvent(item_id, int(timestamp), recommendation_id,
                                   tuple(str(shown).split("|")) if shown else ()))
        return out


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield list(values[start:start + CHUNK])


def _served(row: Any) -> Served:
    return Served(row.recommendation_id, int(row.dataset_group_id), row.campaign, row.user_id,
                  tuple(json.loads(row.items)), float(row.served_at))
