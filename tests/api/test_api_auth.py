"""API keys: each role allowed and refused where it should be; no key, no data."""

from __future__ import annotations

import httpx
import pytest

RECS = "/v1/dataset-groups/movies/campaigns/knn/recommendations"


def call(server, method, path, key=None, **kwargs):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, server.url + path, headers=headers, **kwargs)


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_health_ready_and_metrics_need_no_key(server, path):
    assert call(server, "GET", path).status_code == 200


@pytest.mark.parametrize(("method", "path"), [
    ("POST", RECS), ("GET", RECS + "?user_id=1"),
    ("POST", "/v1/dataset-groups/movies/campaigns/knn/personalized-ranking"),
    ("GET", "/v1/dataset-groups/movies/campaigns"), ("GET", "/v1/dataset-groups/movies/filters"),
    ("POST", "/v1/dataset-groups/movies/filters"), ("DELETE", "/v1/dataset-groups/movies/campaigns/knn"),
])
def test_everything_else_needs_a_valid_key(server, method, path):
    for headers in ({}, {"Authorization": "Bearer rsk_0000_nope"}, {"Authorization": "Basic abc"},
                    {"Authorization": f"Bearer {server.read_key}x"}):
        response = httpx.request(method, server.url + path, headers=headers, json={"user_id": "1"})
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


def test_read_key_reads_but_may_not_manage(server):
    assert call(server, "POST", RECS, server.read_key, json={"user_id": "1"}).status_code == 200
    assert call(server, "GET", "/v1/dataset-groups/movies/filters", server.read_key).status_code == 200
    assert call(server, "GET", "/v1/dataset-groups/movies/campaigns/knn", server.read_key).status_code == 200
    refused = call(server, "POST", "/v1/dataset-groups/movies/filters", server.read_key,
                   json={"name": "x", "expression": 'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")'})
    assert refused.status_code == 403 and "needs role admin" in refused.json()["error"]["message"]
    assert call(server, "DELETE", "/v1/dataset-groups/movies/campaigns/knn", server.read_key).status_code == 403


def test_write_key_reads_but_may_not_manage_campaigns(server):
    assert call(server, "POST", RECS, server.write_key, json={"user_id": "1"}).status_code == 200
    response = call(server, "PUT", "/v1/dataset-groups/movies/campaigns/knn", server.write_key,
                    json={"solution_version_id": server.versions["ease"]})
    assert response.status_code == 403


def test_a_group_key_is_refused_on_another_group(server):
    response = call(server, "POST", RECS, server.other_group_key, json={"user_id": "1"})
    assert response.status_code == 403 and "'other'" in response.json()["error"]["message"]
    assert call(server, "GET", "/v1/dataset-groups/other/filters", server.other_group_key).status_code == 200


def test_revoked_key_stops_working(server):
    record = server.store.create_api_key("read", "movies", "short-lived")
    assert call(server, "POST", RECS, record["key"], json={"user_id": "1"}).status_code == 200
    server.store.delete_api_key(record["key_id"])
    assert server.store.verify_api_key(record["key"]) is None  # workers' caches drop it within 10 s


def test_keys_are_stored_hashed(server):
    record = server.store.create_api_key("read", "movies")
    import sqlalchemy as sa

    with server.store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT * FROM api_keys WHERE key_id = :k"), {"k": record["key_id"]}).one()
    secret = record["key"].split("_", 2)[2]
    assert secret not in " ".join(str(v) for v in stored) and len(stored.secret_hash) == 64
