"""The Personalize control plane's model operations through boto3 against a real ``recsmith serve --workers 2``:
recipes, solutions, solution versions trained in the background with their metrics, campaigns served by
personalize-runtime, batch inference jobs, and the errors (names taken, unknown ARNs, bad fields)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from personalize_clients import aws_client

from recsmith.datasets import load_dataset
from recsmith.recipes import available
from recsmith.settings import Settings
from recsmith.store.store import Store
from recsmith.testing import start_server, stop_server

ClientError = pytest.importorskip("botocore.exceptions").ClientError

ROLE = "arn:aws:iam::000000000000:role/recsmith-tests"
RECIPE = "arn:aws:personalize:::recipe/"


@dataclass
class Served:
    """The server, its home and boto3 clients signed with an admin key of every group."""

    url: str
    home: Path
    control: Any
    runtime: Any
    group_arn: str
    store: Store


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("control-models") / "home"
    store = Store.from_settings(Settings(home=home))
    store.migrate()
    load_dataset(store, "ml-latest-small", "movies")
    admin = store.create_api_key("admin")["key"]
    url, process = start_server(home)
    try:
        control = aws_client("personalize", url, admin)
        group_arn = next(g["datasetGroupArn"] for g in control.list_dataset_groups()["datasetGroups"]
                         if g["name"] == "movies")
        yield Served(url, home, control, aws_client("personalize-runtime", url, admin), group_arn, store)
    finally:
        stop_server(process)
        store.close()


def eventually(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.25) -> Any:
    """``check()``'s first truthy answer (a ClientError counts as not yet), or AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except ClientError as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s; last answer: {last!r}")


def error_of(call: Callable[..., Any], **kwargs: Any) -> tuple[str, int, str]:
    """The AWS error code, HTTP status and message of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Message"]


def trained(served: Served, arn: str) -> dict[str, Any]:
    """The version once its training has ended (ACTIVE or CREATE FAILED)."""
    def ended() -> dict[str, Any] | None:
        version = served.control.describe_solution_version(solutionVersionArn=arn)["solutionVersion"]
        assert version["status"] in ("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE", "CREATE FAILED")
        return version if version["status"] in ("ACTIVE", "CREATE FAILED") else None

    return eventually(ended)


@pytest.fixture(scope="module")
def versions(served: Served) -> dict[str, str]:
    """Two solutions made and trained through the control plane: ``sims`` (aws-sims → item-knn, 50 neighbours) and
    ``pop`` (aws-popularity-count → popularity); their versions' ARNs, ACTIVE."""
    control = served.control
    sims = control.create_solution(name="sims", datasetGroupArn=served.group_arn, recipeArn=RECIPE + "aws-sims",
                                   solutionConfig={"algorithmHyperParameters": {"neighbors": "50"}})["solutionArn"]
    pop = control.create_solution(name="pop", datasetGroupArn=served.group_arn,
                                  recipeArn=RECIPE + "aws-popularity-count")["solutionArn"]
    made = {"sims": control.create_solution_version(solutionArn=sims, name="sims-first")["solutionVersionArn"],
            "pop": control.create_solution_version(solutionArn=pop, trainingMode="FULL")["solutionVersionArn"]}
    for arn in made.values():
        assert trained(served, arn)["status"] == "ACTIVE"
    return made


def test_recipes_list_personalize_names_and_every_recsmith_recipe(served: Served) -> None:
    pages = served.control.get_paginator("list_recipes").paginate(PaginationConfig={"PageSize": 5})
    listed = [recipe for page in pages for recipe in page["recipes"]]
    names = [recipe["name"] for recipe in listed]
    assert len(names) == len(set(names))
    for name in ("aws-user-personalization", "aws-user-personalization-v2", "aws-sims", "aws-popularity-count",
                 "aws-trending-now", "aws-personalized-ranking", "aws-personalized-ranking-v2"):
        assert name in names
    assert {f"recsmith-{recipe}" for recipe in available()} <= set(names)
    assert all(r["recipeArn"] == RECIPE + r["name"] and r["status"] == "ACTIVE" for r in listed)
    assert served.control.list_recipes(domain="ECOMMERCE")["recipes"] == []

    sims = served.control.describe_recipe(recipeArn=RECIPE + "aws-sims")["recipe"]
    assert sims["recipeType"] == "RELATED_ITEMS" and "item-knn" in sims["description"]
    ranking = served.control.describe_recipe(recipeArn=RECIPE + "aws-personalized-ranking")["recipe"]
    general = served.control.describe_recipe(recipeArn=RECIPE + "aws-user-personalization")["recipe"]
    assert ranking["recipeType"] == "PERSONALIZED_RANKING" and general["recipeType"] == "USER_PERSONALIZATION"
    assert "recsmith's als recipe" in general["description"] and "recsmith's als recipe" in ranking["description"]
    assert "neighbors" in served.control.describe_recipe(recipeArn=RECIPE + "recsmith-item-knn")["recipe"][
        "description"]

    code, status, message = error_of(served.control.describe_recipe, recipeArn=RECIPE + "aws-hrnn")
    assert (code, status) == ("ResourceNotFoundException", 400) and "aws-hrnn" in message


