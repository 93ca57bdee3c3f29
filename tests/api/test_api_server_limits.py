"""The server process under slow and many clients: header and body timeouts, the per-worker connection limit,
balanced workers and the metrics folders, against a real ``recsmith serve`` on 127.0.0.1 with raw sockets."""

from __future__ import annotations

import json
import os
import resource
import select
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from recsmith.testing import free_port

PARTIAL_HEADERS = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def connect(url: str) -> socket.socket:
    return socket.create_connection(address(url), timeout=10)


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float | None]:
    """Everything the server sends until it closes the connection; and the seconds that took (None: still open
    after ``limit``)."""
    started = time.monotonic()
    received = b""
    while time.monotonic() - started < limit:
        ready, _, _ = select.select([sock], [], [], max(0.0, limit - (time.monotonic() - started)))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received, time.monotonic() - started
        if not chunk:
            return received, time.monotonic() - started
        received += chunk
    return received, None


def error_response(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def one_request(sock: socket.socket) -> bytes:
    """A complete keep-alive ``GET /health`` on ``sock``; the response."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    received = b""
    while b'"ok"}' not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    return received


@pytest.fixture
def serve(serve_process, tmp_path):
    """``serve(workers, **settings)`` starts ``recsmith serve`` on an empty home with RECSMITH_* settings."""
    start_server, stop_server = serve_process
    started = []

    def run(workers: int, **settings: object) -> tuple[str, subprocess.Popen]:
        env = {f"RECSMITH_{name.upper()}": str(value) for name, value in settings.items()}
        url, process = start_server(tmp_path / f"home{len(started)}", workers=workers, env=env)
        started.append(process)
        return url, process

    yield run
    for process in started:
        stop_server(process)


@pytest.mark.parametrize("workers", [1, 2])
def test_half_sent_requests_are_closed_after_the_timeouts(serve, workers):
    url, _ = serve(workers, header_timeout_seconds=1, body_timeout_seconds=1)
    silent, partial, second, body = (connect(url) for _ in range(4))
    opened = time.monotonic()
    partial.sendall(PARTIAL_HEADERS)
    one_request(second)
    body.sendall(b"POST /v1/dataset-groups/g/campaigns/c/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user_id\":")
    time.sleep(0.6)
    second.sendall(PARTIAL_HEADERS)  # the next request on a keep-alive connection: its own 1 s from here
    second_sent = time.monotonic()

    raw, seconds = read_until_closed(silent, 5)
    assert seconds is not None and raw == b""  # a connection that sent nothing is closed without an answer
    assert 0.8 <= time.monotonic() - opened <= 4
    raw, seconds = read_until_closed(partial, 5)
    assert seconds is not None
    status, headers, answer = error_response(raw)
    assert status == 408 and headers["connection"] == "close"
    assert answer == {"error": {"status": 408, "message": answer["error"]["message"]}}
    assert "RECSMITH_HEADER_TIMEOUT_SECONDS" in answer["error"]["message"]
    raw, seconds = read_until_closed(second, 5)
    assert seconds is not None and error_response(raw)[0] == 408
    assert time.monotonic() - second_sent >= 0.8
    # a body that stops half-way: closed after the body timeout (before uvicorn's 5 s keep-alive would)
    raw, seconds = read_until_closed(body, 5)
    assert seconds is not None and time.monotonic() - opened <= 4
    for sock in (silent, partial, second, body):
        sock.close()
    assert httpx.get(f"{url}/health").status_code == 200


BODY_PENDING = (b"POST /v1/dataset-groups/g/campaigns/c/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")


@pytest.mark.parametrize("workers", [1, 2])
def test_connections_over_the_limit_get_a_503_and_are_closed(serve, workers):
    url, _ = serve(workers, max_connections=3, body_timeout_seconds=60)
    held = []
    for _ in range(3 * workers):  # fills every worker (the balance sends each new one to the emptiest) with
        sock = connect(url)       # requests in flight: nothing to make room with
        sock.sendall(BODY_PENDING)
        held.append(sock)
        time.sleep(0.15)
    extra = connect(url)
    extra.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    raw, seconds = read_until_closed(extra, 5)
    assert seconds is not None, "the refused connection was not closed"
    status, headers, answer = error_response(raw)
    assert status == 503 and headers["connection"] == "close" and headers["retry-after"] == "1"
    assert answer["error"]["status"] == 503 and "3 connections per worker" in answer["error"]["message"]
    for sock in held:
        sock.close()
    time.sleep(0.3)
    assert httpx.get(f"{url}/health").status_code == 200


def test_at_the_limit_the_slowest_waiting_connection_makes_room(serve):
    url, _ = serve(1, max_connections=3, header_timeout_seconds=60)
    waiting = []
    for _ in range(3):
        sock = connect(url)
        sock.sendall(PARTIAL_HEADERS)
        waiting.append(sock)
        time.sleep(0.1)
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200  # a 4th connection, served
    _, seconds = read_until_closed(waiting[0], 3)
    assert seconds is not None  # the oldest half-sent one was closed for it
    assert [read_until_closed(sock, 0.3)[1] for sock in waiting[1:]] == [None, None]
    for sock in waiting:
        sock.close()


def test_slow_connections_beyond_the_limit_do_not_lock_normal_clients_out(serve):
    url, _ = serve(2, max_connections=100, header_timeout_seconds=1)
    slow = []
    opened = time.monotonic()
    for _ in range(600):  # three times what the two workers hold
        sock = connect(url)
        sock.sendall(PARTIAL_HEADERS)
        slow.append(sock)
    started = time.monotonic()
    statuses = [httpx.get(f"{url}/health", timeout=5).status_code for _ in range(20)]
    assert statuses == [200] * 20
    assert time.monotonic() - started < 5
    with selectors.DefaultSelector() as selector:  # the queue of slow ones is taken and closed at full speed
        for sock in slow:
            selector.register(sock, selectors.EVENT_READ)
        pending = set(slow)
        while pending and time.monotonic() - opened < 8:
            for key, _ in selector.select(0.5):
                pending.discard(key.fileobj)
                selector.unregister(key.fileobj)
    assert not pending, f"{len(pending)} of 600 slow connections still open after 8 s"
    for sock in slow:
        sock.close()


def test_normal_requests_succeed_while_250_slow_connections_are_open(serve):
    url, _ = serve(2, header_timeout_seconds=60)
    slow = []
    for _ in range(250):
        sock = connect(url)
        sock.sendall(PARTIAL_HEADERS)
        slow.append(sock)
    started = time.monotonic()
    with httpx.Client(timeout=5) as client:  # one keep-alive connection, and a new connection each
        statuses = [client.get(f"{url}/health").status_code for _ in range(20)]
    statuses += [httpx.get(f"{url}/health", timeout=5).status_code for _ in range(20)]
    assert statuses == [200] * 40
    assert time.monotonic() - started < 15
    still_open = sum(not select.select([sock], [], [], 0)[0] for sock in slow)
    assert still_open == 250  # below their timeout nothing was closed: the normal requests got through beside them
    for sock in slow:
        sock.close()


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def connections_per_worker(server_pid: int, port: int) -> dict[int, int]:
    """How many established connections to ``port`` each child process of the server holds (from /proc)."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # local port, ESTABLISHED
                inodes[fields[9]] = 0
    counts = {}
    for child in _children(server_pid):
        held = 0
        for fd in Path(f"/proc/{child}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            held += target.startswith("socket:[") and target[8:-1] in inodes
        counts[child] = held
    return {pid: n for pid, n in counts.items() if n}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_keep_alive_connections_are_balanced_over_the_workers(serve):
    url, process = serve(2)
    port = address(url)[1]
    deadline = time.monotonic() + 30  # /ready answered from one worker; wait until the other accepts too
    both = False
    while not both and time.monotonic() < deadline:
        pair = [connect(url) for _ in range(2)]
        for sock in pair:
            one_request(sock)
        both = len(connections_per_worker(process.pid, port)) == 2
        for sock in pair:
            sock.close()
        time.sleep(0.1)
    time.sleep(0.5)
    # the kernel's SO_REUSEPORT hash split 8 connections 4/4 in about one round of four; three rounds in a row
    for _ in range(3):
        socks = []
        for _ in range(8):
            sock = connect(url)
            one_request(sock)
            socks.append(sock)
        counts = connections_per_worker(process.pid, port)
        assert sorted(counts.values()) == [4, 4], counts
        for sock in socks:
            sock.close()
        time.sleep(0.5)


def _open_files_limit(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if x.startswith("Max open files"))
    return int(line.split()[3])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(("soft", "hard"), [(256, None), (400, 400)])
def test_the_file_descriptor_limit_is_raised_to_the_hard_limit_and_bounds_the_connections(tmp_path, soft, hard):
    own_soft, own_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = hard or own_hard
    if own_hard != resource.RLIM_INFINITY and own_hard < hard:
        pytest.skip(f"the hard file-descriptor limit here is {own_hard}")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "recsmith", "serve", "--port", str(port), "--workers", "2"],
        env=os.environ | {"RECSMITH_HOME": str(tmp_path / "home")}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        limits = {_open_files_limit(pid) for pid in [process.pid, *_children(process.pid)]}
        assert limits == {hard}  # the server and its workers, soft limit raised to the hard one
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    said = " ".join(stderr.split())
    per_worker = min(1000, hard - 200)
    assert f"up to {per_worker} connections per worker (file-descriptor limit {hard} per process)" in said


# ------------------------------------------------------------------------------------------ metrics folders
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _own_folders(tmp: Path, pid: int) -> list[Path]:
    return sorted(tmp.glob(f"recsmith-metrics-{pid}-*"))


def test_metrics_folders_of_dead_servers_are_removed_and_the_own_one_on_exit(serve_process, tmp_path):
    start_server, stop_server = serve_process
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = tmp / f"recsmith-metrics-{_dead_pid()}-old"
    alive = tmp / f"recsmith-metrics-{os.getpid()}-mine"  # this test's own process: alive
    unnamed = tmp / "recsmith-metrics-abc123"  # no pid: an older version's, left alone
    for folder in (dead, alive, unnamed):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")
    env = {"TMPDIR": str(tmp)}

    url, first = start_server(tmp_path / "home", workers=2, env=env)
    assert not dead.exists() and alive.exists() and unnamed.exists()
    assert len(_own_folders(tmp, first.pid)) == 1
    first.send_signal(signal.SIGKILL)  # a killed server leaves its folder, and its workers stop by themselves
    first.wait()
    assert len(_own_folders(tmp, first.pid)) == 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health", timeout=1)
        except httpx.TransportError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the workers of the killed server kept serving")

    _, second = start_server(tmp_path / "home", workers=1, env=env)
    assert _own_folders(tmp, first.pid) == []  # the next start removed it
    assert len(_own_folders(tmp, second.pid)) == 1
    stop_server(second)
    assert second.returncode == 0
    assert _own_folders(tmp, second.pid) == []  # a clean exit removes its own
    assert alive.exists() and unnamed.exists()
