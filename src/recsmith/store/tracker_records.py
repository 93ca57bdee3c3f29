"""The store's event trackers: Personalize's name for a dataset group's event stream, and the tracking id that
``PutEvents`` sends to say which group its events are for.

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine``, ``begin`` and
``get_dataset_group``).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.errors import ConfigError, ConflictError, NotFoundError
from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class TrackerRecords:
    """Event trackers (mixed into :class:`~recsmith.store.store.Store`)."""

    engine: Engine

    def _trackers_query(self) -> sa.Select:
        e, g = t.event_trackers, t.dataset_groups
        return (sa.select(e.c.id, e.c.name, e.c.tracking_id, e.c.created_at, g.c.name.label("dataset_group"))
                .join(g, g.c.id == e.c.dataset_group_id).order_by(e.c.id))

    @staticmethod
    def _tracker(row: Any) -> dict[str, Any]:
        return {"name": row.name, "tracking_id": row.tracking_id, "dataset_group": row.dataset_group,
                "created_at": t.as_utc(row.created_at)}

    def create_event_tracker(self, group: str, name: str) -> dict[str, Any]:
        """Make an event tracker for ``group``: a new random tracking id (a UUID) that events are sent with.

        Raises
        ------
        NotFoundError
            If there is no such group.
        ConflictError
            If a tracker has this name, or the group has one already (Personalize allows one per group).
        """
        group_id = self.get_dataset_group(group).id  # type: ignore[attr-defined]
        e = t.event_trackers
        with self.begin() as conn:  # type: ignore[attr-defined]
            if conn.execute(sa.select(e.c.id).where(e.c.name == name)).first() is not None:
                raise ConflictError(f"an event tracker named {name!r} exists already")
            held = conn.execute(sa.select(e.c.name).where(e.c.dataset_group_id == group_id)).scalar()
            if held is not None:
                raise ConflictError(f"dataset group {group!r} has an event tracker already ({held!r}): a group "
                                    "has at most one")
            conn.execute(e.insert().values(dataset_group_id=group_id, name=name, tracking_id=str(uuid.uuid4()),
                                           created_at=t.utc_now()))
        return self.get_event_tracker(name)

    def get_event_tracker(self, name: str) -> dict[str, Any]:
        """The tracker called ``name``: ``{"name", "tracking_id", "dataset_group", "created_at"}``."""
        with self.engine.connect() as conn:
            row = conn.execute(self._trackers_query().where(t.event_trackers.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no event tracker {name!r}")
        return self._tracker(row)

    def tracker_of(self, tracking_id: str) -> dict[str, Any] | None:
        """The tracker whose tracking id is ``tracking_id``, or None."""
        if not isinstance(tracking_id, str) or len(tracking_id) > 64:
            raise ConfigError("a tracking id is at most 64 characters")
        with self.engine.connect() as conn:
            row = conn.execute(self._trackers_query().where(t.event_trackers.c.tracking_id == tracking_id)).first()
        return None if row is None else self._tracker(row)

    def list_event_trackers(self, group: str | None = None) -> list[dict[str, Any]]:
        """Every tracker, or those of ``group``, oldest first."""
        query = self._trackers_query()
        if group is not None:
            query = query.where(t.dataset_groups.c.name == group)
        with self.engine.connect() as conn:
            return [self._tracker(row) for row in conn.execute(query).all()]

    def delete_event_tracker(self, name: str) -> None:
        """Delete the tracker called ``name`` (its events stay; its tracking id stops being accepted)."""
        with self.begin() as conn:  # type: ignore[attr-defined]
            if not conn.execute(t.event_trackers.delete().where(t.event_trackers.c.name == name)).rowcount:
                raise NotFoundError(f"no event tracker {name!r}")