def test_solutions_describe_their_recipe_params_and_latest_version(served: Served, versions: dict[str, str]) -> None:
    control = served.control
    sims = control.describe_solution(solutionArn=versions["sims"].rsplit("/", 1)[0])["solution"]
    assert sims["name"] == "sims" and sims["status"] == "ACTIVE"
    assert sims["recipeArn"] == RECIPE + "aws-sims" and sims["datasetGroupArn"] == served.group_arn
    assert sims["solutionConfig"]["algorithmHyperParameters"]["neighbors"] == "50"
    assert sims["performHPO"] is False
    assert sims["latestSolutionVersion"]["solutionVersionArn"] == versions["sims"]
    assert sims["latestSolutionVersion"]["status"] == "ACTIVE"

    listed = control.list_solutions(datasetGroupArn=served.group_arn)["solutions"]
    assert {"sims", "pop"} <= {s["name"] for s in listed}
    pop = next(s for s in listed if s["name"] == "pop")
    assert pop["recipeArn"] == RECIPE + "aws-popularity-count"
    assert {s["name"] for s in control.list_solutions()["solutions"]} >= {"sims", "pop"}


def test_solution_versions_train_in_the_background_with_metrics(served: Served, versions: dict[str, str]) -> None:
    control = served.control
    version = control.describe_solution_version(solutionVersionArn=versions["sims"])["solutionVersion"]
    assert version["status"] == "ACTIVE" and version["name"] == "sims-first"
    assert version["recipeArn"] == RECIPE + "aws-sims" and version["datasetGroupArn"] == served.group_arn
    assert version["solutionArn"] == versions["sims"].rsplit("/", 1)[0] and version["trainingMode"] == "FULL"
    assert version["trainingHours"] > 0
    assert version["creationDateTime"] <= version["lastUpdatedDateTime"]

    metrics = control.get_solution_metrics(solutionVersionArn=versions["sims"])["metrics"]
    names = {f"{metric}_at_{k}" for metric in ("precision", "normalized_discounted_cumulative_gain")
             for k in (5, 10, 25)}
    assert names | {"mean_reciprocal_rank_at_25", "coverage"} <= set(metrics)  # Personalize's own names
    assert all(0 < metrics[name] <= 1 for name in names)
    assert metrics["precision_at_25"] < metrics["precision_at_5"]  # each cut-off measured, not one copied
    popular = control.get_solution_metrics(solutionVersionArn=versions["pop"])["metrics"]
    assert popular["coverage"] < metrics["coverage"]  # the same top items for everyone

    listed = control.list_solution_versions(solutionArn=versions["pop"].rsplit("/", 1)[0])["solutionVersions"]
    assert [v["solutionVersionArn"] for v in listed] == [versions["pop"]]
    assert versions["sims"] in {v["solutionVersionArn"] for v in control.list_solution_versions()["solutionVersions"]}


def test_a_training_that_fails_says_why(served: Served) -> None:
    control = served.control
    empty = control.create_dataset_group(name="empty")["datasetGroupArn"]
    solution = control.create_solution(name="nothing", datasetGroupArn=empty,
                                       recipeArn=RECIPE + "aws-popularity-count")["solutionArn"]
    version = trained(served, control.create_solution_version(solutionArn=solution)["solutionVersionArn"])
    assert version["status"] == "CREATE FAILED" and "no interactions" in version["failureReason"]
    code, _, _ = error_of(control.create_campaign, name="never", solutionVersionArn=version["solutionVersionArn"])
    assert code == "ResourceInUseException"


