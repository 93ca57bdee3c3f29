"""What the sequential recipes (``sasrec``, ``gru4rec``, ``session-knn``) share: ordered histories.

A sequential recipe ranks from the *order* of a user's events, not from the bag of items the interactions
matrix holds. :class:`SequentialRecipe` gives every one of them, written once:

- the training users' ordered sequences (:class:`Sequences`: the last ``max_len`` positive events of each
  user, repeats kept, with their times), read from :attr:`TrainingData.events` and saved in the artifact, so
  ``recommend(users)`` and serving (which appends each user's live events to it) see the order training saw;
- ordered inference: :meth:`~recsmith.recipes.base.Recipe.recommend_for_queries` reads each
  :class:`~recsmith.recipes.query.HistoryQuery`'s items in order (oldest first), with their times and the
  session's items, and ``recommend_from_history`` reads lists of items in order (a sparse matrix has no
  order: its items are read in index order);
- one hook, :meth:`SequentialRecipe._sequence_scores`: dense scores for a batch of ordered queries.

Examples
--------
>>> import numpy as np
>>> from recsmith.data.training import EventLog
>>> log = EventLog(np.array([0, 1, 0, 0], np.int32), np.array([5, 2, 7, 5], np.int32), np.ones(4, np.float32))
>>> seqs = Sequences.from_events(log, n_users=2, max_len=2)
>>> seqs.of(0).tolist(), seqs.of(1).tolist()
([7, 5], [2])
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsmith.data.training import EventLog, TrainingData
from recsmith.errors import DataError
from recsmith.recipes.base import ItemLists, Recipe, Recommendations
from recsmith.recipes.query import HistoryQuery, query_rows

SEQUENCE_ARRAYS = ("seq_indptr", "seq_items", "seq_times")
"""The state arrays that hold the training sequences."""


@dataclass(frozen=True, eq=False)
class Sequences:
    """Each user's events in time order, CSR-style: user ``u``'s items are ``items[indptr[u]:indptr[u + 1]]``.

    Attributes
    ----------
    indptr : numpy.ndarray
        ``int64[n_users + 1]``.
    items : numpy.ndarray
        ``int32`` dense item indices, oldest first within a user; repeats are separate entries.
    timestamps : numpy.ndarray or None
        ``int64`` epoch seconds of each entry, or None when the data had no times.
    """

    indptr: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None = None

    @classmethod
    def from_events(cls, events: EventLog, n_users: int, max_len: int | None = None) -> Sequences:
        """The users' sequences from an event log: events of positive weight only (a "dislike" is not a step
        of the sequence), the last ``max_len`` of each user (all when None)."""
        keep = events.weights > 0
        log = events if keep.all() else events.take(np.flatnonzero(keep))
        indptr, positions = log.by_user(n_users)
        if max_len is not None:
            lengths = np.minimum(np.diff(indptr), max_len)
            ends = indptr[1:]
            starts = ends - lengths
            positions = positions[ranges(starts, ends)]
            indptr = np.zeros(n_users + 1, dtype=np.int64)
            np.cumsum(lengths, out=indptr[1:])
        stamps = None if log.timestamps is None else np.asarray(log.timestamps[positions], dtype=np.int64)
        return cls(indptr, np.asarray(log.items[positions], dtype=np.int32), stamps)

    @property
    def n_users(self) -> int:
        """Users (rows)."""
        return len(self.indptr) - 1

    def lengths(self) -> np.ndarray:
        """``int64`` length of each user's sequence."""
        return np.diff(self.indptr)

    def of(self, user: int) -> np.ndarray:
        """User ``user``'s items, oldest first."""
        return self.items[self.indptr[user]:self.indptr[user + 1]]

    def times_of(self, user: int) -> np.ndarray | None:
        """The times of user ``user``'s items (None without timestamps)."""
        if self.timestamps is None:
            return None
        return self.timestamps[self.indptr[user]:self.indptr[user + 1]]

    def query(self, user: int) -> HistoryQuery:
        """User ``user``'s sequence as an inference query (scored as that training user)."""
        return HistoryQuery(self.of(user), timestamps=self.times_of(user), user=int(user))

    def arrays(self) -> dict[str, np.ndarray]:
        """The state arrays (:data:`SEQUENCE_ARRAYS`) an artifact stores."""
        out = {"seq_indptr": self.indptr, "seq_items": self.items}
        if self.timestamps is not None:
            out["seq_times"] = self.timestamps
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Sequences:
        """Read back what :meth:`arrays` wrote."""
        times = arrays.get("seq_times")
        return cls(np.asarray(arrays["seq_indptr"], dtype=np.int64), np.asarray(arrays["seq_items"]),
                   None if times is None else np.asarray(times, dtype=np.int64))


def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenated ``arange(start, end)`` of each pair, vectorised."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return np.arange(total, dtype=np.int64) + offsets


