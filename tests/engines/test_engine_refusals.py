"""Engines without Spark: the FitEngine hook of Recipe.fit, the ALS→Spark mapping, and what is refused before any
work (a missing spark extra, a recipe Spark does not train, a cluster master without a checkpoint directory)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recsmith.data.training import TrainingData
from recsmith.engines import make_engine
from recsmith.engines.spark import INSTALL_HINT, als_settings, check_recipe, spark_ratings
from recsmith.errors import ConfigError
from recsmith.recipes import FitOptions, create, load_recipe
from recsmith.recipes.factorization import ALS
from recsmith.testing import synthetic_interactions


class FixedEngine:
    """A FitEngine that 'trains' by handing back fixed factors (what an outside engine returns)."""

    name = "fixed"

    def __init__(self) -> None:
        self.fits = 0

    def check(self, recipe: type, options: FitOptions) -> None:
        if recipe.name != "als":
            raise ConfigError(f"fixed trains als, not {recipe.name}")

    def learned_state(self, recipe: Any, data: TrainingData, options: FitOptions) -> dict[str, np.ndarray]:
        self.fits += 1
        n_users, n_items = data.interactions.matrix.shape
        rng = np.random.default_rng(0)
        return {"user_factors": rng.normal(size=(n_users, recipe.params.factors)).astype(np.float32),
                "item_factors": rng.normal(size=(n_items, recipe.params.factors)).astype(np.float32)}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def test_an_engine_sets_the_learned_state_of_an_ordinary_recipe(tmp_path: Path) -> None:
    data = synthetic_interactions()
    engine = FixedEngine()
    seen: list[tuple[int, int]] = []
    recipe = create("als", factors=4).fit(data, FitOptions(engine=engine, progress=lambda d, t: seen.append((d, t))))
    assert engine.fits == 1 and isinstance(recipe, ALS)
    assert recipe.user_factors_.shape == (data.n_users, 4) and recipe.item_factors_.flags.c_contiguous
    assert (recipe.train_matrix_ != data.matrix.astype(np.float32)).nnz == 0  # the matrix a local fit keeps
    assert seen == [(0, recipe.params.epochs), (recipe.params.epochs, recipe.params.epochs)]
    loaded = load_recipe(recipe.save(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.recommend([0, 1], 5).ids, recipe.recommend([0, 1], 5).ids)
    saved = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert "engine" not in json.dumps(saved)  # options (the engine too) are never saved with the model


def test_an_engine_refuses_what_it_cannot_train() -> None:
    with pytest.raises(ConfigError, match="fixed trains als, not item-knn"):
        create("item-knn").fit(synthetic_interactions(), FitOptions(engine=FixedEngine()))
    with pytest.raises(ConfigError, match="engine must be a FitEngine"):
        FitOptions(engine=object())  # type: ignore[arg-type]


def test_spark_ratings_give_the_local_confidences() -> None:
    alpha = 2.0
    weights = np.array([1.0, 3.0, 0.25, -2.0, -0.25], dtype=np.float32)
    ratings = spark_ratings(weights, alpha)
    strong = np.abs(weights) * alpha > 1
    # Spark: confidence 1 + alpha·|r|; the local fit (implicit): alpha·|w|; preference r > 0 iff w > 0
    np.testing.assert_allclose(1 + alpha * np.abs(ratings[strong]), alpha * np.abs(weights[strong]), rtol=1e-6)
    assert ratings[0] > 0 and ratings[2] > 0 and ratings[3] < 0 and ratings[4] == 0


def test_spark_regularisation_keeps_the_mean_penalty() -> None:
    data = synthetic_interactions(n_users=60, n_items=40)
    settings = als_settings(create("als", factors=8, reg=3.0, epochs=7, seed=5).params, data.matrix)
    per_user = data.matrix.nnz / data.n_users
    per_item = data.matrix.nnz / data.n_items
    assert settings["regParam"] == pytest.approx(3.0 / np.sqrt(per_user * per_item))
    assert settings | {"regParam": 0} == {"rank": 8, "maxIter": 7, "regParam": 0, "alpha": 2.0, "seed": 5,
                                          "implicitPrefs": True, "nonnegative": False}


def test_only_als_trains_on_spark() -> None:
    with pytest.raises(ConfigError, match=r"recipe item-knn cannot train on the Spark engine; it trains als"):
        check_recipe("item-knn")
    with pytest.raises(ConfigError, match="unknown engine 'flink'; use one of local, spark"):
        make_engine("flink", "als")
    with pytest.raises(ConfigError, match="add --engine spark"):
        make_engine("local", "als", master="local[2]")


def _hide_pyspark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import pyspark`` fail as it does where the spark extra is not installed."""
    for name in [name for name in sys.modules if name == "pyspark" or name.startswith("pyspark.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("pyspark", "pyspark.ml", "pyspark.ml.recommendation", "pyspark.sql"):
        monkeypatch.setitem(sys.modules, name, None)


def test_a_missing_spark_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_pyspark(monkeypatch)
    with pytest.raises(ConfigError) as caught:
        make_engine("spark", "als")
    assert INSTALL_HINT in str(caught.value) and "--engine local" in str(caught.value)


def test_train_cli_refuses_before_any_work(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    result = cli("datasets", "synthetic", "-g", "s", "--users", "40", "--items", "20", "--interactions", "400")
    assert result.exit_code == 0, result.output

    def refused(*args: str) -> str:
        result = cli("train", "-g", "s", *args)
        assert result.exit_code == 1, result.output
        return " ".join(result.output.split())

    assert "recipe item-knn cannot train on the Spark engine" in refused("--recipe", "item-knn", "--engine", "spark")
    assert "needs a checkpoint directory" in refused("--recipe", "als", "--engine", "spark", "--spark-master",
                                                      "spark://10.0.0.1:7077")
    assert "add --engine spark" in refused("--recipe", "als", "--spark-conf", "spark.driver.memory=2g")
    assert "--spark-conf takes KEY=VALUE" in refused("--recipe", "als", "--engine", "spark", "--spark-conf", "x")
    _hide_pyspark(monkeypatch)
    assert INSTALL_HINT in refused("--recipe", "als", "--engine", "spark")
    listed = cli("solution-versions", "list", "--json")
    assert json.loads(listed.stdout) == []  # nothing was recorded, not even a failed version


def test_batch_inference_on_spark_without_the_extra_is_refused(cli, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path) -> None:
    result = cli("datasets", "synthetic", "-g", "s", "--users", "40", "--items", "20", "--interactions", "400")
    assert result.exit_code == 0, result.output
    result = cli("train", "-g", "s", "--recipe", "item-knn", "--no-metrics", "--json")
    version = json.loads(result.stdout)["id"]
    _hide_pyspark(monkeypatch)
    result = cli("batch-inference", "create", "-g", "s", "--solution-version", version, "--all-users", "-o",
                 tmp_path / "out.jsonl", "--engine", "spark")
    assert result.exit_code == 1
    assert INSTALL_HINT in " ".join(result.stderr.split())
    assert json.loads(cli("batch-inference", "list", "-g", "s", "--json").stdout) == []
