"""Try it: a campaign's ranked list for a user, a session's items or an item, with a filter and its values."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)
