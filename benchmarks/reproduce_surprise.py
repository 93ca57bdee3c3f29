"""Surprise's ml-100k table, reproduced: its algorithms and ours on the very same 5 folds.

Usage::

    pip install -e ".[bench]"
    python benchmarks/reproduce_surprise.py [--skip-slow]

Folds: Surprise's ``KFold(n_splits=5, random_state=0, shuffle=True)`` over the ratings in file order;
recsmith's ``kfold_indices(n, 5, seed=0)`` is checked to give the same test sets. For each of Surprise's
algorithms (its defaults; ``random_state=0`` where it takes one) the RMSE and MAE of its predictions are
computed twice, by Surprise's ``accuracy`` module and by ``recsmith.evaluation.metrics.rating_metrics``,
and must agree to 1e-6 (this proves our metric code). Our rating recipes then run through
``cross_validate_ratings`` on the same folds. ``--skip-slow`` leaves out SVD++ (about 9 s per fold).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from recsmith.evaluation.crossval import cross_validate_ratings, kfold_indices
from recsmith.evaluation.metrics import rating_metrics
from recsmith.recipes import create
from recsmith.testing import datasets_dir

OURS = ("svd", "svdpp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-slow", action="store_true", help="leave out Surprise's SVD++")
    args = parser.parse_args()
    import surprise
    from surprise.model_selection import KFold

    frame = pd.read_csv(datasets_dir() / "ml-100k" / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
    data = surprise.Dataset.load_from_df(frame[["user", "item", "rating"]], surprise.Reader(rating_scale=(1, 5)))
    algorithms = {
        "NormalPredictor": lambda: surprise.NormalPredictor(),
        "BaselineOnly": lambda: surprise.BaselineOnly(verbose=False),
        "KNNBasic": lambda: surprise.KNNBasic(verbose=False),
        "KNNWithMeans": lambda: surprise.KNNWithMeans(verbose=False),
        "KNNBaseline": lambda: surprise.KNNBaseline(verbose=False),
        "SlopeOne": lambda: surprise.SlopeOne(),
        "CoClustering": lambda: surprise.CoClustering(random_state=0),
        "NMF": lambda: surprise.NMF(random_state=0),
        "SVD": lambda: surprise.SVD(random_state=0),
    }
    if not args.skip_slow:
        algorithms["SVD++"] = lambda: surprise.SVDpp(random_state=0)

    folds = list(KFold(n_splits=5, random_state=0, shuffle=True).split(data))
    raw_index = {key: position for position, key in enumerate(zip(frame["user"], frame["item"], strict=True))}
    ours_folds = kfold_indices(len(frame), 5, seed=0)
    for (_, testset), mine in zip(folds, ours_folds, strict=True):
        assert sorted(raw_index[(u, i)] for u, i, _ in testset) == sorted(mine.tolist()), "folds differ"
    print(f"ml-100k, {len(frame):,} ratings; recsmith's folds equal Surprise's KFold(5, random_state=0)\n")

    print(f"{'algorithm':<26}{'RMSE':>8}{'MAE':>8}{'fit s':>8}   max |ours - surprise accuracy|")
    rng_state = np.random.get_state()
    np.random.seed(0)  # NormalPredictor draws from numpy's global RNG
    for name, make in algorithms.items():
        rmse, mae, fit, gap = [], [], [], 0.0
        for trainset, testset in folds:
            algo = make()
            started = time.perf_counter()
            algo.fit(trainset)
            fit.append(time.perf_counter() - started)
            predictions = algo.test(testset)
            theirs = (surprise.accuracy.rmse(predictions, verbose=False), surprise.accuracy.mae(predictions,
                                                                                              verbose=False))
            mine = rating_metrics(np.array([p.est for p in predictions]), np.array([p.r_ui for p in predictions]))
            gap = max(gap, abs(mine["rmse"] - theirs[0]), abs(mine["mae"] - theirs[1]))
            rmse.append(mine["rmse"])
            mae.append(mine["mae"])
        assert gap <= 1e-6, f"{name}: our metrics differ from Surprise's by {gap}"
        print(f"{'surprise ' + name:<26}{np.mean(rmse):>8.4f}{np.mean(mae):>8.4f}{np.mean(fit):>8.2f}   {gap:.1e}")
    np.random.set_state(rng_state)

    users, items = frame["user"].to_numpy().astype(str), frame["item"].to_numpy().astype(str)
    for recipe in OURS:
        result = cross_validate_ratings(create(recipe), users, items, frame["rating"].to_numpy(dtype=float),
                                        n_splits=5, seed=0, rating_scale=(1, 5))
        print(f"{'recsmith ' + recipe:<26}{result['rmse']:>8.4f}{result['mae']:>8.4f}{result['fit_seconds']:>8.2f}")


if __name__ == "__main__":
    main()
