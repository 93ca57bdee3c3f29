"""One vocabulary in the CLI (issue 14): resource names as arguments, flags shown without a type, stored filters
by name, HTTP's answers and limits, and hints in CLI terms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recsmith.api.app import create_app
from recsmith.serving import MAX_RESULTS
from recsmith.settings import Settings
from recsmith.store.store import Store

GENRE = "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"


@pytest.fixture
def tiny(cli, tmp_path: Path):
    """Group 'tiny': 3 interactions, too few for the offline metrics' split, and two items with GENRES."""
    source = tmp_path / "tiny.csv"
    source.write_text("USER_ID,ITEM_ID,TIMESTAMP\n1,a,1\n1,b,2\n2,a,3\n")
    assert cli("import", "interactions", source, "-g", "tiny").exit_code == 0
    schema, items = tmp_path / "items-schema.json", tmp_path / "items.csv"
    schema.write_text(json.dumps({"type": "record", "name": "Items", "fields": [
        {"name": "ITEM_ID", "type": "string"}, {"name": "GENRES", "type": ["null", "string"], "categorical": True}]}))
    items.write_text("ITEM_ID,GENRES\na,x\nb,y\n")
    imported = cli("import", "items", items, "-g", "tiny", "--schema", schema)
    assert imported.exit_code == 0, imported.output
    return cli


