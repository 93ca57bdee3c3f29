"""``create_app(settings)``: the FastAPI application, its lifespan (store + campaign runtime) and error mapping.

Errors are mapped to HTTP once, here and in :mod:`recsmith.api.middleware`: recsmith's
``NotFoundError``/``UnknownIdError`` → 404, ``ConflictError`` (a resource in use) → 409, other ``RecsmithError``
(bad filter, bad value, bad name) → 400, request validation → 422 naming the field, no valid key → 401, a body
over the limit → 413, no route → 404, a method the route lacks → 405, a full disk → 503, anything else → 500
(logged with its traceback). Every error body is ``{"error": {"status", "message", "field"?}}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from recsmith import __version__
from recsmith.api import console
from recsmith.api.audit import AuditLog
from recsmith.api.auth import KeyChecker, RequireKey
from recsmith.api.console.render import error_page
from recsmith.api.console.session import SignInRequired, sign_in_location
from recsmith.api.metrics import Metrics
from recsmith.api.middleware import BodyLimit, RequestMetrics, ServerErrors
from recsmith.api.personalize import control as personalize_control
from recsmith.api.personalize import events as personalize_events
from recsmith.api.personalize import runtime as personalize_runtime
from recsmith.api.personalize.arns import Arns
from recsmith.api.personalize.auth import SigningKeys
from recsmith.api.responses import error, http_advice
from recsmith.api.routes import (
    audit,
    batch_jobs,
    campaigns,
    catalog,
    dataset_groups,
    events,
    filters,
    health,
    recommendations,
    solution_versions,
)
from recsmith.api.routing import remember_routes
from recsmith.api.schemas import V1_ERRORS
from recsmith.errors import (
    Advice,
    ConflictError,
    FilterError,
    NotFoundError,
    RecsmithError,
    UnknownIdError,
    reworded,
)
from recsmith.jobs.background import BackgroundJobs
from recsmith.jobs.batch import BatchRunner
from recsmith.jobs.runs import fail_abandoned_jobs
from recsmith.serving.campaign import CampaignRuntime, live_backends
from recsmith.settings import Settings
from recsmith.store.store import Store

logger = logging.getLogger(__name__)
_LOCATIONS = ("body", "query", "path", "header", "cookie")


def _field(loc: tuple[Any, ...]) -> str | None:
    """``events.0.sent_at`` from pydantic's location (without where it came from, or ``[key]`` markers)."""
    parts = [str(p) for p in loc if p != "[key]"]
    if len(parts) > 1 and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or None


def _json_problem(text: Any, item: dict[str, Any]) -> str:
    """``invalid JSON at line L, column C: <json's message>`` for FastAPI's ``json_invalid`` error (the offset
    counted in characters of ``text``, the body as decoded; lines and columns from 1, as :mod:`json` counts)."""
    loc = item.get("loc", ())
    offset = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    reason = str((item.get("ctx") or {}).get("error") or "not JSON")
    if offset is None or not isinstance(text, str):
        return f"invalid JSON: {reason}"
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"invalid JSON at line {line}, column {column}: {reason}"


def _is_console(request: Request) -> bool:
    path = request.url.path
    return (path == "/console" or path.startswith("/console/")) and not path.startswith("/console/static/")


