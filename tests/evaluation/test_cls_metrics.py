"""Classification evaluation: the numpy metrics against scikit-learn, user-bootstrap intervals, Platt scaling on
training pairs, the ratings-per-user protocol, label rules and protocols that make no sense."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsmith.data.labels import parse_label_rule
from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.classification import (
    PlattScaling,
    calibration_bins,
    classification_summary,
    evaluate_classifiers,
    log_loss,
    roc_auc,
    threshold_metrics,
)
from recsmith.evaluation.experiment import Experiment
from recsmith.evaluation.split import make_split
from recsmith.evaluation.stats import bootstrap_group_counts, bootstrap_grouped_ci
from recsmith.recipes import create
from recsmith.recipes.base import Recipe, RecipeParams
from recsmith.recipes.options import FitOptions
from recsmith.testing import synthetic_interactions


def random_case(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, rounded scores (many ties), probabilities in (0, 1) and integer weights."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.35
    scores = np.round(rng.normal(size=n) + 0.8 * labels, 1)
    probabilities = 1.0 / (1.0 + np.exp(-scores))
    weights = rng.integers(0, 4, n).astype(np.float64)
    return labels, scores, probabilities, weights


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn(seed: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    labels, scores, probabilities, weights = random_case(seed)
    for w in (None, weights):
        assert roc_auc(labels, scores, w) == pytest.approx(
            metrics.roc_auc_score(labels, scores, sample_weight=w), abs=1e-9)
        assert log_loss(labels, probabilities, w) == pytest.approx(
            metrics.log_loss(labels, probabilities, sample_weight=w), abs=1e-9)
        for threshold in (0.3, 0.5, 0.7):
            ours = threshold_metrics(labels, probabilities, threshold, w)
            predicted = probabilities >= threshold
            theirs = {"accuracy": metrics.accuracy_score(labels, predicted, sample_weight=w),
                      "precision": metrics.precision_score(labels, predicted, sample_weight=w, zero_division=0),
                      "recall": metrics.recall_score(labels, predicted, sample_weight=w, zero_division=0),
                      "f1": metrics.f1_score(labels, predicted, sample_weight=w, zero_division=0)}
            for name, value in theirs.items():
                assert ours[name] == pytest.approx(value, abs=1e-9), name
    # rows of weights: one value per row, each the weighted statistic
    rows = np.stack([weights, np.ones_like(weights), weights[::-1]])
    assert np.allclose(roc_auc(labels, scores, rows),
                       [metrics.roc_auc_score(labels, scores, sample_weight=row) for row in rows], atol=1e-9)
    nothing_predicted = threshold_metrics(labels, np.full(len(labels), 0.1), 0.5)
    assert nothing_predicted["precision"] == nothing_predicted["f1"] == 0.0


def test_reliability_bins_match_calibration_curve() -> None:
    calibration = pytest.importorskip("sklearn.calibration")
    labels, _, probabilities, _ = random_case(3)
    probabilities = np.r_[probabilities, 0.1, 0.2, 0.0, 1.0]  # on bin edges, as calibration_curve bins them
    labels = np.r_[labels, True, False, False, True]
    bins = calibration_bins(labels, probabilities, 10)
    true, predicted = calibration.calibration_curve(labels, probabilities, n_bins=10)
    assert np.allclose([b["fraction_positive"] for b in bins], true, atol=1e-12)
    assert np.allclose([b["mean_predicted"] for b in bins], predicted, atol=1e-12)
    assert sum(b["count"] for b in bins) == len(labels)


def test_platt_scaling_is_the_unpenalised_logistic_regression() -> None:
    linear = pytest.importorskip("sklearn.linear_model")
    labels, scores, _, _ = random_case(4)
    raw = 3.0 * scores + 7.0  # an arbitrary scale: a predicted rating, a ranking score
    platt = PlattScaling.fit(raw, labels)
    reference = linear.LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000).fit(raw[:, None], labels)
    assert np.allclose(platt.predict(raw), reference.predict_proba(raw[:, None])[:, 1], atol=1e-6)
    with pytest.raises(DataError, match="both labels"):
        PlattScaling.fit(raw, np.ones(len(raw), dtype=bool))


def test_intervals_resample_users_and_contain_the_estimate() -> None:
    labels, scores, probabilities, _ = random_case(5, n=2000)
    users = np.repeat(np.arange(200), 10)
    summary = classification_summary(labels, probabilities, scores, users, threshold=0.5, n_resamples=300, seed=1)
    assert list(summary) == ["auc", "log_loss", "accuracy", "precision", "recall", "f1"]
    for name, value in summary.items():
        assert value["ci_low"] <= value["mean"] <= value["ci_high"], name
        assert value["ci_high"] - value["ci_low"] < 0.15, name
    assert summary == classification_summary(labels, probabilities, scores, users, n_resamples=300, seed=1)
    counts = np.concatenate(list(bootstrap_group_counts(7, n_resamples=50, seed=0, row_cells=1 << 21)))
    assert counts.shape == (50, 7) and (counts.sum(axis=1) == 7).all()
    # users that always agree: resampling users (not pairs) widens the interval of a mean over pairs
    clustered = np.repeat(np.random.default_rng(0).normal(size=200), 10)

    def mean(w: np.ndarray) -> np.ndarray:
        return w @ clustered / w.sum(axis=1)

    by_user = bootstrap_grouped_ci(mean, users, n_resamples=300)
    by_pair = bootstrap_grouped_ci(mean, np.arange(len(users)), n_resamples=300)
    assert by_user[1] - by_user[0] > 2 * (by_pair[1] - by_pair[0])


def test_ratings_per_user_holds_out_n_of_each_user() -> None:
    data = synthetic_interactions(n_users=80, n_items=60, density=0.2, seed=3)
    split = make_split(data, "ratings-per-user", n=4, seed=7)
    per_user = np.diff(split.test.matrix.indptr)
    history = np.diff(data.matrix.indptr)
    assert set(per_user[per_user > 0]) == {4}
    assert ((per_user == 4) == (history >= 5)).all()  # users with n or fewer pairs keep them all in train
    assert split.skipped_users == int(((history > 0) & (history < 5)).sum())
    assert split.train.nnz + split.test.nnz == data.nnz
    again = make_split(data, "ratings_per_user", n=4, seed=7)
    assert (again.test.matrix != split.test.matrix).nnz == 0
    assert (make_split(data, "ratings-per-user", n=4, seed=8).test.matrix != split.test.matrix).nnz > 0
    assert make_split(data, "ratings-per-user").options == {"n": 10, "seed": 42, "min_interactions": 2}
    with pytest.raises(ConfigError, match="n >= 1"):
        make_split(data, "ratings-per-user", n=0)


def rated_data(seed: int = 0, n_users: int = 120, n_items: int = 80) -> TrainingData:
    """Ratings where an item's QUALITY (an item feature) decides whether users rate it 4+; some pairs unrated."""
    rng = np.random.default_rng(seed)
    quality = rng.random(n_items)
    rows = []
    for user in range(n_users):
        for item in rng.choice(n_items, 25, replace=False):
            rating = float(np.clip(np.round(1 + 4 * quality[item] + rng.normal(0, 0.7)), 1, 5))
            rows.append((f"u{user}", f"i{item}", rating if rng.random() > 0.03 else np.nan))
    events = pd.DataFrame(rows, columns=["user", "item", "rating"])
    items = pd.DataFrame({"item": [f"i{i}" for i in range(n_items)], "QUALITY": quality})
    return TrainingData.from_frame(events, items, user="user", item="item", value="rating",
                                   item_schema={"type": "record", "name": "Items", "fields": [
                                       {"name": "ITEM_ID", "type": "string"}, {"name": "QUALITY", "type": "float"}]})


