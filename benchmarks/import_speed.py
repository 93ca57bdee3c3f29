"""Import speed and training-read speed on a synthetic interactions CSV.

Usage::

    python benchmarks/import_speed.py --rows 1000000
    python benchmarks/import_speed.py --rows 1000000 --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python benchmarks/import_speed.py --rows 1000000 --baseline-commit 54a7130 --repeats 5

Writes a CSV of ``rows`` interactions (userId,movieId,rating,timestamp; ~50k users, 20k items with a
Zipf-like item popularity), imports it with the same code path as ``recsmith import interactions`` (read,
validate, one transaction), and then times the training read: the store's rows into an
``Interactions`` CSR matrix, as ``recsmith train`` does.

``--baseline-commit`` also runs the same benchmark on an older commit's code (``git archive`` of its ``src/``
into a temporary folder, put first on ``PYTHONPATH``): each run is a fresh process on a fresh store (a new
SQLite file; a new PostgreSQL schema), the two codes' runs interleaved, ``--repeats`` times each; it prints
both codes' best and median rows/s and their ratio, of wall time and of the importing process's CPU time
(the steadier of the two on a machine that other work shares; PostgreSQL's own CPU is not in it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

MAP = {"userId": "USER_ID", "movieId": "ITEM_ID", "rating": "EVENT_VALUE", "timestamp": "TIMESTAMP"}
REPO = Path(__file__).resolve().parents[1]


def make_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 50_001, rows)
    items = np.minimum(rng.zipf(1.3, rows), 20_000)
    frame = pd.DataFrame({
        "userId": users, "movieId": items, "rating": rng.integers(1, 11, rows) / 2.0,
        "timestamp": rng.integers(1_500_000_000, 1_700_000_000, rows),
    })
    frame.to_csv(path, index=False)


def run(label: str, store, csv: Path, rows: int) -> tuple[float, float]:
    """Import ``csv`` into a migrated ``store`` and read it back for training; prints a line, returns rows/s
    of wall time and of this process's CPU time (steadier than wall time on a shared machine)."""
    from recsmith.jobs.importing import import_dataset
    from recsmith.jobs.training import load_interactions

    started, cpu = time.perf_counter(), time.process_time()
    report = import_dataset(store, "bench", "interactions", str(csv), column_map=MAP, mode="full")
    import_seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    assert report.rows_loaded == rows, report
    started = time.perf_counter()
    columns = store.read_interactions(store.get_dataset_group("bench").id)
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    interactions = load_interactions(store, "bench")
    snapshot_seconds = time.perf_counter() - started
    print(f"{label}: import {rows:,} rows in {import_seconds:.2f} s = {rows / import_seconds:,.0f} rows/s "
          f"(CPU {cpu_seconds:.2f} s); "
          f"read rows into arrays {read_seconds:.2f} s; full training read (rows -> Interactions "
          f"{interactions.n_users:,} x {interactions.n_items:,}, nnz {interactions.nnz:,}) {snapshot_seconds:.2f} s "
          f"[{len(columns['user_id']):,} rows]", flush=True)
    return rows / import_seconds, rows / cpu_seconds


def run_once(label: str, csv: Path, rows: int, postgres_url: str | None) -> tuple[float, float]:
    """One run on a fresh store: a new SQLite file, or a new schema of the PostgreSQL database (dropped after)."""
    from recsmith.settings import Settings
    from recsmith.store.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        if postgres_url is None:
            store = Store.from_settings(Settings(home=Path(tmp) / "home"))
            store.migrate()
            try:
                return run(label, store, csv, rows)
            finally:
                store.close()
        import sqlalchemy as sa

        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(postgres_url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        store = Store(postgres_url + ("&" if "?" in postgres_url else "?") + f"options=-csearch_path%3D{schema}")
        try:
            store.migrate()
            return run(label, store, csv, rows)
        finally:
            store.close()
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()


def compare(args: argparse.Namespace, csv: Path, tmp: Path) -> None:
    """Interleaved runs of this checkout's code and ``args.baseline_commit``'s, each in a fresh process."""
    baseline = tmp / "baseline"
    baseline.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline_commit, "src"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.baseline_commit],
                            check=True, capture_output=True, text=True).stdout.strip()
    codes = {"current": REPO / "src", commit: baseline / "src"}
    backends = [("sqlite", None)] + ([("postgresql", args.postgres_url)] if args.postgres_url else [])
    for backend, url in backends:
        rates: dict[str, list[tuple[float, float]]] = {name: [] for name in codes}  # (wall, CPU) rows/s
        for repeat in range(args.repeats):
            order = list(codes) if repeat % 2 == 0 else list(codes)[::-1]
            for name in order:
                command = [sys.executable, __file__, "--rows", str(args.rows), "--csv", str(csv),
                           "--label", f"{backend} {name} #{repeat + 1}"]
                if url:
                    command += ["--postgres-url", url]
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                    [str(codes[name])] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
                out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
                lines = out.strip().splitlines()
                print(*lines[:-1], sep="\n", flush=True)
                result = json.loads(lines[-1])
                rates[name].append((result["rows_per_s"], result["cpu_rows_per_s"]))
        for i, what in enumerate(("rows/s", "rows per CPU second")):
            ours, theirs = (np.array([rate[i] for rate in rates[name]]) for name in ("current", commit))
            print(f"{backend}: best of {args.repeats}: current {ours.max():,.0f} {what}, {commit} {theirs.max():,.0f} "
                  f"{what}, ratio {ours.max() / theirs.max():.2f}x (medians {np.median(ours):,.0f} / "
                  f"{np.median(theirs):,.0f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--baseline-commit", default=None, help="also run this commit's code, interleaved")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each code with --baseline-commit")
    parser.add_argument("--csv", type=Path, default=None, help=argparse.SUPPRESS)  # a child run of compare()
    parser.add_argument("--label", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.csv is not None:  # one run in this process, on the recsmith that PYTHONPATH finds
        rate, cpu_rate = run_once(args.label, args.csv, args.rows, args.postgres_url)
        print(json.dumps({"rows_per_s": rate, "cpu_rows_per_s": cpu_rate}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "interactions.csv"
        make_csv(csv, args.rows)
        print(f"CSV: {csv.stat().st_size / 1e6:.1f} MB, {args.rows:,} rows", flush=True)
        if args.baseline_commit:
            compare(args, csv, Path(tmp))
            return
        run_once("sqlite", csv, args.rows, None)
        if args.postgres_url:
            run_once("postgresql", csv, args.rows, args.postgres_url)


if __name__ == "__main__":
    main()
