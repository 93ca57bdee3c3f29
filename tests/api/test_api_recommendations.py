"""Recommendations, related items and personalized ranking through a real server, with the client."""

from __future__ import annotations

import httpx
import pytest

from recsmith.client import BadRequest, NotFound


def genres(server, item_ids):
    items = server.store.read_items(server.store.get_dataset_group("movies").id, list(item_ids))
    return {item: set((items.get(item) or {}).get("GENRES", "").split("|")) for item in item_ids}


def seen(server, user):
    return set(server.store.user_history(server.store.get_dataset_group("movies").id, user))


def test_known_user_gets_unseen_items_with_reasons(server):
    with server.client(server.read_key) as client:
        result = client.recommend("movies", "knn", user_id="1")
    assert len(result.items) == 25 and result.recommendation_id and result.solution_version_id
    ids = [item.item_id for item in result.items]
    assert len(set(ids)) == 25 and not set(ids) & seen(server, "1")
    scores = [item.score for item in result.items]
    assert scores == sorted(scores, reverse=True)
    history = seen(server, "1")
    because = [item.reason.removeprefix("because you interacted with ") for item in result.items
               if item.reason.startswith("because you interacted with ")]
    assert len(because) >= 20 and set(because) <= history


def test_factor_model_reason_is_personalized(server):
    with server.client(server.read_key) as client:
        result = client.recommend("movies", "mf", user_id="1", num_results=10)
    assert {item.reason for item in result.items} == {"personalized"}


def test_unknown_user_gets_popular_items_that_pass_the_filter(server):
    with server.client(server.read_key) as client:
        plain = client.recommend("movies", "knn", user_id="never-seen", num_results=10)
        comedy = client.recommend("movies", "knn", user_id="never-seen", num_results=10, filter="genre",
                                  filter_values={"GENRE": "Comedy"})
    assert {item.reason for item in plain.items} == {"popular"}
    assert [i.score for i in plain.items] == sorted((i.score for i in plain.items), reverse=True)
    assert all("Comedy" in g for g in genres(server, [i.item_id for i in comedy.items]).values())


def test_filter_exclusions_and_num_results(server):
    with server.client(server.read_key) as client:
        first = client.recommend("movies", "knn", user_id="15", num_results=5)
        excluded = [first.items[0].item_id, first.items[1].item_id]
        again = client.recommend("movies", "knn", user_id="15", num_results=5, exclude=excluded)
        no_drama = client.recommend("movies", "knn", user_id="15", num_results=40, filter="no-drama")
    assert not {i.item_id for i in again.items} & set(excluded) and len(again.items) == 5
    assert all("Drama" not in g for g in genres(server, [i.item_id for i in no_drama.items]).values())
    assert len(no_drama.items) == 40


def test_a_filter_that_removes_too_much_is_padded_with_popular_items_that_pass_it(server):
    with server.client(server.read_key) as client:
        result = client.recommend("movies", "knn", user_id="1", num_results=100, filter="noir")
    assert len(result.items) == 100
    assert all("Film-Noir" in g for g in genres(server, [i.item_id for i in result.items]).values())
    reasons = [i.reason for i in result.items]
    assert "popular" in reasons and reasons[-1] == "popular"
    assert not {i.item_id for i in result.items} & seen(server, "1")


def test_metadata_columns(server):
    with server.client(server.read_key) as client:
        result = client.recommend("movies", "knn", user_id="1", num_results=3, metadata_columns=["GENRES", "TITLE"])
        with pytest.raises(BadRequest, match="NOPE"):
            client.recommend("movies", "knn", user_id="1", metadata_columns=["NOPE"])
    assert all(set(item.metadata) == {"GENRES", "TITLE"} and item.metadata["TITLE"] for item in result.items)


