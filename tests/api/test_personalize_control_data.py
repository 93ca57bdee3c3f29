"""Personalize's control plane on data (dataset groups, schemas, datasets, import jobs, event trackers, filters),
driven by boto3 ``personalize`` clients against a real ``recsmith serve --workers 2``."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from personalize_clients import aws_client

from recsmith.api.personalize.control_data import personalize_status
from recsmith.settings import Settings
from recsmith.store.store import Store
from recsmith.testing import start_server, stop_server

botocore_exceptions = pytest.importorskip("botocore.exceptions")
ClientError = botocore_exceptions.ClientError

ARN = "arn:aws:personalize:us-east-1:000000000000"
INTERACTIONS = {"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
                "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                           {"name": "TIMESTAMP", "type": "long"}], "version": "1.0"}
ITEMS = {"type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
         "fields": [{"name": "ITEM_ID", "type": "string"},
                    {"name": "GENRES", "type": ["null", "string"], "categorical": True}], "version": "1.0"}


@dataclass
class Plane:
    """A running server with an empty store, and an admin key for every group."""

    url: str
    store: Store
    admin_key: str
    process: subprocess.Popen

    def client(self, key: str | None = None) -> Any:
        return aws_client("personalize", self.url, key or self.admin_key)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    home = tmp_path_factory.mktemp("control-data") / "home"
    store = Store.from_settings(Settings(home=home))
    store.migrate()
    admin = store.create_api_key("admin")["key"]
    url, process = start_server(home)
    try:
        yield Plane(url, store, admin, process)
    finally:
        stop_server(process)
        store.close()


@pytest.fixture(scope="module")
def cp(plane: Plane) -> Any:
    return plane.client()


def refused(call: Callable[..., Any], code: str, status: int, **kwargs: Any) -> str:
    """The message of the error ``call(**kwargs)`` must answer with ``code`` and HTTP ``status``."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status), error
    return str(error["Error"]["Message"])


def make_group(cp: Any, name: str) -> str:
    return cp.create_dataset_group(name=name)["datasetGroupArn"]


def wait_for(cp: Any, job_arn: str, timeout: float = 30.0) -> dict[str, Any]:
    """The import job once it has ended (polled with ``DescribeDatasetImportJob``)."""
    deadline = time.monotonic() + timeout
    while True:
        job = cp.describe_dataset_import_job(datasetImportJobArn=job_arn)["datasetImportJob"]
        if job["status"] in ("ACTIVE", "CREATE FAILED") or time.monotonic() > deadline:
            return job
        assert job["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS")
        time.sleep(0.2)


def test_status_spelling() -> None:
    assert [personalize_status(s) for s in ("CREATE_PENDING", "CREATE_IN_PROGRESS", "ACTIVE", "CREATE_FAILED")] == [
        "CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE", "CREATE FAILED"]
    assert personalize_status("DELETE_PENDING") == "DELETE PENDING"


def test_dataset_groups(cp: Any) -> None:
    names = ["g-one", "g-two", "g-three"]
    for name in names:
        assert make_group(cp, name) == f"{ARN}:dataset-group/{name}"
    assert "exists already" in refused(cp.create_dataset_group, "ResourceAlreadyExistsException", 400, name="g-one")
    assert "name" in refused(cp.create_dataset_group, "InvalidInputException", 400, name="bad name!")
    group = cp.describe_dataset_group(datasetGroupArn=f"{ARN}:dataset-group/g-two")["datasetGroup"]
    assert (group["name"], group["status"]) == ("g-two", "ACTIVE")
    assert abs(group["creationDateTime"].timestamp() - time.time()) < 60
    refused(cp.describe_dataset_group, "ResourceNotFoundException", 400, datasetGroupArn=f"{ARN}:dataset-group/nope")
    first = cp.list_dataset_groups(maxResults=2)
    assert len(first["datasetGroups"]) == 2 and first["nextToken"]
    pages = cp.get_paginator("list_dataset_groups").paginate(PaginationConfig={"PageSize": 1})
    listed = [g["name"] for page in pages for g in page["datasetGroups"]]
    assert [n for n in listed if n in names] == names  # in the order they were made, each once
    assert "maxResults" in refused(cp.list_dataset_groups, "InvalidInputException", 400, maxResults=1000)


