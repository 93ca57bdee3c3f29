"""Denial of service: normal-request latency while each of four attacks runs, against a real server on loopback.

Usage::

    python benchmarks/abuse.py                       # the issue's sizes; prints a table
    python benchmarks/abuse.py --check --out abuse.json   # exit 1 when a target is missed
    python benchmarks/abuse.py --quick               # small sizes, short phases: a check that it runs
    python benchmarks/abuse.py --server-nofile 1024 --slow-connections 2200   # the issue's ulimit case

Setup (a temporary ``RECSMITH_HOME`` unless ``--home``): ``serve_load.setup_small``, i.e. the bundled
ml-latest-small as group ``movies`` with an ``item-knn`` campaign ``knn``, a filter ``genre``
(``INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)``), an admin key and a read key. Then ``recsmith serve --workers
2`` on 127.0.0.1 (nothing else is contacted).

A normal client sends recommendation requests with the read key on one keep-alive connection, one after another,
for the whole run; its latencies are split by phase, and during each phase a second client sends a request on a
new connection every 0.2 s ("new connections ok/failed": a server out of connections fails those first). Phases:

- baseline (``--baseline-seconds``);
- (a) ``--unauthenticated`` (10,000) requests without a key to random groups
  ``POST /v1/dataset-groups/g<random>/campaigns/c/recommendations``, then ``/metrics``' body size and scrape time;
- (b) ``--slow-connections`` (1,000) connections that send half a request and stop, held up to
  ``--slow-seconds`` (default: the header timeout + 5 s); reports how many the server had closed by then;
- (c) ``--filter-requests`` (1,000) requests with the read key, each with its own ``--filter-values`` (50)
  distinct values for ``$GENRE``; each worker's RSS before and after;
- (d) ``--big-bodies`` (200) unauthenticated 1 MiB bodies.

Targets: normal p99 during each attack <= 5x the baseline's; ``/metrics`` < 200 KB after (a); every worker's RSS
within +-10 % after (c). The attacks run from ``--attack-threads`` threads, each loop is bounded and every phase
has a time limit, so the script stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import resource
import selectors
import shutil
import socket
import statistics
import string
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from serve_load import home_env, load_state, read_catalogue, recsmith_command, serve, setup_small, tree_cpu

HOST = "127.0.0.1"
PATH = "/v1/dataset-groups/movies/campaigns/knn/recommendations"
P99_RATIO_TARGET = 5.0
METRICS_BYTES_TARGET = 200_000
RSS_TOLERANCE = 0.10
MIB = 1 << 20
FULL = {"baseline_seconds": 10.0, "unauthenticated": 10_000, "slow_connections": 1_000, "filter_requests": 1_000,
        "big_bodies": 200, "attack_threads": 8, "phase_limit": 300.0}
QUICK = {"baseline_seconds": 3.0, "unauthenticated": 300, "slow_connections": 100, "header_timeout": 2.0,
         "filter_requests": 40, "big_bodies": 10, "attack_threads": 4, "phase_limit": 60.0}


# ---------------------------------------------------------------------------------------------- helpers
def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def worker_rss(server_pid: int) -> dict[int, int]:
    """RSS of each worker (the server's descendants over 50 MB: a worker imports numpy, FastAPI and a model)."""
    sizes = {pid: rss_bytes(pid) for pid in tree_cpu(server_pid) if pid != server_pid}
    return {pid: size for pid, size in sizes.items() if size and size > 50 * MIB}


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
            headers: dict[str, str]) -> tuple[int, bytes]:
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def raise_own_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


# ------------------------------------------------------------------------------------------ normal client
@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    fresh_ok: int = 0
    fresh_failed: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"phase": self.name, "requests": len(self.latencies_ms), "errors": self.errors,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "p50_ms": percentile(self.latencies_ms, 50), "p99_ms": percentile(self.latencies_ms, 99),
                "fresh_connections_ok": self.fresh_ok, "fresh_connections_failed": self.fresh_failed,
                "seconds": round(self.seconds, 2), **self.extra}


