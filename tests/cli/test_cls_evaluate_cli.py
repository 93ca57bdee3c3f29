"""recsmith evaluate --task binary: recipes' pair scores as classifiers of held-out ratings, table, JSON, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

METRICS = ["auc", "log_loss", "accuracy", "precision", "recall", "f1"]


def test_binary_task_on_movielens(movielens, tmp_path: Path) -> None:
    report = tmp_path / "binary.html"
    result = movielens("evaluate", "-g", "ml", "--task", "binary", "--recipes", "svd,popularity",
                       "--param", "svd.epochs=5", "--report", report, "--json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["task"] == "binary" and run["label"] == "EVENT_VALUE >= 4" and run["threshold"] == 0.5
    assert run["metrics"] == METRICS and run["primary_metric"] == "auc"
    split = run["split"]  # ml-latest-small's 671 users each rated 20+ movies: 10 held out of each
    assert split["protocol"] == "ratings-per-user" and split["n"] == 10 and split["seed"] == 42
    assert split["evaluated_users"] == 671 and split["test_pairs"] == 6710 and split["unlabelled_test_pairs"] == 0
    rows = {row["recipe"]: row for row in run["results"]}
    assert [row["recipe"] for row in run["results"]] == ["svd", "popularity"]  # best AUC first
    assert 0.7 < rows["svd"]["auc"] < 0.85 and rows["svd"]["auc"] > rows["popularity"]["auc"] > 0.5
    for row in rows.values():
        assert row["calibrated"] == "platt on training pairs" and row["pairs"] == 6710
        for name in METRICS:
            assert row["ci"][name]["ci_low"] <= row[name] <= row["ci"][name]["ci_high"]
        assert sum(entry["count"] for entry in row["calibration"]) == 6710
    html = report.read_text()
    assert "calibration reliability diagram" in html and "Calibration (reliability diagram)" in html
    assert "log_loss ↓" in html and "platt" in html and "ratings-per-user" in html


def test_binary_table_and_options(movielens) -> None:
    result = movielens("evaluate", "-g", "ml", "--task", "binary", "--recipes", "popularity", "--n", "5",
                       "--label", "EVENT_VALUE > 3.5", "--threshold", "0.6")
    assert result.exit_code == 0, result.output
    for text in ("AUC", "log loss", "accuracy", "precision", "recall", "F1", "label EVENT_VALUE > 3.5",
                 "calibrated: platt on training pairs", "threshold 0.6", "3,355 pairs"):
        assert text in result.stdout, text


@pytest.mark.parametrize(("args", "expected"), [
    (["--label", "stars >= 4"], "field 'stars'"),
    (["--label", "EVENT_VALUE is high"], "label rule 'EVENT_VALUE is high'"),
    (["--threshold", "1.5"], "threshold"),
    (["--protocol", "users"], "users protocol holds out whole users"),
    (["--metrics", "ndcg@10"], "metrics is a ranking option"),
    (["--sampled-negatives", "10"], "sampled_negatives is a ranking option"),
    (["--task", "regression"], "unknown task 'regression'"),
])
def test_bad_binary_options_fail_before_training(cli, tmp_path: Path, args: list[str], expected: str) -> None:
    rated_group(cli, tmp_path)
    result = cli("evaluate", "-g", "small", "--task", "binary", "--recipes", "popularity", *args)
    assert result.exit_code == 1 and expected in result.stderr, result.output
    assert "Traceback" not in result.output


def test_label_options_need_the_binary_task_and_ratings(cli, tmp_path: Path) -> None:
    rated_group(cli, tmp_path)
    ranking = cli("evaluate", "-g", "small", "--recipes", "popularity", "--label", "EVENT_VALUE >= 4")
    assert ranking.exit_code == 1 and "--task binary" in ranking.stderr
    folds = cli("evaluate", "-g", "small", "--folds", "3", "--task", "binary")
    assert folds.exit_code == 1 and "--task" in folds.stderr
    path = tmp_path / "clicks.csv"
    path.write_text("user,item,t\n" + "".join(f"u{u},i{(u * 7 + j) % 30},{1000 + j}\n" for u in range(20)
                                               for j in range(12)))
    imported = cli("import", "interactions", path, "-g", "clicks", "--map", "user=USER_ID,item=ITEM_ID,t=TIMESTAMP")
    assert imported.exit_code == 0, imported.output
    unrated = cli("evaluate", "-g", "clicks", "--task", "binary", "--recipes", "popularity")
    assert unrated.exit_code == 1 and "EVENT_VALUE" in unrated.stderr, unrated.output
    json_run = cli("evaluate", "-g", "small", "--task", "binary", "--recipes", "popularity", "--json")
    assert json_run.exit_code == 0, json_run.output
    run = json.loads(json_run.stdout)
    assert run["split"]["unlabelled_test_pairs"] > 0  # pairs without a rating are held out, then left out
    assert run["results"][0]["pairs"] == run["split"]["test_pairs"] - run["split"]["unlabelled_test_pairs"]
    experiment = tmp_path / "binary.toml"
    experiment.write_text('task = "binary"\nlabel = "EVENT_VALUE >= 3"\nthreshold = 0.4\nprotocol = "random"\n'
                          '[split]\ntest_fraction = 0.3\n[[recipes]]\nrecipe = "popularity"\n')
    from_file = cli("evaluate", "-g", "small", "--experiment", experiment, "--json")
    assert from_file.exit_code == 0, from_file.output
    run = json.loads(from_file.stdout)
    assert (run["label"], run["threshold"], run["split"]["protocol"]) == ("EVENT_VALUE >= 3", 0.4, "random")


def rated_group(cli, tmp_path: Path) -> None:
    """A small group 'small': 40 users × 25 ratings, a few without a value."""
    rng = np.random.default_rng(0)
    lines = ["user,item,rating,timestamp"]
    for user in range(40):
        for number, item in enumerate(rng.choice(60, 25, replace=False)):
            rating = "" if rng.random() < 0.05 else str(int(rng.integers(1, 6)))
            lines.append(f"u{user},i{item},{rating},{1000 + number}")
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    result = cli("import", "interactions", path, "-g", "small", "--map",
                 "user=USER_ID,item=ITEM_ID,rating=EVENT_VALUE,timestamp=TIMESTAMP")
    assert result.exit_code == 0, result.output


@pytest.mark.torch
def test_a_probability_recipe_is_not_calibrated(cli, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    rated_group(cli, tmp_path)
    result = cli("evaluate", "-g", "small", "--task", "binary", "--recipes", "fm,popularity", "--label",
                 "EVENT_VALUE >= 3", "--param", "fm.objective=binary", "--param", "fm.epochs=2", "--param",
                 "fm.factors=8", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["recipe"]: row for row in json.loads(result.stdout)["results"]}
    assert rows["fm"]["calibrated"] == "none (its scores are probabilities)" and rows["fm"]["platt"] is None
    assert rows["popularity"]["calibrated"] == "platt on training pairs"
