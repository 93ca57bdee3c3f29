"""Session-based evaluation: the last days' sessions are the test, each one's last item predicted from the rest.

The protocol SR-GNN uses on Diginetica (Wu et al. 2019), for ``benchmarks/sessions.py`` and the session tests:
sessions whose last day falls in the last ``test_days`` days are test, all earlier sessions train (as the
users of the training data, and its session ids). Test events of items unknown to training are dropped, then
test sessions with fewer than 2 events. Each test session becomes one ordered query of its earlier items (with
their times) and one target, its last item.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsmith.data.training import TrainingData
from recsmith.recipes.query import HistoryQuery

DAY = 86_400


@dataclass
class SessionSplit:
    """A time split of sessions: training data, the test queries and each one's target item."""

    train: TrainingData
    queries: list[HistoryQuery]
    targets: np.ndarray
    cut_day: str
    train_sessions: int
    test_sessions: int
    test_sessions_read: int


def read_diginetica(path: Path) -> pd.DataFrame:
    """The sample's events in time order (``eventdate`` then ``timeframe``), with a ``ts`` column of epoch
    seconds and string ids."""
    frame = pd.read_csv(path, sep=";", dtype={"session_id": str, "item_id": str, "user_id": str})
    day = (pd.to_datetime(frame["eventdate"]) - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    frame["ts"] = day + frame["timeframe"] // 1000
    frame["day"] = day
    return frame.sort_values(["day", "timeframe"], kind="stable").reset_index(drop=True)


def split_sessions(frame: pd.DataFrame, test_days: int) -> SessionSplit:
    """Sessions ending in the last ``test_days`` days are test (see the module docstring)."""
    last_day = frame.groupby("session_id")["day"].max()
    cut = int(last_day.max()) - test_days * DAY
    test_ids = last_day.index[last_day > cut]
    is_test = frame["session_id"].isin(test_ids)
    train, test = frame[~is_test], frame[is_test]
    data = TrainingData.from_frame(train, user="session_id", item="item_id", timestamp="ts", session="session_id")
    code = {data.item_vocab.raw(i): i for i in range(data.n_items)}
    known = test.assign(item=test["item_id"].map(code)).dropna(subset=["item"])
    queries, targets = [], []
    for _, events in known.groupby("session_id", sort=True):
        if len(events) < 2:
            continue
        items = events["item"].to_numpy(dtype=np.int64)
        queries.append(HistoryQuery(items[:-1], timestamps=events["ts"].to_numpy(dtype=np.int64)[:-1]))
        targets.append(items[-1])
    cut_day = str((pd.Timestamp("1970-01-01") + pd.Timedelta(seconds=cut)).date())
    return SessionSplit(data, queries, np.asarray(targets, dtype=np.int64), cut_day, int(data.n_users),
                        len(queries), int(len(test_ids)))


