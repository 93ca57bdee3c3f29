"""Import jobs' progress while they run (the ``progress`` column of ``import_jobs``), for the console's progress bar.

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine`` and ``begin``). Progress lives in
the store, not in the memory of the process running the import, so every server worker shows the same.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def progress_of(job: dict[str, Any]) -> dict[str, Any] | None:
    """The progress of an import job (or solution version) as the store's getters give it, decoded from its JSON
    column; None when none was recorded."""
    value = job.get("progress")
    if value is None or isinstance(value, dict):
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


class DataRecords:
    """Mixin of :class:`recsmith.store.store.Store`: the progress of import jobs."""

    engine: Engine  # and Store's own begin

    def set_import_progress(self, job_id: int, progress: dict[str, Any] | None) -> None:
        """Record how far import job ``job_id`` has got: ``{"stage": "read" | "validate" | "write", "done": rows,
        "total": rows or None}`` (None clears it). Its own short transaction; call it a few times a second at
        most."""
        with self.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(t.import_jobs.update().where(t.import_jobs.c.id == job_id)
                         .values(progress=None if progress is None else json.dumps(progress)))
