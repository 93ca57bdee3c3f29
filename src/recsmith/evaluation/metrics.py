"""Ranking metrics over a whole catalogue, batched (no per-user loops over items).

Names follow DESIGN.md: ``precision@k``, ``recall@k`` (hits in the top k divided by the number of held-out
items ``|truth|``), ``recall_capped@k`` (hits divided by ``min(k, |truth|)``, so that 1.0 is reachable when a
user has more than k held-out items: Liang et al. 2018's Recall@R), ``ndcg@k`` (binary gains, log2 discount,
ideal DCG over ``min(k, |truth|)`` hits), ``map@k`` (average precision divided by ``min(k, |truth|)``),
``mrr@k``, ``hit_rate@k``, ``coverage@k`` (share of the catalogue recommended to anyone), ``novelty@k`` (mean
self-information of the recommended items, which needs each item's share of training users; see
:func:`popularity_shares`); and the rating metrics ``rmse`` and ``mae`` (:func:`rating_metrics`). The
sampled-negative ``auc`` lives in :mod:`recsmith.evaluation.sampled`. :data:`DEFINITIONS` says each in a line,
for the CLI's and the report's notes.

Metric names are spelt with underscores (they are the keys of every result); ``hit-rate@10`` is accepted for
``hit_rate@10`` (:func:`canonical_metric`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsmith.errors import ConfigError, DataError
from recsmith.recipes.registry import canonical_name

METRICS = ("precision", "recall", "recall_capped", "ndcg", "map", "mrr", "hit_rate", "coverage", "novelty")
RATING_METRICS = ("rmse", "mae")

DEFINITIONS: dict[str, str] = {
    "precision": "hits in the top k / k",
    "recall": "hits in the top k / all the user's held-out items",
    "recall_capped": "hits in the top k / min(k, the user's held-out items)",
    "ndcg": "DCG of the hits in the top k / the best DCG min(k, held-out items) hits could reach",
    "map": "sum of precision at each hit's rank / min(k, held-out items)",
    "mrr": "1 / rank of the first hit in the top k (0 without one)",
    "hit_rate": "1 if the top k holds a held-out item, else 0",
    "coverage": "share of the catalogue in anyone's top k",
    "novelty": "mean -log2(share of training users who interacted) of the top k items",
}
"""One line per metric (by base name), as the CLI's and the report's notes say it; each is averaged over the
evaluated users (``coverage`` is one number for the catalogue)."""


HIT_CHUNK_USERS = 65_536


def _check_k(k: int | None) -> None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0):
        raise ConfigError(f"k must be a positive integer, got {k!r}")


def canonical_metric(name: str) -> str:
    """A metric name as recsmith spells it (``hit-rate@10`` -> ``hit_rate@10``, ``rmse`` stays); not validated.

    Examples
    --------
    >>> canonical_metric(" hit-rate@10"), canonical_metric("recall-capped"), canonical_metric("rmse")
    ('hit_rate@10', 'recall_capped', 'rmse')
    """
    return canonical_name(name, "_")


def full_names(names: list[str] | tuple[str, ...], k: int | None = None) -> list[str]:
    """Metric names with their cut-off, canonically spelt: ``"ndcg"`` becomes ``"ndcg@{k}"`` when ``k`` is
    given, ``"hit-rate@5"`` becomes ``"hit_rate@5"``.

    Raises
    ------
    ConfigError
        If ``k`` is not a positive integer, or a name is unknown (see :func:`parse_metric`).
    """
    _check_k(k)
    out = [name if not isinstance(name, str) or "@" in name or k is None else f"{name}@{int(k)}" for name in names]
    return ["{}@{}".format(*parse_metric(name)) for name in out]  # errors name the metric as given


def parse_metric(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ``"hit-rate@5"`` -> ``("hit_rate", 5)``.

    Raises
    ------
    ConfigError
        If the name is not ``NAME@K`` with a known ``NAME`` and a positive integer ``K``; the message
        lists the allowed names.
    """
    base, sep, cut = canonical_metric(str(name)).partition("@")
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