class QualityParams(RecipeParams):
    """No params."""


class QualityProbability(Recipe):
    """A feature-aware test recipe: the probability of a 4+ rating is the item's QUALITY feature."""

    name = "quality"
    Params = QualityParams
    tags = dataclasses.replace(Recipe.tags, uses_item_features=True)

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        if "QUALITY" not in data.item_features:
            raise DataError("fitted without the item features")
        self.quality_ = np.nan_to_num(data.item_features["QUALITY"].values, nan=0.5).astype(np.float32)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return np.broadcast_to(self.quality_, (histories.shape[0], len(self.quality_)))

    @property
    def score_is_probability(self) -> bool:
        return True


def test_evaluate_classifiers_calibrates_on_training_pairs_and_keeps_features() -> None:
    data = rated_data()
    split = make_split(data.interactions, "ratings-per-user", n=5)
    rule = parse_label_rule("EVENT_VALUE >= 4")
    recipes = {"svd": create("svd", epochs=5), "quality": QualityProbability(), "popularity": create("popularity")}
    rows = evaluate_classifiers(recipes, data, split, rule, n_resamples=200)
    by_name = {row["recipe"]: row for row in rows}
    assert rows[0]["recipe"] == "quality" and by_name["quality"]["auc"] > 0.85  # fitted with the feature table
    assert by_name["quality"]["calibrated"].startswith("none") and by_name["quality"]["platt"] is None
    assert by_name["svd"]["calibrated"] == "platt on training pairs" and by_name["svd"]["platt"]["slope"] > 0
    unrated = int(np.isnan(split.test.values).sum())
    assert unrated > 0
    for row in rows:
        assert row["pairs"] == split.test.nnz - unrated and row["users"] == 120
        assert row["positives"] == int(rule.apply(split.test.values).sum())
        assert 0.0 < row["log_loss"] < 1.0 and sum(b["count"] for b in row["calibration"]) == row["pairs"]
        for name in ("auc", "log_loss", "accuracy", "precision", "recall", "f1"):
            assert row["ci"][name]["ci_low"] <= row[name] <= row["ci"][name]["ci_high"]
    # Platt is fitted on the training pairs: refitting it on them gives the same calibration
    train = split.train
    users = np.repeat(np.arange(train.n_users), np.diff(train.matrix.indptr))
    rated = np.isfinite(train.values)
    scores = recipes["svd"].score(users[rated], train.matrix.indices[rated])
    refit = PlattScaling.fit(scores, rule.apply(train.values[rated]))
    assert refit.slope == pytest.approx(by_name["svd"]["platt"]["slope"], rel=1e-9)