class SequentialRecipe(Recipe):
    """Base of the recipes that rank from the order of a history (``tags.sequential``).

    Subclasses call :meth:`_keep_sequences` in ``_fit`` and implement :meth:`_sequence_scores`; when they keep
    more state than the sequences, their ``_state``/``_restore`` call this class's. How much of each user's
    history is kept and read is :attr:`max_history` (the ``max_len`` param where there is one).
    """

    sequences_: Sequences | None = None

    @property
    def max_history(self) -> int | None:
        """The most recent events read from a history (None: all)."""
        value = getattr(self.params, "max_len", None)
        return None if value is None else int(value)

    def _keep_sequences(self, data: TrainingData) -> Sequences:
        """Read and keep the training users' sequences (what ``recommend(users)`` and serving start from)."""
        self.sequences_ = Sequences.from_events(data.events, data.n_users, self.max_history)
        return self.sequences_

    def user_sequence(self, user: int) -> tuple[np.ndarray, np.ndarray | None]:
        """A training user's kept sequence ``(items, timestamps)``, oldest first: what serving appends the
        user's live events to."""
        self._check_fitted()
        if self.sequences_ is None or not 0 <= user < self.sequences_.n_users:
            raise DataError(f"user index {user} is outside 0..{self._check_fitted().shape[0] - 1}")
        return self.sequences_.of(user).astype(np.int64), self.sequences_.times_of(user)

    # ---------------------------------------------------------------------------- ordered inference
    @abstractmethod
    def _sequence_scores(self, queries: Sequence[HistoryQuery]) -> np.ndarray:
        """Dense ``float32[len(queries), n_items]`` scores for ordered queries (items oldest first; ``-1``
        entries are unknown items, to be skipped)."""

    def _block_scores(self, histories: sp.csr_matrix, users: np.ndarray | None,
                      queries: Sequence[HistoryQuery] | None) -> np.ndarray:
        if queries is None:
            if users is not None and self.sequences_ is not None:
                queries = [self.sequences_.query(int(u)) for u in users]
            else:  # a bare matrix has no order: its items in index order
                histories = sp.csr_matrix(histories)
                queries = [HistoryQuery(histories.indices[histories.indptr[r]:histories.indptr[r + 1]])
                           for r in range(histories.shape[0])]
        return self._sequence_scores(queries)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return self._block_scores(histories, users, None)

    def recommend_for_queries(self, queries: Sequence[HistoryQuery], k: int = 10, *, exclude_seen: bool = True,
                              candidates: ItemLists | sp.spmatrix | None = None,
                              exclude: ItemLists | sp.spmatrix | None = None) -> Recommendations:
        """Top ``k`` items for each ordered query: its items oldest first (repeats and times read), ranked by
        :meth:`_sequence_scores`; ``exclude_seen`` leaves out the query's items. See
        :meth:`Recipe.recommend_for_queries`."""
        self._check_fitted()
        queries = list(queries)
        rows = query_rows(queries, self.n_items)
        return self._rank(rows, None, k, exclude_seen, candidates, exclude, queries)

    def recommend_from_history(self, histories: sp.spmatrix | ItemLists, k: int = 10, *, exclude_seen: bool = True,
                               candidates: ItemLists | None = None,
                               exclude: ItemLists | None = None) -> Recommendations:
        """Top ``k`` items for users the model never saw, from their histories read in order: one array of
        item indices per user, oldest first (a sparse matrix is read in index order: it has no order)."""
        self._check_fitted()
        if sp.issparse(histories):
            return super().recommend_from_history(histories, k, exclude_seen=exclude_seen, candidates=candidates,
                                                  exclude=exclude)
        queries = [HistoryQuery(np.asarray(h, dtype=np.int64).ravel()) for h in histories]
        for query in queries:
            if len(query.items) and (query.items.min() < 0 or query.items.max() >= self.n_items):
                raise DataError(f"history item indices must be in 0..{self.n_items - 1}")
        return self.recommend_for_queries(queries, k, exclude_seen=exclude_seen, candidates=candidates,
                                          exclude=exclude)

    # ------------------------------------------------------------------------------------ state
    def _state(self) -> dict[str, np.ndarray]:
        state = dict(super()._state())
        if self.sequences_ is not None:
            state.update(self.sequences_.arrays())
        return state

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        if "seq_indptr" in arrays:
            self.sequences_ = Sequences.from_arrays(arrays)
        rest = {key: value for key, value in arrays.items() if key not in SEQUENCE_ARRAYS}
        super()._restore(rest)


def last_items(query: HistoryQuery, max_len: int | None) -> np.ndarray:
    """A query's known items (``-1`` dropped), oldest first, the last ``max_len`` of them."""
    items = query.items[query.items >= 0]
    return items if max_len is None else items[-max_len:]
