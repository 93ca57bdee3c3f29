"""Which route a request is for, also when a middleware answered it before the router ran (401, 413)."""

from __future__ import annotations

from typing import Any

from starlette.routing import Match
from starlette.types import Scope


def route_of(scope: Scope) -> tuple[str | None, dict[str, Any]]:
    """The route template (``/v1/dataset-groups/{group}/filters``) and path parameters of a request.

    After routing they are the router's; for a request answered before routing, the first route whose path the
    request's path matches (method or not). ``(None, {})`` when no route matches.
    """
    route: Any = scope.get("route")
    if route is not None:
        return getattr(route, "path", None), dict(scope.get("path_params") or {})
    partial: tuple[str | None, dict[str, Any]] | None = None
    for candidate in getattr(scope.get("app"), "routes", ()):
        match, child = candidate.matches(scope)
        if match is Match.FULL:
            return getattr(candidate, "path", None), dict(child.get("path_params") or {})
        if match is Match.PARTIAL and partial is None:
            partial = getattr(candidate, "path", None), dict(child.get("path_params") or {})
    return partial or (None, {})
