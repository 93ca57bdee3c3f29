"""Sequential recipes against the others on leave-last-out splits (issue 16, tables 1-3 and 5).

Every user's last item is the test item; the recipes train on the rest (the second-to-last item is what
``sasrec``'s early stopping holds out, for a share of the users). Full-catalogue ranking by default; with
``--sampled`` the test item is ranked against 100 items sampled uniformly from those the user never touched
(the SASRec paper's protocol: labelled "sampled").

    python benchmarks/sequential.py --dataset video --sampled --recipes sasrec,item-knn
    python benchmarks/sequential.py --dataset beauty --recipes sasrec,ease,item-knn,als
    python benchmarks/sequential.py --dataset ml-100k --recipes sasrec,gru4rec,ease,item-knn

Datasets (under ``$RECSMITH_DATASETS``, default ``../shared/datasets``): ``video`` (``sasrec/Video.txt``, the
paper's Amazon Games: one ``user item`` line per event, in time order), ``beauty``
(``s3rec-amazon-beauty/Beauty.txt``: one line per user, items in time order), ``ml-100k``, ``ml-latest-small``
(``ratings.csv``; the bundled copy when the folder lacks it). Files without times get each event's position as
its time, so the order is the file's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recsmith.data.interactions import Interactions
from recsmith.evaluation.evaluate import evaluate_recipes
from recsmith.evaluation.sampled import sampled_metrics
from recsmith.evaluation.split import split_leave_last
from recsmith.recipes import create
from recsmith.recipes.options import FitOptions
from recsmith.testing import datasets_dir

SASREC = {
    "video": {"max_len": 50, "dropout": 0.5, "batch_size": 256, "lr": 0.002, "patience": 3},
    "beauty": {"max_len": 50, "dropout": 0.5, "batch_size": 256, "lr": 0.002},
    "ml-100k": {"max_len": 200, "dropout": 0.2, "batch_size": 32, "lr": 0.002, "patience": 10},
    "ml-latest-small": {"max_len": 200, "dropout": 0.2, "batch_size": 32, "lr": 0.002, "patience": 10},
}
"""sasrec's params per dataset (the paper's max_len 50 and dropout 0.5 for the sparse Amazon sets, 200 and 0.2
for MovieLens; batches of 256 at lr 0.002 where epochs are long, of 32 where there are few users, with a
patience of 10 there since ndcg@10 of ~90 held-out steps is noisy); ``--param`` overrides them (JSON values)."""


def read_dataset(name: str) -> Interactions:
    """The dataset as interactions with times (positions where the file has none)."""
    root = datasets_dir()
    if name == "video":
        frame = pd.read_csv(root / "sasrec" / "Video.txt", sep=" ", names=["user", "item"], dtype=str)
        frame["timestamp"] = np.arange(len(frame))
    elif name == "beauty":
        users, items = [], []
        for line in (root / "s3rec-amazon-beauty" / "Beauty.txt").read_text().splitlines():
            user, *rest = line.split()
            users += [user] * len(rest)
            items += rest
        frame = pd.DataFrame({"user": users, "item": items, "timestamp": np.arange(len(users))})
    elif name == "ml-100k":
        frame = pd.read_csv(root / "ml-100k" / "u.data", sep="\t", names=["user", "item", "rating", "timestamp"])
    elif name == "ml-latest-small":
        path = root / "ml-latest-small" / "ratings.csv"
        if not path.is_file():
            from recsmith.datasets import bundled_path
            path = bundled_path("ml-latest-small") / "ratings.csv"
        frame = pd.read_csv(path).rename(columns={"userId": "user", "movieId": "item"})
    else:
        raise SystemExit(f"unknown dataset {name!r}")
    return Interactions.from_frame(frame, user="user", item="item", timestamp="timestamp")


def _progress(recipe):
    """Print each epoch's losses (iterative recipes)."""
    def report(done: int, total: int) -> None:
        history = getattr(recipe, "history_", [])
        if done and history:
            print(f"  {recipe.name} epoch {done}/{total}: {history[-1]}", file=sys.stderr, flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k", choices=sorted(SASREC))
    parser.add_argument("--recipes", default="sasrec,ease,item-knn")
    parser.add_argument("--sampled", action="store_true", help="rank against 100 uniform negatives (labelled)")
    parser.add_argument("--param", action="append", default=[], help="sasrec param override, NAME=JSON")
    parser.add_argument("--threads", type=int, default=0, help="training threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args()

    data = read_dataset(args.dataset)
    train, test = split_leave_last(data, n=1)
    print(f"{args.dataset}: {data.n_users} users, {data.n_items} items, {data.matrix.nnz} pairs; "
          f"leave-last: {test.matrix.nnz} test items", file=sys.stderr)
    overrides = {name: json.loads(value) for name, value in (p.split("=", 1) for p in args.param)}
    rows = []
    for recipe_name in args.recipes.split(","):
        params = (SASREC[args.dataset] | overrides) if recipe_name == "sasrec" else {}
        if recipe_name == "gru4rec":
            params = overrides
        recipe = create(recipe_name, **params)
        options = FitOptions(device=args.device, num_threads=args.threads, progress=_progress(recipe))
        started = time.perf_counter()
        if args.sampled:
            recipe.fit(train, options)
            fit_seconds = time.perf_counter() - started
            measured = sampled_metrics(recipe, train, test, ["hit_rate@10", "ndcg@10"], n_negatives=100,
                                       seed=42)
            row = {key: value for key, value in measured.items() if key.startswith("sampled_")}
        else:
            row = evaluate_recipes({recipe_name: recipe}, train, test, metrics=["hit_rate@10", "ndcg@10"],
                                   fit_options=options)[0]
            fit_seconds = time.perf_counter() - started
        history = getattr(recipe, "history_", [])
        epochs = [h for h in history if "seconds" in h]
        row = {"dataset": args.dataset, "recipe": recipe_name, "protocol": "sampled-100" if args.sampled else "full",
               **{k: round(float(v), 4) for k, v in row.items() if "@" in k},
               "seconds": round(fit_seconds, 1), "epochs": len(epochs),
               "best_epoch": getattr(recipe, "best_epoch_", None),
               "s_per_epoch": round(float(np.mean([h["seconds"] for h in epochs])), 2) if epochs else None,
               "threads": args.threads or (os.cpu_count() if recipe.tags.iterative else None),
               "params": params}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    metrics = [key for key in rows[0] if "@" in key]
    print("\n| recipe | " + " | ".join(metrics) + " | fit s | epochs (best) | s/epoch |")
    print("|---|" + "---|" * (len(metrics) + 3))
    for row in rows:
        print(f"| {row['recipe']} | " + " | ".join(f"{row[m]:.4f}" for m in metrics)
              + f" | {row['seconds']} | {row['epochs'] or ''} ({row['best_epoch'] or ''}) "
              f"| {row['s_per_epoch'] or ''} |")


if __name__ == "__main__":
    main()
