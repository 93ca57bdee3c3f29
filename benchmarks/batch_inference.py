"""Batch inference and batch segment speed: top-25 for every user of the synthetic log, against looping a
campaign's per-request path; and the top 100 users of 1,000 items.

    python benchmarks/batch_inference.py [--users 100000 --items 20000 --interactions 5000000]
        [--recipes als,item-knn] [--loop-sample 2000] [--home /tmp/recsmith-batch-bench]

For each recipe: imports the synthetic log once (``recsmith datasets synthetic``'s generator, seed 0), trains a
version without offline metrics, then times

- the batch inference job over every user (``recsmith batch-inference create --all-users``, JSON Lines out), end
  to end: listing the users, loading the version, scoring in blocks, writing the parts and publishing the file;
- the per-request path, ``CampaignRuntime.answer(user_id=…)`` looped over ``--loop-sample`` users (the same
  pipeline one user at a time, as HTTP runs it, minus HTTP), extrapolated to all users.

and prints users/s for both and their ratio (checking on the way that the batch answers equal the loop's); then
a batch segment job (``recsmith batch-segment create``) over ``--segment-items`` items (every 20th item of the
vocabulary), ``--num-users`` users each, end to end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from recsmith.datasets.synthetic import synthetic_frame  # noqa: E402
from recsmith.jobs.batch import (  # noqa: E402
    create_batch_inference_job,
    create_batch_segment_job,
    run_batch_job,
)
from recsmith.jobs.importing import import_dataset  # noqa: E402
from recsmith.jobs.training import train_solution_version  # noqa: E402
from recsmith.serving.campaign import CampaignRuntime, load_version  # noqa: E402
from recsmith.settings import Settings  # noqa: E402
from recsmith.store.store import Store  # noqa: E402

PARAMS = {"als": {"factors": 64, "epochs": 15}, "item-knn": {"neighbors": 100}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=5_000_000)
    parser.add_argument("--recipes", default="als,item-knn")
    parser.add_argument("--num-results", type=int, default=25)
    parser.add_argument("--loop-sample", type=int, default=2_000)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--segment-items", type=int, default=1_000)
    parser.add_argument("--num-users", type=int, default=100)
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="recsmith-batch-bench-"))
    shutil.rmtree(home, ignore_errors=True)
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.migrate()
    frame = synthetic_frame(args.users, args.items, args.interactions, seed=0)
    source = home / "synthetic.parquet"
    frame.to_parquet(source, index=False)
    started = time.perf_counter()
    import_dataset(store, "bench", "interactions", str(source), mode="full")
    print(f"imported {len(frame):,} interactions in {time.perf_counter() - started:.1f} s", flush=True)

    rows = []
    for recipe in args.recipes.split(","):
        started = time.perf_counter()
        version = train_solution_version(store, settings, "bench", recipe, PARAMS.get(recipe, {}), with_metrics=False)
        fit = time.perf_counter() - started
        output = home / f"{recipe}.jsonl"
        started = time.perf_counter()
        job = create_batch_inference_job(store, settings, group="bench", solution_version_id=version["id"],
                                         all_users=True, output=str(output), num_results=args.num_results)
        done = run_batch_job(store, settings, job["id"])
        batch_seconds = time.perf_counter() - started
        users = done["lines_written"]

        deployed = load_version(store, version["id"])
        runtime = CampaignRuntime(store)
        lines = [json.loads(line) for line in output.read_text().splitlines()[:args.loop_sample]]
        started = time.perf_counter()
        answers = [runtime.answer(deployed, user_id=line["input"]["userId"], num_results=args.num_results, log=False)
                   for line in lines]
        loop_seconds = time.perf_counter() - started
        same = sum(line["output"]["recommendedItems"] == [item["item_id"] for item in answer["items"]]
                   for line, answer in zip(lines, answers, strict=True))
        batch_rate, loop_rate = users / batch_seconds, len(lines) / loop_seconds

        items = deployed.model.items.ids[::20][:args.segment_items].tolist()
        source = home / "segment-items.jsonl"
        source.write_text("".join(json.dumps({"itemId": item}) + "\n" for item in items))
        started = time.perf_counter()
        job = create_batch_segment_job(store, settings, group="bench", solution_version_id=version["id"],
                                       input=str(source), output=str(home / f"{recipe}-segments.jsonl"),
                                       num_users=args.num_users)
        segment = run_batch_job(store, settings, job["id"])
        segment_seconds = time.perf_counter() - started
        assert segment["lines_written"] == len(items), segment
        rows.append((recipe, fit, users, batch_seconds, batch_rate, loop_rate, batch_rate / loop_rate,
                     f"{same}/{len(lines)}", len(items), segment_seconds))
        print(f"{recipe}: fit {fit:.1f} s; batch {users:,} users in {batch_seconds:.1f} s ({batch_rate:,.0f} users/s); "
              f"per-request loop {loop_rate:,.0f} users/s; {batch_rate / loop_rate:.1f}x; equal lists {same}/"
              f"{len(lines)}; segments: {len(items):,} items x {args.num_users} users in {segment_seconds:.1f} s",
              flush=True)
    print()
    print("| recipe | fit s | users | batch s | batch users/s | per-request users/s | ratio | equal | segment items "
          "| segment s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for recipe, fit, users, seconds, rate, loop, ratio, same, items, segment_seconds in rows:
        print(f"| {recipe} | {fit:.1f} | {users:,} | {seconds:.1f} | {rate:,.0f} | {loop:,.0f} | {ratio:.1f}x "
              f"| {same} | {items:,} | {segment_seconds:.1f} |")


if __name__ == "__main__":
    main()
