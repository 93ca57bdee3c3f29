"""Uncertainty of offline metrics: bootstrap confidence intervals and paired significance tests.

Inputs are per-user metric values, as :func:`recsmith.evaluation.metrics.per_user_metrics` returns them.
Everything random takes a ``seed``; the same inputs and seed give the same interval.
"""

from __future__ import annotations

import warnings
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
