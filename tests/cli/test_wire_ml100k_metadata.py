"""MovieLens metadata through the CLI (issue 15): ml-100k's users (u.user) and items with GENRES folded from
u.item's 0/1 genre flags (``--flags``, ``--encoding``), ``datasets load`` importing all of it, ml-1m's users."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recsmith.datasets import ML_100K_GENRES
from recsmith.jobs.training import load_training_data
from recsmith.settings import Settings
from recsmith.store.store import Store

USER_NAMES = "USER_ID,AGE,GENDER,OCCUPATION,ZIP"
ITEM_NAMES = ",".join(["ITEM_ID", "TITLE", "RELEASED", "VIDEO_RELEASED", "URL", *ML_100K_GENRES])


@pytest.fixture
def ml100k(datasets_dir: Path) -> Path:
    folder = datasets_dir / "ml-100k"
    if not all((folder / name).is_file() for name in ("u.data", "u.item", "u.user", "u.genre")):
        pytest.skip("ml-100k not available")
    return folder


def training_data(group: str):
    store = Store.from_settings(Settings())
    try:
        return load_training_data(store, group)
    finally:
        store.close()


def message(result) -> str:
    return " ".join(result.stderr.split())


def test_genres_are_u_genre_in_column_order(ml100k: Path) -> None:
    lines = [line.split("|") for line in (ml100k / "u.genre").read_text(encoding="latin-1").splitlines() if line]
    assert [name for name, _ in sorted(lines, key=lambda p: int(p[1]))] == ML_100K_GENRES


def test_import_users_and_items_with_inferred_schemas(cli, ml100k: Path) -> None:
    result = cli("import", "interactions", ml100k / "u.data", "-g", "m", "--sep", "\\t", "--no-header",
                 "--names", "USER_ID,ITEM_ID,EVENT_VALUE,TIMESTAMP")
    assert result.exit_code == 0, result.output
    result = cli("import", "users", ml100k / "u.user", "-g", "m", "--sep", "|", "--no-header", "--names", USER_NAMES,
                 "--infer-schema", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows_loaded"] == 943
    fields = {f["name"]: f for f in report["schema_inferred"]["fields"]}
    assert fields["AGE"]["type"] == ["null", "long"]
    assert fields["GENDER"].get("categorical") and fields["OCCUPATION"].get("categorical")
    assert fields["ZIP"]["type"] == ["null", "string"]  # 01002 and T8H1N are codes, not numbers

    result = cli("import", "items", ml100k / "u.item", "-g", "m", "--sep", "|", "--no-header", "--encoding", "latin-1",
                 "--names", ITEM_NAMES, "--flags", "GENRES=unknown..Western", "--map", "VIDEO_RELEASED=-,URL=-",
                 "--infer-schema", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows_loaded"] == 1682
    fields = {f["name"]: f for f in report["schema_inferred"]["fields"]}
    assert set(fields) == {"ITEM_ID", "TITLE", "RELEASED", "GENRES"}
    assert fields["GENRES"].get("categorical")

    data = training_data("m")
    users = {f.name: f for f in data.user_features}
    assert {name: f.kind for name, f in users.items()} == {
        "AGE": "numerical", "GENDER": "categorical", "OCCUPATION": "categorical", "ZIP": "categorical"}
    assert users["GENDER"].categories == ("F", "M")
    assert len(users["OCCUPATION"].categories) == 21
    assert np.nanmin(users["AGE"].values) == 7 and np.nanmax(users["AGE"].values) == 73
    genres = data.item_features.features["GENRES"]
    assert genres.kind == "categorical" and genres.multi_valued
    assert set(genres.categories) <= set(ML_100K_GENRES) and len(genres.categories) == 19
    per_item = np.asarray(genres.values.sum(axis=1)).ravel()
    assert per_item.max() >= 3 and (per_item >= 2).sum() > 500  # multi-valued: Toy Story is three genres


def test_import_items_with_a_schema_and_a_list_of_flags(cli, ml100k: Path, tmp_path: Path) -> None:
    schema = tmp_path / "items.json"
    schema.write_text(json.dumps({"type": "record", "name": "Items", "fields": [
        {"name": "ITEM_ID", "type": "string"}, {"name": "TITLE", "type": ["null", "string"], "textual": True},
        {"name": "GENRES", "type": ["null", "string"], "categorical": True}]}))
    result = cli("import", "items", ml100k / "u.item", "-g", "m", "--sep", "|", "--no-header", "--encoding", "latin-1",
                 "--names", ITEM_NAMES, "--schema", schema, "--flags", "GENRES=" + ",".join(ML_100K_GENRES),
                 "--map", "RELEASED=-,VIDEO_RELEASED=-,URL=-")
    assert result.exit_code == 0, result.output
    store = Store.from_settings(Settings())
    items = store.read_items(store.get_dataset_group("m").id)
    store.close()
    assert items["1"] == {"TITLE": "Toy Story (1995)", "GENRES": "Animation|Children's|Comedy"}
    assert items["2"]["GENRES"] == "Action|Adventure|Thriller"
    assert items["32"]["TITLE"].startswith("Crumb")


def test_datasets_load_ml100k_imports_users_and_genres(cli, ml100k: Path) -> None:
    result = cli("datasets", "load", "ml-100k", "-g", "m", "--path", ml100k, "--json")
    assert result.exit_code == 0, result.output
    assert [(r["dataset_type"], r["rows_loaded"]) for r in json.loads(result.stdout)] == [
        ("interactions", 100_000), ("items", 1_682), ("users", 943)]
    data = training_data("m")
    assert {f.name: f.kind for f in data.user_features} == {
        "AGE": "numerical", "GENDER": "categorical", "OCCUPATION": "categorical", "ZIP": "categorical"}
    assert {f.name: f.kind for f in data.item_features} == {"TITLE": "textual", "GENRES": "categorical"}
    assert len(data.item_features.features["GENRES"].categories) == 19


def test_datasets_load_ml1m_imports_users_dat(cli, datasets_dir: Path, tmp_path: Path) -> None:
    """ml-1m's users.dat (its ratings.dat is not in shared/: a small one is written)."""
    source = datasets_dir / "ml-1m"
    if not (source / "users.dat").is_file() or not (source / "movies.dat").is_file():
        pytest.skip("ml-1m users.dat / movies.dat not available")
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    for name in ("users.dat", "movies.dat"):
        (folder / name).write_bytes((source / name).read_bytes())
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    result = cli("datasets", "load", "ml-1m", "--dataset-group", "m1", "--path", folder, "--json")
    assert result.exit_code == 0, result.output
    assert [(r["dataset_type"], r["rows_loaded"]) for r in json.loads(result.stdout)] == [
        ("interactions", 3), ("items", 3883), ("users", 6040)]
    store = Store.from_settings(Settings())
    users = store.read_users(store.get_dataset_group("m1").id)
    store.close()
    assert users["1"] == {"GENDER": "F", "AGE": 1, "OCCUPATION": "10", "ZIP": "48067"}
    assert {f.name: f.kind for f in training_data("m1").user_features} == {
        "GENDER": "categorical", "AGE": "numerical", "OCCUPATION": "categorical", "ZIP": "categorical"}


