"""The Users & items pages: search by id, a user's history and each campaign's recommendations, an item's fields
and related items, in a real browser against the shared server (ml-latest-small in group ``movies``, campaign
``knn`` on item-knn), and over plain HTTP where the browser would hide what the server answers."""

from __future__ import annotations

import re
import time

import httpx
import pytest

pytestmark = pytest.mark.browser

GROUP = "/console/g/movies"
USER_1_NEWEST = ("Cinema Paradiso (Nuovo cinema Paradiso) (1989)", "1172")
USER_1_OLDEST = ("Antz (1998)", "2294")
USER_1_FIRST_STORED = ("Dangerous Minds (1995)", "31")  # the first row of ratings.csv, not the oldest


def _campaign(tab, name: str):
    """The section of a campaign's answer."""
    heading = tab.page.get_by_role("heading", name=re.compile(f"Campaign {name}\\b"))
    return tab.page.locator("section.answer", has=heading)


def _wait_for_answers(tab, count: int = 1) -> None:
    """Until every campaign's section has its answer (the fragments load after the page)."""
    tab.page.wait_for_function("document.querySelectorAll('section.answer[aria-busy]').length === 0")
    assert tab.page.locator("section.answer").count() >= count


def test_search_as_you_type_and_enter_opens_the_page(open_console) -> None:
    tab = open_console()
    tab.goto(f"{GROUP}/users")
    assert tab.page.get_by_role("link", name="Users & items").get_attribute("aria-current") == "page"
    tab.page.get_by_label("User id").press_sequentially("1")
    results = tab.page.locator("#user-results")
    results.get_by_role("link", name="1", exact=True).wait_for()
    assert "exact match" in results.inner_text()
    assert results.get_by_role("link", name="10", exact=True).count() == 1  # prefix matches too
    assert results.locator("tbody tr").count() == 20  # capped
    tab.page.get_by_label("Item id").fill("1")
    items = tab.page.locator("#item-results")
    items.get_by_text("Toy Story (1995)").wait_for()
    tab.page.get_by_label("User id").fill("67")
    results.get_by_role("link", name="671", exact=True).wait_for()
    assert results.locator("tbody tr").count() == 3  # 67, 670, 671
    tab.screenshot("people-search")
    tab.page.get_by_label("User id").press("Enter")
    tab.page.wait_for_url(f"**{GROUP}/users/67")
    tab.assert_clean()


def test_search_without_an_exact_match_lists_the_prefix_matches(open_console) -> None:
    tab = open_console()
    tab.goto(f"{GROUP}/users?item_id=9999")
    assert tab.page.url.endswith("/users?item_id=9999")  # no item 9999: the page lists those starting with it
    assert "No item 9999" in tab.page.locator("#item-results").inner_text()
    assert tab.page.locator("#item-results tbody tr").count() >= 1
    tab.goto(f"{GROUP}/users?user_id=nobody")
    assert "open user nobody" in tab.page.locator("#user-results").inner_text()
    tab.goto(f"{GROUP}/users?item_id=1")
    assert tab.page.url.endswith(f"{GROUP}/items/1")
    tab.assert_clean()


def test_user_page_history_in_time_order_and_the_campaigns_answers(open_console) -> None:
    tab = open_console()
    tab.goto(f"{GROUP}/users/1")
    assert tab.page.title().startswith("User 1")
    history = tab.page.locator("#history-table tbody tr")
    assert history.count() == 20
    first, last = history.first.inner_text(), history.last.inner_text()
    assert USER_1_NEWEST[0] in first and "2009-12-14 02:53:25" in first and "Drama" in first
    assert USER_1_OLDEST[0] in last and "2009-12-14 02:51:48" in last
    assert any(USER_1_FIRST_STORED[0] in row and "2009-12-14 02:52:24" in row for row in history.all_inner_texts())
    times = [row.split("\t")[0] for row in history.all_inner_texts()]
    assert times == sorted(times, reverse=True)
    _wait_for_answers(tab)
    knn = _campaign(tab, "knn")
    rows = knn.locator("tbody tr")
    assert rows.count() == 10
    assert "item-knn" in knn.locator("h3").inner_text()
    text = knn.inner_text()
    assert "because you interacted with" in text
    rated = {row.split("\t")[2] for row in history.all_inner_texts()}
    named = set(knn.locator("td.reason a").all_inner_texts())  # the items the reasons name, by their titles
    assert named and named <= rated
    assert rows.first.locator("td").nth(2).inner_text().strip()  # a title
    seen = {row.split("\t")[1] for row in history.all_inner_texts()}
    shown = {rows.nth(i).locator("td").nth(1).inner_text() for i in range(10)}
    assert not seen & shown  # exclude_seen: nothing the user rated
    tab.screenshot("people-user-1280")
    tab.assert_clean()


