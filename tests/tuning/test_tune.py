"""tune_recipe: TPE trials on a validation slice, pruning, resumable studies in the store's database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError
from recsmith.recipes import create, recipe_class
from recsmith.recipes.base import FloatRange
from recsmith.store.store import Store
from recsmith.testing import synthetic_interactions
from recsmith.tuning import TrialReport, study_storage, tune_recipe

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def data() -> Interactions:
    return synthetic_interactions(n_users=150, n_items=60)


def test_tunes_ease_on_a_validation_slice(data: Interactions) -> None:
    reports: list[TrialReport] = []
    result = tune_recipe("ease", data, trials=5, seed=3, callback=reports.append)
    values = [t.value for t in result.study.trials]
    assert result.direction == "maximize" and result.study_name == "ease:ndcg@10" and result.storage == "memory"
    assert result.best_value == max(values) > 0
    assert result.study.trials[0].params == {"reg": 250.0}  # the defaults go first, as a baseline
    assert result.default_value == values[0] <= result.best_value
    assert result.best_params == create("ease", reg=result.tuned_params["reg"]).get_params()
    assert (result.trials_run, result.completed, result.pruned, result.failed, result.total_trials) == (5, 5, 0, 0, 5)
    assert [r.done for r in reports] == [1, 2, 3, 4, 5] and reports[-1].best_value == result.best_value
    assert reports[-1].time_left == 0 and reports[0].time_left > 0
    assert result.to_json()["search_space"] == {"reg": {"kind": "float", "low": 1.0, "high": 10_000.0, "log": True}}
    assert "study" not in result.to_json()


def test_the_same_seed_gives_the_same_trials(data: Interactions) -> None:
    first = tune_recipe("item-knn", data, trials=4, seed=7)
    again = tune_recipe("item-knn", data, trials=4, seed=7)
    other = tune_recipe("item-knn", data, trials=4, seed=8)
    params = [[t.params for t in r.study.trials] for r in (first, again, other)]
    assert params[0] == params[1] != params[2]
    assert [t.value for t in first.study.trials] == [t.value for t in again.study.trials]


def test_fixed_params_are_not_searched(data: Interactions) -> None:
    result = tune_recipe("als", data, trials=3, fixed_params={"factors": 4, "epochs": 3})
    assert all(set(t.params) == {"reg", "alpha"} for t in result.study.trials)
    assert result.best_params["factors"] == 4 and result.best_params["epochs"] == 3
    assert set(result.search_space) == {"reg", "alpha"}


def test_a_study_resumes_in_the_store_database(data: Interactions, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'recsmith.db'}"
    store = Store(url)
    store.migrate()
    store.create_dataset_group("g")
    first = tune_recipe("rp3beta", data, trials=3, storage_url=url, study_name="g:rp3beta:ndcg@10")
    again = tune_recipe("rp3beta", data, trials=2, storage_url=url, study_name="g:rp3beta:ndcg@10")
    assert (first.total_trials, again.total_trials, again.trials_run) == (3, 5, 2)
    assert again.best_value >= first.best_value
    study = optuna.load_study(study_name="g:rp3beta:ndcg@10", storage=study_storage(url))
    assert len(study.trials) == 5
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == 5  # the resumed run did not draw the first run's points again
    store.migrate()  # the store and the studies share the database and its Alembic bookkeeping
    assert store.get_dataset_group("g").name == "g"
    store.close()


def test_studies_in_a_fresh_database_leave_room_for_the_store(data: Interactions, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    tune_recipe("ease", data, trials=1, storage_url=url)
    store = Store(url)
    store.migrate()
    assert store.create_dataset_group("later").name == "later"
    store.close()
    assert tune_recipe("ease", data, trials=1, storage_url=url).total_trials == 2


def test_resuming_with_other_settings_is_refused(data: Interactions, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'recsmith.db'}"
    tune_recipe("als", data, trials=1, storage_url=url, study_name="s", fixed_params={"epochs": 2})
    with pytest.raises(ConfigError, match=r"study 's' was run with metric 'ndcg@10', not 'recall@5'"):
        tune_recipe("als", data, trials=1, storage_url=url, study_name="s", metric="recall@5",
                    fixed_params={"epochs": 2})
    with pytest.raises(ConfigError, match="was run with fixed_params"):
        tune_recipe("als", data, trials=1, storage_url=url, study_name="s", fixed_params={"epochs": 3})
    with pytest.raises(ConfigError, match="was run with recipe 'als', not 'bpr'"):
        tune_recipe("bpr", data, trials=1, storage_url=url, study_name="s", fixed_params={"epochs": 2})


@pytest.mark.parametrize("recipe, space, fixed", [
    ("als", {"reg": FloatRange(low=1e-2, high=1e5, log=True)}, {"factors": 8, "epochs": 10}),
    ("bpr", {"learning_rate": FloatRange(low=1e-6, high=0.1, log=True)}, {"factors": 16, "epochs": 40}),
])
def test_pruning_stops_trials_of_a_bad_region(data: Interactions, recipe: str, space: dict, fixed: dict) -> None:
    result = tune_recipe(recipe, data, trials=20, space=space, fixed_params=fixed)
    pruned = result.study.get_trials(states=(TrialState.PRUNED,))
    assert result.pruned == len(pruned) >= 1
    assert all(t.last_step is not None and t.last_step < fixed["epochs"] for t in pruned)
    assert result.completed + result.pruned == 20
    complete = result.study.get_trials(states=(TrialState.COMPLETE,))
    assert all(set(t.intermediate_values) <= set(range(1, fixed["epochs"])) for t in complete)


def test_rating_recipes_minimise_rmse() -> None:
    rng = np.random.default_rng(0)
    users, items = np.nonzero(rng.random((80, 40)) < 0.4)
    taste = rng.normal(0, 1, 80)[users] * rng.normal(0, 1, 40)[items]
    frame = pd.DataFrame({"user": users, "item": items, "rating": np.clip(3 + taste, 1, 5)})
    rated = Interactions.from_frame(frame, user="user", item="item", value="rating")
    result = tune_recipe("svd", rated, metric="rmse", trials=4, fixed_params={"epochs": 4})
    assert result.direction == "minimize"
    assert result.best_value == min(t.value for t in result.study.trials) < 1.5


def test_ctrl_c_keeps_the_finished_trials(data: Interactions, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'recsmith.db'}"

    def interrupt(report: TrialReport) -> None:
        if report.done == 2:
            raise KeyboardInterrupt

    result = tune_recipe("ease", data, trials=10, storage_url=url, callback=interrupt)
    assert result.interrupted and result.trials_run == 2 and result.total_trials == 2
    assert len(optuna.load_study(study_name="ease:ndcg@10", storage=study_storage(url)).trials) == 2


def test_bad_inputs_fail_before_any_training(data: Interactions, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_training(*args: object) -> None:
        raise AssertionError("trained")

    for name in ("als", "ease"):
        monkeypatch.setattr(recipe_class(name), "_fit", no_training)
    cases = [
        (dict(recipe="nope"), r"unknown recipe 'nope'; tunable recipes: als, bpr, ease"),
        (dict(recipe="popularity"), r"'popularity' declares no search space.*tunable recipes: als"),
        (dict(metric="ndcg"), r"unknown metric 'ndcg'.*ndcg@K"),
        (dict(metric="coverage@10"), r"unknown metric 'coverage@10'.*precision@K, recall@K, recall_capped@K, ndcg@K"),
        (dict(metric="ndcg@0"), "cut-off after '@' must be a positive integer"),
        (dict(metric="rmse"), r"rmse needs a recipe that predicts ratings \(svd, svdpp\)"),
        (dict(trials=0), "trials must be a positive integer, got 0"),
        (dict(trials=-3), "got -3"),
        (dict(trials=True), "got True"),
        (dict(timeout=0), "timeout must be a positive number"),
        (dict(validation_fraction=1.0), "validation_fraction must be between 0 and 1"),
        (dict(fixed_params={"size": 3}), r"unknown param 'size' \(params of als: factors"),
        (dict(fixed_params={"factors": 0}), "param factors=0"),
        (dict(recipe="ease", fixed_params={"reg": 10.0}), "every param of ease's search space is fixed"),
    ]
    for overrides, message in cases:
        kwargs = {"recipe": "als"} | overrides
        with pytest.raises(ConfigError, match=message):
            tune_recipe(kwargs.pop("recipe"), data, trials=kwargs.pop("trials", 2), **kwargs)
    with pytest.raises(DataError, match="needs an Interactions object"):
        tune_recipe("als", data.matrix, trials=2)  # type: ignore[arg-type]
