"""The per-request forward pass of a ``sasrec`` model on a CPU: numpy (what recsmith serves) against onnxruntime.

A ``sasrec`` model (64 factors, 2 blocks, ``max_len`` 50) is trained for one epoch on synthetic sequences over a
20,000-item catalogue; then single requests of a 50-item history are timed, one at a time, each scoring the
whole catalogue and taking the top 25:

``recipe.recommend_for_queries([HistoryQuery(items)], k=25)``, the call serving makes, with each of sasrec's
serving backends:

- ``onnxruntime``: the forward pass sasrec exports to ONNX after training (kept in the artifact), run by
  onnxruntime with one thread (what serves when onnxruntime is installed);
- ``numpy``: the numpy forward pass (hosts without onnxruntime).

The two must agree to 1e-4 (checked).

    python benchmarks/sequential_serving.py --requests 2000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from recsmith.data.interactions import Interactions
from recsmith.recipes import HistoryQuery, create


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--history", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(4000), args.history)
    items = rng.integers(0, args.items, len(users))
    data = Interactions.from_arrays(users.astype(str), items.astype(str),
                                    timestamps=np.arange(len(users), dtype=np.int64))
    recipe = create("sasrec", max_len=args.history, epochs=1, loss="sampled-ce", patience=0, val_fraction=0.0)
    recipe.fit(data)
    catalogue = recipe.n_items
    histories = [rng.integers(0, catalogue, args.history) for _ in range(args.requests)]

    timings = {}
    for backend in ("onnxruntime", "numpy"):
        if backend == "numpy":
            served = recipe._sequence_scores([HistoryQuery(h) for h in histories[:50]])
            recipe._session = None  # what a host without onnxruntime runs
        assert recipe.serving_backend == backend, recipe.serving_backend
        times = []
        for history in histories:
            started = time.perf_counter()
            recipe.recommend_for_queries([HistoryQuery(history)], k=25)
            times.append(time.perf_counter() - started)
        timings[backend] = percentiles(times)
    worst = float(np.abs(served - recipe._sequence_scores([HistoryQuery(h) for h in histories[:50]])).max())
    result = {"items": catalogue, "history": args.history, "requests": args.requests,
              **timings, "max_abs_difference": worst, "agree_to_1e-4": worst <= 1e-4}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
