"""Event ingestion under load: throughput, zero loss, freshness and kill -9 durability of ``POST .../events``.

Usage::

    python benchmarks/events_load.py --out results.json
    python benchmarks/events_load.py --backends sqlite --batch-sizes 10,100 --duration 15 --connections 4
    python benchmarks/events_load.py --backends postgres --skip-kill --skip-freshness
    python benchmarks/events_load.py --duration 3 --warmup 1 --freshness-users 20 --quiet-wait 0   # a quick look

Setup, per backend (``--backends sqlite,postgres``; ``sqlite+redis`` and ``postgres+redis`` run the same server
with ``RECSMITH_REDIS_URL=--redis-url``, so live state is shared through Redis), through the ``recsmith`` CLI
with ``--json`` in a temporary
``RECSMITH_HOME`` (one folder per backend; ``--home`` keeps them): the bundled ml-latest-small (group ``movies``),
an ``item-knn`` version, a campaign ``movies/knn`` and an admin key. SQLite is the home's ``recsmith.db`` (WAL);
PostgreSQL is a fresh database ``--postgres-url`` (default ``recsmith_events_bench`` on 127.0.0.1:5432, dropped
and created at the start, so the ``test`` database of the test suite is left alone), analyzed after the import
(``--no-analyze`` to skip: the numbers then show the database before autovacuum has analyzed the imported
rows). Each backend is served by ``recsmith serve --workers 2`` (``--workers``).

Ingestion: ``wrk`` (``-t1``, ``--latency``) with a generated Lua script that builds every request in ``request()``:
``POST /v1/dataset-groups/movies/events`` with ``--batch-sizes`` events (``click``, a random item of the data) for a
random known user, each with a unique ``event_id`` (run tag, wrk thread, request counter, index). After a
``--warmup`` run, one measured run of ``--duration`` seconds at ``--connections`` per batch size. The script counts
the statuses and sums ``accepted``/``duplicates`` of the 200 answers; after the run the group's interactions are
counted back from the store: ``counted back`` (the new rows) must be at least the events of the 200 answers (200s x
batch size); ``lost`` is the shortfall. Rows beyond that are requests wrk left in flight when it stopped (the server
still commits them: at most connections x batch size). The server's CPU per event is measured from /proc (its
process tree), and on PostgreSQL the database server's too (processes named ``postgres`` on this machine).

Freshness (``--freshness-users`` known users; first on the idle server, before any ingestion; with
``--freshness-under-load`` again while wrk sends batches of 10): one keep-alive connection per worker (each
connection's worker is found through ``/proc``: the server socket's inode in ``/proc/net/tcp`` and the worker's
fds); for each user, the top item of its top-25 recommendations (``exclude_seen``, checked on every worker) is sent
as an event through one worker (alternating), and both workers are polled until neither returns the item: the delay
is from the 200 of the event to the answer of the last worker to leave the item out. Reported: p50/p99/max over
users, for the worker that took the event and for the other one. (Only a group's first event after training waits
for the other worker's periodic check; after that every request reads the user's new events.)

Kill -9 (``--kill-threads`` client threads, each with its own connection, posting ``--kill-batch-size`` events with
unique ids and recording which batches got a 200): after ``--kill-after`` seconds the whole server process group
(the supervisor and its workers) gets SIGKILL; the server is started again (and must become ready), and every
acknowledged ``event_id`` must be in the store. Reported: acknowledged / present / missing, and how many batches
were in flight (sent, no answer) and whether they were stored (either is correct).

Targets (from the issue): >= 5,000 events/s in batches of 10 and >= 20,000 events/s in batches of 100, on SQLite
and on PostgreSQL, with zero loss; p99 of the freshness delay <= 1 s with 2 workers; no acknowledged event missing
after kill -9. Prints a markdown table per part and the verdicts; ``--out`` writes everything (wrk's output too) as
JSON. The load generator shares the machine with the server (``os.cpu_count()`` is recorded); before each
measured run the script waits (``--quiet-wait``) for other programs to leave the machine idle, and records the share
of CPU they took anyway ("other programs").
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from serve_load import (
    BenchError,
    LoadResult,
    LoadSettings,
    home_env,
    lua_string,
    recsmith_command,
    serve,
    tree_cpu,
)
from serve_load import (
    cli as serve_load_cli,
)
from serve_load import (
    http as http_call,
)

from recsmith.store import tables
from recsmith.store.store import Store

BENCH_DIR = Path(__file__).resolve().parent
GROUP, CAMPAIGN = "movies", "knn"
EVENTS_PATH = f"/v1/dataset-groups/{GROUP}/events"
RECOMMEND_PATH = f"/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}/recommendations"
TARGET_EVENTS_PER_S = {10: 5_000.0, 100: 20_000.0}
TARGET_FRESHNESS_P99_S = 1.0
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/recsmith_events_bench"
STATE_FILE = "events_load_state.json"


# -------------------------------------------------------------------------------------------------- setup
@dataclass
class Backend:
    """One store backend, set up and ready to serve."""

    name: str
    home: Path
    env: dict[str, str]
    url: str
    key: str = ""
    group_id: int = 0
    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)


def backend_env(home: Path, database_url: str | None) -> dict[str, str]:
    """A child's environment bound to ``home`` and, for PostgreSQL, to ``database_url``."""
    env = home_env(home)
    if database_url:
        env["RECSMITH_DATABASE_URL"] = database_url
    return env


