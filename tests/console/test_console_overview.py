"""The overview, batch jobs and retraining pages, in a real browser against the shared console server (and over
plain HTTP for what the server itself must refuse)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from recsmith.client import Client

pytestmark = pytest.mark.browser

GROUP = "movies"
BASE = f"/console/g/{GROUP}"
CHART_SUM = "sel => { const c = Chart.getChart(document.querySelector(sel)); " \
            "return c ? c.data.datasets[0].data.reduce((a, b) => a + b, 0) : -1; }"


def _number(text: str) -> int:
    return int(text.strip().replace(",", ""))


def _shots(tab, name: str) -> None:
    """Screenshots at 1280 (the tab's width) and 375 px wide."""
    tab.page.wait_for_timeout(300)  # the charts paint on the next frame
    tab.screenshot(f"{name}-1280")
    tab.page.set_viewport_size({"width": 375, "height": 800})
    tab.page.wait_for_timeout(300)  # the charts resize
    tab.screenshot(f"{name}-375")
    tab.page.set_viewport_size({"width": 1280, "height": 900})


def _new_group(console_server) -> str:
    name = f"overview-{uuid.uuid4().hex[:8]}"
    console_server.store.create_dataset_group(name)
    return name


def test_overview_counts_event_types_and_events_per_day(open_console, console_server) -> None:
    store = console_server.store
    group_id = store.get_dataset_group(GROUP).id
    tab = open_console()
    tab.goto(BASE)
    counts = store.dataset_group_counts(group_id)[group_id]
    for name in ("interactions", "users", "items", "solution_versions", "campaigns", "filters"):
        shown = tab.page.locator(f'#counts [data-count="{name}"] .value').inner_text()
        assert _number(shown) == counts[name], name
    rows = tab.page.locator("#event-types tbody tr")
    types = store.event_type_counts(group_id)
    assert rows.count() == len(types)
    shown_types = {rows.nth(k).locator("th").inner_text().replace("(no type)", ""): _number(
        rows.nth(k).locator("td.num").inner_text()) for k in range(rows.count())}
    assert shown_types == types
    # the chart of the last 90 days of data, then of every day: all the interactions
    assert tab.page.locator("#daily-chart").count() == 1
    assert tab.page.evaluate(CHART_SUM, "#daily-chart") > 0
    labels = tab.page.evaluate("() => Chart.getChart(document.querySelector('#daily-chart')).data.labels")
    assert len(labels) == 90 and labels[-1] == datetime.fromtimestamp(
        store.interactions_per_day(group_id)[-1][0], UTC).strftime("%Y-%m-%d")
    tab.page.get_by_label("Days shown").select_option("all")
    tab.page.wait_for_function("() => { const c = Chart.getChart(document.querySelector('#daily-chart'));"
                               " return c && c.data.labels.length > 365; }")
    assert tab.page.evaluate(CHART_SUM, "#daily-chart") == store.dataset_group_counts(group_id)[group_id][
        "interactions"]
    first_day = datetime.fromtimestamp(store.interactions_per_day(group_id)[0][0], UTC).strftime("%Y-%m-%d")
    assert labels[0] != first_day and f"spans {first_day} to" in tab.page.locator("#daily").inner_text()
    _shots(tab, "overview")
    tab.assert_clean()


def test_live_events_show_on_the_live_chart_and_in_the_table(open_console, console_server, console_http) -> None:
    tab = open_console(console_server.read_key)
    tab.goto(BASE)
    before = tab.page.evaluate(CHART_SUM, "#live-chart")
    assert before >= 0
    user = f"overview-live-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    events = [{"event_type": "click", "item_id": item, "sent_at": now.timestamp() - k} for k, item in
              enumerate(("1", "2", "3"))]
    answer = Client(console_server.url, console_server.write_key).put_events(GROUP, user_id=user,
                                                                            session_id=f"{user}-s", events=events)
    assert answer == {"accepted": 3, "duplicates": 0}
    # redrawn from live-events.json within its refresh period, and the table polled as often
    tab.page.wait_for_function(f"() => ({CHART_SUM})('#live-chart') >= {before + 3}", timeout=15_000)
    tab.page.locator("#live-events").get_by_text(user).first.wait_for(timeout=15_000)
    assert tab.page.locator("#live-events tbody tr").filter(has_text=user).count() == 3
    client = console_http(console_server.read_key).client
    data = client.get(f"{BASE}/live-events.json").json()
    assert len(data["labels"]) == 60 and len(data["datasets"][0]["data"]) == 60
    assert sum(data["datasets"][0]["data"]) >= before + 3
    _shots(tab, "overview-live")
    tab.assert_clean()