def test_schemas(cp: Any) -> None:
    text = json.dumps(INTERACTIONS, indent=2)
    arn = cp.create_schema(name="s-interactions", schema=text)["schemaArn"]
    assert arn == f"{ARN}:schema/s-interactions"
    cp.create_schema(name="s-spare", schema=json.dumps(INTERACTIONS), domain="ECOMMERCE")
    described = cp.describe_schema(schemaArn=arn)["schema"]
    assert (described["name"], described["schemaArn"], described["schema"]) == ("s-interactions", arn, text)
    assert "domain" not in described
    listed = {s["name"]: s for s in cp.list_schemas()["schemas"]}
    assert listed["s-spare"]["domain"] == "ECOMMERCE" and "schema" not in listed["s-spare"]
    refused(cp.create_schema, "ResourceAlreadyExistsException", 400, name="s-spare", schema=json.dumps(ITEMS))
    message = refused(cp.create_schema, "InvalidInputException", 400, name="s-bad",
                      schema=json.dumps({"type": "record", "name": "X", "fields": [{"name": "A", "type": "weird"}]}))
    assert message.startswith("schema") and "weird" in message
    assert "schema: not valid JSON" in refused(cp.create_schema, "InvalidInputException", 400, name="s-bad",
                                               schema="{not json")
    # a string that is not JSON is never read as a path on the server
    assert "not valid JSON" in refused(cp.create_schema, "InvalidInputException", 400, name="s-bad",
                                       schema="/etc/passwd")
    assert "domain" in refused(cp.create_schema, "InvalidInputException", 400, name="s-bad",
                               schema=json.dumps(INTERACTIONS), domain="SHOES")
    cp.delete_schema(schemaArn=f"{ARN}:schema/s-spare")
    refused(cp.describe_schema, "ResourceNotFoundException", 400, schemaArn=f"{ARN}:schema/s-spare")
    refused(cp.delete_schema, "ResourceNotFoundException", 400, schemaArn=f"{ARN}:schema/s-spare")
    assert "schemaArn" in refused(cp.describe_schema, "InvalidInputException", 400,
                                  schemaArn=f"{ARN}:dataset-group/s-interactions")


