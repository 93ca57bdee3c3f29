"""The campaign pages: the list, deploying, switching and deleting a campaign (admins), its traffic from the
metrics and its click-through from the ledger, in a real browser against a real server; the refusals of a read
key over plain HTTP as well.

The shared campaign ``knn`` is only read; the changes are made on this file's own campaign."""

from __future__ import annotations

import time

import pytest

from recsmith.api.metrics import BUCKETS
from recsmith.client import Client

pytestmark = pytest.mark.browser

GROUP = "/console/g/movies"
OWN = "switch-test"
ROWS = "document.querySelectorAll('#engagement-table tbody tr:not(.total)').length"


def _until(tab, expression: str, timeout: float = 10.0) -> None:
    """Wait until ``expression`` is true in the page (polled from here: the page's CSP forbids the eval that
    ``wait_for_function`` needs)."""
    deadline = time.monotonic() + timeout
    while not tab.page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        time.sleep(0.2)


def _signed_in_tab(open_console, key: str, path: str):
    """A tab signed in with ``key`` straight onto ``path`` (a key of one group would land on its overview, another
    area's page)."""
    tab = open_console("")
    tab.goto(f"/console/sign-in?next={path}")
    tab.page.get_by_label("API key").fill(key)
    tab.page.get_by_role("button", name="Sign in").click()
    tab.page.wait_for_load_state("networkidle")
    assert tab.page.url.endswith(path)
    return tab


def _row(tab, name: str):
    return tab.page.locator(f'#campaigns tr[data-campaign="{name}"]')


def _wait_active(tab, version: int) -> None:
    """The status block polls itself until ACTIVE: wait for it to show ``version`` ACTIVE."""
    tab.page.wait_for_selector('#campaign-status [data-status="ACTIVE"]', timeout=20_000)
    assert tab.page.locator('#campaign-status [data-field="solution_version_id"]').inner_text() == str(version)
    assert tab.page.locator('#campaign-status [data-field="serving_solution_version_id"]').inner_text() == str(version)
    assert tab.page.locator("#campaign-status[hx-trigger]").count() == 0  # settled: polling stopped


def test_the_list_shows_knn_active_with_its_version(open_console, console_server) -> None:
    tab = open_console()
    tab.goto(f"{GROUP}/campaigns")
    row = _row(tab, "knn")
    cells = row.locator("td")
    assert cells.nth(0).inner_text() == "ACTIVE"
    assert cells.nth(1).inner_text() == str(console_server.versions["item-knn"])
    assert cells.nth(2).inner_text() == str(console_server.versions["item-knn"])
    assert cells.nth(3).inner_text() == "item-knn"
    assert tab.page.get_by_role("link", name="Campaigns").first.get_attribute("aria-current") == "page"
    tab.expected_statuses.add(400)  # a taken name: the form shows why, in place
    tab.page.get_by_label("Name").fill("knn")
    tab.page.get_by_role("button", name="Deploy campaign").click()
    alert = tab.page.locator("#create-result [role=alert]")
    alert.wait_for()
    assert "already has a campaign 'knn'" in alert.inner_text()
    tab.screenshot("campaigns-list")
    phone = open_console(width=375, height=800)
    phone.goto(f"{GROUP}/campaigns")
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= 375  # the table scrolls, not the page
    phone.screenshot("campaigns-list-375")
    tab.assert_clean()
    phone.assert_clean()


