"""The store's live records: what changes while campaigns serve.

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine``, ``begin``, ``is_sqlite`` and
``_write_entities``):

- deleting users (their interactions and metadata) and items, with a tombstone per deletion so that campaigns
  serving a model trained before it stop showing them at once;
- the per-group catalogue version and event watermark that server processes poll (one row);
- the served-items ledger: what each recommendation response returned, to whom, and when.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

KINDS = ("user", "item")


@dataclass(frozen=True)
class LiveState:
    """What server processes poll to notice changes made by other processes.

    Attributes
    ----------
    last_event_id : int
        At least the row id of the group's newest real-time event (0 before any).
    catalog_version : int
        Bumped by every put or delete of users or items through the event tracker.
    """

    last_event_id: int
    catalog_version: int


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


class LiveRecords:
    """Deletions, catalogue versions and the served-items ledger (mixed into :class:`~recsmith.store.store.Store`)."""

    engine: Engine
    is_sqlite: bool

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
            return LiveState(0, 0)
        return LiveState(int(row[0] or 0), int(row[1] or 0))

    @staticmethod
    def _bump_catalog(conn: Connection, group_id: int) -> None:
        g = t.dataset_groups
        conn.execute(g.update().where(g.c.id == group_id).values(catalog_version=g.c.catalog_version + 1))

    # ---------------------------------------------------------------------------------- deletions
    def delete_user(self, group_id: int, user_id: str) -> dict[str, int]:
        """Delete a user's interactions and metadata in one transaction, and record the deletion.

        Campaigns serving a model trained before the deletion treat the user as unknown from then on; the
        next training does not see them (their interactions are gone).

        Returns
        -------
        dict
            ``{"interactions": n, "records": 0 or 1}``: what was deleted.
        """
        i, u = t.interactions, t.users
        with self.begin() as conn:
            watermark = int(conn.execute(sa.select(sa.func.max(i.c.id))).scalar_one() or 0)
            events = conn.execute(i.delete().where(i.c.dataset_group_id == group_id, i.c.user_id == user_id)).rowcount
            records = conn.execute(u.delete().where(u.c.dataset_group_id == group_id, u.c.user_id == user_id)).rowcount
            self._tombstone(conn, group_id, "user", user_id, watermark)
            self._bump_catalog(conn, group_id)
        return {"interactions": int(events), "records": int(records)}

    def delete_item(self, group_id: int, item_id: str) -> dict[str, int]:
        """Delete an item's metadata and stop it being recommended: campaigns leave it out at once, and
        training leaves out its interactions (which are kept: they are part of users' histories) until the
        item is put again.

        Returns
        -------
        dict
            ``{"records": 0 or 1}``.
        """
        it, i = t.items, t.interactions
        with self.begin() as conn:
            watermark = int(conn.execute(sa.select(sa.func.max(i.c.id))).scalar_one() or 0)
            records = conn.execute(it.delete().where(it.c.dataset_group_id == group_id,
                                                     it.c.item_id == item_id)).rowcount
            self._tombstone(conn, group_id, "item", item_id, watermark)
            self._bump_catalog(conn, group_id)
        return {"records": int(records)}

    @staticmethod
    def _tombstone(conn: Connection, group_id: int, kind: str, entity_id: str, watermark: int) -> None:
        d = t.deletions
        conn.execute(d.delete().where(d.c.dataset_group_id == group_id, d.c.kind == kind, d.c.entity_id == entity_id))
        conn.execute(d.insert().values(dataset_group_id=group_id, kind=kind, entity_id=entity_id, watermark=watermark,
                                       deleted_at=t.utc_now()))

    def deletions(self, group_id: int, kind: str) -> dict[str, int]:
        """The group's deleted users or items (``kind``: ``"user"`` or ``"item"``) and the interaction watermark
        at each deletion."""
        d = t.deletions
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(d.c.entity_id, d.c.watermark)
                                .where(d.c.dataset_group_id == group_id, d.c.kind == kind)).all()
        return {row[0]: int(row[1]) for row in rows}

    def upsert_entities(self, group_id: int, kind: str, frame: Any, schema: Mapping[str, Any]) -> int:
        """Upsert validated user or item records (``kind``: ``"users"``/``"items"``) in one transaction and lift
        the deletion of any id put again (every write of users or items bumps the catalogue version, so that
        serving processes reload)."""
        key = "USER_ID" if kind == "users" else "ITEM_ID"
        ids = [str(v) for v in frame[key].tolist()]
        d = t.deletions
        with self.begin() as conn:
            count = self._write_entities(kind, key, group_id, frame, "incremental", dict(schema), conn=conn)
            for start in range(0, len(ids), 500):
                conn.execute(d.delete().where(d.c.dataset_group_id == group_id, d.c.kind == kind[:-1],
                                              d.c.entity_id.in_(ids[start:start + 500])))
        return count

    # ------------------------------------------------------------------------------------- ledger
    def write_served(self, entries: Sequence[Served]) -> None:
        """Append ledger entries in one transaction (an id already recorded is kept as it is); through the driver,
        since every recommendation response makes one (25 µs an entry through SQLAlchemy Core, 12 through the
        driver)."""
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


def _served(row: Any) -> Served:
    return Served(row.recommendation_id, int(row.dataset_group_id), row.campaign, row.user_id,
                  tuple(json.loads(row.items)), float(row.served_at))