def test_history_pages(open_console) -> None:
    tab = open_console()
    tab.goto(f"{GROUP}/users/2")  # 76 ratings: 50 + 26
    assert tab.page.locator("#history-table tbody tr").count() == 50
    assert "of 76" in tab.page.locator("#history-table caption").inner_text()
    page_one_last = tab.page.locator("#history-table tbody tr").last.inner_text().split("\t")[0]
    tab.page.get_by_role("link", name="Older →").click()
    tab.page.wait_for_load_state("networkidle")
    assert tab.page.url.endswith("/users/2?page=2")
    rows = tab.page.locator("#history-table tbody tr")
    assert rows.count() == 26
    assert rows.first.inner_text().split("\t")[0] <= page_one_last
    assert tab.page.get_by_role("link", name="Older →").count() == 0
    assert "Page 2 of 2" in tab.page.locator("nav.pager").inner_text()
    tab.assert_clean()


def test_a_user_the_group_never_saw_gets_popular_items(open_console, console_server) -> None:
    tab = open_console()
    tab.goto(f"{GROUP}/users/never-seen-user")
    assert "no history; campaigns answer with popular items" in " ".join(tab.page.locator("main").inner_text().split())
    assert tab.page.locator("#history-table").count() == 0
    _wait_for_answers(tab)
    knn = _campaign(tab, "knn")
    assert knn.locator("tbody tr").count() == 10
    assert set(knn.locator("td.reason").all_inner_texts()) == {"popular"}
    tab.assert_clean()
    # what the console shows is not served traffic: the ledger has the API's answer, not the console's
    store = console_server.store
    group_id = store.get_dataset_group("movies").id
    api = httpx.get(f"{console_server.url}/v1/dataset-groups/movies/campaigns/knn/recommendations",
                    params={"user_id": "never-seen-by-the-console"},
                    headers={"Authorization": f"Bearer {console_server.read_key}"})
    assert api.status_code == 200
    deadline = time.monotonic() + 10
    while not store.served_to(group_id, "never-seen-by-the-console", 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store.served_to(group_id, "never-seen-by-the-console", 0)
    assert store.served_to(group_id, "never-seen-user", 0) == []


def test_item_page_fields_and_related_items(open_console, console_server) -> None:
    store = console_server.store
    ratings = store.count_item_interactions(store.get_dataset_group("movies").id, "1")
    assert ratings >= 247  # Toy Story's ratings, and events other console tests may have sent on it
    tab = open_console()
    tab.goto(f"{GROUP}/items/1")
    assert tab.page.get_by_role("heading", level=1).inner_text().startswith("Toy Story (1995)")
    fields = tab.page.locator("dl.props").inner_text()
    assert "Adventure, Animation, Children, Comedy, Fantasy" in fields and "TITLE" in fields
    assert tab.page.locator(".card .value").first.inner_text() == f"{ratings:,}"
    _wait_for_answers(tab)
    knn = _campaign(tab, "knn")
    rows = knn.locator("tbody tr")
    assert rows.count() == 10
    titles = [rows.nth(i).locator("td").nth(2).inner_text() for i in range(10)]
    assert all(titles) and "Toy Story (1995)" not in titles
    assert set(knn.locator("td.reason").all_inner_texts()) == {"similar to Toy Story (1995)"}
    tab.screenshot("people-item-1280")
    rows.first.locator("td").nth(1).get_by_role("link").click()
    tab.page.wait_for_load_state("networkidle")
    assert "/items/" in tab.page.url and titles[0] in tab.page.get_by_role("heading", level=1).inner_text()
    tab.assert_clean()


def test_an_unknown_item_is_a_404_page(open_console) -> None:
    tab = open_console()
    tab.expected_statuses.add(404)
    response = tab.goto(f"{GROUP}/items/no-such-item")
    assert response.status == 404
    assert "has no item 'no-such-item'" in tab.page.get_by_role("alert").inner_text()
    tab.assert_clean()


def test_a_read_key_sees_the_same_pages(open_console, console_server) -> None:
    tab = open_console("")
    tab.goto(f"/console/sign-in?next={GROUP}/users/1")  # straight to the page (not the group's overview)
    tab.page.get_by_label("API key").fill(console_server.read_key)
    tab.page.get_by_role("button", name="Sign in").click()
    tab.page.wait_for_url(f"**{GROUP}/users/1")
    tab.page.wait_for_load_state("networkidle")
    assert tab.page.locator("#history-table tbody tr").count() == 20
    _wait_for_answers(tab)
    assert _campaign(tab, "knn").locator("tbody tr").count() == 10
    tab.goto(f"{GROUP}/items/1")
    _wait_for_answers(tab)
    assert "similar to" in _campaign(tab, "knn").inner_text()
    assert tab.page.locator("form[method=post]").count() == 1  # only the sign-out form: nothing here changes
    tab.assert_clean()


def test_phone_width(open_console) -> None:
    for path, name in ((f"{GROUP}/users?user_id=1&item_id=1", "people-search"),
                       (f"{GROUP}/users/1", "people-user"), (f"{GROUP}/items/1", "people-item")):
        tab = open_console(width=375, height=800)
        tab.goto(path)
        if "answer" in tab.page.content():
            _wait_for_answers(tab)
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width} px wide at 375"
        tab.screenshot(f"{name}-375")
        tab.assert_clean()