def test_campaign_serves_switches_and_is_deleted(served: Served, versions: dict[str, str]) -> None:
    control, runtime = served.control, served.runtime
    arn = control.create_campaign(name="shelf", solutionVersionArn=versions["sims"], minProvisionedTPS=2,
                                  campaignConfig={"itemExplorationConfig": {"explorationWeight": "0.3"}}
                                  )["campaignArn"]
    campaign = eventually(lambda: (c := control.describe_campaign(campaignArn=arn)["campaign"])["status"] == "ACTIVE"
                          and c)
    assert campaign["solutionVersionArn"] == versions["sims"] and campaign["minProvisionedTPS"] == 2
    assert campaign["campaignConfig"]["itemExplorationConfig"] == {"explorationWeight": "0.3"}
    items = eventually(lambda: runtime.get_recommendations(campaignArn=arn, userId="1", numResults=5)["itemList"])
    assert len(items) == 5 and all(item["itemId"] for item in items)

    sims_solution = versions["sims"].rsplit("/", 1)[0]
    code, status, message = error_of(control.delete_solution, solutionArn=sims_solution)
    assert (code, status) == ("ResourceInUseException", 400) and "shelf" in message
    assert [c["name"] for c in control.list_campaigns(solutionArn=sims_solution)["campaigns"]] == ["shelf"]

    assert control.update_campaign(campaignArn=arn, solutionVersionArn=versions["pop"])["campaignArn"] == arn

    def switched() -> dict[str, Any] | None:
        described = control.describe_campaign(campaignArn=arn)["campaign"]
        update = described.get("latestCampaignUpdate") or {}
        done = described["solutionVersionArn"] == versions["pop"] and update.get("status") == "ACTIVE"
        return described if done else None

    assert eventually(switched)["status"] == "ACTIVE"

    def from_popularity() -> bool:  # on both workers (each request may reach either): no item-knn reasons left
        answers = [runtime.get_recommendations(campaignArn=arn, userId="2", numResults=5)["itemList"]
                   for _ in range(4)]
        return all(len(items) == 5 and not any("interacted" in " ".join(i.get("reason", [])) for i in items)
                   for items in answers)

    assert eventually(from_popularity)
    pop_solution = versions["pop"].rsplit("/", 1)[0]
    assert [c["name"] for c in control.list_campaigns(solutionArn=pop_solution)["campaigns"]] == ["shelf"]

    control.delete_campaign(campaignArn=arn)
    code, status, _ = error_of(control.describe_campaign, campaignArn=arn)
    assert (code, status) == ("ResourceNotFoundException", 400)
    assert "shelf" not in {c["name"] for c in control.list_campaigns()["campaigns"]}


def test_a_solution_no_campaign_uses_is_deleted_with_its_versions(served: Served) -> None:
    control = served.control
    solution = control.create_solution(name="doomed", datasetGroupArn=served.group_arn,
                                       recipeArn=RECIPE + "aws-popularity-count")["solutionArn"]
    version = trained(served, control.create_solution_version(solutionArn=solution)["solutionVersionArn"])
    assert version["status"] == "ACTIVE"
    artifacts = [v["artifact_uri"] for v in served.store.list_solution_versions(
        served.store.get_dataset_group("movies").id) if v["solution_name"] == "doomed"]
    control.delete_solution(solutionArn=solution)
    for call, kwargs in ((control.describe_solution, {"solutionArn": solution}),
                         (control.describe_solution_version, {"solutionVersionArn": version["solutionVersionArn"]})):
        assert error_of(call, **kwargs)[0] == "ResourceNotFoundException"
    assert artifacts and all(uri and not Path(uri).exists() for uri in artifacts)


