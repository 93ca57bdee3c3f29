"""The Spark engine on ``local[2]``: ALS trained on Spark is an ordinary ``als`` solution version, as good as the
local one on MovieLens 100K, served by campaigns; one Spark session for the module."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.recipes.bundle import TrainedModel
from recsmith.settings import Settings
from recsmith.store.store import Store
from recsmith.testing import datasets_dir

pytestmark = pytest.mark.spark
pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install 'recsmith[spark]')")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java (17 or newer) on the PATH", allow_module_level=True)

from recsmith.engines.spark import SparkEngine, fit_als, ratings_frame, spark_session  # noqa: E402
from recsmith.jobs.export import export_dataset  # noqa: E402
from recsmith.jobs.training import train_solution_version  # noqa: E402
from recsmith.recipes import create  # noqa: E402
from recsmith.serving.campaign import CampaignRuntime  # noqa: E402

FACTORS = 32


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    with spark_session("local[2]") as session:
        yield session


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Settings]:
    folder = datasets_dir() / "ml-100k"
    if not (folder / "u.data").is_file():
        pytest.skip(f"MovieLens 100K not found at {folder}")
    from recsmith.datasets import load_dataset

    home = tmp_path_factory.mktemp("spark-home")
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.migrate()
    load_dataset(store, "ml-100k", "ml100k", path=folder)
    return store, settings


@pytest.fixture(scope="module")
def versions(spark: Any, ml100k: tuple[Store, Settings]) -> dict[str, dict[str, Any]]:
    """The same als solution trained locally and on Spark, each measured on the job's holdout (seed 42)."""
    store, settings = ml100k
    params = {"factors": FACTORS}
    return {"local": train_solution_version(store, settings, "ml100k", "als", params, solution_name="local"),
            "spark": train_solution_version(store, settings, "ml100k", "als", params, solution_name="spark",
                                            engine="spark", spark_master="local[2]")}


def test_spark_als_is_within_5_percent_of_local_als(versions: dict[str, dict[str, Any]]) -> None:
    local, spark = versions["local"], versions["spark"]
    assert local["metrics"]["protocol"] == spark["metrics"]["protocol"]  # the same holdout split
    assert spark["metrics"]["ndcg@10"] >= 0.95 * local["metrics"]["ndcg@10"], (spark["metrics"], local["metrics"])
    assert spark["metrics"]["ndcg@10"] > 0.35  # far above popularity (0.2 on this split)


def test_the_version_is_recorded_like_a_local_one(versions: dict[str, dict[str, Any]]) -> None:
    local, spark = versions["local"], versions["spark"]
    assert spark["status"] == local["status"] == "ACTIVE" and spark["fit_seconds"] > 0
    assert set(spark["metrics"]) == set(local["metrics"])
    assert (spark["num_users"], spark["num_items"], spark["num_interactions"]) == (943, 1682, 100_000)
    engine = spark["config"]["engine"]
    assert engine["name"] == "spark" and engine["master"] == "local[2]" and engine["spark_version"]
    assert "engine" not in local["config"]
    meta = json.loads((Path(spark["artifact_uri"]) / "meta.json").read_text())
    assert meta["engine"]["name"] == "spark" and meta["recipe"] == "als"


def test_the_artifact_is_a_local_als_artifact(versions: dict[str, dict[str, Any]]) -> None:
    local_dir, spark_dir = Path(versions["local"]["artifact_uri"]), Path(versions["spark"]["artifact_uri"])
    assert sorted(p.relative_to(spark_dir) for p in spark_dir.rglob("*")) == \
        sorted(p.relative_to(local_dir) for p in local_dir.rglob("*"))
    local, spark = TrainedModel.load(local_dir), TrainedModel.load(spark_dir)
    assert type(spark.recipe) is type(local.recipe) and spark.recipe.name == "als"
    assert spark.recipe.user_factors_.shape == (943, FACTORS) and spark.recipe.item_factors_.shape == (1682, FACTORS)
    assert np.isfinite(spark.recipe.user_factors_).all() and np.isfinite(spark.recipe.item_factors_).all()
    assert (spark.recipe.train_matrix_ != local.recipe.train_matrix_).nnz == 0  # the same weighted matrix
    assert list(spark.users.ids) == list(local.users.ids) and list(spark.items.ids) == list(local.items.ids)


def test_the_spark_version_serves_through_a_campaign(versions: dict[str, dict[str, Any]],
                                                     ml100k: tuple[Store, Settings]) -> None:
    store, _ = ml100k
    store.create_campaign("ml100k", "on-spark", versions["spark"]["id"])
    runtime = CampaignRuntime(store)
    runtime.sync()
    answer = runtime.recommend("ml100k", "on-spark", user_id="42", num_results=10)
    items = [item["item_id"] for item in answer["items"]]
    assert len(items) == 10 and len(set(items)) == 10
    assert {item["reason"] for item in answer["items"]} == {"personalized"}
    seen = set(store.user_history(store.get_dataset_group("ml100k").id, "42"))
    assert not seen & set(items)  # exclusions work on the artifact's training matrix
    similar = runtime.recommend("ml100k", "on-spark", item_id="50", num_results=5)
    assert len(similar["items"]) == 5


def test_cold_users_and_items_get_zero_factors(spark: Any) -> None:
    rows, cols = np.array([0, 0, 1, 2, 2, 4]), np.array([0, 1, 1, 2, 0, 3])
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(6, 5))  # user 3, 5; item 4
    state = fit_als(spark, create("als", factors=3, epochs=3).params, matrix)
    users, items = state["user_factors"], state["item_factors"]
    assert users.shape == (6, 3) and items.shape == (5, 3) and users.dtype == np.float32
    assert np.isfinite(users).all() and np.isfinite(items).all()
    assert not users[[3, 5]].any() and not items[4].any() and users[[0, 1, 2, 4]].any(axis=1).all()


def test_ratings_go_through_parquet_or_the_driver_alike(spark: Any, tmp_path: Path) -> None:
    matrix = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, -1.0, 0.0]], dtype=np.float32))
    by_file = ratings_frame(spark, matrix, 2.0, tmp_path).orderBy("user", "item").collect()
    by_driver = ratings_frame(spark, matrix, 2.0, None).orderBy("user", "item").collect()
    assert [tuple(r) for r in by_file] == [tuple(r) for r in by_driver] == [(0, 0, 0.5), (0, 2, 1.5), (1, 1, -0.5)]
    assert spark.sparkContext.getCheckpointDir()  # ALS's long lineages are checkpointed


def test_an_engine_given_a_session_keeps_it_running(spark: Any) -> None:
    engine = SparkEngine(session=spark)
    with engine:
        assert engine.describe()["master"] == "local[2]"
    assert spark.range(3).count() == 3


def test_the_export_feeds_spark(spark: Any, ml100k: tuple[Store, Settings], tmp_path: Path) -> None:
    store, _ = ml100k
    report = export_dataset(store, "ml100k", str(tmp_path / "interactions.parquet"))
    frame = spark.read.parquet(str(tmp_path / "interactions.parquet"))
    assert frame.count() == report.rows == 100_000
    assert frame.columns == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
