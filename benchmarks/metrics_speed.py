"""Metric speed: full-catalogue ndcg@10, recall@10 and coverage@10 for 100,000 users × 20,000 items.

Usage::

    python benchmarks/metrics_speed.py [--users 100000] [--items 20000] [--k 10] [--truth 10] [--seed 0]

Two timings:

1. ``compute_metrics`` alone, on random top-``k`` ids (``int32[users, k]``) and a random truth CSR with
   about ``--truth`` held-out items per user (1 + Poisson(truth - 1), duplicates merged);
2. the whole evaluation: random dense ``float32`` scores for blocks of ``recsmith.recipes.base.batch_size``
   users (1,024 at 20,000 items) standing in for a model, their top ``k`` by ``recsmith.recipes.base.top_k``,
   then ``compute_metrics`` on the result. The time spent drawing the random scores is shown apart, since a
   real model computes its scores instead.

Target: the whole evaluation in under 30 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp

from recsmith.evaluation.metrics import compute_metrics
from recsmith.recipes.base import batch_size, top_k

NAMES = ("ndcg", "recall", "coverage")


def random_truth(rng: np.random.Generator, users: int, items: int, per_user: int) -> sp.csr_matrix:
    """About ``per_user`` random held-out items per user (at least one), as a binary CSR."""
    counts = 1 + rng.poisson(max(per_user - 1, 0), users)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices = rng.integers(0, items, int(indptr[-1]), dtype=np.int32)
    truth = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(users, items))
    truth.sum_duplicates()
    truth.data[:] = 1.0
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000, help="users evaluated")
    parser.add_argument("--items", type=int, default=20_000, help="catalogue size")
    parser.add_argument("--k", type=int, default=10, help="cut-off of the metrics")
    parser.add_argument("--truth", type=int, default=10, help="held-out items per user, on average")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random data")
    args = parser.parse_args()
    names = [f"{name}@{args.k}" for name in NAMES]
    rng = np.random.default_rng(args.seed)
    truth = random_truth(rng, args.users, args.items, args.truth)
    print(f"{args.users:,} users × {args.items:,} items, {truth.nnz:,} held-out pairs, metrics {', '.join(names)}")

    rec_ids = rng.integers(0, args.items, (args.users, args.k), dtype=np.int32)
    started = time.perf_counter()
    result = compute_metrics(rec_ids, truth, names)
    metrics_seconds = time.perf_counter() - started
    print(f"compute_metrics on random top-{args.k} ids: {metrics_seconds:.2f} s  "
          + "  ".join(f"{key}={value:.4f}" for key, value in result.items()))

    step = batch_size(args.items)
    ranked = np.empty((args.users, args.k), dtype=np.int32)
    score_seconds = rank_seconds = 0.0
    started = time.perf_counter()
    for start in range(0, args.users, step):
        stop = min(start + step, args.users)
        tick = time.perf_counter()
        scores = rng.random((stop - start, args.items), dtype=np.float32)
        tock = time.perf_counter()
        ranked[start:stop] = top_k(scores, args.k).ids
        score_seconds += tock - tick
        rank_seconds += time.perf_counter() - tock
    tick = time.perf_counter()
    result = compute_metrics(ranked, truth, names)
    final_seconds = time.perf_counter() - tick
    total = time.perf_counter() - started
    print(f"whole evaluation (scores in blocks of {step:,} users -> top_k -> compute_metrics): {total:.2f} s  "
          f"[random scores {score_seconds:.2f} s, top_k {rank_seconds:.2f} s, compute_metrics {final_seconds:.2f} s]  "
          + "  ".join(f"{key}={value:.4f}" for key, value in result.items()))
    print(f"whole evaluation without drawing the random scores: {total - score_seconds:.2f} s")


if __name__ == "__main__":
    main()
