"""Run an offline experiment on a dataset group: split, fit, rank, measure, with intervals and tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsmith.data.interactions import Interactions
from recsmith.data.labels import LabelRule
from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.crossval import cross_validate_ratings
from recsmith.evaluation.evaluate import evaluate_recipes
from recsmith.evaluation.experiment import Experiment
from recsmith.evaluation.metrics import parse_metric
from recsmith.evaluation.split import Split, make_split
from recsmith.evaluation.stats import paired_test, summarise
from recsmith.recipes.options import FitOptions

ARRAY_KEYS = ("per_user", "rec_ids", "evaluated")


@dataclass
class ExperimentRun:
    """What an experiment produced.

    Attributes
    ----------
    experiment : Experiment
        What was run.
    split : Split
        The split every recipe was measured on.
    rows : list of dict
        One per recipe: the metric means, ``ci`` (per metric: mean, ci_low, ci_high), fit and rank
        seconds, and ``vs_best`` (a paired test of the primary metric against the leader); plus the arrays
        of :func:`~recsmith.evaluation.evaluate.evaluate_recipes` with ``details=True``.
    """

    experiment: Experiment
    split: Split
    rows: list[dict[str, Any]]

    @property
    def primary(self) -> str:
        """The metric the leaderboard is sorted by: the first ndcg, else the first metric."""
        names = self.experiment.metric_names()
        return next((name for name in names if parse_metric(name)[0] == "ndcg"), names[0])

    def to_json(self) -> dict[str, Any]:
        """The results without the per-user arrays, JSON-ready."""
        return {
            "split": self.split.describe(), "k": self.experiment.k, "metrics": self.experiment.metric_names(),
            "primary_metric": self.primary, "confidence": self.experiment.confidence,
            "results": [{key: value for key, value in row.items() if key not in ARRAY_KEYS} for row in self.rows],
        }


def run_experiment(interactions: Interactions | TrainingData, experiment: Experiment, *,
                   progress: Callable[[str, str], None] | None = None, seed: int = 0,
                   depth: int | None = None, fit_options: FitOptions | None = None) -> ExperimentRun:
    """Split ``interactions`` by the experiment's protocol, fit and measure every recipe on it.

    Parameters
    ----------
    interactions : Interactions or TrainingData
        The dataset group's interactions, or its :class:`TrainingData` with the feature tables (feature-aware
        recipes fit on the split's train part with them; the ``cold-items`` protocol needs item features).
    experiment : Experiment
        Recipes, protocol, metrics.
    progress : callable, optional
        Called with (recipe label, stage), as by ``evaluate_recipes``.
    seed : int
        Seed of the bootstrap resampling.
    depth : int, optional
        Rank this many items per user (at least the metrics' cut-offs), e.g. for metric-vs-k curves.
    fit_options : FitOptions, optional
        How every recipe is fitted (the device, e.g. ``FitOptions(device="auto")``); default the CPU.

    Returns
    -------
    ExperimentRun
        Rows sorted best first by the primary metric.
    """
    recipes = experiment.build()
    data = interactions if isinstance(interactions, TrainingData) else None
    split = make_split(data.interactions if data is not None else interactions, experiment.protocol,
                       **experiment.split)
    train = data.with_interactions(split.train) if data is not None else split.train
    rows = evaluate_recipes(recipes, train, split.test, k=experiment.k, metrics=experiment.metric_names(),
                            progress=progress, test_input=split.test_input, depth=depth, details=True,
                            cold_items=split.cold_items, fit_options=fit_options)
    if experiment.sampled_negatives is not None:
        from recsmith.evaluation.sampled import sampled_metrics

        for row in rows:  # the recipes were fitted on split.train by evaluate_recipes
            result = sampled_metrics(recipes[row["recipe"]], split.train, split.test, experiment.sampled_names(),
                                     n_negatives=experiment.sampled_negatives, sampling=experiment.sampling, seed=seed)
            row["sampled_protocol"], row["sampled_cases"] = result.pop("protocol"), result.pop("cases")
            row.update(result)
    run = ExperimentRun(experiment, split, rows)
    primary = run.primary
    for row in rows:
        row["ci"] = summarise(row["per_user"], confidence=experiment.confidence, n_resamples=experiment.bootstrap,
                              seed=seed)
    rows.sort(key=lambda row: row[primary], reverse=True)
    best = rows[0]
    for row in rows[1:]:
        row["vs_best"] = {"recipe": best["recipe"], "metric": primary,  # mean_difference: this row - best, <= 0
                          **paired_test(row["per_user"][primary], best["per_user"][primary])}
    return run



def run_cross_validation(columns: dict[str, np.ndarray], experiment: Experiment, *, folds: int, seed: int = 0,
                         progress: Callable[[str, int], None] | None = None) -> list[dict[str, Any]]:
    """Cross-validate the experiment's rating recipes on a group's rated events (Surprise's k-fold protocol).

    Parameters
    ----------
    columns : dict
        The store's interaction columns in insertion order (``user_id``, ``item_id``, ``event_value``);
        events without a value are left out.
    experiment : Experiment
        Its recipes (each must predict ratings); the protocol fields are not used.
    folds, seed
        As :func:`~recsmith.evaluation.crossval.kfold_indices`.
    progress : callable, optional
        Called with (recipe label, fold number).

    Returns
    -------
    list of dict
        One per recipe: ``recipe``, ``rmse``, ``mae``, their ``_std``, ``fit_seconds`` and ``folds``.
    """
    rated = np.isfinite(columns["event_value"])
    if not rated.any():
        raise DataError("cross-validation needs ratings, and no interaction has an EVENT_VALUE; import a rating "
                        "column mapped to EVENT_VALUE, or evaluate rankings with a protocol instead of --folds")
    users, items = columns["user_id"][rated], columns["item_id"][rated]
    ratings = columns["event_value"][rated]
    rows = []
    for label, recipe in experiment.build().items():

        def on_fold(fold: int, label: str = label) -> None:
            if progress:
                progress(label, fold)

        result = cross_validate_ratings(recipe, users, items, ratings, n_splits=folds, seed=seed, progress=on_fold)
        rows.append({"recipe": label, **result})
    rows.sort(key=lambda row: row["rmse"])
    return rows


def write_experiment_report(run: ExperimentRun, path: Path, *, title: str, context: dict[str, Any]) -> Path:
    """The self-contained HTML report of an experiment: leaderboard with intervals and the four plots."""
    from recsmith.evaluation.analysis import interaction_deciles, report_entry
    from recsmith.evaluation.report import write_report

    split = run.split
    # users are segmented by the history the recipes saw: their training rows, or for held-out users their input
    history = split.train.matrix if split.test_input is None else split.train.matrix + split.test_input.matrix
    entries = [report_entry(row, history, split.test.matrix, intervals=row["ci"], segment_metric=run.primary)
               for row in run.rows]
    return write_report(path, entries, title=title, context=context | split.describe(), primary=run.primary,
                        reference_deciles=interaction_deciles(split.train.matrix).tolist(),
                        confidence=run.experiment.confidence)


# ------------------------------------------------------------------------------------ binary classification
@dataclass
class ClassificationRun:
    """What a binary-task experiment produced (``recsmith evaluate --task binary``).

    Attributes
    ----------
    experiment : Experiment
        What was run (``task = "binary"``).
    split : Split
        The split every recipe was measured on.
    rule : LabelRule
        The label rule.
    unlabelled : int
        Held-out pairs left out for having no ``EVENT_VALUE``.
    rows : list of dict
        One per recipe, best AUC first, as :func:`~recsmith.evaluation.classification.evaluate_classifiers`.
    """

    experiment: Experiment
    split: Split
    rule: LabelRule
    unlabelled: int
    rows: list[dict[str, Any]]

    primary = "auc"

    def to_json(self) -> dict[str, Any]:
        """The results, JSON-ready."""
        from recsmith.evaluation.classification import CLASSIFICATION_METRICS

        return {"task": "binary", "label": str(self.rule), "threshold": self.experiment.decision_threshold(),
                "split": self.split.describe() | {"unlabelled_test_pairs": self.unlabelled},
                "metrics": list(CLASSIFICATION_METRICS), "primary_metric": self.primary,
                "confidence": self.experiment.confidence, "results": self.rows}


def run_classification(data: TrainingData, experiment: Experiment, *,
                       progress: Callable[[str, str], None] | None = None, seed: int = 0,
                       fit_options: FitOptions | None = None) -> ClassificationRun:
    """Split the group's data by the experiment's protocol and measure each recipe as a classifier of the
    held-out pairs (labels from the experiment's rule on their ``EVENT_VALUE``).

    Parameters
    ----------
    data : TrainingData
        The group's data, with the feature tables its feature-aware recipes need
        (:func:`recsmith.jobs.training.training_data_for`).
    experiment : Experiment
        ``task = "binary"``: recipes, protocol, label rule, threshold, confidence. A recipe with a ``label``
        param (``fm``) is trained on the experiment's rule unless its params give another.
    progress : callable, optional
        Called with (recipe label, stage).
    seed : int
        Seed of the bootstrap resampling.
    fit_options : FitOptions, optional
        How every recipe is fitted (the device); default the CPU.

    Returns
    -------
    ClassificationRun
    """
    from recsmith.evaluation.classification import LabelledPairs, evaluate_classifiers

    if experiment.task != "binary":
        raise ConfigError(f"run_classification runs the binary task; this experiment's task is {experiment.task!r}")
    rule = experiment.label_rule()
    recipes = experiment.build()
    for entry in experiment.recipes:  # a recipe trained on a label rule (fm's binary objective) learns this one
        recipe = recipes[entry.label]
        if "label" in type(recipe).Params.model_fields and "label" not in entry.params:
            recipe.set_params(label=str(rule))
    split = make_split(data.interactions, experiment.protocol, **experiment.split)
    rows = evaluate_classifiers(recipes, data, split, rule, threshold=experiment.decision_threshold(),
                                confidence=experiment.confidence, n_resamples=experiment.bootstrap, seed=seed,
                                progress=progress, fit_options=fit_options)
    return ClassificationRun(experiment, split, rule, LabelledPairs.of(split.test, rule, "test").unlabelled, rows)


def write_classification_report(run: ClassificationRun, path: Path, *, title: str, context: dict[str, Any]) -> Path:
    """The HTML report of a binary-task run: the leaderboard with intervals, the reliability diagram and the
    fit-time plot."""
    from recsmith.evaluation.classification import CLASSIFICATION_METRICS, DEFINITIONS
    from recsmith.evaluation.report import write_report

    entries = [{"recipe": row["recipe"], "metrics": {name: row["ci"][name] for name in CLASSIFICATION_METRICS},
                "fit_seconds": row["fit_seconds"], "calibration": row["calibration"],
                "calibrated": row["calibrated"]} for row in run.rows]
    return write_report(path, entries, title=title, primary=run.primary, confidence=run.experiment.confidence,
                        context=context | {"task": f"binary, label {run.rule}",
                                           "threshold": run.experiment.decision_threshold()}
                        | run.split.describe() | {"unlabelled test pairs (left out)": run.unlabelled},
                        definitions=DEFINITIONS)