def test_protocols_and_labels_that_make_no_sense() -> None:
    data = rated_data(n_users=40)
    rule = parse_label_rule("EVENT_VALUE >= 4")
    users_split = make_split(data.interactions, "users", test_users=5)
    with pytest.raises(ConfigError, match="holds out whole users"):
        evaluate_classifiers({"popularity": create("popularity")}, data, users_split, rule)
    split = make_split(data.interactions, "ratings-per-user", n=5)
    with pytest.raises(DataError, match="all .* negative under label rule 'EVENT_VALUE > 9'"):
        evaluate_classifiers({"popularity": create("popularity")}, data, split, parse_label_rule("EVENT_VALUE > 9"))
    with pytest.raises(ConfigError, match="threshold"):
        evaluate_classifiers({"popularity": create("popularity")}, data, split, rule, threshold=1.5)


@pytest.mark.parametrize(("data", "expected"), [
    ({"task": "binary", "label": "rating >= 4"}, "field 'rating'"),
    ({"task": "binary", "label": "EVENT_VALUE >> 4"}, "'EVENT_VALUE >> 4'"),
    ({"task": "binary", "threshold": 0.0}, "threshold"),
    ({"task": "binary", "protocol": "users"}, "users protocol holds out whole users"),
    ({"task": "binary", "metrics": ["ndcg@10"]}, "metrics is a ranking option"),
    ({"task": "binary", "k": 5}, "k is a ranking option"),
    ({"task": "multiclass"}, "unknown task 'multiclass'"),
    ({"label": "EVENT_VALUE >= 4"}, "option of the binary task"),
])
def test_bad_experiments_name_the_problem(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        Experiment.parse({"recipes": [{"recipe": "svd"}], **data}, source="exp.toml")


def test_the_binary_task_defaults_to_ten_ratings_per_user() -> None:
    experiment = Experiment.parse({"recipes": [{"recipe": "svd"}], "task": "binary"})
    assert experiment.protocol == "ratings-per-user" and str(experiment.label_rule()) == "EVENT_VALUE >= 4"
    assert experiment.decision_threshold() == 0.5
    chosen = Experiment.parse({"recipes": [{"recipe": "svd"}], "task": "binary", "protocol": "leave_last",
                               "label": "event_value > 3", "threshold": 0.3})
    assert chosen.protocol == "leave-last" and str(chosen.label_rule()) == "EVENT_VALUE > 3"
    assert Experiment.parse({"recipes": [{"recipe": "svd"}]}).protocol == "random"  # the ranking task's default
