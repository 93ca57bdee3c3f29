"""Secrets and data at rest through the CLI: the first admin key off a terminal, private store and artifact files,
credentials masked in import URLs, and ``recsmith audit list`` showing what the command line changed."""

from __future__ import annotations

import getpass
import json
import os
import pty
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import httpx

from recsmith.store.store import Store
from recsmith.testing import free_port


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _serve(home: Path, **streams: object) -> tuple[str, subprocess.Popen]:
    port = free_port()
    env = os.environ | {"RECSMITH_HOME": str(home)}
    env.pop("RECSMITH_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "recsmith", "serve", "--port", str(port)], env=env,
                               stdin=subprocess.DEVNULL, **streams)  # type: ignore[call-overload]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return url, process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server did not start (exit {process.poll()})")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_the_first_admin_key_off_a_terminal_goes_to_a_private_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    url, process = _serve(home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        path = Path(process.stdout.readline().strip())
        key = path.read_text().strip()
        assert path == (home / "first-admin-key").resolve() and _mode(path) == 0o600 and _mode(home) == 0o700
        assert key.startswith("rsk_")
        response = httpx.get(f"{url}/v1/dataset-groups/none/filters", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 404  # the real key: past auth, and the group does not exist
    finally:
        _stop(process)
    stdout, stderr = process.stdout.read(), process.stderr.read()
    assert key not in stdout and key not in stderr and key.rsplit("_", 1)[1] not in stdout + stderr
    assert str(path) in stderr and "readable by you only" in stderr
    store = Store(f"sqlite:///{home / 'recsmith.db'}")
    [entry] = store.audit_entries(action="key.create")
    assert entry["actor"].startswith("cli:") and entry["detail"]["key_id"] == key.split("_")[1]
    store.close()


def test_the_first_admin_key_on_a_terminal_is_printed_and_not_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    main, terminal = pty.openpty()
    url, process = _serve(home, stdout=terminal, stderr=terminal)
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while b"rsk_" not in seen.split(b"serving on")[0] and time.monotonic() < deadline:
            if select.select([main], [], [], 0.5)[0]:
                seen += os.read(main, 65536)
    finally:
        _stop(process)
        os.close(main)
    assert b"rsk_" in seen, seen.decode(errors="replace")
    assert not (home / "first-admin-key").exists()


def test_the_store_and_the_artifacts_are_private(cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = cli("datasets", "synthetic", "-g", "shop", "--users", 50, "--items", 30, "--interactions", 600, "--json")
    assert result.exit_code == 0, result.output
    result = cli("train", "-g", "shop", "--recipe", "popularity", "--no-metrics", "--json")
    assert result.exit_code == 0, result.output
    artifact = Path(json.loads(result.stdout)["artifact_uri"])
    assert _mode(home) == 0o700 and _mode(home / "artifacts") == 0o700 and _mode(artifact) == 0o700
    sqlite = Store(f"sqlite:///{home / 'private.db'}")  # a SQLite store's file and its WAL and shared memory
    sqlite.migrate()
    sqlite.audit("campaign.create", "x")
    files = [home / "private.db", home / "private.db-wal", home / "private.db-shm"]
    assert [(f.name, _mode(f)) for f in files] == [(f.name, 0o600) for f in files]
    sqlite.close()


def test_artifact_files_are_private(cli, tmp_path: Path) -> None:
    made = cli("datasets", "synthetic", "-g", "shop", "--users", 50, "--items", 30, "--interactions", 600)
    assert made.exit_code == 0
    result = cli("train", "-g", "shop", "--recipe", "popularity", "--no-metrics", "--json")
    artifact = Path(json.loads(result.stdout)["artifact_uri"])
    files = [f for f in artifact.rglob("*") if f.is_file()]
    assert files and {_mode(f) for f in files} == {0o600}


def test_credentials_in_import_urls_are_masked(cli, db_url: str, tmp_path: Path) -> None:
    with fsspec.open("memory://reader:Memory-S3cret@bucket/events.csv", "w") as handle:
        handle.write("USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\nu2,i2,2\n")
    done = cli("import", "interactions", "memory://reader:Memory-S3cret@bucket/events.csv", "-g", "shop", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["source"] == "memory://reader:***@bucket/events.csv"
    failed = cli("import", "interactions", "https://alice:Http-S3cret@127.0.0.1:9/e.csv?X-Amz-Signature=Sig-S3cret",
                 "-g", "shop")
    assert failed.exit_code == 1 and "***" in failed.output
    sql = cli("import", "interactions", "--sql", "SELECT 1", "--db-url",
              "postgresql+psycopg://bob:Db-S3cret@127.0.0.1:9/x", "-g", "shop")
    assert sql.exit_code == 1 and "bob:***@127.0.0.1" in sql.output
    store = Store(db_url)
    jobs = store.list_import_jobs(store.get_dataset_group("shop").id)
    store.close()
    stored = json.dumps(jobs, default=str) + done.output + failed.output + sql.output
    assert "S3cret" not in stored
    assert [job["source"] for job in jobs][:2] == ["memory://reader:***@bucket/events.csv",
                                                  "https://alice:***@127.0.0.1:9/e.csv?X-Amz-Signature=***"]
    assert jobs[1]["status"] == "CREATE_FAILED" and jobs[1]["error"]


def test_audit_list_shows_what_the_command_line_changed(cli) -> None:
    made = cli("datasets", "synthetic", "-g", "shop", "--users", 60, "--items", 40, "--interactions", 900)
    assert made.exit_code == 0
    version = json.loads(cli("train", "-g", "shop", "--recipe", "popularity", "--no-metrics", "--json").stdout)["id"]
    assert cli("campaign", "create", "-g", "shop", "--name", "home", "--solution-version", version).exit_code == 0
    assert cli("campaign", "create", "-g", "shop", "--name", "home", "--solution-version", version).exit_code == 1
    assert cli("filter", "create", "-g", "shop", "--name", "f", "--expression",  # the group has no items schema
               'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("x")').exit_code == 0
    assert cli("filter", "delete", "f", "-g", "shop").exit_code == 0
    key_id = json.loads(cli("keys", "create", "--role", "read", "-g", "shop", "--json").stdout)["key_id"]
    assert cli("keys", "delete", key_id).exit_code == 0
    assert "give the key's role" in cli("keys", "create").output  # neither: refused, nothing made
    assert "contradict" in cli("keys", "create", "--admin", "--role", "read").output
    admin_id = json.loads(cli("keys", "create", "--admin", "--json").stdout)["key_id"]
    assert json.loads(cli("keys", "list", "--json").stdout) == [
        {**json.loads(cli("keys", "list", "--json").stdout)[0], "key_id": admin_id, "role": "admin"}]
    assert cli("users", "delete", "someone@example.com", "-g", "shop").exit_code == 0
    listed = cli("audit", "list", "--json")
    assert listed.exit_code == 0, listed.output
    entries = json.loads(listed.stdout)[::-1]
    assert [(e["action"], e["resource"], e["outcome"]) for e in entries] == [
        ("import.create", "dataset-groups/shop/import-jobs/1", "ok"),
        ("solution_version.create", f"dataset-groups/shop/solutions/popularity/versions/{version}", "ok"),
        ("campaign.create", "dataset-groups/shop/campaigns/home", "ok"),
        ("campaign.create", "dataset-groups/shop/campaigns/home", "failed"),
        ("filter.create", "dataset-groups/shop/filters/f", "ok"),
        ("filter.delete", "dataset-groups/shop/filters/f", "ok"),
        ("key.create", "keys", "ok"),
        ("key.delete", f"keys/{key_id}", "ok"),
        ("key.create", "keys", "ok"),
        ("user.delete", "dataset-groups/shop/users/{user_id}", "ok"),
    ]
    assert {e["actor"] for e in entries} == {f"cli:{getpass.getuser()}"}
    assert entries[6]["detail"]["key_id"] == key_id and "rsk_" not in listed.stdout
    assert "someone" not in listed.stdout
    assert len(json.loads(cli("audit", "list", "--since", "1h", "--json").stdout)) == len(entries)
    assert json.loads(cli("audit", "list", "--since", "2999-01-01T00:00:00+00:00", "--json").stdout) == []
    assert [e["action"] for e in json.loads(cli("audit", "list", "--action", "key.", "--json").stdout)] == [
        "key.create", "key.delete", "key.create"]
    table = cli("audit", "list", "--limit", "3")
    assert table.exit_code == 0 and "user.delete" in table.stdout and "import.create" not in table.stdout
    bad = cli("audit", "list", "--since", "last week")
    assert bad.exit_code == 1 and "invalid time 'last week'" in bad.output


def test_schedule_decisions_and_their_trainings_are_the_schedulers(cli) -> None:
    assert cli("datasets", "synthetic", "-g", "shop", "--users", 80, "--items", 40, "--interactions", 1500,
               "--seed", 2).exit_code == 0
    version = json.loads(cli("train", "-g", "shop", "--recipe", "popularity", "--json").stdout)["id"]
    assert cli("campaign", "create", "-g", "shop", "--name", "home", "--solution-version", version).exit_code == 0
    result = cli("schedule", "run", "-g", "shop", "--solution", "popularity", "--once", "--json")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout.splitlines()[0])
    entries = json.loads(cli("audit", "list", "--since", "10m", "--json").stdout)
    scheduler = [(e["action"], e["resource"]) for e in entries[::-1] if e["actor"] == "scheduler"]
    action = {"switched": "schedule.switch", "kept": "schedule.keep"}[decision["decision"]]
    assert scheduler == [
        ("solution_version.create",
         f"dataset-groups/shop/solutions/popularity/versions/{decision['candidate_version_id']}"),
        (action, "dataset-groups/shop/solutions/popularity"),
    ]
    assert entries[0]["detail"]["campaigns"] == ["home"] and entries[0]["detail"]["decision_id"] == decision["id"]
