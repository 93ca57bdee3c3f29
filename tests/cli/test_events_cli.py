"""`recsmith events put`: validated JSON Lines, one transaction, idempotent."""

from __future__ import annotations

import json

from recsmith.store.store import Store


def test_events_put(cli, db_url, tmp_path):
    store = Store(db_url)
    store.migrate()
    group = store.create_dataset_group("shop")
    good = [{"user_id": "u1", "session_id": "s1", "event_type": "view", "item_id": "a", "sent_at": 1764064800},
            {"session_id": "s2", "event_type": "buy", "item_id": "b", "sent_at": "2026-11-25T10:00:00Z",
             "event_id": "x"}]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(json.dumps(e) for e in good) + "\n")
    result = cli("events", "put", source, "-g", "shop", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"accepted": 2, "duplicates": 0}
    assert json.loads(cli("events", "put", source, "-g", "shop", "--json").stdout) == {"accepted": 0, "duplicates": 2}
    assert store.user_history(group.id, "s2") == ["b"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(good[0] | {"item_id": "c", "event_id": "new"}) + "\n"
                   + json.dumps({"session_id": "s", "event_type": "view", "sent_at": 1}) + "\n")
    result = cli("events", "put", bad, "-g", "shop")
    assert result.exit_code == 1 and "bad.jsonl, line 2: item_id: Field required" in result.output
    assert store.count_interactions(group.id) == 2  # nothing of the bad file was written
    store.close()


def test_users_and_items_delete(cli, db_url, tmp_path):
    store = Store(db_url)
    store.migrate()
    group = store.create_dataset_group("shop")
    store.write_events(group.id, [
        {"event_id": f"e{n}", "user_id": user, "item_id": item, "timestamp": 1764064800 + n}
        for n, (user, item) in enumerate([("u1", "a"), ("u1", "b"), ("u2", "a")])])
    result = cli("users", "delete", "u1", "-g", "shop", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"u1": {"interactions": 2, "records": 0, "sessions": 0, "served": 0,
                                                "keys": 0}}
    assert store.user_history(group.id, "u1") == [] and store.user_history(group.id, "u2") == ["a"]
    assert "u1" in store.deletions(group.id, "user") and len(store.deletions(group.id, "user")) == 1
    result = cli("items", "delete", "a", "-g", "shop")
    assert result.exit_code == 0 and "item 'a' deleted" in result.output
    assert store.read_interactions(group.id)["item_id"].tolist() == []  # training leaves deleted items out
    assert cli("users", "delete", "u1", "-g", "nowhere").exit_code == 1
    store.close()
