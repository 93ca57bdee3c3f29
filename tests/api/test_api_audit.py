"""The audit log over HTTP: every change made through /v1 is an entry with the key id, the client address and the
outcome, refused attempts too (bounded); GET /v1/audit is for admin keys of every group; no route changes the log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from recsmith.api import audit as audit_middleware
from recsmith.api.app import create_app
from recsmith.datasets.synthetic import synthetic_frame
from recsmith.jobs.importing import import_dataset
from recsmith.jobs.training import train_solution_version
from recsmith.settings import Settings
from recsmith.store.store import Store

USERS = "/v1/dataset-groups/shop/users"


@dataclass
class Api:
    client: TestClient
    store: Store
    keys: dict[str, dict]
    version: int

    def as_(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]['key']}"}

    def entries(self, **query: object) -> list[dict]:
        response = self.client.get("/v1/audit", params=query, headers=self.as_("admin"))
        assert response.status_code == 200, response.text
        return response.json()["entries"]


def _api(tmp_path: Path, **settings: object) -> Iterator[Api]:
    config = Settings(home=tmp_path / "home", **settings)
    store = Store.from_settings(config)
    store.migrate()
    source = tmp_path / "events.csv"
    synthetic_frame(60, 40, 900, seed=3).to_csv(source, index=False)
    import_dataset(store, "shop", "interactions", str(source))
    version = train_solution_version(store, config, "shop", "popularity", with_metrics=False)["id"]
    store.create_dataset_group("other")
    keys = {role: store.create_api_key(role, "shop") for role in ("read", "write")}
    keys["admin"] = store.create_api_key("admin", None, "ops")
    keys["group-admin"] = store.create_api_key("admin", "shop")
    with TestClient(create_app(config, store=store)) as client:
        yield Api(client, store, keys, version)
    store.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from _api(tmp_path)


def test_changes_are_audited_with_key_source_and_outcome(api: Api) -> None:
    admin, key_id = api.as_("admin"), api.keys["admin"]["key_id"]
    calls = [
        ("post", "/v1/dataset-groups/shop/campaigns", {"name": "home", "solution_version_id": api.version}, 201),
        ("put", "/v1/dataset-groups/shop/campaigns/home", {"solution_version_id": api.version}, 200),
        ("post", "/v1/dataset-groups/shop/filters", {"name": "f", "expression": 'EXCLUDE ItemID WHERE '  # no items
                                                     'Interactions.EVENT_TYPE IN ("x")'}, 201),
        ("delete", "/v1/dataset-groups/shop/filters/f", None, 204),
        ("delete", "/v1/dataset-groups/shop/campaigns/home", None, 204),
        ("delete", "/v1/dataset-groups/shop/campaigns/home", None, 404),
    ]
    for method, path, body, status in calls:
        kwargs = {"json": body} if body is not None else {}
        assert api.client.request(method, path, headers=admin, **kwargs).status_code == status, path
    entries = [e for e in reversed(api.entries()) if e["actor"] == key_id]
    assert [(e["action"], e["resource"], e["outcome"], e["status"]) for e in entries] == [
        ("campaign.create", "dataset-groups/shop/campaigns/home", "ok", 201),
        ("campaign.update", "dataset-groups/shop/campaigns/home", "ok", 200),
        ("filter.create", "dataset-groups/shop/filters/f", "ok", 201),
        ("filter.delete", "dataset-groups/shop/filters/f", "ok", 204),
        ("campaign.delete", "dataset-groups/shop/campaigns/home", "ok", 204),
        ("campaign.delete", "dataset-groups/shop/campaigns/home", "failed", 404),
    ]
    assert {e["source"] for e in entries} == {"testclient"}  # the client's address
    stored = json.dumps(api.entries())
    assert api.keys["admin"]["key"] not in stored and api.keys["admin"]["key"].rsplit("_", 1)[1] not in stored


def test_deletions_are_audited_without_the_user_id(api: Api) -> None:
    write = api.as_("write")
    assert api.client.delete(f"{USERS}/victim@example.com", headers=write).status_code == 200
    assert api.client.delete("/v1/dataset-groups/shop/items/7", headers=write).status_code == 200
    user, item = [e for e in api.entries() if e["action"] in ("user.delete", "item.delete")][::-1]
    assert user["resource"] == "dataset-groups/shop/users/{user_id}" and user["actor"] == api.keys["write"]["key_id"]
    assert item["resource"] == "dataset-groups/shop/items/7"
    assert "victim" not in json.dumps(api.entries())


def test_refused_attempts_are_audited_and_reads_are_not(api: Api) -> None:
    body = {"name": "x", "solution_version_id": api.version}
    campaigns = "/v1/dataset-groups/shop/campaigns"
    assert api.client.post(campaigns, json=body, headers=api.as_("read")).status_code == 403
    assert api.client.post(campaigns, json=body).status_code == 401
    forged = {"Authorization": "Bearer rsk_c0ffee_wrong"}
    assert api.client.post(campaigns, json=body, headers=forged).status_code == 401
    assert api.client.post("/v1/dataset-groups/shop/events", json={"session_id": "s", "events": [
        {"event_type": "view", "item_id": "1", "sent_at": 1}]}, headers=api.as_("read")).status_code == 403
    before = len(api.entries())
    assert api.client.get(campaigns, headers=api.as_("read")).status_code == 200  # reads: not audited
    assert api.client.post("/v1/dataset-groups/shop/events", json={"session_id": "s", "events": [
        {"event_type": "view", "item_id": "1", "sent_at": 1}]}, headers=api.as_("write")).status_code == 200
    assert len(api.entries()) == before  # data ingestion that succeeds is data, not a change to audit
    denied = [(e["actor"], e["action"], e["outcome"], e["status"]) for e in api.entries() if e["outcome"] == "denied"]
    assert denied[::-1] == [
        (api.keys["read"]["key_id"], "campaign.create", "denied", 403),
        ("anonymous", "campaign.create", "denied", 401),
        ("c0ffee", "campaign.create", "denied", 401),  # the id a refused key claims
        (api.keys["read"]["key_id"], "event.create", "denied", 403),
    ]
    assert "wrong" not in json.dumps(api.entries())


def test_only_admins_of_every_group_read_the_log(api: Api) -> None:
    api.client.delete("/v1/dataset-groups/shop/items/7", headers=api.as_("write"))
    for role in ("read", "write", "group-admin"):
        assert api.client.get("/v1/audit", headers=api.as_(role)).status_code == 403, role
    assert api.client.get("/v1/audit").status_code == 401
    assert [e["action"] for e in api.entries(since="1h")][0] == "item.delete"
    assert [e["action"] for e in api.entries(action="item.")] == ["item.delete"]
    assert api.entries(since="2999-01-01T00:00:00Z") == []
    bad = api.client.get("/v1/audit", params={"since": "yesterday"}, headers=api.as_("admin"))
    assert bad.status_code == 400 and "yesterday" in bad.json()["error"]["message"]
    assert api.client.get("/v1/audit", params={"limit": 0}, headers=api.as_("admin")).status_code == 422


def test_no_route_changes_the_log(api: Api) -> None:
    api.client.delete("/v1/dataset-groups/shop/items/7", headers=api.as_("write"))
    before = api.entries()
    for method in ("put", "patch", "delete", "post"):
        response = api.client.request(method, "/v1/audit", headers=api.as_("admin"), json={})
        assert response.status_code in (404, 405), method
        entry = api.client.request(method, f"/v1/audit/{before[0]['id']}", headers=api.as_("admin"), json={})
        assert entry.status_code in (404, 405), method
    after = api.entries(limit=1000)
    assert [e for e in after if e["id"] == before[0]["id"]] == [before[0]]  # unchanged
    assert {e["action"] for e in after} - {e["action"] for e in before} <= {"audit.create", "audit.update",
                                                                            "audit.delete"}


def test_a_deleted_key_leaves_its_entries(api: Api) -> None:
    temp = api.store.create_api_key("admin", None, "temp")
    headers = {"Authorization": f"Bearer {temp['key']}"}
    assert api.client.delete("/v1/dataset-groups/shop/items/9", headers=headers).status_code == 200
    api.store.delete_api_key(temp["key_id"])
    assert [e["action"] for e in api.entries() if e["actor"] == temp["key_id"]] == ["item.delete"]


def test_refused_attempts_are_written_at_most_so_often(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(audit_middleware.time, "monotonic", lambda: clock[0])
    for api in _api(tmp_path, audit_denied_per_minute=5):
        for n in range(20):
            assert api.client.delete(f"/v1/dataset-groups/g{n}/items/x").status_code == 401
        assert len([e for e in api.entries() if e["outcome"] == "denied"]) == 5
        clock[0] += 61
        api.client.delete("/v1/dataset-groups/shop/items/x")
        [summary] = [e for e in api.entries() if e["action"] == "audit.suppressed"]
        assert summary["detail"]["denied_entries_left_out"] == 15
        assert len([e for e in api.entries() if e["outcome"] == "denied"]) == 6


def test_a_real_server_commits_the_entry_before_it_answers(server) -> None:
    write = {"Authorization": f"Bearer {server.write_key}"}
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    for n in range(5):  # two workers: whichever answers, the entry is already in the store
        assert httpx.delete(f"{server.url}/v1/dataset-groups/movies/items/audit-probe-{n}", headers=write).status_code \
            == 200
        newest = httpx.get(f"{server.url}/v1/audit", params={"limit": 1}, headers=admin).json()["entries"][0]
        assert (newest["action"], newest["resource"], newest["source"], newest["outcome"], newest["status"]) == (
            "item.delete", f"dataset-groups/movies/items/audit-probe-{n}", "127.0.0.1", "ok", 200)
        assert newest["actor"] == server.write_key.split("_")[1]
