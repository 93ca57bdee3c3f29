"""Stored filters of a dataset group."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from recsmith.api.auth import Admin, Reader
from recsmith.api.responses import JSON, error
from recsmith.api.routes.deps import StoreDep
from recsmith.api.schemas import FilterIn, FilterOut, FilterPath, GroupPath
from recsmith.data.filters import parse_filter
from recsmith.errors import FilterError

router = APIRouter(prefix="/v1/dataset-groups/{group}/filters", tags=["filters"])


def filter_view(record: dict[str, Any]) -> dict[str, Any]:
    """A stored filter with the parameters it takes."""
    return record | {"parameters": list(parse_filter(record["expression"]).parameters)}


@router.post("", response_model=FilterOut, status_code=201)
def create_filter(group: GroupPath, body: FilterIn, store: StoreDep, _: Admin) -> JSON:
    """Store a filter; a malformed expression, or one naming a field the group's items or users schema lacks, is
    refused (400, ``field`` "expression") with the position and what was expected or the nearest field."""
    try:
        record = store.create_filter(group, body.name, body.expression)
    except FilterError as exc:
        return error(400, str(exc), field="expression")
    return JSON(filter_view(record), status_code=201)


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
