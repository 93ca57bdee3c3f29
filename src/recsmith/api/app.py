"""``create_app(settings)``: the FastAPI application, its lifespan (store + campaign runtime) and error mapping.

Errors are mapped to HTTP once, here: recsmith's ``NotFoundError``/``UnknownIdError`` → 404, other
``RecsmithError`` (bad filter, bad value, bad name) → 400, request validation → 422 naming the field, a body
over the limit → 413; every error body is ``{"error": {"status", "message", "field"?}}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from recsmith import __version__
from recsmith.api.audit import AuditLog
from recsmith.api.auth import KeyChecker
from recsmith.api.metrics import Metrics
from recsmith.api.middleware import BodyLimit, RequestMetrics
from recsmith.api.responses import error
from recsmith.api.routes import audit, campaigns, catalog, events, filters, health, recommendations
from recsmith.errors import FilterError, NotFoundError, RecsmithError, UnknownIdError
from recsmith.serving.campaign import CampaignRuntime
from recsmith.settings import Settings
from recsmith.store.store import Store

logger = logging.getLogger(__name__)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts[1:] if parts and parts[0] in ("body", "query", "path") and len(parts) > 1 else parts)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Any:
        problems = []
        for item in exc.errors():
            field = _field(tuple(item.get("loc", ())))
            message = str(item.get("msg", "invalid"))
            problems.append({"field": field, "message": message, "type": item.get("type")})
        first = problems[0] if problems else {"field": None, "message": "invalid request"}
        text = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems)
        return error(422, text or "invalid request", field=first["field"], problems=problems)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Any:
        response = error(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RecsmithError)
    async def recsmith_error(_: Request, exc: RecsmithError) -> Any:
        status = 404 if isinstance(exc, NotFoundError | UnknownIdError) else 400
        field = "filter" if isinstance(exc, FilterError) else getattr(exc, "field", None)  # a record's bad field
        return error(status, str(exc), field=field)


def live_backends(settings: Settings, store: Store) -> dict[str, Any]:
    """The campaign runtime's live-state and ledger backends: Redis when ``settings.redis_url`` is set, else
    the store alone."""
    if not settings.redis_url:
        return {}
    from recsmith.serving.ledger import RedisLedger
    from recsmith.serving.live import RedisLive, connect_redis

    client = connect_redis(settings.redis_url)
    prefix = settings.redis_prefix
    return {"live": RedisLive(store, client, prefix=prefix), "ledger": RedisLedger(client, prefix=prefix)}


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """The HTTP API.

    Parameters
    ----------
    settings : Settings, optional
        Where the store is, limits, sync period; read from ``RECSMITH_*`` when omitted.
    store : Store, optional
        An open store to use instead of the one the settings name.
    """
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        app.state.store = store or Store.from_settings(settings)
        app.state.store.migrate()
        app.state.keys = KeyChecker(app.state.store)
        app.state.runtime = CampaignRuntime(app.state.store, **live_backends(settings, app.state.store))
        app.state.metrics = metrics
        app.state.runtime.start(settings.campaign_sync_seconds)
        try:
            yield
        finally:
            app.state.runtime.stop()
            if own_store:
                app.state.store.close()

    app = FastAPI(
        title="recsmith", version=__version__, lifespan=lifespan,
        description="Self-hosted recommendations: campaigns, filters, personalized ranking. Every route under "
                    "/v1 needs `Authorization: Bearer <API key>` (`recsmith keys create`).",
    )
    _install_error_handlers(app)
    for router in (health.router, recommendations.router, campaigns.router, filters.router, events.router,
                   catalog.router, audit.router):
        app.include_router(router)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(AuditLog, denied_per_minute=settings.audit_denied_per_minute)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def app_from_environment() -> FastAPI:
    """The app with settings from the environment (uvicorn's factory in ``recsmith serve``)."""
    import os

    from threadpoolctl import threadpool_limits

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # one request is a small matrix product: BLAS threads only fight the other workers for the cores
    threadpool_limits(int(os.environ.get("OPENBLAS_NUM_THREADS", "1")), user_api="blas")
    return create_app(Settings())
