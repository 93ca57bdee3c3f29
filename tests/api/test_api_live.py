"""Real-time behaviour of a real two-worker server, with the database alone and with Redis: events change the next
recommendations, sessions steer their own results, users and items are put and deleted, and the served-items
ledger suppresses what was shown and counts clicks."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from recsmith.cli.main import app
from recsmith.client import BadRequest, Client
from recsmith.datasets import load_dataset
from recsmith.jobs.config import SolutionConfig
from recsmith.jobs.training import train_solution_version
from recsmith.settings import Settings
from recsmith.store.store import Store

REDIS_URL = os.environ.get("RECSMITH_TEST_REDIS_URL")
BACKENDS = ["database", pytest.param("redis", marks=[
    pytest.mark.redis, pytest.mark.skipif(not REDIS_URL, reason="RECSMITH_TEST_REDIS_URL is not set")])]


@dataclass
class Live:
    url: str
    key: str
    store: Store
    group_id: int
    backend: str
    home: Path
    weighted_version: int

    def client(self) -> Client:
        return Client(self.url, self.key)


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, serve_process) -> Iterator[Live]:
    start_server, stop_server = serve_process
    home: Path = tmp_path_factory.mktemp(f"live-{request.param}") / "home"
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.migrate()
    load_dataset(store, "ml-latest-small", "movies")
    version = train_solution_version(store, settings, "movies", "item-knn", with_metrics=False)["id"]
    store.create_campaign("movies", "knn", version)
    weighted = train_solution_version(store, settings, "movies", "item-knn", with_metrics=False,
                                      solution_name="knn-weighted",
                                      config=SolutionConfig(event_weights={"like": 1.0, "dislike": -1.0}))["id"]
    store.create_campaign("movies", "weighted", weighted)
    store.create_filter("movies", "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    key = store.create_api_key("admin", None, "tests")["key"]
    env = {}
    if request.param == "redis":
        env = {"RECSMITH_REDIS_URL": REDIS_URL, "RECSMITH_REDIS_PREFIX": f"test-{uuid.uuid4().hex[:8]}"}
    url, process = start_server(home, workers=2, env=env)
    try:
        yield Live(url, key, store, store.get_dataset_group("movies").id, request.param, home, weighted)
    finally:
        stop_server(process)
        store.close()


def eventually(check, timeout: float = 10.0):
    """What is acknowledged is reflected soon, whichever worker answers. The bound is generous: the 1 s
    freshness target is measured by benchmarks/events_load.py, not asserted against a loaded machine's clock."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def on_every_worker(live: Live, check, rounds: int = 8) -> bool:
    """``check(client)`` on fresh connections (the kernel spreads them over both workers)."""
    for _ in range(rounds):
        with live.client() as client:
            if not check(client):
                return False
    return True


def ids(recommendations) -> list[str]:
    return [item.item_id for item in recommendations.items]


def event(item: str, **extra) -> dict:
    return {"event_type": "click", "item_id": item, "sent_at": time.time(), **extra}


def test_an_acknowledged_event_removes_the_item_on_every_worker(live):
    with live.client() as client:
        top = ids(client.recommend("movies", "knn", user_id="15", num_results=10))
        client.put_events("movies", user_id="15", session_id="s15", events=[event(top[0])])
    gone = eventually(lambda: on_every_worker(
        live, lambda c: top[0] not in ids(c.recommend("movies", "knn", user_id="15", num_results=10))))
    assert gone


def test_a_new_user_gets_personal_recommendations_after_two_clicks(live):
    user = f"new-{live.backend}"
    with live.client() as client:
        before = client.recommend("movies", "knn", user_id=user, num_results=5)
        client.put_events("movies", user_id=user, session_id="s", events=[event("1"), event("2")])
        after = eventually(lambda: client.recommend("movies", "knn", user_id=user, num_results=5))
    assert {item.reason for item in before.items} == {"popular"}
    assert all(item.reason.startswith("because you interacted with") for item in after.items)
    assert not set(ids(after)) & {"1", "2"}