def test_datasets(cp: Any) -> None:
    group = make_group(cp, "d-shop")
    other = make_group(cp, "d-other")
    schema = cp.create_schema(name="d-interactions", schema=json.dumps(INTERACTIONS))["schemaArn"]
    items = cp.create_schema(name="d-items", schema=json.dumps(ITEMS))["schemaArn"]
    arn = cp.create_dataset(name="d-events", schemaArn=schema, datasetGroupArn=group,
                            datasetType="Interactions")["datasetArn"]
    assert arn == f"{ARN}:dataset/d-shop/INTERACTIONS"
    assert cp.create_dataset(name="d-catalog", schemaArn=items, datasetGroupArn=group,
                             datasetType="ITEMS")["datasetArn"] == f"{ARN}:dataset/d-shop/ITEMS"
    dataset = cp.describe_dataset(datasetArn=arn)["dataset"]
    assert {k: dataset[k] for k in ("name", "datasetArn", "datasetGroupArn", "datasetType", "schemaArn",
                                    "status")} == {
        "name": "d-events", "datasetArn": arn, "datasetGroupArn": group, "datasetType": "Interactions",
        "schemaArn": schema, "status": "ACTIVE"}
    listed = cp.list_datasets(datasetGroupArn=group)["datasets"]
    assert [(d["name"], d["datasetType"]) for d in listed] == [("d-events", "Interactions"), ("d-catalog", "Items")]
    assert {d["name"] for d in cp.list_datasets()["datasets"]} >= {"d-events", "d-catalog"}
    # names are unique in the account; a group has one dataset of each type
    refused(cp.create_dataset, "ResourceAlreadyExistsException", 400, name="d-events", schemaArn=schema,
            datasetGroupArn=other, datasetType="Interactions")
    refused(cp.create_dataset, "ResourceAlreadyExistsException", 400, name="d-again", schemaArn=schema,
            datasetGroupArn=group, datasetType="interactions")
    assert "datasetType" in refused(cp.create_dataset, "InvalidInputException", 400, name="d-x", schemaArn=schema,
                                    datasetGroupArn=other, datasetType="Actions")
    assert "schemaArn" in refused(cp.create_dataset, "InvalidInputException", 400, name="d-x", schemaArn=items,
                                  datasetGroupArn=other, datasetType="Interactions")
    refused(cp.create_dataset, "ResourceNotFoundException", 400, name="d-x", schemaArn=f"{ARN}:schema/nope",
            datasetGroupArn=other, datasetType="Interactions")
    refused(cp.describe_dataset, "ResourceNotFoundException", 400, datasetArn=f"{ARN}:dataset/d-other/USERS")
    refused(cp.describe_dataset, "ResourceNotFoundException", 400, datasetArn=f"{ARN}:dataset/nope/ITEMS")
    assert "datasetArn" in refused(cp.describe_dataset, "InvalidInputException", 400, datasetArn=f"{ARN}:dataset/x")
    # a schema stays while a dataset has it
    assert "d-catalog" in refused(cp.delete_schema, "ResourceInUseException", 400, schemaArn=items)
    cp.delete_dataset(datasetArn=f"{ARN}:dataset/d-shop/ITEMS")
    refused(cp.describe_dataset, "ResourceNotFoundException", 400, datasetArn=f"{ARN}:dataset/d-shop/ITEMS")
    cp.delete_schema(schemaArn=items)
    assert [d["name"] for d in cp.list_datasets(datasetGroupArn=group)["datasets"]] == ["d-events"]


def _csv(path: Path, rows: list[str]) -> str:
    path.write_text("USER_ID,ITEM_ID,TIMESTAMP\n" + "".join(f"{row}\n" for row in rows))
    return str(path)


