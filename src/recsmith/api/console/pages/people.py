"""Users and items: search by id, a user's history and what each campaign recommends them now,
an item's metadata and similar items."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)
