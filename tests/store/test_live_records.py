"""Deletions, catalogue versions and the served-items ledger in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd

from recsmith.data.schema import Schema
from recsmith.store.live_records import Served
from recsmith.store.store import Store


def _events(store: Store, group_id: int, pairs: list[tuple[str, str]], start: int = 0) -> None:
    store.write_events(group_id, [{"event_id": f"e{start + n}", "user_id": user, "item_id": item,
                                   "timestamp": 1764064800 + n} for n, (user, item) in enumerate(pairs)])


def test_deleting_a_user_removes_interactions_and_metadata_and_leaves_a_tombstone(store: Store) -> None:
    group = store.create_dataset_group("g")
    _events(store, group.id, [("u1", "a"), ("u1", "b"), ("u2", "a")])
    store.write_users(group.id, pd.DataFrame({"USER_ID": ["u1", "u2"]}), schema=Schema.default("users").to_dict())
    before = store.live_state(group.id)
    assert store.delete_user(group.id, "u1") == {"interactions": 2, "records": 1}
    after = store.live_state(group.id)
    assert after.catalog_version == before.catalog_version + 1
    assert store.user_history(group.id, "u1") == [] and set(store.read_users(group.id)) == {"u2"}
    watermark = store.deletions(group.id, "user")["u1"]
    assert watermark >= store.last_interaction_id(group.id)
    assert store.delete_user(group.id, "nobody") == {"interactions": 0, "records": 0}


def test_a_deleted_item_is_left_out_of_training_until_it_is_put_again(store: Store) -> None:
    group = store.create_dataset_group("g")
    _events(store, group.id, [("u1", "a"), ("u1", "b"), ("u2", "a")])
    schema = Schema.from_json({"type": "record", "name": "Items", "fields": [
        {"name": "ITEM_ID", "type": "string"}, {"name": "GENRE", "type": ["null", "string"], "categorical": True}]})
    store.write_items(group.id, pd.DataFrame({"ITEM_ID": ["a", "b"], "GENRE": ["x", "y"]}), schema=schema.to_dict())
    assert store.delete_item(group.id, "a") == {"records": 1}
    assert store.read_interactions(group.id)["item_id"].tolist() == ["b"]
    assert store.count_interactions(group.id) == 3  # the histories keep it
    store.upsert_entities(group.id, "items", pd.DataFrame({"ITEM_ID": ["a"], "GENRE": ["z"]}), schema.to_dict())
    assert store.deletions(group.id, "item") == {}
    assert sorted(store.read_interactions(group.id)["item_id"].tolist()) == ["a", "a", "b"]
    assert store.read_items(group.id)["a"] == {"GENRE": "z"}


def test_the_ledger_round_trip(store: Store) -> None:
    group = store.create_dataset_group("g")
    entries = [Served("r1", group.id, "home", "u1", ("a", "b"), 100.0), Served("r2", group.id, "home", "u1", ("c",),
                                                                               200.0),
               Served("r3", group.id, "home", None, ("d",), 300.0)]
    store.write_served(entries)
    store.write_served(entries[:1])  # an id written twice is kept once
    assert [e.recommendation_id for e in store.served_to(group.id, "u1", 150.0)] == ["r2"]
    assert store.served_by_id(["r1", "r3", "missing"]) == {"r1": entries[0], "r3": entries[2]}
    assert store.prune_served(250.0) == 2
    assert store.served_by_id(["r1", "r2", "r3"]).keys() == {"r3"}


def test_user_items_since(store: Store) -> None:
    group = store.create_dataset_group("g")
    _events(store, group.id, [("u1", "a"), ("u1", "b"), ("u1", "c")])
    assert store.user_items_since(group.id, "u1", 1764064801) == {"b", "c"}
