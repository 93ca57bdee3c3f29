"""Solutions' records for the console: the solutions of a dataset group (the ``solutions`` table).

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class SolutionRecords:
    """Mixin of :class:`recsmith.store.store.Store`: listing a group's solutions."""

    engine: Engine

    def list_solutions(self, group_id: int) -> list[dict[str, Any]]:
        """The group's solutions, by name: ``id``, ``name``, ``recipe``, ``params``, ``config``, ``created_at``
        (solutions made by ``recsmith tune`` may have no version yet)."""
        s = t.solutions
        query = sa.select(s).where(s.c.dataset_group_id == group_id).order_by(s.c.name)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for row in rows:
            record = {key: t.as_utc(value) for key, value in row._mapping.items()}
            for key in ("params", "config"):
                record[key] = json.loads(record[key]) if isinstance(record[key], str) else record[key]
            out.append(record)
        return out
