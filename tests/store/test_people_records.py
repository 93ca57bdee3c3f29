"""Users and items looked up by id (the console's search and pages), on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest

from recsmith.data.schema import Schema
from recsmith.store.people_records import IdMatch, _next_prefix
from recsmith.store.store import Store

INTERACTIONS = Schema.default("interactions").to_dict()
USERS = {"type": "record", "name": "Users", "fields": [{"name": "USER_ID", "type": "string"},
                                                      {"name": "AGE", "type": "int"}]}


@pytest.fixture
def group(store: Store) -> int:
    """Users 1 (3 events), 10 (1), 2 (1), a_b (1) with interactions; 100 and 1x only as user records; items
    i1, i10, i2 rated, i11 only as a record; and another group that must never show."""
    group_id = store.create_dataset_group("g").id
    frame = pd.DataFrame({
        "USER_ID": ["1", "1", "1", "10", "2", "a_b"],
        "ITEM_ID": ["i1", "i10", "i2", "i1", "i1", "i2"],
        "TIMESTAMP": [300, 100, 200, 50, 60, 70],
        "EVENT_TYPE": ["click", "watch", "click", None, None, None],
        "EVENT_VALUE": [None, 4.5, None, None, None, None],
    })
    store.write_interactions(group_id, frame, schema=INTERACTIONS)
    store.write_users(group_id, pd.DataFrame({"USER_ID": ["1", "100", "1x"], "AGE": [30, 40, 50]}), schema=USERS)
    store.write_items(group_id, pd.DataFrame({"ITEM_ID": ["i1", "i11"], "TITLE": ["One", "Eleven"]}),
                      schema=Schema.default("items").to_dict())
    other = store.create_dataset_group("other").id
    store.write_interactions(other, frame.assign(USER_ID="1" + frame["USER_ID"]), schema=INTERACTIONS)
    return group_id


def test_search_users_merges_interactions_and_records_in_id_order(store: Store, group: int) -> None:
    assert store.search_users(group, "1") == [IdMatch("1", 3, True), IdMatch("10", 1, False),
                                              IdMatch("100", 0, True), IdMatch("1x", 0, True)]
    assert store.search_users(group, "1", limit=2) == [IdMatch("1", 3, True), IdMatch("10", 1, False)]
    assert store.search_users(group, "10") == [IdMatch("10", 1, False), IdMatch("100", 0, True)]
    assert store.search_users(group, "2") == [IdMatch("2", 1, False)]
    assert store.search_users(group, "a_") == [IdMatch("a_b", 1, False)]  # LIKE's wildcards are literal
    assert store.search_users(group, "a%") == [] and store.search_users(group, "_") == []
    assert store.search_users(group, "3") == [] and store.search_users(group, "") == []
    assert store.search_users(group, "11") == []  # the other group's users


def test_search_items(store: Store, group: int) -> None:
    assert store.search_items(group, "i1") == [IdMatch("i1", 3, True), IdMatch("i10", 1, False),
                                               IdMatch("i11", 0, True)]
    assert store.search_items(group, "i") == [IdMatch("i1", 3, True), IdMatch("i10", 1, False),
                                              IdMatch("i11", 0, True), IdMatch("i2", 2, False)]
    assert store.search_items(group, "I") == []  # case-sensitive, as ids are


def test_a_users_interactions_newest_first_in_pages(store: Store, group: int) -> None:
    page = store.user_interactions(group, "1")
    assert [(e["item_id"], e["timestamp"], e["event_type"], e["event_value"]) for e in page] == [
        ("i1", 300, "click", None), ("i2", 200, "click", None), ("i10", 100, "watch", 4.5)]
    assert [e["item_id"] for e in store.user_interactions(group, "1", offset=1, limit=1)] == ["i2"]
    assert store.user_interactions(group, "1", offset=3) == []
    assert store.user_interactions(group, "100") == []
    assert store.count_user_interactions(group, "1") == 3
    assert store.count_user_interactions(group, "nobody") == 0


def test_item_counts(store: Store, group: int) -> None:
    assert store.count_item_interactions(group, "i1") == 3
    assert store.count_item_interactions(group, "i11") == 0


def test_non_ascii_prefixes(store: Store) -> None:
    group_id = store.create_dataset_group("u").id
    users = ["é", "éa", "f", "\ud7ffz", "\ue000"]
    frame = pd.DataFrame({"USER_ID": users, "ITEM_ID": "x", "TIMESTAMP": range(len(users))})
    store.write_interactions(group_id, frame, schema=INTERACTIONS)
    assert [m.id for m in store.search_users(group_id, "é")] == ["é", "éa"]
    assert [m.id for m in store.search_users(group_id, "\ud7ff")] == ["\ud7ffz"]


def test_next_prefix() -> None:
    assert _next_prefix("ab") == "ac"
    assert _next_prefix("a\U0010ffff") == "b"
    assert _next_prefix("\ud7ff") == "\ue000"
    assert _next_prefix("\U0010ffff") is None
