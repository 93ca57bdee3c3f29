"""Liveness, readiness and metrics (the only routes answered without an API key), and the server's status for
admins.

Without a key the server says only whether it is up and ready: which campaigns it serves, their sizes and
errors (which may hold paths) are for admin keys, at ``GET /v1/status``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import PlainTextResponse, Response

from recsmith.api.auth import Admin
from recsmith.api.responses import JSON
from recsmith.api.routes.deps import RuntimeDep

router = APIRouter(tags=["health"])
admin_router = APIRouter(prefix="/v1", tags=["health"])


class ReadyOut(BaseModel):
    """Whether every campaign has a loaded version."""

    ready: bool


class StatusOut(BaseModel):
    """What this server process serves."""

    ready: bool
    campaigns: list[dict[str, Any]] = Field(description="Each campaign's loaded solution version, recipe, numbers of "
                                            "users and items and load time, or the error that keeps it from "
                                            "loading.")


@router.get("/health")
def health() -> JSON:
    """The process is up."""
    return JSON({"status": "ok"})


@router.get("/ready", response_model=ReadyOut, responses={503: {"model": ReadyOut, "description": "Not ready yet."}})
def ready(runtime: RuntimeDep) -> JSON:
    """200 ``{"ready": true}`` once every campaign has a loaded version, 503 ``{"ready": false}`` before (what is
    loaded: ``GET /v1/status`` with an admin key)."""
    ok = runtime.ready()
    return JSON({"ready": ok}, status_code=200 if ok else 503)


@admin_router.get("/status", response_model=StatusOut)
def status(runtime: RuntimeDep, _: Admin) -> JSON:
    """Readiness with what this process serves: each campaign's version, sizes, or its load error."""
    return JSON({"ready": runtime.ready(), "campaigns": runtime.status()})


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"description": "The Prometheus text exposition format."}})
def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus metrics of every worker."""
    state = request.app.state
    state.metrics.served(runtime.status())
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