def popularity_shares(train: sp.spmatrix | sp.sparray | np.ndarray) -> np.ndarray:
    """Each item's share of users with a positive interaction: the ``p_i`` of ``novelty@k``.

    Parameters
    ----------
    train : scipy sparse matrix or numpy.ndarray
        Users × items training weights (``Interactions.matrix``); entries above 0 count.

    Returns
    -------
    numpy.ndarray
        ``float64[n_items]`` in ``[0, 1]``.

    Raises
    ------
    DataError
        If ``train`` is not 2-D or has no rows.

    Examples
    --------
    >>> popularity_shares(np.array([[1, 0, 1], [1, 0, 0]])).tolist()
    [1.0, 0.0, 0.5]
    """
    matrix = sp.csr_matrix(train) if sp.issparse(train) or np.ndim(train) == 2 else None
    if matrix is None or matrix.shape[0] == 0:
        raise DataError(f"popularity_shares needs a users × items matrix with at least one user, got shape "
                        f"{getattr(train, 'shape', np.shape(train))}")
    counts = np.bincount(matrix.indices[matrix.data > 0], minlength=matrix.shape[1])
    return counts.astype(np.float64) / matrix.shape[0]


def _self_information(item_popularity: np.ndarray | None, rec_ids: np.ndarray, name: str) -> np.ndarray:
    """``-log2(p_i)`` per item; shares of 0 count as the smallest positive share (the rarest seen item)."""
    if item_popularity is None:
        raise ConfigError(f"metric {name} needs item_popularity: each item's share of training users who "
                          "interacted with it; pass item_popularity=popularity_shares(train.matrix)")
    shares = np.asarray(item_popularity, dtype=np.float64)
    if shares.ndim != 1:
        raise DataError(f"item_popularity must be 1-D (one share per item), got shape {shares.shape}")
    bad = ~np.isfinite(shares) | (shares < 0) | (shares > 1)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise DataError(f"item_popularity must hold shares in [0, 1]; item {where} has {float(shares[where])} "
                        f"({int(bad.sum())} bad values); use popularity_shares(train.matrix)")
    top = int(rec_ids.max(initial=-1))
    if top >= len(shares):
        raise DataError(f"item_popularity has {len(shares)} entries but the recommendations hold item {top}; "
                        "give one share per catalogue item")
    positive = shares[shares > 0]
    if len(positive) == 0:
        raise DataError("item_popularity is all zeros; novelty needs the training popularity of the items")
    return -np.log2(np.maximum(shares, positive.min()))


