"""Serving under load: the recsmith HTTP service against a reference Flask app, on one machine over loopback.

Usage::

    python benchmarks/serve_load.py --out results.json
    python benchmarks/serve_load.py --connections 8 --duration 30 --out results.json
    python benchmarks/serve_load.py --connections auto       # measure at the sweep's best level within the targets
    python benchmarks/serve_load.py --recsmith-env OPENBLAS_NUM_THREADS=1   # try a server setting
    python benchmarks/serve_load.py --targets flask --home /tmp/serve-home    # reuse a prepared home
    python benchmarks/serve_load.py --targets recsmith --no-update --aws   # Personalize's protocol against /v1
    python benchmarks/serve_load.py --targets recsmith --no-update --campaigns movies --movies-recipe fm
        # one campaign only, of another recipe (compare with the same command and --movies-recipe item-knn)
    python benchmarks/serve_load.py --targets recsmith --no-update --campaigns movies --movies-recipe sasrec \
        --movies-param epochs=5   # a sequential campaign: each request runs the forward pass over 50 items

Setup (a temporary ``RECSMITH_HOME``, through the ``recsmith`` CLI with ``--json``): the bundled
ml-latest-small (group ``movies``, items with ``GENRES``) with an ``item-knn`` version; a synthetic group
``synth`` (50k users, 20k items, 1M events) with a random ``GENRES`` per item and two ``als`` versions (64
factors, seeds 0 and 1); campaigns ``movies/knn`` and ``synth/als``, a filter ``genre``
(``INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)``) in both groups and an admin key.

Load: ``wrk`` (``-t1``, ``--latency``) with a generated Lua script that sends random requests from a
pre-generated list: ``POST /v1/dataset-groups/{group}/campaigns/{campaign}/recommendations``, a known user,
``num_results`` 25, ``exclude_seen``; the two campaigns 50/50 and the genre filter on half of them. Without
``wrk`` a much slower Python (httpx/asyncio) load generator is used, and the output says so. Each server gets
a warm-up run; recsmith then a connection sweep (``--sweep``: the level with the most requests/s within the p99
target is reported); then ``--repeats`` measured runs at ``--connections`` (default 4; the median run is
judged), on:

- ``recsmith serve --workers 2``;
- the same server, with ``PUT .../campaigns/als`` (the other als version) sent half-way through the run: the
  run must have no failed request, and the served recommendations must change to the new version's;
- ``benchmarks/flask_reference.py`` under gunicorn (2 sync workers, one BLAS thread each), scoring and sorting
  every item per request.

With ``--aws``, the same requests are also sent through Amazon Personalize's runtime protocol on the same server
(``POST /recommendations``: ``campaignArn``, ``userId``, ``numResults``, ``filterArn``, ``filterValues``, each
request signed with AWS Signature Version 4 by botocore's signer with the admin key, signed again before every run
so that no signature is older than the five minutes the server allows): its runs alternate with ``/v1``'s, their
item lists are checked equal to ``/v1``'s, and the verdicts give the protocol's overhead (server CPU per request
and throughput, AWS against ``/v1``, medians and per run pair).

Targets: >= 1,500 requests/s, p50 <= 3 ms, p99 <= 15 ms, zero errors. Before the load, ``--check-requests``
requests are sent one by one to each server and checked (200, 25 items, every item in the asked genre); the
two servers' item lists are compared. Prints a markdown table (with the server's CPU per request and the share
of the busiest server process, which shows connections piling up on one worker); ``--out`` writes everything,
wrk's own output included, as JSON. The load generator shares the machine's cores with the servers
(``os.cpu_count()`` is recorded).

Both servers run side by side (idle when not measured) and their measured runs alternate, so that drift in the
machine's speed hits both alike. Before each run the script waits (``--quiet-wait``) until other programs leave
the machine idle, and each run records the share of CPU that programs other than the servers and wrk took
("other programs"): a test suite running at the same time halves the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
TARGET_RPS, TARGET_P50_MS, TARGET_P99_MS = 1500.0, 3.0, 15.0
FILTER_EXPRESSION = "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"
FAKE_GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Documentary"]
ITEMS_SCHEMA = {"type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
                "fields": [{"name": "ITEM_ID", "type": "string"},
                           {"name": "GENRES", "type": ["null", "string"], "categorical": True}],
                "version": "1.0"}
CAMPAIGNS = (("movies", "knn"), ("synth", "als"))
STATE_FILE = "serve_load_state.json"
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which command and what it printed."""


