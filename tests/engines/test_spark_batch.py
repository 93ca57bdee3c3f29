"""Batch inference on Spark (``local[2]``) writes what the local job writes, line for line, from JSON Lines and
Parquet input; the CLI takes ``--engine spark``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.spark
pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install 'recsmith[spark]')")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java (17 or newer) on the PATH", allow_module_level=True)

from recsmith.datasets import load_dataset  # noqa: E402
from recsmith.jobs.batch import create_batch_inference_job, run_batch_job  # noqa: E402
from recsmith.jobs.training import train_solution_version  # noqa: E402
from recsmith.settings import Settings  # noqa: E402
from recsmith.store.store import Store  # noqa: E402


@pytest.fixture(scope="module")
def movies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Settings, int, Path]:
    home = tmp_path_factory.mktemp("spark-batch") / "home"
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.migrate()
    load_dataset(store, "ml-latest-small", "movies")
    version = train_solution_version(store, settings, "movies", "item-knn", with_metrics=False)["id"]
    store.create_filter("movies", "no-drama", 'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")')
    folder = home.parent
    lines = [{"userId": str(user)} for user in range(1, 300)] + [
        {"userId": "nobody"}, {"itemId": "1"}, {"userId": "5", "itemList": ["1", "2", "3"]}]
    (folder / "in.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines) + "{broken\n")
    pq.write_table(pa.Table.from_pylist([{"userId": line.get("userId"), "itemId": line.get("itemId")}
                                         for line in lines if "itemList" not in line]), folder / "in.parquet")
    return store, settings, version, folder


def _run(store: Store, settings: Settings, version: int, source: str | None, output: Path, engine: str) -> list[dict]:
    job = create_batch_inference_job(store, settings, group="movies", solution_version_id=version, input=source,
                                     all_users=source is None, output=str(output), num_results=10,
                                     filter="no-drama", engine=engine, spark_master="local[2]")
    done = run_batch_job(store, settings, job["id"])
    assert done["status"] == "ACTIVE", done
    return [json.loads(line) for line in output.read_text().splitlines()]


@pytest.mark.parametrize("name", ["in.jsonl", "in.parquet"])
def test_spark_output_equals_the_local_output(movies, name: str) -> None:
    store, settings, version, folder = movies
    local = _run(store, settings, version, str(folder / name), folder / f"local-{name}.jsonl", "local")
    spark = _run(store, settings, version, str(folder / name), folder / f"spark-{name}.jsonl", "spark")
    assert spark == local
    assert sum(line["error"] is not None for line in spark) == (2 if name == "in.jsonl" else 1)
    job = store.list_batch_jobs(store.get_dataset_group("movies").id)[-1]
    assert job["config"]["engine"] == "spark" and job["lines_read"] == len(local)


def test_spark_over_every_user(movies) -> None:
    store, settings, version, folder = movies
    local = _run(store, settings, version, None, folder / "all-local.jsonl", "local")
    spark = _run(store, settings, version, None, folder / "all-spark.jsonl", "spark")
    assert spark == local and len(spark) == 671


def test_spark_input_must_be_json_lines_or_parquet(movies) -> None:
    store, settings, version, folder = movies
    (folder / "in.csv").write_text("userId\n1\n")
    from recsmith.errors import ConfigError

    with pytest.raises(ConfigError, match="--engine spark reads JSON Lines"):
        create_batch_inference_job(store, settings, group="movies", solution_version_id=version,
                                   input=str(folder / "in.csv"), output=str(folder / "x.jsonl"), engine="spark")
