"""Filters, campaigns and API keys in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from recsmith.data.filters import FilterFieldError
from recsmith.errors import ConfigError, FilterError, NotFoundError
from recsmith.store.store import Store


def _version(store: Store, group: str, status: str = "ACTIVE") -> int:
    group_id = store.get_or_create_dataset_group(group).id
    solution = store.get_or_create_solution(group_id, "s", "popularity", {}, {})
    version = store.create_solution_version(solution["id"], {}, {})
    store.update_solution_version(version, status=status, artifact_uri="/nowhere")
    return version


ITEMS_SCHEMA = {"type": "record", "name": "Items", "fields": [{"name": "ITEM_ID", "type": "string"},
                                                              {"name": "GENRE", "type": "string"}]}


def test_filters(store: Store) -> None:
    group_id = store.create_dataset_group("g").id
    with pytest.raises(FilterFieldError, match="no items schema yet"):
        store.create_filter("g", "genre", "INCLUDE ItemID WHERE Items.GENRE IN ($G)")
    store.ensure_dataset(group_id, "items", ITEMS_SCHEMA)
    with pytest.raises(FilterFieldError, match="did you mean GENRE") as info:
        store.create_filter("g", "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    assert (info.value.position, info.value.field, info.value.suggestion) == (27, "GENRES", "GENRE")
    record = store.create_filter("g", "genre", "INCLUDE ItemID WHERE Items.GENRE IN ($G)")
    assert record["name"] == "genre" and record["dataset_group"] == "g"
    with pytest.raises(ConfigError, match="already has a filter 'genre'"):
        store.create_filter("g", "genre", 'EXCLUDE ItemID WHERE Items.GENRE IN ("x")')
    with pytest.raises(FilterError, match="position"):
        store.create_filter("g", "bad", "INCLUDE ItemID WHERE")
    with pytest.raises(ConfigError, match="invalid filter name"):
        store.create_filter("g", "no spaces", 'EXCLUDE ItemID WHERE Items.GENRE IN ("x")')
    assert [f["name"] for f in store.list_filters("g")] == ["genre"]
    store.delete_filter("g", "genre")
    with pytest.raises(NotFoundError, match="no filter 'genre'"):
        store.get_filter("g", "genre")


def test_campaigns(store: Store) -> None:
    first, second = _version(store, "g"), _version(store, "g")
    pending = _version(store, "g", status="CREATE_IN_PROGRESS")
    elsewhere = _version(store, "h")
    record = store.create_campaign("g", "home", first, {"exclude_seen": False})
    assert record["solution_version_id"] == first and record["config"] == {"exclude_seen": False}
    assert record["recipe"] == "popularity" and record["artifact_uri"] == "/nowhere"
    with pytest.raises(ConfigError, match="already has a campaign"):
        store.create_campaign("g", "home", first)
    with pytest.raises(ConfigError, match="not ACTIVE"):
        store.create_campaign("g", "x", pending)
    with pytest.raises(ConfigError, match="another dataset group"):
        store.create_campaign("g", "x", elsewhere)
    with pytest.raises(NotFoundError, match="no solution version 999"):
        store.update_campaign("g", "home", solution_version_id=999)
    updated = store.update_campaign("g", "home", solution_version_id=second)
    assert updated["solution_version_id"] == second and updated["config"] == {"exclude_seen": False}
    assert [c["name"] for c in store.list_campaigns()] == ["home"] and store.list_campaigns("h") == []
    store.delete_campaign("g", "home")
    with pytest.raises(NotFoundError, match="no campaign 'home'"):
        store.get_campaign("g", "home")


def test_api_keys(store: Store) -> None:
    store.create_dataset_group("g")
    scoped = store.create_api_key("read", "g", "web")
    everywhere = store.create_api_key("admin")
    assert store.verify_api_key(scoped["key"]) == {"key_id": scoped["key_id"], "role": "read", "dataset_group": "g"}
    assert store.verify_api_key(everywhere["key"])["dataset_group"] is None
    for forged in ("", "rsk_", scoped["key"] + "x", f"rsk_{scoped['key_id']}_guess", "Bearer x"):
        assert store.verify_api_key(forged) is None
    assert store.count_api_keys() == 2
    assert {k["key_id"] for k in store.list_api_keys()} == {scoped["key_id"], everywhere["key_id"]}
    with pytest.raises(ConfigError, match="unknown role"):
        store.create_api_key("owner")
    store.delete_api_key(scoped["key_id"])
    assert store.verify_api_key(scoped["key"]) is None
    with pytest.raises(NotFoundError):
        store.delete_api_key(scoped["key_id"])


def test_deleting_a_group_deletes_its_serving_records(store: Store) -> None:
    version = _version(store, "g")
    store.ensure_dataset(store.get_dataset_group("g").id, "items", ITEMS_SCHEMA)
    store.create_campaign("g", "home", version)
    store.create_filter("g", "f", 'EXCLUDE ItemID WHERE Items.GENRE IN ("x")')
    key = store.create_api_key("read", "g")
    store.delete_dataset_group("g")
    assert store.list_campaigns() == [] and store.verify_api_key(key["key"]) is None


def test_write_events_is_idempotent_per_event_id(store: Store) -> None:
    group = store.create_dataset_group("g")
    event = {"user_id": "u", "item_id": "i", "timestamp": 1, "event_type": "click", "event_id": "a",
             "session_id": "s", "context": {"device": "phone"}}
    assert store.write_events(group.id, [event, event | {"event_id": "b", "item_id": "j"}, event]) == (2, 1)
    assert store.write_events(group.id, [event]) == (0, 1)
    assert store.user_history(group.id, "u") == ["i", "j"] and store.count_interactions(group.id) == 2
    assert store.get_dataset(group.id, "interactions") is not None  # the default schema was recorded
