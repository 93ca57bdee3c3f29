"""A real recsmith server process for the API tests: ml-latest-small, three solution versions, two campaigns."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recsmith.client import Client
from recsmith.datasets import load_dataset
from recsmith.jobs.training import train_solution_version
from recsmith.settings import Settings
from recsmith.store.store import Store
from recsmith.testing import start_server, stop_server


@dataclass
class Server:
    """A running ``recsmith serve`` and what was deployed on it."""

    url: str
    home: Path
    admin_key: str
    read_key: str
    write_key: str
    other_group_key: str
    versions: dict[str, int]
    process: subprocess.Popen
    store: Store

    def client(self, key: str | None = None) -> Client:
        return Client(self.url, key if key is not None else self.admin_key)


@pytest.fixture
def launch() -> Iterator:
    """``launch(home, workers=1)`` starts another ``recsmith serve``; returns (url, process); stopped after the test."""
    started: list[subprocess.Popen] = []

    def run(home: Path, *, workers: int = 1) -> tuple[str, subprocess.Popen]:
        url, process = start_server(home, workers=workers)
        started.append(process)
        return url, process

    yield run
    for process in started:
        if process.poll() is None:
            stop_server(process)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("serve") / "home"
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.migrate()
    load_dataset(store, "ml-latest-small", "movies")
    versions = {
        "item-knn": train_solution_version(store, settings, "movies", "item-knn", with_metrics=False)["id"],
        "als": train_solution_version(store, settings, "movies", "als", {"factors": 16, "epochs": 5},
                                      with_metrics=False)["id"],
        "ease": train_solution_version(store, settings, "movies", "ease", with_metrics=False)["id"],
    }
    store.create_campaign("movies", "knn", versions["item-knn"])
    store.create_campaign("movies", "mf", versions["als"])
    store.create_filter("movies", "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    store.create_filter("movies", "no-drama", 'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")')
    store.create_filter("movies", "documentary", 'INCLUDE ItemID WHERE Items.GENRES IN ("Documentary")')
    store.create_filter("movies", "noir", 'INCLUDE ItemID WHERE Items.GENRES IN ("Film-Noir")')
    store.create_filter("movies", "same-genre", "INCLUDE ItemID WHERE Items.GENRES IN CurrentItem.GENRES")
    store.create_dataset_group("other")
    keys = {role: store.create_api_key(role, "movies")["key"] for role in ("read", "write")}
    other = store.create_api_key("admin", "other")["key"]
    url, process = start_server(home)
    # the store had keys already, so serve printed none; the admin key for every group is made here
    admin = store.create_api_key("admin", None, "tests")["key"]
    served = Server(url, home, admin, keys["read"], keys["write"], other, versions, process, store)
    try:
        yield served
    finally:
        stop_server(process)
        store.close()


@pytest.fixture(scope="session")
def serve_process():
    """``(start_server, stop_server)``, for module fixtures that run a server of their own."""
    return start_server, stop_server
