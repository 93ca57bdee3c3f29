"""The training snapshot: a users × items sparse matrix of weights, with timestamps and vocabularies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsmith.data.vocabulary import Vocabulary
from recsmith.data.weighting import decay, type_weights
from recsmith.errors import DataError


def _timestamp_seconds(values: Any, what: str = "timestamps") -> np.ndarray:
    """Epoch seconds (``int64``) from numbers or datetimes; missing or non-numeric values are a DataError."""
    if isinstance(values, pd.Series | pd.Index):
        series = pd.Series(values)
    else:
        array = np.asarray(values)
        if array.ndim != 1:
            raise DataError(f"{what} must be 1-D, got shape {array.shape}")
        if array.dtype.kind in "iu":
            return array.astype(np.int64, copy=False)
        series = pd.Series(array)
    if series.isna().any():
        position = int(np.flatnonzero(series.isna().to_numpy())[0])
        raise DataError(f"{what} has a missing value (NaN/NaT) at position {position}; every event needs a time")
    if series.dtype == object and len(series) and not isinstance(series.iloc[0], pd.Timestamp):
        try:
            series = pd.to_numeric(series)
        except (TypeError, ValueError):
            raise DataError(f"{what} must be epoch seconds (numbers) or datetimes; "
                            f"{series.iloc[0]!r} is neither") from None
    if pd.api.types.is_datetime64_any_dtype(series.dtype) or (
            series.dtype == object and len(series) and isinstance(series.iloc[0], pd.Timestamp)):
        stamps = pd.to_datetime(series, utc=True)
        return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)
    if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        raise DataError(f"{what} must be epoch seconds (numbers) or datetimes, got dtype {series.dtype}")
    numbers = series.to_numpy(dtype=np.float64)
    if not np.isfinite(numbers).all():
        raise DataError(f"{what} has an infinite value at position {int(np.flatnonzero(~np.isfinite(numbers))[0])}")
    return np.floor(numbers).astype(np.int64)


def _floats(values: Any, what: str, allow_nan: bool) -> np.ndarray:
    """``float64`` copy of a 1-D numeric array; DataError naming ``what`` otherwise."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numbers: {exc}") from None
    if array.ndim != 1:
        raise DataError(f"{what} must be 1-D, got shape {array.shape}")
    bad = np.isinf(array) if allow_nan else ~np.isfinite(array)
    if bad.any():
        raise DataError(f"{what} has a non-finite value ({array[bad][0]}) at position {int(np.flatnonzero(bad)[0])}")
    return array


def _reduce_pairs(rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, stamps: np.ndarray | None,
                  values: np.ndarray | None, shape: tuple[int, int]
                  ) -> tuple[sp.csr_matrix, np.ndarray | None, np.ndarray | None]:
    """Events -> one CSR entry per (row, col) pair, in one vectorised pass.

    Weights are summed; the pair's timestamp is its latest event's; its value is the last non-NaN value
    (by time, then by input order), NaN when there is none.
    """
    n_rows, n_cols = shape
    key = rows.astype(np.int64) * n_cols + cols.astype(np.int64)
    # stable sort by pair, then by time: the last row of a pair is its latest event
    order = np.argsort(key, kind="stable") if stamps is None else np.lexsort((stamps, key))
    key = key[order]
    m = len(key)
    if m:
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        ends = np.r_[starts[1:], m] - 1
        data = np.add.reduceat(weight[order], starts).astype(np.float32)
    else:
        starts = ends = np.empty(0, dtype=np.int64)
        data = np.empty(0, dtype=np.float32)
    pair_key = key[starts]
    pair_rows = pair_key // n_cols
    indices = (pair_key % n_cols).astype(np.int32)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair_rows, minlength=n_rows), out=indptr[1:])
    matrix = sp.csr_matrix((data, indices, indptr), shape=shape)
    matrix.has_sorted_indices = True  # sorted by key, hence by column within each row
    pair_stamps = None if stamps is None else stamps[order][ends]
    pair_values = None
    if values is not None:
        ordered = values[order]
        position = np.where(np.isnan(ordered), -1, np.arange(m))
        last = np.maximum.reduceat(position, starts) if m else np.empty(0, dtype=np.int64)
        pair_values = np.where(last >= 0, ordered[np.maximum(last, 0)], np.nan).astype(np.float32)
    return matrix, pair_stamps, pair_values


