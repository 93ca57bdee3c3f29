"""What erasure costs: ``Store.delete_user`` (events, linked sessions, ledger rows, tombstone, SQLite checkpoint)
and ``recsmith users delete --purge-models`` (rewriting the group's artifacts), on SQLite and PostgreSQL.

Usage::

    python benchmarks/erasure_cost.py --out erasure.json
    python benchmarks/erasure_cost.py --backends sqlite --users 2000 --events 200000 --deletes 20   # a quick look

Setup per backend, in a temporary ``RECSMITH_HOME``: a group with ``--events`` real-time events (synthetic, power-law
items, each user's events in two sessions, one of them anonymous first: the shape erasure has to follow) and
``--recipes`` versions trained on it (one ``als``, one ``item-knn`` by default). PostgreSQL is a fresh database
``--postgres-url`` (default ``recsmith_erasure_bench``, dropped and created).

Measured: the wall time of ``--deletes`` ``delete_user`` calls on random users (p50, p95, max, in ms) and of one
``purge_models`` run after them (seconds, with the number of artifacts rewritten). Run it on an idle machine:
timings taken while other work runs are not comparable.

The cost of the partial ``(dataset_group_id, session_id)`` index added for erasure falls on event ingestion:
compare ``benchmarks/events_load.py`` before and after migration 0007.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from recsmith.datasets.synthetic import synthetic_frame
from recsmith.jobs.erasure import purge_models
from recsmith.jobs.training import train_solution_version
from recsmith.settings import Settings
from recsmith.store.store import Store


def _store(backend: str, home: Path, postgres_url: str) -> tuple[Store, Settings]:
    if backend == "postgres":
        admin = sa.create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        name = postgres_url.rsplit("/", 1)[1]
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        settings = Settings(home=home, database_url=postgres_url)
    else:
        settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.migrate()
    return store, settings


def run(backend: str, args: argparse.Namespace) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"recsmith-erasure-{backend}-")) / "home"
    store, settings = _store(backend, home, args.postgres_url)
    group = store.create_dataset_group("g")
    frame = synthetic_frame(n_users=args.users, n_items=args.items, n_interactions=args.events, seed=1)
    rows = []
    for n, r in enumerate(frame.itertuples()):
        anonymous = n % 4 == 0  # a quarter of the events before signing in: stored under the session id
        session = f"s1-{r.USER_ID}" if n % 2 == 0 else f"s2-{r.USER_ID}"
        rows.append({"event_id": uuid.uuid4().hex, "user_id": session if anonymous and n % 2 == 0 else str(r.USER_ID),
                     "session_id": session, "item_id": str(r.ITEM_ID), "timestamp": int(r.TIMESTAMP),
                     "event_type": str(r.EVENT_TYPE)})
    for start in range(0, len(rows), 10_000):
        store.write_events(group.id, rows[start:start + 10_000])
    for recipe in args.recipes.split(","):
        params = {"factors": 16, "epochs": 5} if recipe == "als" else {}
        train_solution_version(store, settings, "g", recipe, params, with_metrics=False)
    users = sorted(set(frame.USER_ID.astype(str)))
    random.Random(0).shuffle(users)
    times = []
    for user in users[:args.deletes]:
        started = time.perf_counter()
        store.delete_user(group.id, user)
        times.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    report = purge_models(store, settings, "g")
    purge_seconds = time.perf_counter() - started
    store.close()
    times.sort()
    return {"backend": backend, "events": args.events, "users": args.users, "deletes": len(times),
            "delete_ms_p50": round(statistics.median(times), 2),
            "delete_ms_p95": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2),
            "delete_ms_max": round(times[-1], 2), "purge_seconds": round(purge_seconds, 3),
            "artifacts_rewritten": len(report.rewritten)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--deletes", type=int, default=100)
    parser.add_argument("--recipes", default="als,item-knn")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/recsmith_erasure_bench")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = [run(backend, args) for backend in args.backends.split(",")]
    for result in results:
        print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
