"""Batch inference and batch segment jobs on Apache Spark, for inputs too big for one process.

The input (JSON Lines or Parquet, any URL Spark reads) is numbered and split into Spark partitions; each
partition runs on an executor the same scorer a local job runs (:func:`recsmith.serving.batch.scorer_for`: the
solution version loaded as a campaign serves it, answering through the campaign pipeline), so the output is the
local job's, line for line. The answers, sorted back into input order, are written by Spark as JSON Lines part
files in the job's staging folder, and published as one output by the local job's code
(:func:`recsmith.jobs.batch_io.publish`).

Executors read the store and the artifact: on a cluster, the store must be a database every executor reaches
(PostgreSQL) and the artifacts a shared folder or an fsspec URL, and recsmith must be installed on the executors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsmith.errors import ConfigError

if TYPE_CHECKING:
    from recsmith.settings import Settings
    from recsmith.store.store import Store

logger = logging.getLogger(__name__)

SPARK_INPUTS = (".jsonl", ".json", ".parquet")
"""What a Spark batch job reads: JSON Lines or Parquet."""


def check_spark(input: str | None) -> None:
    """Check, before a Spark batch job is recorded, that pyspark is installed and the input is one it reads.

    Raises
    ------
    ConfigError
        Without the spark extra (saying how to install it), or for another input format.
    """
    from recsmith.engines.spark import import_pyspark

    import_pyspark()
    if input is not None and not input.lower().endswith(SPARK_INPUTS):
        raise ConfigError(f"--engine spark reads JSON Lines (.jsonl) or Parquet (.parquet) input, got {input!r}")


def _answer_partition(rows: Iterator[tuple[str, int]], job: Mapping[str, Any], environment: Mapping[str, Any]
                      ) -> Iterator[tuple[int, str]]:
    """An executor's part of the job: its lines answered by the local job's scorer, as (line number, JSON)."""
    from recsmith.serving.batch import PART_LINES, answer_in_worker, chunks

    numbered = ((int(index) + 1, str(text)) for text, index in rows)
    for chunk in chunks(numbered, PART_LINES):
        for (number, _), record in zip(chunk, answer_in_worker(environment, job, chunk), strict=True):
            yield number, json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def run_on_spark(store: Store, settings: Settings, job: Mapping[str, Any], source: str, staging: Path, *,
                 progress: Callable[[int, int | None], None] | None = None) -> list[Path]:
    """Answer a recorded batch job's input on Spark; returns the JSON Lines parts, in input order, for
    :func:`recsmith.jobs.batch_io.publish`. The job's counts are recorded (``parts_done`` is the number of
    parts Spark wrote: a failed Spark job starts again from the beginning).

    Parameters
    ----------
    store : Store
        The store (the executors open their own from ``settings``).
    settings : Settings
        The settings the executors rebuild (database URL, home, artifacts, encryption key).
    job : mapping
        The job's record (:meth:`~recsmith.store.store.Store.get_batch_job`).
    source : str
        The input to read (the job's, or the listing of every user its job wrote).
    staging : Path
        The job's staging folder.
    progress : callable, optional
        Called with (lines done, lines in all) at the end.
    """
    from recsmith.engines.spark import spark_session

    staging.mkdir(parents=True, exist_ok=True)
    from recsmith.serving.batch import worker_environment, worker_job

    environment = worker_environment(settings)
    record = worker_job(job)
    folder = staging / "spark-output"
    master = job["config"].get("spark_master") or "local[*]"
    with spark_session(master, app_name=f"recsmith-batch-{job['id']}") as session:
        if source.lower().endswith(".parquet"):
            from pyspark.sql import functions as F

            frame = session.read.parquet(source)
            texts = frame.select(F.to_json(F.struct(*frame.columns)).alias("value")).rdd.map(lambda row: row[0])
        else:
            texts = session.sparkContext.textFile(source)
        numbered = texts.zipWithIndex()
        answered = numbered.mapPartitions(lambda rows: _answer_partition(rows, record, environment))
        answered.cache()
        lines = answered.count()
        failed = answered.filter(lambda pair: json.loads(pair[1])["error"] is not None).count()
        answered.sortByKey().map(lambda pair: pair[1]).saveAsTextFile(str(folder))
        answered.unpersist()
    parts = sorted(folder.glob("part-*"))
    store.update_batch_job(int(job["id"]), parts_done=len(parts), lines_read=lines, lines_written=lines - failed,
                           lines_failed=failed)
    if progress:
        progress(lines, lines)
    logger.info("batch job %s: %s lines answered on Spark (%s), %s failed", job["id"], lines, master, failed)
    return parts
