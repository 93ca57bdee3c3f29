"""Dependencies shared by the routers: the store and the campaign runtime of the app.

They are ``async`` because they only read ``app.state``: a sync dependency costs a thread-pool hop per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from recsmith.api.metrics import Metrics
from recsmith.serving.campaign import CampaignRuntime
from recsmith.store.store import Store


async def _store(request: Request) -> Store:
    return request.app.state.store


async def _runtime(request: Request) -> CampaignRuntime:
    return request.app.state.runtime


StoreDep = Annotated[Store, Depends(_store)]
RuntimeDep = Annotated[CampaignRuntime, Depends(_runtime)]


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


MetricsDep = Annotated[Metrics, Depends(_metrics)]
