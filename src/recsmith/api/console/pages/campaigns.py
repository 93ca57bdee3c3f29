"""Campaigns: the version each serves, switching it (admins), and its traffic, latency and click-through over time."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)
