"""``recsmith dataset-groups list|delete`` and ``recsmith solution-versions delete`` through the CLI: confirmation,
refusal while campaigns exist or serve the version, --force, and what is gone afterwards (rows, artifacts on disk,
tuning studies, scoped API keys), audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from recsmith.cli.main import app
from recsmith.store import tables as t
from recsmith.store.store import Store


def _invoke(*args: object, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def _group(cli, name: str, *, interactions: int = 400, campaign: str | None = "top") -> dict:
    """A synthetic group with two solution versions, a campaign on the first, a filter and a scoped key."""
    assert cli("datasets", "synthetic", "--dataset-group", name, "--users", 40, "--items", 25, "--interactions",
               interactions, "--seed", 1).exit_code == 0
    versions = []
    for _ in range(2):
        result = cli("train", "-g", name, "--recipe", "popularity", "--no-metrics", "--json")
        assert result.exit_code == 0, result.output
        versions.append(json.loads(result.stdout))
    if campaign:
        assert cli("campaign", "create", "-g", name, "--name", campaign, "--solution-version",
                   versions[0]["id"]).exit_code == 0
    assert cli("filter", "create", "-g", name, "--name", "f", "--expression",  # the group has no items schema
               'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("x")').exit_code == 0
    key = json.loads(cli("keys", "create", "--role", "read", "-g", name, "--json").stdout)
    return {"versions": versions, "key": key}


def _rows(db_url: str, group: str) -> dict[str, int]:
    """Rows of every table that names a dataset group, for the group called ``group`` (its id while it existed)."""
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            found = conn.execute(sa.select(t.dataset_groups.c.id).where(t.dataset_groups.c.name == group)).scalar()
            if found is None:
                return {}
            out = {}
            for table in t.metadata.sorted_tables:
                if "dataset_group_id" in table.c:
                    out[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table)
                                                   .where(table.c.dataset_group_id == found)).scalar_one()
            return out
    finally:
        store.close()


def test_a_declined_confirmation_leaves_everything(cli, db_url: str) -> None:
    made = _group(cli, "g")
    before = _rows(db_url, "g")
    for answer in ("n\n", "\n", None):  # no, the default (no), and no terminal to ask on
        result = _invoke("dataset-groups", "delete", "g", "--force", input=answer)
        assert result.exit_code == 1 and "nothing deleted" in result.stderr, result.output
        assert "Delete dataset group 'g' and everything in it (400 interaction(s)" in result.stderr
    assert _rows(db_url, "g") == before and before["interactions"] == 400
    assert all(Path(v["artifact_uri"]).is_dir() for v in made["versions"])
    declined = _invoke("solution-versions", "delete", made["versions"][1]["id"], input="n\n")
    assert declined.exit_code == 1 and "nothing deleted" in declined.stderr
    assert Path(made["versions"][1]["artifact_uri"]).is_dir()
    assert cli("solution-versions", "describe", made["versions"][1]["id"]).exit_code == 0


def test_a_group_with_campaigns_is_refused_naming_them_unless_forced(cli, db_url: str, tmp_path: Path) -> None:
    made = _group(cli, "g")
    _group(cli, "other", interactions=300, campaign="keep")
    refused = cli("dataset-groups", "delete", "g", "--yes")
    assert refused.exit_code == 1
    assert "dataset group 'g' has 1 campaign(s): top" in refused.stderr
    assert "--force" in refused.stderr and "recsmith campaign delete top -g g" in refused.stderr
    assert _rows(db_url, "g")["campaigns"] == 1

    result = cli("dataset-groups", "delete", "g", "--force", "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["campaigns"] == ["top"] and report["artifacts"] == 2 and report["left"] == []
    assert report["rows"]["interactions"] == 400 and report["rows"]["solution_versions"] == 2
    assert report["rows"]["api_keys"] == 1 and report["rows"]["filters"] == 1
    assert _rows(db_url, "g") == {}
    assert not any(Path(v["artifact_uri"]).exists() for v in made["versions"])
    # the other group is untouched, and so are keys for every group
    assert _rows(db_url, "other")["interactions"] == 300
    keys = json.loads(cli("keys", "list", "--json").stdout)
    assert made["key"]["key_id"] not in {k["key_id"] for k in keys} and {k["dataset_group"] for k in keys} == {"other"}
    assert [c["name"] for c in json.loads(cli("campaign", "list", "--json").stdout)] == ["keep"]
    entry = json.loads(cli("audit", "list", "--action", "dataset_group.delete", "--json").stdout)[0]
    assert (entry["resource"], entry["outcome"]) == ("dataset-groups/g", "ok")
    assert entry["detail"]["campaigns"] == ["top"] and entry["detail"]["rows"]["interactions"] == 400


def test_the_groups_tuning_studies_go_and_others_stay(cli, db_url: str) -> None:
    import optuna

    for name in ("g", "other"):
        assert cli("datasets", "synthetic", "--dataset-group", name, "--users", 40, "--items", 25,
                   "--interactions", 400, "--seed", 1).exit_code == 0
        assert cli("tune", "-g", name, "--recipe", "als", "--trials", 1, "--json").exit_code == 0
    storage = optuna.storages.RDBStorage(db_url)
    try:
        assert sorted(optuna.get_all_study_names(storage)) == ["g:als:ndcg@10", "other:als:ndcg@10"]
    finally:
        storage.engine.dispose()
    result = cli("dataset-groups", "delete", "g", "--yes")
    assert result.exit_code == 0 and "1 tuning study(ies)" in result.stdout, result.output
    storage = optuna.storages.RDBStorage(db_url)
    try:
        assert optuna.get_all_study_names(storage) == ["other:als:ndcg@10"]
    finally:
        storage.engine.dispose()


def test_a_group_deleted_can_be_imported_fresh_under_its_name(cli, db_url: str) -> None:
    made = _group(cli, "g")
    assert cli("dataset-groups", "delete", "g", "--force", "-y").exit_code == 0
    assert cli("describe", "-g", "g").exit_code == 1
    assert cli("datasets", "synthetic", "--dataset-group", "g", "--users", 30, "--items", 20, "--interactions",
               250, "--seed", 2).exit_code == 0
    listed = {r["name"]: r for r in json.loads(cli("dataset-groups", "list", "--json").stdout)}
    assert {k: listed["g"][k] for k in ("interactions", "solution_versions", "campaigns", "filters")} == {
        "interactions": 250, "solution_versions": 0, "campaigns": 0, "filters": 0}
    trained = json.loads(cli("train", "-g", "g", "--recipe", "popularity", "--no-metrics", "--json").stdout)
    assert trained["status"] == "ACTIVE" and Path(trained["artifact_uri"]).is_dir()
    assert trained["num_users"] <= 30 and trained["num_items"] <= 20  # nothing of the old group (40 x 25) came back
    assert cli("campaign", "create", "-g", "g", "--name", "top", "--solution-version", trained["id"]).exit_code == 0
    assert made["key"]["key_id"] not in {k["key_id"] for k in json.loads(cli("keys", "list", "--json").stdout)}


def test_listing_groups_shows_their_counts(cli) -> None:
    _group(cli, "g")
    assert cli("datasets", "synthetic", "--dataset-group", "empty-ish", "--users", 5, "--items", 5,
               "--interactions", 20, "--seed", 1).exit_code == 0
    records = json.loads(cli("dataset-groups", "list", "--json").stdout)
    assert [(r["name"], r["interactions"], r["solution_versions"], r["campaigns"], r["filters"]) for r in records] == [
        ("empty-ish", 20, 0, 0, 0), ("g", 400, 2, 1, 1)]
    table = cli("dataset-groups", "list")
    assert table.exit_code == 0 and "empty-ish" in table.stdout and "400" in table.stdout


def test_an_unknown_group_is_an_error_naming_the_existing_ones(cli) -> None:
    _group(cli, "g", campaign=None)
    result = cli("dataset-groups", "delete", "nope", "--yes")
    assert result.exit_code == 1 and "no dataset group 'nope'" in result.stderr and "existing: g" in result.stderr


def test_a_served_version_is_refused_naming_the_campaign_and_the_switch(cli, db_url: str) -> None:
    made = _group(cli, "g")
    first, second = (v["id"] for v in made["versions"])
    refused = cli("solution-versions", "delete", first, "--yes")
    assert refused.exit_code == 1
    assert f"solution version {first} is served by campaign(s) top of dataset group 'g'" in refused.stderr
    assert "recsmith campaign update top -g g --solution-version OTHER" in refused.stderr
    assert Path(made["versions"][0]["artifact_uri"]).is_dir()

    assert cli("campaign", "update", "top", "-g", "g", "--solution-version", second).exit_code == 0
    result = cli("solution-versions", "delete", first, "-y", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"deleted": first, "dataset_group": "g", "solution": "popularity",
                                         "recipe": "popularity", "status": "ACTIVE", "artifact": True, "left": []}
    assert not Path(made["versions"][0]["artifact_uri"]).exists()
    assert Path(made["versions"][1]["artifact_uri"]).is_dir()
    assert [v["id"] for v in json.loads(cli("solution-versions", "list", "--json").stdout)] == [second]
    gone = cli("solution-versions", "describe", first)
    assert gone.exit_code == 1 and f"no solution version {first}" in gone.stderr
    entry = json.loads(cli("audit", "list", "--action", "solution_version.delete", "--json").stdout)[0]
    assert (entry["resource"], entry["outcome"]) == (f"dataset-groups/g/solution-versions/{first}", "ok")


def test_a_version_named_with_another_group_is_not_found(cli) -> None:
    made = _group(cli, "g", campaign=None)
    assert cli("datasets", "synthetic", "--dataset-group", "other", "--users", 5, "--items", 5,
               "--interactions", 20, "--seed", 1).exit_code == 0
    version = made["versions"][1]["id"]
    result = cli("solution-versions", "delete", version, "-g", "other", "--yes")
    assert result.exit_code == 1 and f"dataset group 'other' has no solution version {version}" in result.stderr
    assert Path(made["versions"][1]["artifact_uri"]).is_dir()
    missing = cli("solution-versions", "delete", 999, "--yes")
    assert missing.exit_code == 1 and "no solution version 999" in missing.stderr


@pytest.mark.parametrize("command", [("dataset-groups", "delete", "--help"), ("solution-versions", "delete", "--help")])
def test_the_help_offers_to_skip_the_confirmation(cli, command) -> None:
    result = cli(*command)
    assert result.exit_code == 0 and "--yes" in result.stdout


def test_a_group_or_version_still_being_worked_on_is_refused(cli, db_url: str) -> None:
    from recsmith.jobs.runs import owner_columns

    made = _group(cli, "g", campaign=None)
    store = Store(db_url)
    try:
        group_id = store.get_dataset_group("g").id
        job = store.create_import_job(group_id, "items", "items.csv", "full", owner=owner_columns())  # this process
        training = store.create_solution_version(made["versions"][0]["solution_id"], {}, {}, owner=owner_columns())
        store.update_solution_version(training, status="CREATE_IN_PROGRESS")
    finally:
        store.close()
    busy = cli("dataset-groups", "delete", "g", "--yes")
    assert busy.exit_code == 1
    assert (f"dataset group 'g' is in use: import job {job} and the training of solution version {training} are "
            "still running; delete the group once they have finished") in busy.stderr
    version = cli("solution-versions", "delete", training, "--yes")
    assert version.exit_code == 1 and f"solution version {training} is CREATE_IN_PROGRESS" in version.stderr
    assert _rows(db_url, "g")["interactions"] == 400 and Path(made["versions"][0]["artifact_uri"]).is_dir()
    entry = json.loads(cli("audit", "list", "--action", "dataset_group.delete", "--json").stdout)[0]
    assert (entry["outcome"], entry["detail"]["error"]) == ("failed", "ConflictError")
