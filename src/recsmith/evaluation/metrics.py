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


def parse_metric(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ConfigError naming the allowed names otherwise."""
    base, sep, cut = name.partition("@")
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
    """``bool[n, k]``: whether each recommended item is in that row of ``truth``."""
    n, k = rec_ids.shape
    n_items = truth.shape[1]
    truth_rows = np.repeat(np.arange(truth.shape[0], dtype=np.int64), np.diff(truth.indptr))
    truth_keys = truth_rows * n_items + truth.indices
    keys = np.arange(n, dtype=np.int64)[:, None] * n_items + rec_ids.astype(np.int64)
    hits = np.isin(keys, truth_keys)
    return hits & (rec_ids >= 0)


def per_user_metrics(rec_ids: np.ndarray, truth: sp.csr_matrix, names: list[str]) -> dict[str, np.ndarray]:
    """Each user's value of each metric (``coverage`` is catalogue-wide and not included).

    Parameters
    ----------
    rec_ids : numpy.ndarray
        ``int[n, K]`` recommended item indices, best first, -1 padded; ``K`` at least every metric's k.
    truth : scipy.sparse.csr_matrix
        ``n × n_items`` held-out items (any stored entry counts as relevant).
    names : list of str
        Metric names like ``"ndcg@10"``.
    """
    truth = sp.csr_matrix(truth)
    if truth.shape[0] != rec_ids.shape[0]:
        raise ConfigError(f"{rec_ids.shape[0]} recommendation rows for {truth.shape[0]} truth rows")
    hits_all = hit_matrix(rec_ids, truth)
    n_truth = np.diff(truth.indptr).astype(np.float64)
    out: dict[str, np.ndarray] = {}
    for name in names:
        base, k = parse_metric(name)
        if base == "coverage":
            continue
        if k > rec_ids.shape[1]:
            raise ConfigError(f"metric {name} needs {k} recommendations per user, got {rec_ids.shape[1]}")
        hits = hits_all[:, :k].astype(np.float64)
        denom = np.minimum(n_truth, k)
        safe = np.where(denom > 0, denom, 1.0)
        ranks = np.arange(1, k + 1, dtype=np.float64)
        if base == "precision":
            value = hits.sum(axis=1) / k
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


def compute_metrics(rec_ids: np.ndarray, truth: sp.csr_matrix, names: list[str], n_items: int | None = None
                    ) -> dict[str, float]:
    """Mean of each metric over the users (rows), and catalogue coverage.

    Rows of ``truth`` with no items should be left out by the caller; they count as zeros here.
    """
    truth = sp.csr_matrix(truth)
    n_items = truth.shape[1] if n_items is None else n_items
    results: dict[str, float] = {}
    per_user = per_user_metrics(rec_ids, truth, names)
    for name in names:
        base, k = parse_metric(name)
        if base == "coverage":
            recommended = rec_ids[:, :k]
            results[name] = float(len(np.unique(recommended[recommended >= 0])) / max(n_items, 1))
        else:
            results[name] = float(per_user[name].mean()) if len(per_user[name]) else 0.0
    return results