def test_batch_inference_job_writes_recommendations_for_each_line(served: Served, versions: dict[str, str],
                                                                   tmp_path: Path) -> None:
    control = served.control
    source = tmp_path / "users.json"
    source.write_text("".join(json.dumps({"userId": user}) + "\n" for user in ("1", "2", "3")))
    folder = tmp_path / "out"
    arn = control.create_batch_inference_job(
        jobName="nightly", solutionVersionArn=versions["sims"], numResults=4, roleArn=ROLE,
        jobInput={"s3DataSource": {"path": str(source)}},
        jobOutput={"s3DataDestination": {"path": f"{folder}/"}})["batchInferenceJobArn"]
    assert arn.endswith(":batch-inference-job/nightly")

    def done() -> dict[str, Any] | None:
        job = control.describe_batch_inference_job(batchInferenceJobArn=arn)["batchInferenceJob"]
        assert job["status"] in ("PENDING", "IN PROGRESS", "ACTIVE"), job.get("failureReason")
        return job if job["status"] == "ACTIVE" else None

    job = eventually(done)
    assert job["jobName"] == "nightly" and job["solutionVersionArn"] == versions["sims"]
    assert job["numResults"] == 4 and job["roleArn"] == ROLE
    assert job["jobInput"]["s3DataSource"]["path"] == str(source)
    assert job["jobOutput"]["s3DataDestination"]["path"] == f"{folder}/"
    lines = [json.loads(line) for line in (folder / "users.json.out.jsonl").read_text().splitlines()]
    assert [line["input"]["userId"] for line in lines] == ["1", "2", "3"]
    assert all(line["error"] is None and len(line["output"]["recommendedItems"]) == 4 for line in lines)

    listed = control.list_batch_inference_jobs(solutionVersionArn=versions["sims"])["batchInferenceJobs"]
    assert [(j["jobName"], j["status"]) for j in listed] == [("nightly", "ACTIVE")]
    assert control.list_batch_inference_jobs(solutionVersionArn=versions["pop"])["batchInferenceJobs"] == []

    code, status, _ = error_of(control.create_batch_inference_job, jobName="nightly",
                               solutionVersionArn=versions["pop"], roleArn=ROLE,
                               jobInput={"s3DataSource": {"path": str(source)}},
                               jobOutput={"s3DataDestination": {"path": str(tmp_path / "again.jsonl")}})
    assert (code, status) == ("ResourceAlreadyExistsException", 400)


def test_names_are_unique_across_dataset_groups(served: Served, versions: dict[str, str]) -> None:
    control = served.control
    other = control.create_dataset_group(name="elsewhere")["datasetGroupArn"]
    for group in (served.group_arn, other):
        code, status, message = error_of(control.create_solution, name="sims", datasetGroupArn=group,
                                         recipeArn=RECIPE + "aws-sims")
        assert (code, status) == ("ResourceAlreadyExistsException", 400) and "sims" in message
    code, _, _ = error_of(control.create_solution_version, solutionArn=versions["pop"].rsplit("/", 1)[0],
                          name="sims-first")
    assert code == "ResourceAlreadyExistsException"
    campaign = control.create_campaign(name="twice", solutionVersionArn=versions["pop"])["campaignArn"]
    code, _, _ = error_of(control.create_campaign, name="twice", solutionVersionArn=versions["sims"])
    assert code == "ResourceAlreadyExistsException"
    control.delete_campaign(campaignArn=campaign)


def test_unknown_arns_are_not_found(served: Served, versions: dict[str, str]) -> None:
    control = served.control
    sims_version = versions["sims"]
    prefix = sims_version.split(":solution/")[0]
    version_id = sims_version.rsplit("/", 1)[1]
    calls = [
        (control.describe_solution, {"solutionArn": f"{prefix}:solution/nope"}),
        (control.create_solution_version, {"solutionArn": f"{prefix}:solution/nope"}),
        (control.describe_solution_version, {"solutionVersionArn": f"{prefix}:solution/sims/999999"}),
        (control.describe_solution_version, {"solutionVersionArn": f"{prefix}:solution/pop/{version_id}"}),
        (control.get_solution_metrics, {"solutionVersionArn": f"{prefix}:solution/sims/999999"}),
        (control.describe_campaign, {"campaignArn": f"{prefix}:campaign/nope"}),
        (control.update_campaign, {"campaignArn": f"{prefix}:campaign/nope", "solutionVersionArn": sims_version}),
        (control.delete_campaign, {"campaignArn": f"{prefix}:campaign/nope"}),
        (control.describe_batch_inference_job, {"batchInferenceJobArn": f"{prefix}:batch-inference-job/nope"}),
        (control.create_solution, {"name": "lost", "datasetGroupArn": f"{prefix}:dataset-group/nope"}),
        (control.create_solution, {"name": "lost", "datasetGroupArn": served.group_arn,
                                   "recipeArn": RECIPE + "aws-hrnn"}),
    ]
    for call, kwargs in calls:
        code, status, _ = error_of(call, **kwargs)
        assert (code, status) == ("ResourceNotFoundException", 400), (call, kwargs)


