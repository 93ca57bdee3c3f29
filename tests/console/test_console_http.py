"""The console over plain HTTP, in-process: error shapes, headers, the upload body limit (no browser needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recsmith.api.app import create_app
from recsmith.settings import Settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(home=tmp_path / "home", max_body_bytes=4096, console_upload_bytes=65536))
    with TestClient(app) as test_client:
        yield test_client


def test_pages_need_a_session_and_say_so_in_html(client: TestClient) -> None:
    page = client.get("/console/groups", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/console/sign-in?next=/console/groups"
    fragment = client.get("/console/groups", headers={"HX-Request": "true"})
    assert fragment.status_code == 401 and fragment.headers["hx-redirect"].startswith("/console/sign-in")
    posted = client.post("/console/keys", data={"role": "read"})
    assert posted.status_code == 401 and posted.headers["content-type"].startswith("text/html")
    assert client.get("/console/no-such-page").headers["content-type"].startswith("text/html")
    assert client.get("/v1/no-such-route").json()["error"]["status"] in (401, 404)  # the API keeps its JSON


def test_pages_carry_a_strict_content_security_policy(client: TestClient) -> None:
    form = client.get("/console/sign-in")
    assert form.status_code == 200
    policy = form.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-eval" not in policy
    assert form.headers["x-frame-options"] == "DENY"
    assert "<script>" not in form.text  # no inline script: the policy would block it
    cookie = form.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie


def test_only_the_upload_route_takes_bodies_over_the_api_limit(client: TestClient) -> None:
    body = b"x" * 20_000  # over max_body_bytes, under console_upload_bytes
    assert client.post("/console/keys", content=body).status_code == 413
    upload = client.post("/console/g/g/data/upload", content=body)
    assert upload.status_code == 401  # read, then refused for want of a session: not by the size
    too_big = client.post("/console/g/g/data/upload", content=b"x" * 70_000)
    assert too_big.status_code == 413 and "RECSMITH_CONSOLE_UPLOAD_BYTES" in too_big.text


def test_the_vendored_scripts_and_their_licences_are_served(client: TestClient) -> None:
    for path in ("vendor/htmx-2.0.11.min.js", "vendor/chart-4.6.1.umd.min.js", "vendor/htmx-LICENSE.txt",
                 "vendor/chart.js-LICENSE.md", "console.js", "console.css", "favicon.svg"):
        answer = client.get(f"/console/static/{path}")
        assert answer.status_code == 200, path
        assert len(answer.content) > 100


def test_an_unexpected_failure_on_a_page_is_an_html_500(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path / "home"))

    @app.get("/console/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        answer = test_client.get("/console/boom")
    assert answer.status_code == 500 and answer.headers["content-type"].startswith("text/html")
    assert "kaboom" not in answer.text and "server logged the details" in answer.text
