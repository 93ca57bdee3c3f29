"""Stored filters over HTTP and the CLI."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from recsmith.cli.main import app
from recsmith.client import BadRequest, NotFound


def test_filter_crud_over_http(server):
    with server.client() as client:
        created = client.create_filter("movies", "cheap", "INCLUDE ItemID WHERE Items.GENRES IN ($G) | "
                                                          'EXCLUDE ItemID WHERE Items.GENRES IN ("Horror")')
        assert created["parameters"] == ["G"]
        assert client.get_filter("movies", "cheap")["expression"].startswith("INCLUDE")
        assert "cheap" in {f["name"] for f in client.list_filters("movies")}
        result = client.recommend("movies", "knn", user_id="1", num_results=5, filter="cheap",
                                  filter_values={"G": ["Comedy", "Horror"]})
        assert len(result.items) == 5
        with pytest.raises(BadRequest, match="already has a filter"):
            client.create_filter("movies", "cheap", 'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")')
        client.delete_filter("movies", "cheap")
        with pytest.raises(NotFound):
            client.get_filter("movies", "cheap")


def test_malformed_expression_is_refused_with_the_position(server):
    with server.client() as client, pytest.raises(BadRequest) as excinfo:
        client.create_filter("movies", "broken", "INCLUDE ItemID WHERE Items.GENRES IN (")
    assert excinfo.value.status == 400
    assert "position" in excinfo.value.message and "expected" in excinfo.value.message


def test_filter_cli(server):
    runner = CliRunner()
    env = {"RECSMITH_HOME": str(server.home)}
    created = runner.invoke(app, ["filter", "create", "-g", "movies", "--name", "cli-filter", "--expression",
                                  'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")'], env=env)
    assert created.exit_code == 0, created.output
    listed = runner.invoke(app, ["filter", "list", "-g", "movies", "--json"], env=env)
    assert "cli-filter" in listed.output
    broken = runner.invoke(app, ["filter", "create", "-g", "movies", "--name", "x", "--expression",
                                 "INCLUDE ItemID WHERE"], env=env)
    assert broken.exit_code == 1 and "position" in broken.output
    assert runner.invoke(app, ["filter", "delete", "cli-filter", "-g", "movies"], env=env).exit_code == 0
    assert "cli-filter" not in runner.invoke(app, ["filter", "list", "-g", "movies", "--json"], env=env).output


# Personalize's request conventions on /v1: quoted filter values and metadataColumns' {"ITEMS": [...]} form


def _post(server, body: dict, path: str = "recommendations") -> httpx.Response:
    """A raw JSON request to the knn campaign (the SDK's client sends metadata_columns as a list only)."""
    return httpx.post(f"{server.url}/v1/dataset-groups/movies/campaigns/knn/{path}", json=body,
                      headers={"Authorization": f"Bearer {server.read_key}"}, timeout=60)


def _genre_items(server, values, **extra) -> list[dict]:
    response = _post(server, {"user_id": "1", "num_results": 20, "filter": "genre",
                              "filter_values": {"GENRE": values}, "metadata_columns": {"ITEMS": ["GENRES"]},
                              **extra})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _ids(items: list[dict]) -> list[str]:
    return [item["item_id"] for item in items]


def test_quoted_filter_value_is_the_bare_value(server):
    quoted = _genre_items(server, '"Comedy"')
    assert len(quoted) == 20
    assert _ids(quoted) == _ids(_genre_items(server, "Comedy"))
    for item in quoted:  # metadata_columns given as Personalize's map returned the genres
        assert "Comedy" in item["metadata"]["GENRES"].split("|"), item


def test_quoted_filter_values_are_the_list(server):
    several = _genre_items(server, '"Comedy",  "Drama"')
    assert _ids(several) == _ids(_genre_items(server, ["Comedy", "Drama"]))
    assert {genre for item in several for genre in item["metadata"]["GENRES"].split("|")} >= {"Comedy", "Drama"}
    for item in several:
        assert {"Comedy", "Drama"} & set(item["metadata"]["GENRES"].split("|")), item
    drama = set(_ids(_genre_items(server, '"Drama"')))
    assert drama - set(_ids(_genre_items(server, '"Comedy"'))), "the two genres give the same items"


@pytest.mark.parametrize(("value", "position"), [('"Comedy', 0), ('"Comedy" "Drama"', 9), ('"Comedy",', 8),
                                                 ('"Comedy", Drama', 10)])
def test_malformed_quoted_filter_value_is_a_400_naming_the_parameter(server, value, position):
    response = _post(server, {"user_id": "1", "filter": "genre", "filter_values": {"GENRE": value}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == "filter", error
    assert "$GENRE" in error["message"] and f"at position {position}" in error["message"], error


@pytest.mark.parametrize("value", ["", '""', [""]])
def test_empty_filter_value_is_a_400(server, value):
    response = _post(server, {"user_id": "1", "filter": "genre", "filter_values": {"GENRE": value}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "$GENRE" in error["message"] and "empty" in error["message"], error


def test_promotion_filter_values_take_the_quoted_form(server):
    promotion = {"name": "comedies", "filter": "genre", "filter_values": {"GENRE": '"Comedy"'}, "percent": 50}
    items = _post(server, {"user_id": "1", "num_results": 10, "metadata_columns": {"ITEMS": ["GENRES"]},
                           "promotion": promotion}).json()["items"]
    promoted = [item for item in items if item["reason"] == "promotion: comedies"]
    assert promoted, items
    assert all("Comedy" in item["metadata"]["GENRES"].split("|") for item in promoted)
    promotion["filter_values"] = {"GENRE": '"Comedy'}
    refused = _post(server, {"user_id": "1", "promotion": promotion})
    assert refused.status_code == 400 and "$GENRE" in refused.json()["error"]["message"], refused.text


def test_metadata_columns_as_personalize_writes_them(server):
    as_list = _post(server, {"user_id": "1", "num_results": 5, "metadata_columns": ["GENRES", "TITLE"]}).json()
    as_map = _post(server, {"user_id": "1", "num_results": 5,
                            "metadata_columns": {"ITEMS": ["GENRES", "TITLE"]}}).json()
    assert as_map["items"] == as_list["items"]
    assert set(as_map["items"][0]["metadata"]) == {"GENRES", "TITLE"}
    ranked = _post(server, {"user_id": "1", "input_list": _ids(as_list["items"]),
                            "metadata_columns": {"ITEMS": ["GENRES"]}}, "personalized-ranking")
    assert ranked.status_code == 200, ranked.text
    assert all(set(item["metadata"]) == {"GENRES"} for item in ranked.json()["items"])
    refused = _post(server, {"user_id": "1", "metadata_columns": {"USERS": ["AGE"]}})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["field"] == "metadata_columns" and "USERS" in error["message"], error


def test_get_route_takes_the_quoted_form(server):
    def get(value: str) -> httpx.Response:
        return httpx.get(f"{server.url}/v1/dataset-groups/movies/campaigns/knn/recommendations",
                         params=[("user_id", "1"), ("num_results", "10"), ("filter", "genre"),
                                 ("filter_value", f"GENRE={value}")],
                         headers={"Authorization": f"Bearer {server.read_key}"}, timeout=60)

    quoted = get('"Comedy"')
    assert quoted.status_code == 200, quoted.text
    assert _ids(quoted.json()["items"]) == _ids(get("Comedy").json()["items"])
    assert _ids(quoted.json()["items"]) == _ids(_genre_items(server, "Comedy"))[:10]
    assert _ids(get('"Comedy","Drama"').json()["items"]) == _ids(_genre_items(server, ["Comedy", "Drama"]))[:10]
    malformed = get('"Comedy')
    assert malformed.status_code == 400 and "$GENRE" in malformed.json()["error"]["message"], malformed.text


def test_personalize_runtime_filter_values_reach_the_same_parsing(server):
    from botocore.exceptions import ClientError
    from personalize_clients import aws_client  # tests/api is on sys.path; skips without boto3

    runtime = aws_client("personalize-runtime", server.url, server.read_key)
    arn = "arn:aws:personalize:us-east-1:000000000000:"

    def ask(value: str) -> list[dict]:
        return runtime.get_recommendations(campaignArn=arn + "campaign/knn", userId="1", numResults=20,
                                           filterArn=arn + "filter/genre", filterValues={"GENRE": value},
                                           metadataColumns={"ITEMS": ["GENRES"]})["itemList"]

    quoted = ask('"Comedy"')
    assert [item["itemId"] for item in quoted] == _ids(_genre_items(server, "Comedy"))
    assert all("Comedy" in item["metadata"]["GENRES"].split("|") for item in quoted)
    assert [item["itemId"] for item in ask('"Comedy","Drama"')] == _ids(_genre_items(server, ["Comedy", "Drama"]))
    with pytest.raises(ClientError) as info:
        ask('"Comedy",')
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidInputException" and "$GENRE" in error["Message"], error


def test_cli_filter_value_takes_the_quoted_form(server):
    runner = CliRunner()
    env = {"RECSMITH_HOME": str(server.home)}

    def recommend(*values: str) -> list[str]:
        flags = [flag for value in values for flag in ("--filter-value", f"GENRE={value}")]
        result = runner.invoke(app, ["recommend", "--solution-version", str(server.versions["item-knn"]), "--user",
                                     "1", "--num", "10", "--filter", "genre", *flags, "--json"], env=env)
        assert result.exit_code == 0, result.output
        return [row["item_id"] for row in json.loads(result.output)["items"]]

    assert recommend('"Comedy"') == recommend("Comedy") == _ids(_genre_items(server, "Comedy"))[:10]
    assert recommend('"Comedy", "Drama"') == recommend("Comedy", "Drama")
    malformed = runner.invoke(app, ["recommend", "--solution-version", str(server.versions["item-knn"]), "--user",
                                    "1", "--filter", "genre", "--filter-value", 'GENRE="Comedy'], env=env)
    assert malformed.exit_code == 1 and "$GENRE" in malformed.output, malformed.output