def test_deploy_switch_watch_traffic_and_delete_a_campaign(open_console, console_server) -> None:
    knn, popularity = console_server.versions["item-knn"], console_server.versions["popularity"]
    tab = open_console()
    tab.goto(f"{GROUP}/campaigns")
    tab.page.get_by_label("Name").fill(OWN)
    tab.page.get_by_label("Solution version").select_option(str(knn))
    tab.page.get_by_role("button", name="Deploy campaign").click()
    tab.page.wait_for_url(f"**{GROUP}/campaigns/{OWN}")
    _wait_active(tab, knn)

    # the one-click switch: UPDATE_IN_PROGRESS (or already ACTIVE) on the new version, polled until ACTIVE
    tab.page.get_by_label("Solution version").select_option(str(popularity))
    tab.page.get_by_role("button", name="Switch").click()
    tab.page.wait_for_selector("#campaign-status .notice")
    assert f"to version {popularity}" in tab.page.locator("#campaign-status .notice").inner_text()
    _wait_active(tab, popularity)
    assert console_server.store.get_campaign("movies", OWN)["solution_version_id"] == popularity
    assert console_server.store.get_campaign("movies", "knn")["solution_version_id"] == knn

    # traffic: the charts get points, the engagement table counts the responses
    client = Client(console_server.url, console_server.read_key)
    for _ in range(5):
        assert client.recommend("movies", OWN, user_id="1").items
    _until(tab, "document.querySelector('[data-now=total]').textContent === '5'")
    _until(tab, "Chart.getChart('rps-chart').data.datasets[0].data.some(p => p.y > 0)")
    assert tab.page.evaluate("Chart.getChart('latency-chart').data.datasets[1].data.some(p => p.y > 0)")
    for _ in range(20):  # the ledger is written every 0.25 s by the worker that answered
        tab.page.get_by_role("button", name="Refresh").click()
        tab.page.wait_for_load_state("networkidle")
        if tab.page.locator('[data-total="responses"]').inner_text() == "5":
            break
        time.sleep(0.25)
    assert tab.page.locator('[data-total="responses"]').inner_text() == "5"
    total = tab.page.locator("#engagement-table tr.total td")
    assert total.nth(0).inner_text() == "5" and total.nth(1).inner_text() == "125"  # 25 items a response
    assert tab.page.evaluate("Chart.getChart('engagement-chart').data.datasets[1].data.reduce((a, b) => a + b)") == 5

    entries = console_server.store.audit_entries(action="campaign.")
    mine = [e for e in entries if e["resource"] == f"dataset-groups/movies/campaigns/{OWN}" and e["outcome"] == "ok"]
    assert [e["action"] for e in mine][:2] == ["campaign.update", "campaign.create"]
    assert mine[0]["detail"] == {"via": "console", "solution_version_id": popularity,
                                 "previous_solution_version_id": knn}

    # delete it (confirmed), back on the list without it
    tab.page.once("dialog", lambda dialog: dialog.accept())
    tab.page.get_by_role("button", name="Delete campaign").click()
    tab.page.wait_for_url(f"**{GROUP}/campaigns")
    assert _row(tab, OWN).count() == 0 and _row(tab, "knn").count() == 1
    assert not any(c["name"] == OWN for c in console_server.store.list_campaigns("movies"))
    assert any(e["resource"].endswith(f"/campaigns/{OWN}") and e["outcome"] == "ok"
               for e in console_server.store.audit_entries(action="campaign.delete"))
    tab.assert_clean()


def test_the_campaign_page_with_traffic_at_1280_and_375(open_console, console_server) -> None:
    client = Client(console_server.url, console_server.read_key)  # reading knn changes nothing
    tab = open_console()
    tab.goto(f"{GROUP}/campaigns/knn")
    arns = tab.page.locator("#campaign-arns code").all_inner_texts()  # for boto3 clients of the Personalize API
    assert arns[0] == "arn:aws:personalize:us-east-1:000000000000:campaign/knn"
    assert arns[1].startswith("arn:aws:personalize:us-east-1:000000000000:solution/")
    for user in ("1", "2", "3"):
        client.recommend("movies", "knn", user_id=user)
    _until(tab, "Chart.getChart('rps-chart').data.datasets[0].data.some(p => p.y > 0)")
    tab.page.get_by_label("Window").select_option("24h")
    _until(tab, f"[24, 25].includes({ROWS})")
    _until(tab, f"Chart.getChart('engagement-chart')?.data.labels.length === {ROWS}")  # the swapped chart is drawn
    tab.page.get_by_label("Window").select_option("1h")
    _until(tab, f"[60, 61].includes({ROWS})")
    _until(tab, f"Chart.getChart('engagement-chart')?.data.labels.length === {ROWS}")
    assert int(tab.page.locator('[data-total="responses"]').inner_text().replace(",", "")) >= 3
    tab.screenshot("campaign-page")
    phone = open_console(width=375, height=800)
    phone.goto(f"{GROUP}/campaigns/knn")
    client.recommend("movies", "knn", user_id="4")
    _until(phone, "Chart.getChart('latency-chart').data.datasets[0].data.some(p => p.y > 0)")
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= 375
    phone.screenshot("campaign-page-375")
    tab.assert_clean()
    phone.assert_clean()


