"""Spark ``local[N]`` ALS against the local ``als`` (implicit) on synthetic logs of growing size.

Usage::

    python benchmarks/spark_scale.py                        # 1M and 5M interactions, both engines
    python benchmarks/spark_scale.py --sizes 20000000 --engines spark --driver-memory 12g
    python benchmarks/spark_scale.py --sizes 1000000 --factors 64 --epochs 10 --master 'local[2]'

Sizes scale users and items with the interactions (``--users-per-million 20000``, ``--items-per-million
4000``: 5M interactions are the issue's 100,000 users × 20,000 items). Each (size, engine) runs in its own
child process, so its peak memory is its own; the child builds the weighted matrix as training does
(:class:`~recsmith.data.interactions.Interactions` from :func:`recsmith.datasets.synthetic.synthetic_frame`),
then times ``recipe.fit`` alone: for Spark that is the engine's whole fit (the ratings written as Parquet,
ALS, the factors collected back), without the session's start, which is reported apart.

Peak memory is sampled every 50 ms over the child's process tree (the Python driver and, for Spark, the JVM it
starts), summing each process's RSS from ``/proc``: ``peak_rss_mib`` is the largest sum seen, and ``data_rss_mib``
the sum just before the fit (the data snapshot both engines hold). A child that runs past ``--time-limit`` is
stopped (with its JVM) and reported with the time it ran and the peak the parent saw over its tree so far. Both
engines use the same factors and iterations. The machine may be shared: compare rows of one run, and note the
load (the 1-minute load average before and after the fit is printed per row).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def tree_rss_bytes(root: int) -> int:
    """The summed RSS of ``root`` and its descendants, from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


class PeakSampler:
    """Samples :func:`tree_rss_bytes` of process ``root`` (default: this one) in a thread; ``peak`` is the
    largest sum seen."""

    def __init__(self, root: int | None = None, interval: float = 0.05) -> None:
        self.root = os.getpid() if root is None else root
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.root))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self.peak = tree_rss_bytes(self.root)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def child(args: argparse.Namespace) -> None:
    from recsmith.data.interactions import Interactions
    from recsmith.datasets.synthetic import synthetic_frame
    from recsmith.recipes import FitOptions, create

    users = max(1, args.interactions * args.users_per_million // 1_000_000)
    items = max(1, args.interactions * args.items_per_million // 1_000_000)
    frame = synthetic_frame(n_users=users, n_items=items, n_interactions=args.interactions, seed=0)
    data = Interactions.from_frame(frame, user="USER_ID", item="ITEM_ID", timestamp="TIMESTAMP")
    del frame
    recipe = create("als", factors=args.factors, epochs=args.epochs)
    row: dict[str, object] = {"engine": args.child, "interactions": args.interactions, "users": data.n_users,
                              "items": data.n_items, "pairs": data.nnz, "factors": args.factors,
                              "epochs": args.epochs}
    engine = None
    if args.child == "spark":
        from recsmith.engines.spark import SparkEngine

        started = time.perf_counter()
        engine = SparkEngine(args.master, conf={"spark.driver.memory": args.driver_memory}).__enter__()
        row |= {"master": args.master, "driver_memory": args.driver_memory,
                "session_start_seconds": round(time.perf_counter() - started, 1)}
    try:
        data_rss = tree_rss_bytes(os.getpid())
        load_before = os.getloadavg()[0]
        with PeakSampler() as sampler:
            started = time.perf_counter()
            recipe.fit(data, FitOptions(engine=engine))
            seconds = time.perf_counter() - started
    finally:
        if engine is not None:
            engine.close()
    row |= {"fit_seconds": round(seconds, 1), "data_rss_mib": round(data_rss / 2**20),
            "peak_rss_mib": round(sampler.peak / 2**20), "load_1min": [round(load_before, 2),
                                                                       round(os.getloadavg()[0], 2)]}
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,5000000", help="Interactions, comma-separated.")
    parser.add_argument("--engines", default="local,spark")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--users-per-million", type=int, default=20_000)
    parser.add_argument("--items-per-million", type=int, default=4_000)
    parser.add_argument("--time-limit", type=float, default=590.0,
                        help="Seconds per child; one that runs longer is stopped and reported with its peak so far.")
    parser.add_argument("--interactions", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    for size in (int(s) for s in args.sizes.split(",")):
        for engine in args.engines.split(","):
            command = [sys.executable, __file__, "--child", engine, "--interactions", str(size),
                       "--factors", str(args.factors), "--epochs", str(args.epochs), "--master", args.master,
                       "--driver-memory", args.driver_memory, "--users-per-million", str(args.users_per_million),
                       "--items-per-million", str(args.items_per_million)]
            started = time.perf_counter()
            child_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                             start_new_session=True)
            with PeakSampler(child_process.pid, interval=0.2) as sampler:
                try:
                    stdout, stderr = child_process.communicate(timeout=args.time_limit)
                except subprocess.TimeoutExpired:
                    os.killpg(child_process.pid, signal.SIGKILL)  # the child's session: it and its JVM
                    stdout, stderr = child_process.communicate()
            lines = [line for line in stdout.splitlines() if line.startswith("{")]
            if lines:
                print(lines[-1], flush=True)
                continue
            timed_out = child_process.returncode == -signal.SIGKILL
            print(json.dumps({"engine": engine, "interactions": size, "factors": args.factors, "epochs": args.epochs,
                              "timed_out": timed_out, "seconds": round(time.perf_counter() - started, 1),
                              "peak_rss_mib_so_far": round(sampler.peak / 2**20), "exit": child_process.returncode,
                              "stderr": "" if timed_out else stderr[-800:]}), flush=True)

if __name__ == "__main__":
    main()
