"""gru4rec (ce, bpr-max) against item-knn and popularity on MovieLens 100K, leave-last-1, full ranking.

Run: ``OMP_NUM_THREADS=1 RECSMITH_DATASETS=/work/shared/datasets PYTHONPATH=src python benchmarks/gru4rec_check.py``
(``--threads 2`` for two torch threads; ``--only ce`` etc. to run a subset; ``--set key=value`` to override
gru4rec params).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from recsmith.evaluation.evaluate import evaluate_recipes
from recsmith.recipes import create
from recsmith.recipes.options import FitOptions
from recsmith.testing import ml100k_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--set", nargs="*", default=[], help="gru4rec params key=value (JSON values)")
    args = parser.parse_args()
    overrides = {k: json.loads(v) if v[:1] in "0123456789-[{tf" else v
                 for k, v in (item.split("=", 1) for item in args.set)}
    train, test = ml100k_split(protocol="leave_last")
    recipes = {
        "popularity": lambda: create("popularity"),
        "item-knn": lambda: create("item-knn"),
        "gru4rec-ce": lambda: create("gru4rec", loss="ce", **overrides),
        "gru4rec-bpr-max": lambda: create("gru4rec", **({"loss": "bpr-max", "n_negatives": 128} | overrides)),
    }
    options = FitOptions(num_threads=args.threads)
    for name, make in recipes.items():
        if args.only and name not in args.only:
            continue
        recipe = make()
        started = time.perf_counter()
        row = evaluate_recipes({name: recipe}, train, test, metrics=["ndcg@10", "hit_rate@10"],
                               fit_options=options)[0]
        seconds = time.perf_counter() - started
        history = getattr(recipe, "history_", [])
        epochs = [h["seconds"] for h in history if "seconds" in h]
        print(json.dumps({"recipe": name, "ndcg@10": round(row["ndcg@10"], 4),
                          "hit_rate@10": round(row["hit_rate@10"], 4), "total_s": round(seconds, 1),
                          "epochs": len(epochs), "best_epoch": getattr(recipe, "best_epoch_", None),
                          "s_per_epoch": round(float(np.mean(epochs)), 2) if epochs else None,
                          "val_loss": [h.get("val_loss") for h in history], "threads": args.threads}),
              flush=True)


if __name__ == "__main__":
    main()
