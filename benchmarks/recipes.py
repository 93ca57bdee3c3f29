"""Our recipes against implicit's models on four real datasets, same split, same process.

Usage::

    python benchmarks/recipes.py [--datasets ml-100k,ml-latest-small,amazon-mi,lastfm] [--repeat 3]
        [--recipes popularity,trending] [--protocol random|temporal]

Protocol: random per-user split, test fraction 0.2, seed 42, full-catalogue ranking, seen items excluded,
every rating / review / play count treated as one positive interaction. ``--protocol temporal`` holds out the
latest 10 % of the pairs instead (one global time cut), what ``trending`` is for; ``trending`` runs on the
datasets with timestamps (all but Last.fm). ``--recipes`` keeps our rows of those recipes only (implicit's
models then run only when ``implicit`` is listed too). Prints ndcg@10, recall@10,
coverage@10 and fit seconds, and the ratios ours / implicit for matching models (item-knn cosine vs
CosineRecommender, item-knn bm25 vs BM25Recommender, als vs ALS, bpr vs BPR) and best against best.
user-knn computes its neighbours when it ranks, so its fit time is near zero by construction. Fit seconds
are the best of ``--repeat`` fits, for our models and implicit's alike, so one-time warm-up (thread pools,
first touches of memory) does not land on whichever model happens to run first.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from recsmith.data.interactions import Interactions
from recsmith.evaluation.evaluate import evaluate_recipes
from recsmith.evaluation.metrics import compute_metrics
from recsmith.evaluation.split import split_random, split_temporal
from recsmith.recipes import create
from recsmith.testing import datasets_dir

METRICS = ["ndcg@10", "recall@10", "coverage@10"]


def load(name: str) -> Interactions | None:
    """One of the benchmark datasets from ../shared/datasets (with timestamps where it has them), or None when
    it is absent."""
    root = datasets_dir()
    paths = {"ml-100k": root / "ml-100k" / "u.data", "ml-latest-small": root / "ml-latest-small" / "ratings.csv",
             "amazon-mi": root / "amazon-musical-instruments-5core" / "Musical_Instruments_5.json",
             "lastfm": root / "lastfm-hetrec2011-2k" / "user_artists.dat"}
    path = paths[name]
    if not path.is_file():
        return None
    if name == "ml-100k":
        frame = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "ts"])
    elif name == "ml-latest-small":
        frame = pd.read_csv(path).rename(columns={"userId": "user", "movieId": "item", "timestamp": "ts"})
    elif name == "amazon-mi":
        frame = pd.read_json(path, lines=True)[["reviewerID", "asin", "unixReviewTime"]].rename(
            columns={"reviewerID": "user", "asin": "item", "unixReviewTime": "ts"})
    else:
        frame = pd.read_csv(path, sep="\t").rename(columns={"userID": "user", "artistID": "item"})
    return Interactions.from_frame(frame, user="user", item="item", timestamp="ts" if "ts" in frame else None)


def best_seconds(fit: Callable[[], object], repeat: int) -> float:
    """The shortest of ``repeat`` timed calls of ``fit``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fit()
        times.append(time.perf_counter() - started)
    return min(times)


def implicit_rows(train: Interactions, test: Interactions, k_neighbours: int, repeat: int) -> list[dict]:
    """implicit's models, configured like our defaults (the same factors, reg, alpha, epochs)."""
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

    als, bpr = create("als").params, create("bpr").params
    users = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
    rows = []
    peers = (
        ("implicit cosine", lambda: CosineRecommender(K=k_neighbours), np.float64),  # rejects float32
        ("implicit bm25", lambda: BM25Recommender(K=k_neighbours), np.float64),
        ("implicit als", lambda: AlternatingLeastSquares(factors=als.factors, regularization=als.reg,
                                                         alpha=als.alpha, iterations=als.epochs, random_state=0),
         np.float32),
        ("implicit bpr", lambda: BayesianPersonalizedRanking(factors=bpr.factors, learning_rate=bpr.learning_rate,
                                                             regularization=bpr.reg, iterations=bpr.epochs,
                                                             random_state=0, num_threads=1), np.float32),
    )
    for label, make, dtype in peers:
        matrix = train.matrix.astype(dtype).tocsr()
        fitted = []  # a fresh model per fit: refitting one continues from its factors

        def fit_fresh() -> None:
            fitted.append(make())  # noqa: B023 (called at once)
            fitted[-1].fit(matrix, show_progress=False)  # noqa: B023

        fit = best_seconds(fit_fresh, repeat)
        model = fitted[-1]
        ids, _ = model.recommend(users, matrix[users], N=10, filter_already_liked_items=True)
        rows.append({"recipe": label, **compute_metrics(ids, test.matrix[users], METRICS), "fit_seconds": fit})
    return rows


