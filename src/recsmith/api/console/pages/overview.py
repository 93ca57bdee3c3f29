"""A dataset group's overview: counts, event types, events per day and the live events of the last hour.

- **Counts** are the API's (:func:`recsmith.api.routes.dataset_groups.group_view`: the listing of
  ``GET /v1/dataset-groups``).
- **Events per day** counts the interactions by the UTC day of their TIMESTAMP. A group's data can span decades
  (ml-latest-small: 1995 to 2016), so the chart shows a range of days chosen on the page, ending on the newest
  day with data: the last 30, 90 (the default) or 365 days, or all of them; every day of the range is a bar,
  days without interactions included (at 0), so the x axis is true time. It is loaded after the page (htmx), so
  the page itself never waits for the count.
- **Live events** are those sent to the event tracker (``POST /v1/dataset-groups/{group}/events``): a chart of the
  last 60 minutes per minute (by the events' ``sentAt``), redrawn every :data:`LIVE_REFRESH_SECONDS` from
  ``…/live-events.json``, and the newest :data:`RECENT_EVENTS` events (by arrival), refreshed as often.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from recsmith.api.console.render import SECURITY_HEADERS, page
from recsmith.api.console.session import ConsoleUser, User
from recsmith.api.routes.dataset_groups import group_view
from recsmith.api.schemas import GroupPath
from recsmith.store.activity_records import DAY_SECONDS, MINUTE_SECONDS

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)

RANGES: dict[str, int | None] = {"30": 30, "90": 90, "365": 365, "all": None}
"""The ranges of the events-per-day chart: the last N days of data (ending on the newest day with data), or all."""
RANGE_LABELS = {"30": "Last 30 days of data", "90": "Last 90 days of data", "365": "Last 365 days of data",
                "all": "All days"}
DEFAULT_RANGE = "90"
LIVE_MINUTES = 60
"""The live chart's window: this many minutes, ending with the current one."""
LIVE_REFRESH_SECONDS = 5
"""How often the live chart and the newest events are refreshed."""
RECENT_EVENTS = 10
"""How many of the newest live events the page lists."""
ACCENT = "#0b5cad"

RangeQuery = Annotated[Literal["30", "90", "365", "all"], Query(alias="range", description="The chart's days.")]