def cli(env: dict[str, str], *args: str) -> Any:
    """``recsmith ARGS --json`` in ``env``: the parsed JSON it printed."""
    return serve_load_cli(env, *args, "--json")


def recreate_postgres_database(url: str) -> None:
    """Drop and create the database of ``url`` (through the server's ``postgres`` database)."""
    target = sa.engine.make_url(url)
    if not target.database or target.database in ("postgres", "template0", "template1"):
        raise BenchError(f"refusing to drop the database of {url!r}: give a benchmark database")
    engine = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    finally:
        engine.dispose()


def analyze_postgres(url: str) -> None:
    """``ANALYZE`` the database: the benchmark runs right after the bulk import, and without statistics (before
    autovacuum's analyze, or with autovacuum off) PostgreSQL's plans for the event writes' duplicate check are
    slow: measured, batches of 100 ran at 6,600-9,000 events/s before and 16,300 after."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


def setup_backend(name: str, root: Path, args: argparse.Namespace, log: Any) -> Backend:
    """Data, an item-knn version, the campaign and an admin key (skipped when ``--home`` has them already)."""
    home = root / name
    home.mkdir(parents=True, exist_ok=True)
    database = name.split("+")[0]  # "sqlite+redis": SQLite, with RECSMITH_REDIS_URL
    database_url = args.postgres_url if database == "postgres" else None
    env = backend_env(home, database_url)
    if name.endswith("+redis"):
        env["RECSMITH_REDIS_URL"] = args.redis_url
        env["RECSMITH_REDIS_PREFIX"] = f"events-load-{name}"
    url = database_url or f"sqlite:///{(home / 'recsmith.db').resolve()}"
    state_path = home / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("url") != url or "key" not in state:
        started = time.perf_counter()
        if database == "postgres":
            log(f"{name}: drop and create the database {sa.engine.make_url(url).database!r}")
            recreate_postgres_database(url)
        elif (home / "recsmith.db").exists():
            for path in home.glob("recsmith.db*"):
                path.unlink()
        log(f"{name}: datasets load ml-latest-small -> {GROUP}; train item-knn; campaign {GROUP}/{CAMPAIGN}; admin key")
        cli(env, "datasets", "load", "ml-latest-small", "--dataset-group", GROUP)
        version = cli(env, "train", "--dataset-group", GROUP, "--recipe", "item-knn", "--no-metrics")
        cli(env, "campaign", "create", CAMPAIGN, "--dataset-group", GROUP,
            "--solution-version", str(version["id"]))
        key = cli(env, "keys", "create", "--role", "admin", "--name", "events-load")
        state = {"url": url, "key": key["key"], "artifact": version["artifact_uri"],
                 "setup_seconds": round(time.perf_counter() - started, 2)}
        state_path.write_text(json.dumps(state, indent=2))
    if database == "postgres" and not args.no_analyze:
        analyze_postgres(url)
    artifact = Path(state["artifact"])
    users = [str(u) for u in np.load(artifact / "users.npy", allow_pickle=False).tolist()]
    items = [str(i) for i in np.load(artifact / "items.npy", allow_pickle=False).tolist()]
    backend = Backend(name, home, env, url, state["key"], 0, users, items)
    with open_store(backend) as store:
        backend.group_id = store.get_dataset_group(GROUP).id
    return backend


@contextmanager
def open_store(backend: Backend) -> Iterator[Store]:
    """A :class:`Store` on the backend's database, closed after."""
    store = Store(backend.url)
    try:
        yield store
    finally:
        store.close()


def stored_event_ids(backend: Backend, prefix: str) -> set[str]:
    """The group's stored ``event_id`` values that start with ``prefix``."""
    i = tables.interactions
    with open_store(backend) as store, store.engine.connect() as conn:
        return set(conn.execute(sa.select(i.c.event_id).where(
            i.c.dataset_group_id == backend.group_id, i.c.event_id.like(f"{prefix}%"))).scalars())


