"""Analyses behind the evaluation report: metric vs cut-off, user segments, popularity bias.

Every function works on whole arrays (numpy/scipy, no per-user Python loops over items):

- ``rec_ids``: ``int[n_users, K]`` recommended dense item indices, best first, padded with -1 (``Recommendations.ids``);
- ``truth``: ``n_users × n_items`` CSR of held-out items, rows aligned with ``rec_ids`` (any stored entry is relevant);
- ``train_matrix``: the ``users × items`` training matrix (``Interactions.matrix``, or an ``Interactions``).

An *interaction* below is a stored training entry with a non-zero weight: a user's *history length* is how many items
they interacted with, an item's *popularity* how many users interacted with it.

Users (for segments) are ranked by their history length, equal lengths share their average rank ``r`` (1-based), and
each is placed by its mid-rank position ``(r - 1/2) / n``: equal lengths always land in the same segment. Items (for
popularity deciles) are ranked by their count with ties broken by item index, so that every decile holds a tenth of
the catalogue even when most items share a count (the long tail seen once, the cold items never seen).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.stats

from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.metrics import METRICS, RATING_METRICS, canonical_metric, compute_metrics

SEGMENTS = ("light", "medium", "heavy")
"""User segment labels, from the shortest training histories to the longest."""

DEFAULT_KS = (1, 5, 10, 20)
"""Cut-offs of :func:`metric_curve` by default."""

REPORT_KS = (1, 2, 3, 5, 10, 20, 50, 100)
"""Cut-offs :func:`report_entry` tries (those up to the ranking depth)."""

REPORT_DEPTH = max(REPORT_KS)
"""Items ranked per user when a report is asked for (its metric-vs-k curves go up to k = 100)."""

N_DECILES = 10


# ------------------------------------------------------------------------------------------------ helpers
def _train_csr(train_matrix: Any) -> sp.csr_matrix:
    matrix = getattr(train_matrix, "matrix", train_matrix)  # an Interactions gives its matrix
    if isinstance(matrix, np.ndarray) and matrix.ndim == 2:
        matrix = sp.csr_matrix(matrix)
    if not sp.issparse(matrix) or len(matrix.shape) != 2:
        raise DataError(f"train_matrix must be a users × items sparse matrix (Interactions.matrix), got "
                        f"{type(matrix).__name__} with shape {getattr(matrix, 'shape', None)}")
    return sp.csr_matrix(matrix)


def _rec_ids(rec_ids: Any) -> np.ndarray:
    ids = np.asarray(rec_ids)
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ConfigError(f"rec_ids must be a 2-D integer array (users × k), got {ids.dtype} with shape {ids.shape}")
    return ids


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _midrank_group(counts: np.ndarray, n_groups: int) -> np.ndarray:
    """0-based group of each count: ``floor(n_groups * (r - 1/2) / n)`` with ``r`` the average (tie) rank.

    ``2r`` is an integer for average ranks, so the comparison is done exactly in integers.
    """
    n = len(counts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    twice_rank = np.rint(2.0 * scipy.stats.rankdata(counts, method="average")).astype(np.int64)
    return (n_groups * (twice_rank - 1)) // (2 * n)


def history_lengths(train_matrix: Any) -> np.ndarray:
    """``int64[n_users]``: how many items each user interacted with in training (non-zero stored entries).

    Examples
    --------
    >>> history_lengths(sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1]]))).tolist()
    [2, 0, 3]
    """
    matrix = _train_csr(train_matrix)
    nonzero = np.concatenate([[0], np.cumsum(matrix.data != 0, dtype=np.int64)])
    return nonzero[matrix.indptr[1:]] - nonzero[matrix.indptr[:-1]]


def item_counts(train_matrix: Any) -> np.ndarray:
    """``int64[n_items]``: how many training users interacted with each item (non-zero stored entries)."""
    matrix = _train_csr(train_matrix)
    return np.bincount(matrix.indices[matrix.data != 0], minlength=matrix.shape[1]).astype(np.int64)


# ------------------------------------------------------------------------------------------------ metric vs k
def metric_curve(rec_ids: np.ndarray, truth: sp.csr_matrix, base: str = "ndcg", ks: Iterable[int] = DEFAULT_KS,
                 *, item_popularity: np.ndarray | None = None) -> dict[int, float]:
    """A metric's mean over the users at several cut-offs: ``{k: mean of f"{base}@{k}"}``.

    Parameters
    ----------
    rec_ids : numpy.ndarray
        ``int[n, K]`` recommended items, best first, -1 padded.
    truth : scipy.sparse.csr_matrix
        ``n × n_items`` held-out items.
    base : str
        A metric name without cut-off (``"ndcg"``, ``"recall"``, ...; see :data:`~recsmith.evaluation.metrics.METRICS`).
    ks : iterable of int
        Cut-offs, each at most ``K``; returned sorted ascending, duplicates dropped.
    item_popularity : numpy.ndarray, optional
        Needed for ``novelty`` (see :func:`~recsmith.evaluation.metrics.per_user_metrics`).

    Returns
    -------
    dict of int to float
        Keyed by cut-off, ascending.

    Raises
    ------
    ConfigError
        On an unknown ``base`` (or one with ``@``), no cut-offs, a non-positive cut-off, or one beyond the
        ``K`` columns of ``rec_ids``.

    Examples
    --------
    >>> truth = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0]]))
    >>> metric_curve(np.array([[1, 2], [2, 0]]), truth, "hit_rate", ks=(2, 1))
    {1: 0.5, 2: 1.0}
    """
    ids = _rec_ids(rec_ids)
    base = canonical_metric(base)
    if not isinstance(base, str) or "@" in base or base not in METRICS:
        raise ConfigError(f"base must be a metric name without cut-off, one of {', '.join(METRICS)}; got {base!r}")
    cuts = sorted({_positive_int(k, "each cut-off in ks") for k in ks})
    if not cuts:
        raise ConfigError("ks is empty; give at least one cut-off, e.g. ks=(1, 5, 10)")
    if cuts[-1] > ids.shape[1]:
        raise ConfigError(f"ks go up to {cuts[-1]} but rec_ids holds only {ids.shape[1]} recommendations per user; "
                          f"recommend at least {cuts[-1]} items or drop the larger cut-offs")
    means = compute_metrics(ids, truth, [f"{base}@{k}" for k in cuts], item_popularity=item_popularity)
    return {k: means[f"{base}@{k}"] for k in cuts}


# ------------------------------------------------------------------------------------------------ segments
def user_segments(train_matrix: Any, users: np.ndarray) -> np.ndarray:
    """Label each evaluated user ``"light"``, ``"medium"`` or ``"heavy"`` by training-history length terciles.

    Cut points: the evaluated users are ranked by :func:`history_lengths` (equal lengths share their average rank
    ``r``, 1-based, among the ``n`` users). A user whose mid-rank position ``p = (r - 1/2) / n`` is below 1/3 is
    light, below 2/3 medium, otherwise heavy. So:

    - with distinct lengths and ``n`` divisible by 3, each segment holds exactly a third of the users (the
      shortest histories are light, the longest heavy);
    - users with the same history length always share a segment, so ties can make segments unequal (or empty);
    - tiny inputs stay sensible: one user, or all users tied, are all medium; two users with different lengths
      are light and heavy; three are light, medium, heavy.

    Terciles are taken over the evaluated users (``users``), not over every training user.

    Parameters
    ----------
    train_matrix : scipy sparse matrix or Interactions
        Training interactions, users × items.
    users : numpy.ndarray
        Dense indices (rows of ``train_matrix``) of the evaluated users, in evaluation order.

    Returns
    -------
    numpy.ndarray
        ``str[len(users)]`` labels from :data:`SEGMENTS`, aligned with ``users``.

    Raises
    ------
    DataError
        If ``users`` is not 1-D integers inside ``0..n_users-1``.

    Examples
    --------
    >>> train = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]]))
    >>> user_segments(train, np.array([0, 1, 2, 3])).tolist()
    ['light', 'medium', 'heavy', 'heavy']
    """
    lengths = history_lengths(train_matrix)
    rows = np.asarray(users)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise DataError(f"users must be a 1-D array of dense user indices, got {rows.dtype} with shape {rows.shape}")
    rows = rows.astype(np.int64)
    bad = (rows < 0) | (rows >= len(lengths))
    if bad.any():
        raise DataError(f"user index {int(rows[bad][0])} is outside 0..{len(lengths) - 1} (the rows of train_matrix)")
    codes = _midrank_group(lengths[rows], len(SEGMENTS))
    return np.asarray(SEGMENTS)[codes]


def per_segment(per_user_values: np.ndarray, segments: np.ndarray) -> dict[str, dict[str, Any]]:
    """Mean and number of users of each segment.

    Parameters
    ----------
    per_user_values : numpy.ndarray
        ``float[n]`` one value per evaluated user (e.g. ``per_user_metrics(...)["ndcg@10"]``).
    segments : numpy.ndarray
        ``str[n]`` labels aligned with the values (:func:`user_segments`).

    Returns
    -------
    dict of str to dict
        ``{segment: {"mean": float, "count": int}}`` in :data:`SEGMENTS` order, then any other labels sorted.
        Segments with no users are left out.

    Raises
    ------
    DataError
        If the arrays are not 1-D of the same length.

    Examples
    --------
    >>> per_segment(np.array([0.0, 1.0, 0.5]), np.array(["heavy", "light", "heavy"]))
    {'light': {'mean': 1.0, 'count': 1}, 'heavy': {'mean': 0.25, 'count': 2}}
    """
    values = np.asarray(per_user_values, dtype=np.float64)
    labels = np.asarray(segments)
    if values.ndim != 1 or labels.ndim != 1 or len(values) != len(labels):
        raise DataError(f"per_user_values {values.shape} and segments {labels.shape} must be 1-D and of the same "
                        "length (one value and one label per evaluated user)")
    names, inverse = np.unique(labels.astype(str), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(names))
    sums = np.bincount(inverse, weights=values, minlength=len(names))
    found = {str(name): (float(total / count), int(count)) for name, total, count in zip(names, sums, counts,
                                                                                        strict=True)}
    order = [name for name in SEGMENTS if name in found] + sorted(set(found) - set(SEGMENTS))
    return {name: {"mean": found[name][0], "count": found[name][1]} for name in order}


# ------------------------------------------------------------------------------------------------ popularity
def item_popularity_deciles(train_matrix: Any) -> np.ndarray:
    """``int64[n_items]`` each item's popularity decile, 1 (least popular tenth) to 10 (most popular tenth).

    Items are ranked by training interaction count (:func:`item_counts`), equal counts by item index (the lower
    index ranks lower), so every item has its own rank ``r`` (1-based) among the ``n_items``; its decile is
    ``floor(10 * (r - 1/2) / n_items) + 1``. Deciles are thus tenths of the catalogue by popularity rank: each
    holds ``n_items / 10`` items (rounded), and with 10 items or more none is empty, however many items share a
    count (equal counts can straddle deciles).

    Raises
    ------
    DataError
        If the catalogue is empty.

    Examples
    --------
    >>> train = sp.csr_matrix(np.array([[1, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 0]]))
    >>> item_popularity_deciles(train).tolist()  # 5 items: each spans two tenths and takes the upper one
    [4, 6, 8, 10, 2]
    >>> item_popularity_deciles(sp.csr_matrix(np.ones((1, 20)))).tolist()  # all tied: two items per decile
    [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10]
    """
    counts = item_counts(train_matrix)
    n = len(counts)
    if n == 0:
        raise DataError("train_matrix has no items (0 columns); popularity deciles need a catalogue")
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), counts))] = np.arange(n)  # 0-based; ties by item index
    return (N_DECILES * (2 * rank + 1)) // (2 * n) + 1


def popularity_deciles(rec_ids: np.ndarray, train_matrix: Any, k: int = 10) -> np.ndarray:
    """Share of all recommended items (each user's top ``k``, -1 ignored) in each item-popularity decile.

    Parameters
    ----------
    rec_ids : numpy.ndarray
        ``int[n, K]`` recommended items, best first, -1 padded; ``K >= k``.
    train_matrix : scipy sparse matrix or Interactions
        Training interactions; its columns are the catalogue (see :func:`item_popularity_deciles`).
    k : int
        How many of each user's recommendations count.

    Returns
    -------
    numpy.ndarray
        ``float64[10]``: index 0 is decile 1 (least popular tenth of the items), index 9 decile 10 (most popular).
        Sums to 1; all zeros when nothing was recommended.

    Raises
    ------
    ConfigError
        If ``k`` is not a positive integer or exceeds the columns of ``rec_ids``.
    DataError
        If a recommended item is outside the catalogue of ``train_matrix``.
    """
    ids = _rec_ids(rec_ids)
    k = _positive_int(k, "k")
    if k > ids.shape[1]:
        raise ConfigError(f"k={k} but rec_ids holds only {ids.shape[1]} recommendations per user")
    deciles = item_popularity_deciles(train_matrix)
    top = ids[:, :k]
    top = top[top >= 0]
    if top.size and top.max() >= len(deciles):
        raise DataError(f"recommended item {int(top.max())} is outside the training catalogue of {len(deciles)} items")
    counts = np.bincount(deciles[top] - 1, minlength=N_DECILES).astype(np.float64)
    return counts / top.size if top.size else counts


def interaction_deciles(train_matrix: Any) -> np.ndarray:
    """Share of the training interactions on items of each popularity decile (``float64[10]``, sums to 1).

    The reference for :func:`popularity_deciles`: a recommender that follows the data's popularity exactly would
    match it; more mass on decile 10 means it amplifies popularity.

    Raises
    ------
    DataError
        If the catalogue is empty or there are no interactions.
    """
    counts = item_counts(train_matrix)
    deciles = item_popularity_deciles(train_matrix)
    total = counts.sum()
    if total == 0:
        raise DataError("train_matrix holds no interactions; nothing to spread over popularity deciles")
    return np.bincount(deciles - 1, weights=counts, minlength=N_DECILES) / total


# ------------------------------------------------------------------------------------------------ one report entry
def _metric_names(row: Mapping[str, Any]) -> list[str]:
    return [key for key in row if isinstance(key, str) and ("@" in key or key in RATING_METRICS)]


def report_entry(row: Mapping[str, Any], train_matrix: Any, test_matrix: Any, *,
                 curve_metrics: Sequence[str] = ("ndcg", "recall"), ks: Iterable[int] = REPORT_KS,
                 segment_metric: str | None = None, decile_k: int | None = None,
                 intervals: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """Turn one row of ``evaluate_recipes(..., details=True)`` into a result for :func:`~.report.write_report`.

    Parameters
    ----------
    row : mapping
        ``recipe``, metric means (``"ndcg@10"``, ...), ``fit_seconds``, and the details ``per_user``, ``rec_ids``
        and ``evaluated`` (dense user indices aligned with the rows of ``rec_ids``).
    train_matrix, test_matrix : scipy sparse matrix or Interactions
        The split the row was measured on (all users; rows are picked with ``evaluated``).
    curve_metrics : sequence of str
        Metric bases of the metric-vs-k curves.
    ks : iterable of int
        Cut-offs of the curves; those beyond the ranking depth are dropped.
    segment_metric : str, optional
        Per-user metric averaged per segment (default ``ndcg@…`` at the largest cut-off measured, else the
        first per-user metric).
    decile_k : int, optional
        Recommendations per user counted by :func:`popularity_deciles` (default: the largest metric cut-off,
        at most the ranking depth).
    intervals : mapping, optional
        ``{name: {"mean", "ci_low", "ci_high"}}`` (e.g. ``stats.summarise(row["per_user"])``); replaces the
        plain means of those metrics.

    Returns
    -------
    dict
        The result shape documented in :mod:`recsmith.evaluation.report`.

    Raises
    ------
    DataError
        If the row lacks ``rec_ids``/``evaluated`` (evaluate with ``details=True``) or the named metric.
    """
    missing = [key for key in ("recipe", "rec_ids", "evaluated") if key not in row]
    if missing:
        raise DataError(f"the evaluation row lacks {', '.join(missing)}; run evaluate_recipes(..., details=True)")
    ids = _rec_ids(row["rec_ids"])
    users = np.asarray(row["evaluated"])
    train = _train_csr(train_matrix)
    truth = _train_csr(test_matrix)[users]
    names = _metric_names(row)
    metrics: dict[str, Any] = {name: float(row[name]) for name in names}
    for name, interval in (intervals or {}).items():
        metrics[name] = {key: float(interval[key]) for key in ("mean", "ci_low", "ci_high")}
    result: dict[str, Any] = {"recipe": str(row["recipe"]), "metrics": metrics}
    if "fit_seconds" in row:
        result["fit_seconds"] = float(row["fit_seconds"])
    cuts = sorted({cut for cut in (_positive_int(k, "each cut-off in ks") for k in ks) if cut <= ids.shape[1]})
    if cuts and curve_metrics:
        result["curve"] = {base: metric_curve(ids, truth, base, cuts) for base in curve_metrics}
    per_user = row.get("per_user") or {}
    if per_user:
        if segment_metric is None:
            ndcgs = sorted((int(name.split("@")[1]), name) for name in per_user if name.startswith("ndcg@"))
            segment_metric = ndcgs[-1][1] if ndcgs else next(iter(per_user))
        if segment_metric not in per_user:
            raise DataError(f"segment_metric {segment_metric!r} is not among the per-user metrics "
                            f"{sorted(per_user)}")
        segments = user_segments(train, users)
        summary = per_segment(per_user[segment_metric], segments)
        lengths = history_lengths(train)[users]
        for name, entry in summary.items():
            inside = lengths[segments == name]
            entry["min_history"], entry["max_history"] = int(inside.min()), int(inside.max())
        result["segments"] = summary
        result["segment_metric"] = segment_metric
    cut_offs = [int(name.split("@")[1]) for name in names if "@" in name]
    depth = min(decile_k or max(cut_offs, default=ids.shape[1]), ids.shape[1])
    result["popularity_deciles"] = popularity_deciles(ids, train, depth).tolist()
    result["decile_k"] = depth
    return result