def test_an_anonymous_session_steers_its_own_recommendations(live):
    session = f"anon-{live.backend}-{uuid.uuid4().hex[:6]}"
    horror = ["1219", "1258", "1387"]  # Psycho, The Shining, Jaws
    with live.client() as client:
        cold = client.recommend("movies", "knn", session_id=session, num_results=10)
        client.put_events("movies", session_id=session, events=[event(item) for item in horror])
        steered = client.recommend("movies", "knn", session_id=session, num_results=10)
    assert {item.reason for item in cold.items} == {"popular"}
    assert steered.items and all(item.reason.startswith("because you interacted with") for item in steered.items)
    assert not set(ids(steered)) & set(horror) and ids(steered) != ids(cold)
    # after signing in, the session's anonymous clicks count for the user too
    with live.client() as client:
        signed_in = client.recommend("movies", "knn", user_id=f"{session}-user", session_id=session, num_results=10)
    assert ids(signed_in) == ids(steered)


def test_a_deleted_user_is_gone_from_the_store_and_from_serving(live):
    with live.client() as client:
        before = client.recommend("movies", "knn", user_id="23", num_results=5)
        assert all(item.reason != "popular" for item in before.items)
        removed = client.delete_user("movies", "23")
        assert removed["deleted"] == "23" and removed["interactions"] > 0
    assert live.store.user_history(live.group_id, "23") == []
    assert eventually(lambda: on_every_worker(live, lambda c: {i.reason for i in c.recommend(
        "movies", "knn", user_id="23", num_results=5).items} == {"popular"}))


def test_the_next_training_does_not_see_a_deleted_user(live):
    if live.backend != "database":
        pytest.skip("training is the same with either backend")
    with live.client() as client:
        client.delete_user("movies", "24")
    version = train_solution_version(live.store, Settings(home=Path(live.store.url.split("///")[1]).parent),
                                     "movies", "popularity", with_metrics=False)
    from recsmith.recipes.bundle import TrainedModel

    model = TrainedModel.load(Path(version["artifact_uri"]))
    assert "24" not in model.users and "25" in model.users


def test_a_deleted_item_stops_being_recommended_at_once_and_returns_when_put_again(live):
    with live.client() as client:
        top = ids(client.recommend("movies", "knn", user_id="30", num_results=5))[0]
        client.delete_item("movies", top)
        # the worker that took the delete answers without it at once; the other within the poll
        assert eventually(lambda: on_every_worker(
            live, lambda c: top not in ids(c.recommend("movies", "knn", user_id="30", num_results=5))))
        ranked = client.rank("movies", "knn", user_id="30", input_list=[top, "1", "2"])
        assert top not in ids(ranked)
        client.put_items("movies", [{"item_id": top, "properties": {"GENRES": "Drama"}}])
        assert eventually(lambda: on_every_worker(
            live, lambda c: top in ids(c.recommend("movies", "knn", user_id="30", num_results=5))))


def test_a_new_item_is_recommendable_through_filters_at_once(live):
    genre = f"Brand-New-{live.backend}"
    with live.client() as client:
        assert client.put_items("movies", [{"item_id": f"new-movie-{live.backend}",
                                            "properties": {"GENRES": f"{genre}|Comedy"}}]) == {"stored": 1}

        def shows_it(c: Client) -> bool:
            rec = c.recommend("movies", "knn", user_id="40", num_results=5, filter="genre",
                              filter_values={"GENRE": genre})
            return [(i.item_id, i.reason) for i in rec.items] == [(f"new-movie-{live.backend}", "new item")]

        assert eventually(lambda: on_every_worker(live, shows_it))


