"""Ranking metrics over a whole catalogue, batched (no per-user loops over items).

Names follow DESIGN.md: ``precision@k``, ``recall@k`` (divided by ``min(k, |truth|)``), ``ndcg@k``
(binary gains, log2 discount), ``map@k``, ``mrr@k``, ``hit_rate@k``, ``coverage@k`` (share of the catalogue
recommended to anyone).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsmith.errors import ConfigError

METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate", "coverage")


HIT_CHUNK_USERS = 65_536


def _check_k(k: int | None) -> None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0):
        raise ConfigError(f"k must be a positive integer, got {k!r}")


def full_names(names: list[str] | tuple[str, ...], k: int | None = None) -> list[str]:
    """Metric names with their cut-off: ``"ndcg"`` becomes ``"ndcg@{k}"`` when ``k`` is given.

    Raises
    ------
    ConfigError
        If ``k`` is not a positive integer, or a name is unknown (see :func:`parse_metric`).
    """
    _check_k(k)
    out = [name if "@" in name or k is None else f"{name}@{int(k)}" for name in names]
    for name in out:
        parse_metric(name)
    return out


def parse_metric(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``.

    Raises
    ------
    ConfigError
        If the name is not ``NAME@K`` with a known ``NAME`` and a positive integer ``K``; the message
        lists the allowed names.
    """
    base, sep, cut = str(name).partition("@")
    if base not in METRICS or not sep:
        raise ConfigError(f"unknown metric {name!r}; use NAME@K with NAME one of {', '.join(METRICS)}")
    try:
        k = int(cut)
    except ValueError:
        raise ConfigError(f"metric {name!r}: the cut-off after '@' must be an integer") from None
    if k <= 0:
        raise ConfigError(f"metric {name!r}: k must be positive, got {k}")
    return base, k


def hit_matrix(rec_ids: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """``bool[n, k]``: whether each recommended item is in that row of ``truth`` (vectorised, chunked)."""
    n, k = rec_ids.shape
    n_items = truth.shape[1]
    hits = np.zeros((n, k), dtype=bool)
    for start in range(0, n, HIT_CHUNK_USERS):
        stop = min(start + HIT_CHUNK_USERS, n)
        block = truth[start:stop]
        truth_rows = np.repeat(np.arange(stop - start, dtype=np.int64), np.diff(block.indptr))
        truth_keys = truth_rows * n_items + block.indices
        ids = rec_ids[start:stop].astype(np.int64)
        keys = np.arange(stop - start, dtype=np.int64)[:, None] * n_items + ids
        hits[start:stop] = np.isin(keys, truth_keys) & (ids >= 0) & (ids < n_items)
    return hits


def _check_inputs(rec_ids: np.ndarray, truth: sp.csr_matrix) -> tuple[np.ndarray, sp.csr_matrix]:
    rec_ids = np.asarray(rec_ids)
    if rec_ids.ndim != 2 or rec_ids.dtype.kind not in "iu":
        raise ConfigError(f"rec_ids must be a 2-D integer array (users × k), got {rec_ids.dtype} "
                          f"with shape {rec_ids.shape}")
    truth = sp.csr_matrix(truth)
    if truth.shape[0] != rec_ids.shape[0]:
        raise ConfigError(f"{rec_ids.shape[0]} recommendation rows for {truth.shape[0]} truth rows")
    return rec_ids, truth


def per_user_metrics(rec_ids: np.ndarray, truth: sp.csr_matrix, names: list[str], k: int | None = None
                     ) -> dict[str, np.ndarray]:
    """Each user's value of each metric (``coverage`` is catalogue-wide and not included).

    Parameters
    ----------
    rec_ids : numpy.ndarray
        ``int[n, K]`` recommended item indices, best first, -1 padded; ``K`` at least every metric's k.
    truth : scipy.sparse.csr_matrix
        ``n × n_items`` held-out items (any stored entry counts as relevant).
    names : list of str
        Metric names like ``"ndcg@10"``, or bare names like ``"ndcg"`` when ``k`` is given.
    k : int, optional
        Cut-off for names given without one.

    Returns
    -------
    dict of str to numpy.ndarray
        ``float64[n]`` per metric, keyed by full name (``"ndcg@10"``); 0 for users with no truth.

    Raises
    ------
    ConfigError
        On an unknown metric, a non-positive ``k``, fewer recommendation columns than a metric's ``k``,
        or mismatched rows.
    """
    names = full_names(names, k)
    rec_ids, truth = _check_inputs(rec_ids, truth)
    hits_all = hit_matrix(rec_ids, truth)
    n_truth = np.diff(truth.indptr).astype(np.float64)
    out: dict[str, np.ndarray] = {}
    for name in names:
        base, cut = parse_metric(name)
        if base == "coverage":
            continue
        if cut > rec_ids.shape[1]:
            raise ConfigError(f"metric {name} needs {cut} recommendations per user, got {rec_ids.shape[1]}")
        hits = hits_all[:, :cut].astype(np.float64)
        denom = np.minimum(n_truth, cut)
        safe = np.where(denom > 0, denom, 1.0)
        ranks = np.arange(1, cut + 1, dtype=np.float64)
        if base == "precision":
            value = hits.sum(axis=1) / cut
        elif base == "recall":
            value = hits.sum(axis=1) / safe
        elif base == "ndcg":
            discount = 1.0 / np.log2(ranks + 1.0)
            ideal = np.cumsum(discount)[np.maximum(denom.astype(np.int64), 1) - 1]
            value = (hits @ discount) / ideal
        elif base == "map":
            precision_at = np.cumsum(hits, axis=1) / ranks
            value = (precision_at * hits).sum(axis=1) / safe
        elif base == "mrr":
            first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
            value = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
        else:  # hit_rate
            value = hits.any(axis=1).astype(np.float64)
        out[name] = np.where(denom > 0, value, 0.0)
    return out


def compute_metrics(rec_ids: np.ndarray, truth: sp.csr_matrix, names: list[str], k: int | None = None,
                    n_items: int | None = None) -> dict[str, float]:
    """Mean of each metric over the users (rows), and catalogue coverage.

    Parameters
    ----------
    rec_ids : numpy.ndarray
        ``int[n, K]`` recommended item indices, best first, -1 padded.
    truth : scipy.sparse.csr_matrix
        ``n × n_items`` held-out items. Rows with no items should be left out by the caller; they count
        as zeros here.
    names : list of str
        Metric names like ``"ndcg@10"``, or bare names like ``"ndcg"`` when ``k`` is given.
    k : int, optional
        Cut-off for names given without one.
    n_items : int, optional
        Catalogue size for ``coverage`` (default: the columns of ``truth``).

    Returns
    -------
    dict of str to float
        Keyed by full name (``"ndcg@10"``).

    Raises
    ------
    ConfigError
        As :func:`per_user_metrics`.
    """
    names = full_names(names, k)
    rec_ids, truth = _check_inputs(rec_ids, truth)
    n_items = truth.shape[1] if n_items is None else int(n_items)
    results: dict[str, float] = {}
    per_user = per_user_metrics(rec_ids, truth, names)
    for name in names:
        base, cut = parse_metric(name)
        if base == "coverage":
            if cut > rec_ids.shape[1]:
                raise ConfigError(f"metric {name} needs {cut} recommendations per user, got {rec_ids.shape[1]}")
            recommended = rec_ids[:, :cut]
            results[name] = float(len(np.unique(recommended[recommended >= 0])) / max(n_items, 1))
        else:
            results[name] = float(per_user[name].mean()) if len(per_user[name]) else 0.0
    return results
