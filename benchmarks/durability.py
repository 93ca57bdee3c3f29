"""What durability and encryption at rest cost: events/s of the real-time event path with SQLite's ``synchronous``
at normal vs full, and campaign load time of a trained artifact with and without encryption.

Usage::

    python benchmarks/durability.py --out durability.json                     # the measured run
    python benchmarks/durability.py --duration 2 --repeats 2 --recipes item-knn --batch-sizes 10   # a quick look
    python benchmarks/durability.py --skip-load                                 # only events/s
    python benchmarks/durability.py --skip-events --recipes item-knn,als,ease   # only load times

Events (``--skip-events`` to skip). For each ``--synchronous`` level (default ``normal,full``) a fresh SQLite store
(WAL) in ``--dir`` (default: a temporary folder under the current directory, not ``/tmp``, which may be a tmpfs
where fsync costs nothing; the filesystem type is printed) with ``RECSMITH_SQLITE_SYNCHRONOUS`` at that level.
``--threads`` writer threads (default 4, as ``--workers 2`` servers with several connections commit concurrently)
call ``Store.record_events`` (what ``POST .../events`` commits: one transaction per request batch, unique
``event_id``s, the group's watermark moved) with batches of ``--batch-sizes`` events (default 1,10,100) for
``--duration`` seconds after a ``--warmup``. Reported: events/s, commits/s and the p50/p99 latency of one commit,
and full's events/s as a share of normal's. HTTP overhead is left out on purpose (``benchmarks/events_load.py``
measures the whole path): this isolates what the setting changes, the fsync at each commit.

Load (``--skip-load`` to skip). The bundled ml-latest-small is imported into a store and each ``--recipes`` recipe
(default ``item-knn,als``) trained twice through the training job, without and with ``RECSMITH_ENCRYPTION_KEY`` (a
random key). Then, ``--repeats`` times each (median reported, page cache warm after the first): ``TrainedModel.load``
of the plain artifact memory-mapped (what serving does), of the plain one read into memory, of the encrypted one
(decrypted into memory: never memory-mapped); and the campaign load (``serving.campaign.load_version``: the artifact,
the catalogue and one warm-up request), plain and encrypted. Also the artifact's size.

Prints markdown tables; ``--out`` writes everything as JSON (with ``os.cpu_count()`` and the filesystem). Other
programs running on the machine distort the figures: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from recsmith.datasets import load_dataset  # noqa: E402
from recsmith.jobs.training import train_solution_version  # noqa: E402
from recsmith.recipes.bundle import TrainedModel  # noqa: E402
from recsmith.serving.campaign import load_version  # noqa: E402
from recsmith.settings import Settings  # noqa: E402
from recsmith.store.store import Store  # noqa: E402


def filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts; "unknown" elsewhere)."""
    best, kind = "", "unknown"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and resolved.startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ----------------------------------------------------------------------------------------------- events
def measure_events(folder: Path, level: str, batch: int, threads: int, duration: float, warmup: float
                   ) -> dict[str, Any]:
    """Writer threads calling Store.record_events for ``duration`` seconds on a fresh store at ``level``."""
    home = folder / f"events-{level}-{batch}"
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings(home=home, sqlite_synchronous=level)  # type: ignore[arg-type]
    store = Store.from_settings(settings)
    store.migrate()
    group = store.create_dataset_group("bench")
    run = uuid.uuid4().hex[:8]
    stop = threading.Event()
    measuring = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    counts = [0] * threads

    def writer(index: int) -> None:
        sequence = 0
        while not stop.is_set():
            events = [{"user_id": f"u{(index * 7919 + sequence + i) % 5000}", "item_id": f"i{(sequence + i) % 2000}",
                       "timestamp": 1_700_000_000 + sequence, "event_type": "click",
                       "event_id": f"{run}-{index}-{sequence}-{i}"} for i in range(batch)]
            started = time.perf_counter()
            result = store.record_events(group.id, events, group_name="bench")
            elapsed = time.perf_counter() - started
            sequence += 1
            if measuring.is_set():
                latencies[index].append(elapsed)
                counts[index] += result.accepted

    pool = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    time.sleep(warmup)
    measuring.set()
    started = time.perf_counter()
    time.sleep(duration)
    measuring.clear()
    seconds = time.perf_counter() - started
    stop.set()
    for thread in pool:
        thread.join()
    store.close()
    every = [value for values in latencies for value in values]
    shutil.rmtree(home, ignore_errors=True)
    return {"synchronous": level, "batch_size": batch, "threads": threads, "seconds": round(seconds, 2),
            "events": sum(counts), "events_per_second": round(sum(counts) / seconds, 1),
            "commits_per_second": round(len(every) / seconds, 1),
            "commit_p50_ms": round(percentile(every, 0.50) * 1000, 3),
            "commit_p99_ms": round(percentile(every, 0.99) * 1000, 3)}