def test_put_items_and_users_check_the_schema(live):
    with live.client() as client:
        with pytest.raises(BadRequest) as error:
            client.put_items("movies", [{"item_id": "x1", "properties": {"GENRES": "Drama"}},
                                        {"item_id": "x2", "properties": {"COLOUR": "red"}}])
        assert "COLOUR" in str(error.value) and error.value.field == "properties.COLOUR"
        with pytest.raises(BadRequest):
            client.put_users("movies", [{"user_id": "u1", "properties": {"AGE": 30}}])
        assert client.put_users("movies", [{"user_id": "u1"}, {"user_id": "u2"}]) == {"stored": 2}
    assert "x1" not in live.store.read_items(live.group_id, ["x1"])  # all or nothing
    assert set(live.store.read_users(live.group_id, ["u1", "u2"])) == {"u1", "u2"}


def test_put_and_delete_need_a_write_key(live):
    read_key = live.store.create_api_key("read", "movies")["key"]
    response = httpx.delete(f"{live.url}/v1/dataset-groups/movies/users/1",
                            headers={"Authorization": f"Bearer {read_key}"})
    assert response.status_code == 403


def test_the_ledger_suppresses_served_items_not_acted_on(live):
    user = "50"
    with live.client() as client:
        first = client.recommend("movies", "knn", user_id=user, num_results=5)
        clicked = first.items[0].item_id

        def fresh_page() -> list[str]:
            return ids(client.recommend("movies", "knn", user_id=user, num_results=5, suppress_served_minutes=10))

        second = eventually(lambda: (page := fresh_page()) and not set(page) & set(ids(first)) and page)
        assert second, "items served a moment ago came back"
        plain = ids(client.recommend("movies", "knn", user_id=user, num_results=5))
        assert plain == ids(first)  # without the option nothing is suppressed
        client.put_events("movies", user_id=user, session_id="s",
                          events=[event(clicked, recommendation_id=first.recommendation_id,
                                        impression=ids(first))])
        third = client.recommend("movies", "knn", user_id=user, num_results=50, suppress_served_minutes=10,
                                 exclude_seen=False)
    assert clicked in ids(third)  # acted on: not suppressed (the click lifted its neighbours above it)
    assert not (set(ids(third)) - {clicked}) & (set(ids(first)) | set(second))


def test_clicks_on_served_items_give_a_click_through_rate_per_campaign(live):
    with live.client() as client:
        served = client.recommend("movies", "knn", user_id="60", num_results=4)
        time.sleep(1.0)  # the database ledger is written every 0.25 s; another worker may take the click
        client.put_events("movies", user_id="60", session_id="s", events=[
            event(served.items[1].item_id, recommendation_id=served.recommendation_id, impression=ids(served))])
        metrics = eventually(lambda: (text := client.metrics()) and "recsmith_clicks_total" in text and text)
    assert 'recsmith_clicks_total{campaign="knn",dataset_group="movies"}' in metrics
    rate = [line for line in metrics.splitlines() if line.startswith("recsmith_click_through_rate{")]
    assert rate and 0 < float(rate[0].split()[-1]) <= 1


def test_personalized_ranking_uses_a_known_users_new_events(live):
    with live.client() as client:
        page = ids(client.recommend("movies", "knn", user_id="70", num_results=6))
        before = {i.item_id: i.score for i in client.rank("movies", "knn", user_id="70", input_list=page[1:]).items}
        client.put_events("movies", user_id="70", session_id="s", events=[event(page[0])])

        def changed() -> bool:
            after = client.rank("movies", "knn", user_id="70", input_list=page[1:]).items
            return any(abs(i.score - before[i.item_id]) > 1e-6 for i in after)

        assert eventually(changed)  # the click's neighbours score higher (fold-in of the live history)


