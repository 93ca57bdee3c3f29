"""The web console at ``/console``: server-rendered pages (Jinja2) with htmx for partial updates and Chart.js for
charts, both shipped in ``static/vendor`` with their licences (nothing is fetched at run time, there is no build
step).

The console is part of the API's app (same process, port, store, campaign runtime and key check); its pages read
the services the ``/v1`` routes use, and the routes' own views where the API shows the same thing. Signing in
turns an API key into a session cookie (:mod:`recsmith.api.console.session`).
"""

from __future__ import annotations

import re
from importlib.resources import files

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from recsmith.api.console.pages import (
    batch,
    campaigns,
    data,
    filters,
    home,
    keys,
    overview,
    people,
    retraining,
    solutions,
    try_it,
)

UPLOAD_PATHS = (re.compile(r"/console/g/[^/]+/data/upload"),)
"""The console's file-upload routes, whose bodies may be up to ``RECSMITH_CONSOLE_UPLOAD_BYTES``."""

ROUTERS = (home.router, keys.router, overview.router, data.router, people.router, solutions.router,
           campaigns.router, filters.router, try_it.router, batch.router, retraining.router)
"""Every console router, in the order they are matched."""


def mount(app: FastAPI) -> None:
    """Add the console's pages and static files to ``app``."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=str(files("recsmith.api.console") / "static")),
              name="console-static")