# ------------------------------------------------------------------------------------------------ helpers
def recsmith_command() -> list[str]:
    """The ``recsmith`` CLI beside this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("recsmith")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("recsmith")
    if found:
        return [found]
    return [sys.executable, "-m", "recsmith.cli.main"]


def home_env(home: Path) -> dict[str, str]:
    """The environment for a child process bound to ``home`` (and nothing else of the caller's store)."""
    env = dict(os.environ)
    for name in ("RECSMITH_DATABASE_URL", "RECSMITH_ARTIFACT_DIR"):
        env.pop(name, None)
    env["RECSMITH_HOME"] = str(home)
    return env


def cli(home: Path | dict[str, str], *args: str) -> Any:
    """Run ``recsmith ARGS`` in ``home`` (or with the environment ``home``); the parsed JSON of its stdout
    (``--json``) or its text."""
    command = [*recsmith_command(), *args]
    env = home if isinstance(home, dict) else home_env(home)
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    shown = "recsmith " + shlex.join(args)
    if run.returncode != 0:
        raise BenchError(f"`{shown}` failed (exit {run.returncode}):\n{run.stdout[-3000:]}{run.stderr[-3000:]}")
    if "--json" not in args:
        return run.stdout
    text = run.stdout.strip()
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    try:
        return json.loads(text[min(starts):] if starts else text)
    except ValueError as exc:
        raise BenchError(f"`{shown}` printed no JSON ({exc}):\n{run.stdout[-3000:]}{run.stderr[-3000:]}") from exc


def http(method: str, url: str, body: Any = None, key: str | None = None,
         timeout: float = 30.0) -> tuple[int, Any]:
    """One request with urllib: ``(status, parsed JSON or text)``; status 0 on a connection error."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, urllib.error.URLError) as exc:
        return 0, str(exc)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def tree_cpu(pid: int) -> dict[int, float]:
    """User + system CPU seconds of a process and each live descendant, by pid (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        parent[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    out: dict[int, float] = {}
    stack = [pid]
    while stack:
        current = stack.pop()
        if current in cpu:
            out[current] = cpu[current]
        stack.extend(child for child, ppid in parent.items() if ppid == current)
    return out


def cpu_delta(before: dict[int, float] | None, after: dict[int, float] | None) -> dict[str, float] | None:
    """CPU seconds each process used between two :func:`tree_cpu` readings (processes busier than 0.05 s)."""
    if before is None or after is None:
        return None
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    return {str(pid): round(seconds, 2) for pid, seconds in sorted(used.items()) if seconds >= 0.05}


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -------------------------------------------------------------------------------------------------- setup
def load_state(home: Path) -> dict[str, Any]:
    path = home / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def save_state(home: Path, state: dict[str, Any]) -> None:
    (home / STATE_FILE).write_text(json.dumps(state, indent=2))


def timed(state: dict[str, Any], step: str, started: float) -> None:
    state.setdefault("setup_seconds", {})[step] = round(time.perf_counter() - started, 2)


MOVIES_RECIPE = ["item-knn"]
"""The recipe of the ``movies`` group's version (``--movies-recipe``)."""
MOVIES_PARAMS: list[str] = []
"""Its params, ``NAME=VALUE`` (``--movies-param``)."""


def setup_movies(home: Path, state: dict[str, Any], log: Any) -> None:
    """The bundled ml-latest-small as group ``movies`` with an ``item-knn`` version (or ``--movies-recipe``'s);
    idempotent through ``state``."""
    recipe = MOVIES_RECIPE[0]
    if "movies" in state and state["movies"].get("recipe", "item-knn") != recipe:
        raise BenchError(f"the home's movies version is of {state['movies'].get('recipe', 'item-knn')}, not {recipe}; "
                         "use another --home")
    if "movies" not in state:
        started = time.perf_counter()
        log(f"setup: datasets load ml-latest-small -> movies; train {recipe}")
        cli(home, "datasets", "load", "ml-latest-small", "--dataset-group", "movies", "--json")
        params = [word for param in MOVIES_PARAMS for word in ("--param", param)]
        version = cli(home, "train", "--dataset-group", "movies", "--recipe", recipe, *params, "--no-metrics",
                      "--json")
        state["movies"] = {"versions": [version["id"]], "artifacts": [version["artifact_uri"]], "recipe": recipe}
        timed(state, "movies", started)
        save_state(home, state)


def setup_small(home: Path, state: dict[str, Any], log: Any) -> None:
    """The small set-up of ``benchmarks/balance.py`` and ``benchmarks/abuse.py``: :func:`setup_movies`, campaign
    ``movies/knn``, filter ``movies/genre``, an admin key and a read key of ``movies`` (``state["small"]["key"]``,
    ``["read_key"]``); idempotent through ``state``."""
    setup_movies(home, state, log)
    if "small" in state:
        return
    started = time.perf_counter()
    log("setup: campaign movies/knn, filter movies/genre, admin and read keys")
    version = str(state["movies"]["versions"][0])
    cli(home, "campaign", "create", "knn", "--dataset-group", "movies", "--solution-version", version,
        "--json")
    cli(home, "filter", "create", "genre", "--dataset-group", "movies", "--expression", FILTER_EXPRESSION,
        "--json")
    state["small"] = {"key": cli(home, "keys", "create", "--role", "admin", "--json")["key"],
                      "read_key": cli(home, "keys", "create", "--role", "read", "--dataset-group", "movies",
                                      "--json")["key"]}
    timed(state, "small serving", started)
    save_state(home, state)


def setup_data(home: Path, state: dict[str, Any], log: Any) -> None:
    """Datasets and trained versions (what exists without the server): idempotent through ``state``."""
    setup_movies(home, state, log)
    if "synth" not in state and any(group == "synth" for group, _ in CAMPAIGNS):
        started = time.perf_counter()
        log("setup: synthetic 50k users x 20k items x 1M events -> synth; items with GENRES; train als twice")
        made = cli(home, "datasets", "synthetic", "--dataset-group", "synth", "--users", "50000", "--items", "20000",
                   "--interactions", "1000000", "--json")
        # synthetic_frame names items "i0".."i{items-1}"; give every one 1-3 of the fake genres
        rng = random.Random(0)
        items_csv, schema = home / "synth_items.csv", home / "synth_items_schema.json"
        lines = ["ITEM_ID,GENRES"] + [f"i{i},{'|'.join(rng.sample(FAKE_GENRES, rng.randint(1, 3)))}"
                                      for i in range(int(made["items"]))]
        items_csv.write_text("\n".join(lines) + "\n")
        schema.write_text(json.dumps(ITEMS_SCHEMA))
        cli(home, "import", "items", str(items_csv), "--dataset-group", "synth", "--schema", str(schema), "--json")
        versions = [cli(home, "train", "--dataset-group", "synth", "--recipe", "als", "-p", "factors=64",
                        "-p", f"seed={seed}", "--no-metrics", "--json") for seed in (0, 1)]
        state["synth"] = {"versions": [v["id"] for v in versions], "artifacts": [v["artifact_uri"] for v in versions]}
        timed(state, "synth", started)
        save_state(home, state)


def setup_serving(home: Path, state: dict[str, Any], log: Any) -> None:
    """Campaigns, filters and the admin key (the serving CLI); idempotent through ``state``."""
    if "key" in state:
        return
    started = time.perf_counter()
    log("setup: campaigns, filters, admin key")
    created: dict[str, Any] = {}
    for group, name in CAMPAIGNS:
        version = str(state[group]["versions"][0])
        created[f"campaign {group}/{name}"] = cli(home, "campaign", "create", name, "--dataset-group", group,
                                                  "--solution-version", version, "--json")
        created[f"filter {group}/genre"] = cli(home, "filter", "create", "genre", "--dataset-group", group,
                                               "--expression", FILTER_EXPRESSION, "--json")
    key = cli(home, "keys", "create", "--role", "admin", "--json")
    created["key"] = {k: ("rsk_…" if k == "key" else v) for k, v in key.items()}
    state["key"] = key["key"]
    state["created"] = created
    timed(state, "serving", started)
    save_state(home, state)


# ----------------------------------------------------------------------------------------------- requests
@dataclass
class Catalogue:
    """What the request generator and the checks need to know about one group."""

    users: list[str]
    genres: list[str]
    item_genres: dict[str, set[str]]


def read_catalogue(home: Path, state: dict[str, Any], group: str) -> Catalogue:
    """Known users (the trained model's, i.e. the data's) and genres (the store's item metadata)."""
    from recsmith.settings import Settings
    from recsmith.store.store import Store

    users = np.load(Path(state[group]["artifacts"][0]) / "users.npy", allow_pickle=False).tolist()
    store = Store(Settings(home=home).resolved_database_url())
    try:
        metadata = store.read_items(store.get_dataset_group(group).id)
    finally:
        store.close()
    item_genres = {item: set(str(fields.get("GENRES") or "").split("|")) - {""} for item, fields in metadata.items()}
    counts: dict[str, int] = {}
    for genres in item_genres.values():
        for genre in genres:
            counts[genre] = counts.get(genre, 0) + 1
    common = sorted(g for g, n in counts.items() if n >= 100 and not g.startswith("("))
    return Catalogue([str(u) for u in users], common, item_genres)


def make_requests(catalogues: dict[str, Catalogue], count: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` random (path, body): campaigns 50/50, the genre filter on half."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        group, campaign = rng.choice(CAMPAIGNS)
        catalogue = catalogues[group]
        body: dict[str, Any] = {"user_id": rng.choice(catalogue.users), "num_results": 25, "exclude_seen": True}
        if rng.random() < 0.5:
            body["filter"] = "genre"
            body["filter_values"] = {"GENRE": rng.choice(catalogue.genres)}
        out.append((f"/v1/dataset-groups/{group}/campaigns/{campaign}/recommendations", body))
    return out


LUA_TEMPLATE = """-- generated by benchmarks/serve_load.py: random requests from a pre-generated list
local requests = {
%(requests)s
}
local headers = {["Content-Type"] = "application/json", ["Authorization"] = %(auth)s}
local prepared = {}
local threads = {}
local next_id = 1
counts = {}

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(%(seed)d + (id or 0))
  for i, r in ipairs(requests) do
    prepared[i] = wrk.format("POST", r[1], r[3] or headers, r[2])
  end
end

function request()
  return prepared[math.random(#prepared)]
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local statuses = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    if c then
      for status, n in pairs(c) do
        statuses[#statuses + 1] = string.format('"%%d": %%d', status, n)
      end
    end
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, "status": %%d, ' ..
    '"timeout": %%d, "p50_us": %%d, "p75_us": %%d, "p90_us": %%d, "p99_us": %%d, "p999_us": %%d, "max_us": %%d, ' ..
    '"mean_us": %%.1f, "statuses": {%%s}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(75), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, table.concat(statuses, ", ")))
end
"""


def lua_string(text: str) -> str:
    level = "=" * 3
    if f"]{level}]" in text:
        raise BenchError("request body contains the Lua long-bracket terminator")
    return f"[{level}[{text}]{level}]"


def write_lua(path: Path, requests: list[tuple[str, dict[str, Any]]], key: str, seed: int,
              headers: list[dict[str, str]] | None = None) -> Path:
    """The wrk script sending ``requests`` (``headers``: each request's own, instead of the bearer key's)."""
    rows = []
    for index, (target, body) in enumerate(requests):
        fields = [lua_string(target), lua_string(json.dumps(body, separators=(",", ":")))]
        if headers is not None:
            fields.append("{" + ", ".join(f"[ {lua_string(k)} ] = {lua_string(v)}"  # "[ [": not a long bracket
                                          for k, v in headers[index].items()) + "}")
        rows.append("  {" + ", ".join(fields) + "}")
    path.write_text(LUA_TEMPLATE % {"requests": ",\n".join(rows), "auth": lua_string(f"Bearer {key}"), "seed": seed})
    return path


# ------------------------------------------------------------------------------------ Personalize's protocol
AWS_ARN = "arn:aws:personalize:us-east-1:000000000000"


def aws_requests(requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The same requests in Personalize's ``GetRecommendations`` form (campaigns named by ARN; ``exclude_seen`` is
    the campaigns' default, so it is left out)."""
    out = []
    for path, body in requests:
        campaign = path.split("/")[5]
        aws: dict[str, Any] = {"campaignArn": f"{AWS_ARN}:campaign/{campaign}", "userId": body["user_id"],
                               "numResults": body["num_results"]}
        if "filter" in body:
            aws["filterArn"] = f"{AWS_ARN}:filter/{body['filter']}"
            aws["filterValues"] = body["filter_values"]
        out.append(("/recommendations", aws))
    return out


def sign(base_url: str, requests: list[tuple[str, dict[str, Any]]], key: str) -> list[dict[str, str]]:
    """Each request's headers, signed now with AWS Signature Version 4 by botocore's signer (the key's id and
    secret as the access key id and secret access key), with the body exactly as :func:`write_lua` writes it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    _, key_id, secret = key.split("_", 2)
    signer = SigV4Auth(Credentials(key_id, secret), "personalize", "us-east-1")
    out = []
    for path, body in requests:
        request = AWSRequest("POST", base_url + path, data=json.dumps(body, separators=(",", ":")).encode(),
                             headers={"Content-Type": "application/json"})
        signer.add_auth(request)
        out.append({name: str(value) for name, value in request.headers.items()})
    return out


def check_aws(server: Server, requests: list[tuple[str, dict[str, Any]]], key: str,
              v1_lists: dict[int, list[str]]) -> tuple[list[str], dict[str, Any]]:
    """Send each Personalize request once (signed): problems, and how many item lists equal ``/v1``'s."""
    problems: list[str] = []
    same = compared = 0
    for index, ((path, body), headers) in enumerate(zip(requests, sign(server.base_url, requests, key),
                                                        strict=True)):
        data = json.dumps(body, separators=(",", ":")).encode()
        request = urllib.request.Request(server.base_url + path, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            problems.append(f"POST {path} {json.dumps(body)} -> {exc.code}: {exc.read()[:300]!r}")
            continue
        items = [str(item["itemId"]) for item in answer.get("itemList", [])]
        if index in v1_lists:
            compared += 1
            same += items == v1_lists[index]
    return problems, {"lists_compared": compared, "identical_to_v1": same}


# ---------------------------------------------------------------------------------------------- load runs
@dataclass
class LoadResult:
    """One load run."""

    label: str
    generator: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    socket_errors: dict[str, int]
    non_2xx: int
    statuses: dict[str, int]
    server_cpu_s: float | None = None
    server_cpu_by_process: dict[str, float] | None = None
    loadgen_cpu_s: float | None = None
    machine_busy: float | None = None
    machine_steal: float | None = None
    other_cpu_share: float | None = None
    waited_for_quiet_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values()) + self.non_2xx

    def cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return 1000 * self.server_cpu_s / self.requests


def run_wrk(base_url: str, script: Path, connections: int, seconds: float, threads: int, label: str,
            server_pid: int | None) -> LoadResult:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
               "--latency", "-s", str(script), base_url]
    cpu0 = tree_cpu(server_pid) if server_pid else None
    gen0 = children_cpu_seconds()
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    gen1 = children_cpu_seconds()
    by_process = cpu_delta(cpu0, tree_cpu(server_pid) if server_pid else None)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    if run.returncode != 0 or line is None:
        raise BenchError(f"`{shlex.join(command)}` failed (exit {run.returncode}):\n{run.stdout[-2000:]}"
                         f"{run.stderr[-2000:]}")
    data = json.loads(line.removeprefix("RESULT "))
    non_2xx_text = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", run.stdout)
    statuses = {str(k): int(v) for k, v in data["statuses"].items()}
    non_2xx = sum(v for k, v in statuses.items() if not k.startswith("2"))
    if non_2xx_text:
        non_2xx = max(non_2xx, int(non_2xx_text.group(1)))
    duration = data["duration_us"] / 1e6
    return LoadResult(
        label=label, generator="wrk", connections=connections, seconds=round(duration, 2), requests=data["requests"],
        rps=round(data["requests"] / duration, 1), p50_ms=data["p50_us"] / 1000, p75_ms=data["p75_us"] / 1000,
        p90_ms=data["p90_us"] / 1000, p99_ms=data["p99_us"] / 1000, max_ms=data["max_us"] / 1000,
        mean_ms=round(data["mean_us"] / 1000, 3),
        socket_errors={k: int(data[k]) for k in ("connect", "read", "write", "timeout")}, non_2xx=non_2xx,
        statuses=statuses, server_cpu_s=None if by_process is None else round(sum(by_process.values()), 2),
        server_cpu_by_process=by_process, loadgen_cpu_s=round(gen1 - gen0, 2), extra={"wrk_output": run.stdout})


async def _python_load(base_url: str, requests: list[tuple[str, dict[str, Any]]], key: str, connections: int,
                       seconds: float) -> tuple[list[float], dict[str, int], dict[str, int], float]:
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = [(path, json.dumps(body)) for path, body in requests]
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=5.0) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while time.perf_counter() < deadline:
                path, body = rng.choice(bodies)
                sent = time.perf_counter()
                try:
                    response = await client.post(path, content=body, headers=headers)
                except httpx.TimeoutException:
                    errors["timeout"] += 1
                    continue
                except httpx.ConnectError:
                    errors["connect"] += 1
                    continue
                except httpx.HTTPError:
                    errors["read"] += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1

        await asyncio.gather(*(worker(i) for i in range(connections)))
        elapsed = time.perf_counter() - start
    return latencies, statuses, errors, elapsed


def run_python_load(base_url: str, requests: list[tuple[str, dict[str, Any]]], key: str, connections: int,
                    seconds: float, label: str, server_pid: int | None) -> LoadResult:
    cpu0 = tree_cpu(server_pid) if server_pid else None
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    latencies, statuses, errors, elapsed = asyncio.run(_python_load(base_url, requests, key, connections, seconds))
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    by_process = cpu_delta(cpu0, tree_cpu(server_pid) if server_pid else None)
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    p50, p75, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 75, 90, 99))
    return LoadResult(
        label=label, generator="python-httpx (slow: the generator, not the server, may be the limit)",
        connections=connections, seconds=round(elapsed, 2), requests=len(latencies),
        rps=round(len(latencies) / elapsed, 1), p50_ms=round(p50, 3), p75_ms=round(p75, 3), p90_ms=round(p90, 3),
        p99_ms=round(p99, 3), max_ms=round(float(ms.max()), 3), mean_ms=round(float(ms.mean()), 3),
        socket_errors=errors, non_2xx=sum(v for k, v in statuses.items() if not k.startswith("2")),
        statuses=statuses, server_cpu_s=None if by_process is None else round(sum(by_process.values()), 2),
        server_cpu_by_process=by_process,
        loadgen_cpu_s=round(usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime, 2))


@dataclass
class LoadSettings:
    """How to generate load."""

    generator: str
    threads: int
    script: Path
    requests: list[tuple[str, dict[str, Any]]]
    key: str
    quiet_wait: float = 0.0
    log: Any = print
    prepare: Any = None
    """Called with the server's URL just before each run (re-signs the Personalize requests)."""

    def run(self, base_url: str, connections: int, seconds: float, label: str,
            server_pid: int | None) -> LoadResult:
        waited = wait_quiet(self.quiet_wait, self.log) if self.quiet_wait > 0 else 0.0
        if self.prepare is not None:
            self.prepare(base_url)
        before = machine_ticks()
        if self.generator == "wrk":
            result = run_wrk(base_url, self.script, connections, seconds, self.threads, label, server_pid)
        else:
            result = run_python_load(base_url, self.requests, self.key, connections, seconds, label, server_pid)
        after = machine_ticks()
        total = sum(after) - sum(before)
        if total > 0:  # /proc/stat cpu: user nice system idle iowait irq softirq steal ...
            idle = (after[3] + after[4]) - (before[3] + before[4])
            result.machine_busy = round(1 - idle / total, 3)
            result.machine_steal = round((after[7] - before[7]) / total, 3) if len(after) > 7 else None
            # CPU that neither the server nor the load generator used: other programs on the machine
            busy_seconds = (total - idle) / os.sysconf("SC_CLK_TCK")
            ours = (result.server_cpu_s or 0.0) + (result.loadgen_cpu_s or 0.0)
            result.other_cpu_share = round(max(0.0, busy_seconds - ours) / (total / os.sysconf("SC_CLK_TCK")), 3)
        result.waited_for_quiet_s = waited
        return result


def machine_ticks() -> list[int]:
    """The machine's CPU time counters (the ``cpu`` line of /proc/stat; empty where unavailable)."""
    try:
        with open("/proc/stat") as stat:
            return [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return []


def machine_busy_share(seconds: float = 1.0) -> float:
    """Share of the machine's CPU in use over the next ``seconds``."""
    before = machine_ticks()
    time.sleep(seconds)
    after = machine_ticks()
    total = sum(after) - sum(before)
    if not before or total <= 0:
        return 0.0
    return 1 - ((after[3] + after[4]) - (before[3] + before[4])) / total


def wait_quiet(limit: float, log: Any) -> float:
    """Wait (at most ``limit`` seconds) until the machine is nearly idle: other programs (a test suite...) would
    take CPU from the servers. Returns the seconds waited."""
    started = time.perf_counter()
    busy = machine_busy_share(0.5)
    warned = False
    while busy > 0.15 and time.perf_counter() - started < limit:
        if not warned:
            log(f"the machine is {busy:.0%} busy (other programs, or a server still winding down); waiting up to "
                f"{limit:.0f} s for it to settle")
            warned = True
        busy = machine_busy_share(1.0)
    return round(time.perf_counter() - started, 1)


# ------------------------------------------------------------------------------------------------ servers
@dataclass
class Server:
    """A server process this script started."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@contextmanager
def serve(name: str, command: list[str], env: dict[str, str], port: int, log_path: Path,
          ready_timeout: float) -> Iterator[Server]:
    """Start ``command``, wait until ``GET /ready`` answers 200, yield; then SIGTERM and wait."""
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=BENCH_DIR.parent,
                                   start_new_session=True)
        server = Server(name, process, base_url, log_path)
        try:
            deadline = time.perf_counter() + ready_timeout
            started = time.perf_counter()
            while True:
                if process.poll() is not None:
                    raise BenchError(f"`{shlex.join(command)}` exited with {process.returncode} before it was ready:\n"
                                     f"{server.log_tail()}")
                status, _ = http("GET", f"{base_url}/ready", timeout=2.0)
                if status == 200:
                    break
                if time.perf_counter() > deadline:
                    raise BenchError(f"`{shlex.join(command)}`: GET /ready not 200 after {ready_timeout:.0f} s "
                                     f"(last status {status}):\n{server.log_tail()}")
                time.sleep(0.2)
            server.log_path.with_suffix(".ready").write_text(f"{time.perf_counter() - started:.2f}")
            yield server
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> float | None:
    """SIGTERM, wait; SIGKILL the process group if it does not stop in ``timeout``. Seconds it took."""
    if process.poll() is not None:
        return None
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return time.perf_counter() - started


def ready_seconds(server: Server) -> float | None:
    try:
        return float(server.log_path.with_suffix(".ready").read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------- checks
def check_responses(server: Server, requests: list[tuple[str, dict[str, Any]]], key: str,
                    catalogues: dict[str, Catalogue]) -> tuple[list[str], dict[int, list[str]]]:
    """Send each request once; problems found (status, shape, filter compliance) and the item lists."""
    problems: list[str] = []
    lists: dict[int, list[str]] = {}
    for index, (path, body) in enumerate(requests):
        status, answer = http("POST", server.base_url + path, body, key)
        if status != 200 or not isinstance(answer, dict):
            problems.append(f"POST {path} {json.dumps(body)} -> {status}: {str(answer)[:300]}")
            continue
        items = answer.get("items")
        if not isinstance(items, list) or "recommendation_id" not in answer:
            problems.append(f"POST {path}: unexpected body {str(answer)[:300]}")
            continue
        if len(items) != body["num_results"]:
            problems.append(f"POST {path} {json.dumps(body)}: {len(items)} items, asked {body['num_results']}")
        group = path.split("/")[3]
        if any(not {"item_id", "score", "reason"} <= set(item) for item in items):
            problems.append(f"POST {path}: items lack item_id/score/reason: {str(items[:2])[:300]}")
            continue
        genre = (body.get("filter_values") or {}).get("GENRE")
        if genre is not None:
            wrong = [i["item_id"] for i in items if genre not in catalogues[group].item_genres.get(i["item_id"], ())]
            if wrong:
                problems.append(f"POST {path} {json.dumps(body)}: {len(wrong)} items outside genre {genre}: "
                                f"{wrong[:5]}")
        lists[index] = [str(item["item_id"]) for item in items]
    return problems, lists


def agreement(a: dict[int, list[str]], b: dict[int, list[str]]) -> dict[str, Any]:
    """How often two targets return the same items for the same request."""
    common = sorted(set(a) & set(b))
    if not common:
        return {"requests": 0}
    same = sum(a[i] == b[i] for i in common)
    overlap = [len(set(a[i]) & set(b[i])) / max(1, len(set(a[i]) | set(b[i]))) for i in common]
    return {"requests": len(common), "identical_lists": same, "mean_jaccard": round(float(np.mean(overlap)), 4)}


def expected_items(artifact: str, user: str, k: int) -> list[str]:
    """A user's top ``k`` from an artifact, in-process (what the service should serve for it)."""
    from recsmith.recipes.bundle import TrainedModel
    from recsmith.serving.recommender import build_history, score_history

    model = TrainedModel.load(artifact)
    history = build_history(model, model.users.index(user), [])
    return [item.item_id for item in score_history(model, history, k, exclude_seen=True)]


# ---------------------------------------------------------------------------------------------- scenarios
def measure(load: LoadSettings, server: Server, connections: int, args: argparse.Namespace, label: str,
            results: dict[str, Any], log: Any) -> None:
    """``--repeats`` measured runs of ``--duration`` seconds; all go to ``results["runs"]``."""
    for repeat in range(1, args.repeats + 1):
        name = label if args.repeats == 1 else f"{label} #{repeat}"
        log(f"{label}: measured run {repeat}/{args.repeats}, {connections} connections, {args.duration:.0f} s")
        result = load.run(server.base_url, connections, args.duration, name, server.process.pid)
        result.extra["target"] = label
        results["runs"].append(result)
        log(f"{label}: {result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
            f"errors {result.errors}, server CPU by process {result.server_cpu_by_process}")


def recsmith_server(home: Path, args: argparse.Namespace, results: dict[str, Any]) -> Any:
    command = [*recsmith_command(), "serve", "--host", "127.0.0.1", "--port", str(args.port),
               "--workers", str(args.workers)]
    env = home_env(home)
    env.update(args.recsmith_env)
    results["recsmith"]["command"] = shlex.join(command)
    results["recsmith"]["extra_env"] = args.recsmith_env
    return serve("recsmith", command, env, args.port, home / "recsmith-serve.log", args.ready_timeout)


def flask_server(home: Path, state: dict[str, Any], args: argparse.Namespace, results: dict[str, Any]) -> Any:
    env = home_env(home)
    env["RECSMITH_REFERENCE_CAMPAIGNS"] = json.dumps({f"{g}/{c}": state[g]["artifacts"][0] for g, c in CAMPAIGNS})
    # one BLAS thread per sync worker (2 workers on 2 cores); OpenBLAS's default threads make it ~2.5x slower here
    env.update({name: "1" for name in BLAS_THREAD_VARS})
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn) if gunicorn.exists() else "gunicorn", "-w", str(args.workers), "-b",
               f"127.0.0.1:{args.flask_port}", "--no-control-socket", "--chdir", str(BENCH_DIR),
               "flask_reference:create_app()"]
    results["flask"]["command"] = shlex.join(command)
    return serve("flask", command, env, args.flask_port, home / "flask-reference.log", args.ready_timeout)


LABELS = {"recsmith": "recsmith", "flask": "flask reference"}
AWS_LABEL = "recsmith, Personalize API"


def sweep(server: Server, load: LoadSettings, args: argparse.Namespace, results: dict[str, Any], log: Any) -> None:
    """Short runs at ``--sweep`` connection levels on recsmith: the most req/s within the p99 target."""
    runs = []
    for level in args.sweep_levels:
        result = load.run(server.base_url, level, args.sweep_duration, f"sweep c={level}", server.process.pid)
        log(f"recsmith: sweep c={level}: {result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms, errors {result.errors}, server CPU by process "
            f"{result.server_cpu_by_process}, machine busy {result.machine_busy}")
        runs.append(result)
    results["recsmith"]["sweep"] = [summary_row(r) for r in runs]
    for key, p50_limit in (("sweep_best_within_p99", float("inf")), ("sweep_best_within_p50_p99", TARGET_P50_MS)):
        passing = [r for r in runs if r.p99_ms <= TARGET_P99_MS and r.p50_ms <= p50_limit and r.errors == 0]
        best = max(passing, key=lambda r: r.rps) if passing else None
        results["recsmith"][key] = None if best is None else {
            "connections": best.connections, "rps": best.rps, "p50_ms": best.p50_ms, "p99_ms": best.p99_ms}
        log(f"recsmith: {key.removeprefix('sweep_').replace('_', ' ')}: "
            f"{'none' if best is None else f'{best.connections} connections, {best.rps:.0f} req/s'}")


def reset_campaign(server: Server, state: dict[str, Any], log: Any) -> None:
    """Serve the first als version again (a reused ``--home`` may hold the update run's), as Flask does."""
    if "synth" not in state:  # --campaigns movies
        return
    key, first = state["key"], state["synth"]["versions"][0]
    url = f"{server.base_url}/v1/dataset-groups/synth/campaigns/als"
    status, body = http("GET", url, key=key)
    if status != 200 or not isinstance(body, dict) or body.get("solution_version_id") == first:
        return
    log(f"recsmith: campaign synth/als serves version {body.get('solution_version_id')}; switching back to {first}")
    status, body = http("PUT", url, {"solution_version_id": first}, key=key)
    if status != 200:
        raise BenchError(f"PUT {url} {{'solution_version_id': {first}}} -> {status}: {body}")
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        _, body = http("GET", url, key=key)
        if isinstance(body, dict) and body.get("serving_solution_version_id", first) == first:
            time.sleep(1.5)  # every worker syncs on its own timer
            return
        time.sleep(0.2)


def run_all(home: Path, state: dict[str, Any], load: LoadSettings, args: argparse.Namespace, targets: list[str],
            catalogues: dict[str, Catalogue], results: dict[str, Any], log: Any,
            aws_load: LoadSettings | None = None) -> None:
    """Start the servers side by side, check them, warm them up, then alternate their measured runs (so that
    both see the same machine: this one's CPU speed drifts), and end with the mid-run update on recsmith."""
    with ExitStack() as stack:
        servers: dict[str, Server] = {}
        for target in targets:
            context = recsmith_server(home, args, results) if target == "recsmith" else flask_server(
                home, state, args, results)
            try:
                servers[target] = stack.enter_context(context)
            except BenchError as exc:
                results["errors"][target] = str(exc)
                log(f"{target} FAILED to start: {exc}")
                continue
            server = servers[target]
            if target == "recsmith":
                reset_campaign(server, state, log)
            results[target]["ready_seconds"] = ready_seconds(server)
            log(f"{target}: ready in {ready_seconds(server)} s at {server.base_url}")
            problems, lists = check_responses(server, load.requests[:args.check_requests], state.get("key", ""),
                                              catalogues)
            results[target]["check_problems"] = problems
            results[target]["_lists"] = lists
            for problem in problems[:10]:
                log(f"{target}: CHECK {problem}")
            if target == "recsmith" and aws_load is not None:
                aws_problems, same = check_aws(server, aws_load.requests[:args.check_requests], state["key"], lists)
                results["recsmith"]["aws_check_problems"] = aws_problems
                results["recsmith"]["aws_agreement"] = same
                log(f"recsmith Personalize API: {same}; problems: {aws_problems[:3]}")
        if not servers:
            return
        for target, server in servers.items():
            log(f"{target}: warm-up {args.warmup:.0f} s")
            load.run(server.base_url, args.connections_level or args.sweep_levels[0], args.warmup, "warm-up",
                     server.process.pid)
        if "recsmith" in servers and aws_load is not None:
            aws_load.run(servers["recsmith"].base_url, args.connections_level or args.sweep_levels[0], args.warmup,
                         "warm-up", servers["recsmith"].process.pid)
        if "recsmith" in servers and args.sweep_levels:
            sweep(servers["recsmith"], load, args, results, log)
        connections = args.connections_level
        if connections is None:
            best = (results["recsmith"].get("sweep_best_within_p50_p99")
                    or results["recsmith"].get("sweep_best_within_p99"))
            connections = best["connections"] if best else args.sweep_levels[0]
        results["connections"] = connections
        plan: list[tuple[str, Server, LoadSettings]] = [(LABELS[t], server, load) for t, server in servers.items()]
        if "recsmith" in servers and aws_load is not None:
            plan.insert(1, (AWS_LABEL, servers["recsmith"], aws_load))
        for repeat in range(1, args.repeats + 1):
            for label, server, target_load in plan:
                name = label if args.repeats == 1 else f"{label} #{repeat}"
                log(f"{label}: measured run {repeat}/{args.repeats}, {connections} connections, "
                    f"{args.duration:.0f} s")
                result = target_load.run(server.base_url, connections, args.duration, name, server.process.pid)
                result.extra["target"] = label
                results["runs"].append(result)
                log(f"{label}: {result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                    f"errors {result.errors}, server CPU by process {result.server_cpu_by_process}, machine busy "
                    f"{result.machine_busy}")
        if "recsmith" in servers and not args.no_update:
            update_run(servers["recsmith"], state, load, connections, args, results, log)
    for target, server in servers.items():
        results[target]["log_tail"] = server.log_tail(4000)


def update_run(server: Server, state: dict[str, Any], load: LoadSettings, connections: int,
               args: argparse.Namespace, results: dict[str, Any], log: Any) -> None:
    """A run with ``PUT .../campaigns/als`` half-way; then show the served version changed."""
    key = state["key"]
    campaign_url = f"{server.base_url}/v1/dataset-groups/synth/campaigns/als"
    probe_path = "/v1/dataset-groups/synth/campaigns/als/recommendations"
    probe_user = "u1"
    probe_body = {"user_id": probe_user, "num_results": 25, "exclude_seen": True}
    report: dict[str, Any] = {}
    status, before = http("GET", campaign_url, key=key)
    report["get_before"] = {"status": status, "body": before}
    versions, artifacts = state["synth"]["versions"], state["synth"]["artifacts"]
    current = before.get("solution_version_id") if isinstance(before, dict) else None
    new_index = 0 if current == versions[1] else 1
    new_version = versions[new_index]
    expected_new = expected_items(artifacts[new_index], probe_user, 25)
    expected_old = expected_items(artifacts[1 - new_index], probe_user, 25)
    _, first = http("POST", server.base_url + probe_path, probe_body, key)
    served_before = [i["item_id"] for i in first.get("items", [])] if isinstance(first, dict) else []
    report.update(new_solution_version_id=new_version, probe_user=probe_user,
                  probe_before_matches_old_version=served_before == expected_old,
                  versions_differ_for_probe=expected_new != expected_old)

    def updater() -> None:
        time.sleep(args.duration / 2)
        sent = time.perf_counter()
        status, answer = http("PUT", campaign_url, {"solution_version_id": new_version}, key=key)
        report["put"] = {"status": status, "body": answer, "seconds": round(time.perf_counter() - sent, 3)}
        # each probe opens a new connection, so they reach both workers; wait for 10 new answers in a row
        deadline, streak = sent + 120, 0
        report["served_new_version_after_s"] = None
        while time.perf_counter() < deadline and streak < 10:
            _, answer = http("POST", server.base_url + probe_path, probe_body, key)
            items = [i["item_id"] for i in answer.get("items", [])] if isinstance(answer, dict) else []
            streak = streak + 1 if items == expected_new else 0
            if streak == 1 and report.get("first_new_answer_after_s") is None:
                report["first_new_answer_after_s"] = round(time.perf_counter() - sent, 3)
                report["probe_answer_after"] = {k: v for k, v in answer.items() if k != "items"}
            if items != expected_new and items != expected_old:
                report.setdefault("probe_answers_of_neither_version", []).append(str(answer)[:300])
            time.sleep(0.05)
        if streak >= 10:
            report["served_new_version_after_s"] = round(time.perf_counter() - sent, 3)

    thread = threading.Thread(target=updater, daemon=True)
    log(f"recsmith: update run, {connections} connections, {args.duration:.0f} s, PUT als -> version {new_version} "
        f"at {args.duration / 2:.0f} s")
    thread.start()
    result = load.run(server.base_url, connections, args.duration, "recsmith, update mid-run", server.process.pid)
    thread.join(130)
    status, after = http("GET", campaign_url, key=key)
    report["get_after"] = {"status": status, "body": after}
    report["get_after_shows_new_version"] = isinstance(after, dict) and after.get("solution_version_id") == new_version
    result.extra["update"] = report
    result.extra["target"] = "recsmith, update mid-run"
    results["runs"].append(result)
    log(f"recsmith: update run {result.rps:.0f} req/s, p99 {result.p99_ms:.2f} ms, errors {result.errors}; "
        f"PUT {report.get('put', {}).get('status')} in {report.get('put', {}).get('seconds')} s; new version served "
        f"after {report.get('served_new_version_after_s')} s; GET after: {json.dumps(after)[:400]}")


# ------------------------------------------------------------------------------------------------- report
def summary_row(result: LoadResult) -> dict[str, Any]:
    row = asdict(result)
    row["errors"] = result.errors
    cpu = result.cpu_ms_per_request()
    row["server_cpu_ms_per_request"] = None if cpu is None else round(cpu, 3)
    row["busiest_process_cpu_share"] = busiest_share(result)
    row["extra"] = {k: v for k, v in result.extra.items() if k != "wrk_output"}
    row["wrk_output"] = result.extra.get("wrk_output")
    return row


def busiest_share(result: LoadResult) -> float | None:
    """The share of the server's CPU its busiest process used (~0.5 with two evenly loaded workers)."""
    by_process = result.server_cpu_by_process or {}
    total = sum(by_process.values())
    return round(max(by_process.values()) / total, 2) if total else None


def median_run(results: dict[str, Any], target: str) -> LoadResult | None:
    """The run of ``target`` with the median throughput (the lower middle one for an even count)."""
    runs = sorted((r for r in results["runs"] if r.extra.get("target") == target), key=lambda r: r.rps)
    return runs[(len(runs) - 1) // 2] if runs else None


def markdown(results: dict[str, Any]) -> str:
    lines = ["| run | conns | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU ms/req | busiest proc "
             "| machine busy | other programs |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    medians = {id(median_run(results, t)) for t in ("recsmith", "flask reference", AWS_LABEL)}
    for run in results["runs"]:
        cpu, share = run.cpu_ms_per_request(), busiest_share(run)
        label = run.label + (" (median)" if id(run) in medians and run.label != run.extra.get("target") else "")
        lines.append(f"| {label} | {run.connections} | {run.rps:,.0f} | {run.p50_ms:.2f} | {run.p90_ms:.2f} | "
                     f"{run.p99_ms:.2f} | {run.max_ms:.1f} | {run.errors} | {'-' if cpu is None else f'{cpu:.2f}'} | "
                     f"{'-' if share is None else f'{share:.0%}'} | "
                     f"{'-' if run.machine_busy is None else f'{run.machine_busy:.0%}'} | "
                     f"{'-' if run.other_cpu_share is None else f'{run.other_cpu_share:.0%}'} |")
    return "\n".join(lines)


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ours, flask = median_run(results, "recsmith"), median_run(results, "flask reference")
    if ours:
        out["throughput >= 1500 req/s"] = {"value": ours.rps, "pass": ours.rps >= TARGET_RPS}
        out["p50 <= 3 ms"] = {"value": ours.p50_ms, "pass": ours.p50_ms <= TARGET_P50_MS}
        out["p99 <= 15 ms"] = {"value": ours.p99_ms, "pass": ours.p99_ms <= TARGET_P99_MS}
        errors = sum(r.errors for r in results["runs"] if r.extra.get("target") == "recsmith")
        out["zero errors"] = {"value": errors, "pass": errors == 0}
    if ours and flask and flask.rps:
        out["throughput ratio recsmith / flask (medians)"] = {"value": round(ours.rps / flask.rps, 2)}
        pairs = list(zip([r for r in results["runs"] if r.extra.get("target") == "recsmith"],
                         [r for r in results["runs"] if r.extra.get("target") == "flask reference"], strict=False))
        if len(pairs) > 1:
            out["throughput ratio per run pair"] = {"value": [round(a.rps / b.rps, 2) for a, b in pairs if b.rps]}
    aws = median_run(results, AWS_LABEL)
    if ours and aws and ours.rps:
        ours_cpu, aws_cpu = ours.cpu_ms_per_request(), aws.cpu_ms_per_request()
        out["Personalize API / v1 throughput (medians)"] = {"value": round(aws.rps / ours.rps, 3)}
        if ours_cpu and aws_cpu:
            out["Personalize API overhead, server CPU ms per request (medians)"] = {
                "value": {"v1": round(ours_cpu, 3), "aws": round(aws_cpu, 3), "extra": round(aws_cpu - ours_cpu, 3),
                          "ratio": round(aws_cpu / ours_cpu, 3)}}
        pairs = list(zip([r for r in results["runs"] if r.extra.get("target") == "recsmith"],
                         [r for r in results["runs"] if r.extra.get("target") == AWS_LABEL], strict=False))
        out["Personalize API / v1 throughput per run pair"] = {"value": [round(b.rps / a.rps, 3) for a, b in pairs
                                                                         if a.rps]}
        out["Personalize API p50 / p99 ms (median run)"] = {"value": [aws.p50_ms, aws.p99_ms]}
        agreement_ = results["recsmith"].get("aws_agreement") or {}
        out["Personalize API answers equal /v1's"] = {
            "value": agreement_, "pass": bool(agreement_) and agreement_.get("identical_to_v1")
            == agreement_.get("lists_compared") and not results["recsmith"].get("aws_check_problems")}
    update = median_run(results, "recsmith, update mid-run")
    if update:
        info = update.extra.get("update", {})
        ok = (update.errors == 0 and info.get("put", {}).get("status") == 200
              and info.get("served_new_version_after_s") is not None)
        out["campaign update mid-run, zero failed requests"] = {
            "value": {"errors": update.errors, "put_status": info.get("put", {}).get("status"),
                      "new_version_served_after_s": info.get("served_new_version_after_s"),
                      "get_after_shows_new_version": info.get("get_after_shows_new_version")}, "pass": ok}
    return out


# --------------------------------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds per measured run.")
    parser.add_argument("--repeats", type=int, default=3, help="Measured runs per server (the median is judged).")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds of warm-up per server.")
    parser.add_argument("--connections", default="4", help="Open connections, or 'auto': the sweep's level with "
                        "the most req/s within the latency targets. Default 4: by Little's law, 1,500 req/s with a "
                        "p50 of 3 ms leaves room for about 4.5 requests in flight, so more connections only queue.")
    parser.add_argument("--sweep", default="2,4,8,16,32", help="Connection levels to try on recsmith first "
                                                               "('' to skip).")
    parser.add_argument("--sweep-duration", type=float, default=8.0, help="Seconds per sweep level.")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads.")
    parser.add_argument("--workers", type=int, default=2, help="Server worker processes (both servers).")
    parser.add_argument("--port", type=int, default=18765, help="Port of recsmith serve.")
    parser.add_argument("--flask-port", type=int, default=18766, help="Port of the Flask reference.")
    parser.add_argument("--targets", default="recsmith,flask", help="Which of recsmith,flask to run.")
    parser.add_argument("--no-update", action="store_true", help="Skip the mid-run campaign update run.")
    parser.add_argument("--aws", action="store_true", help="Also send the requests through Personalize's runtime "
                        "protocol (SigV4-signed) on the same server, alternating with /v1 (needs wrk and boto3).")
    parser.add_argument("--recsmith-env", action="append", default=[], metavar="NAME=VALUE",
                        help="Extra environment for recsmith serve (repeatable), e.g. OPENBLAS_NUM_THREADS=1.")
    parser.add_argument("--quiet-wait", type=float, default=120.0, help="Before each run, wait up to this many "
                        "seconds for other programs on the machine to go idle (0: don't).")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--requests", type=int, default=2000, help="Distinct pre-generated requests.")
    parser.add_argument("--check-requests", type=int, default=50, help="Requests checked one by one before load.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--movies-recipe", default="item-knn", help="Recipe of the movies campaign's version.")
    parser.add_argument("--movies-param", action="append", default=[], metavar="NAME=VALUE",
                        help="A param of the movies campaign's version (repeatable).")
    parser.add_argument("--campaigns", default="movies,synth", help="Which of the movies,synth campaigns the load "
                        "sends requests to (movies only: no synth group is built).")
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="Seconds to wait for GET /ready.")
    parser.add_argument("--home", type=Path, help="Use (and keep) this RECSMITH_HOME; setup steps already done "
                                                  "there are skipped. Default: a temporary folder, removed after.")
    parser.add_argument("--out", type=Path, help="Write the results as JSON here.")
    args = parser.parse_args()
    args.sweep_levels = [int(x) for x in args.sweep.split(",") if x.strip()]
    if args.connections == "auto" and not args.sweep_levels:
        parser.error("--connections auto needs --sweep")
    args.connections_level = None if args.connections == "auto" else int(args.connections)
    pairs = [item.partition("=") for item in args.recsmith_env]
    if any(not sep or not name for name, sep, _ in pairs):
        parser.error("--recsmith-env takes NAME=VALUE")
    args.recsmith_env = {name: value for name, _, value in pairs}
    return args


def main() -> None:
    args = parse_args()
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    if generator == "python":
        log("wrk not found (or --generator python): using the Python httpx load generator, which is much slower "
            "than wrk; throughput may be limited by the generator")
    temporary = args.home is None
    home = Path(tempfile.mkdtemp(prefix="recsmith-serve-load-")) if temporary else args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "python": sys.version.split()[0], "generator": generator},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "recsmith": {}, "flask": {}, "runs": [], "errors": {},
    }
    global CAMPAIGNS
    MOVIES_RECIPE[0] = args.movies_recipe
    MOVIES_PARAMS[:] = args.movies_param
    CAMPAIGNS = tuple(c for c in CAMPAIGNS if c[0] in args.campaigns.split(","))
    if not CAMPAIGNS:
        raise SystemExit("--campaigns names none of movies, synth")
    if "synth" not in args.campaigns.split(",") and "flask" in targets:
        targets.remove("flask")  # the reference app serves the synth group too
    try:
        state = load_state(home)
        setup_data(home, state, log)
        if "recsmith" in targets:
            try:
                setup_serving(home, state, log)
            except BenchError as exc:
                results["errors"]["recsmith setup"] = str(exc)
                log(f"recsmith setup FAILED: {exc}")
                targets.remove("recsmith")
        results["setup_seconds"] = state.get("setup_seconds")
        results["setup_created"] = state.get("created")
        catalogues = {group: read_catalogue(home, state, group) for group, _ in CAMPAIGNS}
        requests = make_requests(catalogues, args.requests, args.seed)
        script = write_lua(home / "serve_load.lua", requests, state.get("key", "none"), args.seed)
        load = LoadSettings(generator, args.threads, script, requests, state.get("key", "none"), args.quiet_wait, log)
        aws_load = None
        if args.aws and "recsmith" in targets:
            if generator != "wrk":
                raise SystemExit("--aws needs wrk (each request carries its own signed headers)")
            signed = aws_requests(requests)
            aws_script = home / "serve_load_aws.lua"

            def resign(base_url: str) -> None:
                write_lua(aws_script, signed, state["key"], args.seed, sign(base_url, signed, state["key"]))

            aws_load = LoadSettings(generator, args.threads, aws_script, signed, state["key"], args.quiet_wait, log,
                                    prepare=resign)
        try:
            run_all(home, state, load, args, [t for t in ("recsmith", "flask") if t in targets], catalogues, results,
                    log, aws_load)
        except BenchError as exc:
            results["errors"]["run"] = str(exc)
            log(f"FAILED: {exc}")
        lists_a = results["recsmith"].pop("_lists", None)
        lists_b = results["flask"].pop("_lists", None)
        if lists_a and lists_b:
            results["agreement_recsmith_vs_flask"] = agreement(lists_a, lists_b)
    finally:
        if temporary:
            shutil.rmtree(home, ignore_errors=True)
    results["verdicts"] = verdicts(results)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    print(markdown(results))
    print()
    for name, verdict in results["verdicts"].items():
        mark = "" if "pass" not in verdict else (" PASS" if verdict["pass"] else " FAIL")
        print(f"- {name}: {json.dumps(verdict['value'])}{mark}")
    if "sweep" in results["recsmith"]:
        sweep_rows = ", ".join(f"c={r['connections']}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f}"
                               for r in results["recsmith"]["sweep"])
        print(f"- recsmith sweep ({args.sweep_duration:g} s each): {sweep_rows}")
        print(f"- most req/s with p99 <= {TARGET_P99_MS:g} ms: "
              f"{json.dumps(results['recsmith'].get('sweep_best_within_p99'))}; with p50 <= {TARGET_P50_MS:g} ms too: "
              f"{json.dumps(results['recsmith'].get('sweep_best_within_p50_p99'))}")
    if "agreement_recsmith_vs_flask" in results:
        print(f"- same items as the Flask reference: {json.dumps(results['agreement_recsmith_vs_flask'])}")
    busy_elsewhere = [f"{run.label} ({run.other_cpu_share:.0%})" for run in results["runs"]
                      if (run.other_cpu_share or 0) > 0.1]
    if busy_elsewhere:
        print(f"- other programs used over 10% of the machine's CPU during: {', '.join(busy_elsewhere)}; "
              "those numbers are low")
    lopsided = [run.label for run in results["runs"] if (busiest_share(run) or 0) > 0.75]
    if lopsided and args.workers > 1:
        print(f"- one server process took over 75% of the server CPU (uneven connections across workers) in: "
              f"{', '.join(lopsided)}")
    for problem in results["recsmith"].get("aws_check_problems", [])[:3]:
        print(f"- recsmith Personalize API check: {problem}")
    for target in ("recsmith", "flask"):
        for problem in results[target].get("check_problems", [])[:3]:
            print(f"- {target} check: {problem}")
    for name, error in results["errors"].items():
        print(f"- {name} failed: {error.splitlines()[0] if error else ''}")
    if generator == "python":
        print("- load generator: Python httpx (wrk not found, or --generator python): much slower than wrk, so the "
              "numbers above may be the generator's limit, not the servers'")
    print(f"- total {results['total_seconds']} s")
    if args.out:
        serialisable = dict(results, runs=[summary_row(run) for run in results["runs"]])
        args.out.write_text(json.dumps(serialisable, indent=2, default=str))


if __name__ == "__main__":
    main()
