"""Stored filters of a dataset group."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from recsmith.api.auth import Admin, Reader
from recsmith.api.responses import JSON
from recsmith.api.routes.deps import StoreDep
from recsmith.api.schemas import FilterIn, FilterOut, FilterPath, GroupPath
from recsmith.data.filters import parse_filter

router = APIRouter(prefix="/v1/dataset-groups/{group}/filters", tags=["filters"])


def filter_view(record: dict[str, Any]) -> dict[str, Any]:
    """A stored filter with the parameters it takes."""
    return record | {"parameters": list(parse_filter(record["expression"]).parameters)}


@router.post("", response_model=FilterOut, status_code=201)
def create_filter(group: GroupPath, body: FilterIn, store: StoreDep, _: Admin) -> JSON:
    """Store a filter; a malformed expression is refused with the position and what was expected."""
    return JSON(filter_view(store.create_filter(group, body.name, body.expression)), status_code=201)


@router.get("", response_model=list[FilterOut])
def list_filters(group: GroupPath, store: StoreDep, _: Reader) -> JSON:
    """The group's filters."""
    return JSON([filter_view(r) for r in store.list_filters(group)])


@router.get("/{name}", response_model=FilterOut)
def get_filter(group: GroupPath, name: FilterPath, store: StoreDep, _: Reader) -> JSON:
    """One filter."""
    return JSON(filter_view(store.get_filter(group, name)))


@router.delete("/{name}", status_code=204)
def delete_filter(group: GroupPath, name: FilterPath, store: StoreDep, _: Admin) -> None:
    """Delete a filter (requests naming it fail with 404 within two seconds on every worker)."""
    store.delete_filter(group, name)
