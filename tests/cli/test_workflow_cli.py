"""describe, train, evaluate, recommend, datasets and quickstart through the CLI on real MovieLens data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_datasets_list(cli) -> None:
    result = cli("datasets", "list", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["ml-latest-small"]["bundled"] is True
    assert rows["ml-100k"]["bundled"] is False


def test_unbundled_dataset_needs_a_path(cli) -> None:
    result = cli("datasets", "load", "ml-100k", "--dataset-group", "x")
    assert result.exit_code == 1
    assert "--path" in result.stderr


def test_load_ml_100k_from_local_path(cli, datasets_dir: Path) -> None:
    folder = datasets_dir / "ml-100k"
    if not (folder / "u.data").is_file():
        pytest.skip("ml-100k not available")
    result = cli("datasets", "load", "ml-100k", "--dataset-group", "m100", "--path", folder, "--json")
    assert result.exit_code == 0, result.output
    assert [r["rows_loaded"] for r in json.loads(result.stdout)] == [100_000, 1_682, 943]  # ratings, items, users
    stats = json.loads(cli("describe", "-g", "m100", "--json").stdout)
    assert (stats["num_users"], stats["num_items"], stats["num_interactions"]) == (943, 1682, 100_000)


def test_describe(movielens) -> None:
    result = movielens("describe", "--dataset-group", "ml", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["num_users"], stats["num_items"], stats["num_interactions"]) == (671, 9066, 100_004)
    assert stats["sparsity"] == pytest.approx(1 - 100_004 / (671 * 9066))
    assert stats["min_timestamp"] < stats["max_timestamp"]
    human = movielens("describe", "--dataset-group", "ml")
    assert "100,004" in human.stdout


def personal(reason: str) -> bool:
    """The CLI answers through the serving pipeline, with its reasons."""
    return reason == "personalized" or reason.startswith("because you interacted with ")


def test_train_then_recommend(movielens) -> None:
    result = movielens("train", "--dataset-group", "ml", "--recipe", "item-knn", "--param", "neighbors=50", "--json")
    assert result.exit_code == 0, result.output
    version = json.loads(result.stdout)
    assert version["status"] == "ACTIVE"
    assert version["metrics"]["ndcg@10"] > 0.1
    assert version["fit_seconds"] > 0 and version["num_items"] == 9066
    assert version["params"]["neighbors"] == 50
    result = movielens("recommend", "--solution-version", version["id"], "--user", "1", "--num", "10", "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)["items"]
    assert len(items) == 10
    assert all(personal(item["reason"]) and item["title"] for item in items)
    assert len({item["item_id"] for item in items}) == 10
    # user 1's rated movies are not recommended again
    rated = {"31", "1029", "1061", "1129", "1172", "1263", "1287", "1293", "1339", "1343"}
    assert not rated & {item["item_id"] for item in items}
    unknown = json.loads(movielens("recommend", "--solution-version", version["id"], "--user", "nobody",
                                   "--json").stdout)["items"]
    assert {item["reason"] for item in unknown} == {"popular"}
    listed = json.loads(movielens("solution-versions", "list", "--json").stdout)
    assert [v["id"] for v in listed] == [version["id"]]


def test_train_rejects_unknown_recipe_and_param(movielens) -> None:
    result = movielens("train", "-g", "ml", "--recipe", "magic")
    assert result.exit_code == 1 and "magic" in result.stderr and "item-knn" in result.stderr
    result = movielens("train", "-g", "ml", "--recipe", "item-knn", "--param", "colour=blue")
    assert result.exit_code == 1 and "colour" in result.stderr


def test_recommend_unknown_version(movielens) -> None:
    result = movielens("recommend", "--solution-version", 999, "--user", "1")
    assert result.exit_code == 1 and "999" in result.stderr


def test_evaluate_table(movielens) -> None:
    result = movielens("evaluate", "--dataset-group", "ml", "--recipes", "popularity,item-knn", "--protocol",
                       "random", "--test-fraction", "0.2", "--k", "10", "--seed", "42", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["recipe"]: row for row in json.loads(result.stdout)["results"]}
    for row in rows.values():
        for name in ("precision@10", "recall@10", "ndcg@10", "coverage@10"):
            assert 0 <= row[name] <= 1
        assert row["fit_seconds"] >= 0
    assert rows["item-knn"]["ndcg@10"] > rows["popularity"]["ndcg@10"]
    assert rows["item-knn"]["coverage@10"] > rows["popularity"]["coverage@10"]
    bad = movielens("evaluate", "-g", "ml", "--protocol", "sideways")
    assert bad.exit_code == 1 and "sideways" in bad.stderr
    bad = movielens("evaluate", "-g", "ml", "--k", "0")
    assert bad.exit_code == 1 and "0" in bad.stderr


def test_describe_unknown_group(cli) -> None:
    result = cli("describe", "-g", "ghost")
    assert result.exit_code == 1 and "ghost" in result.stderr


def test_quickstart(cli) -> None:
    result = cli("quickstart")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "ndcg@10" in text and "item-knn" in text and "popularity" in text
    assert "top 10 movies for user 1" in text
    assert "recsmith recommend" in text
    assert "/console" in text  # what to open next
    again = cli("quickstart", "--dataset-group", "quickstart")  # a second run redeploys, it does not fail
    assert again.exit_code == 0, again.output
    listed = cli("campaign", "list", "-g", "quickstart", "--json")
    [campaign] = json.loads(listed.stdout)
    assert campaign["name"] == "knn" and campaign["solution_version_id"] > 1


def test_load_ml_1m_layout_with_latin1_titles(cli, datasets_dir: Path, tmp_path: Path) -> None:
    """ml-1m's '::' files and ISO-8859-1 titles (ratings.dat is not in shared/, so a small one is written)."""
    movies = datasets_dir / "ml-1m" / "movies.dat"
    if not movies.is_file():
        pytest.skip("ml-1m movies.dat absent")
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "movies.dat").write_bytes(movies.read_bytes())
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    result = cli("datasets", "load", "ml-1m", "--dataset-group", "m1", "--path", folder, "--json")
    assert result.exit_code == 0, result.output
    assert [r["rows_loaded"] for r in json.loads(result.stdout)] == [3, 3883]
    version = json.loads(cli("train", "-g", "m1", "--recipe", "popularity", "--no-metrics", "--json").stdout)
    items = json.loads(cli("recommend", "--solution-version", version["id"], "--user", "2", "--json").stdout)["items"]
    assert items[0] == {"rank": 1, "item_id": "661", "score": 1.0, "reason": "popular",
                        "title": "James and the Giant Peach (1996)"}
    accented = [line for line in movies.read_bytes().decode("latin-1").splitlines() if "é" in line]
    assert accented, "expected accented titles in ml-1m"


