"""Errors that mislead, over HTTP and the CLI (issue 14): filters naming fields the group's schemas lack are refused
when they are created, a body that is not JSON is a 400 naming the line and column, and each interface gives advice
in its own terms (HTTP names body fields, the CLI its flags)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recsmith.api.app import create_app
from recsmith.cli.main import app as cli_app
from recsmith.datasets.synthetic import synthetic_frame
from recsmith.jobs.importing import import_dataset
from recsmith.jobs.training import train_solution_version
from recsmith.settings import Settings
from recsmith.store.store import Store

GROUP = "shop"
ITEMS_SCHEMA = {"type": "record", "name": "Items", "fields": [
    {"name": "ITEM_ID", "type": "string"},
    {"name": "GENRES", "type": ["null", "string"], "categorical": True},
    {"name": "PRICE", "type": ["null", "double"]}]}
USERS_SCHEMA = {"type": "record", "name": "Users", "fields": [
    {"name": "USER_ID", "type": "string"},
    {"name": "SEGMENT", "type": ["null", "string"], "categorical": True},
    {"name": "AGE", "type": "int"}]}
GENRE_FILTER = "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"


@dataclass
class Api:
    client: TestClient
    store: Store
    home: Path
    admin: dict[str, str]
    write: dict[str, str]
    version: int

    def filters(self, name: str, expression: str):
        return self.client.post(f"/v1/dataset-groups/{GROUP}/filters", headers=self.admin,
                                json={"name": name, "expression": expression})


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("advice")
    settings = Settings(home=root / "home")
    store = Store.from_settings(settings)
    store.migrate()
    events = root / "events.csv"
    synthetic_frame(60, 40, 900, seed=3).to_csv(events, index=False)
    import_dataset(store, GROUP, "interactions", str(events))
    items = root / "items.csv"
    items.write_text("ITEM_ID,GENRES,PRICE\n" + "".join(
        f"i{n},{'Comedy|Drama' if n % 2 else 'Horror'},{n}.5\n" for n in range(40)))
    import_dataset(store, GROUP, "items", str(items), schema=json.dumps(ITEMS_SCHEMA))
    users = root / "users.csv"
    users.write_text("USER_ID,SEGMENT,AGE\nu0,gold,30\nu1,silver,41\n")
    import_dataset(store, GROUP, "users", str(users), schema=json.dumps(USERS_SCHEMA))
    store.create_dataset_group("bare")  # no schema at all
    version = train_solution_version(store, settings, GROUP, "popularity", with_metrics=False)["id"]
    store.create_campaign(GROUP, "home", version)
    store.create_filter(GROUP, "genre", GENRE_FILTER)
    admin = {"Authorization": f"Bearer {store.create_api_key('admin', None, 'ops')['key']}"}
    write = {"Authorization": f"Bearer {store.create_api_key('write', GROUP)['key']}"}
    with TestClient(create_app(settings, store=store)) as client:
        yield Api(client, store, settings.home, admin, write, version)
    store.close()


def error_of(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status, body
    if field is not None:
        assert body["error"].get("field") == field, body
    return body["error"]


@pytest.fixture(scope="module")
def cli(api: Api):
    runner = CliRunner()

    def run(*args: object):
        return runner.invoke(cli_app, [str(a) for a in args], env={"RECSMITH_HOME": str(api.home),
                                                                 "RECSMITH_DATABASE_URL": None})
    return run


# ---------------------------------------------------------------- filters naming fields that do not exist
@pytest.mark.parametrize(("expression", "wrong", "hint"), [
    ("INCLUDE ItemID WHERE Items.GENRE IN ($G)", "Items.GENRE", "did you mean GENRES?"),
    ('EXCLUDE ItemID WHERE Items.NOPE IN ("x")', "Items.NOPE", "(its fields: GENRES, PRICE)"),
    ('INCLUDE ItemID WHERE Items.GENRES IN ("Drama") IF CurrentUser.SEGMNT = "gold"', "CurrentUser.SEGMNT",
     "did you mean SEGMENT?"),
    ("INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRIC", "CurrentItem.PRIC", "did you mean PRICE?"),
    ('EXCLUDE ItemID WHERE Items.ITEM_ID IN ("i1")', "Items.ITEM_ID", "cannot filter on the item id"),
])
def test_a_filter_naming_a_field_the_schema_lacks_is_a_400_with_the_position(api, expression, wrong, hint):
    error = error_of(api.filters("wrong", expression), 400, "expression")
    position = expression.index(wrong) + wrong.index(".") + 1
    assert wrong in error["message"] and hint in error["message"], error
    assert f"at position {position}" in error["message"], error
    caret_line = error["message"].split("\n")[2]  # message, the expression, the caret under the field
    assert caret_line.index("^") - 2 == position, error["message"]
    assert "wrong" not in {f["name"] for f in api.client.get(f"/v1/dataset-groups/{GROUP}/filters",
                                                             headers=api.admin).json()}


def test_interactions_can_only_name_event_type_and_reserved_fields_count(api):
    error = error_of(api.filters("wrong", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYP IN ("click")'), 400,
                     "expression")
    assert "EVENT_TYPE" in error["message"]
    created = api.filters("clicked", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click") | '
                                     'INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICE AND Items.GENRES IN '
                                     'CurrentItem.GENRES IF CurrentUser.SEGMENT = "gold"')
    assert created.status_code == 201, created.text


def test_a_filter_on_a_dataset_the_group_has_no_schema_for_is_refused(api):
    response = api.client.post("/v1/dataset-groups/bare/filters", headers=api.admin,
                               json={"name": "f", "expression": 'EXCLUDE ItemID WHERE Items.GENRES IN ("x")'})
    error = error_of(response, 400, "expression")
    assert "no items schema yet" in error["message"] and "at position 27" in error["message"]
    fine = api.client.post("/v1/dataset-groups/bare/filters", headers=api.admin,
                           json={"name": "f", "expression": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("x")'})
    assert fine.status_code == 201, fine.text


def test_the_cli_refuses_the_same_filters_with_the_same_message(api, cli):
    result = cli("filter", "create", "-g", GROUP, "--name", "wrong", "--expression",
                 "INCLUDE ItemID WHERE Items.GENRE IN ($G)")
    assert result.exit_code == 1
    assert "unknown field Items.GENRE" in result.output and "did you mean GENRES?" in result.output
    assert "at position 27" in result.output
    ok = cli("filter", "create", "-g", GROUP, "--name", "cheap", "--expression", "EXCLUDE ItemID WHERE Items.PRICE > 9")
    assert ok.exit_code == 0, ok.output


# ---------------------------------------------------------------- malformed JSON
@pytest.mark.parametrize(("method", "path", "key"), [
    ("POST", f"/v1/dataset-groups/{GROUP}/campaigns/home/recommendations", "write"),
    ("PUT", f"/v1/dataset-groups/{GROUP}/items", "write"),
    ("POST", f"/v1/dataset-groups/{GROUP}/events", "write"),
    ("POST", f"/v1/dataset-groups/{GROUP}/filters", "admin"),
    ("PUT", f"/v1/dataset-groups/{GROUP}/campaigns/home", "admin"),
])
def test_a_body_that_is_not_json_is_a_400_naming_line_and_column(api, method, path, key):
    body = '{"user_id": "1", "num_results": 5,}'  # the issue's: a trailing comma at offset 34
    response = api.client.request(method, path, headers=getattr(api, key) | {"Content-Type": "application/json"},
                                  content=body)
    error = error_of(response, 400, "body")
    assert error["message"] == ("invalid JSON at line 1, column 35: Expecting property name enclosed in double "
                                "quotes"), error
    second = api.client.request(method, path, headers=getattr(api, key) | {"Content-Type": "application/json"},
                                content='{\n  "a": 1,\n  "b": tru\n}')
    assert error_of(second, 400, "body")["message"] == "invalid JSON at line 3, column 8: Expecting value"


# ---------------------------------------------------------------- advice in each interface's terms
def test_put_items_with_an_unknown_field_names_the_body_field_not_a_flag(api):
    response = api.client.put(f"/v1/dataset-groups/{GROUP}/items", headers=api.write,
                              json={"items": [{"item_id": "x1", "properties": {"GENRE": "Drama"}}]})
    error = error_of(response, 400, "properties.GENRE")
    message = error["message"]
    assert "--" not in message and "column_map" not in message, message
    assert "unknown field 'GENRE'" in message and "did you mean properties.GENRES?" in message, message
    assert "leave properties.GENRE out" in message, message
    twice = api.client.put(f"/v1/dataset-groups/{GROUP}/items", headers=api.write,  # fields match without case
                           json={"items": [{"item_id": "x1", "properties": {"genres": "Drama", "GENRES": "x"}}]})
    error = error_of(twice, 400, "properties.GENRES")
    assert "--map" not in error["message"] and "keep one of properties.genres and properties.GENRES" in \
        error["message"], error


def test_put_users_without_a_required_field_names_the_body_field(api):
    response = api.client.put(f"/v1/dataset-groups/{GROUP}/users", headers=api.write,
                              json={"users": [{"user_id": "u9", "properties": {"SEGMENT": "gold"}}]})
    error = error_of(response, 400, "properties.AGE")
    assert "--map" not in error["message"] and "give every record properties.AGE" in error["message"], error


def test_a_missing_filter_value_names_filter_values_over_http(api):
    path = f"/v1/dataset-groups/{GROUP}/campaigns/home/recommendations"
    error = error_of(api.client.post(path, headers=api.write, json={"user_id": "u1", "filter": "genre"}), 400,
                     "filter_values.GENRE")
    assert "filter_values" in error["message"] and "values=" not in error["message"], error
    assert "--filter-value" not in error["message"], error
    got = error_of(api.client.get(path, headers=api.write, params={"user_id": "u1", "filter": "genre"}), 400,
                   "filter_value")
    assert "filter_value=GENRE=VALUE" in got["message"], got


def test_the_cli_gives_flags(api, cli, tmp_path):
    result = cli("recommend", "--solution-version", api.version, "--user", "u1", "--filter", GENRE_FILTER)
    assert result.exit_code == 1
    assert "--filter-value GENRE=VALUE" in result.output and "values=" not in result.output, result.output
    items = tmp_path / "more-items.csv"
    items.write_text("ITEM_ID,GENRES,COLOR\ni1,Drama,red\n")
    imported = cli("import", "items", items, "-g", GROUP)
    assert imported.exit_code == 1
    assert "--map COLOR=-" in imported.output and "column_map" not in imported.output, imported.output


def test_campaign_and_group_errors_name_routes_not_commands(api, cli):
    taken = api.client.post(f"/v1/dataset-groups/{GROUP}/campaigns", headers=api.admin,
                            json={"name": "home", "solution_version_id": api.version})
    error = error_of(taken, 400, "name")
    assert "recsmith" not in error["message"], error
    assert f"PUT /v1/dataset-groups/{GROUP}/campaigns/home" in error["message"], error
    missing = api.client.post(f"/v1/dataset-groups/{GROUP}/campaigns", headers=api.admin,
                              json={"name": "other", "solution_version_id": 99_999})
    error = error_of(missing, 404, "solution_version_id")
    assert error["message"] == (f"no solution version 99999; list them with GET /v1/dataset-groups/{GROUP}/"
                                "solution-versions"), error
    gone = error_of(api.client.delete(f"/v1/dataset-groups/{GROUP}/solution-versions/99999", headers=api.admin), 404)
    assert "recsmith" not in gone["message"] and "has no solution version 99999" in gone["message"], gone
    nowhere = error_of(api.client.get("/v1/dataset-groups/nowhere/filters", headers=api.admin), 404)
    assert "recsmith" not in nowhere["message"] and "no dataset group 'nowhere'" in nowhere["message"], nowhere
    again = cli("campaign", "create", "-g", GROUP, "--name", "home", "--solution-version", api.version)
    assert again.exit_code == 1 and "recsmith campaign update home" in again.output, again.output


def test_a_bad_stored_campaign_config_names_the_route_that_fixes_it(api):
    put = api.client.put(f"/v1/dataset-groups/{GROUP}/items", headers=api.write,  # the config is read for new items
                         json={"items": [{"item_id": "new-1", "properties": {"GENRES": "Drama"}}]})
    assert put.status_code == 200, put.text
    created = api.client.post(f"/v1/dataset-groups/{GROUP}/campaigns", headers=api.admin,
                              json={"name": "odd", "solution_version_id": api.version,
                                    "config": {"new_items_share": 5}})
    assert created.status_code == 201, created.text
    path = f"/v1/dataset-groups/{GROUP}/campaigns/odd/recommendations"
    deadline = time.monotonic() + 20
    while (response := api.client.post(path, headers=api.write, json={"user_id": "u1"})).status_code == 404:
        assert time.monotonic() < deadline, response.text  # not loaded yet
        time.sleep(0.2)
    error = error_of(response, 400)
    assert "recsmith" not in error["message"], error
    assert f"fix it with PUT /v1/dataset-groups/{GROUP}/campaigns/odd" in error["message"], error
