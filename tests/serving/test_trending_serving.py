"""Trending's reasons through the one serving pipeline: ``recsmith recommend`` and HTTP show the same list with
the same labels, ``trending`` for the riser and ``popular`` for the fallback, for known users and strangers, and
personalized ranking orders a stranger's list by the trend too."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from recsmith.api.app import create_app
from recsmith.settings import Settings
from recsmith.store.store import Store

HOUR = 3600
NOW = 1_700_000_000


def write_log(path: Path) -> None:
    """A day's window: 'riser' went from 1 user to 15 (users r0..r15), 'big' is popular and flat (30 -> 30),
    'mid' and 'old' have no growth signal."""
    rows = ["USER_ID,ITEM_ID,TIMESTAMP"]
    rows += [f"r{n},riser,{NOW - (30 if n == 0 else 2) * HOUR}" for n in range(16)]
    rows += [f"b{n},big,{NOW - 30 * HOUR}" for n in range(30)] + [f"c{n},big,{NOW - 2 * HOUR}" for n in range(30)]
    rows += [f"m{n},mid,{NOW - 2 * HOUR}" for n in range(8)] + [f"o{n},old,{NOW - 100 * HOUR}" for n in range(25)]
    path.write_text("\n".join(rows) + "\n")


def test_cli_and_http_label_trending_and_popular_items_alike(cli, db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    write_log(source)
    assert cli("import", "interactions", source, "-g", "shop").exit_code == 0
    trained = cli("train", "-g", "shop", "--recipe", "trending", "--param", "window_hours=24", "--no-metrics",
                  "--json")
    assert trained.exit_code == 0, trained.output
    version = json.loads(trained.stdout)["id"]
    expected = [("riser", "trending"), ("big", "popular"), ("mid", "popular"), ("old", "popular")]

    def from_cli(user: str) -> list[tuple[str, str]]:
        result = cli("recommend", "--solution-version", version, "--user", user, "--num", 4, "--json")
        assert result.exit_code == 0, result.output
        return [(item["item_id"], item["reason"]) for item in json.loads(result.stdout)["items"]]

    assert from_cli("nobody-knows-me") == expected  # the same list for everyone, strangers included
    assert from_cli("m0") == [pair for pair in expected if pair[0] != "mid"]  # minus what the user has seen
    table = cli("recommend", "--solution-version", version, "--user", "m0", "--num", 4)
    assert "trending" in table.stdout and "personalized" not in table.stdout

    assert cli("campaign", "create", "-g", "shop", "--name", "hot", "--solution-version", version).exit_code == 0
    store = Store(db_url)
    key = store.create_api_key("read", "shop")["key"]
    with TestClient(create_app(Settings(home=tmp_path / "home", database_url=db_url), store=store)) as client:
        def from_http(user: str) -> list[tuple[str, str]]:
            response = client.get("/v1/dataset-groups/shop/campaigns/hot/recommendations",
                                  params={"user_id": user, "num_results": 4},
                                  headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text
            return [(item["item_id"], item["reason"]) for item in response.json()["items"]]

        assert from_http("nobody-knows-me") == from_cli("nobody-knows-me")
        assert from_http("m0") == from_cli("m0")
        ranked = client.post("/v1/dataset-groups/shop/campaigns/hot/personalized-ranking",
                             json={"user_id": "nobody-knows-me", "input_list": ["old", "big", "riser"]},
                             headers={"Authorization": f"Bearer {key}"})
        assert ranked.status_code == 200, ranked.text
        assert [(item["item_id"], item["reason"]) for item in ranked.json()["items"]] == [
            ("riser", "trending"), ("big", "popular"), ("old", "popular")]
    store.close()
