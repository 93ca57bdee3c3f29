"""Campaigns: deploy, switch, list, describe and delete."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter

from recsmith.api.auth import Admin, Reader
from recsmith.api.responses import JSON
from recsmith.api.routes.deps import RuntimeDep, StoreDep
from recsmith.api.schemas import CampaignIn, CampaignOut, CampaignPath, CampaignUpdate, GroupPath
from recsmith.serving.campaign import CampaignRuntime

router = APIRouter(prefix="/v1/dataset-groups/{group}/campaigns", tags=["campaigns"])


def campaign_view(record: dict[str, Any], runtime: CampaignRuntime) -> dict[str, Any]:
    """A stored campaign with what this process serves for it."""
    serving = next((s for s in runtime.status() if s["dataset_group"] == record["dataset_group"]
                    and s["campaign"] == record["name"]), {})
    version = serving.get("solution_version_id")
    if version == record["solution_version_id"]:
        status = "ACTIVE"
    elif version is not None:
        status = "UPDATE_IN_PROGRESS"
    else:
        status = "CREATE_FAILED" if "error" in serving else "CREATE_IN_PROGRESS"
    return {"dataset_group": record["dataset_group"], "name": record["name"],
            "solution_version_id": record["solution_version_id"], "recipe": record["recipe"],
            "config": record["config"], "status": status, "serving_solution_version_id": version,
            "error": serving.get("error"), "created_at": record["created_at"], "updated_at": record["updated_at"]}


def _sync_soon(runtime: CampaignRuntime) -> None:
    """Load the change in the background (requests keep being answered by the old version meanwhile); with
    Redis, every other process is told to sync now too."""
    threading.Thread(target=runtime.sync, name="recsmith-campaign-load", daemon=True).start()
    runtime.live.campaigns_changed()


@router.get("", response_model=list[CampaignOut])
def list_campaigns(group: GroupPath, store: StoreDep, runtime: RuntimeDep, _: Reader) -> JSON:
    """The group's campaigns."""
    return JSON([campaign_view(r, runtime) for r in store.list_campaigns(group)])


@router.post("", response_model=CampaignOut, status_code=201)
def create_campaign(group: GroupPath, body: CampaignIn, store: StoreDep, runtime: RuntimeDep, _: Admin) -> JSON:
    """Deploy a solution version of the group; it starts serving once loaded (``status`` ACTIVE)."""
    record = store.create_campaign(group, body.name, body.solution_version_id, body.config)
    _sync_soon(runtime)
    return JSON(campaign_view(record, runtime), status_code=201)


@router.get("/{campaign}", response_model=CampaignOut)
def describe_campaign(group: GroupPath, campaign: CampaignPath, store: StoreDep, runtime: RuntimeDep,
                      _: Reader) -> JSON:
    """A campaign, its version and the version this server process serves now."""
    return JSON(campaign_view(store.get_campaign(group, campaign), runtime))


@router.put("/{campaign}", response_model=CampaignOut)
def update_campaign(group: GroupPath, campaign: CampaignPath, body: CampaignUpdate, store: StoreDep,
                    runtime: RuntimeDep, _: Admin) -> JSON:
    """Switch to another solution version: it loads in the background and replaces the old one atomically;
    requests meanwhile are answered by the old version."""
    record = store.update_campaign(group, campaign, solution_version_id=body.solution_version_id, config=body.config)
    _sync_soon(runtime)
    return JSON(campaign_view(record, runtime))


@router.delete("/{campaign}", status_code=204)
def delete_campaign(group: GroupPath, campaign: CampaignPath, store: StoreDep, runtime: RuntimeDep, _: Admin) -> None:
    """Stop serving and delete the campaign (its solution version stays)."""
    store.delete_campaign(group, campaign)
    _sync_soon(runtime)
