"""V-SKNN: vector multiplied session-based k-nearest neighbours.

The current session (the query's latest items) is compared with past sessions that share an item with it:
the most recent ``sample_size`` of them are candidates, the ``neighbors`` most similar are kept, and an item
scores the summed similarity of the neighbours that contain it. The current session is a *position-weighted*
vector (later items weigh more), so the order of the session matters while the past sessions stay sets.

Everything is batch first: a block of queries becomes one sparse weight matrix, candidates come from a
sparse item -> sessions index (per item the most recent sessions first), and the final scores are one sparse
product ``neighbour similarities @ sessions``; no Python loop runs over training sessions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsmith.data.training import EventLog, TrainingData
from recsmith.recipes.base import Choice, IntRange, RecipeParams
from recsmith.recipes.options import FitOptions
from recsmith.recipes.query import HistoryQuery
from recsmith.recipes.sequential import SequentialRecipe, ranges
from recsmith.recipes.tags import RecipeTags

logger = logging.getLogger(__name__)

SESSION_ARRAYS = ("session_indptr", "session_items", "session_time", "index_indptr", "index_sessions")
"""The state arrays of the training sessions (besides the kept sequences)."""

Weighting = Literal["linear", "same", "div", "log", "quadratic"]


class SessionKNNParams(RecipeParams):
    """Params of :class:`SessionKNN`."""

    neighbors: int = Field(default=100, ge=1)
    """How many of the most similar candidate sessions score the items (``k``)."""

    sample_size: int = Field(default=500, ge=1)
    """How many candidate sessions are compared: the most recent of those sharing an item with the current
    session."""

    similarity: Literal["cosine", "jaccard"] = "cosine"
    """``cosine``: ``w·s / (|w| |s|)`` of the weighted session vector ``w`` and a past session's binary vector
    ``s``; ``jaccard``: the weighted Jaccard ``Σ min(w, s) / Σ max(w, s)`` (``w`` scaled to a largest weight
    of 1)."""

    weighting: Weighting = "linear"
    """The weight of the current session's ``i``-th of ``L`` distinct items (1 the oldest; a revisited item
    counts at its last position): ``linear`` ``i / L`` (V-SKNN), ``same`` 1, ``div`` ``1 / (L - i + 1)``,
    ``log`` ``1 / log10(L - i + 1.7)``, ``quadratic`` ``(i / L)²``; all but ``same`` favour the latest
    items."""

    session_gap_minutes: float = Field(default=30.0, gt=0.0)
    """Without session ids, a user's events split into sessions where this much time passes without an event
    (in training, and in a query with timestamps: its current session is what follows its last gap)."""

    max_len: int = Field(default=10, ge=1)
    """The most recent items of a query's current session (and of each kept training sequence) that are read
    (10 beat 3, 5, 20 and 50 on MovieLens 100K leave-last, ndcg@10 0.068 against 0.052 with 50; on the
    Diginetica sample's short sessions it hardly matters)."""

    search_space = {
        "neighbors": IntRange(low=10, high=1000, log=True),
        "sample_size": IntRange(low=100, high=5000, log=True),
        "similarity": Choice(choices=("cosine", "jaccard")),
        "weighting": Choice(choices=("linear", "same", "div", "log", "quadratic")),
        "max_len": IntRange(low=2, high=100, log=True),
    }


def session_codes(events: EventLog, gap_seconds: float) -> np.ndarray:
    """Each event's training session, ``int64`` codes ``0..n_sessions - 1``.

    An event's session is its session id where the log has one; otherwise the user's events (in time order)
    split where more than ``gap_seconds`` pass between two of them, or are one session per user without
    timestamps.

    Parameters
    ----------
    events : EventLog
        The events, in time order.
    gap_seconds : float
        The inactivity gap that starts a new session.

    Returns
    -------
    numpy.ndarray
        ``int64[len(events)]`` session codes.
    """
    n = len(events)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(events.users, kind="stable")  # time order within a user
    users = events.users[order].astype(np.int64)
    starts = np.ones(n, dtype=bool)
    starts[1:] = users[1:] != users[:-1]
    if events.timestamps is not None:
        stamps = events.timestamps[order].astype(np.int64)
        starts[1:] |= np.diff(stamps) > gap_seconds
    gap_codes = np.empty(n, dtype=np.int64)
    gap_codes[order] = np.cumsum(starts) - 1
    if events.sessions is None:
        return gap_codes
    named = events.sessions >= 0
    codes = np.where(named, events.sessions.astype(np.int64), gap_codes + len(events.session_ids))
    _, dense = np.unique(codes, return_inverse=True)
    return dense.astype(np.int64)


def position_weights(length: int, weighting: str) -> np.ndarray:
    """``float32[length]`` the weights of a session's distinct items, oldest first (see
    :attr:`SessionKNNParams.weighting`)."""
    i = np.arange(1, length + 1, dtype=np.float64)
    back = length - i + 1  # 1 for the latest item
    if weighting == "linear":
        w = i / length
    elif weighting == "same":
        w = np.ones(length)
    elif weighting == "div":
        w = 1.0 / back
    elif weighting == "log":
        w = 1.0 / np.log10(back + 0.7)
    elif weighting == "quadratic":
        w = (i / length) ** 2
    else:  # pragma: no cover - the params model allows only the above
        raise ValueError(weighting)
    return w.astype(np.float32)


def _top_per_row(rows: np.ndarray, keys: tuple[np.ndarray, ...], keep: int) -> np.ndarray:
    """Positions of the ``keep`` entries of each row that are largest by ``keys`` (the first key decides,
    the next ones break ties), in row order, best first."""
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64)
    order = np.lexsort(tuple(-k for k in reversed(keys)) + (rows,))
    sorted_rows = rows[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_rows)) + 1]
    counts = np.diff(np.r_[first, len(order)])
    rank = np.arange(len(order)) - np.repeat(first, counts)
    return order[rank < keep]