def start_server(backend: Backend, args: argparse.Namespace, log_name: str) -> Any:
    """``recsmith serve`` for the backend (a context manager yielding serve_load's ``Server``)."""
    command = [*recsmith_command(), "serve", "--host", "127.0.0.1", "--port", str(args.port),
               "--workers", str(args.workers)]
    return serve(f"recsmith ({backend.name})", command, backend.env, args.port, backend.home / log_name,
                 args.ready_timeout)


# ----------------------------------------------------------------------------------------------- ingestion
LUA_TEMPLATE = """-- generated by benchmarks/events_load.py: batches of %(batch)d events, every event_id unique
local users = {%(users)s}
local items = {%(items)s}
local path = %(path)s
local tag = %(tag)s
local batch = %(batch)d
local headers = {["Content-Type"] = "application/json", ["Authorization"] = %(auth)s}
local threads = {}
local next_id = 1
local counter = 0
counts = {}
accepted = 0
duplicates = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(%(seed)d + (id or 0))
end

function request()
  counter = counter + 1
  local prefix = tag .. "-" .. (id or 0) .. "-" .. counter .. "-"
  local sent = os.time()
  local parts = {}
  for j = 1, batch do
    parts[j] = '{"event_id":"' .. prefix .. j .. '","event_type":"click","item_id":' .. items[math.random(#items)]
      .. ',"sent_at":' .. sent .. '}'
  end
  local body = '{"user_id":' .. users[math.random(#users)] .. ',"session_id":"' .. tag .. '-' .. (id or 0)
    .. '","events":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 200 then
    accepted = accepted + (tonumber(string.match(body, '"accepted":%%s*(%%d+)')) or 0)
    duplicates = duplicates + (tonumber(string.match(body, '"duplicates":%%s*(%%d+)')) or 0)
  end
end

function done(summary, latency, requests)
  local statuses = {}
  local total_accepted, total_duplicates = 0, 0
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    if c then
      for status, n in pairs(c) do
        statuses[#statuses + 1] = string.format('"%%d": %%d', status, n)
      end
    end
    total_accepted = total_accepted + (thread:get("accepted") or 0)
    total_duplicates = total_duplicates + (thread:get("duplicates") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, "status": %%d, ' ..
    '"timeout": %%d, "p50_us": %%d, "p75_us": %%d, "p90_us": %%d, "p99_us": %%d, "p999_us": %%d, "max_us": %%d, ' ..
    '"mean_us": %%.1f, "statuses": {%%s}, "accepted": %%d, "duplicates": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(75), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, table.concat(statuses, ", "), total_accepted,
    total_duplicates))
end
"""


def write_lua(path: Path, backend: Backend, batch: int, tag: str, seed: int) -> Path:
    """The wrk script of one run: ``batch`` events per request, event ids ``TAG-THREAD-COUNTER-INDEX``."""
    def strings(values: list[str]) -> str:
        return ", ".join(lua_string(json.dumps(v)) for v in values)

    path.write_text(LUA_TEMPLATE % {"users": strings(backend.users), "items": strings(backend.items),
                                    "path": lua_string(EVENTS_PATH), "tag": lua_string(tag), "batch": batch,
                                    "auth": lua_string(f"Bearer {backend.key}"), "seed": seed})
    return path