def _train(cli, group: str, recipe: str, *args: str) -> int:
    result = cli("train", "-g", group, "--recipe", recipe, "--no-metrics", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


# ------------------------------------------------------------------------------ 1. names are arguments
def test_create_takes_the_name_as_its_argument_and_still_accepts_name(tiny) -> None:
    version = _train(tiny, "tiny", "popularity")
    created = tiny("campaign", "create", "home", "-g", "tiny", "--solution-version", version, "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["name"] == "home" and "deprecated" not in created.stderr
    made = tiny("filter", "create", "no-a", "-g", "tiny", "--expression", 'EXCLUDE ItemID WHERE Items.GENRES IN ("x")')
    assert made.exit_code == 0, made.output
    for kind, name in (("filter", "no-a"), ("campaign", "home")):  # describe takes --json as every command does
        described = tiny(kind, "describe", name, "-g", "tiny", "--json")
        assert described.exit_code == 0 and json.loads(described.stdout)["name"] == name

    old = tiny("campaign", "create", "-g", "tiny", "--name", "side", "--solution-version", version)
    assert old.exit_code == 0, old.output
    assert "--name is deprecated" in old.stderr and "recsmith campaign create side -g tiny" in old.stderr
    old_filter = tiny("filter", "create", "-g", "tiny", "--name", "f2", "--expression",
                      'EXCLUDE ItemID WHERE Items.GENRES IN ("y")')
    assert old_filter.exit_code == 0 and "recsmith filter create f2 -g tiny" in old_filter.stderr
    listed = json.loads(tiny("campaign", "list", "-g", "tiny", "--json").stdout)
    assert [c["name"] for c in listed] == ["home", "side"]

    nameless = tiny("campaign", "create", "-g", "tiny", "--solution-version", version)
    assert nameless.exit_code == 1 and "first argument" in nameless.stderr
    twice = tiny("filter", "create", "x", "-g", "tiny", "--name", "y", "--expression", "EXCLUDE ItemID WHERE x")
    assert twice.exit_code == 1 and "named twice" in twice.stderr
    assert "--name" not in tiny("campaign", "create", "--help").stdout  # hidden


def test_campaign_update_changes_the_config_as_http_does(tiny) -> None:
    version = _train(tiny, "tiny", "popularity")
    assert tiny("campaign", "create", "home", "-g", "tiny", "--solution-version", version,
                "--config", '{"new_items_share": 0.2}').exit_code == 0
    updated = tiny("campaign", "update", "home", "-g", "tiny", "--no-exclude-seen", "--json")
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.stdout)["config"] == {"exclude_seen": False, "new_items_share": 0.2}
    nothing = tiny("campaign", "update", "home", "-g", "tiny")
    assert nothing.exit_code == 1 and "--solution-version" in nothing.stderr
    bad = tiny("campaign", "update", "home", "-g", "tiny", "--config", "[1]")
    assert bad.exit_code == 1 and "JSON object" in bad.stderr


# ------------------------------------------------------------------------------ 2. flags without a type
@pytest.mark.parametrize("command", [["train"], ["campaign", "create"], ["recommend"], ["campaign", "stats"]])
def test_help_shows_flags_without_a_type(cli, command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "--json" in result.stdout and "--help" in result.stdout
    assert "<bool>" not in result.stdout
    assert "<int>" in result.stdout or "<str>" in result.stdout  # options that take a value keep their type


# ---------------------------------------------------------------- 3, 4. stored filters; HTTP's answer and limits
def test_recommend_answers_what_http_answers(movielens, db_url: str, tmp_path: Path) -> None:
    knn, als = _train(movielens, "ml", "item-knn"), _train(movielens, "ml", "als", "--param", "epochs=5")
    for name, version in (("knn", knn), ("als", als)):
        assert movielens("campaign", "create", name, "-g", "ml", "--solution-version", version).exit_code == 0
    assert movielens("filter", "create", "genre", "-g", "ml", "--expression", GENRE).exit_code == 0

    def cli_items(*args: object) -> list[tuple[str, float, str]]:
        result = movielens(*args, "--json")
        assert result.exit_code == 0, result.output
        return [(row["item_id"], row["score"], row["reason"]) for row in json.loads(result.stdout)["items"]]

    store = Store(db_url)
    key = store.create_api_key("read", "ml")["key"]
    with TestClient(create_app(Settings(home=tmp_path / "home", database_url=db_url), store=store)) as client:

        def http_items(campaign: str, **body: object) -> list[tuple[str, float, str]]:
            response = client.post(f"/v1/dataset-groups/ml/campaigns/{campaign}/recommendations", json=body,
                                   headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text
            return [(row["item_id"], row["score"], row["reason"]) for row in response.json()["items"]]

        for campaign, version in (("knn", knn), ("als", als)):
            plain = cli_items("recommend", "--solution-version", version, "--user", "1", "--num", 20)
            assert plain == http_items(campaign, user_id="1", num_results=20)
            filtered = cli_items("recommend", "--solution-version", version, "--user", "1", "--num", 15,
                                 "--filter", "genre", "--filter-value", "GENRE=Horror", "--filter-value",
                                 "GENRE=Thriller")
            assert filtered == http_items(campaign, user_id="1", num_results=15, filter="genre",
                                          filter_values={"GENRE": ["Horror", "Thriller"]})
        assert {reason for _, _, reason in plain} == {"personalized"}  # als: a factor model, on both
        knn_reasons = {r for _, _, r in cli_items("recommend", "--solution-version", knn, "--user", "1")}
        assert all(r.startswith("because you interacted with ") for r in knn_reasons), knn_reasons
        related = cli_items("similar", "--solution-version", knn, "--item", "260", "--num", 12, "--filter", "genre",
                            "--filter-value", "GENRE=Comedy")
        assert related == http_items("knn", item_id="260", num_results=12, filter="genre",
                                     filter_values={"GENRE": "Comedy"})
        too_many = client.post("/v1/dataset-groups/ml/campaigns/knn/recommendations",
                               json={"user_id": "1", "num_results": MAX_RESULTS + 1},
                               headers={"Authorization": f"Bearer {key}"})
        assert too_many.status_code == 422
    store.close()

    most = cli_items("recommend", "--solution-version", knn, "--user", "1", "--num", MAX_RESULTS)
    assert len(most) == MAX_RESULTS
    refused = movielens("recommend", "--solution-version", knn, "--user", "1", "--num", 10_000)
    assert refused.exit_code == 2 and "--num" in refused.output and str(MAX_RESULTS) in refused.output
    assert "--num" in movielens("similar", "--solution-version", knn, "--item", "1", "--num", 0).output


def test_recommend_filter_names_a_stored_filter(movielens) -> None:
    version = _train(movielens, "ml", "item-knn")
    assert movielens("filter", "create", "genre", "-g", "ml", "--expression", GENRE).exit_code == 0
    by_name = movielens("recommend", "--solution-version", version, "--user", "1", "--filter", "genre",
                        "--filter-value", "GENRE=Western", "--json")
    by_expression = movielens("recommend", "--solution-version", version, "--user", "1", "--filter-expression",
                              GENRE, "--filter-value", "GENRE=Western", "--json")
    assert by_name.exit_code == 0 and by_expression.exit_code == 0, by_name.output + by_expression.output
    assert json.loads(by_name.stdout)["items"] == json.loads(by_expression.stdout)["items"]
    old = movielens("recommend", "--solution-version", version, "--user", "1", "--filter", GENRE,
                    "--filter-value", "GENRE=Western", "--json")  # an expression, as --filter took before
    assert old.exit_code == 0 and json.loads(old.stdout)["items"] == json.loads(by_name.stdout)["items"]
    assert "--filter-expression" in old.stderr

    unknown = movielens("recommend", "--solution-version", version, "--user", "1", "--filter", "genres")
    assert unknown.exit_code == 1
    assert "no filter 'genres'" in unknown.stderr and "its filters: genre" in unknown.stderr
    similar = movielens("similar", "--solution-version", version, "--item", "260", "--filter", "nope")
    assert similar.exit_code == 1 and "its filters: genre" in similar.stderr
    both = movielens("recommend", "--solution-version", version, "--user", "1", "--filter", "genre",
                     "--filter-expression", GENRE)
    assert both.exit_code == 1 and "not both" in both.stderr


# ------------------------------------------------------------------------------- 5, 6. hints in CLI terms
def test_train_on_tiny_data_points_to_no_metrics(tiny) -> None:
    result = tiny("train", "-g", "tiny", "--recipe", "popularity")
    assert result.exit_code == 1
    assert "--no-metrics" in result.stderr and "recsmith train -g tiny --recipe popularity" in result.stderr
    assert "failed" in result.stderr  # the progress bar says so, not "done"
    assert tiny("train", "-g", "tiny", "--recipe", "popularity", "--no-metrics").exit_code == 0


@pytest.mark.parametrize(("param", "expected"), [
    ('components={"nosuch": 1}', "param components: unknown recipe 'nosuch'; available recipes:"),
    ('components={"ease": "x"}', "param components.ease='x': Input should be a valid number"),
    ("components=[1]", "param components=[1]: Input should be a valid dictionary"),
    ("components={}", "param components: it must name at least one recipe"),
    ('components={"hybrid": 1}', "param components: a hybrid cannot contain another hybrid"),
    ('component_params={"ease": {"reg": 1}}', "param component_params: params given for 'ease', which are not "
                                              "among the components ('item-knn', 'user-knn')"),
    ('component_params={"item-knn": {"nope": 1}}', "param component_params: item-knn: unknown param 'nope'"),
    ('components={"ease": 1', "--param components: invalid JSON at column 11"),
])
def test_hybrid_param_errors_name_the_param_and_the_bad_part(tiny, param: str, expected: str) -> None:
    result = tiny("train", "-g", "tiny", "--recipe", "hybrid", "--param", param, "--no-metrics")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert expected in message, message
    assert "?=" not in message and "Value error" not in message