def per_user_metrics(rec_ids: np.ndarray, truth: sp.csr_matrix, names: list[str], k: int | None = None, *,
                     item_popularity: np.ndarray | None = None) -> dict[str, np.ndarray]:
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
    item_popularity : numpy.ndarray, optional
        ``float[n_items]`` share of training users who interacted with each item (:func:`popularity_shares`);
        needed by ``novelty``. Items with share 0 count as novel as the rarest item with a positive share.

    Returns
    -------
    dict of str to numpy.ndarray
        ``float64[n]`` per metric, keyed by full name (``"ndcg@10"``); 0 for users with no truth.
        ``novelty@k`` does not look at the truth: it is the mean ``-log2(p_i)`` over the user's (non-padded)
        top ``k``, 0 for a user with no recommendations.

    Raises
    ------
    ConfigError
        On an unknown metric, a non-positive ``k``, fewer recommendation columns than a metric's ``k``,
        mismatched rows, or ``novelty`` without ``item_popularity``.
    DataError
        If ``item_popularity`` is not 1-D shares in ``[0, 1]`` covering every recommended item.

    Notes
    -----
    Two recalls: ``recall@k`` is the plain one, hits in the top ``k`` / ``|truth|`` (at most ``k / |truth|``
    for a user with more than ``k`` held-out items); ``recall_capped@k`` divides by ``min(k, |truth|)`` instead,
    so a perfect top ``k`` scores 1 (Liang et al. 2018's Recall@R; recsmith's ``recall@k`` before issue 14).
    They agree for users with at most ``k`` held-out items.

    Examples
    --------
    >>> truth = sp.csr_matrix(np.array([[1, 1, 1, 0]]))  # three held-out items, a perfect top 2
    >>> values = per_user_metrics(np.array([[0, 1]]), truth, ["recall@2", "recall_capped@2"])
    >>> float(values["recall@2"][0]), float(values["recall_capped@2"][0])
    (0.6666666666666666, 1.0)
    """
    names = full_names(names, k)
    rec_ids, truth = _check_inputs(rec_ids, truth)
    hits_all = hit_matrix(rec_ids, truth)
    n_truth = np.diff(truth.indptr).astype(np.float64)
    out: dict[str, np.ndarray] = {}
    information: np.ndarray | None = None
    for name in names:
        base, cut = parse_metric(name)
        if base == "coverage":
            continue
        if cut > rec_ids.shape[1]:
            raise ConfigError(f"metric {name} needs {cut} recommendations per user, got {rec_ids.shape[1]}")
        if base == "novelty":
            if information is None:
                information = _self_information(item_popularity, rec_ids, name)
            ids = rec_ids[:, :cut]
            valid = ids >= 0
            bits = np.where(valid, information[np.where(valid, ids, 0)], 0.0)
            out[name] = bits.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
            continue
        hits = hits_all[:, :cut].astype(np.float64)
        denom = np.minimum(n_truth, cut)
        safe = np.where(denom > 0, denom, 1.0)
        ranks = np.arange(1, cut + 1, dtype=np.float64)
        if base == "precision":
            value = hits.sum(axis=1) / cut
        elif base == "recall":
            value = hits.sum(axis=1) / np.where(n_truth > 0, n_truth, 1.0)
        elif base == "recall_capped":
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
                    n_items: int | None = None, *, item_popularity: np.ndarray | None = None) -> dict[str, float]:
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
    item_popularity : numpy.ndarray, optional
        Each item's share of training users, for ``novelty`` (see :func:`per_user_metrics`).

    Returns
    -------
    dict of str to float
        Keyed by full name (``"ndcg@10"``).

    Raises
    ------
    ConfigError, DataError
        As :func:`per_user_metrics`.

    Examples
    --------
    >>> truth = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0]]))
    >>> compute_metrics(np.array([[1, 2], [2, 0]]), truth, ["hit_rate@1", "mrr@2", "coverage@2"])
    {'hit_rate@1': 0.5, 'mrr@2': 0.75, 'coverage@2': 1.0}
    """
    names = full_names(names, k)
    rec_ids, truth = _check_inputs(rec_ids, truth)
    n_items = truth.shape[1] if n_items is None else int(n_items)
    results: dict[str, float] = {}
    per_user = per_user_metrics(rec_ids, truth, names, item_popularity=item_popularity)
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


def rating_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """Root mean squared error and mean absolute error of predicted ratings.

    Parameters
    ----------
    predicted, actual : array-like of float
        Predicted and true ratings of the same (user, item) pairs, in the same order and of the same length.

    Returns
    -------
    dict of str to float
        ``{"rmse": ..., "mae": ...}``.

    Raises
    ------
    DataError
        If the lengths differ, there are no ratings, a value is not a number, or one is NaN or infinite.

    Examples
    --------
    >>> rating_metrics([3.0, 4.0], [4.0, 4.0])
    {'rmse': 0.7071067811865476, 'mae': 0.5}
    """
    arrays = []
    for what, values in (("predicted", predicted), ("actual", actual)):
        try:
            array = np.asarray(values, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise DataError(f"{what} ratings must be numbers: {exc}") from None
        bad = ~np.isfinite(array)
        if bad.any():
            where = int(np.flatnonzero(bad)[0])
            raise DataError(f"{what} ratings hold {int(bad.sum())} NaN or infinite values (first at position "
                            f"{where}: {float(array[where])}); drop or fill them before scoring")
        arrays.append(array)
    pred, true = arrays
    if len(pred) != len(true):
        raise DataError(f"predicted has {len(pred)} ratings, actual {len(true)}; give one prediction per rating")
    if len(pred) == 0:
        raise DataError("no ratings to score: predicted and actual are empty")
    error = pred - true
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}
