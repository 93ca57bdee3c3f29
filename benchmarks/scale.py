"""Scale: fit recipes on the synthetic 5M-interaction log (100k users × 20k items, power-law popularity).

Usage::

    python benchmarks/scale.py [--recipes als,item-knn] [--interactions 5000000] [--users 100000] [--items 20000]
    python benchmarks/scale.py --recipes ease --items 10000 --interactions 1000000   # ease's 10k-item target

Each recipe fits in its own child process so that its peak memory (max RSS, which includes the data
snapshot) is its own. ``als`` uses 64 factors and 15 epochs, as issue 3 specifies.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PARAMS = {"als": {"factors": 64, "epochs": 15}, "item-knn": {}, "rp3beta": {}, "bpr": {"epochs": 20},
          "popularity": {}}


def child(recipe: str, interactions: int, users: int, items: int) -> None:
    from recsmith.data.interactions import Interactions
    from recsmith.datasets.synthetic import synthetic_frame
    from recsmith.recipes import create

    frame = synthetic_frame(n_users=users, n_items=items, n_interactions=interactions)
    data = Interactions.from_frame(frame, user="USER_ID", item="ITEM_ID", timestamp="TIMESTAMP")
    del frame
    model = create(recipe, **PARAMS.get(recipe, {}))
    started = time.perf_counter()
    model.fit(data)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"recipe": recipe, "fit_seconds": round(seconds, 2), "peak_rss_mib": round(peak_mib),
                      "users": data.n_users, "items": data.n_items, "pairs": data.nnz}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="als,item-knn")
    parser.add_argument("--interactions", type=int, default=5_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.interactions, args.users, args.items)
        return
    for recipe in args.recipes.split(","):
        command = [sys.executable, __file__, "--child", recipe, "--interactions", str(args.interactions),
                   "--users", str(args.users), "--items", str(args.items)]
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
        print(lines[-1] if lines else f"{recipe}: failed (exit {run.returncode}): {run.stderr[-500:]}")


if __name__ == "__main__":
    main()
