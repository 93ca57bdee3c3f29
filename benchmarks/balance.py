"""Connection balance over the server's workers: the spread of throughput over many keep-alive load runs.

Usage::

    python benchmarks/balance.py --runs 10 --out balance.json
    python benchmarks/balance.py --runs 2 --duration 3 --warmup 1 --quiet-wait 0     # a quick check that it runs

Setup (a temporary ``RECSMITH_HOME`` unless ``--home``): ``serve_load.setup_small``, i.e. the bundled
ml-latest-small as group ``movies`` with an ``item-knn`` campaign ``knn``, a filter ``genre`` and keys. One
``recsmith serve --workers W`` (``--workers``, default 2) is started; after a warm-up, ``--runs`` load runs of
``--duration`` seconds each open ``--connections`` (default 4) new keep-alive connections (wrk, else the slower
Python generator) sending ``POST .../campaigns/knn/recommendations`` for known users, the genre filter on half.

Each run records requests/s, p50/p99 and the CPU seconds of each server process (from /proc); a connection
placement that puts every connection on one worker shows as one process with nearly all of the CPU ("busiest
share" near 100 % instead of 1/W). Printed: a row per run, then min / median / max of requests/s and of the busiest
share, and how many runs had a busiest share over 75 %. To compare two versions of the code, run it with
``PYTHONPATH=<that tree>/src`` (the ``recsmith`` CLI imports from PYTHONPATH first).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from serve_load import (
    LoadSettings,
    home_env,
    load_state,
    read_catalogue,
    recsmith_command,
    serve,
    setup_small,
    write_lua,
)

PATH = "/v1/dataset-groups/movies/campaigns/knn/recommendations"


def make_requests(home: Path, state: dict[str, Any], count: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` random requests of the ``movies/knn`` campaign, the genre filter on half."""
    catalogue = read_catalogue(home, state, "movies")
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        body: dict[str, Any] = {"user_id": rng.choice(catalogue.users), "num_results": 25, "exclude_seen": True}
        if rng.random() < 0.5:
            body["filter"] = "genre"
            body["filter_values"] = {"GENRE": rng.choice(catalogue.genres)}
        out.append((PATH, body))
    return out


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="Measured load runs.")
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds per run.")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds of warm-up before the runs.")
    parser.add_argument("--connections", type=int, default=4, help="Keep-alive connections per run.")
    parser.add_argument("--workers", type=int, default=2, help="recsmith serve --workers.")
    parser.add_argument("--port", type=int, default=18767)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads.")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--requests", type=int, default=1000, help="Distinct pre-generated requests.")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="Before each run, wait up to this many "
                        "seconds for other programs to leave the machine idle (0: don't).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--home", type=Path, help="Use (and keep) this RECSMITH_HOME; done setup steps are skipped.")
    parser.add_argument("--out", type=Path, help="Write the results as JSON here.")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    temporary = args.home is None
    home = Path(tempfile.mkdtemp(prefix="recsmith-balance-")) if temporary else args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    try:
        state = load_state(home)
        setup_small(home, state, log)
        key = state["small"]["read_key"]
        requests = make_requests(home, state, args.requests, args.seed)
        script = write_lua(home / "balance.lua", requests, key, args.seed)
        load = LoadSettings(generator, args.threads, script, requests, key, args.quiet_wait, log)
        command = [*recsmith_command(), "serve", "--host", "127.0.0.1", "--port", str(args.port),
                   "--workers", str(args.workers)]
        with serve("recsmith", command, home_env(home), args.port, home / "balance-serve.log",
                   args.ready_timeout) as server:
            load.run(server.base_url, args.connections, args.warmup, "warm-up", server.process.pid)
            for run in range(1, args.runs + 1):
                result = load.run(server.base_url, args.connections, args.duration, f"run {run}", server.process.pid)
                by_process = result.server_cpu_by_process or {}
                total = sum(by_process.values())
                row = {"run": run, "rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
                       "errors": result.errors, "cpu_s_by_process": dict(sorted(by_process.items(),
                                                                                key=lambda kv: -kv[1])),
                       "busiest_share": round(max(by_process.values()) / total, 3) if total else None,
                       "other_programs_share": result.other_cpu_share}
                rows.append(row)
                log(f"run {run}/{args.runs}: {result.rps:.0f} req/s, p99 {result.p99_ms:.2f} ms, CPU s by process "
                    f"{row['cpu_s_by_process']}, busiest {row['busiest_share']}")
    finally:
        if temporary:
            shutil.rmtree(home, ignore_errors=True)
    print("| run | req/s | p50 ms | p99 ms | errors | CPU s per server process | busiest share | other programs |\n"
          "|---:|---:|---:|---:|---:|---|---:|---:|")
    for row in rows:
        cpu = ", ".join(f"{seconds:.2f}" for seconds in row["cpu_s_by_process"].values())
        print(f"| {row['run']} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['errors']} | "
              f"{cpu} | {row['busiest_share'] or 0:.0%} | {row['other_programs_share'] or 0:.0%} |")
    summary: dict[str, Any] = {}
    if rows:
        summary["rps"] = spread([row["rps"] for row in rows])
        shares = [row["busiest_share"] for row in rows if row["busiest_share"] is not None]
        summary["busiest_share"] = spread(shares) if shares else None
        summary["runs_over_75_percent"] = sum(share > 0.75 for share in shares)
        print(f"\n- req/s over {len(rows)} runs: min {summary['rps']['min']:,.0f}, median "
              f"{summary['rps']['median']:,.0f}, max {summary['rps']['max']:,.0f} (max/min "
              f"{summary['rps']['max'] / max(summary['rps']['min'], 1e-9):.2f})")
        if shares:
            print(f"- busiest server process's share of the server CPU: min {min(shares):.0%}, median "
                  f"{statistics.median(shares):.0%}, max {max(shares):.0%} (even: {1 / args.workers:.0%}); runs over "
                  f"75 %: {summary['runs_over_75_percent']}")
    print(f"- generator {generator}{' (slow: may limit the numbers)' if generator == 'python' else ''}; "
          f"{args.connections} connections, {args.workers} workers, {args.duration:g} s per run")
    if args.out:
        args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "generator": generator,
                                        "runs": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