DATASETS = ("ml-100k", "ml-latest-small", "amazon-mi", "lastfm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated, from: " + ", ".join(DATASETS))
    parser.add_argument("--repeat", type=int, default=3, help="fits per model; the fastest is reported")
    parser.add_argument("--recipes", default=None,
                        help="comma-separated recipe names: only our rows of these (add 'implicit' for its models)")
    parser.add_argument("--protocol", choices=("random", "temporal"), default="random",
                        help="random: 80/20 per user, seed 42; temporal: the latest 10 %% of the pairs held out")
    args = parser.parse_args()
    wanted = None if args.recipes is None else {name.strip() for name in args.recipes.split(",")}
    for name in args.datasets.split(","):
        data = load(name)
        if data is None:
            print(f"{name}: not found under {datasets_dir()}, skipped")
            continue
        if args.protocol == "temporal" and data.timestamps is None:
            print(f"{name}: no timestamps for the temporal protocol, skipped")
            continue
        train, test = (split_temporal(data, fraction=0.1) if args.protocol == "temporal"
                       else split_random(data, test_fraction=0.2, seed=42))
        ours = {"popularity": create("popularity"),
                "item-knn cosine": create("item-knn", weighting="none", neighbors=100, shrink=0.0),
                "item-knn bm25": create("item-knn", weighting="bm25", neighbors=100),
                "item-knn (defaults)": create("item-knn"),
                "user-knn (defaults)": create("user-knn"),
                "rp3beta (defaults)": create("rp3beta"),
                "ease (defaults)": create("ease"),
                "als (defaults)": create("als"),
                "bpr (defaults)": create("bpr")}
        if data.timestamps is not None:
            ours["trending (defaults)"] = create("trending")
        if wanted is not None:
            ours = {label: recipe for label, recipe in ours.items() if recipe.name in wanted}
        with threadpool_limits(1, "blas"):
            rows = evaluate_recipes(ours, train, test, metrics=METRICS)
            for row in rows if args.repeat > 1 else []:
                again = best_seconds(lambda: ours[row["recipe"]].clone().fit(train), args.repeat - 1)  # noqa: B023
                row["fit_seconds"] = min(row["fit_seconds"], again)
            if wanted is None or "implicit" in wanted:
                rows += implicit_rows(train, test, 100, args.repeat)
        by_name = {row["recipe"]: row for row in rows}
        print(f"\n{name}: {data.n_users} users × {data.n_items} items, {data.nnz} pairs")
        print(f"{'recipe':<22}{'ndcg@10':>9}{'recall@10':>11}{'cov@10':>8}{'fit s':>8}")
        for row in rows:
            print(f"{row['recipe']:<22}{row['ndcg@10']:>9.4f}{row['recall@10']:>11.4f}{row['coverage@10']:>8.4f}"
                  f"{row['fit_seconds']:>8.3f}")
        pairs = (("item-knn cosine", "implicit cosine"), ("item-knn bm25", "implicit bm25"),
                 ("als (defaults)", "implicit als"), ("bpr (defaults)", "implicit bpr"))
        for ours_name, peer in pairs:
            if ours_name not in by_name or peer not in by_name:
                continue
            a, b = by_name[ours_name], by_name[peer]
            print(f"{ours_name} / {peer}: ndcg ratio {a['ndcg@10'] / b['ndcg@10']:.3f}, "
                  f"fit time ratio {a['fit_seconds'] / max(b['fit_seconds'], 1e-9):.2f}")
        best_ours = max((r for r in rows if not r["recipe"].startswith("implicit")), key=lambda r: r["ndcg@10"],
                        default=None)
        best_peer = max((r for r in rows if r["recipe"].startswith("implicit")), key=lambda r: r["ndcg@10"],
                        default=None)
        if best_ours is None or best_peer is None:
            continue
        print(f"best ours ({best_ours['recipe']}) / best implicit ({best_peer['recipe']}): ndcg ratio "
              f"{best_ours['ndcg@10'] / best_peer['ndcg@10']:.3f}")


if __name__ == "__main__":
    main()
