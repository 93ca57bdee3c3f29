"""The HTTP layer's hardening (issue 13): bounded metrics, the key checked before the body, no 5xx for bad input,
one error shape, less said without a key, and capped filter values.

The app runs in a real uvicorn server on 127.0.0.1 (in a thread of the test process, so a test can make the
store fail the way a full disk does); a raw socket shows what happens before a body is sent.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from recsmith.api.app import create_app
from recsmith.api.auth import KEY_CACHE_ENTRIES, KeyChecker
from recsmith.data.filters import FILTER_MAX_PARAMETERS, FILTER_MAX_VALUE_LENGTH, FILTER_MAX_VALUES
from recsmith.datasets import bundled_path, load_dataset
from recsmith.jobs.training import train_solution_version
from recsmith.settings import Settings
from recsmith.store.store import Store
from recsmith.testing import free_port

GROUP = "movies"
RECS = f"/v1/dataset-groups/{GROUP}/campaigns/knn/recommendations"
RANK = f"/v1/dataset-groups/{GROUP}/campaigns/knn/personalized-ranking"
EVENTS = f"/v1/dataset-groups/{GROUP}/events"
USERS = f"/v1/dataset-groups/{GROUP}/users"
ITEMS = f"/v1/dataset-groups/{GROUP}/items"
CAMPAIGNS = f"/v1/dataset-groups/{GROUP}/campaigns"


@dataclass
class Served:
    """A running app and its keys."""

    url: str
    app: FastAPI
    store: Store
    admin: str
    read: str
    write: str
    other: str
    other_key_id: str
    version: int

    def call(self, method: str, path: str, key: str | None = None, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {}) | ({"Authorization": f"Bearer {key}"} if key else {})
        if "content" in kwargs:
            headers.setdefault("Content-Type", "application/json")
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


def serve_in_thread(app: FastAPI) -> tuple[str, uvicorn.Server, threading.Thread]:
    """uvicorn on a free port of 127.0.0.1 in a daemon thread; returns once /ready answers 200."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return url, server, thread
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the app did not become ready")


