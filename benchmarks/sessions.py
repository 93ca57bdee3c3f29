"""Session-based recommendation on the Diginetica sample: gru4rec, session-knn, item-knn and popularity.

Usage::

    python benchmarks/sessions.py [--recipes gru4rec,session-knn,item-knn,popularity] [--test-days 7]
        [--k 20] [--threads 1] [--json]

Data: ``diginetica-sample/sample_train-item-views.csv`` of the shared datasets (SR-GNN's ``sample``: product
views, ``session_id;user_id;item_id;timeframe;eventdate``). Time order is ``eventdate`` then ``timeframe``;
an event's timestamp is its day (epoch seconds) plus ``timeframe`` (ms since its session's start) in seconds.
Sessions are the users of the training data (and are passed as its session ids).

Protocol (as SR-GNN splits Diginetica): the sessions whose last day falls in the last ``--test-days`` days of
the file are the test sessions, all earlier sessions train. Test events of items unknown to training are
dropped, then test sessions with fewer than 2 events left are dropped. Each test session's last item is
predicted from the rest (its earlier items in order, with their times), through
``recipe.recommend_for_queries([HistoryQuery(prefix, timestamps=...)])``, full-catalogue ranking with
``exclude_seen=False`` for every recipe (a session may view an item again, and its last item may be one of
the earlier ones). Reports MRR@k and HR@k (k = 20) and fit seconds. A recipe the registry lacks (gru4rec
on a branch without it) is skipped with a printed note.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from recsmith.evaluation.sessions import read_diginetica, split_sessions
from recsmith.recipes import FitOptions, available, create
from recsmith.testing import datasets_dir


def mrr_and_hr(ids: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """MRR@k and HR@k of one target per row (``ids`` the top-k, -1 padded)."""
    hits = ids == targets[:, None]
    found = hits.any(axis=1)
    rank = np.where(found, hits.argmax(axis=1) + 1, 0)
    reciprocal = np.where(found, 1.0 / np.maximum(rank, 1), 0.0)
    return float(reciprocal.mean()), float(found.mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="gru4rec,session-knn,item-knn,popularity")
    parser.add_argument("--test-days", type=int, default=7)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="fit threads (BLAS, torch)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--param", action="append", default=[], metavar="RECIPE.NAME=JSON",
                        help="a recipe's param, e.g. gru4rec.loss='\"bpr-max\"' (repeatable)")
    args = parser.parse_args(argv)
    params: dict[str, dict] = {}
    for given in args.param:
        key, _, value = given.partition("=")
        recipe_name, _, param = key.partition(".")
        params.setdefault(recipe_name, {})[param] = json.loads(value)
    path = datasets_dir() / "diginetica-sample" / "sample_train-item-views.csv"
    if not path.is_file():
        print(f"the Diginetica sample is absent ({path}); set RECSMITH_DATASETS", file=sys.stderr)
        return 1
    split = split_sessions(read_diginetica(path), args.test_days)
    names = args.recipes.split(",")
    registered = set(available())
    if args.threads and "gru4rec" in names and "gru4rec" in registered:
        try:  # torch only where a torch recipe runs
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    k = args.k
    rows, skipped = [], []
    for name in names:
        if name not in registered:
            print(f"note: recipe {name!r} is not registered here; skipped", file=sys.stderr, flush=True)
            skipped.append(name)
            continue
        recipe = create(name, **params.get(name, {}))
        start = time.perf_counter()
        recipe.fit(split.train, FitOptions(num_threads=args.threads))
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        recs = recipe.recommend_for_queries(split.queries, k=k, exclude_seen=False)
        rank_seconds = time.perf_counter() - start
        mrr, hr = mrr_and_hr(recs.ids, split.targets)
        rows.append({"recipe": name, "params": params.get(name, {}), f"mrr@{k}": round(mrr, 4),
                     f"hit_rate@{k}": round(hr, 4), "fit_seconds": round(fit_seconds, 3),
                     "rank_seconds": round(rank_seconds, 3)})
    info = {"dataset": "diginetica-sample", "test_days": args.test_days, "cut_day": split.cut_day,
            "train_sessions": split.train_sessions, "train_items": split.train.n_items,
            "test_sessions_in_window": split.test_sessions_read, "test_sessions": split.test_sessions,
            "exclude_seen": False, "skipped": skipped}
    if args.json:
        print(json.dumps({"setup": info, "rows": rows}, indent=2))
        return 0
    print(f"Diginetica sample: {info['train_sessions']} training sessions ({info['train_items']} items); test = the "
          f"{info['test_sessions_in_window']} sessions ending after {info['cut_day']} (last {args.test_days} days), "
          f"{info['test_sessions']} of them with >= 2 known events; last item predicted, exclude_seen=False")
    print()
    print(f"| recipe | MRR@{k} | HR@{k} | fit seconds |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['recipe']} | {row[f'mrr@{k}']:.4f} | {row[f'hit_rate@{k}']:.4f} | {row['fit_seconds']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