class EncodedEvents(NamedTuple):
    """Events in dense ids with their weights, as :meth:`Interactions.from_arrays` sums them into the matrix.

    Attributes
    ----------
    user_vocab, item_vocab : Vocabulary
        The vocabularies (built in order of first appearance, or the ones given).
    users, items : numpy.ndarray
        ``int32`` dense ids of the kept events, in input order.
    weights : numpy.ndarray
        ``float64`` weight of each kept event: its own weight times its type's and the half-life decay.
    timestamps : numpy.ndarray or None
        ``int64`` epoch seconds of the kept events.
    values : numpy.ndarray or None
        ``float64`` values of the kept events (NaN where none).
    kept : numpy.ndarray
        ``bool`` over the input events: those kept (weight not 0, ids in the vocabularies).
    """

    user_vocab: Vocabulary
    item_vocab: Vocabulary
    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    timestamps: np.ndarray | None
    values: np.ndarray | None
    kept: np.ndarray


def encode_events(
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
) -> EncodedEvents:
    """One row per event in raw ids -> the events :meth:`Interactions.from_arrays` sums, in dense ids, weighted.

    The parameters and errors are :meth:`Interactions.from_arrays`'s; the matrix and ``TrainingData``'s event
    log are both built from this one pass.
    """
    users = np.asarray(users, dtype=object).ravel()
    items = np.asarray(items, dtype=object).ravel()
    n = len(users)
    arrays = {"items": items, "timestamps": timestamps, "event_types": event_types,
              "event_values": event_values, "weights": weights}
    for name, array in arrays.items():
        if array is not None and len(array) != n:
            raise DataError(f"{name} has {len(array)} entries, users has {n}; give one value per event")
    weight = np.ones(n, dtype=np.float64) if weights is None else _floats(weights, "weights", allow_nan=False)
    weight = weight * type_weights(event_types, event_weights, n)
    stamps = None if timestamps is None else _timestamp_seconds(timestamps)
    values = None if event_values is None else _floats(event_values, "event_values", allow_nan=True)
    if half_life_days is not None:
        if not half_life_days > 0:
            raise DataError(f"half_life_days must be positive, got {half_life_days}")
        if stamps is None:
            raise DataError("time decay (half_life_days) needs timestamps")
    if user_vocab is None:
        user_vocab, user_codes = Vocabulary.from_values(users)
    else:
        user_codes = user_vocab.indices(users, missing="ignore")
    if item_vocab is None:
        item_vocab, item_codes = Vocabulary.from_values(items)
    else:
        item_codes = item_vocab.indices(items, missing="ignore")
    keep = (weight != 0) & (user_codes >= 0) & (item_codes >= 0)
    if not keep.all():
        user_codes, item_codes, weight = user_codes[keep], item_codes[keep], weight[keep]
        stamps = None if stamps is None else stamps[keep]
        values = None if values is None else values[keep]
    if half_life_days is not None and stamps is not None and len(stamps):
        weight = weight * decay(stamps, half_life_days, int(stamps.max()))
    return EncodedEvents(user_vocab, item_vocab, user_codes, item_codes, weight, stamps, values, keep)