# ------------------------------------------------------------------------------------------------- load
def median_seconds(action: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 4)


def size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6, 2)


def measure_loads(folder: Path, recipes: list[str], repeats: int) -> list[dict[str, Any]]:
    """Train each recipe on ml-latest-small without and with encryption, then time the loads."""
    key = base64.b64encode(os.urandom(32)).decode()
    plain = Settings(home=folder / "load")
    encrypted = Settings(home=folder / "load", encryption_key=key)
    store = Store.from_settings(plain)
    store.migrate()
    load_dataset(store, "ml-latest-small", "movies")
    rows = []
    for recipe in recipes:
        versions = {}
        for label, settings in (("plain", plain), ("encrypted", encrypted)):
            versions[label] = train_solution_version(store, settings, "movies", recipe, with_metrics=False,
                                                     solution_name=f"{recipe}-{label}")
        plain_path = Path(versions["plain"]["artifact_uri"])
        encrypted_path = Path(versions["encrypted"]["artifact_uri"])
        row = {
            "recipe": recipe, "artifact_mb": size_mb(plain_path), "encrypted_mb": size_mb(encrypted_path),
            "load_mmap_s": median_seconds(lambda p=plain_path: TrainedModel.load(p, mmap=True), repeats),
            "load_memory_s": median_seconds(lambda p=plain_path: TrainedModel.load(p, mmap=False), repeats),
            "load_encrypted_s": median_seconds(
                lambda p=encrypted_path: TrainedModel.load(p, mmap=True, encryption_key=key), repeats),
            "campaign_plain_s": median_seconds(
                lambda v=versions["plain"]["id"]: load_version(store, v), repeats),
            "campaign_encrypted_s": median_seconds(
                lambda v=versions["encrypted"]["id"]: load_version(store, v, encryption_key=key), repeats),
        }
        row["campaign_encrypted_over_plain"] = round(row["campaign_encrypted_s"] / row["campaign_plain_s"], 2)
        rows.append(row)
    store.close()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="Where the stores go (default: ./.durability-*).")
    parser.add_argument("--synchronous", default="normal,full", help="SQLite synchronous levels to compare.")
    parser.add_argument("--batch-sizes", default="1,10,100")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--recipes", default="item-knn,als")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-events", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="Write the results as JSON.")
    args = parser.parse_args(argv)

    folder = args.dir or Path(tempfile.mkdtemp(prefix=".durability-", dir=Path.cwd()))
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "filesystem": filesystem(folder), "dir": str(folder)}
    print(f"stores in {folder} ({results['filesystem']}), {os.cpu_count()} CPUs", flush=True)
    try:
        if not args.skip_events:
            events = []
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                by_level = {}
                for level in args.synchronous.split(","):
                    row = measure_events(folder, level.strip(), batch, args.threads, args.duration, args.warmup)
                    by_level[row["synchronous"]] = row
                    events.append(row)
                if "normal" in by_level:
                    for row in by_level.values():
                        row["vs_normal"] = round(row["events_per_second"] / by_level["normal"]["events_per_second"],
                                                 3)
            results["events"] = events
            print("\n## events/s, Store.record_events\n\n" + table(events), flush=True)
        if not args.skip_load:
            loads = measure_loads(folder, [r.strip() for r in args.recipes.split(",")], args.repeats)
            results["load"] = loads
            print("\n## campaign load time (median seconds), ml-latest-small\n\n" + table(loads), flush=True)
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
