"""Classification evaluation: does a recipe's score of a (user, item) pair predict a binary label?

The SageMaker Factorization Machines and PyTorch recommender designs measure a recipe as a classifier of held-out
pairs, labelled by a rule on the rating (``EVENT_VALUE >= 4``, :func:`recsmith.data.labels.parse_label_rule`):
AUC, log loss, and accuracy, precision, recall and F1 at a threshold, with a reliability diagram. Any recipe can
be measured so, since every recipe scores pairs (:meth:`~recsmith.recipes.base.Recipe.score`).

Scores become probabilities as they are when ``recipe.score_is_probability`` (``fm`` with the binary objective);
other scores (svd's predicted ratings, ranking scores) are calibrated by Platt scaling, a 1-D logistic
regression of the label on the score, fitted on the *training* pairs' scores and labels, never the test pairs'
(:class:`PlattScaling`). AUC depends only on the order of the scores, so calibration does not change it.

The metrics are written in numpy over optional pair weights, broadcast over rows of weights, so that
:func:`recsmith.evaluation.stats.bootstrap_grouped_cis` computes a thousand user-resampled values of each at once.
They agree with scikit-learn's ``roc_auc_score``, ``log_loss``, ``accuracy_score``, ``precision_score``,
``recall_score``, ``f1_score`` (``zero_division=0``) and ``calibration_curve`` to float rounding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsmith.data.interactions import Interactions
from recsmith.data.labels import LabelRule
from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.split import Split
from recsmith.evaluation.stats import bootstrap_grouped_cis
from recsmith.recipes.base import Recipe
from recsmith.recipes.options import FitOptions

logger = logging.getLogger(__name__)

CLASSIFICATION_METRICS = ("auc", "log_loss", "accuracy", "precision", "recall", "f1")
"""What ``evaluate --task binary`` reports, in its order; ``log_loss`` is the one lower is better."""

DEFINITIONS: dict[str, str] = {
    "auc": "area under the ROC curve: chance a positive pair scores above a negative one (ties count half)",
    "log_loss": "mean -log(probability given to the true label) (lower is better)",
    "accuracy": "share of pairs whose probability is on the right side of the threshold",
    "precision": "positives among the pairs at or above the threshold",
    "recall": "pairs at or above the threshold among the positives",
    "f1": "harmonic mean of precision and recall",
}
"""One line per classification metric, for the CLI's and the report's notes."""

TASKS = ("ranking", "binary")
"""``recsmith evaluate --task``: full-catalogue ranking (the default) or binary classification of pairs."""

PLATT_MAX_PAIRS = 1_000_000
"""Training pairs Platt scaling is fitted on at most (a seeded sample beyond that)."""

LOG_LOSS_EPS = float(np.finfo(np.float64).eps)
"""Probabilities are clipped to ``[eps, 1 - eps]`` before the log (as scikit-learn does)."""


# ------------------------------------------------------------------------------------------------ inputs
def _labels(labels: Any) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise DataError(f"labels must be 1-D (one per pair), got shape {array.shape}")
    if array.dtype != bool:
        as_float = np.asarray(array, dtype=np.float64)
        if not np.isin(as_float, (0.0, 1.0)).all():
            raise DataError("labels must be booleans or 0/1")
        array = as_float == 1.0
    return array.astype(np.float64)


def _numbers(values: Any, n: int, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numbers: {exc}") from None
    if array.shape != (n,):
        raise DataError(f"{what} has shape {array.shape}, the labels ({n},); give one per pair")
    bad = ~np.isfinite(array)
    if bad.any():
        raise DataError(f"{what} holds {int(bad.sum())} NaN or infinite values (first at pair "
                        f"{int(np.flatnonzero(bad)[0])})")
    return array


def _weights(weights: Any, n: int) -> np.ndarray:
    """Weights as ``float64[rows, n]`` (one row of ones by default)."""
    if weights is None:
        return np.ones((1, n), dtype=np.float64)
    array = np.asarray(weights, dtype=np.float64)
    array = array[None, :] if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[1] != n:
        raise DataError(f"weights have shape {np.shape(weights)}; give one per pair, or rows of them")
    if (array < 0).any() or not np.isfinite(array).all():
        raise DataError("weights must be finite and not negative")
    return array


def _out(values: np.ndarray, weights: Any) -> float | np.ndarray:
    """A float for one set of weights (or none), the array for rows of them."""
    return float(values[0]) if weights is None or np.ndim(weights) == 1 else values


def _ratio(numerator: np.ndarray, denominator: np.ndarray, empty: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), empty)


# ------------------------------------------------------------------------------------------------ metrics
def roc_auc(labels: Any, scores: Any, weights: Any = None) -> float | np.ndarray:
    """Area under the ROC curve: the weighted share of (positive, negative) pairs the score orders right.

    Parameters
    ----------
    labels : array of bool or 0/1
        The true labels.
    scores : array of float
        Any scores, higher meaning more likely positive (probabilities or not: only their order counts).
    weights : array of float, optional
        A weight per pair (``n``), or rows of them (``rows × n``: one AUC per row).

    Returns
    -------
    float or numpy.ndarray
        The AUC (ties count half, as the trapezoid under the ROC curve does); NaN without a positive or a
        negative of positive weight. An array for rows of weights.

    Raises
    ------
    DataError
        For arrays of different lengths, NaN/inf scores, labels that are not 0/1, or negative weights.
    """
    y = _labels(labels)
    s = _numbers(scores, len(y), "scores")
    w = _weights(weights, len(y))
    if len(y) == 0:
        return _out(np.full(len(w), np.nan), weights)
    order = np.argsort(s, kind="stable")
    starts = np.flatnonzero(np.r_[True, s[order][1:] != s[order][:-1]])  # groups of tied scores, ascending
    ordered = w[:, order]
    pos = np.add.reduceat(ordered * y[order], starts, axis=1)
    neg = np.add.reduceat(ordered * (1.0 - y[order]), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each group
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    return _out(_ratio(wins, pos.sum(axis=1) * neg.sum(axis=1), np.nan), weights)


def log_loss(labels: Any, probabilities: Any, weights: Any = None) -> float | np.ndarray:
    """Weighted mean negative log-likelihood of the labels (probabilities clipped to ``[eps, 1 - eps]``).

    Parameters and errors as :func:`roc_auc`; probabilities must lie in ``[0, 1]``. NaN without weight.
    """
    y = _labels(labels)
    p = _probabilities(probabilities, len(y))
    w = _weights(weights, len(y))
    p = np.clip(p, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    loss = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return _out(_ratio(w @ loss, w.sum(axis=1), np.nan), weights)


def threshold_metrics(labels: Any, probabilities: Any, threshold: float = 0.5, weights: Any = None
                      ) -> dict[str, float | np.ndarray]:
    """Accuracy, precision, recall and F1 of predicting positive where the probability is ``>= threshold``.

    Precision, recall and F1 are 0 where undefined (no predicted positive, no positive), as scikit-learn's
    ``zero_division=0``; accuracy is NaN without weight. Parameters and errors as :func:`roc_auc`.

    Raises
    ------
    ConfigError
        If ``threshold`` is not a number in (0, 1).
    """
    check_threshold(threshold)
    y = _labels(labels)
    predicted = (_probabilities(probabilities, len(y)) >= threshold).astype(np.float64)
    w = _weights(weights, len(y))
    tp, fp = w @ (y * predicted), w @ ((1.0 - y) * predicted)
    fn, tn = w @ (y * (1.0 - predicted)), w @ ((1.0 - y) * (1.0 - predicted))
    return {"accuracy": _out(_ratio(tp + tn, tp + tn + fp + fn, np.nan), weights),
            "precision": _out(_ratio(tp, tp + fp, 0.0), weights),
            "recall": _out(_ratio(tp, tp + fn, 0.0), weights),
            "f1": _out(_ratio(2.0 * tp, 2.0 * tp + fp + fn, 0.0), weights)}


def calibration_bins(labels: Any, probabilities: Any, n_bins: int = 10) -> list[dict[str, float]]:
    """The reliability diagram: in each of ``n_bins`` equal-width probability bins, the mean probability given
    and the share of positives (scikit-learn's ``calibration_curve(strategy="uniform")``, with the counts).

    Returns
    -------
    list of dict
        One per non-empty bin, lowest first: ``low``, ``high`` (the bin's edges), ``count``,
        ``mean_predicted``, ``fraction_positive``.

    Raises
    ------
    ConfigError
        If ``n_bins`` is not an integer >= 2.
    DataError
        As :func:`log_loss`.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 2:
        raise ConfigError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    y = _labels(labels)
    p = _probabilities(probabilities, len(y))
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    bins = np.searchsorted(edges[1:-1], p)  # the bins calibration_curve puts each probability in
    counts = np.bincount(bins, minlength=n_bins)
    sums = np.bincount(bins, weights=p, minlength=n_bins)
    hits = np.bincount(bins, weights=y, minlength=n_bins)
    return [{"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(counts[b]),
             "mean_predicted": float(sums[b] / counts[b]), "fraction_positive": float(hits[b] / counts[b])}
            for b in np.flatnonzero(counts)]


def expected_calibration_error(bins: list[Mapping[str, float]]) -> float:
    """The count-weighted mean gap between each bin's share of positives and its mean probability."""
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] * abs(b["fraction_positive"] - b["mean_predicted"]) for b in bins) / total
                 ) if total else float("nan")


