"""Deleting dataset groups and solution versions over HTTP (admin routes) and listing them: 403 for a read key,
404 for what does not exist, 409 naming the campaigns in the way, ``?force=true``, artifacts gone from disk, the
deleted group's campaigns no longer served, and a group of the same name imported fresh afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recsmith.api.app import create_app
from recsmith.client import Client, Conflict, NotFound
from recsmith.datasets.synthetic import synthetic_frame
from recsmith.errors import NotFoundError
from recsmith.jobs.importing import import_dataset
from recsmith.jobs.training import train_solution_version
from recsmith.settings import Settings
from recsmith.store.store import Store

GROUP = "/v1/dataset-groups/shop"


@dataclass
class Api:
    client: TestClient
    store: Store
    keys: dict[str, dict]
    versions: list[dict]
    load: Callable[[str, int], None]

    def as_(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]['key']}"}

    def python(self, role: str = "admin") -> Client:
        """The Python client, over the test app."""
        return Client("http://testserver", self.keys[role]["key"], transport=self.client._transport)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    config = Settings(home=tmp_path / "home", campaign_sync_seconds=0.1)
    store = Store.from_settings(config)
    store.migrate()

    def load(group: str, interactions: int) -> None:
        source = tmp_path / f"{group}-{interactions}.csv"
        synthetic_frame(60, 40, interactions, seed=3).to_csv(source, index=False)
        import_dataset(store, group, "interactions", str(source))

    load("shop", 900)
    load("other", 500)
    versions = [train_solution_version(store, config, "shop", "popularity", with_metrics=False) for _ in range(2)]
    other = train_solution_version(store, config, "other", "popularity", with_metrics=False)
    store.create_campaign("shop", "top", versions[0]["id"])
    store.create_campaign("other", "keep", other["id"])
    store.create_filter("shop", "f", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("x")')  # no items schema
    keys = {role: store.create_api_key(role, "shop") for role in ("read", "write")}
    keys["group-admin"] = store.create_api_key("admin", "shop")
    keys["admin"] = store.create_api_key("admin", None, "ops")
    keys["other-admin"] = store.create_api_key("admin", "other")
    with TestClient(create_app(config, store=store)) as client:
        yield Api(client, store, keys, versions, load)
    store.close()


def _recommend(api: Api, group: str, campaign: str) -> int:
    return api.client.post(f"/v1/dataset-groups/{group}/campaigns/{campaign}/recommendations",
                           json={"user_id": "1"}, headers=api.as_("admin")).status_code


def test_read_and_write_keys_and_other_groups_admins_may_not_delete(api: Api) -> None:
    for role in ("read", "write", "other-admin"):
        for path in (GROUP, f"{GROUP}?force=true", f"{GROUP}/solution-versions/{api.versions[1]['id']}"):
            response = api.client.delete(path, headers=api.as_(role))
            assert response.status_code == 403, (role, path)
            assert "needs role admin on dataset group 'shop'" in response.json()["error"]["message"]
    assert api.store.get_dataset_group("shop") and Path(api.versions[1]["artifact_uri"]).is_dir()
    assert api.client.get("/v1/dataset-groups", headers=api.as_("read")).status_code == 403  # a key of one group


def test_unknown_groups_and_versions_are_404(api: Api) -> None:
    admin = api.as_("admin")
    missing = api.client.delete("/v1/dataset-groups/nope", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"].startswith("no dataset group 'nope'; existing: other, shop")
    other_version = api.store.list_solution_versions(api.store.get_dataset_group("other").id)[0]["id"]
    for version in (999, other_version):  # none, and one of another group
        response = api.client.delete(f"{GROUP}/solution-versions/{version}", headers=admin)
        assert response.status_code == 404, response.text
        assert f"dataset group 'shop' has no solution version {version}" in response.json()["error"]["message"]
    assert api.client.get("/v1/dataset-groups/nope/solution-versions", headers=admin).status_code == 404


def test_a_group_with_campaigns_is_409_naming_them_then_force_deletes_everything(api: Api) -> None:
    admin = api.as_("admin")
    assert _recommend(api, "shop", "top") == 200
    refused = api.client.delete(GROUP, headers=admin)
    assert refused.status_code == 409
    body = refused.json()["error"]
    assert body["status"] == 409 and body["campaigns"] == ["top"]
    assert "dataset group 'shop' has 1 campaign(s): top" in body["message"] and "?force=true" in body["message"]
    assert "--force" not in body["message"]  # HTTP advice, not the command line's
    assert _recommend(api, "shop", "top") == 200

    deleted = api.client.delete(GROUP, params={"force": "true"}, headers=admin)
    assert deleted.status_code == 200, deleted.text
    report = deleted.json()
    assert report["deleted"] == "shop" and report["campaigns"] == ["top"] and report["artifacts"] == 2
    assert report["rows"]["interactions"] == 900 and report["rows"]["api_keys"] == 3 and report["left"] == []
    assert not any(Path(v["artifact_uri"]).exists() for v in api.versions)
    assert _recommend(api, "shop", "top") == 404  # this worker stopped serving it at once
    status = api.client.get("/v1/status", headers=admin).json()
    assert [(c["dataset_group"], c["campaign"]) for c in status["campaigns"]] == [("other", "keep")]
    assert _recommend(api, "other", "keep") == 200
    assert [g["name"] for g in api.client.get("/v1/dataset-groups", headers=admin).json()] == ["other"]
    assert api.client.get(f"{GROUP}/filters", headers=admin).status_code == 404
    for role in ("read", "group-admin"):  # the keys of the group went with it
        assert api.client.get("/v1/dataset-groups/other/campaigns", headers=api.as_(role)).status_code == 401
    entries = api.store.audit_entries(action="dataset_group.delete")
    assert [(e["resource"], e["outcome"], e["status"]) for e in entries] == [
        ("dataset-groups/shop", "ok", 200), ("dataset-groups/shop", "failed", 409)]


def test_a_group_without_campaigns_needs_no_force_and_its_admin_may_delete_it(api: Api) -> None:
    api.store.delete_campaign("shop", "top")
    response = api.client.delete(GROUP, headers=api.as_("group-admin"))
    assert response.status_code == 200 and response.json()["campaigns"] == []
    with pytest.raises(NotFoundError):
        api.store.get_dataset_group("shop")


def test_a_deleted_group_can_be_imported_fresh_and_served_under_its_name(api: Api) -> None:
    assert api.client.delete(GROUP, params={"force": "true"}, headers=api.as_("admin")).status_code == 200
    api.load("shop", 300)
    listed = {g["name"]: g for g in api.client.get("/v1/dataset-groups", headers=api.as_("admin")).json()}
    assert {k: listed["shop"][k] for k in ("interactions", "solution_versions", "campaigns", "filters")} == {
        "interactions": 300, "solution_versions": 0, "campaigns": 0, "filters": 0}
    config = Settings(home=Path(api.versions[0]["artifact_uri"]).parent.parent)
    version = train_solution_version(api.store, config, "shop", "popularity", with_metrics=False)
    with api.python() as client:
        client.create_campaign("shop", "top", version["id"])
        deadline = time.monotonic() + 10
        while _recommend(api, "shop", "top") != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        served = client.recommend("shop", "top", user_id="1", num_results=5)
    assert served.solution_version_id == version["id"] and len(served.items) == 5


def test_a_group_deleted_by_another_process_stops_being_served(api: Api) -> None:
    assert _recommend(api, "shop", "top") == 200
    api.store.delete_dataset_group("shop")  # as the command line, in another process, would
    deadline = time.monotonic() + 10
    while _recommend(api, "shop", "top") != 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _recommend(api, "shop", "top") == 404 and _recommend(api, "other", "keep") == 200


def test_a_served_version_is_409_naming_the_campaign_then_deleted_once_switched(api: Api) -> None:
    admin = api.as_("admin")
    first, second = (v["id"] for v in api.versions)
    refused = api.client.delete(f"{GROUP}/solution-versions/{first}", headers=admin)
    assert refused.status_code == 409
    body = refused.json()["error"]
    assert body["campaigns"] == ["top"]
    assert f"solution version {first} is served by campaign(s) top of dataset group 'shop'" in body["message"]
    assert "PUT /v1/dataset-groups/shop/campaigns/top" in body["message"]
    assert Path(api.versions[0]["artifact_uri"]).is_dir()

    listed = api.client.get(f"{GROUP}/solution-versions", headers=api.as_("read")).json()
    assert [(v["id"], v["campaigns"], v["status"]) for v in listed] == [(first, ["top"], "ACTIVE"),
                                                                        (second, [], "ACTIVE")]
    assert "artifact_uri" not in listed[0] and "error" not in listed[0]  # paths are for operators
    assert api.client.put(f"{GROUP}/campaigns/top", json={"solution_version_id": second},
                          headers=admin).status_code == 200
    deleted = api.client.delete(f"{GROUP}/solution-versions/{first}", headers=admin)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted": first, "dataset_group": "shop", "solution": "popularity",
                              "recipe": "popularity", "status": "ACTIVE", "artifact": True, "left": []}
    assert not Path(api.versions[0]["artifact_uri"]).exists() and Path(api.versions[1]["artifact_uri"]).is_dir()
    assert [v["id"] for v in api.client.get(f"{GROUP}/solution-versions", headers=admin).json()] == [second]
    assert api.client.delete(f"{GROUP}/solution-versions/{first}", headers=admin).status_code == 404
    entries = api.store.audit_entries(action="solution_version.delete")
    resource = f"dataset-groups/shop/solution-versions/{first}"
    assert [(e["resource"], e["status"]) for e in entries] == [(resource, 404), (resource, 200), (resource, 409)]


def test_the_python_client_deletes_and_says_what_is_in_the_way(api: Api) -> None:
    first, second = (v["id"] for v in api.versions)
    with api.python() as client:
        with pytest.raises(Conflict) as served:
            client.delete_solution_version("shop", first)
        assert served.value.status == 409 and served.value.campaigns == ("top",)
        assert client.delete_solution_version("shop", second)["artifact"] is True
        assert [v["id"] for v in client.list_solution_versions("shop")] == [first]
        with pytest.raises(Conflict) as busy:
            client.delete_dataset_group("shop")
        assert busy.value.campaigns == ("top",)
        assert {g["name"] for g in client.list_dataset_groups()} == {"shop", "other"}
        assert client.delete_dataset_group("shop", force=True)["campaigns"] == ["top"]
        assert [g["name"] for g in client.list_dataset_groups()] == ["other"]
        with pytest.raises(NotFound):
            client.delete_dataset_group("shop")


def test_a_group_with_a_job_running_is_409_even_with_force(api: Api) -> None:
    from recsmith.jobs.runs import owner_columns

    job = api.store.create_import_job(api.store.get_dataset_group("shop").id, "items", "items.csv", "full",
                                      owner=owner_columns())  # this process: alive
    response = api.client.delete(GROUP, params={"force": "true"}, headers=api.as_("admin"))
    assert response.status_code == 409
    assert response.json()["error"]["message"] == (f"dataset group 'shop' is in use: import job {job} is still "
                                                   "running; delete the group once it has finished")
    assert _recommend(api, "shop", "top") == 200 and Path(api.versions[0]["artifact_uri"]).is_dir()