def deploy(store: Store, settings: Settings) -> int:
    """Part of ml-latest-small (its first 10,000 ratings, every movie) in group 'movies', an item-knn version and
    campaign 'knn', and a filter 'genre'."""
    folder = settings.home.parent / "ml-part"
    folder.mkdir(parents=True, exist_ok=True)
    bundled = bundled_path("ml-latest-small")
    with (bundled / "ratings.csv").open() as source:
        (folder / "ratings.csv").write_text("".join(line for _, line in zip(range(10_001), source, strict=False)))
    shutil.copy(bundled / "movies.csv", folder / "movies.csv")
    load_dataset(store, "ml-latest-small", GROUP, path=folder)
    version = train_solution_version(store, settings, GROUP, "item-knn", with_metrics=False)["id"]
    store.create_campaign(GROUP, "knn", version)
    store.create_filter(GROUP, "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    store.create_dataset_group("other")
    return version


def start(store: Store, settings: Settings, version: int) -> tuple[Served, uvicorn.Server, threading.Thread]:
    other = store.create_api_key("read", "other", "other-group")
    app = create_app(settings, store=store)
    url, server, thread = serve_in_thread(app)
    served = Served(url, app, store, store.create_api_key("admin", None, "admin")["key"],
                    store.create_api_key("read", GROUP, "read")["key"],
                    store.create_api_key("write", GROUP, "write")["key"], other["key"], other["key_id"], version)
    return served, server, thread


@contextmanager
def served_with(settings: Settings) -> Iterator[Served]:
    """A store made from ``settings`` with the trained campaign of :func:`deploy`, served until the block ends."""
    store = Store.from_settings(settings)
    store.migrate()
    version = deploy(store, settings)
    running, server, thread = start(store, settings, version)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        store.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_with(Settings(home=tmp_path_factory.mktemp("hardening") / "home")) as running:
        yield running


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> dict:
    """The one error shape: ``{"error": {"status", "message", "field"?}}`` with that status (and field)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["status"] == status and body["error"]["message"], body
    if field is not None:
        assert body["error"].get("field") == field, body
    return body["error"]


def event(**extra) -> dict:
    return {"event_type": "click", "item_id": "1", "sent_at": 1_700_000_000} | extra


# ---------------------------------------------------------------- 1. /metrics cardinality
def test_unauthorised_requests_to_random_groups_add_no_metric_series(served):
    def size() -> int:
        return len(httpx.get(served.url + "/metrics").content)

    served.call("POST", RECS, served.read, json={"user_id": "1"})  # the series of real traffic exist
    for _ in range(2):  # each kind of refusal once, so its (route, status) series exists
        for key in (None, "rsk_0000_nope", served.other):
            served.call("POST", f"/v1/dataset-groups/g{uuid.uuid4().hex}/campaigns/c/recommendations", key,
                        json={"user_id": "1"})
        served.call("POST", f"/v1/dataset-groups/{GROUP}/campaigns/c{uuid.uuid4().hex}/recommendations",
                    served.admin, json={"user_id": "1"})
        served.call("GET", f"/v1/dataset-groups/g{uuid.uuid4().hex}/filters", served.admin)
        served.call("GET", f"/x{uuid.uuid4().hex}", None)
        served.call(f"M{uuid.uuid4().hex[:8].upper()}", "/health")
    before = size()
    with httpx.Client(base_url=served.url, timeout=30) as client:
        for i in range(2_000):
            group, campaign = f"g{uuid.uuid4().hex}", f"c{uuid.uuid4().hex}"
            headers = [{}, {"Authorization": "Bearer rsk_0000_nope"}, {"Authorization": f"Bearer {served.other}"},
                       {"Authorization": f"Bearer {served.admin}"}][i % 4]
            if i % 8 == 7:  # an admin key on a real group, a made-up campaign
                group = GROUP
            client.post(f"/v1/dataset-groups/{group}/campaigns/{campaign}/recommendations", headers=headers,
                        json={"user_id": "1"})
            if i % 50 == 0:
                client.get(f"/v1/dataset-groups/{group}/filters", headers=headers)
                client.get(f"/no/such/{uuid.uuid4().hex}")
    after = size()
    text = httpx.get(served.url + "/metrics").text
    assert after < 200_000 and after - before < 2_000, (before, after)
    assert "dataset_group=\"g" not in text and "campaign=\"c" not in text
    assert 'campaign="knn",dataset_group="movies"' in text  # authorised requests to real campaigns keep theirs


# ---------------------------------------------------------------- 2. the key before the body
def _raw_request(url: str, headers: str, wait: float) -> bytes:
    """Send a request's head only (the body it announces never comes) and return what the server answers within
    ``wait`` seconds."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(headers.encode())
        sock.settimeout(wait)
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b""


def test_a_request_without_a_key_is_refused_before_its_body_is_read(served):
    head = (f"POST {EVENTS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {1024 * 1024}\r\n")
    started = time.monotonic()
    answer = _raw_request(served.url, head + "\r\n", wait=10)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b'"error"' in answer and time.monotonic() - started < 5
    wrong = _raw_request(served.url, head + "Authorization: Bearer rsk_0000_nope\r\n\r\n", wait=10)
    assert wrong.startswith(b"HTTP/1.1 401"), wrong[:200]
    # with a valid key the app does read the body: it waits for it, so nothing comes back yet
    assert _raw_request(served.url, head + f"Authorization: Bearer {served.write}\r\n\r\n", wait=1.5) == b""


def test_a_big_body_without_a_key_gets_401_not_413(served):
    response = served.call("POST", RECS, content=b'{"user_id": "' + b"x" * 1_500_000 + b'"}')
    assert_error(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


# ---------------------------------------------------------------- 3. every reachable 500 becomes a 4xx
@pytest.mark.parametrize(("query", "field"), [("", "user_id"), ("?user_id=1&item_id=1", "item_id"),
                                              ("?session_id=s&item_id=1", "item_id")])
def test_get_recommendations_needs_exactly_one_subject(served, query, field):
    assert_error(served.call("GET", RECS + query, served.read), 422, field)


def test_post_recommendations_needs_exactly_one_subject(served):
    assert_error(served.call("POST", RECS, served.read, json={}), 422, "user_id")
    assert_error(served.call("POST", RECS, served.read, json={"user_id": "1", "item_id": "1"}), 422, "item_id")


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_solution_version_id_out_of_range_is_a_422(served, method):
    path = CAMPAIGNS if method == "POST" else CAMPAIGNS + "/knn"
    name = '"name": "big", ' if method == "POST" else ""
    for number in ("2147483648", "9223372036854775808", "-9223372036854775809", "1" + "0" * 400):
        response = served.call(method, path, served.admin, content=f'{{{name}"solution_version_id": {number}}}')
        assert_error(response, 422, "solution_version_id")
    response = served.call("POST", CAMPAIGNS, served.admin,
                           content='{"name": "big", "solution_version_id": 1, "config": {"x": 99999999999999999999}}')
    assert_error(response, 422, "config.x")


@pytest.mark.parametrize(("path", "body", "field"), [
    (USERS, '{"users": [{"user_id": "u1", "properties": {"\\ud800": 1}}]}', None),
    (USERS, '{"users": [{"user_id": "u1", "properties": {"AGE": "\\udc00x"}}]}', "users.0.properties.AGE"),
    (ITEMS, '{"items": [{"item_id": "i1", "properties": {"GENRES": "\\ud800"}}]}', "items.0.properties.GENRES"),
    (ITEMS, '{"items": [{"item_id": "\\ud83d"}]}', "items.0.item_id"),
    (EVENTS, '{"session_id": "s", "events": [{"event_type": "\\ud800", "item_id": "1", "sent_at": 1}]}',
     "events.0.event_type"),
    (RECS, '{"user_id": "1", "filter": "genre", "filter_values": {"GENRE": "\\ud800"}}', "filter_values.GENRE"),
    (CAMPAIGNS, '{"name": "\\ud800", "solution_version_id": 1}', "name"),
])
def test_lone_surrogates_are_a_422_naming_the_field(served, path, body, field):
    method = "PUT" if path in (USERS, ITEMS) else "POST"
    error = assert_error(served.call(method, path, served.admin, content=body), 422, field)
    assert "surrogate" in error["message"]
    if field is None:  # a bad key: the field names the record's properties
        assert error["field"].startswith("users.0.properties")


NUL_CASES = [
    ("POST", EVENTS, {"user_id": "u\x00", "session_id": "s", "events": [event()]}, "user_id"),
    ("POST", EVENTS, {"session_id": "s\x00", "events": [event()]}, "session_id"),
    ("POST", EVENTS, {"session_id": "s", "events": [event(item_id="\x00")]}, "events.0.item_id"),
    ("POST", EVENTS, {"session_id": "s", "events": [event(properties={"k": "a\x00"})]}, "events.0.properties.k"),
    ("PUT", ITEMS, {"items": [{"item_id": "i\x00"}]}, "items.0.item_id"),
    ("PUT", ITEMS, {"items": [{"item_id": "i", "properties": {"GENRES": "\x00"}}]}, "items.0.properties.GENRES"),
    ("PUT", USERS, {"users": [{"user_id": "\x00"}]}, "users.0.user_id"),
    ("DELETE", USERS + "/u%00x", None, "user_id"),
    ("DELETE", ITEMS + "/%00", None, "item_id"),
    ("POST", RECS, {"user_id": "\x00"}, "user_id"),
    ("POST", RECS, {"user_id": "1", "exclude": ["a", "\x00"]}, "exclude.1"),
    ("GET", RECS + "?user_id=%00", None, "user_id"),
    ("GET", RECS + "?item_id=1&filter=genre&filter_value=GENRE=%00", None, "filter_value.0"),
    ("POST", RANK, {"user_id": "1", "input_list": ["1", "x\x00"]}, "input_list.1"),
    ("GET", "/v1/dataset-groups/mo%00vies/filters", None, "group"),
    ("GET", f"/v1/dataset-groups/{GROUP}/campaigns/%00", None, "campaign"),
    ("POST", f"/v1/dataset-groups/{GROUP}/filters", {"name": "f", "expression": "EXCLUDE\x00"}, "expression"),
]


def _nul_requests_are_refused(served: Served) -> None:
    for method, path, body, field in NUL_CASES:
        response = served.call(method, path, served.admin, **({"json": body} if body is not None else {}))
        error = assert_error(response, 422, field)
        assert "NUL" in error["message"], (path, error)


def test_nul_characters_are_a_422_naming_the_field_on_every_route(served):
    _nul_requests_are_refused(served)


@pytest.mark.postgres
def test_nul_characters_and_ids_beyond_integer_are_a_422_on_postgresql(postgres_served):
    _nul_requests_are_refused(postgres_served)
    with postgres_served.store.engine.connect() as conn:  # and nothing reached the store
        assert conn.execute(sa.text("SELECT count(*) FROM interactions WHERE user_id LIKE 'u%'")).scalar() == 0
    for body in ({"name": "big", "solution_version_id": 2**31}, {"name": "big", "solution_version_id": 2**63}):
        assert_error(postgres_served.call("POST", CAMPAIGNS, postgres_served.admin, json=body), 422,
                     "solution_version_id")
    answer = postgres_served.call("POST", CAMPAIGNS, postgres_served.admin,
                                  json={"name": "big", "solution_version_id": 2**31 - 1})
    assert_error(answer, 404)  # in range: it reaches the store, which has no such version


@pytest.mark.parametrize(("raw", "shown"), [("1e309", "inf"), ("-1e309", "inf"), ("NaN", "NaN"),
                                            ("Infinity", "inf"), ("-Infinity", "inf")])
def test_non_finite_numbers_are_a_422_naming_the_field(served, raw, shown):
    body = f'{{"session_id": "s", "events": [{{"event_type": "rating", "item_id": "1", "sent_at": 1, ' \
           f'"event_value": {raw}}}]}}'
    error = assert_error(served.call("POST", EVENTS, served.write, content=body), 422, "events.0.event_value")
    assert "finite" in error["message"]
    inside = f'{{"session_id": "s", "events": [{{"event_type": "c", "item_id": "1", "sent_at": 1, ' \
             f'"properties": {{"score": {raw}}}}}]}}'
    assert_error(served.call("POST", EVENTS, served.write, content=inside), 422, "events.0.properties.score")
    item = f'{{"items": [{{"item_id": "i", "properties": {{"PRICE": {raw}}}}}]}}'
    assert_error(served.call("PUT", ITEMS, served.write, content=item), 422, "items.0.properties.PRICE")
    config = f'{{"name": "c", "solution_version_id": 1, "config": {{"a": [{raw}]}}}}'
    assert_error(served.call("POST", CAMPAIGNS, served.admin, content=config), 422, "config.a")
    minutes = f'{{"user_id": "1", "suppress_served_minutes": {raw}}}'
    assert_error(served.call("POST", RECS, served.read, content=minutes), 422, "suppress_served_minutes")


def test_a_body_that_is_not_readable_json_is_a_400_saying_why(served):
    huge = '{"user_id": "1", "num_results": 1' + "0" * 5000 + "}"  # Python refuses ints of over 4,300 digits
    error = assert_error(served.call("POST", RECS, served.read, content=huge), 400, "body")
    assert "4300 digits" in error["message"]
    error = assert_error(served.call("POST", RECS, served.read, content=b'{"user_id": "\xff"}'), 400, "body")
    assert "utf-8" in error["message"]


@pytest.mark.parametrize("expression", [
    "EXCLUDE ItemID WHERE " + "(" * 400 + 'Items.GENRES IN ("Drama")' + ")" * 400,
    "EXCLUDE ItemID WHERE Items.YEAR > " + "9" * 5000,
])
def test_a_filter_the_parser_cannot_take_is_a_400(served, expression):
    response = served.call("POST", f"/v1/dataset-groups/{GROUP}/filters", served.admin,
                           json={"name": "hard", "expression": expression})
    assert_error(response, 400, "expression")


def test_a_date_beyond_posix_time_is_a_422(served):
    body = {"session_id": "s", "events": [event(sent_at=1e20)]}
    assert_error(served.call("POST", EVENTS, served.write, json=body), 422, "events.0.sent_at")


def _fill_the_disk(store: Store):
    """Make SQLite answer 'database or disk is full' (SQLITE_FULL) for any write that needs a new page."""
    def limit(connection, _record) -> None:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages}")

    sa.event.listen(store.engine, "connect", limit)
    store.engine.dispose()
    return limit


def test_a_full_disk_is_a_503_saying_so(served, caplog):
    limit = _fill_the_disk(served.store)
    try:
        events = [event(item_id=str(i), event_id=uuid.uuid4().hex, properties={"pad": "x" * 200})
                  for i in range(100)]
        with caplog.at_level(logging.ERROR, logger="recsmith.api.middleware"):
            response = served.call("POST", EVENTS, served.write, json={"session_id": "full", "events": events})
    finally:
        sa.event.remove(served.store.engine, "connect", limit)
        served.store.engine.dispose()
    error = assert_error(response, 503)
    assert "disk is full" in error["message"]
    assert "disk is full" in caplog.text


@pytest.mark.parametrize("failure", [
    OSError(errno.ENOSPC, "No space left on device"),
    sa.exc.OperationalError("INSERT", {}, type("DiskFull", (Exception,), {"sqlstate": "53100"})("could not extend")),
])
def test_other_disk_full_errors_are_503_too(served, monkeypatch, failure):
    def full(*args, **kwargs):
        raise failure

    monkeypatch.setattr(served.store, "record_events", full)
    error = assert_error(served.call("POST", EVENTS, served.write, json={"session_id": "s", "events": [event()]}),
                         503)
    assert "disk is full" in error["message"]


def test_an_unexpected_error_is_a_json_500_logged_with_its_traceback(served, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(served.app.state.runtime, "rank", broken)
    with caplog.at_level(logging.ERROR, logger="recsmith.api.middleware"):
        response = served.call("POST", RANK, served.read, json={"user_id": "1", "input_list": ["1"]})
    error = assert_error(response, 500)
    assert "a bug" not in error["message"]  # the details stay in the log
    assert "RuntimeError: a bug" in caplog.text and "Traceback" in caplog.text


# ---------------------------------------------------------------- 4. one error shape
def test_every_error_has_the_same_shape(served):
    assert_error(served.call("GET", "/no/such/route"), 404)
    assert_error(served.call("GET", "/v1/no/such/route", served.admin), 404)
    refused = served.call("DELETE", "/ready")
    assert_error(refused, 405)
    assert refused.headers["allow"] == "GET"
    assert_error(served.call("PATCH", CAMPAIGNS + "/knn", served.admin, json={}), 405)
    assert_error(served.call("GET", RECS + "?user_id=1"), 401)
    assert_error(served.call("POST", CAMPAIGNS, served.read, json={"name": "x", "solution_version_id": 1}), 403)
    assert_error(served.call("GET", CAMPAIGNS + "/nope", served.read), 404)
    assert_error(served.call("POST", RECS, served.read, content=b"{not json"), 400, "body")
    assert_error(served.call("POST", RECS, served.read, json={"user_id": "1", "filter": "nope"}), 404)
    assert_error(served.call("POST", f"/v1/dataset-groups/{GROUP}/filters", served.admin,
                             json={"name": "bad", "expression": "INCLUDE"}), 400, "expression")
    assert_error(served.call("POST", RECS, served.read, content=b"{" + b" " * 2_000_000 + b"}"), 413, "body")


# ---------------------------------------------------------------- 5. the OpenAPI document
def test_openapi_declares_the_bearer_scheme_and_the_errors(served):
    spec = httpx.get(served.url + "/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/"):
                assert operation["security"] == [{"bearer": []}], (method, path)
                assert {"401", "403", "422"} <= set(operation["responses"]), (method, path)
                assert operation["responses"]["422"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorOut"}
            else:
                assert "security" not in operation, (method, path)
    assert "/v1/status" in spec["paths"]


# ---------------------------------------------------------------- 7. less without a key
def test_ready_says_only_ready_and_status_is_for_admins(served):
    response = httpx.get(served.url + "/ready")
    assert response.status_code == 200 and response.json() == {"ready": True}
    assert_error(served.call("GET", "/v1/status"), 401)
    assert_error(served.call("GET", "/v1/status", served.read), 403)
    status = served.call("GET", "/v1/status", served.admin).json()
    assert status["ready"] is True
    assert {(c["dataset_group"], c["campaign"], c["solution_version_id"]) for c in status["campaigns"]} == {
        (GROUP, "knn", served.version)}


def test_docs_are_off_unless_enabled(tmp_path):
    assert TestClient(create_app(Settings(home=tmp_path))).get("/docs").status_code == 404
    page = TestClient(create_app(Settings(home=tmp_path, docs=True))).get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert TestClient(create_app(Settings(home=tmp_path))).get("/openapi.json").status_code == 200


def test_a_403_names_the_role_needed_not_the_key_id(served):
    error = assert_error(served.call("GET", f"/v1/dataset-groups/{GROUP}/filters", served.other), 403)
    assert served.other_key_id not in error["message"]
    assert "needs role read on dataset group 'movies'" in error["message"] and "'other'" in error["message"]


# ---------------------------------------------------------------- 8. filter_values caps
def test_filter_values_are_capped_before_any_work(served):
    missing = f"/v1/dataset-groups/{GROUP}/campaigns/no-such-campaign/recommendations"  # 404 if it got that far
    too_many_keys = {f"P{i}": "x" for i in range(FILTER_MAX_PARAMETERS + 1)}
    assert_error(served.call("POST", missing, served.read, json={"user_id": "1", "filter": "genre",
                                                                 "filter_values": too_many_keys}),
                 422, "filter_values")
    too_many_values = {"GENRE": [f"g{i}" for i in range(FILTER_MAX_VALUES + 1)]}
    error = assert_error(served.call("POST", missing, served.read, json={
        "user_id": "1", "filter": "genre", "filter_values": too_many_values}), 422, "filter_values.GENRE")
    assert str(FILTER_MAX_VALUES) in error["message"]
    too_long = {"GENRE": ["Comedy", "x" * (FILTER_MAX_VALUE_LENGTH + 1)]}
    assert_error(served.call("POST", RANK, served.read, json={
        "user_id": "1", "input_list": ["1"], "filter": "genre", "filter_values": too_long}), 422, "filter_values.GENRE")
    promoted = {"user_id": "1", "promotion": {"name": "p", "filter": "genre", "filter_values": too_many_values}}
    assert_error(served.call("POST", RECS, served.read, json=promoted), 422, "promotion.filter_values.GENRE")
    query = "&".join(f"filter_value=GENRE=g{i}" for i in range(FILTER_MAX_VALUES + 1))
    assert_error(served.call("GET", f"{missing}?user_id=1&filter=genre&{query}", served.read), 422,
                 "filter_values.GENRE")
    at_the_cap = {"GENRE": ["Comedy"] + [f"g{i}" for i in range(FILTER_MAX_VALUES - 1)]}
    answer = served.call("POST", RECS, served.read, json={"user_id": "1", "filter": "genre",
                                                          "filter_values": at_the_cap, "num_results": 3})
    assert answer.status_code == 200 and len(answer.json()["items"]) == 3


# ---------------------------------------------------------------- PostgreSQL (its own database)
@contextmanager
def served_on_postgres(tmp_path_factory: pytest.TempPathFactory, suffix: str) -> Iterator[Served]:
    """The app on a PostgreSQL database of its own, ``<test database>_<suffix>`` (other test modules wipe the
    shared one); skips when RECSMITH_TEST_POSTGRES_URL is not set."""
    base = os.environ.get("RECSMITH_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("RECSMITH_TEST_POSTGRES_URL is not set")
    url = sa.engine.make_url(base)
    name = f"{url.database}_{suffix}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    home = tmp_path_factory.mktemp(f"pg-{suffix}") / "home"
    settings = Settings(home=home, database_url=url.set(database=name).render_as_string(hide_password=False))
    with served_with(settings) as running:
        yield running


@pytest.fixture(scope="module")
def postgres_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_on_postgres(tmp_path_factory, "api_hardening") as running:
        yield running


def test_other_unicode_is_still_accepted(served):  # the checks refuse only what the store cannot keep
    ok = served.call("PUT", ITEMS, served.write, json={"items": [{"item_id": "é €  ü 😀", "properties": {}}]})
    assert ok.status_code == 200, ok.text
    path = ITEMS + "/%C3%A9%20%E2%82%AC%20%20%C3%BC%20%F0%9F%98%80"
    assert served.call("DELETE", path, served.write).status_code == 200


def test_made_up_keys_do_not_evict_the_valid_ones(served, monkeypatch):
    checker = KeyChecker(served.store)
    lookups = []
    verify = served.store.verify_api_key
    monkeypatch.setattr(served.store, "verify_api_key", lambda key: lookups.append(key) or verify(key))
    assert checker.principal(served.read).role == "read"
    for i in range(KEY_CACHE_ENTRIES + 5):
        assert checker.principal(f"rsk_{i:012x}_made-up") is None
    lookups.clear()
    assert checker.principal(served.read).role == "read" and lookups == []  # still cached
    assert checker.principal("rsk_0000_" + "x" * 10_000) is None and lookups == []  # too long: no look-up
    assert_error(served.call("GET", RECS + "?user_id=1", "rsk_0000_" + "x" * 10_000), 401)
