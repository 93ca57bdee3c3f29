"""Automatic retraining's records: every decision ``recsmith schedule`` takes (the ``retrain_decisions`` table).

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine``, ``begin`` and
``get_dataset_group``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.errors import ConfigError
from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DECISIONS = ("switched", "kept", "failed", "no-campaign")
"""What a retraining run can decide: ``switched`` (campaigns now serve the new version), ``kept`` (the new
version was worse beyond the tolerance; campaigns keep their version), ``failed`` (training or the run
failed; nothing changed) and ``no-campaign`` (the version is trained but no campaign serves the solution)."""


class RetrainingRecords:
    """Mixin of :class:`recsmith.store.store.Store`: decisions of automatic retraining."""

    engine: Engine  # the rest it uses (begin, get_dataset_group) are Store's own methods

    def record_retrain_decision(
        self,
        group: str,
        solution: str,
        *,
        decision: str,
        reason: str,
        candidate_version_id: int | None,
        current_version_id: int | None,
        campaigns: list[str],
    ) -> dict[str, Any]:
        """Store one decision of automatic retraining.

        Parameters
        ----------
        group : str
            The dataset group.
        solution : str
            The retrained solution's name.
        decision : {"switched", "kept", "failed", "no-campaign"}
            What was decided (see :data:`DECISIONS`).
        reason : str
            Why, in words, with the numbers compared.
        candidate_version_id : int or None
            The version the run trained (None when training failed before making one).
        current_version_id : int or None
            The version the campaigns served before the decision (None when there was none to compare with).
        campaigns : list of str
            The campaigns the decision is about (switched, or kept on ``current_version_id``).

        Returns
        -------
        dict
            The stored record, as :meth:`list_retrain_decisions` gives it.

        Raises
        ------
        ConfigError
            If ``decision`` is not one of :data:`DECISIONS`.
        NotFoundError
            If the dataset group does not exist.
        """
        if decision not in DECISIONS:
            raise ConfigError(f"unknown retraining decision {decision!r}; use one of {', '.join(DECISIONS)}")
        group_id = self.get_dataset_group(group).id
        with self.begin() as conn:
            record_id = conn.execute(t.retrain_decisions.insert().values(
                dataset_group_id=group_id, solution=solution, candidate_version_id=candidate_version_id,
                current_version_id=current_version_id, decision=decision, reason=reason,
                campaigns=json.dumps(list(campaigns)), created_at=t.utc_now(),
            )).inserted_primary_key[0]
            row = conn.execute(self._decisions_query().where(t.retrain_decisions.c.id == record_id)).one()
        return _decision_dict(row)

    def list_retrain_decisions(self, group: str | None = None, solution: str | None = None,
                               limit: int | None = None) -> list[dict[str, Any]]:
        """Recorded decisions of automatic retraining, newest first.

        Parameters
        ----------
        group : str, optional
            Only this dataset group's (NotFoundError if it does not exist); None: every group's.
        solution : str, optional
            Only this solution's.
        limit : int, optional
            At most this many (the newest).

        Returns
        -------
        list of dict
            Each with ``id``, ``dataset_group``, ``solution``, ``decision``, ``reason``,
            ``candidate_version_id``, ``current_version_id``, ``campaigns`` (list of str) and ``created_at``
            (UTC).
        """
        if limit is not None and limit < 1:
            raise ConfigError(f"limit must be at least 1, got {limit}")
        d = t.retrain_decisions
        query = self._decisions_query().order_by(d.c.id.desc())
        if group is not None:
            query = query.where(d.c.dataset_group_id == self.get_dataset_group(group).id)
        if solution is not None:
            query = query.where(d.c.solution == solution)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_decision_dict(row) for row in conn.execute(query).all()]

    @staticmethod
    def _decisions_query() -> sa.Select:
        d, g = t.retrain_decisions, t.dataset_groups
        return (sa.select(d.c.id, g.c.name.label("dataset_group"), d.c.solution, d.c.decision, d.c.reason,
                          d.c.candidate_version_id, d.c.current_version_id, d.c.campaigns, d.c.created_at)
                .join(g, g.c.id == d.c.dataset_group_id))


def _decision_dict(row: Any) -> dict[str, Any]:
    out = {key: t.as_utc(value) for key, value in row._mapping.items()}
    out["campaigns"] = json.loads(out["campaigns"] or "[]")
    return out