# ------------------------------------------------------------------------ --flags and --encoding on small files
ITEMS = "id|title|Action|Comedy|Drama\n1|A|1|0|1\n2|B|0|0|0\n3|C|0|1|0\n"


def test_flags_fold_columns_and_leave_none_empty(cli, tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text(ITEMS)
    result = cli("import", "items", path, "-g", "s", "--sep", "|", "--map", "id=ITEM_ID", "--flags",
                 "GENRES=action..drama", "--infer-schema", "--json")
    assert result.exit_code == 0, result.output
    fields = {f["name"]: f for f in json.loads(result.stdout)["schema_inferred"]["fields"]}
    assert set(fields) == {"ITEM_ID", "TITLE", "GENRES"} and fields["GENRES"]["categorical"]
    store = Store.from_settings(Settings())
    items = store.read_items(store.get_dataset_group("s").id)
    store.close()
    assert items["1"]["GENRES"] == "Action|Drama"
    assert items["2"].get("GENRES") is None
    assert items["3"]["GENRES"] == "Comedy"


def test_bad_flag_value_names_line_column_and_value(cli, tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text(ITEMS.replace("3|C|0|1|0", "3|C|0|yes|0"))
    result = cli("import", "items", path, "-g", "s", "--sep", "|", "--map", "id=ITEM_ID", "--flags",
                 "GENRES=Action,Comedy,Drama", "--infer-schema")
    assert result.exit_code == 1
    assert "line 4, field Comedy: value 'yes' is not a flag of GENRES (1 or 0 expected)" in message(result)
    result = cli("import", "items", path, "-g", "s", "--sep", "|", "--map", "id=ITEM_ID", "--flags",
                 "GENRES=Action..Drama", "--infer-schema", "--on-error", "skip", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows_loaded"] == 2


@pytest.mark.parametrize(("flags", "expected"), [
    ("GENRES=Action,Horror", "the flag columns of GENRES name column 'Horror' (--flags), which the source does not"),
    ("GENRES=Drama..Action", "comes before 'Drama' in the source"),
    ("GENRES", "give FIELD=COLUMN,COLUMN,... or FIELD=FIRST..LAST"),
    ("TITLE=Action", "the source already has a column 'TITLE'"),
])
def test_bad_flags_are_clear_errors(cli, tmp_path: Path, flags: str, expected: str) -> None:
    path = tmp_path / "items.csv"
    path.write_text(ITEMS)
    result = cli("import", "items", path, "-g", "s", "--sep", "|", "--map", "id=ITEM_ID", "--flags", flags,
                 "--infer-schema")
    assert result.exit_code == 1
    assert expected in message(result), result.stderr
    assert "Traceback" not in result.output


def test_flags_are_for_users_and_items(cli, tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("USER_ID,ITEM_ID,TIMESTAMP,a\n1,2,3,1\n")
    result = cli("import", "interactions", path, "-g", "s", "--flags", "X=a")
    assert result.exit_code == 1
    assert "not of interactions" in message(result)


def test_encoding_option_reads_latin1(cli, tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_bytes("ITEM_ID,TITLE\n1,Crumb\n2,Cité des enfants perdus\n".encode("latin-1"))
    result = cli("import", "items", path, "-g", "s", "--infer-schema")
    assert result.exit_code == 1
    assert "--encoding latin-1" in message(result)
    result = cli("import", "items", path, "-g", "s", "--infer-schema", "--encoding", "latin-1")
    assert result.exit_code == 0, result.output
    store = Store.from_settings(Settings())
    assert store.read_items(store.get_dataset_group("s").id)["2"]["TITLE"] == "Cité des enfants perdus"
    store.close()
    result = cli("import", "items", path, "-g", "s", "--encoding", "klingon")
    assert result.exit_code == 1
    assert "unknown encoding 'klingon'" in message(result)


def test_flags_of_typed_parquet_columns(tmp_path: Path) -> None:
    """Flags stored as integers or booleans (Parquet) fold as their text would."""
    import pandas as pd

    from recsmith.data.readers import read_dataset

    path = tmp_path / "items.parquet"
    pd.DataFrame({"ITEM_ID": ["a", "b", "c"], "Action": [1, 0, 1], "Comedy": [True, False, None]}).to_parquet(path)
    result = read_dataset(path, dataset_type="items", infer_schema=True, flags={"GENRES": ["Action", "Comedy"]})
    assert result.frame["GENRES"].tolist() == ["Action|Comedy", None, "Action"]
    assert result.schema.field("GENRES").categorical
