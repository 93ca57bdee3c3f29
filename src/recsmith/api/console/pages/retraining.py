"""Retraining: schedules' decisions (switched, kept, failed) with their numbers.

The decisions ``recsmith schedule run`` records (:meth:`~recsmith.store.store.Store.list_retrain_decisions`),
newest first, shown as ``recsmith schedule history`` shows them: when (UTC), solution, decision, the versions
(``current -> candidate``, :func:`recsmith.jobs.schedule.decision_versions`), the campaigns and the reason, which
holds the metric numbers compared.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from recsmith.api.console.render import page
from recsmith.api.console.session import User
from recsmith.api.schemas import GroupPath
from recsmith.jobs.schedule import decision_versions

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)

SHOWN = 200
"""The most decisions the page lists (the newest)."""


def decision_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recorded decisions as the page lists them: each record with its ``versions`` (``current -> candidate``)."""
    return [record | {"versions": decision_versions(record)} for record in records]


@router.get("/retraining")
def retraining(request: Request, user: User, group: GroupPath) -> Response:
    """The group's retraining decisions, newest first (at most :data:`SHOWN`)."""
    user.require("read", group)
    records = request.app.state.store.list_retrain_decisions(group, limit=SHOWN + 1)
    return page(request, "retraining/decisions.html", title=f"Retraining of {group}", group=group,
                active="retraining", decisions=decision_rows(records[:SHOWN]), more=len(records) > SHOWN,
                shown=SHOWN)
