"""The Try it page: a campaign's ranked list for a user, a session or an item, its ranking of a list, with a filter
and its values, in a real browser against the shared server (ml-latest-small, campaign ``knn``)."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.browser

TRY = "/console/g/movies/try"
TITLE = re.compile(r"\(\d{4}\)")


def _show(tab: Any) -> list[dict[str, str]]:
    """Submit the form and return the ranked rows, by column heading."""
    from playwright.sync_api import expect

    before = tab.page.locator("#try-results [role=status]").all_inner_texts()
    tab.page.get_by_role("button", name="Show results").click()
    status = tab.page.locator("#try-results [role=status]")
    expect(status).to_have_count(1)
    if before:
        expect(status).not_to_have_text(before[0])
    table = tab.page.locator("#try-results #results")
    headings = table.locator("thead th").all_inner_texts()
    return [dict(zip(headings, row.locator("td, th").all_inner_texts(), strict=True))
            for row in table.locator("tbody tr").all()]


def test_a_users_recommendations_show_titles_scores_and_reasons(open_console, console_server) -> None:
    tab = open_console(console_server.admin_key, landing=TRY)
    tab.page.get_by_label("Campaign").select_option("knn")
    tab.page.get_by_label("User id").fill("1")
    rows = _show(tab)
    assert [r["Rank"] for r in rows] == [str(i) for i in range(1, 11)]
    assert all(TITLE.search(r["TITLE"]) for r in rows), rows
    assert all(float(r["Score"]) > 0 and r["Reason"] for r in rows), rows
    assert any(r["Reason"].startswith("because you interacted with") for r in rows), rows
    assert "kind=user" in tab.page.url and "user_id=1" in tab.page.url  # the try has an address
    tab.screenshot("try-user")
    tab.page.set_viewport_size({"width": 375, "height": 800})
    tab.screenshot("try-user-375")
    tab.assert_clean()


def test_the_genre_filter_with_comedy_gives_only_comedies(open_console, console_server) -> None:
    from playwright.sync_api import expect

    tab = open_console(console_server.read_key, landing=TRY)  # trying is reading
    tab.page.get_by_label("User id").fill("1")
    tab.page.get_by_label("Filter", exact=True).select_option("genre")
    value = tab.page.get_by_label("$GENRE")  # the filter's parameter, swapped in
    expect(value).to_be_visible()
    value.fill("Comedy")
    tab.page.get_by_label("Number of results").fill("15")
    rows = _show(tab)
    assert len(rows) == 15 and all("Comedy" in r["GENRES"].split("|") for r in rows), rows
    assert "filter genre (GENRE=Comedy)" in tab.page.locator("#try-results").inner_text()
    tab.screenshot("try-filter")
    tab.page.get_by_label("Filter", exact=True).select_option("")
    expect(tab.page.get_by_label("$GENRE")).to_have_count(0)
    tab.assert_clean()


def test_related_items_of_item_1(open_console, console_server) -> None:
    tab = open_console(console_server.admin_key, width=375, height=800, landing=TRY)
    tab.page.get_by_label("An item (related items)").check()
    assert not tab.page.get_by_label("User id").is_visible()  # only the chosen kind's inputs
    tab.page.get_by_label("Item id").fill("1")
    rows = _show(tab)
    assert rows and all(r["Reason"] == "similar to 1" for r in rows), rows
    assert "1" not in [r["Item id"] for r in rows]
    assert all(TITLE.search(r["TITLE"]) for r in rows)
    tab.screenshot("try-related-375")
    tab.assert_clean()


def test_personalized_ranking_and_an_anonymous_session(open_console, console_server) -> None:
    tab = open_console(console_server.admin_key, landing=TRY)
    tab.page.get_by_label("Rank items for a user").check()
    tab.page.get_by_label("User id").fill("1")
    tab.page.get_by_label("Items to rank").fill("2, 1\n3 not-an-item")
    rows = _show(tab)
    assert sorted(r["Item id"] for r in rows[:3]) == ["1", "2", "3"]
    assert rows[-1]["Item id"] == "not-an-item" and rows[-1]["Reason"] == "unknown item"
    tab.page.get_by_label("An anonymous session").check()
    tab.page.get_by_label("Session id").fill("console-try-no-events")
    rows = _show(tab)
    assert rows and all(r["Reason"] == "popular" for r in rows)  # a session with no events yet
    tab.screenshot("try-session")
    tab.assert_clean()


def test_a_missing_value_or_id_is_named_in_the_results(open_console, console_server) -> None:
    from playwright.sync_api import expect

    tab = open_console(console_server.admin_key, landing=TRY)
    tab.expected_statuses.update({400, 422})
    tab.page.get_by_role("button", name="Show results").click()
    expect(tab.page.locator("#try-results").get_by_role("alert")).to_contain_text("user_id: enter a user id")
    tab.page.get_by_label("User id").fill("1")
    tab.page.get_by_label("Filter", exact=True).select_option("genre")
    tab.page.get_by_role("button", name="Show results").click()
    expect(tab.page.locator("#try-results").get_by_role("alert")).to_contain_text("type a value for $GENRE")
    tab.assert_clean()


def test_the_page_is_the_apis_answer(console_server, console_http) -> None:
    """The same request through the console and through /v1 gives the same items and scores."""
    query = {"campaign": "knn", "kind": "user", "user_id": "1", "num_results": 5, "filter": "genre",
             "filter_value.GENRE": "Comedy"}
    client = console_http(console_server.read_key).client
    page = client.get(TRY, params=query, headers={"HX-Request": "true"})
    api = client.get("/v1/dataset-groups/movies/campaigns/knn/recommendations",
                     params={"user_id": "1", "num_results": 5, "filter": "genre", "filter_value": "GENRE=Comedy"},
                     headers={"Authorization": f"Bearer {console_server.read_key}"})
    assert page.status_code == 200 and api.status_code == 200
    ids = re.findall(r'<th scope="row"><code>([^<]+)</code>', page.text)
    assert ids == [item["item_id"] for item in api.json()["items"]]