class SessionKNN(SequentialRecipe):
    """V-SKNN, vector multiplied session-based kNN (Ludewig and Jannach).

    Training keeps the past sessions (the event log's session ids, or each user's events split at gaps of
    ``session_gap_minutes``, or one session per user without times) as a sessions × items binary matrix,
    each session's last time and an item -> sessions index ordered most recent first.

    For a query, the current session is its ``session_items`` when given, else its items after the last gap
    of ``session_gap_minutes`` (with timestamps), else its last ``max_len`` items. Its items become a vector
    weighted by position (``weighting``; the latest items weigh most by default). The past sessions sharing
    an item with it are candidates, the ``sample_size`` most recent of them are compared (``similarity``:
    cosine or weighted Jaccard), the ``neighbors`` most similar are kept, and each item scores the sum of the
    similarities of the kept neighbours that contain it. Items in no neighbour score 0.

    A query with ``user`` set is scored from that training user's kept sequence (with its times), as
    ``recommend(users)`` is. Event weights are not used (a positive event is a step of a session, a
    non-positive one is skipped).

    References
    ----------
    Ludewig and Jannach, "Evaluation of session-based recommendation algorithms", User Modeling and
    User-Adapted Interaction 28(4-5), 2018 (V-SKNN). Jannach and Ludewig, "When recurrent neural networks
    meet the neighborhood for session-based recommendation", RecSys 2017 (SKNN).
    """

    name = "session-knn"
    Params = SessionKNNParams
    tags = RecipeTags(sequential=True, deterministic=True, uses_event_weights=False)

    session_indptr_: np.ndarray
    session_items_: np.ndarray
    session_time_: np.ndarray
    index_indptr_: np.ndarray
    index_sessions_: np.ndarray

    # ------------------------------------------------------------------------------------------ fit
    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        self._keep_sequences(data)
        events = data.events
        positive = events.weights > 0
        log = events if positive.all() else events.take(np.flatnonzero(positive))
        codes = session_codes(log, self.params.session_gap_minutes * 60.0)
        n_sessions = int(codes.max()) + 1 if len(codes) else 0
        n_items = data.n_items
        sessions = sp.csr_matrix((np.ones(len(codes), dtype=np.float32), (codes, log.items.astype(np.int64))),
                                 shape=(n_sessions, n_items))
        sessions.sum_duplicates()
        # recency: the last time of each session (the position of its last event in the log without times)
        clock = (log.timestamps.astype(np.int64) if log.timestamps is not None
                 else np.arange(len(codes), dtype=np.int64))
        last = np.full(n_sessions, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, codes, clock)
        self.session_indptr_ = sessions.indptr.astype(np.int64)
        self.session_items_ = sessions.indices.astype(np.int32)
        self.session_time_ = last
        # item -> sessions, most recent first (ties: the later session code first)
        item_of = self.session_items_.astype(np.int64)
        session_of = np.repeat(np.arange(n_sessions, dtype=np.int64), np.diff(self.session_indptr_))
        order = np.lexsort((-session_of, -last[session_of], item_of))
        self.index_sessions_ = session_of[order].astype(np.int32)
        self.index_indptr_ = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(item_of, minlength=n_items), out=self.index_indptr_[1:])
        logger.info("session-knn: %d sessions of %d items (%d events)", n_sessions, n_items, len(codes))

    @property
    def n_sessions(self) -> int:
        """Training sessions kept."""
        return len(self.session_indptr_) - 1

    def _session_matrix(self) -> sp.csr_matrix:
        return sp.csr_matrix((np.ones(len(self.session_items_), dtype=np.float32), self.session_items_,
                              self.session_indptr_), shape=(self.n_sessions, self.n_items))

    # ------------------------------------------------------------------------------------ inference
    def current_session(self, query: HistoryQuery) -> np.ndarray:
        """The items of a query's current session, oldest first (``-1`` and non-positive events dropped):
        its ``session_items`` when they hold a known item, else its events after the last gap of
        ``session_gap_minutes`` (with timestamps), at most the last ``max_len``.
        """
        max_len = self.params.max_len
        if query.session_items is not None:
            own = query.session_items[query.session_items >= 0]
            if len(own):
                return own[-max_len:]
        items, stamps, weights = query.items, query.timestamps, query.weights
        if stamps is not None and len(stamps) > 1:
            stamps = np.asarray(stamps, dtype=np.int64)
            gaps = np.flatnonzero(np.diff(stamps) > self.params.session_gap_minutes * 60.0)
            if len(gaps):
                start = int(gaps[-1]) + 1
                items = items[start:]
                weights = None if weights is None else weights[start:]
        keep = items >= 0
        if weights is not None:
            keep &= weights > 0
        return items[keep][-max_len:]

    def _query_vectors(self, queries: Sequence[HistoryQuery]) -> sp.csr_matrix:
        """``n × n_items`` CSR of the current sessions' position weights (a revisited item at its last
        position)."""
        rows, cols, vals = [], [], []
        for row, query in enumerate(queries):
            items = self.current_session(query)
            if not len(items):
                continue
            # distinct items in order of their last occurrence
            reverse_first = np.unique(items[::-1], return_index=True)[1]
            last_pos = len(items) - 1 - reverse_first
            distinct = items[np.sort(last_pos)]
            rows.append(np.full(len(distinct), row, dtype=np.int64))
            cols.append(distinct)
            vals.append(position_weights(len(distinct), self.params.weighting))
        if not rows:
            return sp.csr_matrix((len(queries), self.n_items), dtype=np.float32)
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(len(queries), self.n_items), dtype=np.float32)

    def neighbours(self, queries: Sequence[HistoryQuery]) -> sp.csr_matrix:
        """``len(queries) × n_sessions`` CSR: each query's ``neighbors`` nearest past sessions and their
        similarities (the ``sample_size`` most recent sessions sharing an item with the current session are
        compared)."""
        p = self.params
        weights = self._query_vectors(queries)
        n = weights.shape[0]
        if weights.nnz == 0 or self.n_sessions == 0:
            return sp.csr_matrix((n, self.n_sessions), dtype=np.float32)
        # candidates: per query item its sample_size most recent sessions (the most recent sample_size of
        # the union are among them), then the union's most recent sample_size
        q_rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(weights.indptr))
        starts = self.index_indptr_[weights.indices]
        ends = np.minimum(self.index_indptr_[weights.indices + 1], starts + p.sample_size)
        picked = ranges(starts, ends)
        pair_rows = np.repeat(q_rows, ends - starts)
        pair_sessions = np.asarray(self.index_sessions_[picked], dtype=np.int64)
        pairs = np.unique(pair_rows * self.n_sessions + pair_sessions)
        pair_rows, pair_sessions = pairs // self.n_sessions, pairs % self.n_sessions
        recent = _top_per_row(pair_rows, (self.session_time_[pair_sessions], pair_sessions), p.sample_size)
        pair_rows, pair_sessions = pair_rows[recent], pair_sessions[recent]
        # exact w·s of each (query, candidate): the query weights of the candidate's items
        dense_w = weights.toarray()
        s_starts = self.session_indptr_[pair_sessions]
        s_ends = self.session_indptr_[pair_sessions + 1]
        s_len = (s_ends - s_starts).astype(np.float64)
        member = ranges(s_starts, s_ends)
        pair_id = np.repeat(np.arange(len(pair_rows)), s_ends - s_starts)
        gathered = dense_w[pair_rows[pair_id], np.asarray(self.session_items_[member], dtype=np.int64)]
        dot = np.bincount(pair_id, weights=gathered, minlength=len(pair_rows))
        if p.similarity == "cosine":
            w_norm = np.sqrt(np.asarray(weights.multiply(weights).sum(axis=1)).ravel())
            sim = dot / (w_norm[pair_rows] * np.sqrt(s_len))
        else:  # weighted Jaccard with w scaled to a largest weight of 1 and s binary
            w_max = np.asarray(weights.max(axis=1).toarray()).ravel()
            w_sum = np.asarray(weights.sum(axis=1)).ravel()
            scale = 1.0 / w_max[pair_rows]
            sim = dot * scale / (s_len + w_sum[pair_rows] * scale - dot * scale)
        best = _top_per_row(pair_rows, (sim, self.session_time_[pair_sessions], pair_sessions), p.neighbors)
        return sp.csr_matrix((sim[best].astype(np.float32), (pair_rows[best], pair_sessions[best])),
                             shape=(n, self.n_sessions))

    def _sequence_scores(self, queries: Sequence[HistoryQuery]) -> np.ndarray:
        near = self.neighbours(queries)
        return (near @ self._session_matrix()).toarray().astype(np.float32, copy=False)

    # ------------------------------------------------------------------------------------ state
    def _state(self) -> dict[str, np.ndarray]:
        state = super()._state()
        state.update({"session_indptr": self.session_indptr_, "session_items": self.session_items_,
                      "session_time": self.session_time_, "index_indptr": self.index_indptr_,
                      "index_sessions": self.index_sessions_})
        return state

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.session_indptr_ = np.asarray(arrays["session_indptr"])
        self.session_items_ = np.asarray(arrays["session_items"])
        self.session_time_ = np.asarray(arrays["session_time"])
        self.index_indptr_ = np.asarray(arrays["index_indptr"])
        self.index_sessions_ = np.asarray(arrays["index_sessions"])
        super()._restore({key: value for key, value in arrays.items() if key not in SESSION_ARRAYS})


__all__ = ["SessionKNN", "SessionKNNParams", "position_weights", "session_codes"]