def test_import_jobs(cp: Any, plane: Plane, tmp_path: Path) -> None:
    group = make_group(cp, "i-shop")
    schema = cp.create_schema(name="i-interactions", schema=json.dumps(INTERACTIONS))["schemaArn"]
    dataset = cp.create_dataset(name="i-events", schemaArn=schema, datasetGroupArn=group,
                                datasetType="Interactions")["datasetArn"]
    good = _csv(tmp_path / "good.csv", [f"u{u},i{i},{1_700_000_000 + 10 * u + i}" for u in range(5) for i in range(4)])
    arn = cp.create_dataset_import_job(jobName="i-first", datasetArn=dataset, dataSource={"dataLocation": good},
                                       roleArn="arn:aws:iam::000000000000:role/ignored")["datasetImportJobArn"]
    assert arn == f"{ARN}:dataset-import-job/i-first"
    at_once = cp.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"]
    assert at_once["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE")
    refused(cp.create_dataset_import_job, "ResourceAlreadyExistsException", 400, jobName="i-first",
            datasetArn=dataset, dataSource={"dataLocation": good})
    job = wait_for(cp, arn)
    assert {k: job[k] for k in ("jobName", "datasetImportJobArn", "datasetArn", "dataSource", "status",
                                "importMode")} == {
        "jobName": "i-first", "datasetImportJobArn": arn, "datasetArn": dataset, "dataSource": {"dataLocation": good},
        "status": "ACTIVE", "importMode": "FULL"}
    assert "failureReason" not in job and job["lastUpdatedDateTime"] >= job["creationDateTime"]
    group_id = plane.store.get_dataset_group("i-shop").id
    assert plane.store.count_interactions(group_id) == 20
    # the import kept the dataset's registered schema
    assert cp.describe_dataset(datasetArn=dataset)["dataset"]["schemaArn"] == schema

    more = _csv(tmp_path / "more.csv", ["u9,i9,1700000999", "u0,i0,1700000000"])
    added = cp.create_dataset_import_job(jobName="i-more", datasetArn=dataset, dataSource={"dataLocation": more},
                                         importMode="INCREMENTAL")["datasetImportJobArn"]
    assert (wait_for(cp, added)["status"], plane.store.count_interactions(group_id)) == ("ACTIVE", 21)

    bad = _csv(tmp_path / "bad.csv", ["u1,i1,1700000000", "u2,i2,yesterday"])
    failing = cp.create_dataset_import_job(jobName="i-bad-row", datasetArn=dataset,
                                           dataSource={"dataLocation": bad})["datasetImportJobArn"]
    failed = wait_for(cp, failing)
    assert failed["status"] == "CREATE FAILED" and "TIMESTAMP" in failed["failureReason"], failed
    missing = cp.create_dataset_import_job(jobName="i-missing", datasetArn=dataset,
                                           dataSource={"dataLocation": str(tmp_path / "gone.csv")})
    failed = wait_for(cp, missing["datasetImportJobArn"])
    assert failed["status"] == "CREATE FAILED" and "gone.csv" in failed["failureReason"], failed
    assert plane.store.count_interactions(group_id) == 21  # a failed import changes nothing

    listed = cp.list_dataset_import_jobs(datasetArn=dataset)["datasetImportJobs"]
    assert [(j["jobName"], j["status"], j["importMode"]) for j in listed] == [
        ("i-first", "ACTIVE", "FULL"), ("i-more", "ACTIVE", "INCREMENTAL"), ("i-bad-row", "CREATE FAILED", "FULL"),
        ("i-missing", "CREATE FAILED", "FULL")]
    assert "failureReason" in listed[2]
    assert len(cp.list_dataset_import_jobs(maxResults=2)["datasetImportJobs"]) == 2

    assert "importMode" in refused(cp.create_dataset_import_job, "InvalidInputException", 400, jobName="i-x",
                                   datasetArn=dataset, dataSource={"dataLocation": good}, importMode="SOME")
    assert "dataSource.dataLocation" in refused(cp.create_dataset_import_job, "InvalidInputException", 400,
                                                jobName="i-x", datasetArn=dataset, dataSource={})
    refused(cp.create_dataset_import_job, "ResourceNotFoundException", 400, jobName="i-x",
            datasetArn=f"{ARN}:dataset/i-shop/USERS", dataSource={"dataLocation": good})
    refused(cp.describe_dataset_import_job, "ResourceNotFoundException", 400,
            datasetImportJobArn=f"{ARN}:dataset-import-job/i-x")

    # deleting the dataset deletes its data; its import jobs stay, as the group's history
    cp.delete_dataset(datasetArn=dataset)
    assert plane.store.count_interactions(group_id) == 0
    refused(cp.list_dataset_import_jobs, "ResourceNotFoundException", 400, datasetArn=dataset)
    assert cp.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"]["status"] == "ACTIVE"


def test_event_trackers(cp: Any) -> None:
    group = make_group(cp, "t-shop")
    other = make_group(cp, "t-other")
    made = cp.create_event_tracker(name="t-tracker", datasetGroupArn=group)
    assert made["eventTrackerArn"] == f"{ARN}:event-tracker/t-tracker" and made["trackingId"]
    tracker = cp.describe_event_tracker(eventTrackerArn=made["eventTrackerArn"])["eventTracker"]
    assert {k: tracker[k] for k in ("name", "trackingId", "datasetGroupArn", "status", "accountId")} == {
        "name": "t-tracker", "trackingId": made["trackingId"], "datasetGroupArn": group, "status": "ACTIVE",
        "accountId": "000000000000"}
    assert [t["name"] for t in cp.list_event_trackers(datasetGroupArn=group)["eventTrackers"]] == ["t-tracker"]
    assert "t-tracker" in [t["name"] for t in cp.list_event_trackers()["eventTrackers"]]
    refused(cp.create_event_tracker, "ResourceAlreadyExistsException", 400, name="t-tracker", datasetGroupArn=other)
    refused(cp.create_event_tracker, "ResourceAlreadyExistsException", 400, name="t-second", datasetGroupArn=group)
    refused(cp.create_event_tracker, "ResourceNotFoundException", 400, name="t-x",
            datasetGroupArn=f"{ARN}:dataset-group/nope")
    cp.delete_event_tracker(eventTrackerArn=made["eventTrackerArn"])
    refused(cp.describe_event_tracker, "ResourceNotFoundException", 400, eventTrackerArn=made["eventTrackerArn"])
    assert cp.list_event_trackers(datasetGroupArn=group)["eventTrackers"] == []


