"""Filters: create one with its parse errors shown where the parser names them, and test it on a user before saving."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)
