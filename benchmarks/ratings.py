"""Explicit ratings: Surprise's own 5-fold protocol on MovieLens 100K, Surprise and recsmith in one run.

Usage::

    pip install -e ".[bench]"
    python benchmarks/ratings.py [--with-svdpp]

Folds come from ``surprise.model_selection.KFold(n_splits=5, shuffle=True, random_state=0)``; every
model trains on the same trainset and predicts the same testset. RMSE and MAE are Surprise's own
``accuracy`` functions for its models; ours are computed on the same test pairs (predictions clipped to the
rating scale, as Surprise clips). Fit seconds are the mean per fold.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from recsmith.data.interactions import Interactions
from recsmith.recipes import create
from recsmith.testing import datasets_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--with-svdpp", action="store_true", help="also run Surprise's SVD++ (minutes)")
    args = parser.parse_args()
    from surprise import SVD, Dataset, Reader, SVDpp, accuracy
    from surprise.model_selection import KFold

    path = datasets_dir() / "ml-100k" / "u.data"
    frame = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "ts"])
    data = Dataset.load_from_df(frame[["user", "item", "rating"]], Reader(rating_scale=(1, 5)))
    folds = KFold(n_splits=5, shuffle=True, random_state=0)
    peers = {"surprise SVD": SVD} | ({"surprise SVD++": SVDpp} if args.with_svdpp else {})
    results: dict[str, dict[str, list[float]]] = {}

    def record(name: str, rmse: float, mae: float, seconds: float) -> None:
        row = results.setdefault(name, {"rmse": [], "mae": [], "fit": []})
        row["rmse"].append(rmse)
        row["mae"].append(mae)
        row["fit"].append(seconds)

    for trainset, testset in folds.split(data):
        for name, cls in peers.items():
            algo = cls(random_state=0)
            started = time.perf_counter()
            algo.fit(trainset)
            seconds = time.perf_counter() - started
            predictions = algo.test(testset)
            record(name, accuracy.rmse(predictions, verbose=False), accuracy.mae(predictions, verbose=False), seconds)
        train = pd.DataFrame([(trainset.to_raw_uid(u), trainset.to_raw_iid(i), r)
                              for u, i, r in trainset.all_ratings()], columns=["user", "item", "rating"])
        interactions = Interactions.from_frame(train, user="user", item="item", value="rating")
        test = pd.DataFrame(testset, columns=["user", "item", "rating"])
        users = interactions.user_vocab.indices(test["user"].astype(str), missing="ignore")
        items = interactions.item_vocab.indices(test["item"].astype(str), missing="ignore")
        model = create("svd")
        started = time.perf_counter()
        model.fit(interactions)
        seconds = time.perf_counter() - started
        error = np.clip(model.score(users, items), 1, 5) - test["rating"].to_numpy()
        record("recsmith svd", float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error))), seconds)

    print(f"{'model':<16}{'RMSE':>8}{'MAE':>8}{'fit s/fold':>12}")
    for name, row in results.items():
        print(f"{name:<16}{np.mean(row['rmse']):>8.4f}{np.mean(row['mae']):>8.4f}{np.mean(row['fit']):>12.3f}")
    ours, theirs = results["recsmith svd"], results["surprise SVD"]
    print(f"recsmith svd / surprise SVD: RMSE ratio {np.mean(ours['rmse']) / np.mean(theirs['rmse']):.3f}, "
          f"fit time ratio {np.mean(ours['fit']) / np.mean(theirs['fit']):.3f}")


if __name__ == "__main__":
    main()
