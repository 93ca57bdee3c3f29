"""Campaigns: the version each serves, switching it (admins), and its traffic, latency and click-through over time.

Every change goes through the functions the ``/v1`` campaign routes call (:func:`deploy_campaign`,
:func:`switch_campaign`, :func:`remove_campaign`), every view through :func:`campaign_view`, and every change (or
refused attempt) is audited under the action names the API's audit middleware gives the same route
(``campaign.create``, ``campaign.update``, ``campaign.delete``).

Traffic comes from the server's Prometheus metrics (every worker's, merged as ``/metrics`` merges them):
:func:`campaign_traffic` gives a campaign's cumulative request count and latency histogram, and the page's
``campaigns.js`` keeps the last samples and draws requests per second and latency quantiles from their deltas.
Click-through comes from the served-items ledger through :func:`recsmith.serving.ledger.engagement_report`, as
``recsmith campaign stats`` counts it.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Form, HTTPException, Request
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import JSONResponse, RedirectResponse, Response

from recsmith.api.audit import action_of, resource_of
from recsmith.api.console.audit import audit_action
from recsmith.api.console.render import SECURITY_HEADERS, is_htmx, page
from recsmith.api.console.session import ConsoleUser, User
from recsmith.api.metrics import BUCKETS, Metrics
from recsmith.api.routes import campaigns as campaign_routes
from recsmith.api.routes import recommendations
from recsmith.api.routes.campaigns import campaign_view, deploy_campaign, remove_campaign, switch_campaign
from recsmith.api.schemas import CampaignPath, GroupPath, Name, RowId
from recsmith.jobs.schedule import parse_period
from recsmith.serving.ledger import EngagementReport, engagement_report, format_clock, format_rate

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)

SERVING_ROUTES = frozenset(route.path for route in recommendations.router.routes)
"""The route templates whose requests are a campaign's traffic: recommendations (GET and POST) and personalized
ranking."""
CAMPAIGNS_ROUTE = campaign_routes.router.prefix
CAMPAIGN_ROUTE = f"{CAMPAIGNS_ROUTE}/{{campaign}}"
"""The API's routes whose audit action names the console's changes take."""
SETTLED = frozenset({"ACTIVE", "CREATE_FAILED"})
"""Statuses the campaign page stops polling at."""
TRAFFIC_SECONDS = 2
TRAFFIC_SAMPLES = 60
"""The campaign page samples the metrics every ``TRAFFIC_SECONDS`` and draws the last ``TRAFFIC_SAMPLES``."""


class Window(NamedTuple):
    """An engagement view: from ``since`` ago, one interval per ``every`` (``recsmith campaign stats``' options)."""

    key: str
    since: str
    every: str
    label: str


WINDOWS: dict[str, Window] = {w.key: w for w in (Window("1h", "1h", "1m", "Last hour, by minute"),
                                                 Window("24h", "24h", "1h", "Last 24 hours, by hour"))}
"""The engagement windows the campaign page offers."""
DEFAULT_WINDOW = "1h"


# ------------------------------------------------------------------------------------------------ data
def campaign_traffic(metrics: Metrics, group: str, campaign: str) -> dict[str, Any]:
    """A campaign's cumulative traffic so far, from the server's metrics (every worker's, as ``/metrics`` shows).

    Parameters
    ----------
    metrics : Metrics
        The app's metrics (``request.app.state.metrics``).
    group, campaign : str
        The campaign.

    Returns
    -------
    dict
        ``at`` (epoch seconds), ``requests`` (requests answered on the recommendation and ranking routes, every
        status), ``latency_count`` and ``latency_sum`` (seconds), and ``buckets``: the cumulative latency
        histogram as ``{"le": upper bound in seconds or "+Inf", "count": n}``, by bound.
    """
    requests = count = total = 0.0
    buckets = {bound: 0.0 for bound in (*BUCKETS, math.inf)}
    for family in text_string_to_metric_families(metrics.render().decode()):
        if family.name not in ("recsmith_requests", "recsmith_request_duration_seconds"):
            continue
        for sample in family.samples:
            labels = sample.labels
            if (labels.get("dataset_group") != group or labels.get("campaign") != campaign
                    or labels.get("route") not in SERVING_ROUTES):
                continue
            if sample.name == "recsmith_requests_total":
                requests += sample.value
            elif sample.name.endswith("_bucket"):
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    return {"at": time.time(), "requests": requests, "latency_count": count, "latency_sum": total,
            "buckets": [{"le": "+Inf" if math.isinf(bound) else bound, "count": n}
                        for bound, n in sorted(buckets.items())]}


def _window(key: str) -> Window:
    if key not in WINDOWS:
        raise HTTPException(400, f"window: unknown window {key!r}; choose one of {', '.join(WINDOWS)}")
    return WINDOWS[key]


def campaign_engagement_view(request: Request, group: str, campaign: str, window: Window) -> dict[str, Any]:
    """The campaign's engagement over ``window`` (:func:`engagement_report`), with its chart's config.

    Returns
    -------
    dict
        ``report`` (the :class:`EngagementReport`), ``window``, ``chart`` (a Chart.js config) and the ``command``
        that prints the same table.
    """
    store = request.app.state.store
    now = time.time()
    report = engagement_report(store, request.app.state.runtime.ledger, store.get_dataset_group(group).id,
                               campaign, start=now - parse_period(window.since), end=now,
                               every=parse_period(window.every))
    return {"report": report, "window": window, "chart": _engagement_chart(report),
            "command": f"recsmith campaign stats {campaign} --dataset-group {group} --since {window.since} "
                       f"--every {window.every}"}


def _engagement_chart(report: EngagementReport) -> dict[str, Any]:
    """A line chart: click-through rate (%) on the left axis, the counts per interval on the right."""
    labels = [format_clock(row.start)[5:] if report.every >= 3600 else format_clock(row.start)[11:]
              for row in report.rows]
    rates = [None if row.click_through_rate is None else round(row.click_through_rate * 100, 3) for row in report.rows]

    def counts(label: str, key: str, color: str, hidden: bool = False) -> dict[str, Any]:
        return {"label": label, "data": [getattr(row, key) for row in report.rows], "yAxisID": "count",
                "borderColor": color, "backgroundColor": color, "pointRadius": 0, "borderWidth": 1.5,
                "hidden": hidden}

    return {"type": "line", "data": {"labels": labels, "datasets": [
        {"label": "Click-through rate (%)", "data": rates, "yAxisID": "rate", "borderColor": "#0b5cad",
         "backgroundColor": "#0b5cad", "spanGaps": True, "borderWidth": 2.5, "pointRadius": 2},
        counts("Responses", "responses", "#8a5a00"),
        counts("Clicks", "clicks", "#1d7a3a"),
        counts("Impressions", "impressions", "#7a3a8a", hidden=True),
        counts("Served items", "served_items", "#5b6570", hidden=True),
    ]}, "options": {"interaction": {"mode": "index", "intersect": False}, "scales": {
        "x": {"ticks": {"maxTicksLimit": 8, "maxRotation": 0}},
        "rate": {"type": "linear", "position": "left", "beginAtZero": True,
                 "title": {"display": True, "text": "CTR (%)"}},
        "count": {"type": "linear", "position": "right", "beginAtZero": True, "grid": {"drawOnChartArea": False},
                  "title": {"display": True, "text": "per interval"}, "ticks": {"precision": 0}},
    }}}


def _active_versions(request: Request, group: str) -> list[dict[str, Any]]:
    """The group's ACTIVE solution versions, newest first (what a campaign may serve)."""
    store = request.app.state.store
    versions = store.list_solution_versions(store.get_dataset_group(group).id)
    return [v for v in reversed(versions) if v["status"] == "ACTIVE"]


# ---------------------------------------------------------------------------------------------- audits
def _audit(request: Request, user: ConsoleUser, method: str, group: str, campaign: str, *, outcome: str = "ok",
           status: int | None = None, detail: dict[str, Any] | None = None) -> None:
    """An audit entry named as the API's middleware names ``method`` on the campaign's route."""
    template = CAMPAIGNS_ROUTE if method == "POST" else CAMPAIGN_ROUTE
    resource = resource_of(template, {"group": group, "campaign": campaign})
    if method == "POST":
        resource = f"{resource}/{campaign}"
    audit_action(request, user.principal.key_id, str(action_of(method, template)), resource, outcome=outcome,
                 status=status, detail=detail)


def _require_admin(request: Request, user: ConsoleUser, method: str, group: str, campaign: str) -> None:
    """403 (audited as a refused attempt) unless the key is an admin of the group."""
    if not user.may("admin", group):
        _audit(request, user, method, group, campaign, outcome="denied", status=403)
    user.require("admin", group)


def _go(request: Request, location: str) -> Response:
    """After a change: htmx follows ``HX-Redirect`` with a page load, a plain form the 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={**SECURITY_HEADERS, "HX-Redirect": location})
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


def _path(group: str, campaign: str | None = None) -> str:
    base = f"/console/g/{group}/campaigns"
    return base if campaign is None else f"{base}/{campaign}"


# ----------------------------------------------------------------------------------------------- pages
@router.get("/campaigns")
def list_campaigns(request: Request, user: User, group: GroupPath) -> Response:
    """Every campaign of the group: the version it is set to, the one served now, status, recipe and config; for
    admins, the form that deploys a new one. htmx gets the table alone (polled while one is loading)."""
    user.require("read", group)
    store, runtime = request.app.state.store, request.app.state.runtime
    views = [campaign_view(record, runtime) for record in store.list_campaigns(group)]
    context = {"group": group, "campaigns": views, "settled": SETTLED}
    if is_htmx(request):
        return page(request, "campaigns/table.html", **context)
    versions = _active_versions(request, group) if user.may("admin", group) else []
    return page(request, "campaigns/list.html", title="Campaigns", active="campaigns", versions=versions, **context)


@router.post("/campaigns")
def create_campaign(request: Request, user: User, group: GroupPath, name: Annotated[Name, Form()],
                    solution_version_id: Annotated[RowId, Form()]) -> Response:
    """Deploy a solution version as a new campaign (admins), then show its page."""
    _require_admin(request, user, "POST", group, name)
    view = deploy_campaign(request.app.state.store, request.app.state.runtime, group, name, solution_version_id)
    _audit(request, user, "POST", group, name, status=201, detail={"solution_version_id": solution_version_id})
    logger.info("console: campaign %r of %r deployed on version %s", name, group, view["solution_version_id"])
    return _go(request, _path(group, name))


@router.get("/campaigns/{name}")
def campaign_page(request: Request, user: User, group: GroupPath, name: CampaignPath,
                  window: str = DEFAULT_WINDOW) -> Response:
    """One campaign: its status (polled until ACTIVE), the switch and delete forms (admins), traffic and latency
    from the metrics, and click-through over ``window`` from the ledger."""
    user.require("read", group)
    chosen = _window(window)
    record = request.app.state.store.get_campaign(group, name)
    view = campaign_view(record, request.app.state.runtime)
    versions = _active_versions(request, group) if user.may("admin", group) else []
    return page(request, "campaigns/detail.html", title=f"Campaign {name}", active="campaigns", group=group,
                campaign=view, versions=versions, arns=request.app.state.arns.of_campaign(record), settled=SETTLED,
                windows=WINDOWS.values(),
                engagement=campaign_engagement_view(request, group, name, chosen), rate=format_rate,
                clock=format_clock, traffic_seconds=TRAFFIC_SECONDS, traffic_samples=TRAFFIC_SAMPLES)


@router.get("/campaigns/{name}/status")
def campaign_status(request: Request, user: User, group: GroupPath, name: CampaignPath) -> Response:
    """The campaign's status block (htmx polls it every second until the status settles)."""
    user.require("read", group)
    view = campaign_view(request.app.state.store.get_campaign(group, name), request.app.state.runtime)
    return page(request, "campaigns/status.html", group=group, campaign=view, settled=SETTLED)


@router.post("/campaigns/{name}/switch")
def switch(request: Request, user: User, group: GroupPath, name: CampaignPath,
           solution_version_id: Annotated[RowId, Form()]) -> Response:
    """Switch the campaign to another ACTIVE version of the group (admins), as ``PUT .../campaigns/{campaign}``
    does; htmx gets the status block (UPDATE_IN_PROGRESS until this worker has loaded the new version)."""
    _require_admin(request, user, "PUT", group, name)
    store = request.app.state.store
    before = store.get_campaign(group, name)["solution_version_id"]
    view = switch_campaign(store, request.app.state.runtime, group, name, solution_version_id=solution_version_id)
    _audit(request, user, "PUT", group, name, status=200,
           detail={"solution_version_id": solution_version_id, "previous_solution_version_id": before})
    logger.info("console: campaign %r of %r switched from version %s to %s", name, group, before,
                solution_version_id)
    if not is_htmx(request):
        return RedirectResponse(_path(group, name), status_code=303, headers=SECURITY_HEADERS)
    return page(request, "campaigns/status.html", group=group, campaign=view, settled=SETTLED,
                switched_from=before)


@router.post("/campaigns/{name}/delete")
def delete(request: Request, user: User, group: GroupPath, name: CampaignPath) -> Response:
    """Stop serving and delete the campaign (admins; its solution version stays), then show the list."""
    _require_admin(request, user, "DELETE", group, name)
    store = request.app.state.store
    version = store.get_campaign(group, name)["solution_version_id"]
    remove_campaign(store, request.app.state.runtime, group, name)
    _audit(request, user, "DELETE", group, name, status=204, detail={"solution_version_id": version})
    logger.info("console: campaign %r of %r deleted", name, group)
    return _go(request, _path(group))


@router.get("/campaigns/{name}/traffic.json")
def traffic(request: Request, user: User, group: GroupPath, name: CampaignPath) -> Response:
    """The campaign's cumulative request count and latency histogram now (:func:`campaign_traffic`)."""
    user.require("read", group)
    request.app.state.store.get_campaign(group, name)  # NotFoundError naming the group's campaigns
    return JSONResponse(campaign_traffic(request.app.state.metrics, group, name), headers=SECURITY_HEADERS)


@router.get("/campaigns/{name}/engagement")
def engagement(request: Request, user: User, group: GroupPath, name: CampaignPath,
               window: str = DEFAULT_WINDOW) -> Response:
    """The click-through chart and table over ``window`` (htmx swaps it in when the window changes)."""
    user.require("read", group)
    chosen = _window(window)
    request.app.state.store.get_campaign(group, name)
    return page(request, "campaigns/engagement.html", group=group, campaign={"name": name},
                engagement=campaign_engagement_view(request, group, name, chosen), rate=format_rate,
                clock=format_clock, windows=WINDOWS.values())
