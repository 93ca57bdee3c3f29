"""Cold-start items: recipes ranking items they never saw, from their genres (issue 15, target 3).

Usage::

    python benchmarks/cold_items.py [--datasets ml-latest-small,ml-100k] [--recipes random,feature-popularity,
        two-tower,fm] [--fraction 0.1] [--seed 42]

Protocol ``cold-items`` (:func:`recsmith.evaluation.split.split_cold_items`): 10 % of the items with
interactions (seeded) are held out with all of their interactions; training sees their genres only (their
columns stay, empty, and the item feature table keeps their rows). Each test user's interactions with held-out
items are the relevant items, ranked among all the held-out items (full ranking, not sampled) through
``Recipe.score_new_items``, what serving calls for items put after training. Every rating is one positive
interaction. Datasets: the bundled ml-latest-small (``movies.csv`` genres) and ml-100k from
``$RECSMITH_DATASETS`` (``u.item``'s 19 genre flags). ``two-tower`` and ``fm`` (``use_item_features=true``) run
when the registry has them (torch recipes; skipped with a message otherwise). ``feature-popularity`` also runs
with ``aggregate=mean`` (row ``feature-popularity mean``: an item's genres averaged instead of summed, a
stronger baseline). Target: the learned recipes' ndcg@10 at least twice ``feature-popularity``'s (the issue's
Σ baseline); the last column compares with the mean variant too. Prints markdown rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError
from recsmith.evaluation.experiment import Experiment
from recsmith.jobs.evaluation import run_experiment
from recsmith.recipes import available, create
from recsmith.testing import datasets_dir

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "recsmith" / "datasets" / "ml-latest-small"
RECIPE_PARAMS: dict[str, dict[str, Any]] = {"fm": {"use_item_features": True}}
"""Params of the recipes that need some to rank cold items."""
LEARNED = ("two-tower", "fm")
"""The recipes the target compares with feature-popularity."""


def load(name: str) -> TrainingData | None:
    """A dataset as TrainingData with a GENRES item feature, or None when it is absent."""
    if name == "ml-latest-small":
        ratings = pd.read_csv(BUNDLED / "ratings.csv")
        movies = pd.read_csv(BUNDLED / "movies.csv")
        events = ratings.rename(columns={"userId": "user_id", "movieId": "item_id", "timestamp": "ts"})
        items = pd.DataFrame({"item_id": movies["movieId"].astype(str),
                              "GENRES": movies["genres"].where(movies["genres"] != "(no genres listed)")})
    elif name == "ml-100k":
        root = datasets_dir() / "ml-100k"
        if not (root / "u.data").is_file():
            return None
        events = pd.read_csv(root / "u.data", sep="\t", names=["user_id", "item_id", "rating", "ts"])
        genre_names = pd.read_csv(root / "u.genre", sep="|", names=["genre", "code"], encoding="latin-1")
        genre_names = genre_names.dropna()["genre"].tolist()
        raw = pd.read_csv(root / "u.item", sep="|", header=None, encoding="latin-1")
        flags = raw.iloc[:, 5:24].to_numpy()  # the 19 genre flags (columns 6..24)
        genres = ["|".join(g for g, flag in zip(genre_names, row, strict=True) if flag and g != "unknown") or None
                  for row in flags]
        items = pd.DataFrame({"item_id": raw[0].astype(str), "GENRES": genres})
    else:
        raise SystemExit(f"unknown dataset {name!r}; use ml-latest-small or ml-100k")
    events = events.astype({"user_id": str, "item_id": str})
    schema = {"type": "record", "name": "Items", "fields": [
        {"name": "ITEM_ID", "type": "string"}, {"name": "GENRES", "type": ["null", "string"], "categorical": True}]}
    return TrainingData.from_frame(events[["user_id", "item_id", "ts"]], items=items, timestamp="ts",
                                   item_schema=schema)


def runnable(names: list[str]) -> list[str]:
    """The recipes that exist here and can be created (torch ones may be absent)."""
    kept = []
    for name in names:
        if name not in available():
            print(f"<!-- {name}: not in the registry here; skipped -->", file=sys.stderr)
            continue
        try:
            create(name, **RECIPE_PARAMS.get(name, {}))
        except ConfigError as exc:
            print(f"<!-- {name}: {exc}; skipped -->", file=sys.stderr)
            continue
        kept.append(name)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="ml-latest-small,ml-100k")
    parser.add_argument("--recipes", default="random,feature-popularity,two-tower,fm")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    recipes = runnable([name.strip() for name in args.recipes.split(",") if name.strip()])
    entries = [{"recipe": name, "params": RECIPE_PARAMS.get(name, {})} for name in recipes]
    if "feature-popularity" in recipes:
        entries.insert(recipes.index("feature-popularity") + 1, {"recipe": "feature-popularity",
                                                                 "name": "feature-popularity mean",
                                                                 "params": {"aggregate": "mean"}})
    print("| dataset | recipe | ndcg@10 | recall@20 | ndcg@10 vs feature-popularity | vs feature-popularity mean "
          "| cold items | users | fit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        data = load(dataset.strip())
        if data is None:
            print(f"<!-- {dataset}: not found under {datasets_dir()}; skipped -->", file=sys.stderr)
            continue
        experiment = Experiment(recipes=entries, protocol="cold-items",
                                split={"fraction": args.fraction, "seed": args.seed})
        experiment.check()
        run = run_experiment(data, experiment, seed=args.seed)
        rows = {row["recipe"]: row for row in run.rows}
        baseline = rows.get("feature-popularity", {}).get("ndcg@10")
        mean = rows.get("feature-popularity mean", {}).get("ndcg@10")
        for entry in entries:
            name = entry.get("name") or entry["recipe"]
            row = rows[name]
            ratio = f"{row['ndcg@10'] / baseline:.2f}x" if baseline else "—"
            target = (" (target >= 2x: " + ("met" if baseline and row["ndcg@10"] >= 2 * baseline else "not met") + ")"
                      if name in LEARNED else "")
            versus_mean = f"{row['ndcg@10'] / mean:.2f}x" if mean else "—"
            print(f"| {dataset} | {name} | {row['ndcg@10']:.4f} | {row['recall@20']:.4f} | {ratio}{target} | "
                  f"{versus_mean} | {len(run.split.cold_items)} | {row['users']} | {row['fit_seconds']:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
