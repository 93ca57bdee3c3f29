"""Crashes leave no debris: a ``recsmith train`` or ``recsmith import`` killed with SIGKILL leaves its job
unfinished and its temporary artifact folder behind; the next job marks the job failed, naming the process that
is gone, and removes the folder. Jobs whose process still runs are left alone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from recsmith.api.app import create_app
from recsmith.atomic import ProcessOwner, current_owner
from recsmith.datasets.synthetic import synthetic_frame
from recsmith.jobs.runs import ACTIVE, FAILED, IN_PROGRESS, fail_abandoned_jobs, owner_columns
from recsmith.settings import Settings
from recsmith.store.store import Store

GROUP = "shop"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _env(home: Path) -> dict[str, str]:
    env = os.environ | {"RECSMITH_HOME": str(home)}
    env.pop("RECSMITH_DATABASE_URL", None)
    env.pop("RECSMITH_ARTIFACT_DIR", None)
    return env


def recsmith(home: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "recsmith", *args], env=_env(home), capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture
def home_store(home: Path) -> Iterator[Store]:
    opened = Store.from_settings(Settings(home=home))
    opened.migrate()
    yield opened
    opened.close()


def wait_for(condition: Callable[[], Any], process: subprocess.Popen, what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the process ended ({process.returncode}) before {what}: "
                                 f"{process.stderr.read()[-3000:] if process.stderr else ''}")
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def orphan_folder(artifacts: Path, home: Path) -> Path:
    """A real writer killed in the middle of an atomic artifact write: its temporary folder stays behind."""
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from recsmith.atomic import atomic_folder
        with atomic_folder(Path({str(artifacts)!r}) / "solution-version-99") as tmp:
            (tmp / "arrays.npy").write_bytes(os.urandom(1 << 20))
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    process = subprocess.run([sys.executable, "-c", script], env=_env(home), capture_output=True, timeout=60)
    assert process.returncode == -signal.SIGKILL
    left = [path for path in artifacts.iterdir() if path.name.startswith(".solution-version-99.")]
    assert len(left) == 1 and (left[0] / "arrays.npy").stat().st_size == 1 << 20
    return left[0]


def test_a_killed_training_is_marked_failed_and_its_temp_folder_removed(home: Path, tmp_path: Path,
                                                                       home_store: Store) -> None:
    store = home_store
    data = tmp_path / "interactions.csv"
    synthetic_frame(500, 200, 20_000, seed=2).to_csv(data, index=False)
    recsmith(home, "import", "interactions", str(data), "-g", GROUP)
    group_id = store.get_dataset_group(GROUP).id
    # ALS for ten million epochs: still fitting when it is killed
    training = subprocess.Popen(
        [sys.executable, "-m", "recsmith", "train", "-g", GROUP, "--recipe", "als", "-p", "epochs=10000000",
         "--no-metrics"], env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        running = wait_for(lambda: [v for v in store.list_solution_versions(group_id) if v["status"] == IN_PROGRESS],
                           training, "the training to start")
        version = running[0]
        assert (version["owner_pid"], version["owner_host"]) == (training.pid, socket.gethostname())
        assert version["owner_started"] is not None

        # a job started while the training runs leaves it alone: its process is alive
        users = tmp_path / "users.csv"
        users.write_text("USER_ID\nu1\nu2\n")
        recsmith(home, "import", "users", str(users), "-g", GROUP)
        assert store.get_solution_version(version["id"])["status"] == IN_PROGRESS

        time.sleep(0.5)
        kill(training)
    finally:
        if training.poll() is None:
            kill(training)
    assert store.get_solution_version(version["id"])["status"] == IN_PROGRESS  # the debris
    artifacts = home / "artifacts"
    orphan = orphan_folder(artifacts, home)

    recsmith(home, "train", "-g", GROUP, "--recipe", "popularity", "--no-metrics")
    failed = store.get_solution_version(version["id"])
    assert failed["status"] == FAILED and failed["finished_at"] is not None
    assert f"the process running it (pid {training.pid} on host {socket.gethostname()}) is gone" in failed["error"]
    assert not orphan.exists()
    newest = store.list_solution_versions(group_id)[-1]
    assert newest["status"] == ACTIVE and newest["id"] != version["id"]
    assert sorted(p.name for p in artifacts.iterdir()) == [f"solution-version-{newest['id']}"]


@pytest.mark.parametrize("next_command", ["recsmith import", "server start"])
def test_a_killed_import_is_marked_failed_and_loaded_nothing(home: Path, tmp_path: Path, home_store: Store,
                                                             next_command: str) -> None:
    store = home_store
    data = tmp_path / "big.csv"
    synthetic_frame(20_000, 5_000, 600_000, seed=4).to_csv(data, index=False)
    importing = subprocess.Popen([sys.executable, "-m", "recsmith", "import", "interactions", str(data), "-g", GROUP],
                                 env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def running_job() -> dict[str, Any] | None:
        groups = [g for g in store.list_dataset_groups() if g.name == GROUP]
        jobs = store.list_import_jobs(groups[0].id) if groups else []
        return jobs[0] if jobs else None

    try:
        job = wait_for(running_job, importing, "the import job to start")
        kill(importing)
    finally:
        if importing.poll() is None:
            kill(importing)
    assert job["owner_pid"] == importing.pid
    assert store.get_import_job(job["id"])["status"] == IN_PROGRESS  # the debris

    small = tmp_path / "small.csv"
    synthetic_frame(50, 20, 300, seed=1).to_csv(small, index=False)
    if next_command == "server start":
        with TestClient(create_app(Settings(home=home))) as client:
            client.get("/health")
        assert store.get_import_job(job["id"])["status"] == FAILED
    recsmith(home, "import", "interactions", str(small), "-g", GROUP)
    failed = store.get_import_job(job["id"])
    assert failed["status"] == FAILED and failed["rows_loaded"] == 0 and failed["finished_at"] is not None
    assert failed["report"] is None or failed["report"]["status"] == FAILED
    assert f"the process running it (pid {importing.pid} on host {socket.gethostname()}) is gone" in failed["error"]
    jobs = store.list_import_jobs(store.get_dataset_group(GROUP).id)
    assert [j["status"] for j in jobs] == [FAILED, ACTIVE]
    assert store.count_interactions(store.get_dataset_group(GROUP).id) == jobs[1]["rows_loaded"]


def test_a_process_is_gone_when_its_pid_ended_or_was_reused(tmp_path: Path) -> None:
    me = current_owner()
    assert not me.is_gone()
    if me.started is not None:  # /proc: a pid now running a process started at another time is a reuse
        assert ProcessOwner(me.host, me.pid, me.started - 10).is_gone()
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert ProcessOwner(me.host, ended.pid, None).is_gone()
    assert not ProcessOwner("another-host.example", ended.pid, None).is_gone()  # cannot be checked from here


def test_on_each_backend_only_jobs_of_gone_processes_on_this_host_are_failed(store: Store) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    here = socket.gethostname()
    group = store.create_dataset_group(GROUP)
    solution = store.get_or_create_solution(group.id, "pop", "popularity", {}, {})
    owners = {"gone": owner_columns(ProcessOwner(here, ended.pid, None)), "alive": owner_columns(),
              "elsewhere": owner_columns(ProcessOwner("another-host.example", ended.pid, None))}
    jobs = {name: store.create_import_job(group.id, "interactions", "x.csv", "full", owner=owner)
            for name, owner in owners.items()}
    versions = {name: store.create_solution_version(solution["id"], {}, {}, owner=owner)
                for name, owner in owners.items()}
    store.update_solution_version(versions["gone"], status=IN_PROGRESS)
    legacy = store.create_import_job(group.id, "interactions", "old.csv", "full")  # recorded before owners

    lines = fail_abandoned_jobs(store)
    assert len(lines) == 2 and all(f"pid {ended.pid} on host {here}" in line for line in lines)
    assert store.get_import_job(jobs["gone"])["status"] == FAILED
    assert store.get_solution_version(versions["gone"])["status"] == FAILED
    assert f"pid {ended.pid}" in store.get_solution_version(versions["gone"])["error"]
    for name in ("alive", "elsewhere"):
        assert store.get_import_job(jobs[name])["status"] == IN_PROGRESS
        assert store.get_solution_version(versions[name])["status"] == "CREATE_PENDING"
    assert store.get_import_job(legacy)["status"] == IN_PROGRESS
    assert fail_abandoned_jobs(store) == []  # done once


@pytest.mark.slow  # about 50 s on a shared 2-core machine: EASE's fit comes first
def test_a_training_killed_while_saving_leaves_a_temp_folder_the_next_job_removes(home: Path, tmp_path: Path,
                                                                                   home_store: Store) -> None:
    store = home_store
    data = tmp_path / "interactions.csv"
    synthetic_frame(2000, 3000, 40_000, seed=6).to_csv(data, index=False)
    recsmith(home, "import", "interactions", str(data), "-g", GROUP)
    artifacts = home / "artifacts"
    training = subprocess.Popen(  # EASE on 3,000 items: a 36 MB dense matrix to write and fsync
        [sys.executable, "-m", "recsmith", "train", "-g", GROUP, "--recipe", "ease", "--no-metrics"],
        env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def temp_folder() -> list[Path]:
        try:
            return [p for p in artifacts.iterdir() if p.name.startswith(".solution-version-")]
        except FileNotFoundError:
            return []

    try:
        deadline = time.monotonic() + 180
        while not temp_folder() and training.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        kill(training)
    finally:
        if training.poll() is None:
            kill(training)
    left = temp_folder()
    if not left:
        pytest.skip("the save finished before the kill landed (a machine too fast for this test)")
    version = store.list_solution_versions(store.get_dataset_group(GROUP).id)[0]
    assert version["status"] == IN_PROGRESS and version["owner_pid"] == training.pid

    recsmith(home, "train", "-g", GROUP, "--recipe", "popularity", "--no-metrics")
    assert store.get_solution_version(version["id"])["status"] == FAILED
    assert not any(path.exists() for path in left)
    assert not (artifacts / f"solution-version-{version['id']}").exists()
    assert [p.name for p in artifacts.iterdir()] == [f"solution-version-{version['id'] + 1}"]