def database_cpu_seconds() -> float:
    """User + system CPU seconds of the PostgreSQL server's processes (``postgres``) on this machine."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        if text[text.index("(") + 1:text.rindex(")")] != "postgres":
            continue
        fields = text[text.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def ingest(backend: Backend, server: Any, batch: int, seconds: float, connections: int, label: str,
           args: argparse.Namespace, log: Any, quiet_wait: float) -> dict[str, Any]:
    """One wrk run of ``batch``-event requests; the events of its 200s counted back from the store."""
    tag = f"{label.replace(' ', '')}-{os.getpid()}-{time.time_ns() % 10**9}"
    script = write_lua(backend.home / f"events_b{batch}.lua", backend, batch, tag, args.seed)
    with open_store(backend) as store:
        before = store.count_interactions(backend.group_id)
    load = LoadSettings("wrk", args.threads, script, [], backend.key, quiet_wait, log)
    database_cpu = database_cpu_seconds() if backend.name.startswith("postgres") else None
    result: LoadResult = load.run(server.base_url, connections, seconds, label, server.process.pid)
    if database_cpu is not None:
        database_cpu = round(database_cpu_seconds() - database_cpu, 2)
        if result.other_cpu_share is not None and result.seconds:  # PostgreSQL's CPU is not other programs'
            result.other_cpu_share = round(max(0.0, result.other_cpu_share
                                               - database_cpu / (result.seconds * (os.cpu_count() or 1))), 3)
    time.sleep(args.settle)  # requests wrk left in flight finish (the server commits them all the same)
    with open_store(backend) as store:
        after = store.count_interactions(backend.group_id)
    line = next(x for x in result.extra["wrk_output"].splitlines() if x.startswith("RESULT "))
    sums = json.loads(line.removeprefix("RESULT "))
    ok = int(result.statuses.get("200", 0))
    acknowledged = ok * batch
    counted = after - before
    row = {
        "backend": backend.name, "batch_size": batch, "label": label, "connections": connections,
        "seconds": result.seconds, "requests": result.requests, "responses_200": ok,
        "requests_per_s": result.rps, "events_per_s": round(acknowledged / result.seconds, 1) if result.seconds else 0,
        "p50_ms": result.p50_ms, "p90_ms": result.p90_ms, "p99_ms": result.p99_ms, "max_ms": result.max_ms,
        "non_2xx": result.non_2xx, "socket_errors": result.socket_errors, "statuses": result.statuses,
        "acknowledged_events": acknowledged, "accepted_in_answers": sums.get("accepted"),
        "duplicates_in_answers": sums.get("duplicates"), "counted_back": counted,
        "lost": max(0, acknowledged - counted), "stored_beyond_acknowledged": max(0, counted - acknowledged),
        "server_cpu_s": result.server_cpu_s, "server_cpu_by_process": result.server_cpu_by_process,
        "server_cpu_us_per_event": (round(1e6 * result.server_cpu_s / counted, 1)
                                    if result.server_cpu_s and counted else None),
        "database_cpu_s": database_cpu,
        "database_cpu_us_per_event": round(1e6 * database_cpu / counted, 1) if database_cpu and counted else None,
        "loadgen_cpu_s": result.loadgen_cpu_s, "machine_busy": result.machine_busy,
        "other_cpu_share": result.other_cpu_share, "waited_for_quiet_s": result.waited_for_quiet_s,
        "wrk_output": result.extra.get("wrk_output"),
    }
    log(f"{backend.name} batch {batch} ({label}): {row['events_per_s']:,.0f} events/s, {result.rps:,.0f} req/s, "
        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, non-2xx {result.non_2xx}, socket errors "
        f"{sum(result.socket_errors.values())}; acknowledged {acknowledged}, counted back {counted}, lost "
        f"{row['lost']}; server CPU {row['server_cpu_us_per_event']} us/event by process "
        f"{result.server_cpu_by_process}; database CPU {row['database_cpu_us_per_event']} us/event; other programs "
        f"{result.other_cpu_share}")
    return row


# ----------------------------------------------------------------------------------------------- freshness
def descendants(pid: int) -> list[int]:
    """``pid``'s live descendant processes."""
    return [p for p in tree_cpu(pid) if p != pid]


def socket_inodes(pid: int) -> set[str]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(target[8:-1])
    except OSError:
        pass
    return out


def server_side_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server's end of the loopback connection from ``client_port``, from /proc/net/tcp."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                return inode
    return None


