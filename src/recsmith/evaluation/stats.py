"""Uncertainty of offline metrics: bootstrap confidence intervals and paired significance tests.

Inputs are per-user metric values, as :func:`recsmith.evaluation.metrics.per_user_metrics` returns them, or,
for statistics that are not a mean of per-user values (AUC, log loss over pairs), the pairs' users:
:func:`bootstrap_grouped_ci` resamples users and hands the statistic each resample as pair weights.
Everything random takes a ``seed``; the same inputs and seed give the same interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import scipy.stats

from recsmith.errors import ConfigError, DataError

PAIRED_METHODS = ("t", "wilcoxon")

BOOTSTRAP_CHUNK_CELLS = 1 << 22
"""Resample indices drawn at once (4M ``int32``/``int64`` indices plus their gathered values, about 50 MB)."""


def _values(values: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numbers: {exc}") from None
    if array.ndim != 1:
        raise DataError(f"{what} must be 1-D (one value per user), got shape {array.shape}")
    if len(array) == 0:
        raise DataError(f"{what} is empty; there is nothing to summarise")
    bad = ~np.isfinite(array)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise DataError(f"{what} holds {int(bad.sum())} NaN or infinite values (first at position {where}: "
                        f"{float(array[where])})")
    return array


def _check_bootstrap_options(confidence: float, n_resamples: int) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, int | float | np.floating) or not (
            0.0 < confidence < 1.0):
        raise ConfigError(f"confidence must be a number strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer) or n_resamples <= 0:
        raise ConfigError(f"n_resamples must be a positive integer (e.g. 1000), got {n_resamples!r}")


def bootstrap_means(values: np.ndarray, *, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """The means of ``n_resamples`` bootstrap resamples (with replacement, same size) of ``values``.

    Resample indices are drawn in chunks of at most :data:`BOOTSTRAP_CHUNK_CELLS`, so memory stays bounded
    however many users there are; the chunking does not change the result.

    Parameters
    ----------
    values : array-like of float
        One value per user.
    n_resamples : int
        How many resamples.
    seed : int
        Seed of the resampling.

    Returns
    -------
    numpy.ndarray
        ``float64[n_resamples]``.

    Raises
    ------
    DataError
        If ``values`` is empty, not 1-D, or holds NaN/inf.
    ConfigError
        If ``n_resamples`` is not a positive integer.
    """
    array = _values(values, "values")
    _check_bootstrap_options(0.5, n_resamples)
    n = len(array)
    rng = np.random.default_rng(seed)
    dtype = np.int32 if n < 2**31 else np.int64
    rows = max(1, BOOTSTRAP_CHUNK_CELLS // n)
    means = np.empty(int(n_resamples), dtype=np.float64)
    for start in range(0, int(n_resamples), rows):
        stop = min(start + rows, int(n_resamples))
        indices = rng.integers(0, n, size=(stop - start, n), dtype=dtype)
        means[start:stop] = array[indices].mean(axis=1)
    return means


def bootstrap_ci(values: np.ndarray, *, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean.

    Parameters
    ----------
    values : array-like of float
        One value per user (e.g. a column of :func:`~recsmith.evaluation.metrics.per_user_metrics`).
    confidence : float
        Coverage of the interval, strictly between 0 and 1.
    n_resamples : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling; the same seed gives the same interval.

    Returns
    -------
    (float, float)
        The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resample means.

    Raises
    ------
    DataError
        If ``values`` is empty, not 1-D, or holds NaN/inf.
    ConfigError
        If ``confidence`` is not in (0, 1) or ``n_resamples`` is not a positive integer.

    Examples
    --------
    >>> bootstrap_ci([0.5, 0.5, 0.5])
    (0.5, 0.5)
    """
    _check_bootstrap_options(confidence, n_resamples)
    means = bootstrap_means(values, n_resamples=n_resamples, seed=seed)
    tail = (1.0 - float(confidence)) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_group_counts(n_groups: int, *, n_resamples: int = 1000, seed: int = 0,
                           row_cells: int | None = None) -> Iterator[np.ndarray]:
    """How many times each group (user) is drawn in each bootstrap resample, in chunks.

    Each resample draws ``n_groups`` groups with replacement.

    Parameters
    ----------
    n_groups : int
        How many groups.
    n_resamples : int
        How many resamples in all.
    seed : int
        Seed of the resampling.
    row_cells : int, optional
        How many cells the caller makes of one resample (e.g. one weight per pair; default ``n_groups``):
        chunks hold at most :data:`BOOTSTRAP_CHUNK_CELLS` of them, so memory stays bounded.

    Yields
    ------
    numpy.ndarray
        ``int64[rows, n_groups]`` counts (each row sums to ``n_groups``), ``n_resamples`` rows over all chunks.

    Raises
    ------
    ConfigError
        If ``n_resamples`` is not a positive integer.
    DataError
        If there are no groups.
    """
    _check_bootstrap_options(0.5, n_resamples)
    if n_groups <= 0:
        raise DataError("there are no groups (users) to resample")
    rng = np.random.default_rng(seed)
    dtype = np.int32 if n_groups < 2**31 else np.int64
    rows = max(1, BOOTSTRAP_CHUNK_CELLS // max(n_groups, row_cells or 0))
    for start in range(0, int(n_resamples), rows):
        stop = min(start + rows, int(n_resamples))
        indices = rng.integers(0, n_groups, size=(stop - start, n_groups), dtype=dtype)
        offsets = (np.arange(stop - start, dtype=np.int64) * n_groups)[:, None]
        yield np.bincount((indices + offsets).ravel(), minlength=(stop - start) * n_groups).reshape(
            stop - start, n_groups)


def bootstrap_grouped_ci(statistic: Callable[[np.ndarray], np.ndarray], groups: np.ndarray, *,
                         confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of any statistic of pairs, resampling groups (users).

    A resample draws the users with replacement, keeping all the pairs of each drawn user; a user drawn
    twice counts twice. The statistic sees a resample as integer weights on the pairs (a pair's weight is
    how many times its user was drawn), which for a weighted statistic is the same as the resample itself,
    without copying the pairs.

    Parameters
    ----------
    statistic : callable
        ``weights (float64[rows, n_pairs]) -> float64[rows]``: the statistic of each weighted resample.
        NaN results (a resample where it is undefined, e.g. AUC without a negative pair) are left out.
    groups : array of int
        Each pair's group (dense user index, any integers).
    confidence, n_resamples, seed
        As :func:`bootstrap_ci`; the same seed draws the same users for every statistic of the same pairs.

    Returns
    -------
    (float, float)
        The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled statistic.

    Raises
    ------
    DataError
        If there are no pairs, or the statistic is undefined on every resample.
    ConfigError
        If ``confidence`` is not in (0, 1) or ``n_resamples`` is not a positive integer.
    """
    return bootstrap_grouped_cis({"statistic": statistic}, groups, confidence=confidence, n_resamples=n_resamples,
                                 seed=seed)["statistic"]


def bootstrap_grouped_cis(statistics: Mapping[str, Callable[[np.ndarray], np.ndarray]], groups: np.ndarray, *,
                          confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
                          ) -> dict[str, tuple[float, float]]:
    """:func:`bootstrap_grouped_ci` of several statistics of the same pairs, on the same resamples (drawn once).

    Returns
    -------
    dict of str to (float, float)
        Each statistic's interval, by the names of ``statistics``.

    Raises
    ------
    DataError, ConfigError
        As :func:`bootstrap_grouped_ci`; an undefined statistic is named.
    """
    _check_bootstrap_options(confidence, n_resamples)
    groups = np.asarray(groups).ravel()
    if len(groups) == 0:
        raise DataError("there are no pairs to resample")
    _, codes = np.unique(groups, return_inverse=True)
    n_groups = int(codes.max()) + 1
    values: dict[str, list[np.ndarray]] = {name: [] for name in statistics}
    for counts in bootstrap_group_counts(n_groups, n_resamples=n_resamples, seed=seed, row_cells=len(groups)):
        weights = counts[:, codes].astype(np.float64)
        for name, statistic in statistics.items():
            values[name].append(np.asarray(statistic(weights), dtype=np.float64).ravel())
    tail = (1.0 - float(confidence)) / 2.0
    out = {}
    for name, parts in values.items():
        resampled = np.concatenate(parts)
        resampled = resampled[np.isfinite(resampled)]
        if len(resampled) == 0:
            raise DataError(f"{name} is undefined (NaN) on every bootstrap resample")
        low, high = np.quantile(resampled, [tail, 1.0 - tail])
        out[name] = (float(low), float(high))
    return out


def paired_test(a: np.ndarray, b: np.ndarray, *, method: str = "t") -> dict[str, Any]:
    """Two-sided paired test of whether two systems' per-user values differ.

    Parameters
    ----------
    a, b : array-like of float
        The same users' values under systems A and B, in the same order.
    method : {"t", "wilcoxon"}
        ``"t"``: paired t-test (:func:`scipy.stats.ttest_rel`); ``"wilcoxon"``: Wilcoxon signed-rank test
        (:func:`scipy.stats.wilcoxon`, zero differences dropped).

    Returns
    -------
    dict
        ``method``; ``n`` (pairs); ``mean_difference`` (mean of ``a - b``); ``statistic``; ``p_value``
        (two-sided). When every difference is zero the test is trivially not significant: statistic 0 and
        p-value 1.0 (scipy would give NaN).

    Raises
    ------
    DataError
        If the lengths differ, an input is empty, not 1-D or holds NaN/inf, or the t-test gets fewer than
        two pairs.
    ConfigError
        If ``method`` is not one of :data:`PAIRED_METHODS`.

    Examples
    --------
    >>> paired_test([0.2, 0.4], [0.2, 0.4])["p_value"]
    1.0
    """
    if method not in PAIRED_METHODS:
        raise ConfigError(f"unknown paired test method {method!r}; use one of: {', '.join(PAIRED_METHODS)}")
    first, second = _values(a, "a"), _values(b, "b")
    if len(first) != len(second):
        raise DataError(f"paired values must have the same length: a has {len(first)}, b has {len(second)}; "
                        "give both systems' values for the same users in the same order")
    difference = first - second
    result: dict[str, Any] = {"method": method, "n": int(len(difference)),
                              "mean_difference": float(difference.mean())}
    if not difference.any():
        return result | {"statistic": 0.0, "p_value": 1.0}
    if method == "t" and len(difference) < 2:
        raise DataError("the paired t-test needs at least 2 pairs, got 1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant differences: t = ±inf, p = 0, as intended
        test = scipy.stats.ttest_rel(first, second) if method == "t" else scipy.stats.wilcoxon(first, second)
    return result | {"statistic": float(test.statistic), "p_value": float(test.pvalue)}


def summarise(per_user: dict[str, np.ndarray], *, confidence: float = 0.95, n_resamples: int = 1000,
              seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean and bootstrap confidence interval of each metric.

    Parameters
    ----------
    per_user : dict of str to numpy.ndarray
        Per-user values keyed by metric name, as from :func:`~recsmith.evaluation.metrics.per_user_metrics`.
    confidence, n_resamples, seed
        As :func:`bootstrap_ci`. Every metric uses the same seed, so metrics over the same users are
        resampled with the same users.

    Returns
    -------
    dict of str to dict
        ``{name: {"mean": ..., "ci_low": ..., "ci_high": ...}}`` in the order of ``per_user``.

    Raises
    ------
    DataError, ConfigError
        As :func:`bootstrap_ci`; messages name the metric.
    """
    _check_bootstrap_options(confidence, n_resamples)
    out: dict[str, dict[str, float]] = {}
    for name, values in per_user.items():
        array = _values(values, f"metric {name!r}")
        low, high = bootstrap_ci(array, confidence=confidence, n_resamples=n_resamples, seed=seed)
        out[name] = {"mean": float(array.mean()), "ci_low": low, "ci_high": high}
    return out
