"""A sequential campaign on a real two-worker server: the user's ordered live history is read on every request,
so an event changes the next answer (on every worker, within 1 s), and an anonymous session is scored from its
own events in order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsmith.client import Client
from recsmith.datasets import load_dataset
from recsmith.settings import Settings
from recsmith.store.store import Store

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

SMALL = {"epochs": 2, "factors": 16, "max_len": 50, "batch_size": 256, "patience": 0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, serve_process) -> Iterator[tuple[str, str]]:
    from recsmith.jobs.training import train_solution_version

    start_server, stop_server = serve_process
    home: Path = tmp_path_factory.mktemp("live-sasrec") / "home"
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.migrate()
    load_dataset(store, "ml-latest-small", "movies")
    version = train_solution_version(store, settings, "movies", "sasrec", SMALL, with_metrics=False)["id"]
    store.create_campaign("movies", "next", version)
    key = store.create_api_key("admin", None, "tests")["key"]
    url, process = start_server(home, workers=2)
    try:
        yield url, key
    finally:
        stop_server(process)
        store.close()


def ids(response) -> list[str]:
    return [item.item_id for item in response.items]


def event(item: str, at: float) -> dict:
    return {"event_type": "watch", "item_id": item, "sent_at": at}


def test_an_event_moves_the_answer_on_every_worker_within_a_second(server):
    url, key = server
    # connections opened (and used) before the event, so the clock measures the event, not connecting; the
    # kernel spreads eight of them over both workers
    clients = [Client(url, key) for _ in range(8)]
    try:
        before = [ids(c.recommend("movies", "next", user_id="7", num_results=10)) for c in clients]
        assert all(b == before[0] for b in before) and len(before[0]) == 10
        clicked = before[0][3]
        clients[0].put_events("movies", user_id="7", session_id="s7", events=[event(clicked, time.time())])
        acknowledged = time.monotonic()
        expected_without = [item for item in before[0] if item != clicked]

        def moved(c: Client) -> bool:
            after = ids(c.recommend("movies", "next", user_id="7", num_results=10))
            # not only is the clicked item gone: the latest step of the sequence re-ranks the rest
            return clicked not in after and after[:9] != expected_without

        while not all(moved(c) for c in clients):
            assert time.monotonic() - acknowledged < 1.0, "the event did not reach every worker within 1 s"
            time.sleep(0.02)
        assert time.monotonic() - acknowledged < 1.0
    finally:
        for c in clients:
            c.close()


def test_an_anonymous_session_is_scored_from_its_events_in_order(server):
    url, key = server
    session = f"anon-{uuid.uuid4().hex[:6]}"
    other = f"anon-{uuid.uuid4().hex[:6]}"
    first, second = ["1", "2571", "260"], ["260", "2571", "1"]  # the same movies, in the other order
    now = time.time()
    with Client(url, key) as client:
        cold = client.recommend("movies", "next", session_id=session, num_results=10)
        client.put_events("movies", session_id=session, events=[event(m, now + i) for i, m in enumerate(first)])
        client.put_events("movies", session_id=other, events=[event(m, now + i) for i, m in enumerate(second)])
        steered = client.recommend("movies", "next", session_id=session, num_results=10)
        reversed_order = client.recommend("movies", "next", session_id=other, num_results=10)
    assert {item.reason for item in cold.items} == {"popular"}
    assert {item.reason for item in steered.items} == {"history"}
    assert not set(ids(steered)) & set(first)
    assert ids(steered) != ids(reversed_order)  # a bag of items would give both the same answer
