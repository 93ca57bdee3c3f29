"""The Solutions pages: versions with their metrics and intervals, one version, comparing two, the evaluation
report, training and tuning from the console (admins), and what a read key may not do, in a real browser against
the shared server (and over plain HTTP where the server's refusal is what counts)."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from recsmith.jobs.training import StoredProgress, train_solution_version
from recsmith.settings import Settings

pytestmark = pytest.mark.browser

GROUP = "movies"
BASE = f"/console/g/{GROUP}/solutions"
INTERVAL = re.compile(r"\[0\.\d+ – 0\.\d+\]")


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _shots(tab, name: str) -> None:
    tab.screenshot(f"solutions-{name}")


def test_the_list_shows_the_versions_with_their_metrics(open_console, console_server) -> None:
    for width in (1280, 375):
        tab = open_console(width=width)
        tab.goto(BASE)
        for recipe in ("item-knn", "popularity"):
            version = console_server.versions[recipe]
            assert tab.page.get_by_role("link", name=f"Version {version} ({recipe})").is_visible()
            row = tab.page.locator("tr", has=tab.page.get_by_role("link", name=f"Version {version} ({recipe})"))
            assert "ACTIVE" in row.inner_text()
            assert INTERVAL.search(row.inner_text()), row.inner_text()  # ndcg@10 etc. with their intervals
        assert tab.page.get_by_role("columnheader", name="ndcg@10").first.is_visible()
        knn = tab.page.locator("tr", has=tab.page.get_by_role(
            "link", name=f"Version {console_server.versions['item-knn']} (item-knn)"))
        assert "knn" in knn.inner_text()  # the campaign serving it
        assert tab.page.get_by_role("link", name="Train a version").is_visible()
        _shots(tab, f"list-{width}")
        tab.assert_clean()


def test_a_version_page_shows_ndcg_with_its_interval_and_protocol(open_console, console_server) -> None:
    version = console_server.versions["item-knn"]
    for width in (1280, 375):
        tab = open_console(width=width)
        tab.goto(f"{BASE}/versions/{version}")
        assert tab.page.get_by_role("heading", name=f"Solution version {version}").is_visible()
        row = tab.page.get_by_role("row", name=re.compile(r"^ndcg@10"))
        assert INTERVAL.search(row.inner_text()), row.inner_text()
        assert tab.page.get_by_role("columnheader", name="95 % interval").is_visible()
        assert "random test_fraction=0.2 seed=42" in tab.page.locator("main").inner_text()
        coverage = tab.page.get_by_role("row", name=re.compile(r"^coverage@10"))
        assert "catalogue-wide" in coverage.inner_text()
        assert tab.page.get_by_role("link", name="Evaluation report").is_visible()
        _shots(tab, f"version-{width}")
        tab.assert_clean()


def test_compare_item_knn_with_popularity(open_console, console_server) -> None:
    a, b = console_server.versions["item-knn"], console_server.versions["popularity"]
    for width in (1280, 375):
        tab = open_console(width=width)
        tab.goto(f"{BASE}/compare?a={a}&b={b}")
        assert tab.page.get_by_label("Version A").input_value() == str(a)
        assert tab.page.get_by_label("Version B").input_value() == str(b)
        tab.page.locator("#mean-jaccard").wait_for(timeout=30_000)  # the overlap, loaded by htmx
        drawn = tab.page.evaluate("() => [Chart.getChart('compare-chart')?.data.datasets.length,"
                                  " Chart.getChart('overlap-chart')?.data.datasets[0].data.reduce((s, v) => s + v, 0)]")
        assert drawn == [2, 100], drawn  # both versions' bars; the histogram counts the 100 users
        jaccard = float(tab.page.locator("#mean-jaccard").inner_text())
        shared = float(tab.page.locator("#mean-shared").inner_text())
        assert 0.0 <= jaccard < 1.0 and 0.0 <= shared < 10.0  # item-knn personalises, popularity does not
        row = tab.page.get_by_role("row", name=re.compile(r"^ndcg@10"))
        assert len(INTERVAL.findall(row.inner_text())) == 2
        _shots(tab, f"compare-{width}")
        tab.assert_clean()


def test_the_report_is_html_with_its_own_sandboxed_policy(console_server, console_http) -> None:
    version = console_server.versions["item-knn"]
    client = console_http(console_server.read_key).client
    answer = client.get(f"{BASE}/versions/{version}/report")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "sandbox" in policy and "script-src" not in policy and "default-src 'none'" in policy
    assert "<h2>Leaderboard</h2>" in answer.text and "<svg" in answer.text and "ndcg@10" in answer.text
    assert "<script" not in answer.text
    assert client.get(f"{BASE}/versions/999999/report").status_code == 404


def test_a_version_trained_without_metrics_has_no_report(open_console, console_server, console_http) -> None:
    version = train_solution_version(console_server.store, Settings(home=console_server.home), GROUP, "popularity",
                                     solution_name=_unique("console-no-metrics"), with_metrics=False)["id"]
    client = console_http(console_server.read_key).client
    answer = client.get(f"{BASE}/versions/{version}/report")
    assert answer.status_code == 404 and "no stored evaluation" in answer.text
    tab = open_console()
    tab.goto(f"{BASE}/versions/{version}")
    assert tab.page.get_by_role("link", name="Evaluation report").count() == 0
    assert "trained without them" in tab.page.locator("main").inner_text()
    tab.assert_clean()


def test_a_version_from_before_intervals_says_so(open_console, console_server) -> None:
    settings = Settings(home=console_server.home)
    version = train_solution_version(console_server.store, settings, GROUP, "popularity",
                                     solution_name=_unique("console-older"))["id"]
    console_server.store.update_solution_version(version, evaluation=None)  # as versions trained before 0012
    tab = open_console(width=375)
    tab.goto(f"{BASE}/versions/{version}")
    row = tab.page.get_by_role("row", name=re.compile(r"^ndcg@10"))
    assert "no interval recorded" in row.inner_text() and not INTERVAL.search(row.inner_text())
    assert tab.page.get_by_role("link", name="Evaluation report").count() == 0
    _shots(tab, "version-older-375")
    tab.assert_clean()


def test_an_admin_trains_a_popularity_version_and_watches_it(open_console, console_server) -> None:
    solution = _unique("console-pop")
    for width in (1280, 375):
        tab = open_console(width=width)
        tab.goto(f"{BASE}/train")
        tab.page.get_by_label("Recipe").select_option("popularity")
        tab.page.get_by_label("Solution name").fill(solution)
        tab.page.get_by_role("button", name="Start training").click()
        status = tab.page.locator("#train-result .training-status")
        status.wait_for(timeout=10_000)
        tab.page.locator("#train-result .status.ACTIVE").wait_for(timeout=60_000)  # polled from the store
        assert "See the version" in status.inner_text()
        version_id = int(re.search(r"Version (\d+)", status.inner_text()).group(1))
        version = console_server.store.get_solution_version(version_id)
        assert version["status"] == "ACTIVE" and version["solution_name"] == solution
        assert version["evaluation"]["intervals"]["ndcg@10"]["ci_low"] <= version["metrics"]["ndcg@10"]
        assert json.loads(version["progress"])["stage"] == "save"
        _shots(tab, f"train-{width}")
        tab.assert_clean()
    entries = console_server.store.audit_entries(action="solution_version.train", limit=10)
    assert any(e["detail"].get("via") == "console" and e["outcome"] == "ok" and solution in e["resource"]
               for e in entries)


def test_bad_params_are_shown_inline_and_start_nothing(open_console, console_server) -> None:
    group_id = console_server.store.get_dataset_group(GROUP).id
    before = len(console_server.store.list_solution_versions(group_id))
    tab = open_console()
    tab.expected_statuses.add(400)
    tab.goto(f"{BASE}/train")
    tab.page.get_by_label("Recipe").select_option("item-knn")
    tab.page.get_by_label("Solution name").fill(_unique("console-bad"))
    tab.page.get_by_label("Params").fill("neighbours=50")
    tab.page.get_by_role("button", name="Start training").click()
    alert = tab.page.locator("#train-result").get_by_role("alert")
    alert.wait_for(timeout=10_000)
    assert alert.inner_text().startswith("params:") and "neighbours" in alert.inner_text()
    tab.page.get_by_label("Params").fill("neighbors 50")
    tab.page.get_by_role("button", name="Start training").click()
    tab.page.get_by_text("is not name=value").wait_for(timeout=10_000)
    _shots(tab, "train-bad-params")
    assert len(console_server.store.list_solution_versions(group_id)) == before
    tab.assert_clean()


def test_a_read_key_sees_no_forms_and_the_server_refuses(open_console, console_server, console_http) -> None:
    tab = open_console(console_server.read_key)
    tab.problems.clear()  # signing in lands on the group's overview, which is not this area's page
    tab.goto(BASE)
    assert tab.page.get_by_role("link", name="Train a version").count() == 0
    assert tab.page.get_by_role("link", name=f"Version {console_server.versions['item-knn']} (item-knn)").is_visible()
    tab.goto(f"{BASE}/train")
    assert tab.page.get_by_role("button", name="Start training").count() == 0
    assert "needs an admin key" in tab.page.locator("main").inner_text()
    tab.goto(f"{BASE}/tune")
    assert tab.page.get_by_role("button", name="Start tuning").count() == 0
    tab.assert_clean()
    signed = console_http(console_server.read_key)
    client, csrf = signed.client, signed.csrf_token
    train = client.post(f"{BASE}/train", data={"recipe": "popularity", "csrf_token": csrf})
    assert train.status_code == 403 and "needs role admin" in train.text
    tune = client.post(f"{BASE}/tune", data={"recipe": "item-knn", "trials": "1", "csrf_token": csrf})
    assert tune.status_code == 403


def test_a_tune_of_two_trials_shows_them_and_the_best(open_console, console_server) -> None:
    solution = _unique("console-tuned")
    tab = open_console()
    tab.goto(f"{BASE}/tune")
    tab.page.get_by_label("Recipe").select_option("item-knn")
    tab.page.get_by_label("Metric").fill("ndcg@10")
    tab.page.get_by_label("Trials").fill("2")
    tab.page.get_by_label("Timeout (seconds)").fill("20")
    tab.page.get_by_label("Solution to save the best params in").fill(solution)
    tab.page.get_by_role("button", name="Start tuning").click()
    ended = tab.page.locator("#tune-trials .notice, #tune-trials [role=alert]")
    try:
        ended.wait_for(timeout=60_000)
    except Exception:
        import os
        _shots(tab, "tune-debug")
        fd = console_server.process.stderr.fileno()
        os.set_blocking(fd, False)
        try:
            print("STDERR", os.read(fd, 200000).decode()[-5000:])
        except BlockingIOError:
            print("STDERR empty")
        raise
    assert ended.inner_text().startswith("Done: 2 trials finished"), ended.inner_text()
    rows = tab.page.locator("#tune-trials tbody tr")
    assert rows.count() == 2 and "COMPLETE" in rows.first.inner_text()
    assert tab.page.get_by_text(re.compile(r"Best ndcg@10: 0\.\d+")).is_visible()
    assert tab.page.get_by_role("button", name="Train a version with these params").is_visible()
    saved = console_server.store.find_solution(console_server.store.get_dataset_group(GROUP).id, solution)
    assert saved is not None and saved["recipe"] == "item-knn"  # the best params, saved as recsmith tune does
    _shots(tab, "tune-1280")
    tab.page.set_viewport_size({"width": 375, "height": 900})
    _shots(tab, "tune-375")
    entries = console_server.store.audit_entries(action="solution.tune", limit=10)
    assert any(e["detail"].get("study") == f"{GROUP}:item-knn:ndcg@10" for e in entries)
    tab.assert_clean()


def test_training_writes_its_stage_and_epochs_to_the_store(console_server, monkeypatch) -> None:
    writes: list[dict] = []
    original = StoredProgress._write

    def spy(self, done, total) -> None:
        writes.append({"stage": self.current, "done": done, "total": total})
        original(self, done, total)

    monkeypatch.setattr(StoredProgress, "_write", spy)
    version = train_solution_version(console_server.store, Settings(home=console_server.home), GROUP, "als",
                                     {"epochs": 3, "factors": 8}, solution_name=_unique("console-als"))
    stages = [w["stage"] for w in writes if w["done"] is None]
    assert stages == ["read", "metrics", "fit", "save"]
    fit_epochs = [(w["done"], w["total"]) for w in writes if w["stage"] == "fit" and w["done"] is not None]
    assert fit_epochs[0] == (0, 3) and fit_epochs[-1] == (3, 3)
    assert json.loads(console_server.store.get_solution_version(version["id"])["progress"])["stage"] == "save"
