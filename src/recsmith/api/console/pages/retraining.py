"""Retraining: schedules' decisions (switched, kept, failed) with their numbers."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)
