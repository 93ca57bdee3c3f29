"""Which route a request is for, also when a middleware answered it before the router ran (401, 413)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import Scope


def route_of(scope: Scope) -> tuple[str | None, dict[str, Any]]:
    """The route template (``/v1/dataset-groups/{group}/filters``) and path parameters of a request.

    After routing they are the router's; for a request answered before routing, those of the first route in the
    app's ``state.routes`` (set by :func:`remember_routes`) whose path the request's path matches, whatever its
    method. ``(None, {})`` when no route matches.
    """
    route: Any = scope.get("route")
    if route is not None:
        return getattr(route, "path", None), dict(scope.get("path_params") or {})
    state = getattr(scope.get("app"), "state", None)
    partial: tuple[str | None, dict[str, Any]] | None = None
    for candidate in getattr(state, "routes", ()):
        match, child = candidate.matches(scope)
        if match is Match.FULL:
            return getattr(candidate, "path", None), dict(child.get("path_params") or {})
        if match is Match.PARTIAL and partial is None:
            partial = getattr(candidate, "path", None), dict(child.get("path_params") or {})
    return partial or (None, {})


def remember_routes(app: Any, routes: Sequence[BaseRoute]) -> None:
    """Keep the routes of the app's routers in ``app.state.routes`` for :func:`route_of` (FastAPI's own
    ``app.routes`` wraps included routers in objects whose matching is not public)."""
    app.state.routes = list(routes)