def _day(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def daily_series(days: list[tuple[int, int]], range_key: str) -> dict[str, Any]:
    """The events-per-day chart of ``days`` (``(day start, count)`` for each day with data, oldest first, as
    :meth:`~recsmith.store.store.Store.interactions_per_day` gives them) over the range ``range_key``: every day
    of the range, days without data at 0.

    Returns
    -------
    dict
        ``labels`` (``YYYY-MM-DD``), ``counts``, ``total`` (interactions in the range), ``active`` (days of the
        range with data), and ``first`` / ``last`` (the data's first and newest day, None without data).
    """
    if not days:
        return {"labels": [], "counts": [], "total": 0, "active": 0, "first": None, "last": None}
    first, last = days[0][0], days[-1][0]
    wanted = RANGES[range_key]
    start = first if wanted is None else max(first, last - (wanted - 1) * DAY_SECONDS)
    counts = dict(days)
    stamps = range(start, last + DAY_SECONDS, DAY_SECONDS)
    series = [counts.get(stamp, 0) for stamp in stamps]
    return {"labels": [_day(stamp) for stamp in stamps], "counts": series, "total": sum(series),
            "active": sum(1 for n in series if n), "first": _day(first), "last": _day(last)}


def daily_chart(series: dict[str, Any]) -> dict[str, Any]:
    """The Chart.js config of the events-per-day chart (:func:`daily_series`)."""
    return {
        "type": "bar",
        "data": {"labels": series["labels"], "datasets": [{
            "label": "Interactions per day", "data": series["counts"], "backgroundColor": ACCENT,
            "borderWidth": 0, "barPercentage": 1.0, "categoryPercentage": 1.0, "minBarLength": 0}]},
        "options": {"plugins": {"legend": {"display": False}},
                    "interaction": {"mode": "index", "intersect": False},
                    "scales": {"x": {"ticks": {"maxRotation": 0, "autoSkipPadding": 24}, "grid": {"display": False}},
                               "y": {"beginAtZero": True, "ticks": {"precision": 0}}}},
    }


def live_series(per_minute: list[tuple[int, int]], first_minute: int) -> dict[str, Any]:
    """The live chart's data, ``{"labels", "datasets"}`` (what ``data-chart-src`` answers): the events of each of
    the :data:`LIVE_MINUTES` minutes from ``first_minute`` (epoch seconds), labelled ``HH:MM`` (UTC)."""
    counts = dict(per_minute)
    stamps = [first_minute + k * MINUTE_SECONDS for k in range(LIVE_MINUTES)]
    return {"labels": [datetime.fromtimestamp(stamp, UTC).strftime("%H:%M") for stamp in stamps],
            "datasets": [{"label": "Live events per minute", "data": [counts.get(stamp, 0) for stamp in stamps]}]}


def live_chart(series: dict[str, Any]) -> dict[str, Any]:
    """The Chart.js config of the live chart (:func:`live_series`)."""
    dataset = series["datasets"][0] | {"backgroundColor": ACCENT, "borderWidth": 0}
    return {"type": "bar", "data": {"labels": series["labels"], "datasets": [dataset]},
            "options": {"plugins": {"legend": {"display": False}},
                        "interaction": {"mode": "index", "intersect": False},
                        "scales": {"x": {"ticks": {"maxRotation": 0, "autoSkipPadding": 16},
                                         "grid": {"display": False}},
                                   "y": {"beginAtZero": True, "ticks": {"precision": 0}}}}}


def _group_id(request: Request, user: ConsoleUser, group: str) -> int:
    """The group's id, once the key may read it (403 first: a key of another group learns nothing of it)."""
    user.require("read", group)
    return request.app.state.store.get_dataset_group(group).id


def _live(request: Request, group_id: int, now: float | None = None) -> dict[str, Any]:
    """The live events of the last :data:`LIVE_MINUTES` minutes, per minute (:func:`live_series`)."""
    current = int((time.time() if now is None else now) // MINUTE_SECONDS) * MINUTE_SECONDS
    first = current - (LIVE_MINUTES - 1) * MINUTE_SECONDS
    per_minute = request.app.state.store.live_events_per_minute(group_id, first, current + MINUTE_SECONDS)
    return live_series(per_minute, first)


def _recent(request: Request, group_id: int) -> dict[str, Any]:
    """The newest live events, and how often their table refreshes."""
    return {"events": request.app.state.store.recent_live_events(group_id, RECENT_EVENTS),
            "every": LIVE_REFRESH_SECONDS}


@router.get("")
def overview(request: Request, user: User, group: GroupPath, range_key: RangeQuery = DEFAULT_RANGE) -> Response:
    """The group's overview: counts, event types, the events-per-day chart (loaded after the page) and the live
    events of the last hour."""
    group_id = _group_id(request, user, group)
    store = request.app.state.store
    counts = group_view(store, group)
    types = store.event_type_counts(group_id)
    return page(request, "overview/overview.html", title=f"Overview of {group}", group=group, active="overview",
                counts=counts, event_types=types, range_key=range_key, ranges=RANGE_LABELS,
                live_chart=live_chart(_live(request, group_id)),
                live_every=LIVE_REFRESH_SECONDS, live_minutes=LIVE_MINUTES, **_recent(request, group_id))


@router.get("/events-per-day")
def events_per_day(request: Request, user: User, group: GroupPath, range_key: RangeQuery = DEFAULT_RANGE) -> Response:
    """The events-per-day chart over a range (a fragment, swapped into the overview)."""
    group_id = _group_id(request, user, group)
    series = daily_series(request.app.state.store.interactions_per_day(group_id), range_key)
    return page(request, "overview/daily.html", group=group, series=series, chart=daily_chart(series),
                range_label=RANGE_LABELS[range_key])


@router.get("/live-events.json")
def live_events_json(request: Request, user: User, group: GroupPath) -> Response:
    """The live chart's data: ``{"labels": ["HH:MM", ...], "datasets": [{"label", "data"}]}``, the last
    :data:`LIVE_MINUTES` minutes (UTC)."""
    group_id = _group_id(request, user, group)
    return JSONResponse(_live(request, group_id), headers=SECURITY_HEADERS)


@router.get("/live-events")
def live_events(request: Request, user: User, group: GroupPath) -> Response:
    """The newest live events (a fragment, polled by the overview)."""
    group_id = _group_id(request, user, group)
    return page(request, "overview/live_table.html", group=group, **_recent(request, group_id))
