"""Liveness, readiness and metrics: the only routes answered without an API key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from recsmith.api.responses import JSON
from recsmith.api.routes.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> JSON:
    """The process is up."""
    return JSON({"status": "ok"})


@router.get("/ready")
def ready(runtime: RuntimeDep) -> JSON:
    """200 once every campaign has a loaded version (503 before), with what is loaded."""
    ok = runtime.ready()
    return JSON({"ready": ok, "campaigns": runtime.status()}, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus metrics of every worker."""
    state = request.app.state
    state.metrics.served(runtime.status())
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
