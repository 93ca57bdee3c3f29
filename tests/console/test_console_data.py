"""The console's Data page: datasets with their schemas, import jobs, and uploading a file to import, in a real
browser against a real server (and over plain HTTP for what the server itself must refuse).

Uploads go to dataset groups of their own (``upload-…``), so the shared ``movies`` group never changes."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from recsmith.jobs.importing import record_import_job
from recsmith.store.data_records import progress_of

pytestmark = pytest.mark.browser

NEW_ROWS = b"USER_ID,ITEM_ID,TIMESTAMP\nu-upload-1,1,1700000000\nu-upload-2,2,1700000100\nu-upload-3,1,1700000200\n"
BAD_ROW = (b"USER_ID,ITEM_ID,TIMESTAMP\nu-upload-1,1,1700000000\nu-upload-2,2,not-a-time\n"
           b"u-upload-3,1,1700000200\n")


def _new_group(console_server) -> tuple[str, int]:
    name = f"upload-{uuid.uuid4().hex[:8]}"
    return name, console_server.store.create_dataset_group(name).id


def _upload_in_browser(tab, group: str, name: str, content: bytes, *, on_error: str = "fail") -> None:
    tab.goto(f"/console/g/{group}/data")
    page = tab.page
    page.get_by_label("File", exact=True).set_input_files({"name": name, "mimeType": "text/csv", "buffer": content})
    page.get_by_label("Dataset", exact=True).select_option("interactions")
    page.get_by_label(f"{on_error}:").check()
    page.get_by_role("button", name="Upload and import").click()


def _wait_finished(tab) -> str:
    status = tab.page.locator("#upload-result .import-status")
    status.first.wait_for()
    tab.page.wait_for_function(
        "() => ['ACTIVE', 'CREATE_FAILED'].includes("
        "document.querySelector('#upload-result .import-status')?.dataset.status)", timeout=15_000)
    # the page's own refresh of its lists (htmx marks the elements whose requests are in flight), before anything
    # else: leaving the page meanwhile would abort them
    tab.page.wait_for_function("() => !document.querySelector('.htmx-request')", timeout=15_000)
    return status.get_attribute("data-status")


def test_the_data_page_lists_the_datasets_schemas_and_import_jobs(open_console, console_server) -> None:
    store = console_server.store
    group = store.get_dataset_group("movies")
    jobs = store.list_import_jobs(group.id)
    assert jobs, "the fixture imported movies through import jobs"
    for width in (1280, 375):
        tab = open_console(width=width)
        tab.goto("/console/g/movies/data")
        page = tab.page
        for name in ("Interactions", "Users", "Items"):
            assert page.get_by_role("heading", name=re.compile(f"^{name}")).is_visible()
        interactions = page.locator("#dataset-interactions")
        assert f"{store.count_interactions(group.id):,} rows" in interactions.inner_text()
        schema = interactions.locator("table.schema")
        assert schema.get_by_role("rowheader", name="USER_ID").is_visible()
        assert "long" in schema.get_by_role("row", name=re.compile("TIMESTAMP")).inner_text()
        genres = page.locator("#dataset-items table.schema").get_by_role("row", name=re.compile("GENRES"))
        assert genres.locator("td").nth(1).inner_text() == "nullable categorical"
        title = page.locator("#dataset-items table.schema").get_by_role("row", name=re.compile("TITLE"))
        assert "textual" in title.inner_text()
        assert page.get_by_role("heading", name="Import a file").is_visible()
        assert page.get_by_label("File", exact=True).is_visible()  # an admin key may upload
        rows = page.locator("#import-jobs tbody tr")
        assert rows.count() == len(jobs)
        newest = jobs[-1]
        first = rows.first.inner_text()
        assert str(newest["id"]) in first and newest["dataset_type"] in first and "ACTIVE" in first
        tab.screenshot(f"data-{width}")
        if width == 1280:
            page.locator("#dataset-items summary").click()
            assert '"categorical": true' in page.locator("#dataset-items pre").inner_text()
            rows.first.get_by_role("link").click()
            page.wait_for_load_state("networkidle")
            assert page.get_by_role("heading", name=f"Import job {newest['id']}").is_visible()
            assert f"{newest['rows_loaded']:,}" in page.locator(".import-status").inner_text()
            assert page.locator(".import-status").get_attribute("hx-trigger") is None  # done: no polling
            tab.screenshot("data-import-job")
        tab.assert_clean()


def test_an_admin_uploads_new_interactions_and_sees_them_loaded(open_console, console_server) -> None:
    store = console_server.store
    group, group_id = _new_group(console_server)
    tab = open_console()
    _upload_in_browser(tab, group, "new-interactions.csv", NEW_ROWS)
    assert _wait_finished(tab) == "ACTIVE"
    status = tab.page.locator("#upload-result .import-status")
    text = status.inner_text()
    assert re.search(r"Rows read\s+3", text) and re.search(r"Rows loaded\s+3", text), text
    assert "new-interactions.csv" in text
    # the job's end reloads the datasets and the import jobs
    tab.page.locator("#import-jobs tbody tr").first.wait_for()
    assert "new-interactions.csv" in tab.page.locator("#import-jobs tbody tr").first.inner_text()
    tab.page.wait_for_function("() => document.querySelector('#dataset-interactions h3')?.innerText.includes('3 rows')")
    tab.screenshot("data-upload-done")
    assert store.count_interactions(group_id) == 3
    (job,) = store.list_import_jobs(group_id)
    assert (job["status"], job["source"], job["rows_loaded"], job["mode"]) == (
        "ACTIVE", "new-interactions.csv", 3, "incremental")
    assert progress_of(job) == {"stage": "write", "done": 0, "total": 3}  # its last progress, from the store
    assert not list((console_server.home / "uploads").glob("*new-interactions.csv"))  # the temporary copy is gone
    entries = [e for e in store.audit_entries(action="import.create", limit=50)
               if e["resource"] == f"dataset-groups/{group}/import-jobs/{job['id']}"]
    key_id = console_server.admin_key.split("_")[1]
    assert {(e["actor"], e["outcome"], e["status"]) for e in entries} == {(key_id, "ok", 202), (key_id, "ok", None)}
    accepted = next(e for e in entries if e["status"] == 202)["detail"]
    assert accepted["via"] == "console" and accepted["file"] == "new-interactions.csv"
    tab.assert_clean()


def test_the_status_polls_the_store_until_the_job_ends(open_console, console_server) -> None:
    store = console_server.store
    group, group_id = _new_group(console_server)
    job_id = record_import_job(store, group, "interactions", "slow.csv", "full")  # this process "runs" it
    store.set_import_progress(job_id, {"stage": "validate", "done": 0, "total": 1234})
    for width in (1280, 375):
        tab = open_console(width=width)
        tab.goto(f"/console/g/{group}/data/imports/{job_id}")
        status = tab.page.locator(".import-status")
        assert status.get_attribute("hx-trigger") == "every 1s"
        assert "Validating 1,234 rows" in status.inner_text()
        assert tab.page.locator("ol.stages li.done").inner_text() == "Read"
        assert tab.page.locator("ol.stages li[aria-current=step]").inner_text() == "Validate"
        tab.screenshot(f"data-import-running-{width}")
    store.fail_abandoned_job("import", job_id, "stopped by the test")
    tab.page.wait_for_selector(".import-status[data-status=CREATE_FAILED]", timeout=5_000)
    assert "stopped by the test" in tab.page.get_by_role("alert").inner_text()
    assert tab.page.locator(".import-status").get_attribute("hx-trigger") is None
    tab.assert_clean()


def test_a_bad_row_with_on_error_skip_is_listed_with_its_reason(open_console, console_server) -> None:
    store = console_server.store
    group, group_id = _new_group(console_server)
    tab = open_console()
    _upload_in_browser(tab, group, "with-a-bad-row.csv", BAD_ROW, on_error="skip")
    assert _wait_finished(tab) == "ACTIVE"
    text = tab.page.locator("#upload-result .import-status").inner_text()
    assert re.search(r"Rows loaded\s+2", text) and re.search(r"Rows rejected\s+1", text), text
    row = tab.page.locator("table.rejects tbody tr")
    assert row.count() == 1
    cells = row.locator("td").all_inner_texts()
    assert cells[:3] == ["3", "TIMESTAMP", "not-a-time"] and "not a number" in cells[3], cells
    assert "with-a-bad-row.csv" in tab.page.locator("table.rejects caption").inner_text()
    tab.screenshot("data-upload-skip")
    assert store.count_interactions(group_id) == 2
    tab.assert_clean()


def test_on_error_fail_changes_nothing(open_console, console_server) -> None:
    store = console_server.store
    group, group_id = _new_group(console_server)
    tab = open_console(width=375)
    _upload_in_browser(tab, group, "first.csv", NEW_ROWS)
    assert _wait_finished(tab) == "ACTIVE"
    _upload_in_browser(tab, group, "bad.csv", BAD_ROW, on_error="fail")
    assert _wait_finished(tab) == "CREATE_FAILED"
    alert = tab.page.locator("#upload-result").get_by_role("alert").inner_text()
    assert "nothing was changed" in alert and "bad.csv line 3, field TIMESTAMP" in alert, alert
    assert tab.page.locator("table.rejects tbody tr td").nth(1).inner_text() == "TIMESTAMP"
    tab.screenshot("data-upload-failed-375")
    assert store.count_interactions(group_id) == 3  # the first upload's rows, untouched
    assert [j["status"] for j in store.list_import_jobs(group_id)] == ["ACTIVE", "CREATE_FAILED"]
    tab.assert_clean()


def test_bad_input_is_a_400_naming_the_field(open_console, console_server, console_http) -> None:
    group, group_id = _new_group(console_server)
    path = f"/console/g/{group}/data/upload"
    good = {"dataset_type": "interactions", "mode": "full", "on_error": "fail"}
    csv = {"file": ("ok.csv", NEW_ROWS, "text/csv")}
    signed = console_http(console_server.admin_key)
    client = signed.client
    headers = {"X-CSRF-Token": signed.csrf_token, "HX-Request": "true"}
    cases = [
        ({}, good, "file"),
        ({"file": ("notes.docx", b"x", "application/octet-stream")}, good, "file"),
        (csv, good | {"dataset_type": "ratings"}, "dataset_type"),
        (csv, good | {"mode": "append"}, "mode"),
        (csv, good | {"on_error": "ignore"}, "on_error"),
        (csv, good | {"column_map": "userId"}, "column_map"),
    ]
    for files, data, field in cases:
        answer = client.post(path, files=files or {"other": ("", b"", "text/plain")}, data=data, headers=headers)
        assert answer.status_code == 400, (field, answer.text)
        assert f"<strong>{field}:</strong>" in answer.text and 'role="alert"' in answer.text
    plain = client.post(path, files=csv, data=good | {"column_map": "userId=USER_ID,broken",  # no htmx
                                                   "csrf_token": headers["X-CSRF-Token"]})
    assert plain.status_code == 400 and '<form class="stack upload"' in plain.text  # the form, message in it
    assert re.search(r'id="upload-result".*<strong>column_map:</strong> &#39;broken&#39; is not of the form',
                     plain.text, re.S)
    assert console_server.store.list_import_jobs(group_id) == []
    tab = open_console()
    tab.expected_statuses.add(400)
    tab.goto(f"/console/g/{group}/data")
    tab.page.get_by_label("File", exact=True).set_input_files({"name": "x.csv", "mimeType": "text/csv",
                                                               "buffer": NEW_ROWS})
    tab.page.get_by_label("Column map").fill("userId=USER_ID,broken")
    tab.page.get_by_role("button", name="Upload and import").click()
    alert = tab.page.locator("#upload-result").get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text().startswith("column_map: 'broken' is not of the form SOURCE=FIELD")
    tab.screenshot("data-upload-bad-map")
    # a file over the limit is stopped in the browser (the server's 413 stays the real check)
    tab.page.evaluate("document.querySelector('form.upload').setAttribute('data-max-bytes', '10')")
    tab.page.get_by_label("Column map").fill("")
    tab.page.get_by_role("button", name="Upload and import").click()
    tab.page.wait_for_function("() => document.querySelector('#upload-result').innerText.includes('bytes')")
    assert "the largest file this server takes is 10 bytes" in alert.inner_text()
    tab.assert_clean()
    assert console_server.store.list_import_jobs(group_id) == []


def test_read_and_write_keys_see_no_upload_form_and_the_server_refuses(open_console, console_server,
                                                                        console_http) -> None:
    movies = console_server.store.get_dataset_group("movies").id
    before = len(console_server.store.list_import_jobs(movies))
    tab = open_console(console_server.read_key, width=375)
    tab.problems.clear()  # signing in lands on the group's overview: another area's page, not this test's
    tab.goto("/console/g/movies/data")
    assert tab.page.get_by_label("File", exact=True).count() == 0
    assert tab.page.get_by_role("button", name="Upload and import").count() == 0
    assert "needs an admin key" in tab.page.locator("main").inner_text()
    tab.screenshot("data-read-key-375")
    tab.assert_clean()
    for key in (console_server.read_key, console_server.write_key):
        signed = console_http(key)
        client = signed.client
        assert "Upload and import" not in client.get("/console/g/movies/data").text
        token = signed.csrf_token
        answer = client.post("/console/g/movies/data/upload", data={"csrf_token": token, "dataset_type":
                             "interactions", "mode": "full", "on_error": "fail"},
                             files={"file": ("x.csv", NEW_ROWS, "text/csv")})
        assert answer.status_code == 403 and "needs role admin" in answer.text
    assert len(console_server.store.list_import_jobs(movies)) == before
    denied = [e for e in console_server.store.audit_entries(action="import.create", limit=50)
              if e["resource"] == "dataset-groups/movies/import-jobs" and e["outcome"] == "denied"]
    assert {e["detail"]["role"] for e in denied} >= {"read", "write"} and {e["status"] for e in denied} == {403}


def test_an_upload_without_the_csrf_token_is_refused(console_server, console_http) -> None:
    group, group_id = _new_group(console_server)
    signed = console_http(console_server.admin_key)
    client = signed.client
    answer = client.post(f"/console/g/{group}/data/upload", data={"dataset_type": "interactions"},
                         files={"file": ("x.csv", NEW_ROWS, "text/csv")})
    assert answer.status_code == 403 and "CSRF" in answer.text
    # a plain form post with the token works and lands on the job's page
    token = signed.csrf_token
    answer = client.post(f"/console/g/{group}/data/upload", files={"file": ("x.csv", NEW_ROWS, "text/csv")},
                         data={"csrf_token": token, "dataset_type": "interactions", "mode": "full",
                               "on_error": "fail"})
    assert answer.status_code == 303, answer.text
    job_page = answer.headers["location"]
    assert re.fullmatch(rf"/console/g/{group}/data/imports/\d+", job_page)
    deadline = time.monotonic() + 15
    while 'data-status="ACTIVE"' not in (text := client.get(job_page).text) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert 'data-status="ACTIVE"' in text
    assert client.get(f"/console/g/movies/data/imports/{job_page.rsplit('/', 1)[1]}").status_code == 404
    assert console_server.store.count_interactions(group_id) == 3
