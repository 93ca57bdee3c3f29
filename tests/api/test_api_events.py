"""The event tracker over HTTP: committed, idempotent, validated, and refused to read-only keys."""

from __future__ import annotations

import time

import httpx
import pytest
import sqlalchemy as sa

from recsmith.client import BadRequest


def eventually(check, timeout=10.0):
    """Other workers see new events soon (0.2 s polls; the 1 s target is measured by benchmarks/events_load.py)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def stored(server, user_id):
    with server.store.engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT item_id, event_type, event_value, event_id, session_id, recommendation_id, context, timestamp "
            "FROM interactions WHERE user_id = :u ORDER BY id"), {"u": user_id}).all()


def test_events_are_stored_and_resubmission_is_idempotent(server):
    events = [{"event_type": "click", "item_id": "1", "sent_at": "2026-11-25T10:00:00Z", "event_id": "e-1",
               "recommendation_id": "r-1", "impression": ["1", "2", "3"], "properties": {"device": "phone"}},
              {"event_type": "purchase", "item_id": "2", "sent_at": 1764064800, "event_value": 9.5}]
    with server.client(server.write_key) as client:
        first = client.put_events("movies", user_id="event-user", session_id="s-1", events=events)
        again = client.put_events("movies", user_id="event-user", session_id="s-1", events=events)
    assert first == {"accepted": 2, "duplicates": 0} and again == {"accepted": 0, "duplicates": 2}
    rows = stored(server, "event-user")
    assert [(r.item_id, r.event_type, r.event_value) for r in rows] == [("1", "click", None), ("2", "purchase", 9.5)]
    assert rows[0].event_id == "e-1" and rows[0].session_id == "s-1" and rows[0].recommendation_id == "r-1"
    assert '"impression": "1|2|3"' in rows[0].context and rows[1].timestamp == 1764064800


def test_anonymous_session_stands_for_the_user(server):
    with server.client(server.write_key) as client:
        result = client.put_events("movies", session_id="anon-42",
                                   events=[{"event_type": "view", "item_id": "50", "sent_at": 1764064800}])
    assert result["accepted"] == 1 and [r.item_id for r in stored(server, "anon-42")] == ["50"]


def test_the_next_recommendations_use_the_new_events_of_an_unknown_user(server):
    with server.client(server.write_key) as client:
        before = client.recommend("movies", "knn", user_id="fresh-visitor", num_results=10)
        client.put_events("movies", user_id="fresh-visitor", session_id="s",
                          events=[{"event_type": "rating", "item_id": item, "sent_at": 1764064800}
                                  for item in ("1", "2", "3")])
        after = client.recommend("movies", "knn", user_id="fresh-visitor", num_results=10)
    assert {i.reason for i in before.items} == {"popular"}
    assert all(i.reason.startswith("because you interacted with") for i in after.items)
    assert not {i.item_id for i in after.items} & {"1", "2", "3"}  # unknown users: history read on each request


@pytest.mark.parametrize(("body", "field"), [
    ({"session_id": "s", "events": []}, "events"),
    ({"session_id": "s", "events": [{"event_type": "v", "item_id": "1", "sent_at": 1}] * 101}, "events"),
    ({"events": [{"event_type": "v", "item_id": "1", "sent_at": 1}]}, "session_id"),
    ({"session_id": "s", "events": [{"event_type": "v", "item_id": "1", "sent_at": "yesterday"}]},
     "events.0.sent_at"),
    ({"session_id": "s", "events": [{"event_type": "v", "sent_at": 1}]}, "events.0.item_id"),
])
def test_invalid_events_are_422_naming_the_field(server, body, field):
    response = httpx.post(f"{server.url}/v1/dataset-groups/movies/events", json=body,
                          headers={"Authorization": f"Bearer {server.write_key}"})
    assert response.status_code == 422 and response.json()["error"]["field"] == field, response.text


def test_read_keys_may_not_send_events(server):
    response = httpx.post(f"{server.url}/v1/dataset-groups/movies/events",
                          json={"session_id": "s", "events": [{"event_type": "v", "item_id": "1", "sent_at": 1}]},
                          headers={"Authorization": f"Bearer {server.read_key}"})
    assert response.status_code == 403 and "needs role write" in response.json()["error"]["message"]
    with server.client(server.write_key) as client, pytest.raises(BadRequest):
        client.put_events("movies", session_id="s", events=[{"event_type": "v", "item_id": "1"}])


def test_a_known_users_new_events_are_excluded_and_steer_the_next_recommendations(server):
    with server.client(server.write_key) as client:
        before = client.recommend("movies", "knn", user_id="3", num_results=10)
        bought = before.items[0].item_id
        client.put_events("movies", user_id="3", session_id="s3",
                          events=[{"event_type": "purchase", "item_id": bought, "sent_at": 1764064800}])
        for _ in range(6):  # each request may reach either worker
            assert eventually(lambda: bought not in {
                i.item_id for i in client.recommend("movies", "mf", user_id="3", num_results=10).items})
            assert eventually(lambda: any(
                i.reason == f"because you interacted with {bought}" and i.item_id != bought
                for i in client.recommend("movies", "knn", user_id="3", num_results=10).items))


def test_events_follow_a_group_deleted_and_created_again(server):
    server.store.create_dataset_group("churn")
    body = {"session_id": "s", "events": [{"event_type": "view", "item_id": "1", "sent_at": 1764064800}]}
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    url = f"{server.url}/v1/dataset-groups/churn/events"
    for _ in range(4):  # both workers cache the group's id
        assert httpx.post(url, json=body, headers=headers).status_code == 200
    server.store.delete_dataset_group("churn")
    server.store.create_dataset_group("churn-2")
    again = server.store.create_dataset_group("churn")
    for n in range(4):
        response = httpx.post(url, json=body | {"session_id": f"s{n}"}, headers=headers)
        assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
    assert server.store.count_interactions(again.id) == 4
    assert server.store.count_interactions(server.store.get_dataset_group("churn-2").id) == 0
    server.store.delete_dataset_group("churn")
    response = httpx.post(url, json=body, headers=headers)
    assert response.status_code == 404
