"""Imports as a new user runs them (issue 14): the README's items import, schema inference, the hints an error
gives, up to 20 bad rows reported, no group left by a failed import, a missing SQLite --db-url, failed progress."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from recsmith.errors import NotFoundError
from recsmith.settings import Settings
from recsmith.store.store import Store

MOVIES = Path(__file__).resolve().parents[2] / "src" / "recsmith" / "datasets" / "ml-latest-small" / "movies.csv"
ITEMS_SCHEMA = {"type": "record", "name": "Items", "fields": [
    {"name": "ITEM_ID", "type": "string"},
    {"name": "TITLE", "type": ["null", "string"], "textual": True},
    {"name": "GENRES", "type": ["null", "string"], "categorical": True}]}
RATINGS = "userId,movieId,rating,timestamp\n1,10,4.0,1000\n1,11,3.5,1001\n2,10,5.0,1002\n"


def open_store() -> Store:
    return Store.from_settings(Settings())


def group_exists(name: str) -> bool:
    store = open_store()
    try:
        store.get_dataset_group(name)
        return True
    except NotFoundError:
        return False
    finally:
        store.close()


def stored_schema(group: str, dataset_type: str) -> dict:
    store = open_store()
    try:
        dataset = store.get_dataset(store.get_dataset_group(group).id, dataset_type)
        assert dataset is not None
        return dataset.schema
    finally:
        store.close()


def stored_items(group: str) -> dict[str, dict]:
    store = open_store()
    try:
        return store.read_items(store.get_dataset_group(group).id)
    finally:
        store.close()


def message(result) -> str:
    return " ".join(result.stderr.split())


def test_readme_items_import_matches_columns_to_fields_without_regard_to_case(cli, tmp_path: Path) -> None:
    schema = tmp_path / "items-schema.json"
    schema.write_text(json.dumps(ITEMS_SCHEMA))
    result = cli("import", "items", MOVIES, "-g", "shop", "--schema", schema, "--map", "movieId=ITEM_ID", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["rows_loaded"], report["schema_inferred"]) == (9125, None)
    items = stored_items("shop")
    assert items["1"] == {"TITLE": "Toy Story (1995)", "GENRES": "Adventure|Animation|Children|Comedy|Fantasy"}
    # --map targets too, and interactions' reserved fields
    result = cli("import", "items", MOVIES, "-g", "shop", "--schema", schema, "--map", "MOVIEID=item_id")
    assert result.exit_code == 0, result.output
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user_id,Item_Id,timestamp\n1,10,1000\n2,11,1001\n")
    assert cli("import", "interactions", ratings, "-g", "shop").exit_code == 0


def test_two_columns_matching_one_field_are_an_error(cli, tmp_path: Path) -> None:
    schema = tmp_path / "items-schema.json"
    schema.write_text(json.dumps(ITEMS_SCHEMA))
    items = tmp_path / "items.csv"
    items.write_text("ITEM_ID,title,Title\n1,a,b\n")
    result = cli("import", "items", items, "-g", "amb", "--schema", schema)
    assert result.exit_code == 1
    assert "columns 'title' and 'Title' both match field TITLE" in message(result)
    assert "--map Title=-" in message(result)
    assert cli("import", "items", items, "-g", "amb", "--schema", schema, "--map", "Title=-").exit_code == 0
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("movieId,item_id,USER_ID,TIMESTAMP\n1,2,u,5\n")
    result = cli("import", "interactions", ratings, "-g", "amb", "--map", "movieId=ITEM_ID")
    assert result.exit_code == 1 and "columns 'movieId' and 'item_id' both match field ITEM_ID" in message(result)


def test_items_without_a_schema_get_one_inferred_printed_and_stored(cli, tmp_path: Path) -> None:
    result = cli("import", "items", MOVIES, "-g", "inf", "--map", "movieId=ITEM_ID")
    assert result.exit_code == 0, result.output
    assert "inferred items schema" in result.stdout
    printed = result.stdout[result.stdout.index("{"):result.stdout.index("]}") + 2]
    inferred = json.loads(printed)  # valid Avro JSON: it can be saved and passed to --schema
    fields = {f["name"]: f for f in inferred["fields"]}
    assert list(fields) == ["ITEM_ID", "TITLE", "GENRES"]
    assert fields["GENRES"] == {"name": "GENRES", "type": ["null", "string"], "categorical": True}
    assert fields["TITLE"]["type"] == ["null", "string"] and not fields["TITLE"].get("categorical")
    assert stored_schema("inf", "items")["fields"] == inferred["fields"]
    assert stored_items("inf")["2"]["GENRES"] == "Adventure|Children|Fantasy"
    # the stored schema is used from now on: an unknown column fails, naming --schema FILE and the fields
    more = tmp_path / "more.csv"
    more.write_text("movieId,title,genres,year\n1,Toy Story,Comedy,1995\n")
    result = cli("import", "items", more, "-g", "inf", "--map", "movieId=ITEM_ID")
    assert result.exit_code == 1
    text = message(result)
    assert "unknown field 'year'" in text and "stored with dataset group inf" in text
    assert "has ITEM_ID, TITLE, GENRES" in text and "--schema FILE" in text and "--map year=-" in text
    # --infer-schema replaces it (full mode only)
    result = cli("import", "items", more, "-g", "inf", "--map", "movieId=ITEM_ID", "--infer-schema",
                 "--mode", "incremental")
    assert result.exit_code == 1 and "--mode full" in message(result)
    result = cli("import", "items", more, "-g", "inf", "--map", "movieId=ITEM_ID", "--infer-schema", "--json")
    assert result.exit_code == 0, result.output
    assert [f["name"] for f in json.loads(result.stdout)["schema_inferred"]["fields"]][-1] == "YEAR"
    assert stored_schema("inf", "items")["fields"][-1] == {"name": "YEAR", "type": ["null", "long"]}


def test_inferred_kinds_and_their_thresholds(cli, tmp_path: Path) -> None:
    rows = ["sku,Price,stock,In Stock,color,tags,zip,description,code"]
    colors = ["red", "blue", "green"]
    for i in range(30):
        rows.append(f"s{i},{i + 0.5},{i},{'true' if i % 2 else 'FALSE'},{colors[i % 3]},{'a|b' if i % 3 else 'c'},"
                    f"0{1000 + i},A long description of item number {i} in words,X{i}")
    users = tmp_path / "items.csv"
    users.write_text("\n".join(rows) + "\n")
    result = cli("import", "items", users, "-g", "kinds", "--map", "sku=ITEM_ID", "--json")
    assert result.exit_code == 0, result.output
    fields = {f["name"]: f for f in json.loads(result.stdout)["schema_inferred"]["fields"]}
    assert fields["PRICE"]["type"] == ["null", "double"] and fields["STOCK"]["type"] == ["null", "long"]
    assert fields["IN_STOCK"]["type"] == ["null", "boolean"]  # "In Stock": a valid Avro name
    assert fields["COLOR"].get("categorical") and fields["TAGS"].get("categorical")  # few values; '|' values
    assert fields["ZIP"] == {"name": "ZIP", "type": ["null", "string"]}  # a leading zero: a code, not a number
    assert fields["DESCRIPTION"].get("textual") and fields["CODE"] == {"name": "CODE", "type": ["null", "string"]}
    assert stored_items("kinds")["s1"] == {"PRICE": 1.5, "STOCK": 1.0, "IN_STOCK": True, "COLOR": "blue",
                                           "TAGS": "a|b", "ZIP": "01001",
                                           "DESCRIPTION": "A long description of item number 1 in words",
                                           "CODE": "X1"}


def test_users_without_an_id_column_suggest_the_map(cli, tmp_path: Path) -> None:
    result = cli("import", "items", MOVIES, "-g", "noid")
    assert result.exit_code == 1
    assert "required column ITEM_ID is missing" in message(result)
    assert "did you mean --map movieId=ITEM_ID?" in message(result)
    users = tmp_path / "users.csv"
    users.write_text("customer_id,age\nc1,30\n")
    result = cli("import", "users", users, "-g", "noid")
    assert result.exit_code == 1 and "did you mean --map customer_id=USER_ID?" in message(result)
    assert not group_exists("noid")


def test_unknown_columns_suggest_the_likely_map_not_dropping_them(cli, tmp_path: Path) -> None:
    ratings = tmp_path / "ratings.csv"
    ratings.write_text(RATINGS)
    result = cli("import", "interactions", ratings, "-g", "hint")
    assert result.exit_code == 1
    text = message(result)
    assert "did you mean --map userId=USER_ID,movieId=ITEM_ID,rating=EVENT_VALUE?" in text  # timestamp matches as is
    assert "userId=-" not in text
    result = cli("import", "interactions", ratings, "-g", "hint", "--map", "userId=USER_ID")
    assert result.exit_code == 1
    assert "did you mean --map userId=USER_ID,movieId=ITEM_ID,rating=EVENT_VALUE?" in message(result)
    orders = tmp_path / "orders.csv"
    orders.write_text("customer_id,sku,date,type,mood\nc1,p1,5,buy,happy\n")
    result = cli("import", "interactions", orders, "-g", "hint")
    assert result.exit_code == 1
    text = message(result)
    assert "did you mean --map customer_id=USER_ID,sku=ITEM_ID,date=TIMESTAMP,type=EVENT_TYPE?" in text
    assert "For 'mood': pass a schema that also has MOOD with --schema FILE, or drop it with --map mood=-" in text
    assert cli("import", "interactions", orders, "-g", "hint", "--map",
               "customer_id=USER_ID,sku=ITEM_ID,date=TIMESTAMP,type=EVENT_TYPE,mood=-").exit_code == 0


def test_fail_mode_reports_the_first_20_bad_rows_and_stores_nothing(cli, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(RATINGS)
    assert cli("import", "interactions", good, "-g", "bad", "--map", "userId=USER_ID,movieId=ITEM_ID,"
               "rating=EVENT_VALUE").exit_code == 0
    lines = ["userId,movieId,rating,timestamp"]
    for i in range(40):
        lines.append(f"{i},{i},1.0,{'soon' if i % 2 else 1000 + i}")  # odd rows: a bad timestamp
    lines[6] = "5,5"  # line 7: a short row
    lines[9] = ",8,1.0,1000"  # line 10: no user id
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    result = cli("import", "interactions", bad, "-g", "bad", "--map", "userId=USER_ID,movieId=ITEM_ID,"
                 "rating=EVENT_VALUE")
    assert result.exit_code == 1
    listed = re.findall(r"^(?:error: \S*bad\.csv )?\s*line (\d+)", result.stderr, flags=re.MULTILINE)
    assert [int(n) for n in listed] == [3, 5, 7, 9, 10, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35, 37, 39]
    text = message(result)
    assert "bad.csv line 3, field TIMESTAMP: value 'soon' is not a number (epoch seconds expected)" in text
    assert "line 7: has 2 columns, 4 expected" in text and "line 10, field USER_ID: is empty" in text
    assert "and 20 more bad lines; nothing was imported" in text and "... 1 not listed" in text  # line 41
    store = open_store()
    try:
        group_id = store.get_dataset_group("bad").id
        assert store.count_interactions(group_id) == 3
        job = store.list_import_jobs(group_id)[-1]
        assert job["status"] == "CREATE_FAILED" and "line 39" in job["error"]
    finally:
        store.close()


def test_a_failed_import_of_a_new_group_creates_nothing(cli, tmp_path: Path) -> None:
    result = cli("import", "interactions", tmp_path / "nosuch.csv", "-g", "brand-new-group")
    assert result.exit_code == 1 and "nosuch.csv: file not found" in message(result)
    assert not group_exists("brand-new-group")
    bad = tmp_path / "bad.csv"
    bad.write_text("USER_ID,ITEM_ID,TIMESTAMP\nu,i,yesterday\n")
    assert cli("import", "interactions", bad, "-g", "brand-new-group").exit_code == 1
    assert not group_exists("brand-new-group")
    items = tmp_path / "items.csv"
    items.write_text("ITEM_ID,PRICE\na,1\n")
    assert cli("import", "items", items, "-g", "brand-new-group", "--infer-schema", "--mode", "sometimes").exit_code
    assert not group_exists("brand-new-group")
    # a group that existed keeps its data, and the failed job is recorded
    good = tmp_path / "good.csv"
    good.write_text("USER_ID,ITEM_ID,TIMESTAMP\nu,i,5\n")
    assert cli("import", "interactions", good, "-g", "brand-new-group").exit_code == 0
    assert cli("import", "interactions", bad, "-g", "brand-new-group").exit_code == 1
    store = open_store()
    try:
        jobs = store.list_import_jobs(store.get_dataset_group("brand-new-group").id)
        assert [j["status"] for j in jobs] == ["ACTIVE", "CREATE_FAILED"]
    finally:
        store.close()


def test_sql_import_refuses_a_sqlite_database_that_does_not_exist(cli, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("import", "interactions", "-g", "sqlnew", "--sql", "SELECT 1", "--db-url", "sqlite:///nosuch.sqlite")
    assert result.exit_code == 1
    text = message(result)
    assert "--db-url sqlite:///nosuch.sqlite: the SQLite database nosuch.sqlite does not exist" in text
    assert str(tmp_path / "nosuch.sqlite") in text
    assert not (tmp_path / "nosuch.sqlite").exists()
    assert not group_exists("sqlnew")
    (tmp_path / "folder.db").mkdir()
    result = cli("import", "interactions", "-g", "sqlnew", "--sql", "SELECT 1", "--db-url", "sqlite:///folder.db")
    assert result.exit_code == 1 and "is a folder" in message(result)


def test_progress_shows_failed_not_done_when_an_import_fails(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("USER_ID,ITEM_ID,TIMESTAMP\nu,i,yesterday\n")
    result = cli("import", "interactions", bad, "-g", "prog")
    assert result.exit_code == 1
    progress = [line for line in result.stderr.splitlines() if "import interactions" in line]
    assert progress and "failed" in progress[-1] and "done" not in progress[-1]
    good = tmp_path / "good.csv"
    good.write_text("USER_ID,ITEM_ID,TIMESTAMP\nu,i,5\n")
    result = cli("import", "interactions", good, "-g", "prog")
    progress = [line for line in result.stderr.splitlines() if "import interactions" in line]
    assert result.exit_code == 0 and "done" in progress[-1] and "failed" not in progress[-1]


def test_big_incremental_import_skips_what_is_stored_and_repeats(cli, tmp_path: Path) -> None:
    """Past the bulk-load size (the other SQL path): 60,000 rows stored, then 60,000 more of which half are stored
    already and 1,000 repeat within the file."""
    header = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
    first = tmp_path / "first.csv"
    first.write_text(header + "".join(f"u{i % 5000},i{i},{i},{'view' if i % 2 else ''}\n" for i in range(60_000)))
    assert cli("import", "interactions", first, "-g", "big").exit_code == 0
    second = tmp_path / "second.csv"
    rows = [f"u{i % 5000},i{i},{i},{'view' if i % 2 else ''}\n" for i in range(30_000, 89_000)]
    rows += rows[-1000:]  # the file's own repeats
    second.write_text(header + "".join(rows))
    result = cli("import", "interactions", second, "-g", "big", "--mode", "incremental", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["rows_read"], report["rows_loaded"], report["duplicates_skipped"]) == (60_000, 29_000, 31_000)
    store = open_store()
    try:
        stored = store.read_interactions(store.get_dataset_group("big").id, context=False)
    finally:
        store.close()
    assert len(stored["item_id"]) == 89_000 and len(set(stored["item_id"].tolist())) == 89_000
    assert stored["item_id"][-1] == "i88999"  # the new rows are added in file order
    small = tmp_path / "small.csv"
    small.write_text(header + "u1,i1,1,view\nu1,i1,1,click\n")
    report = json.loads(cli("import", "interactions", small, "-g", "big", "--mode", "incremental", "--json").stdout)
    assert (report["rows_loaded"], report["duplicates_skipped"]) == (1, 1)