def test_a_key_of_another_group_gets_403_and_an_unknown_group_404(open_console, console_server,
                                                                   console_http) -> None:
    other = _new_group(console_server)
    key = console_server.store.create_api_key("admin", other, "overview-other")["key"]
    paths = ["", "/events-per-day", "/live-events", "/live-events.json", "/batch-jobs", "/batch-jobs/1",
             "/retraining"]
    signed = console_http(key)
    client = signed.client
    for path in paths:
        answer = client.get(BASE + path)
        assert answer.status_code == 403, path
        assert "needs role" in answer.text
    refused = client.post(f"{BASE}/batch-jobs", data={"csrf_token": signed.csrf_token, "solution_version_id": "1",
                                                        "output": "/tmp/x.jsonl"})
    assert refused.status_code == 403
    assert client.get(f"/console/g/{other}").status_code == 200  # its own group
    admin = console_http(console_server.admin_key).client
    for path in paths:
        assert admin.get(f"/console/g/no-such-group{path}").status_code == 404, path
    bad = admin.get(f"{BASE}?range=week")
    assert bad.status_code == 422 and "range" in bad.text
    tab = open_console(key)
    tab.expected_statuses.add(403)
    assert tab.goto(BASE).status == 403
    assert "needs role read on dataset group 'movies'" in tab.page.get_by_role("alert").inner_text()
    tab.assert_clean()


def test_an_empty_group_renders_every_page(open_console, console_server) -> None:
    group = _new_group(console_server)
    tab = open_console()
    tab.goto(f"/console/g/{group}")
    assert tab.page.locator('#counts [data-count="interactions"] .value').inner_text() == "0"
    assert tab.page.get_by_text("No interactions yet, so no chart.").is_visible()
    assert tab.page.get_by_text("No live events yet").is_visible()
    tab.goto(f"/console/g/{group}/batch-jobs")
    assert tab.page.get_by_text("No batch jobs yet.").is_visible()
    assert tab.page.get_by_text("No trained solution version yet").is_visible()
    tab.goto(f"/console/g/{group}/retraining")
    assert tab.page.get_by_text("No retraining decisions yet.").is_visible()
    _shots(tab, "retraining-empty")
    tab.assert_clean()


def test_an_admin_starts_a_batch_inference_job_for_every_user(open_console, console_server) -> None:
    store = console_server.store
    output = console_server.home / f"overview-batch-{uuid.uuid4().hex[:8]}.jsonl"
    tab = open_console()
    tab.goto(f"{BASE}/batch-jobs")
    # a bad output is refused where the form is, and no job is recorded
    tab.expected_statuses.add(400)
    jobs_before = len(store.list_batch_jobs(store.get_dataset_group(GROUP).id))
    tab.page.get_by_label("Solution version").select_option(str(console_server.versions["item-knn"]))
    tab.page.get_by_label("Output (on the server)").fill(str(output.with_suffix(".txt")))
    tab.page.get_by_role("button", name="Start batch inference job").click()
    tab.page.locator("#create-result [role=alert]").wait_for()
    assert ".txt" in tab.page.locator("#create-result").inner_text()
    tab.expected_statuses.add(400)
    assert len(store.list_batch_jobs(store.get_dataset_group(GROUP).id)) == jobs_before
    tab.page.get_by_label("Output (on the server)").fill(str(output))
    tab.page.get_by_label("Items per user").fill("5")
    tab.page.get_by_role("button", name="Start batch inference job").click()
    tab.page.wait_for_url(re.compile(r"/batch-jobs/\d+$"))
    job_id = int(tab.page.url.rsplit("/", 1)[1])
    tab.page.locator("#job-status", has_text="ACTIVE").wait_for(timeout=60_000)  # the page polls while it runs
    job = store.get_batch_job(job_id)
    assert job["status"] == "ACTIVE" and job["input"] == "all-users" and job["config"]["num_results"] == 5
    assert _number(tab.page.locator('[data-count="lines_written"]').inner_text()) == job["lines_written"] > 0
    assert output.exists() and len(output.read_text().splitlines()) == job["lines_written"]
    audit = store.audit_entries(action="batch_inference_job.create", limit=1)[0]
    assert audit["detail"]["via"] == "console" and audit["resource"].endswith(f"batch-inference-jobs/{job_id}")
    _shots(tab, "batch-job")
    tab.goto(f"{BASE}/batch-jobs")
    row = tab.page.locator(f'tr[data-job="{job_id}"]')
    assert "ACTIVE" in row.inner_text() and str(output) in row.inner_text()
    _shots(tab, "batch-jobs")
    tab.assert_clean()


