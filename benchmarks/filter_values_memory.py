"""The filter cache under distinct ``filter_values`` requests: bytes kept, process memory, time per request.

Usage::

    python benchmarks/filter_values_memory.py                      # 100,000 items, 1,000 requests, 100 values
    python benchmarks/filter_values_memory.py --items 2000 --requests 200 --out small.json   # a quick look

In one process, with no server: an :class:`~recsmith.data.filters.ItemCatalog` of ``--items`` items in ``--genres``
genres, and a :class:`~recsmith.data.filters.FilterCache` with ``--budget`` bytes (default: the
``RECSMITH_FILTER_CACHE_BYTES`` default, 64 MiB). ``--requests`` requests each bind ``$GENRE`` of
``INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)`` to ``--values`` distinct values (one real genre, the rest
unknown), the worst a read key can do within the caps. Reported: the cache's accounted bytes and entries, the
process's resident memory before and after (after ``--warmup`` requests), the median and p99 time of a request
(compile and cache), and the time to refuse a request of 100,000 values (the issue's 0.89 MB attack).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from recsmith.data.filters import (
    FILTER_CACHE_BYTES,
    FILTER_MAX_VALUES,
    FilterCache,
    ItemCatalog,
    parse_filter,
)
from recsmith.errors import FilterError


def rss_mib() -> float:
    """Resident memory of this process, MiB (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--genres", type=int, default=40)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--values", type=int, default=FILTER_MAX_VALUES)
    parser.add_argument("--budget", type=int, default=FILTER_CACHE_BYTES)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    catalog = ItemCatalog([f"i{n}" for n in range(args.items)],
                          {f"i{n}": {"GENRE": f"g{n % args.genres}"} for n in range(args.items)})
    cache = FilterCache(max_bytes=args.budget)
    parsed = parse_filter("INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)")

    def request(n: int) -> float:
        values = {"GENRE": [f"g{n % args.genres}"] + [f"unknown-{n}-{m}" for m in range(args.values - 1)]}
        started = time.perf_counter()
        cache.get(parsed, catalog, values=values)
        return time.perf_counter() - started

    for n in range(args.warmup):
        request(n)
    before = rss_mib()
    times = [request(n) for n in range(args.warmup, args.warmup + args.requests)]
    after = rss_mib()
    attack = {"GENRE": [f"g{n}" for n in range(100_000)]}
    started = time.perf_counter()
    try:
        cache.get(parsed, catalog, values=attack)
        refused = False
    except FilterError:
        refused = True
    refuse_ms = (time.perf_counter() - started) * 1000
    times.sort()
    result = {
        "items": args.items, "requests": args.requests, "values_per_request": args.values, "budget_bytes": args.budget,
        "cache_bytes": cache.nbytes, "cache_entries": len(cache), "rss_before_mib": round(before, 1),
        "rss_after_mib": round(after, 1), "rss_growth_percent": round(100 * (after - before) / before, 1),
        "request_p50_ms": round(1000 * statistics.median(times), 3),
        "request_p99_ms": round(1000 * times[int(0.99 * (len(times) - 1))], 3),
        "attack_100000_values_refused": refused, "attack_refused_in_ms": round(refuse_ms, 3),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
