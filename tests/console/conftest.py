"""The console's fixtures: a real ``recsmith serve`` on the bundled ml-latest-small, and headless Chromium.

``console_server`` is started once per session on a store that has data, two trained versions (with metrics), a
campaign and a filter, but no API key: the server makes the first admin key itself and writes it to
``$RECSMITH_HOME/first-admin-key``, as a new user's first ``recsmith serve`` does, and the tests sign in with it.

``open_console(key)`` gives a :class:`ConsoleTab`: a browser tab signed in with ``key`` that records console
errors, page errors, failed requests and 4xx/5xx answers; a test asserts none happened with
:meth:`ConsoleTab.assert_clean`. Screenshots go to ``$RECSMITH_SCREENSHOTS`` when set (the README's come from
there: ``RECSMITH_SCREENSHOTS=docs/console``), else to the test's temporary folder.

``console_http(key)`` gives a :class:`SignedIn`: a plain HTTP client signed in with ``key`` through the same form,
and the session's CSRF token, for what the server itself must answer or refuse.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from recsmith.datasets import load_dataset
from recsmith.jobs.training import train_solution_version
from recsmith.settings import Settings
from recsmith.store.store import Store
from recsmith.testing import start_server, stop_server

CHROMIUM = os.environ.get("RECSMITH_CHROMIUM", "/usr/bin/chromium")


@dataclass
class ConsoleServer:
    """A running ``recsmith serve`` for the console tests and what is deployed on it."""

    url: str
    home: Path
    admin_key: str
    read_key: str
    write_key: str
    versions: dict[str, int]
    process: subprocess.Popen
    store: Store


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    home = tmp_path_factory.mktemp("console") / "home"
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.migrate()
    load_dataset(store, "ml-latest-small", "movies")
    versions = {
        "item-knn": train_solution_version(store, settings, "movies", "item-knn")["id"],
        "popularity": train_solution_version(store, settings, "movies", "popularity")["id"],
    }
    store.create_campaign("movies", "knn", versions["item-knn"])
    store.create_filter("movies", "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    url, process = start_server(home, workers=2)
    first = home / "first-admin-key"
    admin_key = first.read_text().strip()  # what the first start wrote, as a new user would read it
    read_key = store.create_api_key("read", "movies", "reader")["key"]
    write_key = store.create_api_key("write", "movies", "writer")["key"]
    served = ConsoleServer(url, home, admin_key, read_key, write_key, versions, process, store)
    try:
        yield served
    finally:
        stop_server(process)
        store.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class ConsoleTab:
    """A browser tab on the console that records every problem it meets."""

    page: Any
    base_url: str
    shots: Path
    problems: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.method} {r.url} {r.failure}"))
        self.page.on("response", self._answer)

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        # the browser's own line for an HTTP error, or htmx's for an answer it swaps in all the same
        status = re.search(r"(?:status of|Status Error Code) (\d{3})", message.text)
        if status and int(status.group(1)) in self.expected_statuses:
            return
        self.problems.append(f"console: {message.text}")

    def _answer(self, response: Any) -> None:
        if response.status >= 400 and response.status not in self.expected_statuses:
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def goto(self, path: str) -> Any:
        """Open a console path (``/console/...``) and wait for the page and its requests to settle."""
        response = self.page.goto(self.base_url + path)
        self.page.wait_for_load_state("networkidle")
        return response

    def sign_in(self, key: str, landing: str | None = None) -> None:
        """Sign in with ``key`` through the sign-in form (coming back to ``landing``, a console path, if given)."""
        self.goto("/console/sign-in" + (f"?next={landing}" if landing else ""))
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state("networkidle")

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        """Save a PNG of the tab as ``<name>.png`` and return its path."""
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def assert_clean(self) -> None:
        """No console error, page error, failed request or unexpected 4xx/5xx so far."""
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture
def open_console(browser: Any, console_server: ConsoleServer, tmp_path: Path) -> Iterator[Callable[..., ConsoleTab]]:
    """``open_console(key=None, width=1280, height=900, landing=None)``: a new browser context and tab, signed in
    with ``key`` (default: the first admin key; ``""``: not signed in), on ``landing`` when given."""
    contexts: list[Any] = []
    shots = Path(os.environ.get("RECSMITH_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    def open_tab(key: str | None = None, *, width: int = 1280, height: int = 900,
                 landing: str | None = None) -> ConsoleTab:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        tab = ConsoleTab(context.new_page(), console_server.url, shots)
        key = console_server.admin_key if key is None else key
        if key:
            tab.sign_in(key, landing)
            if landing:
                assert tab.page.url.endswith(landing), tab.page.url
        return tab

    yield open_tab
    for context in contexts:
        context.close()


@dataclass
class SignedIn:
    """An HTTP client signed in to the console through the sign-in form, as a browser is, and its session's CSRF
    token (the same on every page and form of the session)."""

    client: httpx.Client  # cookies kept, follow_redirects=False, timeout=60
    csrf_token: str


@pytest.fixture
def console_http(console_server: ConsoleServer) -> Iterator[Callable[[str], SignedIn]]:
    """``console_http(key)``: a new httpx client signed in with ``key`` through the form; the clients are closed
    after the test."""
    clients: list[httpx.Client] = []

    def sign_in(key: str) -> SignedIn:
        client = httpx.Client(base_url=console_server.url, follow_redirects=False, timeout=60)
        clients.append(client)
        form = client.get("/console/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        answer = client.post("/console/sign-in", data={"api_key": key, "csrf_token": token})
        assert answer.status_code == 303, answer.text
        landing = client.get(answer.headers["location"], follow_redirects=True)  # a page the key may read
        assert landing.status_code == 200, landing.text
        return SignedIn(client, re.search(r'"X-CSRF-Token": "([^"]+)"', landing.text).group(1))

    yield sign_in
    for client in clients:
        client.close()