class Interactions:
    """Users × items interactions as a CSR matrix of weights.

    Each stored entry is one (user, item) pair; the weights of all its events are summed (event-type
    weights and time decay applied), so negative entries mean "pushed down". Build one with
    :meth:`from_frame`, :meth:`from_arrays` or :meth:`from_csr` rather than the constructor.

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix
        ``float32`` users × items weights with sorted indices and no duplicates.
    user_vocab, item_vocab : Vocabulary
        Raw <-> dense ids for the rows and columns.
    timestamps : numpy.ndarray, optional
        ``int64`` latest event time (epoch seconds) of each pair, aligned with ``matrix.data``.
    values : numpy.ndarray, optional
        ``float32`` last ``EVENT_VALUE`` of each pair (e.g. the rating), NaN where none, aligned with
        ``matrix.data``.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> data = Interactions.from_csr(sp.eye(3, format="csr"))
    >>> data.n_users, data.n_items, data.nnz
    (3, 3, 3)
    """

    def __init__(self, matrix: sp.csr_matrix, user_vocab: Vocabulary, item_vocab: Vocabulary,
                 timestamps: np.ndarray | None = None, values: np.ndarray | None = None) -> None:
        if not sp.issparse(matrix) or len(matrix.shape) != 2:
            raise DataError(f"matrix must be a 2-D scipy sparse matrix, got {type(matrix).__name__}")
        if matrix.shape != (len(user_vocab), len(item_vocab)):
            raise DataError(f"matrix shape {matrix.shape} does not match the vocabularies "
                            f"({len(user_vocab)} users, {len(item_vocab)} items)")
        if not isinstance(matrix, sp.csr_matrix) or matrix.dtype != np.float32:
            matrix = sp.csr_matrix(matrix, dtype=np.float32)
        for name, array in (("timestamps", timestamps), ("values", values)):
            if array is not None and len(array) != matrix.nnz:
                raise DataError(f"{name} has {len(array)} entries, the matrix {matrix.nnz}")
        self.matrix: sp.csr_matrix = matrix
        self.user_vocab = user_vocab
        self.item_vocab = item_vocab
        self.timestamps = None if timestamps is None else np.asarray(timestamps, dtype=np.int64)
        self.values = None if values is None else np.asarray(values, dtype=np.float32)

    # ---------------------------------------------------------------------------------- constructors
    @classmethod
    def from_csr(cls, matrix: sp.spmatrix | sp.sparray | np.ndarray, *, timestamps: np.ndarray | None = None,
                 values: np.ndarray | None = None) -> Interactions:
        """Wrap a users × items matrix whose ids are already dense (vocabularies ``"0"``, ``"1"``, ...).

        Parameters
        ----------
        matrix : scipy sparse matrix/array or 2-D numpy array
            Weights; duplicate entries are summed and indices sorted.
        timestamps : numpy.ndarray, optional
            Epoch seconds aligned with the matrix's stored entries (``matrix.data`` order; row-major
            non-zeros for a dense array). Duplicates keep the latest.
        values : numpy.ndarray, optional
            Event values aligned like ``timestamps``; duplicates keep the last non-NaN.

        Raises
        ------
        DataError
            If the matrix is not 2-D, holds NaN/inf, or the aligned arrays have the wrong length.
        """
        if isinstance(matrix, np.ndarray):
            if matrix.ndim != 2:
                raise DataError(f"an interactions matrix must be 2-D, got {matrix.ndim}-D (shape {matrix.shape})")
            matrix = sp.csr_matrix(matrix)
        if not sp.issparse(matrix) or len(matrix.shape) != 2:
            raise DataError(f"from_csr needs a 2-D scipy sparse matrix or numpy array, got {type(matrix).__name__} "
                            f"with shape {getattr(matrix, 'shape', None)}")
        n_users, n_items = matrix.shape
        vocabs = (Vocabulary([str(i) for i in range(n_users)]), Vocabulary([str(i) for i in range(n_items)]))
        if timestamps is None and values is None:
            csr = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
            if not np.isfinite(csr.data).all():
                raise DataError("the matrix holds NaN or infinite weights")
            csr.sum_duplicates()  # also sorts the indices
            csr.sort_indices()
            return cls(csr, *vocabs)
        coo = matrix.tocoo()  # keeps the order of the stored entries, which the aligned arrays follow
        weight = _floats(coo.data, "matrix weights", allow_nan=False)
        stamps = None if timestamps is None else _timestamp_seconds(timestamps)
        vals = None if values is None else _floats(values, "values", allow_nan=True)
        for name, array in (("timestamps", stamps), ("values", vals)):
            if array is not None and len(array) != len(weight):
                raise DataError(f"{name} has {len(array)} entries, the matrix stores {len(weight)}; "
                                "align them with its stored entries")
        csr, pair_stamps, pair_values = _reduce_pairs(coo.row, coo.col, weight, stamps, vals, (n_users, n_items))
        return cls(csr, *vocabs, pair_stamps, pair_values)

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
            Raw user and item id of each event (converted to ``str``).
        timestamps : array-like of int or datetime, optional
            Epoch seconds (or datetimes) of each event; needed for ``half_life_days``.
        event_types : array-like of str, optional
            Each event's type, looked up in ``event_weights``.
        event_values : array-like of float, optional
            Each event's value (a rating); the last non-NaN per pair is kept in :attr:`values`.
        weights : array-like of float, optional
            A per-event weight multiplied in.
        event_weights : mapping, optional
            Weight per event type; types not listed weigh 1; events weighing 0 are dropped; negative
            weights push items down.
        half_life_days : float, optional
            Halve an event's weight for every this many days before the newest event.
        user_vocab, item_vocab : Vocabulary, optional
            Use these vocabularies (events with ids outside them are dropped) instead of building new ones.

        Returns
        -------
        Interactions
            One entry per (user, item) pair with the summed weight.

        Raises
        ------
        DataError
            On mismatched lengths, missing ids, missing or non-numeric timestamps, non-finite weights, or
            ``half_life_days`` without timestamps.
        """
        return cls.from_encoded(encode_events(
            users, items, timestamps=timestamps, event_types=event_types, event_values=event_values, weights=weights,
            event_weights=event_weights, half_life_days=half_life_days, user_vocab=user_vocab, item_vocab=item_vocab))

    @classmethod
    def from_encoded(cls, events: EncodedEvents) -> Interactions:
        """Sum :func:`encode_events`'s events per (user, item) pair (what :meth:`from_arrays` does with them)."""
        matrix, pair_stamps, pair_values = _reduce_pairs(
            events.users, events.items, events.weights, events.timestamps, events.values,
            (len(events.user_vocab), len(events.item_vocab)))
        return cls(matrix, events.user_vocab, events.item_vocab, pair_stamps, pair_values)

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
        user_vocab: Vocabulary | None = None,
        item_vocab: Vocabulary | None = None,
    ) -> Interactions:
        """Build from a DataFrame with one row per event, in raw ids (column names as given).

        Parameters
        ----------
        frame : pandas.DataFrame
            The events.
        user, item : str
            Columns of the raw user and item ids.
        weight, timestamp, event_type, value : str, optional
            Columns of a per-event weight (multiplies the event-type weight), the time (epoch seconds or
            datetimes), the event type and the event value.
        event_weights, half_life_days, user_vocab, item_vocab
            As in :meth:`from_arrays`.

        Raises
        ------
        DataError
            If a column is absent or holds missing ids/times, and as in :meth:`from_arrays`.
        """
        wanted = {"user": user, "item": item, "weight": weight, "timestamp": timestamp, "event_type": event_type,
                  "value": value}
        missing = [c for c in wanted.values() if c is not None and c not in frame.columns]
        if missing:
            raise DataError(f"the frame has no column {missing[0]!r}; its columns are {list(frame.columns)}")

        def ids(name: str) -> np.ndarray:
            column = frame[name]
            empty = column.isna().to_numpy()
            if empty.any():
                raise DataError(f"column {name!r} has a missing id at row {int(np.flatnonzero(empty)[0])}; "
                                "drop or fill rows without ids first")
            return column.astype(str).to_numpy(dtype=object)

        def column(name: str | None) -> Any:
            return None if name is None else frame[name]

        stamps = None if timestamp is None else _timestamp_seconds(frame[timestamp], f"column {timestamp!r}")
        types = None if event_type is None else frame[event_type].to_numpy(dtype=object)
        return cls.from_arrays(
            ids(user), ids(item), timestamps=stamps, event_types=types,
            event_values=None if value is None else _floats(column(value), f"column {value!r}", allow_nan=True),
            weights=None if weight is None else _floats(column(weight), f"column {weight!r}", allow_nan=False),
            event_weights=event_weights, half_life_days=half_life_days, user_vocab=user_vocab, item_vocab=item_vocab,
        )

    # ---------------------------------------------------------------------------------------- views
    @property
    def n_users(self) -> int:
        """Number of users (rows)."""
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        """Number of items (columns)."""
        return int(self.matrix.shape[1])

    @property
    def nnz(self) -> int:
        """Number of stored user-item pairs."""
        return int(self.matrix.nnz)

    def with_entries(self, mask: np.ndarray) -> Interactions:
        """A copy keeping only the stored entries where ``mask`` is true, with the same vocabularies.

        Parameters
        ----------
        mask : numpy.ndarray
            ``bool`` aligned with ``matrix.data`` (used by the splitters to build train/test pairs).
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.nnz,):
            raise DataError(f"the entry mask has shape {mask.shape}, expected ({self.nnz},) (one per stored pair)")
        m = self.matrix
        rows = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(m.indptr))
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[mask], minlength=self.n_users), out=indptr[1:])
        matrix = sp.csr_matrix((m.data[mask], m.indices[mask], indptr), shape=m.shape)
        matrix.has_sorted_indices = True  # a subsequence of sorted rows stays sorted
        return Interactions(
            matrix, self.user_vocab, self.item_vocab,
            None if self.timestamps is None else self.timestamps[mask],
            None if self.values is None else self.values[mask],
        )

    def with_matrix(self, matrix: sp.spmatrix | sp.sparray | np.ndarray, *, timestamps: np.ndarray | None = None,
                    values: np.ndarray | None = None) -> Interactions:
        """Another matrix over the same users and items (same vocabularies), canonicalised like :meth:`from_csr`.

        Raises
        ------
        DataError
            If the shape differs from this one's.
        """
        other = Interactions.from_csr(matrix, timestamps=timestamps, values=values)
        if other.matrix.shape != self.matrix.shape:
            raise DataError(f"the new matrix has shape {other.matrix.shape}, the vocabularies need {self.matrix.shape}")
        return Interactions(other.matrix, self.user_vocab, self.item_vocab, other.timestamps, other.values)

    def user_history(self, user: int) -> np.ndarray:
        """Item indices (``int32``, sorted) the user ``user`` (a dense index) interacted with.

        Raises
        ------
        DataError
            If ``user`` is outside ``0..n_users-1``.
        """
        if not 0 <= user < self.n_users:
            raise DataError(f"user index {user} is outside 0..{self.n_users - 1}")
        start, end = self.matrix.indptr[user], self.matrix.indptr[user + 1]
        return self.matrix.indices[start:end].copy()

    def __repr__(self) -> str:
        return f"Interactions({self.n_users} users × {self.n_items} items, {self.nnz} pairs)"
