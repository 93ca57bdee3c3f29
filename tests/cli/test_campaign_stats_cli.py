"""``recsmith campaign stats``: click-through over time from the served-items ledger and the events that carry a
recommendation_id, counted as /metrics counts it."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recsmith.api.app import create_app
from recsmith.settings import Settings
from recsmith.store.store import Store

LEDGERS = ["database", pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.skipif(
    not os.environ.get("RECSMITH_TEST_REDIS_URL"), reason="RECSMITH_TEST_REDIS_URL unset")])]


@pytest.fixture(params=LEDGERS)
def served(request: pytest.FixtureRequest, cli, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Campaign 'home' of group 'shop' served three times over HTTP and acted on: returns (cli, responses, /metrics
    click-through rate); with the 'redis' param the ledger lives in Redis."""
    redis = {}
    if request.param == "redis":
        redis = {"redis_url": os.environ["RECSMITH_TEST_REDIS_URL"], "redis_prefix": f"t-{uuid.uuid4().hex[:10]}"}
        monkeypatch.setenv("RECSMITH_REDIS_URL", redis["redis_url"])
        monkeypatch.setenv("RECSMITH_REDIS_PREFIX", redis["redis_prefix"])
    assert cli("datasets", "synthetic", "-g", "shop", "--users", 100, "--items", 60, "--interactions", 2000,
               "--seed", 2).exit_code == 0
    trained = cli("train", "-g", "shop", "--recipe", "item-knn", "--no-metrics", "--json")
    assert trained.exit_code == 0, trained.output
    version = json.loads(trained.stdout)["id"]
    for name in ("home", "other"):
        assert cli("campaign", "create", name, "-g", "shop", "--solution-version", version).exit_code == 0
    store = Store(db_url)
    key = store.create_api_key("admin", "shop")["key"]
    auth = {"Authorization": f"Bearer {key}"}
    settings = Settings(home=tmp_path / "home", database_url=db_url, **redis)
    with TestClient(create_app(settings, store=store)) as client:
        for _ in range(50):  # the campaigns load in the background
            if client.get("/ready").status_code == 200:
                break
            time.sleep(0.1)

        def recommend(campaign: str, user: str) -> dict:
            response = client.post(f"/v1/dataset-groups/shop/campaigns/{campaign}/recommendations",
                                   json={"user_id": user, "num_results": 5}, headers=auth)
            assert response.status_code == 200, response.text
            return response.json()

        responses = [recommend("home", user) for user in ("1", "2", "3")]
        elsewhere = recommend("other", "4")
        now = datetime.now(UTC).isoformat()
        first, second = responses[0], responses[1]
        shown = [item["item_id"] for item in first["items"]]
        events = [  # a click with its impression; a click without; an event on an item the response did not hold
            ("1", first["recommendation_id"], shown[0], shown),
            ("2", second["recommendation_id"], second["items"][2]["item_id"], []),
            ("1", first["recommendation_id"], "not-recommended", []),
            ("4", elsewhere["recommendation_id"], elsewhere["items"][0]["item_id"], []),  # another campaign's
        ]
        for user, recommendation_id, item, impression in events:
            posted = client.post("/v1/dataset-groups/shop/events", headers=auth, json={
                "user_id": user, "session_id": f"s{user}", "events": [{
                    "event_type": "click", "item_id": item, "sent_at": now, "recommendation_id": recommendation_id,
                    "impression": impression, "event_id": uuid.uuid4().hex}]})
            assert posted.status_code == 200, posted.text
        metrics = client.get("/metrics").text
    store.close()  # the server stopped: its ledger is written
    rate = re.search(r'recsmith_click_through_rate\{dataset_group="shop",campaign="home"\} (\S+)', metrics)
    assert rate is not None, metrics
    return cli, responses, float(rate.group(1))


def test_campaign_stats_counts_served_items_impressions_and_clicks(served) -> None:
    cli, responses, metrics_rate = served
    result = cli("campaign", "stats", "home", "-g", "shop", "--since", "2h", "--every", "30m", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["every_seconds"] == 1800
    intervals = stats["intervals"]
    assert len(intervals) in (4, 5)  # 2 h in half hours, aligned on whole half hours
    assert all(row["start"].endswith((":00:00+00:00", ":30:00+00:00")) for row in intervals)
    total = stats["total"]
    assert (total["responses"], total["served_items"], total["impressions"], total["clicks"]) == (3, 15, 5, 2)
    assert total["click_through_rate"] == pytest.approx(2 / 5)  # clicks per impression
    assert total["click_through_rate"] == pytest.approx(metrics_rate)  # /metrics' definition
    recent = intervals[-2:]  # all of it just now (the last interval, or the one before if one just began)
    assert sum(row["responses"] for row in recent) == 3 and sum(row["clicks"] for row in recent) == 2
    assert sum(row["served_items"] for row in intervals[:-2]) == 0

    other = json.loads(cli("campaign", "stats", "other", "-g", "shop", "--json").stdout)["total"]
    assert (other["responses"], other["served_items"], other["impressions"], other["clicks"]) == (1, 5, 0, 1)
    assert other["click_through_rate"] == pytest.approx(1 / 5)  # no impressions reported: per served item

    table = cli("campaign", "stats", "home", "-g", "shop", "--since", "1h")
    assert table.exit_code == 0, table.output
    assert "40.00%" in table.stdout and "total" in table.stdout and "impressions" in table.stdout


def test_campaign_stats_refuses_what_it_cannot_count(cli) -> None:
    made = cli("datasets", "synthetic", "-g", "shop", "--users", 20, "--items", 10, "--interactions", 100)
    assert made.exit_code == 0, made.output
    unknown = cli("campaign", "stats", "nope", "-g", "shop")
    assert unknown.exit_code == 1 and "no campaign 'nope'" in unknown.stderr
    version = json.loads(cli("train", "-g", "shop", "--recipe", "popularity", "--no-metrics", "--json").stdout)["id"]
    assert cli("campaign", "create", "home", "-g", "shop", "--solution-version", version).exit_code == 0
    for args, message in ((["--every", "soon"], "invalid period 'soon'"), (["--since", "yesterday"], "invalid time"),
                          (["--since", "24h", "--every", "1s"], "too many")):
        result = cli("campaign", "stats", "home", "-g", "shop", *args)
        assert result.exit_code == 1 and message in result.stderr, result.output
    empty = cli("campaign", "stats", "home", "-g", "shop", "--since", "24h", "--json")
    assert json.loads(empty.stdout)["total"]["responses"] == 0 and "keeps" not in empty.stderr
    assert json.loads(empty.stdout)["total"]["click_through_rate"] is None
    older = cli("campaign", "stats", "home", "-g", "shop", "--since", "3d", "--every", "1d")
    assert older.exit_code == 0 and "ledger keeps 24 h" in older.stderr