def _probabilities(values: Any, n: int) -> np.ndarray:
    p = _numbers(values, n, "probabilities")
    if len(p) and (p.min() < 0.0 or p.max() > 1.0):
        raise DataError(f"probabilities must lie in [0, 1]; got values from {p.min():.4g} to {p.max():.4g} "
                        "(calibrate scores first, e.g. with PlattScaling)")
    return p


def check_threshold(threshold: Any) -> float:
    """``threshold`` as a float strictly between 0 and 1, or a ConfigError naming it."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.floating) or not (
            0.0 < float(threshold) < 1.0):
        raise ConfigError(f"the threshold must be a probability strictly between 0 and 1 (e.g. 0.5), got "
                          f"{threshold!r}")
    return float(threshold)


# ------------------------------------------------------------------------------------------------ calibration
@dataclass(frozen=True)
class PlattScaling:
    """Platt scaling: ``P(label) = 1 / (1 + exp(-(slope · score + intercept)))``, fitted by maximum likelihood.

    Attributes
    ----------
    slope, intercept : float
        The logistic regression's coefficients on the raw score.
    """

    slope: float
    intercept: float

    @classmethod
    def fit(cls, scores: Any, labels: Any, *, max_iter: int = 100, tol: float = 1e-10) -> PlattScaling:
        """Fit the 1-D logistic regression of ``labels`` on ``scores`` (unpenalised; Newton's method).

        Raises
        ------
        DataError
            Without pairs of both labels, or with NaN/inf scores.
        """
        y = _labels(labels)
        s = _numbers(scores, len(y), "scores")
        positives = int(y.sum())
        if positives in (0, len(y)):
            raise DataError(f"Platt scaling needs training pairs of both labels; all {len(y)} are "
                            f"{'positive' if positives else 'negative'}")
        centre, scale = float(s.mean()), float(s.std()) or 1.0
        z = (s - centre) / scale  # standardised: a well-conditioned Newton step
        X = np.column_stack([z, np.ones_like(z)])
        beta = np.array([0.0, np.log(positives / (len(y) - positives))])
        ridge = 1e-9 * len(y)  # keeps the Hessian invertible when the labels are separable
        for _ in range(max_iter):
            p = _sigmoid(X @ beta)
            gradient = X.T @ (p - y) + ridge * np.r_[beta[0], 0.0]
            hessian = (X * (p * (1.0 - p))[:, None]).T @ X + ridge * np.diag([1.0, 0.0])
            step = np.linalg.solve(hessian + 1e-12 * np.eye(2), gradient)
            beta = beta - step
            if np.abs(step).max() < tol:
                break
        slope = float(beta[0] / scale)
        return cls(slope, float(beta[1] - slope * centre))

    def predict(self, scores: Any) -> np.ndarray:
        """Calibrated probabilities of ``scores`` (``float64``)."""
        s = np.asarray(scores, dtype=np.float64)
        return _sigmoid(self.slope * s + self.intercept)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float64)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1.0 + e)
    return out


# ------------------------------------------------------------------------------------------------ summaries
def classification_summary(labels: Any, probabilities: Any, scores: Any, groups: Any, *, threshold: float = 0.5,
                           confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
                           ) -> dict[str, dict[str, float]]:
    """Every classification metric with its bootstrap confidence interval, users resampled.

    Parameters
    ----------
    labels : array of bool
        The held-out pairs' labels.
    probabilities : array of float
        Their probabilities of the positive label (calibrated if need be).
    scores : array of float
        Their raw scores (AUC is computed on them; the same order as calibrated probabilities).
    groups : array of int
        Each pair's user: resamples draw users with replacement, keeping all their pairs.
    threshold, confidence, n_resamples, seed
        The decision threshold and the bootstrap's options (:func:`~recsmith.evaluation.stats.bootstrap_ci`).

    Returns
    -------
    dict of str to dict
        ``{metric: {"mean": point estimate, "ci_low": ..., "ci_high": ...}}`` in :data:`CLASSIFICATION_METRICS`
        order (``mean`` is the statistic on all the pairs, named as :func:`~recsmith.evaluation.stats.summarise`
        names it).
    """
    y = _labels(labels)
    p = _probabilities(probabilities, len(y))
    s = _numbers(scores, len(y), "scores")
    statistics: dict[str, Callable[[np.ndarray], Any]] = {
        "auc": lambda w: roc_auc(y, s, w), "log_loss": lambda w: log_loss(y, p, w),
        **{name: (lambda w, name=name: threshold_metrics(y, p, threshold, w)[name])
           for name in ("accuracy", "precision", "recall", "f1")}}
    intervals = bootstrap_grouped_cis(statistics, groups, confidence=confidence, n_resamples=n_resamples, seed=seed)
    ones = np.ones((1, len(y)))
    return {name: {"mean": float(statistic(ones)[0]), "ci_low": intervals[name][0], "ci_high": intervals[name][1]}
            for name, statistic in statistics.items()}


@dataclass(frozen=True)
class LabelledPairs:
    """Pairs of a split with their labels: dense user and item indices, and ``bool`` labels."""

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray
    unlabelled: int
    """Pairs left out for having no ``EVENT_VALUE``."""

    @classmethod
    def of(cls, interactions: Interactions, rule: LabelRule, what: str) -> LabelledPairs:
        """The stored pairs of ``interactions`` that have a value, labelled by ``rule``.

        Raises
        ------
        DataError
            When the interactions have no values at all, or no pair has one.
        """
        matrix = interactions.matrix
        if interactions.values is None:
            raise DataError(f"the {what} pairs have no EVENT_VALUE, so label rule '{rule}' labels nothing; import "
                            "a rating column mapped to EVENT_VALUE")
        users = np.repeat(np.arange(interactions.n_users, dtype=np.int64), np.diff(matrix.indptr))
        items = matrix.indices.astype(np.int64)
        valued = np.isfinite(interactions.values)
        if not valued.any():
            raise DataError(f"none of the {matrix.nnz} {what} pairs has an EVENT_VALUE, so label rule '{rule}' "
                            "labels nothing; import a rating column mapped to EVENT_VALUE")
        return cls(users[valued], items[valued], rule.apply(interactions.values[valued]), int((~valued).sum()))


def probabilities_of(recipe: Recipe, label: str, train: LabelledPairs, scores: np.ndarray, *, seed: int = 0
                     ) -> tuple[np.ndarray, PlattScaling | None]:
    """The recipe's test scores as probabilities: as they are when ``score_is_probability``, else Platt-scaled
    on the recipe's scores of the training pairs (at most :data:`PLATT_MAX_PAIRS` of them, a seeded sample).

    Returns
    -------
    (numpy.ndarray, PlattScaling or None)
        The probabilities and the fitted calibration (None when the scores were used as they are).

    Raises
    ------
    DataError
        When a probability recipe's scores leave [0, 1], or its training scores hold NaN.
    """
    if recipe.score_is_probability:
        if len(scores) and (scores.min() < 0.0 or scores.max() > 1.0):
            raise DataError(f"recipe {label} says its scores are probabilities, but they range from "
                            f"{scores.min():.4g} to {scores.max():.4g}")
        return scores, None
    pick = np.arange(len(train.users))
    if len(pick) > PLATT_MAX_PAIRS:
        pick = np.sort(np.random.default_rng(seed).choice(len(pick), PLATT_MAX_PAIRS, replace=False))
    train_scores = _finite_scores(recipe.score(train.users[pick], train.items[pick]), label, "training")
    platt = PlattScaling.fit(train_scores, train.labels[pick])
    return platt.predict(scores), platt


def _finite_scores(scores: Any, label: str, what: str) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise DataError(f"recipe {label} scored {int(bad.sum())} of the {len(array)} {what} pairs NaN or infinite")
    return array


def evaluate_classifiers(recipes: Mapping[str, Recipe], data: TrainingData, split: Split, rule: LabelRule, *,
                         threshold: float = 0.5, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0,
                         n_bins: int = 10, progress: Callable[[str, str], None] | None = None,
                         fit_options: FitOptions | None = None) -> list[dict[str, Any]]:
    """Fit each recipe on the split's train part and measure how its scores classify the held-out pairs.

    Parameters
    ----------
    recipes : mapping of label to Recipe
        Unfitted recipes (fitted in place).
    data : TrainingData
        The whole group's data (its feature tables are kept: recipes fit on
        ``data.with_interactions(split.train)``).
    split : Split
        A split of ``data.interactions`` whose test users are training users (not the ``users`` protocol).
    rule : LabelRule
        Labels the pairs from their ``EVENT_VALUE``; test pairs without one are left out.
    threshold : float
        Probability at or above which a pair is predicted positive.
    confidence, n_resamples, seed
        The bootstrap's options (users resampled); ``seed`` also draws the Platt sample when there are more
        training pairs than :data:`PLATT_MAX_PAIRS`.
    n_bins : int
        Bins of the reliability diagram.
    progress : callable, optional
        Called with (recipe label, stage) for stage "fit" and "score".
    fit_options : FitOptions, optional
        How the recipes are fitted (device, threads); default ``FitOptions()``.

    Returns
    -------
    list of dict
        One per recipe, sorted by AUC, best first: ``recipe``, each of :data:`CLASSIFICATION_METRICS`, ``ci``
        (per metric: mean, ci_low, ci_high), ``calibrated`` (what turned scores into probabilities), ``platt``
        (its slope and intercept, or None), ``calibration`` (the reliability bins), ``ece``, ``fit_seconds``,
        ``score_seconds``, ``pairs``, ``positives``, ``users``.

    Raises
    ------
    ConfigError
        For a split of the users protocol, or a bad threshold.
    DataError
        When the pairs have no values, the test labels are all one class, or a recipe scores NaN.
    """
    check_threshold(threshold)
    if split.test_input is not None:
        raise ConfigError(f"the {split.protocol} protocol holds out whole users, whose pairs no recipe can score "
                          "by (user, item); classify held-out pairs of training users with the ratings-per-user, "
                          "random, leave-last or temporal protocol")
    if data.interactions.matrix.shape != split.train.matrix.shape:
        raise DataError("the split does not share the data's vocabularies; split data.interactions")
    test = LabelledPairs.of(split.test, rule, "test")
    train = LabelledPairs.of(split.train, rule, "training")
    positives = int(test.labels.sum())
    if positives in (0, len(test.labels)):
        raise DataError(f"all {len(test.labels)} labelled test pairs are {'positive' if positives else 'negative'} "
                        f"under label rule '{rule}'; AUC needs both (change the rule)")
    if test.unlabelled:
        logger.info("%d held-out pairs have no EVENT_VALUE; they are left out", test.unlabelled)
    fit_data = data.with_interactions(split.train)
    rows = []
    for label, recipe in recipes.items():
        if progress:
            progress(label, "fit")
        started = time.perf_counter()
        recipe.fit(fit_data, fit_options)
        fit_seconds = time.perf_counter() - started
        if progress:
            progress(label, "score")
        started = time.perf_counter()
        scores = _finite_scores(recipe.score(test.users, test.items), label, "test")
        probabilities, platt = probabilities_of(recipe, label, train, scores, seed=seed)
        score_seconds = time.perf_counter() - started
        summary = classification_summary(test.labels, probabilities, scores, test.users, threshold=threshold,
                                         confidence=confidence, n_resamples=n_resamples, seed=seed)
        bins = calibration_bins(test.labels, probabilities, n_bins)
        rows.append({
            "recipe": label, **{name: value["mean"] for name, value in summary.items()}, "ci": summary,
            "calibrated": "none (its scores are probabilities)" if platt is None else "platt on training pairs",
            "platt": None if platt is None else {"slope": platt.slope, "intercept": platt.intercept},
            "calibration": bins, "ece": expected_calibration_error(bins),
            "fit_seconds": round(fit_seconds, 4), "score_seconds": round(score_seconds, 4),
            "pairs": int(len(test.labels)), "positives": positives, "users": int(len(np.unique(test.users))),
        })
    rows.sort(key=lambda row: row["auc"], reverse=True)
    return rows
