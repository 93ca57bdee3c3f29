"""Batch jobs' records: batch inference and batch segment jobs (the ``batch_jobs`` table).

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine`` and ``begin``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.errors import NotFoundError
from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

BATCH_KINDS = ("inference", "segment")
"""What a batch job makes: recommendations (Personalize's batch inference job) or users for items (its batch
segment job)."""


class BatchRecords:
    """Mixin of :class:`recsmith.store.store.Store`: batch inference and batch segment jobs."""

    engine: Engine  # and Store's own begin

    def create_batch_job(self, group_id: int, kind: str, solution_version_id: int, *, input: str, output: str,
                         config: dict[str, Any], owner: dict[str, Any] | None = None) -> int:
        """Record a batch job, ``CREATE_PENDING``; returns its id. ``config`` (JSON) holds what the job needs to run
        or resume (num_results, filter, filter values, engine, output table); ``owner`` names the process that will
        run it."""
        if kind not in BATCH_KINDS:
            raise ValueError(f"batch job kind must be one of {BATCH_KINDS}, got {kind!r}")
        with self.begin() as conn:
            return int(conn.execute(t.batch_jobs.insert().values(
                dataset_group_id=group_id, kind=kind, solution_version_id=solution_version_id,
                status="CREATE_PENDING", input=input, output=output, config=json.dumps(config),
                created_at=t.utc_now(), **(owner or {}),
            )).inserted_primary_key[0])

    def claim_batch_job(self, job_id: int, **fields: Any) -> bool:
        """Mark a batch job ``CREATE_IN_PROGRESS`` (with ``fields``: owner, start time) if it is pending or failed,
        in one statement, so that two processes resuming it at once cannot both run it; returns whether this call
        claimed it."""
        b = t.batch_jobs
        with self.begin() as conn:
            return bool(conn.execute(b.update().where(b.c.id == job_id,
                                                      b.c.status.in_(("CREATE_PENDING", "CREATE_FAILED")))
                                     .values(status="CREATE_IN_PROGRESS", error=None, **fields)).rowcount)

    def update_batch_job(self, job_id: int, **fields: Any) -> None:
        """Set some of a batch job's columns (``status``, counts, ``parts_done``, ``error``, times, owner)."""
        if "config" in fields:
            fields["config"] = json.dumps(fields["config"])
        with self.begin() as conn:
            conn.execute(t.batch_jobs.update().where(t.batch_jobs.c.id == job_id).values(**fields))

    def get_batch_job(self, job_id: int, kind: str | None = None) -> dict[str, Any]:
        """A batch job by id, with its group's name (``dataset_group``); ``kind`` also checks its kind.

        Raises
        ------
        NotFoundError
            If there is no such job (of that kind).
        """
        for job in self._batch_jobs(t.batch_jobs.c.id == job_id):
            if kind is None or job["kind"] == kind:
                return job
        raise NotFoundError(f"no batch {kind or ''} job {job_id}".replace("  ", " "))

    def list_batch_jobs(self, group_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        """A group's batch jobs (of ``kind``), oldest first."""
        where = t.batch_jobs.c.dataset_group_id == group_id
        if kind is not None:
            where = sa.and_(where, t.batch_jobs.c.kind == kind)
        return list(self._batch_jobs(where))

    def _batch_jobs(self, where: Any) -> Iterator[dict[str, Any]]:
        b, g = t.batch_jobs, t.dataset_groups
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(b, g.c.name.label("dataset_group")).join(g, g.c.id == b.c.dataset_group_id)
                                .where(where).order_by(b.c.id)).all()
        for row in rows:
            job = {key: t.as_utc(value) for key, value in row._mapping.items()}
            job["config"] = json.loads(job["config"])
            yield job