def _answer(request: Request, status: int, message: str, *, field: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """The error in the shape the caller reads: the JSON body of every route, or for the console an HTML page (a
    fragment for htmx)."""
    if _is_console(request):
        return error_page(request, status, message, field=field, headers=headers)
    return error(status, message, field=field, headers=headers, **extra)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def sign_in_first(request: Request, exc: SignInRequired) -> Any:
        location = sign_in_location(exc.next_path)
        if request.headers.get("hx-request") == "true":  # htmx follows HX-Redirect with a full page load
            return Response(status_code=401, headers={"HX-Redirect": location})
        if request.method in ("GET", "HEAD"):
            return RedirectResponse(location, status_code=303)
        return error_page(request, 401, "the session has ended: sign in again")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Any:
        not_json = next((item for item in exc.errors() if item.get("type") == "json_invalid"), None)
        if not_json is not None:  # FastAPI's: loc ("body", offset), the text in exc.body, json's message in ctx
            return _answer(request, 400, _json_problem(exc.body, not_json), field="body")
        problems = []
        for item in exc.errors():
            field = _field(tuple(item.get("loc", ())))
            if field in (None, *_LOCATIONS):  # a check on the whole request may name its field
                field = (item.get("ctx") or {}).get("field") or field
            message = str(item.get("msg", "invalid"))
            problems.append({"field": field, "message": message, "type": item.get("type")})
        first = problems[0] if problems else {"field": None, "message": "invalid request"}
        text = "; ".join(f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems)
        return _answer(request, 422, text or "invalid request", field=first["field"], problems=problems)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found" and _is_console(request):
            message = f"there is no console page at {request.url.path!r}"
        elif exc.status_code == 404 and message == "Not Found":  # the router's: no route has this path
            message = f"no route matches {request.url.path!r}: the routes are listed in /openapi.json"
        elif exc.status_code == 405 and message == "Method Not Allowed":
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"method {request.method} is not allowed on {request.url.path!r}; allowed: {allowed}"
        elif exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI's "error parsing the body"
            reason = str(exc.__cause__)[:300]
            return _answer(request, 400, f"the body could not be read as JSON: {reason}", field="body")
        return _answer(request, exc.status_code, message, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Any:  # only what escapes ServerErrors (the metrics)
        return _answer(request, 500, "internal error: the server logged the details")

    @app.exception_handler(RecsmithError)
    async def recsmith_error(request: Request, exc: RecsmithError) -> Any:
        status = 404 if isinstance(exc, NotFoundError | UnknownIdError) else 400
        if isinstance(exc, ConflictError):
            status = 409
        field = "filter" if isinstance(exc, FilterError) else getattr(exc, "field", None)  # a record's bad field
        advice = getattr(exc, "advice", None)
        group = request.path_params.get("group")
        worded = http_advice(advice, request.method, group) if isinstance(advice, Advice) else None
        if worded is None:
            return _answer(request, status, str(exc), field=field)
        return _answer(request, status, reworded(exc, lambda _: worded[0]), field=worded[1])


def _openapi(app: FastAPI) -> Any:
    """The OpenAPI document, with the bearer key scheme on every ``/v1`` operation."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            spec.setdefault("components", {})["securitySchemes"] = {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "An API key from `recsmith keys create`: `Authorization: Bearer rsk_...`.",
            }}
            for path, operations in spec["paths"].items():
                if path.startswith("/v1/") or path == "/v1":
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
            app.openapi_schema = spec
        return app.openapi_schema

    return build


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
        fail_abandoned_jobs(app.state.store, settings.resolved_artifact_dir())  # what killed jobs left
        app.state.keys = KeyChecker(app.state.store)
        app.state.signing_keys = SigningKeys(app.state.store)  # AWS Signature Version 4 (api.personalize)
        app.state.arns = Arns.from_settings(settings)
        app.state.runtime = CampaignRuntime(app.state.store, encryption_key=settings.encryption_key,
                                            filter_cache_bytes=settings.filter_cache_bytes,
                                            **live_backends(app.state.store, settings.redis_url, settings.redis_prefix))
        app.state.metrics = metrics
        app.state.settings = settings
        app.state.batch = BatchRunner(app.state.store, settings)
        app.state.jobs = BackgroundJobs()  # the console's imports, trainings and tunes
        app.state.runtime.start(settings.campaign_sync_seconds)
        try:
            yield
        finally:
            app.state.batch.stop()
            app.state.jobs.stop()
            app.state.runtime.stop()
            if own_store:
                app.state.store.close()

    app = FastAPI(
        title="recsmith", version=__version__, lifespan=lifespan, redoc_url=None,
        docs_url="/docs" if settings.docs else None,  # Swagger UI loads its scripts from a CDN: opt-in only
        description="Self-hosted recommendations: campaigns, filters, personalized ranking. Every route under "
                    "/v1 needs `Authorization: Bearer <API key>` (`recsmith keys create`).",
    )
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    _install_error_handlers(app)
    aws = (personalize_runtime.router, personalize_events.router, personalize_control.router)
    for router in aws:  # Amazon Personalize's protocols, for boto3 clients (not in /openapi.json); first: routes
        app.include_router(router)  # are matched in order, and these six paths are distinct from every other
    app.include_router(health.router)
    v1 = (health.admin_router, recommendations.router, campaigns.router, filters.router, events.router,
          catalog.router, audit.router, dataset_groups.router, solution_versions.router, batch_jobs.inference,
          batch_jobs.segments)
    for router in v1:
        app.include_router(router, responses=V1_ERRORS)
    console.mount(app)
    remember_routes(app, [route for router in (health.router, *v1, *console.ROUTERS, *aws)
                          for route in router.routes])
    # added innermost first: the audit entry is written before the answer leaves; metrics see every answer; a
    # missing key is refused before the body is read
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       upload_paths=console.UPLOAD_PATHS, upload_bytes=settings.console_upload_bytes)
    app.add_middleware(RequireKey)
    app.add_middleware(AuditLog, denied_per_minute=settings.audit_denied_per_minute)
    app.add_middleware(ServerErrors)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


def app_from_environment() -> FastAPI:
    """The app with settings from the environment (uvicorn's factory in ``recsmith serve``)."""
    import os

    from threadpoolctl import threadpool_limits

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # one request is a small matrix product: BLAS threads only fight the other workers for the cores
    threadpool_limits(int(os.environ.get("OPENBLAS_NUM_THREADS", "1")), user_api="blas")
    return create_app(Settings())
