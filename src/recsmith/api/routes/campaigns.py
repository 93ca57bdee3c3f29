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
from recsmith.store.store import Store

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


def deploy_campaign(store: Store, runtime: CampaignRuntime, group: str, name: str, solution_version_id: int,
                    config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Deploy a solution version of ``group`` as campaign ``name`` and start loading it (``POST
    .../campaigns`` and the console).

    Returns
    -------
    dict
        The campaign's :func:`campaign_view` (``CREATE_IN_PROGRESS`` until this process has loaded it).

    Raises
    ------
    ConfigError
        If the name is taken or invalid, or the version is not an ACTIVE version of the group.
    NotFoundError
        If the group or the version does not exist.
    """
    record = store.create_campaign(group, name, solution_version_id, config)
    _sync_soon(runtime)
    return campaign_view(record, runtime)


def switch_campaign(store: Store, runtime: CampaignRuntime, group: str, campaign: str, *,
                    solution_version_id: int | None = None, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Switch a campaign to another version and/or config (``PUT .../campaigns/{campaign}`` and the console): the
    new version loads in the background and replaces the old one atomically.

    Returns
    -------
    dict
        The campaign's :func:`campaign_view` (``UPDATE_IN_PROGRESS`` until this process serves the new version).

    Raises
    ------
    NotFoundError
        If the group, the campaign or the version does not exist.
    ConfigError
        If the version is not an ACTIVE version of the group.
    """
    record = store.update_campaign(group, campaign, solution_version_id=solution_version_id, config=config)
    _sync_soon(runtime)
    return campaign_view(record, runtime)


def remove_campaign(store: Store, runtime: CampaignRuntime, group: str, campaign: str) -> None:
    """Stop serving and delete a campaign, its solution version kept (``DELETE .../campaigns/{campaign}`` and the
    console); NotFoundError if there is no such campaign."""
    store.delete_campaign(group, campaign)
    _sync_soon(runtime)


@router.get("", response_model=list[CampaignOut])
def list_campaigns(group: GroupPath, store: StoreDep, runtime: RuntimeDep, _: Reader) -> JSON:
    """The group's campaigns."""
    return JSON([campaign_view(r, runtime) for r in store.list_campaigns(group)])


@router.post("", response_model=CampaignOut, status_code=201)
def create_campaign(group: GroupPath, body: CampaignIn, store: StoreDep, runtime: RuntimeDep, _: Admin) -> JSON:
    """Deploy a solution version of the group; it starts serving once loaded (``status`` ACTIVE)."""
    view = deploy_campaign(store, runtime, group, body.name, body.solution_version_id, body.config)
    return JSON(view, status_code=201)


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
    return JSON(switch_campaign(store, runtime, group, campaign, solution_version_id=body.solution_version_id,
                                config=body.config))


@router.delete("/{campaign}", status_code=204)
def delete_campaign(group: GroupPath, campaign: CampaignPath, store: StoreDep, runtime: RuntimeDep, _: Admin) -> None:
    """Stop serving and delete the campaign (its solution version stays)."""
    remove_campaign(store, runtime, group, campaign)
