"""Items put after training reach a cold-start recipe's recommendations at once, scored from their features."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from recsmith.client import Client
from recsmith.datasets import load_dataset
from recsmith.jobs.training import train_solution_version
from recsmith.settings import Settings
from recsmith.store.store import Store

GROUP = "movies"


@dataclass
class ColdServer:
    client: Client


@pytest.fixture(scope="module")
def cold_server(tmp_path_factory: pytest.TempPathFactory, serve_process) -> Iterator[ColdServer]:
    start_server, stop_server = serve_process
    home = tmp_path_factory.mktemp("cold-serve") / "home"
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.migrate()
    load_dataset(store, "ml-latest-small", GROUP)
    genres = train_solution_version(store, settings, GROUP, "feature-popularity", with_metrics=False)["id"]
    popular = train_solution_version(store, settings, GROUP, "popularity", with_metrics=False)["id"]
    store.create_campaign(GROUP, "genres", genres)
    store.create_campaign(GROUP, "popular", popular)
    store.create_filter(GROUP, "no-drama", 'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")')
    key = store.create_api_key("admin", None, "tests")["key"]
    url, process = start_server(home, workers=1)
    client = Client(url, key)
    try:
        yield ColdServer(client)
    finally:
        client.close()
        stop_server(process)
        store.close()


def test_an_item_put_after_training_is_recommended_at_once(cold_server: ColdServer) -> None:
    client = cold_server.client
    before = client.recommend(GROUP, "genres", user_id="1", num_results=10, metadata_columns=["GENRES"])
    assert all(item.reason != "new item" for item in before.items)
    top = set(str(before.items[0].metadata["GENRES"]).split("|"))
    extra = next(genre for genre in ("Comedy", "Thriller", "Action", "Adventure", "Romance", "Crime", "Sci-Fi",
                                     "Fantasy", "Children", "Mystery", "Horror", "Animation", "War", "Musical")
                 if genre not in top)
    genres = "|".join(sorted(top | {"Drama", extra}))  # a superset of the best item's genres: it scores higher
    assert client.put_items(GROUP, [{"item_id": "new-movie-1", "properties": {"GENRES": genres, "TITLE": "New"}}]
                            ) == {"stored": 1}

    after = client.recommend(GROUP, "genres", user_id="1", num_results=10)
    first = after.items[0]
    assert (first.item_id, first.reason) == ("new-movie-1", "new item"), after.items
    assert first.score > before.items[0].score
    assert [item.item_id for item in after.items[1:]] == [item.item_id for item in before.items[:9]]

    hidden = client.recommend(GROUP, "genres", user_id="1", num_results=10, filter="no-drama")
    assert "new-movie-1" not in {item.item_id for item in hidden.items} and len(hidden.items) == 10
    excluded = client.recommend(GROUP, "genres", user_id="1", num_results=10, exclude=["new-movie-1"])
    assert "new-movie-1" not in {item.item_id for item in excluded.items}

    # a recipe that cannot score new items keeps its ranking (new items only fill places it leaves empty)
    plain = client.recommend(GROUP, "popular", user_id="1", num_results=10)
    assert "new-movie-1" not in {item.item_id for item in plain.items}


def test_an_item_of_an_unknown_genre_counts_for_nothing(cold_server: ColdServer) -> None:
    client = cold_server.client
    client.put_items(GROUP, [{"item_id": "new-movie-2", "properties": {"GENRES": "Never-Seen-Genre"}}])
    answer = client.recommend(GROUP, "genres", user_id="1", num_results=10)
    assert "new-movie-2" not in {item.item_id for item in answer.items}
