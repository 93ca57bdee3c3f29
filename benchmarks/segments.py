"""Batch segments at the recipe layer: ``Recipe.top_users`` on the synthetic log (issue 17).

Target: 1,000 one-item sets (Item-Affinity) × the top 100 users on the synthetic 100,000 users × 20,000 items,
5M interactions log in ≤ 30 s with ``als`` and ``item-knn`` (the batch segment job adds its own work around it).

Usage::

    python benchmarks/segments.py                                  # als and item-knn, 1,000 sets, top 100
    python benchmarks/segments.py --recipes als,item-knn,rp3beta --sets 1000 --k 100 --dense
    python benchmarks/segments.py --users 20000 --items 5000 --interactions 500000 --recipes ease

For each recipe the table gives the seconds and sets/s of:

- ``item``: ``top_users`` of ``--sets`` one-item sets on the fitted model (Item-Affinity);
- ``item, loaded``: the same after ``save`` and a memory-mapped ``load`` (what a job does), the load included;
- ``attribute``: ``--attribute-sets`` sets of ``--attribute-size`` items each (Item-Attribute-Affinity), with
  the mean taken over the items each user has not seen;
- ``item, dense`` (with ``--dense``): the base class's path through the dense scores, for comparison.

``als`` uses 64 factors and 15 epochs, as ``benchmarks/scale.py`` does. :func:`measure` is the function a
job benchmark can reuse with its own model and sets.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recsmith.data.interactions import Interactions
from recsmith.recipes import Recipe, create, load_recipe

PARAMS: dict[str, dict[str, Any]] = {"als": {"factors": 64, "epochs": 15}, "bpr": {"epochs": 20}}


def synthetic_training(users: int = 100_000, items: int = 20_000, interactions: int = 5_000_000,
                       seed: int = 0) -> Interactions:
    """The synthetic log as training data, as ``benchmarks/scale.py`` builds it."""
    from recsmith.datasets.synthetic import synthetic_frame

    frame = synthetic_frame(n_users=users, n_items=items, n_interactions=interactions, seed=seed)
    return Interactions.from_frame(frame, user="USER_ID", item="ITEM_ID", timestamp="TIMESTAMP")


@contextlib.contextmanager
def dense_path(recipe: Recipe) -> Iterator[Recipe]:
    """``recipe`` answering ``top_users`` through the base class's dense scores (its fast path set aside)."""
    recipe._set_scorer = functools.partial(Recipe._set_scorer, recipe)  # type: ignore[method-assign]
    try:
        yield recipe
    finally:
        del recipe._set_scorer


def measure(recipe: Recipe, item_sets: Sequence[np.ndarray] | np.ndarray, k: int = 100, *,
            exclude_seen: bool = True, repeat: int = 1) -> dict[str, float]:
    """Seconds of ``recipe.top_users(item_sets, k)`` (the best of ``repeat`` runs) and sets per second.

    Parameters
    ----------
    recipe : Recipe
        A fitted recipe.
    item_sets : array or sequence of arrays
        As :meth:`Recipe.top_users` takes them.
    k : int
        Users per set.
    exclude_seen : bool
        As :meth:`Recipe.top_users`.
    repeat : int
        Runs; the fastest counts.

    Returns
    -------
    dict
        ``seconds``, ``sets_per_second``, ``filled`` (the share of answer cells holding a user).
    """
    best, result = np.inf, None
    for _ in range(repeat):
        started = time.perf_counter()
        result = recipe.top_users(item_sets, k, exclude_seen=exclude_seen)
        best = min(best, time.perf_counter() - started)
    assert result is not None
    return {"seconds": best, "sets_per_second": len(result.ids) / best, "filled": float((result.ids >= 0).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="als,item-knn")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=5_000_000)
    parser.add_argument("--sets", type=int, default=1_000, help="one-item sets (Item-Affinity)")
    parser.add_argument("--k", type=int, default=100, help="users per set")
    parser.add_argument("--attribute-sets", type=int, default=20)
    parser.add_argument("--attribute-size", type=int, default=1_000)
    parser.add_argument("--dense", action="store_true", help="also time the base class's dense path")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    started = time.perf_counter()
    data = synthetic_training(args.users, args.items, args.interactions)
    print(f"data: {data.n_users:,} users × {data.n_items:,} items, {data.nnz:,} pairs "
          f"({time.perf_counter() - started:.1f} s)")
    rng = np.random.default_rng(0)
    items = rng.choice(data.n_items, size=min(args.sets, data.n_items), replace=False)
    attributes = [rng.choice(data.n_items, size=min(args.attribute_size, data.n_items), replace=False)
                  for _ in range(args.attribute_sets)]
    rows: list[tuple[str, str, int, float, float, float]] = []
    for name in args.recipes.split(","):
        started = time.perf_counter()
        recipe = create(name, **PARAMS.get(name, {})).fit(data)
        print(f"{name}: fitted in {time.perf_counter() - started:.1f} s")
        result = measure(recipe, items, args.k, repeat=args.repeat)
        rows.append((name, "item", len(items), result["seconds"], result["sets_per_second"], result["filled"]))
        with tempfile.TemporaryDirectory() as tmp:
            recipe.save(Path(tmp) / "model")
            started = time.perf_counter()
            loaded = load_recipe(Path(tmp) / "model", mmap=True)
            loading = time.perf_counter() - started
            result = measure(loaded, items, args.k, repeat=args.repeat)
            seconds = loading + result["seconds"]
            rows.append((name, "item, loaded", len(items), seconds, len(items) / seconds, result["filled"]))
            del loaded
        if attributes:
            result = measure(recipe, attributes, args.k, repeat=args.repeat)
            rows.append((name, f"attribute ({args.attribute_size} items)", len(attributes), result["seconds"],
                         result["sets_per_second"], result["filled"]))
        if args.dense:
            with dense_path(recipe):
                result = measure(recipe, items, args.k, repeat=args.repeat)
            rows.append((name, "item, dense", len(items), result["seconds"], result["sets_per_second"],
                         result["filled"]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ntop {args.k} users per set; peak RSS {peak:,.0f} MiB")
    print("| recipe | sets | n | seconds | sets/s (items/s for one-item sets) | filled |")
    print("|---|---|---:|---:|---:|---:|")
    for name, kind, n, seconds, rate, filled in rows:
        print(f"| {name} | {kind} | {n:,} | {seconds:.2f} | {rate:,.0f} | {filled:.2f} |")


if __name__ == "__main__":
    main()
