"""Amazon Personalize's getting-started flow, written with boto3 as its documentation writes it, run against a real
``recsmith serve --workers 2`` from an empty store to recommendations: a dataset group, a schema, a dataset, an
import job, a solution and its version with metrics, a campaign, an event tracker and its events, a filter."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from personalize_clients import aws_client

from recsmith.settings import Settings
from recsmith.store.store import Store
from recsmith.testing import start_server, stop_server

BUNDLED = Path(__file__).resolve().parents[2] / "src/recsmith/datasets/ml-latest-small"
INTERACTIONS_SCHEMA = {
    "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
    "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
               {"name": "EVENT_TYPE", "type": "string"}, {"name": "TIMESTAMP", "type": "long"}],
    "version": "1.0",
}
ITEMS_SCHEMA = {
    "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
    "fields": [{"name": "ITEM_ID", "type": "string"}, {"name": "GENRES", "type": "string", "categorical": True}],
    "version": "1.0",
}


def wait_for(describe: Callable[[], dict], wanted: str = "ACTIVE", timeout: float = 240.0) -> dict:
    """Poll ``describe`` until its status is ``wanted`` (or a failure, which fails the test)."""
    deadline = time.monotonic() + timeout
    while True:
        found = describe()
        status = found["status"]
        if status == wanted:
            return found
        assert "FAILED" not in status, found
        assert time.monotonic() < deadline, f"still {status} after {timeout} s: {found}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    home = tmp_path_factory.mktemp("getting-started") / "home"
    store = Store.from_settings(Settings(home=home))
    store.migrate()
    key = store.create_api_key("admin", None, "getting started")["key"]
    store.close()
    url, process = start_server(home)
    try:
        yield url, key, tmp_path_factory.mktemp("data")
    finally:
        stop_server(process)


def test_from_an_empty_store_to_recommendations(empty_server) -> None:
    url, key, data = empty_server
    ratings, movies = pd.read_csv(BUNDLED / "ratings.csv"), pd.read_csv(BUNDLED / "movies.csv")
    csv, items_csv = data / "interactions.csv", data / "items.csv"
    pd.DataFrame({"USER_ID": ratings.userId.astype(str), "ITEM_ID": ratings.movieId.astype(str),
                  "EVENT_TYPE": "rating", "TIMESTAMP": ratings.timestamp}).to_csv(csv, index=False)
    pd.DataFrame({"ITEM_ID": movies.movieId.astype(str), "GENRES": movies.genres}).to_csv(items_csv, index=False)
    genres = dict(zip(movies.movieId.astype(str), movies.genres.str.split("|"), strict=True))
    personalize = aws_client("personalize", url, key)
    runtime = aws_client("personalize-runtime", url, key)
    events = aws_client("personalize-events", url, key)

    group_arn = personalize.create_dataset_group(name="movielens")["datasetGroupArn"]
    wait_for(lambda: personalize.describe_dataset_group(datasetGroupArn=group_arn)["datasetGroup"])

    def load(kind: str, schema: dict, path: Path) -> None:
        """A schema, a dataset of ``kind`` made with it, and an import job of ``path`` into it, waited for."""
        schema_arn = personalize.create_schema(name=f"movielens-{kind.lower()}", schema=json.dumps(schema))["schemaArn"]
        dataset_arn = personalize.create_dataset(name=f"movielens-{kind.lower()}", schemaArn=schema_arn,
                                                 datasetGroupArn=group_arn, datasetType=kind)["datasetArn"]
        job_arn = personalize.create_dataset_import_job(
            jobName=f"movielens-{kind.lower()}-import", datasetArn=dataset_arn, dataSource={"dataLocation": str(path)},
            roleArn="arn:aws:iam::000000000000:role/PersonalizeRole")["datasetImportJobArn"]
        wait_for(lambda: personalize.describe_dataset_import_job(datasetImportJobArn=job_arn)["datasetImportJob"])

    load("Interactions", INTERACTIONS_SCHEMA, csv)
    load("Items", ITEMS_SCHEMA, items_csv)

    solution_arn = personalize.create_solution(
        name="movielens-sims", datasetGroupArn=group_arn,
        recipeArn="arn:aws:personalize:::recipe/aws-sims")["solutionArn"]
    version_arn = personalize.create_solution_version(solutionArn=solution_arn)["solutionVersionArn"]
    version = wait_for(lambda: personalize.describe_solution_version(
        solutionVersionArn=version_arn)["solutionVersion"])
    assert version["recipeArn"] == "arn:aws:personalize:::recipe/aws-sims"
    metrics = personalize.get_solution_metrics(solutionVersionArn=version_arn)["metrics"]
    assert 0 < metrics["precision_at_10"] < 1 and 0 < metrics["normalized_discounted_cumulative_gain_at_10"] < 1

    campaign_arn = personalize.create_campaign(name="movielens-campaign", solutionVersionArn=version_arn,
                                               minProvisionedTPS=1)["campaignArn"]
    wait_for(lambda: personalize.describe_campaign(campaignArn=campaign_arn)["campaign"])
    first = runtime.get_recommendations(campaignArn=campaign_arn, userId="1", numResults=10)["itemList"]
    assert len(first) == 10 and all(item["itemId"] for item in first)

    tracking_id = personalize.create_event_tracker(name="movielens-tracker",
                                                   datasetGroupArn=group_arn)["trackingId"]
    newcomer = runtime.get_recommendations(campaignArn=campaign_arn, userId="newcomer", numResults=10)["itemList"]
    assert {tuple(item["reason"]) for item in newcomer} == {("popular",)}
    events.put_events(trackingId=tracking_id, userId="newcomer", sessionId="session-1", eventList=[
        {"eventType": "rating", "itemId": item, "sentAt": time.time()} for item in ("1", "260", "1196")])
    steered = runtime.get_recommendations(campaignArn=campaign_arn, userId="newcomer", numResults=10)["itemList"]
    assert all(item["reason"][0].startswith("because you interacted with") for item in steered)
    assert not {"1", "260", "1196"} & {item["itemId"] for item in steered}

    filter_arn = personalize.create_filter(
        name="genre", datasetGroupArn=group_arn,
        filterExpression="INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")["filterArn"]
    wait_for(lambda: personalize.describe_filter(filterArn=filter_arn)["filter"])
    filtered = runtime.get_recommendations(campaignArn=campaign_arn, userId="1", numResults=10,
                                           filterArn=filter_arn, filterValues={"GENRE": '"Comedy","Horror"'},
                                           metadataColumns={"ITEMS": ["GENRES"]})["itemList"]
    assert len(filtered) == 10 and all({"Comedy", "Horror"} & set(genres[item["itemId"]]) for item in filtered)
    assert all(item["metadata"]["GENRES"] == "|".join(genres[item["itemId"]]) for item in filtered)
    assert [c["name"] for c in personalize.list_campaigns()["campaigns"]] == ["movielens-campaign"]
