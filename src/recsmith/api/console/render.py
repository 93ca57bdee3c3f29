"""Rendering the console's pages: the Jinja2 templates, the navigation, security headers and HTML errors.

Templates are autoescaped; pages get their data from the services the API routes use (never SQL in a template).
Scripts come only from the package's ``static`` folder (htmx, Chart.js, ``console.js``): the Content Security
Policy allows no inline script and nothing from another origin.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, NamedTuple

from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Headers of every console page and fragment."""


class NavItem(NamedTuple):
    """One entry of a dataset group's navigation: its key (pages name it as ``active``), label and path under
    ``/console/g/{group}``."""

    key: str
    label: str
    path: str


GROUP_NAV: tuple[NavItem, ...] = (
    NavItem("overview", "Overview", ""),
    NavItem("data", "Data", "/data"),
    NavItem("users", "Users & items", "/users"),
    NavItem("solutions", "Solutions", "/solutions"),
    NavItem("campaigns", "Campaigns", "/campaigns"),
    NavItem("filters", "Filters", "/filters"),
    NavItem("try", "Try it", "/try"),
    NavItem("batch", "Batch jobs", "/batch-jobs"),
    NavItem("retraining", "Retraining", "/retraining"),
)
"""A dataset group's pages, in the navigation's order; a feature's page joins it here when the feature lands."""


def _when(value: Any) -> str:
    """A timestamp (datetime, ISO text or epoch seconds) as ``2026-12-02 05:30:00 UTC``; empty for None."""
    if value is None or value == "":
        return ""
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return ""
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: Any, digits: int = 4) -> str:
    """A count with thousands separators, a float with ``digits`` significant digits; empty for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"
    return str(value)


def _seconds(value: Any) -> str:
    """A duration: ``850 ms``, ``12.3 s``, ``4 min 05 s``."""
    if value is None:
        return ""
    seconds = float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def _to_json(value: Any, indent: int | None = None) -> str:
    """JSON text (for a ``data-`` attribute or a ``<pre>``; the template escapes it)."""
    return json.dumps(value, indent=indent, default=str, sort_keys=indent is not None)


environment = Environment(loader=PackageLoader("recsmith.api.console", "templates"),
                          autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=True,
                          lstrip_blocks=True)
environment.filters.update(when=_when, number=_number, seconds=_seconds, to_json=_to_json)
environment.globals.update(group_nav=GROUP_NAV)


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it then wants a fragment, not a whole page)."""
    return request.headers.get("hx-request") == "true"


def page(request: Request, template: str, *, status: int = 200, headers: dict[str, str] | None = None,
         **context: Any) -> HTMLResponse:
    """Render ``template`` with ``context``, the signed-in user (``user``) and the request.

    Pages extend ``base.html``, which draws the navigation for ``group`` (when given) with ``active`` marked.
    Fragments (templates under ``fragments/``) render alone.
    """
    user = (request.scope.get("state") or {}).get("console_user")
    html = environment.get_template(template).render(request=request, user=user, **context)
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def error_page(request: Request, status: int, message: str, *, field: str | None = None,
               headers: dict[str, str] | None = None) -> HTMLResponse:
    """An error as the console shows it: a whole page, or for htmx a fragment its target shows (``role=alert``)."""
    template = "fragments/error.html" if is_htmx(request) else "error.html"
    return page(request, template, status=status, headers=headers, status_code=status, message=message,
                field=field)
