"""ASGI middleware: the request body size limit, JSON answers for unexpected errors, and Prometheus request
metrics per route (and per campaign, for authorised requests to campaigns that exist).

From the outside in: :class:`RequestMetrics` (counts every answer), :class:`ServerErrors` (a 503 when the disk
is full, a JSON 500 for anything else), :class:`recsmith.api.auth.RequireKey` (401 for ``/v1`` without a valid
key, before the body is read), :class:`BodyLimit` (413), then the routes.
"""

from __future__ import annotations

import errno
import logging
import re
import time
from collections.abc import Sequence

import orjson
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recsmith.api.metrics import Metrics, is_authorised
from recsmith.api.responses import error
from recsmith.api.routing import route_of

logger = logging.getLogger(__name__)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
KNOWN_NAMES_LIMIT = 10_000
"""The most (dataset group, campaign) label pairs one process remembers as existing (a bound on series)."""


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, by Content-Length or while streaming; a path that one of
    ``upload_paths`` matches in full (the console's file upload) may send up to ``upload_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, *, upload_paths: Sequence[re.Pattern[str]] = (),
                 upload_bytes: int = 0) -> None:
        self.app = app
        self.default_bytes = max_bytes
        self.upload_paths = tuple(upload_paths)
        self.upload_bytes = max(upload_bytes, max_bytes)

    def limit(self, path: str) -> int:
        """The body limit of a request to ``path``."""
        if any(pattern.fullmatch(path) for pattern in self.upload_paths):
            return self.upload_bytes
        return self.default_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope.get("path", ""))
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length > limit or length < 0:
                    await self._refuse(scope, receive, send, limit)
                    return
        seen = 0
        refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # answer 413 now; the app sees the client go away
                    refused = True
                    await self._refuse(scope, receive, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        setting = "RECSMITH_MAX_BODY_BYTES" if limit == self.default_bytes else "RECSMITH_CONSOLE_UPLOAD_BYTES"
        response = error(413, f"request body too large: the limit is {limit} bytes ({setting})", field="body")
        await response(scope, receive, send)


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the disk is full: ``OSError`` ENOSPC, SQLite's "database or disk is
    full", PostgreSQL's ``DiskFull`` (SQLSTATE 53100)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        if getattr(current, "sqlstate", None) == "53100" or type(current).__name__ == "DiskFull":
            return True
        if "database or disk is full" in str(current):
            return True
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return False


class ServerErrors:
    """Answer what nothing else caught as JSON: 503 when the disk is full, else 500, logged with the traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            where = f"{scope.get('method')} {scope.get('path')}"
            if disk_full(exc):
                logger.error("the disk is full answering %s: %s", where, exc)
                response = error(503, "the disk is full: the server cannot store anything until space is freed; "
                                      "try again later", headers={"Retry-After": "60"})
            else:
                logger.exception("unexpected error answering %s", where)
                response = error(500, "internal error: the server logged the details")
            if started:  # too late for another answer: the client sees the connection end
                raise
            path = str(scope.get("path", ""))
            if path == "/console" or path.startswith("/console/"):  # a browser: a page, not JSON
                status, message = response.status_code, orjson.loads(response.body)["error"]["message"]
                response = HTMLResponse(f'<!doctype html><html lang="en"><title>Error {status}</title><h1>{status}: '
                                        f'server error</h1><p role="alert">{message}</p><p><a href="/console">Back '
                                        "to the console</a></p></html>", status_code=status,
                                        headers={k: v for k, v in response.headers.items() if k == "retry-after"})
            await response(scope, receive, send)


class RequestMetrics:
    """Count requests and time them, labelled by route template, method and status.

    The dataset group and campaign labels are filled only for requests whose key was authorised on that group
    and whose names exist (a 2xx was answered for them, or the runtime serves the campaign); every other request
    (401, 403, 404 for a made-up group) gets empty ones, so made-up names add no series.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._known: set[tuple[str, str]] = set()

    def _names(self, scope: Scope, status: int) -> tuple[str, str]:
        params = scope.get("path_params") or {}
        group, campaign = params.get("group", ""), params.get("campaign", "")
        if not group or not is_authorised(scope):
            return "", ""
        pair = (group, campaign)
        if pair in self._known:
            return pair
        exists = 200 <= status < 300
        if not exists and campaign:
            runtime = getattr(scope["app"].state, "runtime", None)
            try:
                exists = runtime is not None and runtime.get(group, campaign) is not None
            except LookupError:
                exists = False
        if not exists:
            return "", ""
        if len(self._known) < KNOWN_NAMES_LIMIT:
            self._known.add(pair)
        return pair

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            template = route_of(scope)[0] or "unmatched"
            if template != "/metrics":
                method = scope["method"] if scope["method"] in METHODS else "other"
                group, campaign = self._names(scope, status)
                self.metrics.observe(template, method, status, group, campaign, time.perf_counter() - started)