class NormalClient(threading.Thread):
    """Normal recommendation requests on one keep-alive connection, filed under the current phase."""

    def __init__(self, port: int, bodies: list[bytes], key: str) -> None:
        super().__init__(daemon=True)
        self.port, self.bodies, self.key = port, bodies, key
        self.phase: Phase | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        rng = random.Random(1)
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        while not self.stopping.is_set():
            phase = self.phase
            sent = time.perf_counter()
            try:
                status, _ = request(conn, "POST", PATH, rng.choice(self.bodies), headers)
            except (OSError, http.client.HTTPException):
                if phase is not None:
                    phase.errors += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
                time.sleep(0.01)
                continue
            if phase is not None:
                phase.latencies_ms.append(1000 * (time.perf_counter() - sent))
                phase.statuses[status] = phase.statuses.get(status, 0) + 1
                if status != 200:
                    phase.errors += 1
        conn.close()


def fresh_probe(port: int, body: bytes, key: str, phase: Phase, done: threading.Event) -> None:
    """Normal requests, each on a new connection, every 0.2 s until ``done`` (at most 1,000)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for _ in range(1000):
        if done.wait(0.2):
            break
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            status, _ = request(conn, "POST", PATH, body, headers)
            if status == 200:
                phase.fresh_ok += 1
            else:
                phase.fresh_failed += 1
        except (OSError, http.client.HTTPException):
            phase.fresh_failed += 1
        finally:
            conn.close()


def in_threads(count: int, threads: int, task: Callable[[int, http.client.HTTPConnection], None], port: int,
               limit: float) -> tuple[int, float]:
    """Run ``task(i, conn)`` for i in range(count) over ``threads`` keep-alive connections, within ``limit``
    seconds. Returns (tasks done, seconds)."""
    done = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + limit
    started = time.perf_counter()

    def work(offset: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        for i in range(offset, count, threads):
            if time.monotonic() > deadline:
                break
            try:
                task(i, conn)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
            with lock:
                done[0] += 1
        conn.close()

    pool = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(max(0.0, deadline - time.monotonic()) + 5)
    return done[0], time.perf_counter() - started


# ------------------------------------------------------------------------------------------------ attacks
def scrape(port: int, key: str) -> tuple[int, float]:
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    started = time.perf_counter()
    try:
        _, body = request(conn, "GET", "/metrics", None, {"Authorization": f"Bearer {key}"})
    finally:
        conn.close()
    return len(body), time.perf_counter() - started


def attack_unauthenticated(port: int, args: argparse.Namespace, phase: Phase, admin_key: str) -> None:
    size, seconds = scrape(port, admin_key)
    phase.extra.update(metrics_bytes_before=size, metrics_scrape_s_before=round(seconds, 3))
    statuses: dict[int, int] = {}
    body = json.dumps({"user_id": "u1", "num_results": 10}).encode()

    def task(i: int, conn: http.client.HTTPConnection) -> None:
        group = "g" + "".join(random.choices(string.ascii_lowercase + string.digits, k=12))
        status, _ = request(conn, "POST", f"/v1/dataset-groups/{group}/campaigns/c/recommendations", body,
                            {"Content-Type": "application/json"})
        statuses[status] = statuses.get(status, 0) + 1

    done, seconds = in_threads(args.unauthenticated, args.attack_threads, task, port, args.phase_limit)
    size, scrape_s = scrape(port, admin_key)
    phase.extra.update(attack_requests=done, attack_seconds=round(seconds, 2),
                       attack_statuses={str(k): v for k, v in sorted(statuses.items())},
                       metrics_bytes_after=size, metrics_scrape_s_after=round(scrape_s, 3))


def attack_slow(port: int, args: argparse.Namespace, phase: Phase) -> None:
    partial = b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-a: "
    socks: list[socket.socket] = []
    refused = 0
    started = time.perf_counter()
    for _ in range(args.slow_connections):
        try:
            sock = socket.create_connection((HOST, port), timeout=2)
            sock.sendall(partial)
            socks.append(sock)
        except OSError:
            refused += 1
    opened_s = time.perf_counter() - started
    hold = args.slow_seconds
    closed_at: dict[int, float] = {}
    deadline = time.perf_counter() + hold
    with selectors.DefaultSelector() as selector:  # epoll: select() cannot watch descriptors over 1023
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while time.perf_counter() < deadline and len(closed_at) < len(socks):
            for key, _ in selector.select(min(0.5, max(0.0, deadline - time.perf_counter()))):
                sock = key.fileobj
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                if not data or b"\r\n\r\n" in data:
                    closed_at[sock.fileno()] = time.perf_counter() - started
                    selector.unregister(sock)
    for sock in socks:
        sock.close()
    times = sorted(closed_at.values())
    phase.extra.update(slow_opened=len(socks), slow_failed_to_open=refused, slow_open_s=round(opened_s, 2),
                       slow_held_s=hold, slow_closed_by_server=len(times),
                       slow_closed_median_s=round(statistics.median(times), 2) if times else None)


def attack_filters(port: int, args: argparse.Namespace, phase: Phase, read_key: str, users: list[str],
                   genres: list[str], server_pid: int) -> None:
    before = worker_rss(server_pid)
    statuses: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {read_key}", "Content-Type": "application/json"}

    def task(i: int, conn: http.client.HTTPConnection) -> None:
        rng = random.Random(i)
        values = [rng.choice(genres)] + [f"v{i}-{j}" for j in range(args.filter_values - 1)]  # distinct per request
        body = json.dumps({"user_id": rng.choice(users), "num_results": 25, "filter": "genre",
                           "filter_values": {"GENRE": values}}).encode()
        status, _ = request(conn, "POST", PATH, body, headers)
        statuses[status] = statuses.get(status, 0) + 1

    done, seconds = in_threads(args.filter_requests, args.attack_threads, task, port, args.phase_limit)
    time.sleep(0.5)
    after = worker_rss(server_pid)
    ratios = {str(pid): round(after[pid] / before[pid], 3) for pid in before if pid in after}
    phase.extra.update(attack_requests=done, attack_seconds=round(seconds, 2),
                       attack_statuses={str(k): v for k, v in sorted(statuses.items())},
                       rss_mb_before={str(p): round(v / MIB, 1) for p, v in before.items()},
                       rss_mb_after={str(p): round(v / MIB, 1) for p, v in after.items()}, rss_ratio=ratios)


def attack_big_bodies(port: int, args: argparse.Namespace, phase: Phase) -> None:
    filler = MIB - len(b'{"user_id": "", "num_results": 10}')
    body = b'{"user_id": "' + b"x" * filler + b'", "num_results": 10}'
    statuses: dict[str, int] = {}

    def task(i: int, conn: http.client.HTTPConnection) -> None:
        try:
            status, _ = request(conn, "POST", PATH, body, {"Content-Type": "application/json"})
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        except (OSError, http.client.HTTPException) as exc:  # a server that answers before the body may close
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            raise

    done, seconds = in_threads(args.big_bodies, args.attack_threads, task, port, args.phase_limit)
    phase.extra.update(attack_requests=done, attack_seconds=round(seconds, 2), body_bytes=len(body),
                       attack_statuses=dict(sorted(statuses.items())))


# -------------------------------------------------------------------------------------------------- main
def verdicts(phases: list[Phase]) -> list[dict[str, Any]]:
    baseline = phases[0].summary()
    base_p99 = baseline["p99_ms"] or float("nan")
    rows = []
    for phase in phases[1:]:
        s = phase.summary()
        p99 = s["p99_ms"]
        ratio = None if p99 is None else p99 / base_p99
        checks = {f"normal p99 <= {P99_RATIO_TARGET:g}x baseline": ratio is not None and ratio <= P99_RATIO_TARGET}
        if phase.name.startswith("(a)"):
            checks[f"/metrics < {METRICS_BYTES_TARGET // 1000} KB"] = (
                s.get("metrics_bytes_after", float("inf")) < METRICS_BYTES_TARGET)
        if phase.name.startswith("(c)"):
            ratios = list(s.get("rss_ratio", {}).values())
            checks[f"worker RSS within +-{RSS_TOLERANCE:.0%}"] = bool(ratios) and all(
                abs(r - 1) <= RSS_TOLERANCE for r in ratios)
        rows.append({**s, "p99_ratio": None if ratio is None else round(ratio, 2), "checks": checks})
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Small sizes and short phases (a check that it runs).")
    parser.add_argument("--check", action="store_true", help="Exit 1 when a target is missed.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=18768)
    parser.add_argument("--baseline-seconds", type=float)
    parser.add_argument("--unauthenticated", type=int, help="Requests of attack (a).")
    parser.add_argument("--slow-connections", type=int, help="Connections of attack (b).")
    parser.add_argument("--slow-seconds", type=float, help="Hold the slow connections this long (default: the "
                        "header timeout + 5 s).")
    parser.add_argument("--header-timeout", type=float, help="RECSMITH_HEADER_TIMEOUT_SECONDS for the server "
                        "(default: the server's own, 10 s; 2 s with --quick).")
    parser.add_argument("--server-nofile", type=int, help="Start the server under `ulimit -n N` (soft and hard), "
                        "e.g. 1024 with --slow-connections 2200 as in the issue.")
    parser.add_argument("--filter-requests", type=int, help="Requests of attack (c).")
    parser.add_argument("--filter-values", type=int, default=50, help="Distinct values per filter request.")
    parser.add_argument("--big-bodies", type=int, help="Bodies of attack (d).")
    parser.add_argument("--attack-threads", type=int)
    parser.add_argument("--phase-limit", type=float, help="Seconds an attack may take at most.")
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--home", type=Path, help="Use (and keep) this RECSMITH_HOME; done setup steps are skipped.")
    parser.add_argument("--out", type=Path, help="Write the results as JSON here.")
    args = parser.parse_args()
    for name, value in (QUICK if args.quick else FULL).items():  # what was not given on the command line
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.slow_seconds is None:
        args.slow_seconds = (args.header_timeout or 10.0) + 5.0
    return args


def main() -> int:
    args = parse_args()
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    fd_limit = raise_own_fd_limit()
    if fd_limit < args.slow_connections + 100:
        log(f"this process may open only {fd_limit} files: fewer slow connections than asked will open")
    temporary = args.home is None
    home = Path(tempfile.mkdtemp(prefix="recsmith-abuse-")) if temporary else args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    phases: list[Phase] = []
    try:
        state = load_state(home)
        setup_small(home, state, log)
        admin_key, read_key = state["small"]["key"], state["small"]["read_key"]
        catalogue = read_catalogue(home, state, "movies")
        rng = random.Random(0)
        bodies = []
        for _ in range(500):
            body: dict[str, Any] = {"user_id": rng.choice(catalogue.users), "num_results": 25}
            if rng.random() < 0.5:
                body.update(filter="genre", filter_values={"GENRE": rng.choice(catalogue.genres)})
            bodies.append(json.dumps(body).encode())
        env = home_env(home)
        if args.header_timeout:
            env["RECSMITH_HEADER_TIMEOUT_SECONDS"] = str(args.header_timeout)
        command = [*recsmith_command(), "serve", "--host", HOST, "--port", str(args.port), "--workers",
                   str(args.workers)]
        if args.server_nofile:
            command = ["sh", "-c", f'ulimit -n {int(args.server_nofile)} && exec "$@"', "sh", *command]
        with serve("recsmith", command, env, args.port, home / "abuse-serve.log", args.ready_timeout) as server:
            client = NormalClient(args.port, bodies, read_key)
            client.start()
            warm = Phase("warm-up")
            client.phase = warm
            time.sleep(2.0)

            def run_phase(name: str, action: Callable[[Phase], None]) -> None:
                phase = Phase(name)
                log(f"{name} ...")
                client.phase = phase
                began = time.perf_counter()
                done = threading.Event()
                probe = threading.Thread(target=fresh_probe, args=(args.port, bodies[0], read_key, phase, done),
                                         daemon=True)
                probe.start()
                action(phase)
                done.set()
                probe.join(30)
                phase.seconds = time.perf_counter() - began
                client.phase = None
                phases.append(phase)
                s = phase.summary()
                log(f"{name}: normal p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, errors {s['errors']}; "
                    f"{json.dumps(phase.extra)}")
                time.sleep(1.0)

            run_phase("baseline", lambda phase: time.sleep(args.baseline_seconds))
            run_phase(f"(a) {args.unauthenticated:,} unauthenticated requests to random groups",
                      lambda phase: attack_unauthenticated(args.port, args, phase, admin_key))
            run_phase(f"(b) {args.slow_connections:,} slow half-sent connections",
                      lambda phase: attack_slow(args.port, args, phase))
            run_phase(f"(c) {args.filter_requests:,} distinct filter_values requests ({args.filter_values} values)",
                      lambda phase: attack_filters(args.port, args, phase, read_key, catalogue.users,
                                                   catalogue.genres, server.process.pid))
            run_phase(f"(d) {args.big_bodies:,} unauthenticated 1 MiB bodies",
                      lambda phase: attack_big_bodies(args.port, args, phase))
            client.stopping.set()
            client.join(15)
    finally:
        if temporary:
            shutil.rmtree(home, ignore_errors=True)
    if not phases:
        return 1
    rows = verdicts(phases)
    base = phases[0].summary()
    print(f"baseline: normal p50 {base['p50_ms']:.2f} ms, p99 {base['p99_ms']:.2f} ms over {base['requests']} "
          f"requests, {base['errors']} errors\n")
    print("| attack | normal p50 ms | normal p99 ms | p99 / baseline | normal errors | new connections ok/failed "
          "| measured | targets |\n|---|---:|---:|---:|---:|---:|---|---|")
    missed = []
    for row in rows:
        measured = {k: row[k] for k in ("metrics_bytes_after", "metrics_scrape_s_after", "rss_ratio",
                                        "slow_closed_by_server", "slow_closed_median_s", "attack_seconds",
                                        "attack_statuses") if k in row}
        targets = ", ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in row["checks"].items())
        missed += [f"{row['phase']}: {name}" for name, ok in row["checks"].items() if not ok]
        p50, p99, ratio = row["p50_ms"], row["p99_ms"], row["p99_ratio"]
        print(f"| {row['phase']} | {'-' if p50 is None else f'{p50:.2f}'} | {'-' if p99 is None else f'{p99:.2f}'} | "
              f"{'-' if ratio is None else f'{ratio:.1f}x'} | {row['errors']} | "
              f"{row['fresh_connections_ok']}/{row['fresh_connections_failed']} | {json.dumps(measured)} | "
              f"{targets} |")
    print(f"\n- {'quick mode: small sizes, figures not comparable' if args.quick else 'full sizes'}; "
          f"{args.workers} workers; server file-descriptor limit "
          f"{args.server_nofile or 'its own (raised to the hard limit)'}; total {time.perf_counter() - started:.0f} s")
    for miss in missed:
        print(f"- MISSED {miss}")
    if args.out:
        args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                        "baseline": base, "attacks": rows}, indent=2))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