def test_a_read_key_sees_no_forms_and_its_posts_get_403(open_console, console_server, console_http) -> None:
    tab = _signed_in_tab(open_console, console_server.read_key, f"{GROUP}/campaigns")
    assert _row(tab, "knn").count() == 1
    assert tab.page.locator("form#create-campaign").count() == 0
    tab.goto(f"{GROUP}/campaigns/knn")
    assert tab.page.locator("#campaign-status [data-status]").inner_text() == "ACTIVE"
    assert tab.page.locator("form#switch-form, form#delete-form").count() == 0
    assert tab.page.locator("#engagement-table").count() == 1  # reading is allowed
    tab.assert_clean()

    knn, popularity = console_server.versions["item-knn"], console_server.versions["popularity"]
    signed = console_http(console_server.read_key)
    client, token = signed.client, signed.csrf_token
    switched = client.post(f"{GROUP}/campaigns/knn/switch",
                           data={"solution_version_id": str(popularity), "csrf_token": token})
    assert switched.status_code == 403 and "needs role admin" in switched.text
    made = client.post(f"{GROUP}/campaigns", data={"name": "read-made", "solution_version_id": str(knn),
                                                   "csrf_token": token})
    assert made.status_code == 403
    deleted = client.post(f"{GROUP}/campaigns/knn/delete", data={"csrf_token": token},
                          headers={"HX-Request": "true"})
    assert deleted.status_code == 403 and 'role="alert"' in deleted.text
    assert console_server.store.get_campaign("movies", "knn")["solution_version_id"] == knn
    assert not any(c["name"] == "read-made" for c in console_server.store.list_campaigns("movies"))
    denied = console_server.store.audit_entries(action="campaign.update")
    assert any(e["outcome"] == "denied" and e["resource"] == "dataset-groups/movies/campaigns/knn" for e in denied)


def test_traffic_json_and_bad_input(console_server, console_http) -> None:
    signed = console_http(console_server.admin_key)
    client, token = signed.client, signed.csrf_token
    traffic = client.get(f"{GROUP}/campaigns/knn/traffic.json").json()
    assert [b["le"] for b in traffic["buckets"]] == [*BUCKETS, "+Inf"]
    assert traffic["requests"] >= 0 and traffic["at"] > 0
    assert client.get(f"{GROUP}/campaigns/nope/traffic.json").status_code == 404
    window = client.get(f"{GROUP}/campaigns/knn/engagement?window=7d")
    assert window.status_code == 400 and "window" in window.text and "7d" in window.text
    bad = client.post(f"{GROUP}/campaigns/knn/switch", data={"solution_version_id": "x", "csrf_token": token})
    assert bad.status_code == 422 and "solution_version_id" in bad.text
    missing = client.post(f"{GROUP}/campaigns/knn/switch", data={"solution_version_id": "999999",
                                                                  "csrf_token": token})
    assert missing.status_code in (400, 404) and "999999" in missing.text
    taken = client.post(f"{GROUP}/campaigns", data={"name": "knn", "solution_version_id": "1",
                                                    "csrf_token": token})
    assert taken.status_code == 400 and "already has a campaign &#39;knn&#39;" in taken.text
    assert client.get(f"{GROUP}/campaigns/nope").status_code == 404
    assert console_server.store.get_campaign("movies", "knn")["solution_version_id"] == console_server.versions[
        "item-knn"]


def test_latency_quantiles_interpolate_as_prometheus_does(open_console) -> None:
    tab = open_console()
    tab.goto(f"{GROUP}/campaigns/knn")
    quantile = "(q, b) => window.recsmithCampaigns.quantile(q, b)"
    buckets = [{"le": 0.1, "count": 10}, {"le": 0.2, "count": 20}, {"le": 0.5, "count": 30},
               {"le": float("inf"), "count": 30}]
    js_buckets = "[{le: 0.1, count: 10}, {le: 0.2, count: 20}, {le: 0.5, count: 30}, {le: Infinity, count: %d}]"
    assert tab.page.evaluate(f"({quantile})(0.5, {js_buckets % 30})") == pytest.approx(0.15)
    assert tab.page.evaluate(f"({quantile})(0.99, {js_buckets % 30})") == pytest.approx(0.491)
    assert tab.page.evaluate(f"({quantile})(0.05, {js_buckets % 30})") == pytest.approx(0.015)
    assert tab.page.evaluate(f"({quantile})(0.99, {js_buckets % 40})") == pytest.approx(0.5)  # in +Inf: last bound
    assert tab.page.evaluate(f"({quantile})(0.5, {js_buckets % 30}.map(b => ({{le: b.le, count: 0}})))") is None
    before = {"at": 100, "requests": 10, "buckets": [dict(b, le="+Inf" if b["le"] == float("inf") else b["le"])
                                                    for b in buckets]}
    after = {"at": 102, "requests": 14, "buckets": [dict(b, count=b["count"] + 4) for b in before["buckets"]]}
    point = tab.page.evaluate("([a, b]) => window.recsmithCampaigns.point(a, b)", [before, after])
    assert point["rps"] == pytest.approx(2.0) and point["p50"] == pytest.approx(50.0)  # all 4 in the first bucket
    tab.assert_clean()