def test_import_users_and_items_with_schema(cli, tmp_path: Path) -> None:
    schema = tmp_path / "users.json"
    schema.write_text(json.dumps({"type": "record", "name": "Users", "fields": [
        {"name": "USER_ID", "type": "string"}, {"name": "AGE", "type": ["null", "int"]},
        {"name": "SEGMENT", "type": ["null", "string"], "categorical": True}]}))
    users = tmp_path / "users.csv"
    users.write_text("id,age,segment\nu1,34,gold|early\nu2,,\n")
    result = cli("import", "users", users, "-g", "shop", "--schema", schema, "--map",
                 "id=USER_ID,age=AGE,segment=SEGMENT", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows_loaded"] == 2
    bad = tmp_path / "bad_users.csv"
    bad.write_text("id,age,segment\nu3,old,x\n")
    result = cli("import", "users", bad, "-g", "shop", "--map", "id=USER_ID,age=AGE,segment=SEGMENT")
    assert result.exit_code == 1  # the stored schema is reused: AGE must be a number
    assert "bad_users.csv line 2, field AGE" in " ".join(result.stderr.split())
    stats = json.loads(cli("describe", "-g", "shop", "--json").stdout)
    assert stats["num_user_records"] == 2


def test_similar_items(movielens) -> None:
    version = json.loads(movielens("train", "-g", "ml", "--recipe", "item-knn", "--no-metrics", "--json").stdout)
    result = movielens("similar", "--solution-version", version["id"], "--item", "260", "--num", "5", "--json")
    assert result.exit_code == 0, result.output
    titles = [item["title"] for item in json.loads(result.stdout)["items"]]
    assert len(titles) == 5
    assert any("Empire Strikes Back" in t or "Return of the Jedi" in t for t in titles), titles
    popular = json.loads(movielens("train", "-g", "ml", "--recipe", "popularity", "--no-metrics", "--json").stdout)
    result = movielens("similar", "--solution-version", popular["id"], "--item", "260")
    assert result.exit_code == 1 and "item-knn" in result.stderr
    result = movielens("similar", "--solution-version", version["id"], "--item", "no-such-movie")
    assert result.exit_code == 1 and "no-such-movie" in result.stderr


@pytest.mark.parametrize("recipe", ["ease", "rp3beta", "als", "bpr", "user-knn", "trending", "svd", "svdpp", "hybrid"])
def test_every_recipe_trains_and_recommends_from_the_cli(movielens, recipe: str) -> None:
    params = {"als": ["--param", "epochs=5"], "bpr": ["--param", "epochs=5"], "ease": ["--no-metrics"]}.get(recipe, [])
    result = movielens("train", "-g", "ml", "--recipe", recipe, *params, "--json")
    assert result.exit_code == 0, result.output
    version = json.loads(result.stdout)
    assert version["status"] == "ACTIVE"
    if recipe != "ease":  # ease: 9k items, one fit is enough here
        assert version["metrics"]["ndcg@10"] > (0.001 if recipe in ("trending", "svd", "svdpp") else 0.05)
    items = json.loads(movielens("recommend", "--solution-version", version["id"], "--user", "7", "--json").stdout)
    labelled = {"trending", "popular"}.__contains__ if recipe == "trending" else personal  # trending: its own labels
    assert len(items["items"]) == 10 and all(labelled(i["reason"]) for i in items["items"])


def test_json_params_and_several_params_in_one_option(movielens) -> None:
    result = movielens("train", "-g", "ml", "--recipe", "hybrid", "--no-metrics", "--json",
                       "--param", 'components={"item-knn": 0.7, "popularity": 0.3}')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["params"]["components"] == {"item-knn": 0.7, "popularity": 0.3}
    result = movielens("train", "-g", "ml", "--recipe", "item-knn", "--no-metrics", "--json",
                       "--param", "neighbors=20,shrink=5")
    params = json.loads(result.stdout)["params"]
    assert (params["neighbors"], params["shrink"]) == (20, 5.0)


def test_synthetic_dataset_is_reproducible(cli, tmp_path: Path) -> None:
    import pandas as pd

    args = ["datasets", "synthetic", "--users", 300, "--items", 120, "--interactions", 5000, "--seed", 3]
    result = cli(*args, "--out", tmp_path / "a.parquet", "--dataset-group", "syn", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["import"]["rows_loaded"] == 5000
    assert cli(*args, "--out", tmp_path / "b.parquet").exit_code == 0
    first, second = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(first, second)
    counts = first["ITEM_ID"].value_counts()
    assert counts.iloc[0] > 5 * counts.median()  # power-law popularity
    assert set(first["EVENT_TYPE"]) == {"view", "purchase"}
    stats = json.loads(cli("describe", "-g", "syn", "--json").stdout)
    assert stats["num_interactions"] == 5000 and stats["event_types"]["view"] > stats["event_types"]["purchase"]
    assert cli("datasets", "synthetic").exit_code == 1


def test_a_solution_keeps_its_params(movielens) -> None:
    def train(*args: str) -> dict:
        result = movielens("train", "-g", "ml", "--recipe", "item-knn", "--no-metrics", "--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["params"]

    assert train("--param", "neighbors=20")["neighbors"] == 20
    assert train()["neighbors"] == 20  # retraining the solution reuses its params
    again = train("--param", "shrink=5")  # --param updates them
    assert (again["neighbors"], again["shrink"]) == (20, 5.0)
    assert train("--solution", "fresh")["neighbors"] == 200  # a new solution starts from the defaults


def test_tuned_params_are_what_a_plain_train_uses(movielens) -> None:
    tuned = movielens("tune", "-g", "ml", "--recipe", "rp3beta", "--trials", 2, "--json")
    assert tuned.exit_code == 0, tuned.output
    best = json.loads(tuned.stdout)["best_params"]
    result = movielens("train", "-g", "ml", "--recipe", "rp3beta", "--no-metrics", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["params"] == best


def test_recommend_with_a_filter(movielens, db_url: str) -> None:
    from recsmith.store.store import Store

    trained = movielens("train", "-g", "ml", "--recipe", "item-knn", "--no-metrics", "--json")
    version = json.loads(trained.stdout)["id"]
    store = Store(db_url)
    group = store.get_dataset_group("ml")

    def genres(*args: str) -> list[tuple[str, str]]:
        result = movielens("recommend", "--solution-version", version, "--num", 10, "--json", *args)
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)["items"]
        metadata = store.read_items(group.id, [row["item_id"] for row in rows])
        return [(metadata[row["item_id"]]["GENRES"], row["reason"]) for row in rows]

    horror = genres("--user", "1", "--filter-expression", "INCLUDE ItemID WHERE Items.GENRES IN ($G)",
                    "--filter-value", "G=Horror")
    assert len(horror) == 10 and all("Horror" in g and personal(reason) for g, reason in horror)
    no_drama = genres("--user", "1", "--filter-expression", 'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama", "Comedy")')
    assert len(no_drama) == 10 and not any("Drama" in g or "Comedy" in g for g, _ in no_drama)
    newcomer = genres("--user", "nobody", "--filter-expression", 'INCLUDE ItemID WHERE Items.GENRES IN ("Western")')
    assert len(newcomer) == 10 and all("Western" in g and reason == "popular" for g, reason in newcomer)
    omitted = genres("--user", "1", "--filter-expression", "EXCLUDE ItemID WHERE Items.GENRES IN ($G)")
    assert len(omitted) == 10  # an EXCLUDE part without its value is not used, as in Personalize
    store.close()
    bad = movielens("recommend", "--solution-version", version, "--user", "1", "--filter-expression",
                    "INCLUDE ItemID WHERE Items.GENRES == (1)")
    assert bad.exit_code == 1 and "position" in bad.stderr
    missing = movielens("recommend", "--solution-version", version, "--user", "1", "--filter-expression",
                        "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    assert missing.exit_code == 1 and "$G" in missing.stderr
    lonely = movielens("recommend", "--solution-version", version, "--user", "1", "--filter-value", "G=x")
    assert lonely.exit_code == 1 and "needs a --filter" in lonely.stderr
