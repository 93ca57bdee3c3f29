"""Solutions and versions: params, status, metrics with confidence intervals, comparing two versions,
evaluation reports, training and tuning (admins)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)
