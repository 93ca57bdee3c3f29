"""Control-plane operations on data: dataset groups, schemas, datasets, dataset import jobs, event trackers and
filters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from recsmith.api.personalize import resolve
from recsmith.api.personalize.protocol import Call, field
from recsmith.jobs.runs import fail_abandoned_jobs

OPERATIONS: dict[str, Callable[[Call], dict[str, Any]]] = {}


def operation(function: Callable[[Call], dict[str, Any]]) -> Callable[[Call], dict[str, Any]]:
    """Register ``function`` under its Personalize name (``create_dataset_group`` → ``CreateDatasetGroup``)."""
    OPERATIONS["".join(part.capitalize() for part in function.__name__.split("_"))] = function
    return function


def _time(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _group(call: Call, name: str) -> dict[str, Any]:
    group = call.state.store.get_dataset_group(name)
    created = _time(group.created_at)
    return {"name": group.name, "datasetGroupArn": call.arns.dataset_group(group.name), "status": "ACTIVE",
            "creationDateTime": created, "lastUpdatedDateTime": created}


@operation
def create_dataset_group(call: Call) -> dict[str, Any]:
    """``CreateDatasetGroup``: ``name`` → ``datasetGroupArn``."""
    name = field(call.body, "name", str, required=True)
    call.authorize("admin", None)
    call.state.store.create_dataset_group(name)
    return {"datasetGroupArn": call.arns.dataset_group(name)}


@operation
def describe_dataset_group(call: Call) -> dict[str, Any]:
    """``DescribeDatasetGroup``."""
    name = resolve.dataset_group(call.state, field(call.body, "datasetGroupArn", str, required=True))
    call.authorize("admin", name)
    return {"datasetGroup": _group(call, name)}


@operation
def list_dataset_groups(call: Call) -> dict[str, Any]:
    """``ListDatasetGroups`` (all of them: no paging)."""
    call.authorize("admin", None)
    groups = [_group(call, g.name) for g in call.state.store.list_dataset_groups()]
    return {"datasetGroups": [{k: g[k] for k in ("name", "datasetGroupArn", "status", "creationDateTime",
                                                 "lastUpdatedDateTime")} for g in groups]}


@operation
def delete_dataset_group(call: Call) -> dict[str, Any]:
    """``DeleteDatasetGroup``: refused (``ResourceInUseException``) while it has campaigns, as in Personalize."""
    name = resolve.dataset_group(call.state, field(call.body, "datasetGroupArn", str, required=True))
    call.authorize("admin", name)
    fail_abandoned_jobs(call.state.store)  # a job whose process is gone no longer holds the group
    call.state.runtime.delete_dataset_group(name, force=False)
    return {}
