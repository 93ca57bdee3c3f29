"""The training snapshot: a users × items sparse matrix of weights, with timestamps and vocabularies."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import DataError

SECONDS_PER_DAY = 86_400.0


class Interactions:
    """Users × items interactions as a CSR matrix of weights.

    Each stored entry is one (user, item) pair; the weights of all its events are summed (event-type
    weights and time decay applied), so negative entries mean "pushed down".

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix
        ``float32`` users × items weights with sorted indices and no duplicates.
    user_vocab, item_vocab : Vocabulary
        Raw <-> dense ids for the rows and columns.
    timestamps : numpy.ndarray, optional
        ``int64`` latest event time of each pair, aligned with ``matrix.data``.
    values : numpy.ndarray, optional
        ``float32`` last ``EVENT_VALUE`` of each pair (e.g. the rating), NaN where none, aligned with
        ``matrix.data``.
    """

    def __init__(self, matrix: sp.csr_matrix, user_vocab: Vocabulary, item_vocab: Vocabulary,
                 timestamps: np.ndarray | None = None, values: np.ndarray | None = None) -> None:
        if matrix.shape != (len(user_vocab), len(item_vocab)):
            raise DataError(f"matrix shape {matrix.shape} does not match the vocabularies "
                            f"({len(user_vocab)} users, {len(item_vocab)} items)")
        for name, array in (("timestamps", timestamps), ("values", values)):
            if array is not None and len(array) != matrix.nnz:
                raise DataError(f"{name} has {len(array)} entries, the matrix {matrix.nnz}")
        self.matrix = matrix
        self.user_vocab = user_vocab
        self.item_vocab = item_vocab
        self.timestamps = timestamps
        self.values = values

    # ---------------------------------------------------------------------------------- constructors
    @classmethod
    def from_csr(cls, matrix: sp.spmatrix | sp.sparray | np.ndarray, *, timestamps: np.ndarray | None = None,
                 values: np.ndarray | None = None) -> Interactions:
        """Wrap a users × items matrix in dense ids (the vocabularies are ``"0"``, ``"1"``, ...)."""
        if isinstance(matrix, np.ndarray):
            if matrix.ndim != 2:
                raise DataError(f"an interactions matrix must be 2-D, got {matrix.ndim}-D")
            matrix = sp.csr_matrix(matrix)
        if not sp.issparse(matrix) or len(matrix.shape) != 2:
            raise DataError("from_csr needs a 2-D scipy sparse matrix or numpy array")
        csr = sp.csr_matrix(matrix, dtype=np.float32)
        if timestamps is None and values is None:
            csr.sum_duplicates()
        csr.sort_indices()
        n_users, n_items = csr.shape
        return cls(csr, Vocabulary([str(i) for i in range(n_users)]), Vocabulary([str(i) for i in range(n_items)]),
                   None if timestamps is None else np.asarray(timestamps, dtype=np.int64),
                   None if values is None else np.asarray(values, dtype=np.float32))

    @classmethod
    def from_arrays(
        cls,
        users: np.ndarray,
        items: np.ndarray,
        *,
        timestamps: np.ndarray | None = None,
        event_types: np.ndarray | None = None,
        event_values: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        event_weights: Mapping[str, float] | None = None,
        half_life_days: float | None = None,
        user_vocab: Vocabulary | None = None,
        item_vocab: Vocabulary | None = None,
    ) -> Interactions:
        """Build from one row per event, in raw ids, in one vectorised pass.

        Parameters
        ----------
        users, items : array-like of str
            Raw user and item id of each event.
        timestamps : array-like of int, optional
            Epoch seconds of each event (needed for ``half_life_days``).
        event_types : array-like of str, optional
            Each event's type, looked up in ``event_weights``.
        event_values : array-like of float, optional
            Each event's value (a rating); the latest per pair is kept in :attr:`values`.
        weights : array-like of float, optional
            A per-event weight multiplied in.
        event_weights : mapping, optional
            Weight per event type; types not listed weigh 1; events weighing 0 are dropped.
        half_life_days : float, optional
            Halve an event's weight for every this many days before the newest event.
        user_vocab, item_vocab : Vocabulary, optional
            Use these vocabularies (events with ids outside them are dropped) instead of building new ones.
        """
        users = np.asarray(users, dtype=object)
        items = np.asarray(items, dtype=object)
        n = len(users)
        arrays = {"items": items, "timestamps": timestamps, "event_types": event_types,
                  "event_values": event_values, "weights": weights}
        for name, array in arrays.items():
            if array is not None and len(array) != n:
                raise DataError(f"{name} has {len(array)} entries, users has {n}")
        weight = np.ones(n, dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
        if event_weights and event_types is not None:
            mapped = pd.Series(np.asarray(event_types, dtype=object)).map(dict(event_weights))
            weight = weight * mapped.fillna(1.0).to_numpy(dtype=np.float64)
        stamps = None if timestamps is None else np.asarray(timestamps, dtype=np.int64)
        if half_life_days is not None:
            if half_life_days <= 0:
                raise DataError(f"half_life_days must be positive, got {half_life_days}")
            if stamps is None:
                raise DataError("time decay (half_life_days) needs timestamps")
            if n:
                age_days = (stamps.max() - stamps) / SECONDS_PER_DAY
                weight = weight * np.power(0.5, age_days / half_life_days)
        if user_vocab is None:
            user_vocab, user_codes = Vocabulary.from_values(users)
        else:
            user_codes = user_vocab.indices(users, missing="ignore")
        if item_vocab is None:
            item_vocab, item_codes = Vocabulary.from_values(items)
        else:
            item_codes = item_vocab.indices(items, missing="ignore")
        keep = (weight != 0) & (user_codes >= 0) & (item_codes >= 0)
        n_users, n_items = len(user_vocab), len(item_vocab)
        key = user_codes[keep].astype(np.int64) * n_items + item_codes[keep]
        weight = weight[keep]
        kept_stamps = stamps[keep] if stamps is not None else np.zeros(len(key), dtype=np.int64)
        order = np.lexsort((kept_stamps, key))  # by pair, then by time: the last row of a pair is its latest
        key, weight, kept_stamps = key[order], weight[order], kept_stamps[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.empty(0, dtype=np.int64)
        ends = np.r_[starts[1:], len(key)] - 1 if len(key) else np.empty(0, dtype=np.int64)
        data = np.add.reduceat(weight, starts).astype(np.float32) if len(key) else np.empty(0, np.float32)
        pair_key = key[starts]
        rows = (pair_key // n_items).astype(np.int64)
        cols = (pair_key % n_items).astype(np.int32)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
        matrix = sp.csr_matrix((data, cols, indptr), shape=(n_users, n_items))
        pair_stamps = kept_stamps[ends] if stamps is not None else None
        pair_values = None
        if event_values is not None:
            kept_values = np.asarray(event_values, dtype=np.float64)[keep][order]
            pair_values = kept_values[ends].astype(np.float32)
        return cls(matrix, user_vocab, item_vocab, pair_stamps, pair_values)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        user: str = "user_id",
        item: str = "item_id",
        weight: str | None = None,
        timestamp: str | None = None,
        event_type: str | None = None,
        value: str | None = None,
        event_weights: Mapping[str, float] | None = None,
        half_life_days: float | None = None,
    ) -> Interactions:
        """Build from a DataFrame with one row per event, in raw ids (column names as given)."""
        missing = [c for c in (user, item, weight, timestamp, event_type, value) if c and c not in frame.columns]
        if missing:
            raise DataError(f"the frame has no column {missing[0]!r}; its columns are {list(frame.columns)}")
        if timestamp and frame[timestamp].isna().any():
            raise DataError(f"column {timestamp!r} has missing timestamps")

        def column(name: str | None) -> np.ndarray | None:
            return None if name is None else frame[name].to_numpy()

        return cls.from_arrays(
            frame[user].astype(str).to_numpy(dtype=object), frame[item].astype(str).to_numpy(dtype=object),
            timestamps=column(timestamp), event_types=column(event_type), event_values=column(value),
            weights=column(weight), event_weights=event_weights, half_life_days=half_life_days,
        )

    # ---------------------------------------------------------------------------------------- views
    @property
    def n_users(self) -> int:
        """Number of users (rows)."""
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        """Number of items (columns)."""
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        """Number of stored user-item pairs."""
        return int(self.matrix.nnz)

    def with_entries(self, mask: np.ndarray) -> Interactions:
        """A copy keeping only the stored entries where ``mask`` (aligned with ``matrix.data``) is true;
        same vocabularies."""
        coo = self.matrix.tocoo()
        matrix = sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=self.matrix.shape,
                               dtype=np.float32)
        matrix.sort_indices()
        return Interactions(
            matrix, self.user_vocab, self.item_vocab,
            None if self.timestamps is None else self.timestamps[mask],
            None if self.values is None else self.values[mask],
        )

    def user_history(self, user: int) -> np.ndarray:
        """Item indices the user interacted with."""
        start, end = self.matrix.indptr[user], self.matrix.indptr[user + 1]
        return self.matrix.indices[start:end].copy()

    def __repr__(self) -> str:
        return f"Interactions({self.n_users} users × {self.n_items} items, {self.nnz} pairs)"
