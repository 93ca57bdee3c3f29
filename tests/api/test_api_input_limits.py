"""filter_values over HTTP against a real `recsmith serve --workers 2`: requests over the caps are refused before any
work, and 1,000 distinct requests within them leave the workers' memory flat (the cache is bounded by bytes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recsmith.client import APIError
from recsmith.data.filters import FILTER_MAX_VALUES
from recsmith.settings import Settings

pytestmark = pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads worker memory from /proc")


def _workers(pid: int) -> list[int]:
    """The server's worker processes (its children), from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def _rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _genres(n: int) -> list[str]:
    """A distinct list of FILTER_MAX_VALUES values (one real genre, so the filter passes some items)."""
    return ["Comedy"] + [f"not-a-genre-{n}-{m:03d}" for m in range(FILTER_MAX_VALUES - 1)]


def test_filter_values_over_the_caps_are_refused_with_a_4xx(server) -> None:
    with server.client(server.read_key) as client:
        for values in ({"GENRE": [f"g{n}" for n in range(100_000)]},  # the 0.89 MB request
                       {"GENRE": ["x" * 5000]},
                       {f"P{n}": "x" for n in range(26)}):
            with pytest.raises(APIError) as info:
                client.recommend("movies", "knn", user_id="1", num_results=5, filter="genre", filter_values=values)
            assert 400 <= info.value.status < 500, info.value.message


def test_1000_distinct_filter_value_requests_leave_worker_memory_flat(server) -> None:
    workers = _workers(server.process.pid)
    assert workers, "no worker processes found"
    budget = Settings().filter_cache_bytes
    with server.client(server.read_key) as client:
        for n in range(200):  # warm up every worker: allocator pools, catalogue, first cache entries
            client.recommend("movies", "knn", user_id=str(1 + n % 50), num_results=5, filter="genre",
                             filter_values={"GENRE": _genres(n)})
        before = {pid: _rss(pid) for pid in workers}
        for n in range(200, 1200):
            result = client.recommend("movies", "knn", user_id=str(1 + n % 50), num_results=5, filter="genre",
                                      filter_values={"GENRE": _genres(n)})
            assert result.items
    grown = {pid: _rss(pid) - before[pid] for pid in workers}
    for pid, delta in grown.items():  # a worker may cache up to the budget; nothing beyond it
        assert delta < budget + 16 * 2**20, f"worker {pid} grew by {delta / 2**20:.1f} MiB over 1,000 requests"
        assert delta < 0.10 * before[pid] + 16 * 2**20, (pid, delta, before[pid])
