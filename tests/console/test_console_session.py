"""Signing in, the session cookie, CSRF and roles, in a real browser against a real server (and over plain HTTP
where a browser would hide what the server does)."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.browser


def test_sign_in_with_the_first_admin_key_then_sign_out(open_console, console_server) -> None:
    tab = open_console("")
    response = tab.goto("/console/groups")
    assert "/console/sign-in" in tab.page.url  # not signed in: sent to the form
    assert response.status == 200
    tab.sign_in(console_server.admin_key)
    assert tab.page.url.endswith("/console/groups")
    assert tab.page.get_by_role("link", name="movies").is_visible()
    cookie = next(c for c in tab.page.context.cookies() if c["name"] == "recsmith_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
    assert console_server.admin_key not in str(tab.page.context.cookies())  # the key never goes back
    tab.screenshot("sign-in-done")
    tab.page.get_by_role("button", name="Sign out").click()
    tab.page.wait_for_load_state("networkidle")
    assert "/console/sign-in" in tab.page.url
    tab.goto("/console/groups")
    assert "/console/sign-in" in tab.page.url
    tab.assert_clean()


def test_a_wrong_key_is_refused_on_the_form(open_console) -> None:
    tab = open_console("")
    tab.expected_statuses.add(401)
    tab.sign_in("rsk_000000000000_not-a-secret")
    assert "/console/sign-in" in tab.page.url
    assert tab.page.get_by_role("alert").inner_text().startswith("That is not a valid API key")
    tab.screenshot("sign-in-refused")
    tab.assert_clean()


def test_forms_without_the_csrf_token_get_403(console_server, console_http) -> None:
    client = console_http(console_server.admin_key).client
    page = client.get("/console/keys")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    refused = client.post("/console/keys", data={"role": "read"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    wrong = client.post("/console/keys", data={"role": "read", "csrf_token": "x" * 43})
    assert wrong.status_code == 403
    made = client.post("/console/keys", data={"role": "read", "dataset_group": "movies", "csrf_token": token,
                                              "name": "csrf-test"})
    assert made.status_code == 201 and "rsk_" in made.text
    # the sign-in form has its own token (no session yet)
    with httpx.Client(base_url=console_server.url) as anonymous:
        anonymous.get("/console/sign-in")
        assert anonymous.post("/console/sign-in", data={"api_key": console_server.admin_key}).status_code == 403


def test_a_read_key_cannot_see_the_keys_and_the_server_refuses_too(open_console, console_server,
                                                                     console_http) -> None:
    tab = open_console(console_server.read_key)
    assert tab.page.url.endswith("/console/g/movies")  # a key of one group lands on its group
    assert tab.page.get_by_role("link", name="Keys").count() == 0
    tab.expected_statuses.add(403)
    response = tab.goto("/console/keys")
    assert response.status == 403
    assert "needs role admin" in tab.page.get_by_role("alert").inner_text()
    signed = console_http(console_server.read_key)
    refused = signed.client.post("/console/keys", data={"role": "admin", "csrf_token": signed.csrf_token})
    assert refused.status_code == 403


def test_revoking_a_key_ends_its_sessions(console_server, console_http) -> None:
    made = console_server.store.create_api_key("read", "movies", "short-lived")
    client = console_http(made["key"]).client
    assert client.get("/console/g/movies").status_code == 200
    console_server.store.delete_api_key(made["key_id"])
    assert client.get("/console/g/movies").status_code == 303  # back to the sign-in form


def test_keys_page_creates_shows_once_and_revokes(open_console, console_server) -> None:
    tab = open_console()
    tab.goto("/console/keys")
    tab.page.get_by_label("Role").select_option("read")
    tab.page.get_by_label("Dataset group").select_option("movies")
    tab.page.get_by_label("Name").fill("made-in-browser")
    tab.page.get_by_role("button", name="Create key").click()
    tab.page.wait_for_load_state("networkidle")
    key = tab.page.get_by_label("New key").input_value()
    assert key.startswith("rsk_")
    key_id = key.split("_")[1]
    tab.screenshot("keys")
    tab.goto("/console/keys")
    assert key not in tab.page.content()  # shown once
    tab.page.get_by_role("button", name=f"Revoke key {key_id}").click()
    tab.page.wait_for_load_state("networkidle")
    assert key_id not in [k["key_id"] for k in console_server.store.list_api_keys()]
    tab.assert_clean()
