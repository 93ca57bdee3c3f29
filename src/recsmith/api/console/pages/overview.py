"""A dataset group's overview: counts, event types, events per day and the live events of the last hour."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)