def test_the_server_checks_the_group_and_the_input(console_server, console_http) -> None:
    other = console_server.store.create_dataset_group("people-other-group").name
    client = console_http(console_server.read_key).client
    assert client.get(f"/console/g/{other}/users/1").status_code == 403  # a key of group movies only
    assert client.get(f"/console/g/{other}/people/recommendations",
                       params={"campaign": "knn", "user_id": "1"}).status_code == 403
    answer = client.get(f"{GROUP}/people/recommendations", params={"campaign": "knn", "user_id": "1"},
                        headers={"HX-Request": "true"})
    assert answer.status_code == 200 and answer.text.count("<tr>") == 11
    missing = client.get(f"{GROUP}/people/recommendations", params={"campaign": "no-such", "user_id": "1"})
    assert missing.status_code == 200 and "Not serving" in missing.text
    assert client.get(f"{GROUP}/users/1", params={"page": "0"}).status_code == 422
    assert client.get(f"{GROUP}/users/1", params={"page": "x"}).status_code == 422
    assert client.get(f"{GROUP}/users", params={"user_id": "x" * 300}).status_code == 422
    assert client.get(f"{GROUP}/users", params={"user_id": "a\x00b"}).status_code == 422
    assert client.get(f"{GROUP}/people/related", params={"campaign": "knn"}).status_code == 422
    admin = console_http(console_server.admin_key).client
    assert admin.get("/console/g/no-such-group/users").status_code == 404


def test_a_campaign_without_item_similarity_answers_with_popular_items(open_console, console_server,
                                                                        console_http) -> None:
    store, name = console_server.store, "people-popularity"
    store.create_campaign("movies", name, console_server.versions["popularity"])
    try:
        client = console_http(console_server.read_key).client
        deadline = time.monotonic() + 20  # both workers load it within their sync interval
        while time.monotonic() < deadline:
            answers = [client.get(f"{GROUP}/people/related", params={"campaign": name, "item_id": "1"})
                       for _ in range(4)]
            if not any("Not serving" in a.text for a in answers):
                break
            time.sleep(0.5)
        tab = open_console()
        tab.goto(f"{GROUP}/items/1")
        _wait_for_answers(tab, 2)
        popular = _campaign(tab, name)
        assert "popularity has no item similarity" in popular.inner_text()
        assert set(popular.locator("td.reason").all_inner_texts()) == {"popular"}
        assert popular.locator("tbody tr").count() == 10
        assert "similar to" in _campaign(tab, "knn").inner_text()
        tab.screenshot("people-item-two-campaigns")
        tab.assert_clean()
    finally:
        store.delete_campaign("movies", name)
