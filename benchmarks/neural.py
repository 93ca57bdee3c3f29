"""The PyTorch recipes (neumf, two-tower, fm) against our ease and als: top-N accuracy and training speed.

Usage::

    python benchmarks/neural.py [--datasets ml-100k,ml-latest-small] [--recipes neumf,two-tower,fm,ease,als]
        [--device cpu|cuda|auto] [--quantize] [--threads 0]

Protocol (issue 15, target 2): random per-user split, test fraction 0.2, seed 42, full-catalogue ranking with
seen items excluded: ndcg@10 and recall@20. Also the NCF paper's sampled protocol, labelled sampled:
HR@10 / NDCG@10 of each held-out item ranked against 100 uniformly sampled unseen items (seed 0). Every
rating counts as one positive interaction. Reports fit seconds, the seconds per epoch of the torch recipes
(mean over the epochs run, from ``history_``), the epochs run (early stopping) and the device. ``--quantize``
adds an int8 row for each torch recipe (accuracy effect of ``quantize=True``).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from recsmith.data.interactions import Interactions
from recsmith.evaluation.evaluate import evaluate_recipes
from recsmith.evaluation.sampled import sampled_metrics
from recsmith.evaluation.split import split_random
from recsmith.recipes import create
from recsmith.recipes.options import FitOptions
from recsmith.testing import datasets_dir

TORCH = ("neumf", "two-tower", "fm")


def load(name: str) -> Interactions | None:
    """ml-100k or ml-latest-small from the shared datasets (None when absent)."""
    root = datasets_dir()
    if name == "ml-100k":
        path = root / "ml-100k" / "u.data"
        if not path.is_file():
            return None
        frame = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "ts"])
    else:
        path = root / "ml-latest-small" / "ratings.csv"
        if not path.is_file():
            return None
        frame = pd.read_csv(path).rename(columns={"userId": "user", "movieId": "item", "timestamp": "ts"})
    return Interactions.from_frame(frame, user="user", item="item", timestamp="ts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ml-100k,ml-latest-small")
    parser.add_argument("--recipes", default="neumf,two-tower,fm,ease,als")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--quantize", action="store_true")
    args = parser.parse_args()
    print("| dataset | recipe | ndcg@10 | recall@20 | sampled HR@10 | sampled NDCG@10 | fit s | s/epoch | epochs "
          "| device |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        data = load(dataset)
        if data is None:
            print(f"| {dataset} | (absent from {datasets_dir()}) |")
            continue
        train, test = split_random(data, test_fraction=0.2, seed=42)
        runs = [(name, {}) for name in args.recipes.split(",")]
        if args.quantize:
            runs += [(name, {"quantize": True}) for name, _ in list(runs) if name in TORCH]
        for name, params in runs:
            recipe = create(name, **params)
            options = FitOptions(device=args.device if name in TORCH else "cpu", num_threads=args.threads)
            row = evaluate_recipes({name: recipe}, train, test, metrics=["ndcg@10", "recall@20"],
                                   fit_options=options)[0]
            sampled = sampled_metrics(recipe, train, test, ["hit_rate@10", "ndcg@10"], n_negatives=100, seed=0)
            history = [h for h in getattr(recipe, "history_", []) if "seconds" in h]
            per_epoch = f"{np.mean([h['seconds'] for h in history]):.2f}" if history else "-"
            label = name + (" int8" if params.get("quantize") else "")
            print(f"| {dataset} | {label} | {row['ndcg@10']:.4f} | {row['recall@20']:.4f} | "
                  f"{sampled['sampled_hit_rate@10']:.4f} | {sampled['sampled_ndcg@10']:.4f} | "
                  f"{row['fit_seconds']:.1f} | {per_epoch} | "
                  f"{len(history) or '-'} | {options.resolve_device(recipe)} |", flush=True)


if __name__ == "__main__":
    main()
