"""Prometheus metrics: request counts and latency histograms per route and campaign, model version info.

Several uvicorn workers share their metrics through ``prometheus_client``'s multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set (``recsmith serve`` sets it to a fresh folder), so ``/metrics`` on any
worker shows the whole server.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from recsmith.serving.ledger import click_through_rate

AUTHORISED = "recsmith.authorised"
"""The request-state flag the routes' role check sets: only such requests are labelled with their dataset group
and campaign names (made-up names in refused requests would add series without bound)."""
BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def is_authorised(scope: dict[str, Any]) -> bool:
    """Whether this request's key passed its route's role check."""
    return bool((scope.get("state") or {}).get(AUTHORISED))


class Metrics:
    """The server's metrics (one instance per app)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = None if self.multiprocess else CollectorRegistry()
        labels = ["route", "method", "status", "dataset_group", "campaign"]
        kwargs: dict[str, Any] = {"registry": self.registry}  # None (multiprocess): written to files only
        self.requests = Counter("recsmith_requests", "HTTP requests answered.", labels, **kwargs)
        self.latency = Histogram("recsmith_request_duration_seconds", "Time to answer an HTTP request.",
                                 ["route", "dataset_group", "campaign"], buckets=BUCKETS, **kwargs)
        gauge_mode = {"multiprocess_mode": "max"} if self.multiprocess else {}
        self.campaign_version = Gauge("recsmith_campaign_info", "1 for the solution version a campaign serves.",
                                      ["dataset_group", "campaign", "solution_version", "recipe"],
                                      **gauge_mode, **kwargs)
        self._versions: dict[tuple[str, str], tuple[str, str]] = {}
        campaign = ["dataset_group", "campaign"]
        self.items_served = Counter("recsmith_served_items", "Items returned in recommendation responses.",
                                    campaign, **kwargs)
        self.impressions = Counter("recsmith_impressions", "Items events reported shown (impression) with the "
                                   "recommendation_id of a response.", campaign, **kwargs)
        self.clicks = Counter("recsmith_clicks", "Events on an item of the response whose recommendation_id they "
                              "carry.", campaign, **kwargs)

    def observe(self, route: str, method: str, status: int, group: str, campaign: str, seconds: float) -> None:
        """Record one answered request."""
        self.requests.labels(route, method, str(status), group, campaign).inc()
        self.latency.labels(route, group, campaign).observe(seconds)

    def served(self, campaigns: list[dict[str, Any]]) -> None:
        """Record which version each campaign serves now (the previous one drops to 0)."""
        for record in campaigns:
            if "solution_version_id" not in record:
                continue
            key = (record["dataset_group"], record["campaign"])
            now = (str(record["solution_version_id"]), str(record["recipe"]))
            before = self._versions.get(key)
            if before == now:
                continue
            if before is not None:
                self.campaign_version.labels(*key, *before).set(0)
            self.campaign_version.labels(*key, *now).set(1)
            self._versions[key] = now

    def render(self) -> bytes:
        """The exposition text of every worker's metrics, with the click-through rate of each campaign."""
        registry = self.registry
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry) + _click_through(registry)


def _click_through(registry: CollectorRegistry) -> bytes:
    """``recsmith_click_through_rate``: clicks over impressions per campaign, or over served items where events
    report no impressions."""
    totals: dict[str, dict[tuple[str, str], float]] = {"impressions": {}, "clicks": {}, "served_items": {}}
    for family in registry.collect():
        kind = family.name.removeprefix("recsmith_")
        if kind not in totals:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = (sample.labels["dataset_group"], sample.labels["campaign"])
                totals[kind][key] = totals[kind].get(key, 0.0) + sample.value
    lines = ["# HELP recsmith_click_through_rate Clicks per impression (per served item where no impressions are "
             "reported) of each campaign.", "# TYPE recsmith_click_through_rate gauge"]
    for key in sorted(set(totals["served_items"]) | set(totals["impressions"])):
        rate = click_through_rate(totals["clicks"].get(key, 0.0), totals["impressions"].get(key, 0.0),
                                  totals["served_items"].get(key, 0.0))
        if rate is not None:
            lines.append(f'recsmith_click_through_rate{{dataset_group="{key[0]}",campaign="{key[1]}"}} {rate:.6g}')
    return ("\n".join(lines) + "\n").encode() if len(lines) > 2 else b""