def test_the_batch_list_refreshes_while_a_job_runs(open_console, console_server) -> None:
    store = console_server.store
    group_id = store.get_dataset_group(GROUP).id
    job_id = store.create_batch_job(group_id, "inference", console_server.versions["item-knn"], input="all-users",
                                    output=str(console_server.home / "overview-never.jsonl"),
                                    config={"num_results": 5})  # recorded, never queued: it stays pending
    try:
        tab = open_console()
        tab.goto(f"{BASE}/batch-jobs")
        assert tab.page.locator("#batch-jobs").get_attribute("hx-trigger") == "every 2s"  # polling while it runs
        assert "CREATE_PENDING" in tab.page.locator(f'tr[data-job="{job_id}"]').inner_text()
    finally:
        store.update_batch_job(job_id, status="CREATE_FAILED", lines_read=10, lines_failed=10,
                               error="the test stopped it: resume with `recsmith batch-inference resume`")
    tab.page.locator(f'tr[data-job-error="{job_id}"]').wait_for(timeout=10_000)
    assert "CREATE_FAILED" in tab.page.locator(f'tr[data-job="{job_id}"]').inner_text()
    assert "the test stopped it" in tab.page.locator(f'tr[data-job-error="{job_id}"]').inner_text()
    assert tab.page.locator("#batch-jobs").get_attribute("hx-trigger") is None  # no job runs: polling stopped
    tab.goto(f"{BASE}/batch-jobs/{job_id}")
    assert "the test stopped it" in tab.page.locator("#batch-job").inner_text()
    tab.assert_clean()


def test_batch_jobs_are_for_admins_as_in_the_api(console_server, console_http) -> None:
    for key in (console_server.read_key, console_server.write_key):
        signed = console_http(key)
        client = signed.client
        assert client.get(f"{BASE}/batch-jobs").status_code == 403
        answer = client.post(f"{BASE}/batch-jobs", data={"csrf_token": signed.csrf_token, "output": "/tmp/x.jsonl",
                                                          "solution_version_id": "1"})
        assert answer.status_code == 403 and "needs role admin" in answer.text
        api = httpx.get(f"{console_server.url}/v1/dataset-groups/{GROUP}/batch-inference-jobs",
                        headers={"Authorization": f"Bearer {key}"})
        assert api.status_code == 403  # the same rule


def test_retraining_lists_decisions_newest_first(open_console, console_server) -> None:
    store = console_server.store
    versions = console_server.versions
    solution = f"overview-{uuid.uuid4().hex[:8]}"
    kept = store.record_retrain_decision(
        GROUP, solution, decision="kept", candidate_version_id=versions["popularity"],
        current_version_id=versions["item-knn"], campaigns=["knn"],
        reason=f"ndcg@10 0.0512 (version {versions['popularity']}) vs 0.0904 (version {versions['item-knn']}), "
               f"tolerance 2%: worse by 43.4%, beyond the tolerance; kept version {versions['item-knn']}")
    failed = store.record_retrain_decision(GROUP, solution, decision="failed", reason="training failed: no data",
                                           candidate_version_id=None, current_version_id=None, campaigns=[])
    tab = open_console(console_server.read_key)  # a read key sees them
    tab.goto(f"{BASE}/retraining")
    rows = tab.page.locator("#decisions tbody tr")
    ids = [int(rows.nth(k).get_attribute("data-decision")) for k in range(rows.count())]
    assert ids.index(failed["id"]) < ids.index(kept["id"])
    row = tab.page.locator(f'tr[data-decision="{kept["id"]}"]')
    text = row.inner_text()
    assert "kept" in text and f"{versions['item-knn']} → {versions['popularity']}" in text
    assert "0.0512" in text and "0.0904" in text and "knn" in text and solution in text
    assert row.locator(".status.kept").is_visible()
    _shots(tab, "retraining")
    tab.assert_clean()
