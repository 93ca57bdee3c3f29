"""The audit log, read-only: ``GET /v1/audit`` for admin keys of every group. No route changes it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from recsmith.api.auth import Admin
from recsmith.api.responses import JSON
from recsmith.api.routes.deps import StoreDep
from recsmith.jobs.schedule import parse_since
from recsmith.store.audit_records import MAX_ENTRIES

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditEntryOut(BaseModel):
    """One change, or refused attempt at one."""

    id: int
    at: datetime
    actor: str
    """An API key id, ``cli:<os user>``, ``scheduler`` or ``anonymous``."""
    action: str
    resource: str
    source: str
    """The client's address (HTTP) or the host (command line, scheduler)."""
    outcome: str
    """``ok``, ``denied`` (401, 403) or ``failed``."""
    status: int | None
    detail: dict[str, Any]


class AuditOut(BaseModel):
    """Entries, newest first."""

    entries: list[AuditEntryOut]


@router.get("", response_model=AuditOut)
def audit_entries(
    store: StoreDep,
    _: Admin,
    since: Annotated[str | None, Query(max_length=64, description="An ISO 8601 time (UTC unless it says), or a "
                                       "period back from now: 90s, 30m, 1h, 2d.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ENTRIES, description="At most this many, the newest.")] = 100,
    action: Annotated[str | None, Query(max_length=64, description="Only this action (campaign.create), or a "
                                        "kind's (campaign.).")] = None,
) -> JSON:
    """The audit log's entries, newest first (an admin key of every group)."""
    entries = store.audit_entries(parse_since(since) if since else None, limit, action=action)
    return JSON({"entries": entries})
