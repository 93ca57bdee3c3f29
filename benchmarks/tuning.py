"""What tuning buys: recipes with their defaults against their tuned params, on a test split the tuner never saw.

Usage::

    python benchmarks/tuning.py [--recipes als,ease] [--trials 30] [--seed 0]

Protocol: MovieLens 100K (every rating one positive interaction, as ``benchmarks/recipes.py``), random per-user
split, test fraction 0.2, seed 42. ``tune_recipe`` runs ``--trials`` TPE trials per recipe (median pruning for
iterative recipes) on the train part only, validating on a 20% slice carved out of it; then the defaults and
the best params are each fitted on the whole train part and measured on the test part: ndcg@10 and the
ratio tuned / defaults.
"""

from __future__ import annotations

import argparse
import time

import optuna
import pandas as pd

from recsmith.data.interactions import Interactions
from recsmith.evaluation.evaluate import evaluate_recipes
from recsmith.evaluation.split import split_random
from recsmith.recipes import create
from recsmith.testing import datasets_dir
from recsmith.tuning import tune_recipe


def load_ml100k() -> Interactions:
    path = datasets_dir() / "ml-100k" / "u.data"
    if not path.is_file():
        raise SystemExit(f"MovieLens 100K not found at {path}; set RECSMITH_DATASETS")
    frame = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "ts"])
    return Interactions.from_frame(frame, user="user", item="item")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="als,ease", help="comma-separated tunable recipes")
    parser.add_argument("--trials", type=int, default=30, help="trials per recipe")
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation slice and the sampler")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_ml100k()
    train, test = split_random(data, test_fraction=0.2, seed=42)
    print(f"ml-100k: {data.n_users} users × {data.n_items} items, {data.nnz} pairs; train {train.nnz}, "
          f"test {test.nnz}; {args.trials} trials per recipe, seed {args.seed}\n")
    header = (f"{'recipe':<8}{'val default':>12}{'val best':>10}{'test default':>14}{'test tuned':>12}{'ratio':>8}"
              f"{'pruned':>8}{'tune s':>8}  best params")
    print(header)
    for name in args.recipes.split(","):
        started = time.perf_counter()
        result = tune_recipe(name, train, metric="ndcg@10", trials=args.trials, seed=args.seed)
        seconds = time.perf_counter() - started
        rows = evaluate_recipes({"defaults": create(name), "tuned": create(name, **result.best_params)}, train, test,
                                metrics=["ndcg@10"])
        default, tuned = (row["ndcg@10"] for row in rows)
        shown = ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                          for key, value in result.tuned_params.items())
        val_default = "-" if result.default_value is None else f"{result.default_value:.4f}"
        print(f"{name:<8}{val_default:>12}{result.best_value:>10.4f}{default:>14.4f}{tuned:>12.4f}"
              f"{tuned / default:>8.3f}{result.pruned:>8}{seconds:>8.1f}  {shown}", flush=True)


if __name__ == "__main__":
    main()
