"""A dataset group's solution versions: list them, and delete one no campaign serves (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from recsmith.api.auth import Admin, Reader
from recsmith.api.responses import JSON, error
from recsmith.api.routes.deps import StoreDep
from recsmith.api.schemas import GroupPath, SolutionVersionDeletedOut, SolutionVersionOut, VersionPath, error_responses
from recsmith.errors import ConflictError
from recsmith.serving.campaign import delete_solution_version
from recsmith.store.store import Store

router = APIRouter(prefix="/v1/dataset-groups/{group}/solution-versions", tags=["solution versions"])

FIELDS = ("id", "dataset_group", "recipe", "status", "params", "metrics", "num_users", "num_items",
          "num_interactions", "fit_seconds", "total_seconds", "created_at", "finished_at")
"""What a listing shows of a version: not where its artifact lies, nor a failed training's error (which may hold
paths): those are for the server's operators (``recsmith solution-versions describe``)."""


def version_view(record: dict[str, Any], serving: dict[int, list[str]]) -> dict[str, Any]:
    """A stored version as the API shows it, with the campaigns that serve it."""
    return {key: record.get(key) for key in FIELDS} | {"solution": record["solution_name"],
                                                       "campaigns": serving.get(int(record["id"]), [])}


def serving_map(store: Store, group: str) -> dict[int, list[str]]:
    """The group's campaigns by the solution version each serves (what :func:`version_view` shows)."""
    serving: dict[int, list[str]] = {}
    for campaign in store.list_campaigns(group):
        serving.setdefault(int(campaign["solution_version_id"]), []).append(campaign["name"])
    return serving


def version_views(store: Store, group: str) -> list[dict[str, Any]]:
    """The group's solution versions as the API lists them, oldest first, with the campaigns serving each."""
    group_id = store.get_dataset_group(group).id
    serving = serving_map(store, group)
    return [version_view(v, serving) for v in store.list_solution_versions(group_id)]


@router.get("", response_model=list[SolutionVersionOut])
def list_solution_versions(group: GroupPath, store: StoreDep, _: Reader) -> JSON:
    """The group's solution versions, oldest first, with the campaigns serving each."""
    return JSON(version_views(store, group))


@router.delete("/{version_id}", response_model=SolutionVersionDeletedOut, responses=error_responses(409))
def delete_version(group: GroupPath, version_id: VersionPath, store: StoreDep, _: Admin) -> JSON:
    """Delete a solution version and its artifact; 409 naming the campaigns while any serves it (switch them to
    another version with ``PUT …/campaigns/{campaign}``, or delete them, first)."""
    try:
        return JSON(delete_solution_version(store, group, version_id))
    except ConflictError as exc:
        if not exc.campaigns:
            raise
        first = exc.campaigns[0]
        return error(409, f"{exc}; switch each campaign to another version first (PUT /v1/dataset-groups/{group}/"
                          f"campaigns/{first} with another solution_version_id) or delete the campaign",
                     campaigns=list(exc.campaigns))
