"""The per-request forward pass of a ``sasrec`` model on a CPU: numpy (what recsmith serves) against onnxruntime.

A ``sasrec`` model (64 factors, 2 blocks, ``max_len`` 50) is trained for one epoch on synthetic sequences over a
20,000-item catalogue; then single requests of a 50-item history are timed, one at a time, each scoring the
whole catalogue and taking the top 25:

- ``numpy``: ``recipe.recommend_for_queries([HistoryQuery(items)], k=25)``, the call serving makes;
- ``onnxruntime``: the torch module exported to ONNX (history -> scores of every item), run by onnxruntime
  with one thread, then the same top-25 selection.

The two must agree to 1e-4 (checked); the faster one is what serving should run.

    python benchmarks/sequential_serving.py --requests 2000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from recsmith.data.interactions import Interactions
from recsmith.recipes import HistoryQuery, create
from recsmith.recipes.base import top_k


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

    import onnxruntime
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

    numpy_times = []
    for history in histories:
        started = time.perf_counter()
        recipe.recommend_for_queries([HistoryQuery(history)], k=25)
        numpy_times.append(time.perf_counter() - started)

    module = recipe.module_.to("cpu").eval()

    class Scores(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, inputs):  # noqa: ANN001, ANN202
            table = self.inner.item_table()
            hidden = self.inner(inputs, None, table)
            return hidden[:, -1] @ table[1:].T

    example = torch.from_numpy(histories[0][None] + 1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sasrec.onnx"
        torch.onnx.export(Scores(), (example,), str(path), input_names=["inputs"], output_names=["scores"],
                          dynamo=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    onnx_times = []
    worst = 0.0
    for index, history in enumerate(histories):
        started = time.perf_counter()
        scores = session.run(None, {"inputs": (history[None] + 1).astype(np.int64)})[0]
        scores[0, history] = -np.inf
        top_k(scores, 25)
        onnx_times.append(time.perf_counter() - started)
        if index < 50:
            expected = recipe._sequence_scores([HistoryQuery(history)])
            expected[0, history] = -np.inf
            finite = np.isfinite(expected)
            worst = max(worst, float(np.abs(scores[finite] - expected[finite]).max()))
    result = {"items": catalogue, "history": args.history, "requests": args.requests,
              "numpy": percentiles(numpy_times), "onnxruntime": percentiles(onnx_times),
              "max_abs_difference": worst, "agree_to_1e-4": worst <= 1e-4}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
