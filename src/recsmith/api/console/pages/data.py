"""Data: datasets with their schemas, import jobs with their rejects, and uploading a file to import (admins)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)
