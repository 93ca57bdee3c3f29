"""Explicit ratings: Surprise's own 5-fold protocol on MovieLens 100K, Surprise and recsmith in one run.

Usage::

    pip install -e ".[bench]"
    python benchmarks/ratings.py [--with-svdpp] [--ml-1m-scale]

Folds come from ``surprise.model_selection.KFold(n_splits=5, shuffle=True, random_state=0)``; every
model trains on the same trainset and predicts the same testset. RMSE and MAE are Surprise's own
``accuracy`` functions for its models; ours are computed on the same test pairs (predictions clipped to the
rating scale, as Surprise clips). Fit seconds are the mean per fold.

``--ml-1m-scale`` also times SVD++ at MovieLens 1M's size. ML-1M's ratings are not in ../shared/datasets,
so it draws a rating set of exactly that shape (6,040 users × 3,706 items, 1,000,209 ratings, popularity
and activity skewed, ratings from a low-rank model plus noise, rounded to 1..5), fits our ``svdpp`` on
it, and fits Surprise's ``SVDpp`` for one epoch, reported ×20 (its default ``n_epochs``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from recsmith.data.interactions import Interactions
from recsmith.recipes import create
from recsmith.testing import datasets_dir

OURS = ("svd", "svdpp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--with-svdpp", action="store_true", help="also run Surprise's SVD++ (minutes)")
    parser.add_argument("--ml-1m-scale", action="store_true", help="time SVD++ on an ML-1M-sized rating set")
    args = parser.parse_args()
    five_folds(args.with_svdpp)
    if args.ml_1m_scale:
        ml_1m_scale()


def five_folds(with_svdpp: bool) -> None:
    """Surprise's 5-fold protocol on ml-100k: Surprise's models and ours on the same folds."""
    from surprise import SVD, Dataset, Reader, SVDpp, accuracy
    from surprise.model_selection import KFold

    path = datasets_dir() / "ml-100k" / "u.data"
    frame = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "ts"])
    data = Dataset.load_from_df(frame[["user", "item", "rating"]], Reader(rating_scale=(1, 5)))
    folds = KFold(n_splits=5, shuffle=True, random_state=0)
    peers = {"surprise SVD": SVD} | ({"surprise SVD++": SVDpp} if with_svdpp else {})
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
        for recipe in OURS:
            model = create(recipe)
            started = time.perf_counter()
            model.fit(interactions)
            seconds = time.perf_counter() - started
            error = np.clip(model.score(users, items), 1, 5) - test["rating"].to_numpy()
            record(f"recsmith {recipe}", float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error))), seconds)

    print(f"{'model':<16}{'RMSE':>8}{'MAE':>8}{'fit s/fold':>12}")
    for name, row in results.items():
        print(f"{name:<16}{np.mean(row['rmse']):>8.4f}{np.mean(row['mae']):>8.4f}{np.mean(row['fit']):>12.3f}")
    pairs = [("recsmith svd", "surprise SVD")] + [("recsmith svdpp", "surprise SVD++")] * with_svdpp
    for ours_name, peer in pairs:
        ours, theirs = results[ours_name], results[peer]
        print(f"{ours_name} / {peer}: RMSE ratio {np.mean(ours['rmse']) / np.mean(theirs['rmse']):.3f}, "
              f"fit time ratio {np.mean(ours['fit']) / np.mean(theirs['fit']):.3f}")


def ml_1m_shaped(seed: int = 0) -> pd.DataFrame:
    """A rating set of MovieLens 1M's shape: 6,040 × 3,706, 1,000,209 distinct (user, item) ratings."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n_ratings, rank = 6040, 3706, 1_000_209, 8
    user_weight = rng.pareto(1.5, n_users) + 0.05
    item_weight = rng.pareto(1.2, n_items) + 0.05
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n_ratings:  # draw skewed pairs until enough distinct ones
        users = rng.choice(n_users, n_ratings, p=user_weight / user_weight.sum())
        items = rng.choice(n_items, n_ratings, p=item_weight / item_weight.sum())
        keys = np.unique(np.concatenate([keys, users * n_items + items]))
    keys = rng.permutation(keys)[:n_ratings]
    users, items = keys // n_items, keys % n_items
    p, q = rng.normal(0, 0.35, (n_users, rank)), rng.normal(0, 0.35, (n_items, rank))
    raw = 3.6 + rng.normal(0, 0.4, n_users)[users] + rng.normal(0, 0.5, n_items)[items] \
        + np.einsum("ij,ij->i", p[users], q[items]) + rng.normal(0, 0.8, n_ratings)
    return pd.DataFrame({"user": users, "item": items, "rating": np.clip(np.rint(raw), 1, 5)})


def ml_1m_scale() -> None:
    """SVD++ fit time at ML-1M's size: ours (full fit) against Surprise's (one epoch, ×20)."""
    from surprise import Dataset, Reader, SVDpp

    frame = ml_1m_shaped()
    interactions = Interactions.from_frame(frame.astype({"user": str, "item": str}), user="user", item="item",
                                           value="rating")
    started = time.perf_counter()
    create("svdpp").fit(interactions)
    ours = time.perf_counter() - started
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
    started = time.perf_counter()
    SVDpp(n_epochs=1, random_state=0).fit(trainset)
    one_epoch = time.perf_counter() - started
    print(f"\nML-1M-shaped ratings ({interactions.n_users} × {interactions.n_items}, {interactions.nnz} ratings):")
    print(f"recsmith svdpp (8 epochs): {ours:.1f} s; surprise SVD++: {one_epoch:.1f} s per epoch, "
          f"{20 * one_epoch / 60:.1f} min for its 20 epochs; ratio {ours / (20 * one_epoch):.3f}")


if __name__ == "__main__":
    main()