def test_filters(cp: Any) -> None:
    group = make_group(cp, "f-shop")
    other = make_group(cp, "f-other")
    items = cp.create_schema(name="f-items", schema=json.dumps(ITEMS))["schemaArn"]
    cp.create_dataset(name="f-catalog", schemaArn=items, datasetGroupArn=group, datasetType="Items")
    expression = 'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")'
    arn = cp.create_filter(name="f-no-drama", datasetGroupArn=group, filterExpression=expression)["filterArn"]
    assert arn == f"{ARN}:filter/f-no-drama"
    described = cp.describe_filter(filterArn=arn)["filter"]
    assert {k: described[k] for k in ("name", "filterArn", "datasetGroupArn", "filterExpression", "status")} == {
        "name": "f-no-drama", "filterArn": arn, "datasetGroupArn": group, "filterExpression": expression,
        "status": "ACTIVE"}
    listed = cp.list_filters(datasetGroupArn=group)["Filters"]
    assert [(f["name"], f["status"]) for f in listed] == [("f-no-drama", "ACTIVE")]
    assert "filterExpression" not in listed[0]
    refused(cp.create_filter, "ResourceAlreadyExistsException", 400, name="f-no-drama", datasetGroupArn=other,
            filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("view")')
    message = refused(cp.create_filter, "InvalidInputException", 400, name="f-bad", datasetGroupArn=group,
                      filterExpression='EXCLUDE ItemID WHERE Items.GENRE IN ("Drama")')
    assert message.startswith("filterExpression") and "GENRES" in message
    assert "filterExpression" in refused(cp.create_filter, "InvalidInputException", 400, name="f-bad",
                                         datasetGroupArn=group, filterExpression="EXCLUDE nonsense")
    cp.delete_filter(filterArn=arn)
    refused(cp.describe_filter, "ResourceNotFoundException", 400, filterArn=arn)
    refused(cp.delete_filter, "ResourceNotFoundException", 400, filterArn=arn)


def test_group_scoped_admin_key(cp: Any, plane: Plane) -> None:
    group = make_group(cp, "k-mine")
    other = make_group(cp, "k-theirs")
    scoped = plane.client(plane.store.create_api_key("admin", "k-mine")["key"])
    arn = scoped.create_filter(name="k-mine-filter", datasetGroupArn=group,
                               filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("view")')["filterArn"]
    assert scoped.describe_filter(filterArn=arn)["filter"]["datasetGroupArn"] == group
    assert scoped.list_filters(datasetGroupArn=group)["Filters"][0]["name"] == "k-mine-filter"
    assert "k-theirs" in refused(scoped.create_filter, "AccessDeniedException", 403, name="k-theirs-filter",
                                 datasetGroupArn=other, filterExpression='EXCLUDE ItemID WHERE '
                                                                         'Interactions.EVENT_TYPE IN ("view")')
    refused(scoped.create_event_tracker, "AccessDeniedException", 403, name="k-tracker", datasetGroupArn=other)
    refused(scoped.delete_dataset_group, "AccessDeniedException", 403, datasetGroupArn=other)
    refused(scoped.list_filters, "AccessDeniedException", 403)  # every group's
    refused(scoped.create_schema, "AccessDeniedException", 403, name="k-schema", schema=json.dumps(INTERACTIONS))
    cp.describe_dataset_group(datasetGroupArn=other)  # still there
    read = plane.client(plane.store.create_api_key("read", "k-mine")["key"])
    refused(read.describe_dataset_group, "AccessDeniedException", 403, datasetGroupArn=group)