def test_bad_input_is_refused_naming_the_field(served: Served, versions: dict[str, str]) -> None:
    control = served.control
    group = served.group_arn
    code, status, message = error_of(control.create_solution, name="knn-bad", datasetGroupArn=group,
                                     recipeArn=RECIPE + "aws-sims",
                                     solutionConfig={"algorithmHyperParameters": {"neighbours": "50",
                                                                                  "neighbors": "20"}})
    assert (code, status) == ("InvalidInputException", 400)
    assert "algorithmHyperParameters" in message and "'neighbours'" in message and "neighbors" in message
    _, status, message = error_of(control.create_solution, name="knn-bad", datasetGroupArn=group,
                                  recipeArn=RECIPE + "aws-sims",
                                  solutionConfig={"algorithmHyperParameters": {"neighbors": "many"}})
    assert status == 400 and "neighbors" in message
    refused = [({"performHPO": True}, "performHPO"), ({"eventType": "click"}, "eventType"),
               ({"performAutoML": True}, "performAutoML"), ({"name": "bad name!"}, "name"),
               ({"solutionConfig": {"hpoConfig": {"hpoObjective": {"type": "Maximize"}}}}, "solutionConfig.hpoConfig")]
    for extra, name in refused:
        code, status, message = error_of(control.create_solution, **({"name": "knn-bad", "datasetGroupArn": group,
                                                                      "recipeArn": RECIPE + "aws-sims"} | extra))
        assert (code, status) == ("InvalidInputException", 400) and message.startswith(name), message
    code, _, message = error_of(control.create_solution_version, solutionArn=versions["sims"].rsplit("/", 1)[0],
                                trainingMode="UPDATE")
    assert code == "InvalidInputException" and message.startswith("trainingMode")
    code, _, message = error_of(control.describe_solution_version, solutionVersionArn=versions["sims"] + "x")
    assert code == "InvalidInputException" and message.startswith("solutionVersionArn")
    code, _, message = error_of(control.describe_solution, solutionArn="solution/sims")
    assert code == "InvalidInputException" and "solutionArn" in message
    code, _, message = error_of(control.create_batch_inference_job, jobName="wide",
                                solutionVersionArn=versions["sims"], roleArn=ROLE, numResults=10_000,
                                jobInput={"s3DataSource": {"path": "/nonexistent/users.json"}},
                                jobOutput={"s3DataDestination": {"path": "/tmp/out.jsonl"}})
    assert code == "InvalidInputException" and message.startswith("numResults")
    code, _, message = error_of(control.create_batch_inference_job, jobName="lost",
                                solutionVersionArn=versions["sims"], roleArn=ROLE,
                                jobInput={"s3DataSource": {"path": "/nonexistent/users.json"}},
                                jobOutput={"s3DataDestination": {"path": "/tmp/out.jsonl"}})
    assert code == "InvalidInputException" and message.startswith("jobInput.s3DataSource.path")
    assert "/nonexistent/users.json" in message
    code, _, message = error_of(control.create_batch_inference_job, jobName="lost",
                                solutionVersionArn=versions["sims"],
                                jobInput={"s3DataSource": {"path": "/nonexistent/users.json"}},
                                jobOutput={"s3DataDestination": {"path": "/tmp/out.jsonl"}}, roleArn="")
    assert code == "InvalidInputException" and message.startswith("roleArn")
    assert "sims" in {s["name"] for s in control.list_solutions()["solutions"]}
    assert "knn-bad" not in {s["name"] for s in control.list_solutions()["solutions"]}


def test_a_key_of_one_group_sees_and_changes_only_that_group(served: Served, versions: dict[str, str]) -> None:
    group = served.control.create_dataset_group(name="scoped")["datasetGroupArn"]
    scoped = aws_client("personalize", served.url, served.store.create_api_key("admin", "scoped")["key"])
    assert len(scoped.list_recipes()["recipes"]) > len(available())  # the recipes are the same for every group
    assert scoped.list_solutions()["solutions"] == []
    assert scoped.list_solution_versions()["solutionVersions"] == []
    assert scoped.list_campaigns()["campaigns"] == [] and scoped.list_batch_inference_jobs()["batchInferenceJobs"] == []
    scoped.create_solution(name="own", datasetGroupArn=group, recipeArn=RECIPE + "aws-trending-now")
    assert [s["name"] for s in scoped.list_solutions()["solutions"]] == ["own"]
    assert scoped.describe_solution(solutionArn=versions["sims"].split(":solution/")[0] + ":solution/own")[
        "solution"]["recipeArn"] == RECIPE + "aws-trending-now"
    for call, kwargs in [(scoped.describe_solution, {"solutionArn": versions["sims"].rsplit("/", 1)[0]}),
                         (scoped.describe_solution_version, {"solutionVersionArn": versions["sims"]}),
                         (scoped.create_campaign, {"name": "theirs", "solutionVersionArn": versions["sims"]}),
                         (scoped.create_solution, {"name": "theirs", "datasetGroupArn": served.group_arn})]:
        code, status, _ = error_of(call, **kwargs)
        assert (code, status) == ("AccessDeniedException", 403), (call, kwargs)