def test_a_campaign_can_give_a_share_of_its_results_to_new_items(live):
    new_item = f"explore-{live.backend}"
    version = live.store.get_campaign("movies", "knn")["solution_version_id"]
    live.store.create_campaign("movies", f"explore-{live.backend}", version, {"new_items_share": 0.2})
    with live.client() as client:
        client.put_items("movies", [{"item_id": new_item, "properties": {"GENRES": "Comedy"}}])

        def explored(c: Client) -> bool:
            try:
                rec = c.recommend("movies", f"explore-{live.backend}", user_id="80", num_results=10)
            except Exception:  # the campaign is loading on this worker
                return False
            new = [i for i in rec.items if i.reason == "new item"]
            return (len(rec.items) == 10 and len(new) == 2 and new_item in {i.item_id for i in new}
                    and all(i.reason != "new item" for i in rec.items[:8]))

        assert eventually(lambda: on_every_worker(live, explored), timeout=5)
        plain = client.recommend("movies", "knn", user_id="80", num_results=10)
    assert all(item.reason != "new item" for item in plain.items)  # the default share is 0


def _neighbour_scores(client: Client, user: str, neighbours: list[str]) -> dict[str, float]:
    ranked = client.rank("movies", "weighted", user_id=user, input_list=neighbours)
    return {item.item_id: item.score for item in ranked.items}


@pytest.mark.parametrize("event_type", ["dislike", "like"])
def test_a_live_event_moves_its_items_neighbours_as_its_weight_says(live, event_type):
    """The solution weighs like=1, dislike=-1: a live dislike of a new item pushes its neighbours down (in the
    ranking, and none into the top 25 because of it), as the same event does in training; a like pulls them up."""
    user = {"dislike": "209", "like": "221"}[event_type]  # light users (20 ratings): one event shows
    with live.client() as client:
        seen = set(live.store.user_history(live.group_id, user))
        item = next(i for i in ids(client.recommend("movies", "weighted", user_id="1", num_results=50))
                    if i not in seen)  # an item new to the user
        neighbours = ids(client.recommend("movies", "weighted", item_id=item, num_results=20))
        before = _neighbour_scores(client, user, neighbours)
        top_before = set(ids(client.recommend("movies", "weighted", user_id=user, num_results=25)))
        client.put_events("movies", user_id=user, session_id=f"s-{user}",
                          events=[event(item, event_type=event_type, event_id=uuid.uuid4().hex)])

        def moved(c: Client) -> bool:
            after = _neighbour_scores(c, user, neighbours)
            if event_type == "dislike":
                return all(after[n] < before[n] for n in neighbours)
            return all(after[n] > before[n] for n in neighbours)

        assert eventually(lambda: on_every_worker(live, moved))
        after = client.recommend("movies", "weighted", user_id=user, num_results=25)
    top_after = set(ids(after))
    supported = [i.item_id for i in after.items if i.reason == f"because you interacted with {item}"]
    assert item not in top_after
    if event_type == "dislike":  # nothing rises because of it
        assert not supported and len(top_after & set(neighbours)) <= len(top_before & set(neighbours))
    else:  # its neighbours come in, because of it
        assert supported and set(supported) <= set(neighbours) | (top_after - top_before)


def test_the_cli_and_http_give_the_same_list_after_an_item_delete(live, monkeypatch):
    if live.backend != "database":
        pytest.skip("the CLI reads the store, whichever backend the server uses")
    monkeypatch.setenv("RECSMITH_HOME", str(live.home))
    monkeypatch.delenv("RECSMITH_DATABASE_URL", raising=False)
    with live.client() as client:
        top = ids(client.recommend("movies", "weighted", user_id="40", num_results=10))
        client.delete_item("movies", top[0])
        client.put_events("movies", user_id="40", session_id="s40",
                          events=[event(top[1], event_type="dislike", event_id=uuid.uuid4().hex)])
        over_http = eventually(lambda: (got := ids(client.recommend("movies", "weighted", user_id="40",
                                                                     num_results=10))) and top[0] not in got and got)
    result = CliRunner().invoke(app, ["recommend", "--solution-version", str(live.weighted_version), "--user", "40",
                                      "--num", "10", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    over_cli = [row["item_id"] for row in json.loads(result.stdout)["items"]]
    assert top[0] not in over_cli and top[1] not in over_cli
    assert over_cli == over_http
