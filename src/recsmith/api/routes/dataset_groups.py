"""Dataset groups: list them, and delete one with everything in it (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from recsmith.api.auth import Admin, Reader
from recsmith.api.responses import JSON, error
from recsmith.api.routes.deps import RuntimeDep, StoreDep
from recsmith.api.schemas import DatasetGroupDeletedOut, DatasetGroupOut, GroupPath, error_responses
from recsmith.errors import ConflictError
from recsmith.jobs.runs import fail_abandoned_jobs
from recsmith.store.store import DatasetGroup, Store

router = APIRouter(prefix="/v1/dataset-groups", tags=["dataset groups"])


def group_views(store: Store) -> list[dict[str, Any]]:
    """Every dataset group, by name, with its creation time and counts (:data:`recsmith.store.store.GROUP_COUNTS`)."""
    counts = store.dataset_group_counts()
    return [_view(g, counts) for g in store.list_dataset_groups()]


def group_view(store: Store, name: str) -> dict[str, Any]:
    """One dataset group as :func:`group_views` shows it (its counts only are counted); NotFoundError if there is
    no such group."""
    group = store.get_dataset_group(name)
    return _view(group, store.dataset_group_counts(group.id))


def _view(group: DatasetGroup, counts: dict[int, dict[str, int]]) -> dict[str, Any]:
    return {"name": group.name, "created_at": group.created_at, **counts.get(group.id, {})}


@router.get("", response_model=list[DatasetGroupOut])
def list_dataset_groups(store: StoreDep, _: Reader) -> JSON:
    """Every dataset group, by name, with its counts (a key for every group; a key of one group knows it)."""
    return JSON(group_views(store))


@router.delete("/{group}", response_model=DatasetGroupDeletedOut, responses=error_responses(409))
def delete_dataset_group(group: GroupPath, store: StoreDep, runtime: RuntimeDep, _: Admin,
                         force: Annotated[bool, Query(description="Delete its campaigns too (else 409 while it "
                                                      "has any).")] = False) -> JSON:
    """Delete a dataset group and everything in it: data, schemas, import jobs, solutions and versions (their
    artifacts too), campaigns (with ``force=true``; else 409 naming them), filters, its API keys, its
    served-items ledger, its retraining decisions and tuning studies. Every worker stops serving its
    campaigns within ``RECSMITH_CAMPAIGN_SYNC_SECONDS`` (at once with Redis). Its audit-log entries stay."""
    fail_abandoned_jobs(store)  # a job whose process is gone no longer holds the group
    try:
        return JSON(runtime.delete_dataset_group(group, force=force))
    except ConflictError as exc:
        if not exc.campaigns:
            raise
        first = exc.campaigns[0]
        return error(409, f"{exc}; delete them first (DELETE /v1/dataset-groups/{group}/campaigns/{first}), or "
                          "add ?force=true to delete them with the group", campaigns=list(exc.campaigns))
