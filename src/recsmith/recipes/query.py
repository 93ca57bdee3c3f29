"""What inference gets for one user: the ordered, weighted history, the session and the context.

Serving builds one :class:`HistoryQuery` per user (the training row plus live events, weighted like training)
and hands a batch of them to :meth:`~recsmith.recipes.base.Recipe.recommend_for_queries`. Recipes that only
need a bag of items read the weighted rows; sequential recipes read the order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsmith.errors import DataError


@dataclass(frozen=True, eq=False)
class HistoryQuery:
    """One user's history, as inference sees it (dense item indices).

    Parameters
    ----------
    items : array of int
        The items of the user's events, oldest first; an item may repeat (one entry per event). ``-1``
        entries (items the caller could not map to the model) are ignored.
    weights : array of float, optional
        Each event's weight, as training weighs it (event-type weight times decay); default 1 each. An
        item's weights are summed, as the training matrix sums a pair's events, so a negative event (a
        "dislike") pushes down what it pushes down in training.
    event_types : array of str, optional
        Each event's type (None where untyped).
    timestamps : array of int, optional
        Each event's time in epoch seconds.
    session_items : array of int, optional
        The items of the current session, oldest first (a subsequence of the latest events, or events not
        stored yet); sequential recipes may rank from them.
    context : mapping, optional
        The request's context (device, location, ...), for recipes that use it.
    user : int, optional
        The user's training index, when ``items``/``weights`` are that user's training row unchanged:
        recipes with learned per-user state (factor models) then use it. Leave None to fold the history in
        (a user the model never saw, or a training row plus live events).

    Raises
    ------
    DataError
        When the per-event arrays differ in length.
    """

    items: np.ndarray
    weights: np.ndarray | None = None
    event_types: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    session_items: np.ndarray | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    user: int | None = None

    def __post_init__(self) -> None:
        items = np.asarray(self.items, dtype=np.int64).ravel()
        object.__setattr__(self, "items", items)
        weights = (np.ones(len(items), dtype=np.float32) if self.weights is None
                   else np.asarray(self.weights, dtype=np.float32).ravel())
        object.__setattr__(self, "weights", weights)
        for name in ("weights", "event_types", "timestamps"):
            array = getattr(self, name)
            if array is not None and len(array) != len(items):
                raise DataError(f"query {name} has {len(array)} entries for {len(items)} items; give one per event")
        if not np.isfinite(weights).all():
            raise DataError("query weights must be finite numbers")
        if self.session_items is not None:
            object.__setattr__(self, "session_items", np.asarray(self.session_items, dtype=np.int64).ravel())
        if self.user is not None and (isinstance(self.user, bool) or int(self.user) < 0):
            raise DataError(f"query user must be a training index >= 0 or None, got {self.user!r}")

    @classmethod
    def from_row(cls, row: sp.csr_matrix, user: int | None = None) -> HistoryQuery:
        """The query of a ``1 × n_items`` CSR row of weights (a training row: ``train_matrix_[u]``)."""
        row = sp.csr_matrix(row)
        if row.shape[0] != 1:
            raise DataError(f"from_row needs one row, got shape {row.shape}")
        return cls(row.indices.astype(np.int64), row.data.astype(np.float32), user=user)


def query_rows(queries: Sequence[HistoryQuery], n_items: int) -> sp.csr_matrix:
    """The queries as an ``n × n_items`` CSR of summed weights (one row per query, duplicates summed).

    Raises
    ------
    DataError
        If an item index is ``>= n_items`` or below -1.
    """
    lists = [q.items for q in queries]
    weights = [q.weights for q in queries]
    lengths = np.fromiter((len(items) for items in lists), dtype=np.int64, count=len(lists))
    cols = np.concatenate(lists) if lists else np.empty(0, dtype=np.int64)
    data = np.concatenate(weights).astype(np.float32) if lists else np.empty(0, dtype=np.float32)
    rows = np.repeat(np.arange(len(lists), dtype=np.int64), lengths)
    if len(cols) and (cols.min() < -1 or cols.max() >= n_items):
        bad = cols[(cols < -1) | (cols >= n_items)][0]
        raise DataError(f"query item index {int(bad)} is outside 0..{n_items - 1} (-1 marks an unknown item)")
    known = cols >= 0
    # duplicates summed and indices sorted with numpy (scipy's COO route costs more than serving one user)
    keys, where = np.unique(rows[known] * n_items + cols[known], return_inverse=True)
    summed = np.bincount(where, weights=data[known], minlength=len(keys)).astype(np.float32)
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // max(n_items, 1), minlength=len(lists)), out=indptr[1:])
    matrix = sp.csr_matrix((summed, (keys % max(n_items, 1)).astype(np.int32), indptr), shape=(len(lists), n_items))
    matrix.has_canonical_format = True
    return matrix