class WorkerConnections:
    """One keep-alive connection to each worker of a server (found through /proc), to poll every worker."""

    def __init__(self, base_url: str, server_pid: int, workers: int, key: str) -> None:
        self.host, port = base_url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.server_pid, self.workers, self.key = server_pid, workers, key
        self.by_worker: dict[int, http.client.HTTPConnection] = {}

    def owner(self, conn: http.client.HTTPConnection) -> int | None:
        """The pid of the worker that accepted ``conn`` (after a request on it)."""
        if conn.sock is None:
            return None
        inode = server_side_inode(self.port, conn.sock.getsockname()[1])
        if inode is None:
            return None
        for pid in descendants(self.server_pid) or [self.server_pid]:
            if inode in socket_inodes(pid):
                return pid
        return None

    def connect(self, attempts: int = 60) -> None:
        """Open connections until every worker has one (new connections land on a worker at random)."""
        self.close()
        for _ in range(attempts):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            self.request(conn, "GET", "/health", None)
            pid = self.owner(conn)
            if pid is None or pid in self.by_worker:
                conn.close()
            else:
                self.by_worker[pid] = conn
            if len(self.by_worker) >= self.workers:
                return
        raise BenchError(f"found connections to {len(self.by_worker)} of {self.workers} workers "
                         f"after {attempts} tries")

    def check(self) -> None:
        """Reconnect if a connection was closed or moved to another worker (keep-alive timeout)."""
        if any(conn.sock is None or self.owner(conn) != pid for pid, conn in self.by_worker.items()):
            self.connect()

    def request(self, conn: http.client.HTTPConnection, method: str, path: str, body: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        try:
            conn.request(method, path, None if body is None else json.dumps(body), headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            return 0, None
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def close(self) -> None:
        for conn in self.by_worker.values():
            conn.close()
        self.by_worker = {}


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_s": None, "p99_s": None, "max_s": None}
    array = np.asarray(values)
    return {"p50_s": round(float(np.percentile(array, 50)), 4), "p99_s": round(float(np.percentile(array, 99)), 4),
            "max_s": round(float(array.max()), 4)}


def freshness(backend: Backend, server: Any, args: argparse.Namespace, log: Any,
              under_load: bool = False) -> dict[str, Any]:
    """For ``--freshness-users`` known users: event for their top item, then poll every worker until it is gone;
    ``under_load``: while wrk sends batches of 10 at ``--connections``."""
    background = None
    if under_load:
        script = write_lua(backend.home / "events_background.lua", backend, 10,
                           f"bg-{os.getpid()}-{time.time_ns() % 10**9}", args.seed + 1)
        background = subprocess.Popen(["wrk", "-t1", f"-c{args.connections}", "-d3600s", "--timeout", "5s", "-s",
                                       str(script), server.base_url], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    try:
        return _freshness(backend, server, args, log, "under ingestion load" if under_load else "idle")
    finally:
        if background is not None:
            background.kill()
            background.wait()


def _freshness(backend: Backend, server: Any, args: argparse.Namespace, log: Any, load: str) -> dict[str, Any]:
    conns = WorkerConnections(server.base_url, server.process.pid, args.workers, backend.key)
    conns.connect()
    rng = random.Random(args.seed + (load != "idle"))
    users = rng.sample(backend.users, min(args.freshness_users, len(backend.users)))
    tag = f"fresh-{os.getpid()}-{time.time_ns() % 10**9}"
    delays: list[float] = []
    by_role: dict[str, list[float]] = {"taking worker": [], "other worker": []}
    problems: list[str] = []
    polls = 0
    for index, user in enumerate(users):
        conns.check()
        pids = sorted(conns.by_worker)
        body = {"user_id": user, "num_results": 25, "exclude_seen": True}
        answers = {pid: conns.request(conns.by_worker[pid], "POST", RECOMMEND_PATH, body) for pid in pids}
        status, answer = answers[pids[0]]
        if status != 200 or not isinstance(answer, dict) or not answer.get("items"):
            problems.append(f"user {user}: recommendations -> {status}: {str(answer)[:200]}")
            continue
        item = answer["items"][0]["item_id"]
        # every worker recommends it before the event (and has just looked for new events: the slowest case)
        if any(s != 200 or item not in {i["item_id"] for i in a["items"]} for s, a in answers.values()):
            problems.append(f"user {user}: the workers' recommendations differ before the event")
            continue
        taker = pids[index % len(pids)]
        event = {"user_id": user, "session_id": f"{tag}-{user}",
                 "events": [{"event_id": f"{tag}-{index}", "event_type": "click", "item_id": item,
                             "sent_at": int(time.time())}]}
        status, answer = conns.request(conns.by_worker[taker], "POST", EVENTS_PATH, event)
        acknowledged = time.perf_counter()
        if status != 200:
            problems.append(f"user {user}: events -> {status}: {str(answer)[:200]}")
            continue
        reflected: dict[int, float] = {}
        deadline = acknowledged + args.freshness_timeout
        while len(reflected) < len(pids) and time.perf_counter() < deadline:
            for pid in pids:
                if pid in reflected:
                    continue
                status, answer = conns.request(conns.by_worker[pid], "POST", RECOMMEND_PATH, body)
                polls += 1
                if status == 200 and isinstance(answer, dict) and item not in {i["item_id"] for i in answer["items"]}:
                    reflected[pid] = time.perf_counter() - acknowledged
            time.sleep(args.freshness_poll)
        if len(reflected) < len(pids):
            problems.append(f"user {user}: item {item} still recommended by {len(pids) - len(reflected)} worker(s) "
                            f"{args.freshness_timeout:g} s after the event's 200")
            delays.append(float("inf"))
            continue
        delays.append(max(reflected.values()))
        by_role["taking worker"].append(reflected[taker])
        by_role["other worker"].extend(v for pid, v in reflected.items() if pid != taker)
    conns.close()
    finite = [d for d in delays if d != float("inf")]
    report: dict[str, Any] = {"backend": backend.name, "load": load, "users": len(users), "measured": len(delays),
                              "not_reflected": len(delays) - len(finite), "polls": polls, **percentiles(delays)}
    report["by_worker"] = {role: percentiles(values) for role, values in by_role.items()}
    report["problems"] = problems[:20]
    report["pass"] = (bool(delays) and not problems and report["p99_s"] is not None
                      and report["p99_s"] <= TARGET_FRESHNESS_P99_S)
    log(f"{backend.name} freshness ({load}): {len(delays)} users, p50 {report['p50_s']} s, p99 {report['p99_s']} s, "
        f"max {report['max_s']} s; by worker {report['by_worker']}; problems {len(problems)}")
    return report


# ------------------------------------------------------------------------------------------------- kill -9
def kill_run(backend: Backend, args: argparse.Namespace, log: Any) -> dict[str, Any]:
    """Client threads post batches; SIGKILL the server's process group mid-run; restart; every acknowledged
    event must be stored."""
    tag = f"kill-{os.getpid()}-{time.time_ns() % 10**9}"
    acknowledged: list[list[str]] = []
    in_flight: list[list[str]] = []
    rejected: list[tuple[int, list[str]]] = []
    lock = threading.Lock()
    killed = threading.Event()
    report: dict[str, Any] = {"backend": backend.name, "threads": args.kill_threads,
                              "batch_size": args.kill_batch_size}

    def client(number: int, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        rng = random.Random(args.seed + number)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        headers = {"Authorization": f"Bearer {backend.key}", "Content-Type": "application/json"}
        sequence = 0
        while not killed.is_set():
            sequence += 1
            ids = [f"{tag}-{number}-{sequence}-{j}" for j in range(args.kill_batch_size)]
            body = {"user_id": rng.choice(backend.users), "session_id": f"{tag}-{number}",
                    "events": [{"event_id": event_id, "event_type": "click", "item_id": rng.choice(backend.items),
                                "sent_at": int(time.time())} for event_id in ids]}
            try:
                conn.request("POST", EVENTS_PATH, json.dumps(body), headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                with lock:
                    in_flight.append(ids)
                conn.close()
                if killed.is_set():
                    return
                time.sleep(0.05)
                continue
            with lock:
                if response.status == 200:
                    acknowledged.append(ids)
                else:
                    rejected.append((response.status, ids))

    with start_server(backend, args, "kill-serve.log") as server:
        pgid = server.process.pid
        workers = descendants(pgid)
        threads = [threading.Thread(target=client, args=(n, server.base_url), daemon=True)
                   for n in range(args.kill_threads)]
        for thread in threads:
            thread.start()
        time.sleep(args.kill_after)
        with lock:
            before_kill = len(acknowledged)
        os.killpg(pgid, signal.SIGKILL)
        killed_at = time.perf_counter()
        killed.set()
        server.process.wait()
        for thread in threads:
            thread.join(15)
        gone = False
        while time.perf_counter() - killed_at < 10:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                gone = True
                break
            time.sleep(0.05)
        report.update(server_pids_killed=[pgid, *workers], process_group_gone=gone,
                      acknowledged_batches_at_kill=before_kill, ingest_seconds=args.kill_after)
    log(f"{backend.name} kill -9: SIGKILL to process group {pgid} (workers {workers}) after {args.kill_after:g} s, "
        f"{len(acknowledged)} batches acknowledged, {len(in_flight)} in flight; restarting")
    started = time.perf_counter()
    with start_server(backend, args, "kill-restart-serve.log") as server:
        report["restart_ready_s"] = round(time.perf_counter() - started, 2)
        present = stored_event_ids(backend, f"{tag}-")
        after = {"session_id": f"{tag}-after", "user_id": backend.users[0],
                 "events": [{"event_id": f"{tag}-after", "event_type": "click", "item_id": backend.items[0],
                             "sent_at": int(time.time())}]}
        status, _ = http_call("POST", server.base_url + EVENTS_PATH, after, backend.key)
        report["post_after_restart_status"] = status
    acked_ids = [event_id for ids in acknowledged for event_id in ids]
    missing = sorted(set(acked_ids) - present)
    in_flight_ids = [event_id for ids in in_flight for event_id in ids]
    partial = [ids for ids in in_flight if 0 < len(set(ids) & present) < len(ids)]
    report.update(
        acknowledged_batches=len(acknowledged), acknowledged_events=len(acked_ids),
        present=len(set(acked_ids) & present),
        missing=len(missing), missing_sample=missing[:20], stored_total=len(present),
        in_flight_batches=len(in_flight), in_flight_events_stored=len(set(in_flight_ids) & present),
        in_flight_batches_partly_stored=len(partial), rejected=[(s, len(ids)) for s, ids in rejected][:20],
    )
    report["pass"] = (bool(acked_ids) and not missing and not partial and report["process_group_gone"]
                      and report["post_after_restart_status"] == 200)
    log(f"{backend.name} kill -9: acknowledged {len(acked_ids)} events, present {report['present']}, missing "
        f"{len(missing)}; in flight {len(in_flight_ids)} events, {report['in_flight_events_stored']} stored "
        f"({len(partial)} batches partly: must be 0); restart ready in {report['restart_ready_s']} s")
    return report


# ------------------------------------------------------------------------------------------------- report
def markdown(results: dict[str, Any]) -> str:
    lines = ["| backend | batch | events/s | requests/s | p50 ms | p99 ms | non-2xx | acknowledged events "
             "| counted back | lost | server CPU us/event | database CPU us/event | other programs | target |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in results["ingestion"]:
        target = TARGET_EVENTS_PER_S.get(row["batch_size"])
        verdict = "-" if target is None else (
            f"{'PASS' if row['events_per_s'] >= target and row['lost'] == 0 and row['non_2xx'] == 0 else 'FAIL'} "
            f"(>= {target:,.0f})")
        errors = row["non_2xx"] + sum(row["socket_errors"].values())
        other = row.get("other_cpu_share")
        lines.append(f"| {row['backend']} | {row['batch_size']} | {row['events_per_s']:,.0f} | "
                     f"{row['requests_per_s']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {errors} | "
                     f"{row['acknowledged_events']:,} | {row['counted_back']:,} | {row['lost']} | "
                     f"{row['server_cpu_us_per_event'] or '-'} | {row.get('database_cpu_us_per_event') or '-'} | "
                     f"{'-' if other is None else f'{other:.0%}'} | "
                     f"{verdict} |")
    if results["freshness"]:
        lines += ["", "| freshness | users | p50 s | p99 s | max s | not reflected | taking worker p99 s "
                      "| other worker p99 s | target p99 <= 1 s |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for row in results["freshness"]:
            workers = row["by_worker"]
            lines.append(f"| {row['backend']}, {row['load']} | {row['measured']} | {row['p50_s']} | {row['p99_s']} | "
                         f"{row['max_s']} | {row['not_reflected']} | {workers['taking worker']['p99_s']} | "
                         f"{workers['other worker']['p99_s']} | {'PASS' if row['pass'] else 'FAIL'} |")
    if results["kill"]:
        lines += ["", "| kill -9 | acknowledged events | present | missing | in flight events (stored) "
                      "| restart ready s | verdict |", "|---|---:|---:|---:|---:|---:|---|"]
        for row in results["kill"]:
            lines.append(f"| {row['backend']} | {row['acknowledged_events']:,} | {row['present']:,} | "
                         f"{row['missing']} | {row['in_flight_batches'] * row['batch_size']} "
                         f"({row['in_flight_events_stored']}) | {row['restart_ready_s']} | "
                         f"{'PASS' if row['pass'] else 'FAIL'} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres", help="Which of sqlite, postgres, sqlite+redis, "
                        "postgres+redis to run (+redis: the server shares live state through --redis-url).")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="Redis for the +redis backends.")
    parser.add_argument("--batch-sizes", default="10,100", help="Events per request, one measured run each.")
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds per measured run.")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds of warm-up (batches of 10) per backend.")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections.")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads.")
    parser.add_argument("--workers", type=int, default=2, help="Server worker processes.")
    parser.add_argument("--port", type=int, default=18775, help="Port of recsmith serve.")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="The benchmark's PostgreSQL database: DROPPED and created at the start.")
    parser.add_argument("--no-analyze", action="store_true", help="Do not ANALYZE the PostgreSQL database after "
                        "the setup (see analyze_postgres).")
    parser.add_argument("--settle", type=float, default=1.0, help="Seconds after a run before counting back.")
    parser.add_argument("--skip-freshness", action="store_true")
    parser.add_argument("--freshness-users", type=int, default=100, help="Users in the freshness measurement.")
    parser.add_argument("--freshness-timeout", type=float, default=5.0, help="Give up on a user after this.")
    parser.add_argument("--freshness-poll", type=float, default=0.005, help="Pause between polling rounds (s).")
    parser.add_argument("--freshness-under-load", action="store_true", help="Measure freshness a second time, "
                        "while wrk sends batches of 10 events at --connections.")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--kill-threads", type=int, default=4, help="Client threads in the kill -9 run.")
    parser.add_argument("--kill-batch-size", type=int, default=10, help="Events per request in the kill -9 run.")
    parser.add_argument("--kill-after", type=float, default=3.0, help="Seconds of ingestion before the SIGKILL.")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="Before each measured run, wait up to this "
                        "many seconds for other programs on the machine to go idle (0: don't).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="Seconds to wait for GET /ready.")
    parser.add_argument("--home", type=Path, help="Use (and keep) this folder for the backends' homes; setup done "
                                                  "there is reused. Default: a temporary folder, removed after.")
    parser.add_argument("--out", type=Path, help="Write the results as JSON here.")
    args = parser.parse_args()
    args.backend_list = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backend_list) - {"sqlite", "postgres", "sqlite+redis", "postgres+redis"}
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}: give sqlite, postgres, sqlite+redis, postgres+redis")
    args.batch_list = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    if any(not 1 <= b <= 100 for b in args.batch_list):
        parser.error("batch sizes are 1..100 (the API's limit)")
    return args


def run_backend(name: str, root: Path, args: argparse.Namespace, results: dict[str, Any], log: Any) -> None:
    backend = setup_backend(name, root, args, log)
    results["setup"][name] = {"url": backend.url, "users": len(backend.users), "items": len(backend.items)}
    with start_server(backend, args, "serve.log") as server:
        log(f"{name}: server ready at {server.base_url} (pid {server.process.pid}, workers "
            f"{descendants(server.process.pid)})")
        if not args.skip_freshness:
            results["freshness"].append(freshness(backend, server, args, log))
        if args.warmup > 0:
            ingest(backend, server, min(args.batch_list + [10]), args.warmup, args.connections, "warm-up", args, log,
                   0.0)
        for batch in args.batch_list:
            results["ingestion"].append(ingest(backend, server, batch, args.duration, args.connections,
                                               f"batch {batch}", args, log, args.quiet_wait))
        if not args.skip_freshness and args.freshness_under_load:
            results["freshness"].append(freshness(backend, server, args, log, under_load=True))
        results["server_log_tail"][name] = server.log_tail(3000)
    if not args.skip_kill:
        results["kill"].append(kill_run(backend, args, log))


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in results["ingestion"]:
        target = TARGET_EVENTS_PER_S.get(row["batch_size"])
        if target is not None:
            out[f"{row['backend']}: >= {target:,.0f} events/s in batches of {row['batch_size']}"] = {
                "value": row["events_per_s"], "pass": row["events_per_s"] >= target}
        out[f"{row['backend']}: batches of {row['batch_size']}, zero loss and zero errors"] = {
            "value": {"lost": row["lost"], "non_2xx": row["non_2xx"], "socket_errors": row["socket_errors"]},
            "pass": row["lost"] == 0 and row["non_2xx"] == 0}
    for row in results["freshness"]:
        out[f"{row['backend']}: freshness ({row['load']}) p99 <= {TARGET_FRESHNESS_P99_S:g} s"] = {
            "value": {k: row[k] for k in ("p50_s", "p99_s", "max_s", "not_reflected")}, "pass": row["pass"]}
    for row in results["kill"]:
        out[f"{row['backend']}: every acknowledged event stored after kill -9"] = {
            "value": {k: row[k] for k in ("acknowledged_events", "present", "missing")}, "pass": row["pass"]}
    return out


def main() -> None:
    args = parse_args()
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (apt-get install -y wrk)")
    temporary = args.home is None
    root = Path(tempfile.mkdtemp(prefix="recsmith-events-load-")) if temporary else args.home.resolve()
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "python": sys.version.split()[0], "hostname": socket.gethostname()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "setup": {}, "ingestion": [], "freshness": [], "kill": [], "errors": {}, "server_log_tail": {},
    }
    try:
        for name in args.backend_list:
            try:
                run_backend(name, root, args, results, log)
            except (BenchError, sa.exc.SQLAlchemyError, OSError) as exc:
                results["errors"][name] = str(exc)
                log(f"{name} FAILED: {exc}")
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    results["verdicts"] = verdicts(results)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    print(markdown(results))
    print()
    for name, verdict in results["verdicts"].items():
        print(f"- {name}: {json.dumps(verdict['value'])} {'PASS' if verdict['pass'] else 'FAIL'}")
    busy = [f"{r['backend']} batch {r['batch_size']} ({r['other_cpu_share']:.0%})" for r in results["ingestion"]
            if (r.get("other_cpu_share") or 0) > 0.1]
    if busy:
        print(f"- other programs used over 10% of the machine's CPU during: {', '.join(busy)}; those numbers are low")
    for name, error in results["errors"].items():
        print(f"- {name} failed: {error.splitlines()[0] if error else ''}")
    print(f"- machine: {os.cpu_count()} CPUs shared by wrk and the server; total {results['total_seconds']} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
