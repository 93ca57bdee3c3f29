"""Import speed and training-read speed on a synthetic interactions CSV.

Usage::

    python benchmarks/import_speed.py --rows 1000000
    python benchmarks/import_speed.py --rows 1000000 --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Writes a CSV of ``rows`` interactions (userId,movieId,rating,timestamp; ~50k users, 20k items with a
Zipf-like item popularity), imports it with the same code path as ``recsmith import interactions`` (read,
validate, one transaction), and then times the training read: the store's rows into an
``Interactions`` CSR matrix, as ``recsmith train`` does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recsmith.jobs.importing import import_dataset
from recsmith.jobs.training import load_interactions
from recsmith.settings import Settings
from recsmith.store.store import Store

MAP = {"userId": "USER_ID", "movieId": "ITEM_ID", "rating": "EVENT_VALUE", "timestamp": "TIMESTAMP"}


def make_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 50_001, rows)
    items = np.minimum(rng.zipf(1.3, rows), 20_000)
    frame = pd.DataFrame({
        "userId": users, "movieId": items, "rating": rng.integers(1, 11, rows) / 2.0,
        "timestamp": rng.integers(1_500_000_000, 1_700_000_000, rows),
    })
    frame.to_csv(path, index=False)


def run(label: str, store: Store, csv: Path, rows: int) -> None:
    started = time.perf_counter()
    report = import_dataset(store, "bench", "interactions", str(csv), column_map=MAP, mode="full")
    import_seconds = time.perf_counter() - started
    assert report.rows_loaded == rows, report
    started = time.perf_counter()
    columns = store.read_interactions(store.get_dataset_group("bench").id)
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    interactions = load_interactions(store, "bench")
    snapshot_seconds = time.perf_counter() - started
    print(f"{label}: import {rows:,} rows in {import_seconds:.2f} s = {rows / import_seconds:,.0f} rows/s; "
          f"read rows into arrays {read_seconds:.2f} s; full training read (rows -> Interactions "
          f"{interactions.n_users:,} x {interactions.n_items:,}, nnz {interactions.nnz:,}) {snapshot_seconds:.2f} s "
          f"[{len(columns['user_id']):,} rows]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "interactions.csv"
        make_csv(csv, args.rows)
        print(f"CSV: {csv.stat().st_size / 1e6:.1f} MB, {args.rows:,} rows")
        store = Store.from_settings(Settings(home=Path(tmp) / "home"))
        store.migrate()
        run("sqlite", store, csv, args.rows)
        store.close()
        if args.postgres_url:
            store = Store(args.postgres_url)
            store.migrate()
            run("postgresql", store, csv, args.rows)
            store.delete_dataset_group("bench")
            store.close()


if __name__ == "__main__":
    main()
