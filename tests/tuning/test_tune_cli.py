"""``recsmith tune`` end to end: tune on a dataset group, save the best params, train with them, resume."""

from __future__ import annotations

import json
import shlex

import pytest

from recsmith.recipes import recipe_class


def test_tune_then_train_with_the_saved_params_then_resume(movielens) -> None:
    args = ("tune", "--dataset-group", "ml", "--recipe", "als", "--param", "epochs=3", "-p", "factors=16", "--json")
    result = movielens(*args, "--trials", 3)
    assert result.exit_code == 0, result.output
    tuned = json.loads(result.stdout)
    assert (tuned["study_name"], tuned["metric"], tuned["direction"]) == ("ml:als:ndcg@10", "ndcg@10", "maximize")
    assert tuned["trials_run"] == tuned["total_trials"] == 3 and tuned["completed"] >= 1
    assert 0 < tuned["best_value"] < 1 and not tuned["interrupted"]
    best = tuned["best_params"]
    assert (best["epochs"], best["factors"]) == (3, 16) and set(tuned["tuned_params"]) == {"reg", "alpha"}
    assert tuned["search_space"]["reg"] == {"kind": "float", "low": 0.001, "high": 100.0, "log": True}
    assert tuned["solution"]["name"] == "als" and tuned["solution"]["params"] == best
    assert tuned["holdout"]["test_fraction"] == 0.2 and tuned["solution_version"] is None

    command = shlex.split(tuned["train_command"])
    assert command[:6] == ["recsmith", "train", "--dataset-group", "ml", "--recipe", "als"]
    trained = movielens(*command[1:], "--json")
    assert trained.exit_code == 0, trained.output
    version = json.loads(trained.stdout)
    assert version["status"] == "ACTIVE" and version["params"] == best and version["solution_name"] == "als"

    again = movielens(*args, "--trials", 2)
    assert again.exit_code == 0, again.output
    resumed = json.loads(again.stdout)
    assert (resumed["trials_run"], resumed["total_trials"]) == (2, 5)
    assert resumed["best_value"] >= tuned["best_value"]


def test_tune_and_train_in_one_go_and_ctrl_c(movielens, monkeypatch: pytest.MonkeyPatch) -> None:
    result = movielens("tune", "-g", "ml", "--recipe", "item-knn", "--trials", 2, "--study", "knn", "--train",
                       "--json")
    assert result.exit_code == 0, result.output
    tuned = json.loads(result.stdout)
    assert tuned["study_name"] == "knn"
    version = tuned["solution_version"]
    assert version["status"] == "ACTIVE" and version["params"] == tuned["best_params"]
    assert version["metrics"]["ndcg@10"] > 0.1

    human = movielens("tune", "-g", "ml", "--recipe", "item-knn", "--trials", 1, "--study", "knn")
    assert human.exit_code == 0, human.output
    assert "item-knn: best ndcg@10" in human.stdout and "3 in all" in human.stdout
    assert "next: recsmith train --dataset-group ml --recipe item-knn" in human.stdout

    klass = recipe_class("item-knn")
    real_fit, calls = klass._fit, []

    def fit_then_ctrl_c(self, data, options) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_fit(self, data, options)

    monkeypatch.setattr(klass, "_fit", fit_then_ctrl_c)
    stopped = movielens("tune", "-g", "ml", "--recipe", "item-knn", "--trials", 10, "--study", "knn", "--json")
    assert stopped.exit_code == 130
    said = " ".join(stopped.stderr.split())
    assert "interrupted after 3 trials" in said and "run the same command to go on" in said
    report = json.loads(stopped.stdout)
    assert report["interrupted"] and (report["completed"], report["failed"], report["total_trials"]) == (2, 1, 6)


def test_bad_settings_are_refused_before_reading_data(cli) -> None:
    cases = [
        (("--recipe", "popularity"), "'popularity' declares no search space, so it cannot be tuned; tunable"),
        (("--recipe", "als", "--metric", "auc"), "unknown metric 'auc' for tuning"),
        (("--recipe", "als", "--metric", "rmse"), "rmse needs a recipe that predicts ratings (svd, svdpp)"),
        (("--recipe", "als", "--trials", 0), "trials must be a positive integer, got 0"),
        (("--recipe", "als", "--param", "size=3"), "unknown param 'size'"),
        (("--recipe", "als"), "no dataset group 'nowhere'"),
    ]
    for args, message in cases:
        result = cli("tune", "--dataset-group", "nowhere", *args)
        assert result.exit_code == 1, result.output
        assert message in " ".join(result.stderr.split())
