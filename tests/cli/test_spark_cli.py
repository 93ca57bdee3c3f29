"""``recsmith train --engine spark`` and ``recsmith export`` through the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.spark
pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install 'recsmith[spark]')")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java (17 or newer) on the PATH", allow_module_level=True)

from recsmith.engines.spark import spark_session  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def spark() -> Iterator[Any]:
    """One session for the module: each training's engine finds it running and uses it."""
    with spark_session("local[2]") as session:
        yield session


def test_train_on_spark_then_recommend_and_export(cli, tmp_path: Path) -> None:
    loaded = cli("datasets", "synthetic", "-g", "s", "--users", "300", "--items", "120", "--interactions", "6000",
                 "--seed", "1")
    assert loaded.exit_code == 0, loaded.output
    trained = cli("train", "-g", "s", "--recipe", "als", "--param", "factors=8", "--param", "epochs=5",
                  "--engine", "spark", "--spark-master", "local[2]", "--json")
    assert trained.exit_code == 0, trained.output
    version = json.loads(trained.stdout)
    assert version["status"] == "ACTIVE" and version["config"]["engine"]["name"] == "spark"
    assert version["metrics"]["ndcg@10"] > 0 and version["fit_seconds"] > 0
    described = json.loads(cli("solution-versions", "describe", version["id"]).stdout)
    assert described["config"]["engine"]["master"] == "local[2]"
    exported = json.loads(cli("export", "-g", "s", "--to", tmp_path / "i.parquet", "--json").stdout)
    assert exported["rows"] == 6000 == pq.read_table(tmp_path / "i.parquet").num_rows
    some_user = pq.read_table(tmp_path / "i.parquet").column("USER_ID")[0].as_py()
    answer = cli("recommend", "--solution-version", version["id"], "--user", some_user, "--num", "5", "--json")
    assert answer.exit_code == 0, answer.output
    items = json.loads(answer.stdout)["items"]
    assert len(items) == 5 and {item["reason"] for item in items} == {"personalized"}