def test_related_items_with_a_current_item_filter(server):
    with server.client(server.read_key) as client:
        related = client.recommend("movies", "knn", item_id="1", num_results=10)
        same = client.recommend("movies", "knn", item_id="1", num_results=10, filter="same-genre")
        mf = client.recommend("movies", "mf", item_id="1", num_results=5)
    assert "1" not in {i.item_id for i in related.items} and len(related.items) == 10
    assert {i.reason for i in related.items} == {"similar to 1"}
    toy_story = genres(server, ["1"])["1"]
    assert all(g & toy_story for g in genres(server, [i.item_id for i in same.items]).values())
    assert len(mf.items) == 5 and "1" not in {i.item_id for i in mf.items}


def test_promotion_reserves_a_share_of_the_results(server):
    with server.client(server.read_key) as client:
        result = client.recommend("movies", "knn", user_id="1", num_results=10,
                                  promotion={"name": "docs", "filter": "documentary", "percent": 30})
    promoted = [i for i in result.items if i.reason == "promotion: docs"]
    assert len(promoted) == 3 and len(result.items) == 10
    assert all("Documentary" in g for g in genres(server, [i.item_id for i in promoted]).values())


def test_get_form(server):
    response = httpx.get(f"{server.url}/v1/dataset-groups/movies/campaigns/knn/recommendations",
                         params={"user_id": "1", "num_results": 4, "filter": "genre", "filter_value": "GENRE=Comedy",
                                 "metadata_column": "GENRES"},
                         headers={"Authorization": f"Bearer {server.read_key}"})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert len(items) == 4 and all("Comedy" in i["metadata"]["GENRES"] for i in items)


@pytest.mark.parametrize(("body", "field"), [
    ({"user_id": "1", "num_results": 501}, "num_results"),
    ({"user_id": "1", "num_results": 0}, "num_results"),
    ({"user_id": "1", "item_id": "1"}, None),
    ({}, None),
    ({"user_id": "1", "filter_values": "x"}, "filter_values"),
    ({"user_id": "1", "bogus": 1}, "bogus"),
    ({"user_id": "1", "promotion": {"name": "p", "filter": "genre", "percent": 101}}, "promotion.percent"),
])
def test_invalid_requests_are_422_naming_the_field(server, body, field):
    response = httpx.post(f"{server.url}/v1/dataset-groups/movies/campaigns/knn/recommendations", json=body,
                          headers={"Authorization": f"Bearer {server.read_key}"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    if field is not None:
        assert error["field"] == field and field in error["message"]
    else:
        assert "user_id" in error["message"]


def test_unknown_campaign_filter_and_missing_parameter(server):
    with server.client(server.read_key) as client:
        with pytest.raises(NotFound, match="no campaign 'nope'"):
            client.recommend("movies", "nope", user_id="1")
        with pytest.raises(NotFound, match="no filter 'nope'"):
            client.recommend("movies", "knn", user_id="1", filter="nope")
        with pytest.raises(BadRequest, match="GENRE") as excinfo:
            client.recommend("movies", "knn", user_id="1", filter="genre")
    assert excinfo.value.status == 400 and excinfo.value.field == "filter_values.GENRE"


def test_personalized_ranking(server):
    with server.client(server.read_key) as client:
        top = client.recommend("movies", "knn", user_id="1", num_results=5)
        wanted = [i.item_id for i in top.items]
        shuffled = [wanted[3], "no-such-item", wanted[0], wanted[4], wanted[1], wanted[2]]
        ranked = client.rank("movies", "knn", user_id="1", input_list=shuffled)
        stranger = client.rank("movies", "knn", user_id="never-seen", input_list=shuffled)
        filtered = client.rank("movies", "knn", user_id="1", input_list=shuffled, filter="no-drama")
        with pytest.raises(BadRequest, match="input_list"):
            client.rank("movies", "knn", user_id="1", input_list=[str(i) for i in range(501)])
    assert [i.item_id for i in ranked.items] == wanted + ["no-such-item"]
    assert ranked.items[-1].reason == "unknown item" and ranked.items[-1].score is None
    assert {i.reason for i in stranger.items[:-1]} == {"popular"}
    assert all("Drama" not in g for g in genres(server, [i.item_id for i in filtered.items[:-1]]).values())
