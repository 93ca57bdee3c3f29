"""Recipes that score with a sparse item-item similarity matrix (item-knn, rp3beta)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from recsmith.recipes.base import (
    ItemSets,
    Recipe,
    Recommendations,
    SetScorer,
    minus_seen,
    strongest_contributor,
    top_k,
)
from recsmith.recipes.tags import RecipeTags


def prune_rows(similarity: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Keep the ``keep`` largest positive entries of each row.

    Works on the stored entries only, never densifying: non-positive entries are dropped at once, and only
    rows still longer than ``keep`` get an ``argpartition`` that marks their smallest entries for removal.
    The surviving entries keep their order, so sorted indices stay sorted.
    """
    s = sp.csr_matrix(similarity, dtype=np.float32)
    s.data[s.data < 0] = 0
    s.eliminate_zeros()
    indptr, data = s.indptr, s.data
    survives = np.ones(len(data), dtype=bool)
    for row in np.flatnonzero(np.diff(indptr) > keep):
        a, b = indptr[row], indptr[row + 1]
        survives[a + np.argpartition(-data[a:b], keep - 1)[keep:]] = False
    if survives.all():
        return s
    rows = np.repeat(np.arange(s.shape[0]), np.diff(indptr))
    out_ptr = np.zeros(len(indptr), dtype=np.int64)
    np.cumsum(np.bincount(rows[survives], minlength=s.shape[0]), out=out_ptr[1:])
    pruned = sp.csr_matrix((data[survives], s.indices[survives], out_ptr), shape=s.shape)
    pruned.has_sorted_indices = s.has_sorted_indices
    return pruned


class ItemSimilarityRecipe(Recipe):
    """Base of recipes whose model is a sparse items × items matrix ``similarity_``.

    A user's scores are ``history @ similarity_``; ``similar_items`` reads the rows. Subclasses set
    ``similarity_`` in ``_fit``.
    """

    tags = RecipeTags(similar_items=True)
    similarity_: sp.csr_matrix

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return (histories @ self.similarity_).toarray()

    def _set_scorer(self, sets: ItemSets) -> SetScorer:
        """Transpose scoring: ``histories @ (similarity_ @ membership)``, one sparse column per set (a user's
        score for an item is linear in the similarity column). The seen items of shared sets are taken off
        at their scores, ``history · similarity_[:, item]``: pair by pair, or from the block's sparse
        ``histories @ similarity_`` where that costs fewer operations (many seen items, popular ones)."""
        if type(self)._scores is not ItemSimilarityRecipe._scores:
            return super()._set_scorer(sets)
        similarity = sp.csr_matrix(self.similarity_)
        set_columns = sp.csr_matrix(similarity @ sets.membership)
        row_lengths = np.diff(similarity.indptr)
        column_lengths = np.bincount(similarity.indices, minlength=similarity.shape[1])
        columns: list[sp.csr_matrix] = []  # similarity_ transposed (its columns as rows), built when first needed

        def pairs(histories: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
            if not columns:
                columns.append(sp.csr_matrix(similarity.T))
            products = histories[rows].multiply(columns[0][items])
            return np.asarray(products.sum(axis=1), dtype=np.float64).ravel()

        def sums(histories: sp.csr_matrix, users: np.ndarray, seen: sp.csr_matrix | None) -> np.ndarray:
            totals = np.asarray((histories @ set_columns).toarray(), dtype=np.float64)
            if seen is None or not seen.nnz:
                return totals
            seen_rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
            pair_cost = np.diff(histories.indptr)[seen_rows].sum() + column_lengths[seen.indices].sum()
            if pair_cost <= row_lengths[histories.indices].sum():
                return minus_seen(totals, seen, sets, lambda rows, items: pairs(histories, rows, items))
            seen_scores = sp.csr_matrix(sp.csr_matrix(histories @ similarity).multiply(seen), dtype=np.float64)
            return totals - (seen_scores @ sets.by_item).toarray()

        return SetScorer(sums, width=sets.n_sets)

    def similar_items(self, items: np.ndarray | Sequence[int], k: int = 10) -> Recommendations:
        """The ``k`` most similar items to each item (``-1``/``-inf`` padded when it has fewer neighbours)."""
        items = self._item_indices(items)
        dense = self.similarity_[items].toarray()
        dense[dense <= 0] = -np.inf
        return top_k(dense, k)

    def explain(self, history: np.ndarray, weights: np.ndarray, items: np.ndarray) -> np.ndarray | None:
        """Each item's strongest contributor ``argmax_h weight_h · similarity_[h, item]`` (see Recipe.explain)."""
        history = np.asarray(history, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        keys, data = self._entry_keys()
        if not len(keys):
            return np.full(len(items), -1, dtype=np.int64)
        # look every (history item, item) pair up among the sorted entry keys: |history| x |items| binary
        # searches, however long the rows and columns are (scipy's fancy indexing costs ~10x more)
        order = np.argsort(history, kind="stable")
        history, weights = history[order], np.asarray(weights, dtype=np.float32)[order]
        columns = np.argsort(items, kind="stable")
        wanted = (history[:, None] * self.n_items + items[columns][None, :]).ravel()  # ascending: cache-friendly
        found = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        hit = keys[found] == wanted
        block = np.zeros((len(history), len(items)), dtype=np.float32)
        block[:, columns] = np.where(hit, data[found], 0.0).reshape(len(history), len(items))
        return strongest_contributor(block * weights[:, None], history)

    def _entry_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """``row * n_items + column`` of every entry of ``similarity_``, ascending, and the values in that order
        (built once per process, for :meth:`explain`)."""
        source, cached = getattr(self, "_similarity_keys", (None, None))
        if source is not self.similarity_:  # a new fit or load replaced the matrix
            s = self.similarity_
            if not s.has_sorted_indices:
                s = s.sorted_indices()
            rows = np.repeat(np.arange(s.shape[0], dtype=np.int64), np.diff(s.indptr))
            cached = (rows * s.shape[1] + s.indices, np.asarray(s.data))
            self._similarity_keys = (self.similarity_, cached)
        return cached

    def _state(self) -> dict[str, np.ndarray]:
        s = self.similarity_
        return {"sim_data": s.data, "sim_indices": s.indices, "sim_indptr": s.indptr}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        n = int(len(arrays["sim_indptr"]) - 1)
        self.similarity_ = sp.csr_matrix((arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]),
                                         shape=(n, n))
