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
    removed = store.delete_user(group.id, "u1")
    assert (removed.interactions, removed.records) == (2, 1)
    after = store.live_state(group.id)
    assert after.catalog_version == before.catalog_version + 1
    assert store.user_history(group.id, "u1") == [] and set(store.read_users(group.id)) == {"u2"}
    watermark = store.deletions(group.id, "user")["u1"]
    assert watermark >= store.last_interaction_id(group.id)
    assert store.delete_user(group.id, "nobody").counts() == {"interactions": 0, "records": 0, "sessions": 0,
                                                              "served": 0}


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
    assert len(store.deletions(group.id, "item")) == 0
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


def test_concurrent_first_batches_of_a_new_group_all_land(store: Store) -> None:
    import threading

    group = store.create_dataset_group("fresh")
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            store.write_events(group.id, [{"event_id": f"t{n}-{j}", "user_id": f"u{n}", "item_id": str(j),
                                           "timestamp": 1764064800} for j in range(5)])
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and store.count_interactions(group.id) == 40
    assert store.get_dataset(group.id, "interactions") is not None


def test_write_events_counts_duplicates_within_and_across_batches(store: Store) -> None:
    group = store.create_dataset_group("g")
    batch = [{"event_id": "a", "user_id": "u", "item_id": "1", "timestamp": 1, "event_value": 2.5,
              "context": {"device": "phone"}},
             {"event_id": "a", "user_id": "u", "item_id": "2", "timestamp": 1},
             {"event_id": "b", "user_id": "u", "item_id": "3", "timestamp": 2}]
    assert store.write_events(group.id, batch) == (2, 1)
    assert store.write_events(group.id, batch) == (0, 3)
    assert store.user_history(group.id, "u") == ["1", "3"]
    assert store.last_event_id(group.id) >= store.last_interaction_id(group.id) > 0


def test_events_for_a_cached_group_id_are_refused_once_the_group_is_gone(store: Store) -> None:
    import pytest

    from recsmith.errors import NotFoundError

    old = store.create_dataset_group("old")
    event = {"event_id": "e1", "user_id": "u", "item_id": "1", "timestamp": 1}
    assert store.write_events(old.id, [event], group_name="old") == (1, 0)
    store.delete_dataset_group("old")
    newer = store.create_dataset_group("newer")  # SQLite may give it the deleted group's id
    with pytest.raises(NotFoundError):
        store.write_events(old.id, [event | {"event_id": "e2"}], group_name="old")
    assert store.count_interactions(newer.id) == 0
    assert store.write_events(newer.id, [event], group_name="newer") == (1, 0)
