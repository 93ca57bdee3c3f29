"""Batch inference and batch segment jobs (Amazon Personalize's): many answers from a solution version at once,
written to a file, an fsspec URL or a table of the application's database.

A **batch inference job** reads JSON Lines in Personalize's shapes, ``{"userId": "…"}`` (recommendations),
``{"itemId": "…"}`` (related items) and ``{"userId": "…", "itemList": […]}`` (personalized ranking), each with
an optional ``filterValues`` object, or every user of the dataset group (``all_users``). It writes one line per
input line: ``{"input": {…}, "output": {"recommendedItems": […], "scores": […], "reasons": […]}, "error": null}``;
a bad line gets an ``error`` and ``"output": null``, and the job goes on.

A **batch segment job** reads ``{"itemId": "…"}`` (Item-Affinity) or ``{"itemAttributes": "ITEMS.GENRES =
\\"Comedy\\""}`` (Item-Attribute-Affinity) lines and writes the users most likely to interact with each:
``{"input": {…}, "output": {"usersList": […], "scores": […]}, "error": null}``.

Both answer through the serving pipeline campaigns answer with (:class:`~recsmith.serving.campaign.
CampaignRuntime`: live events, deletions, filters, exclusions, popular padding, reasons), scoring blocks of
users in one recipe call (:meth:`~recsmith.serving.campaign.CampaignRuntime.answer_users`), so a batch answer
equals the campaign's answer for the same user.

A job is recorded (``batch_jobs``) when it is created, ``CREATE_PENDING``, then runs: its output is made in
parts of :data:`~recsmith.serving.batch.PART_LINES` lines (each written, then renamed, in the job's staging
folder under ``RECSMITH_HOME``, its count recorded), so an interrupted or failed job resumes
(:func:`run_batch_job` again) from its last whole part, without redoing or duplicating any; the output appears at
its target only when whole (:func:`recsmith.jobs.batch_io.publish`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsmith.atomic import current_owner
from recsmith.data.filters import check_filter_values
from recsmith.data.readers import mask_url
from recsmith.errors import ConfigError, ConflictError, DataError, NotFoundError
from recsmith.jobs import batch_io
from recsmith.jobs.runs import ACTIVE, IN_PROGRESS, JobRun, fail_abandoned_jobs, owner_columns, run_job
from recsmith.serving import MAX_RESULTS, batch
from recsmith.serving.batch import chunks, scorer_for

if TYPE_CHECKING:
    from recsmith.settings import Settings
    from recsmith.store.store import Store

logger = logging.getLogger(__name__)

ALL_USERS = "all-users"
"""The input recorded for a job over every user of its dataset group."""
ENGINES = ("local", "spark")
"""Where a job's lines are answered."""
MAX_SEGMENT_USERS = 5_000
"""The most users a batch segment job finds per line."""
MAX_WORKERS = 16
"""The most processes a local job answers with."""

#: Called with (lines done, lines in all or None) as a job goes.
LineProgress = Callable[[int, int | None], None]


# --------------------------------------------------------------------------------------------- creating
def create_batch_inference_job(store: Store, settings: Settings, *, group: str, solution_version_id: int,
                               input: str | None = None, all_users: bool = False, output: str | None = None,
                               output_table: str | None = None, db_url: str | None = None, num_results: int = 25,
                               filter: str | None = None, filter_values: Mapping[str, Any] | None = None,
                               engine: str = "local", spark_master: str | None = None,
                               workers: int | None = None) -> dict[str, Any]:
    """Check a batch inference job's request and record the job (``CREATE_PENDING``); :func:`run_batch_job`
    runs it. Everything that can be checked before the work is: the version, the filter, the input, the output.

    Parameters
    ----------
    store : Store
        The store.
    settings : Settings
        Where the job's staging folder goes (``home``) and the encryption key of artifacts.
    group : str
        The dataset group.
    solution_version_id : int
        An ACTIVE solution version of the group.
    input : str, optional
        A JSON Lines (or Parquet) file, local or an fsspec URL; or ``all_users``.
    all_users : bool
        Answer every user of the dataset group.
    output : str, optional
        Where to write: a path or fsspec URL ending in ``.jsonl`` or ``.parquet``; or ``output_table``.
    output_table, db_url : str, optional
        A table of the application's database (SQLAlchemy URL), created if missing and replaced atomically.
    num_results : int
        Items per line, 1-500.
    filter : str, optional
        A stored filter of the group, applied to every line.
    filter_values : mapping, optional
        Its ``$PARAM`` values for every line (a line's own ``filterValues`` override them).
    engine : {"local", "spark"}
        Where the lines are answered (``spark``: partitions of the input on Spark's executors).
    spark_master : str, optional
        The Spark master (``local[2]``, ``spark://…``, ``yarn``) for ``engine="spark"``.
    workers : int, optional
        Processes answering parts at once on the local engine (default: this machine's cores, at most
        :data:`MAX_WORKERS`; an input of one part is answered in this process).

    Returns
    -------
    dict
        The job's record (:func:`job_view`).

    Raises
    ------
    ConfigError, NotFoundError, DataError, FilterError
        For a request that cannot run, naming what is wrong.
    """
    if isinstance(num_results, bool) or not isinstance(num_results, int) or not 1 <= num_results <= MAX_RESULTS:
        raise ConfigError(f"num_results must be an integer from 1 to {MAX_RESULTS}, got {num_results!r}")
    if filter_values and filter is None:
        raise ConfigError("filter values need a filter: give the name of a stored filter")
    if filter is not None:
        store.get_filter(group, filter)
    check_filter_values(filter_values)  # a malformed value is refused now, not on every line of the run
    if output_table is None and db_url is not None:
        raise ConfigError("--db-url is for --output-table; give the table to write")
    config = {"num_results": num_results, "filter": filter, "filter_values": dict(filter_values or {}),
              "db_url": db_url, "workers": _workers(workers)}
    return _create(store, settings, "inference", group, solution_version_id, input, all_users, output,
                   output_table, db_url, engine, spark_master, config)


def _workers(workers: int | None) -> int:
    if workers is None:
        return max(1, min(os.cpu_count() or 1, MAX_WORKERS))
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"workers must be an integer from 1 to {MAX_WORKERS}, got {workers!r}")
    return workers


def create_batch_segment_job(store: Store, settings: Settings, *, group: str, solution_version_id: int,
                             input: str, output: str, num_users: int = 100, engine: str = "local",
                             workers: int | None = None) -> dict[str, Any]:
    """Check a batch segment job's request and record the job (``CREATE_PENDING``); :func:`run_batch_job` runs
    it. ``input`` holds ``{"itemId": …}`` and ``{"itemAttributes": "<expression>"}`` lines; ``num_users`` (1-5000)
    users are found for each. See :func:`create_batch_inference_job` for the rest."""
    if isinstance(num_users, bool) or not isinstance(num_users, int) or not 1 <= num_users <= MAX_SEGMENT_USERS:
        raise ConfigError(f"num_users must be an integer from 1 to {MAX_SEGMENT_USERS}, got {num_users!r}")
    version = store.get_solution_version(solution_version_id)
    from recsmith.recipes import recipe_class

    if not recipe_class(version["recipe"]).tags.top_users:
        raise ConfigError(f"solution version {solution_version_id} is a {version['recipe']} model, which cannot "
                          "rank users for items; train a recipe that can, such as als, bpr, item-knn or ease")
    return _create(store, settings, "segment", group, solution_version_id, input, False, output, None, None,
                   engine, None, {"num_users": num_users, "workers": _workers(workers)})



def _create(store: Store, settings: Settings, kind: str, group: str, version_id: int, input: str | None,
            all_users: bool, output: str | None, output_table: str | None, db_url: str | None, engine: str,
            spark_master: str | None, config: dict[str, Any]) -> dict[str, Any]:
    group_id = store.get_dataset_group(group).id
    version = store.get_solution_version(version_id)
    if version["dataset_group"] != group:
        raise NotFoundError(f"solution version {version_id} belongs to dataset group {version['dataset_group']!r}, "
                            f"not {group!r}")
    if version["status"] != ACTIVE or not version.get("artifact_uri"):
        raise ConfigError(f"solution version {version_id} is {version['status']}, not ACTIVE; train it again")
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if (input is None) == (not all_users):
        raise ConfigError("give one input: --input PATH_OR_URL (JSON Lines or Parquet) or --all-users")
    if engine == "spark":
        from recsmith.engines.spark_batch import check_spark

        check_spark(input)
    fingerprint = None if input is None else batch_io.input_fingerprint(input)
    target = batch_io.check_output(output, output_table, db_url)
    config = config | {"engine": engine, "spark_master": spark_master, "input_fingerprint": fingerprint}
    job_id = store.create_batch_job(group_id, kind, version_id, input=input or ALL_USERS, output=target,
                                    config=config)
    logger.info("batch %s job %s recorded: version %s, %s -> %s", kind, job_id, version_id,
                mask_url(input or ALL_USERS), mask_url(target))
    return job_view(store.get_batch_job(job_id))


def job_view(job: Mapping[str, Any]) -> dict[str, Any]:
    """A batch job as the CLI and HTTP show it: its record, the database URL of a table output masked, with
    ``output_table`` split out."""
    config = dict(job["config"])
    if config.get("db_url"):
        config["db_url"] = mask_url(str(config["db_url"]))
    view = {key: job[key] for key in ("id", "dataset_group", "kind", "solution_version_id", "status", "input",
                                      "output", "lines_read", "lines_written", "lines_failed", "parts_done",
                                      "duration_seconds", "error", "created_at", "started_at", "finished_at")}
    view["input"], view["output"] = mask_url(str(view["input"])), mask_url(str(view["output"]))
    return view | {"config": {key: value for key, value in config.items() if key != "input_fingerprint"}}


# ---------------------------------------------------------------------------------------------- running
def run_batch_job(store: Store, settings: Settings, job_id: int, *, progress: LineProgress | None = None
                  ) -> dict[str, Any]:
    """Run a recorded batch job, or resume one that failed or was interrupted, from its last whole part.

    Returns
    -------
    dict
        The job's final record (:func:`job_view`), ``ACTIVE``.

    Raises
    ------
    ConflictError
        If the job is done, or another live process runs it.
    DataError
        If its input changed since it started (its parts would no longer match), or cannot be read.
    """
    fail_abandoned_jobs(store)
    job = store.get_batch_job(job_id)
    if job["status"] == ACTIVE:
        raise ConflictError(f"batch {job['kind']} job {job_id} is done (ACTIVE); its output is {job['output']}")
    if job["status"] == IN_PROGRESS:
        raise ConflictError(f"batch {job['kind']} job {job_id} is running (process {job['owner_pid']} on "
                            f"{job['owner_host']}); wait for it, or stop that process first")
    config = job["config"]
    staging = staging_folder(settings, job_id)
    fingerprint = config.get("input_fingerprint")
    if job["parts_done"] and fingerprint is not None and batch_io.input_fingerprint(job["input"]) != fingerprint:
        raise DataError(f"batch job {job_id}: its input {mask_url(job['input'])} changed since the job started; "
                        "create a new job for the new input")
    started = time.perf_counter()
    before = float(job["duration_seconds"] or 0.0)
    from recsmith.store.tables import utc_now

    if not store.claim_batch_job(job_id, started_at=job["started_at"] or utc_now(), **owner_columns(current_owner())):
        raise ConflictError(f"batch {job['kind']} job {job_id} was started by another process meanwhile")

    def record(run: JobRun) -> None:
        fields: dict[str, Any] = {"status": run.status, "duration_seconds": round(before + run.seconds, 4)}
        if run.failed:
            latest = store.get_batch_job(job_id)
            fields["error"] = (f"{run.error}; {latest['parts_done']} part(s) of {batch.PART_LINES} lines are kept: "
                               f"resume with `recsmith batch-{'inference' if job['kind'] == 'inference' else 'segment'}"
                               f" resume {job_id}`")
        else:
            fields["finished_at"] = utc_now()
        store.update_batch_job(job_id, **fields)

    with run_job(record, started=started):
        if config.get("engine") == "spark":
            from recsmith.engines.spark_batch import run_on_spark

            source = job["input"]
            if source == ALL_USERS:
                source = str(_user_listing(store, settings, job))
            parts = run_on_spark(store, settings, job, source, staging, progress=progress)
        else:
            parts = _run_parts(store, settings, job, staging, progress)
        _publish(job, parts)
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("batch %s job %s done: %s", job["kind"], job_id, mask_url(job["output"]))
    return job_view(store.get_batch_job(job_id))


def staging_folder(settings: Settings, job_id: int) -> Path:
    """Where a job keeps its parts until its output is published (under ``RECSMITH_HOME``)."""
    return (settings.home / "batch-jobs" / str(job_id)).resolve()


def input_lines(store: Store, settings: Settings, job: Mapping[str, Any], *, skip: int = 0
                ) -> Iterator[tuple[int, str]]:
    """A job's input lines as ``(line number, text)`` after the first ``skip``. Over every user
    (:data:`ALL_USERS`), the users are listed once, when the job first runs, into its staging folder, so that
    a resumed job reads the same list."""
    if job["input"] != ALL_USERS:
        return batch_io.read_lines(job["input"], skip=skip)
    return batch_io.read_lines(str(_user_listing(store, settings, job)), skip=skip)


def _user_listing(store: Store, settings: Settings, job: Mapping[str, Any]) -> Path:
    """The ``{"userId"}`` lines of every user of the job's group, written once into its staging folder."""
    listing = staging_folder(settings, int(job["id"])) / "users.jsonl"
    if not listing.exists():
        users = store.group_user_ids(int(job["dataset_group_id"]))
        batch_io.write_part(listing, [{"userId": user} for user in users])
    return listing


def _run_parts(store: Store, settings: Settings, job: Mapping[str, Any], staging: Path,
               progress: LineProgress | None) -> list[Path]:
    """Answer the input in parts, from the first part not yet written, in the job's ``workers`` processes (one
    part at a time in this process for one worker, or an input of one part); returns every part's path. Parts
    are recorded done in input order, so a resumed job never skips one."""
    job_id, done = int(job["id"]), int(job["parts_done"])
    staging.mkdir(parents=True, exist_ok=True)
    lines = input_lines(store, settings, job, skip=done * batch.PART_LINES)
    total = batch_io.count_lines(job["input"] if job["input"] != ALL_USERS else str(staging / "users.jsonl"))
    counts = {key: int(job[key]) for key in ("lines_read", "lines_written", "lines_failed")}
    if progress:
        progress(counts["lines_read"], total)
    workers = int(job["config"].get("workers") or 1)
    if total is not None and total - counts["lines_read"] <= batch.PART_LINES:
        workers = 1

    def finished(index: int, chunk: Sequence[tuple[int, str]], records: list[dict[str, Any]]) -> None:
        nonlocal counts
        batch_io.write_part(part_path(staging, index), records)
        failed = sum(record["error"] is not None for record in records)
        counts = {"lines_read": counts["lines_read"] + len(chunk),
                  "lines_written": counts["lines_written"] + len(chunk) - failed,
                  "lines_failed": counts["lines_failed"] + failed}
        store.update_batch_job(job_id, parts_done=index + 1, **counts)
        if progress:
            progress(counts["lines_read"], total)

    parts = enumerate(chunks(lines, batch.PART_LINES), start=done)
    if workers <= 1:
        scorer = scorer_for(store, settings, job)
        for index, chunk in parts:
            finished(index, chunk, scorer.answer(chunk))
    else:
        _run_in_workers(settings, job, parts, workers, finished)
    final = int(store.get_batch_job(job_id)["parts_done"])
    return [part_path(staging, index) for index in range(final)]


def _run_in_workers(settings: Settings, job: Mapping[str, Any], parts: Iterator[tuple[int, list[tuple[int, str]]]],
                    workers: int, finished: Callable[[int, Sequence[tuple[int, str]], list[dict[str, Any]]], None]
                    ) -> None:
    """Answer ``parts`` in ``workers`` spawned processes, at most two parts each in flight, and hand each to
    ``finished`` in input order (an interrupted job leaves only whole parts, in order)."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    environment = batch.worker_environment(settings)
    record = batch.worker_job(job)
    pending: deque[tuple[int, list[tuple[int, str]], Any]] = deque()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            for index, chunk in parts:
                pending.append((index, chunk, pool.submit(batch.answer_in_worker, environment, record, chunk)))
                while len(pending) >= 2 * workers or (pending and pending[0][2].done()):
                    first, lines, future = pending.popleft()
                    finished(first, lines, future.result())
            while pending:
                first, lines, future = pending.popleft()
                finished(first, lines, future.result())
        except BaseException:
            for _, _, future in pending:
                future.cancel()
            raise


def part_path(staging: Path, index: int) -> Path:
    """The path of a job's part ``index``."""
    return staging / f"part-{index:06d}.jsonl"


def _publish(job: Mapping[str, Any], parts: Sequence[Path]) -> None:
    keys = batch.SEGMENT_KEYS if job["kind"] == "segment" else batch.INFERENCE_KEYS
    table = inference_table() if job["output"].startswith("table:") else None
    batch_io.publish(parts, job["output"], output_keys=keys, db_url=job["config"].get("db_url"), table=table)


def inference_table() -> batch_io.TableRows:
    """The output table of a batch inference job: one row per recommended item, ``user_id`` (the line's user),
    ``source_item_id`` (its item, for related items), ``rank`` (1 first), ``item_id``, ``score`` and ``reason``;
    lines that failed have no rows. Indexed on ``(user_id, rank)``."""
    import sqlalchemy as sa

    def to_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
        output, given = record.get("output"), record.get("input")
        if not output or not isinstance(given, dict):
            return []
        return [{"user_id": given.get("userId"), "source_item_id": given.get("itemId"), "rank": rank,
                 "item_id": item, "score": score, "reason": reason}
                for rank, (item, score, reason) in enumerate(zip(output["recommendedItems"], output["scores"],
                                                                 output["reasons"], strict=True), start=1)]

    columns = {"user_id": sa.Text(), "source_item_id": sa.Text(), "rank": sa.Integer(), "item_id": sa.Text(),
               "score": sa.Float(), "reason": sa.Text()}
    return batch_io.TableRows(columns, to_rows, index=("user_id", "rank"))


class BatchRunner:
    """Runs batch jobs created over HTTP, one at a time, in a background thread of the server process (a request
    never waits for one). Stopped (the server shutting down), it lets the running job finish its current part,
    then records it FAILED and resumable; a killed server's job is marked FAILED by the next start
    (:func:`~recsmith.jobs.runs.fail_abandoned_jobs`), and resumes with ``recsmith batch-inference resume``.

    Parameters
    ----------
    store : Store
        The server's store.
    settings : Settings
        The server's settings.
    """

    def __init__(self, store: Store, settings: Settings) -> None:
        import queue
        import threading

        self.store, self.settings = store, settings
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="recsmith-batch-jobs", daemon=True)
        self._started = False

    def submit(self, job_id: int) -> None:
        """Queue a recorded job (the thread starts with the first)."""
        if not self._started:
            self._started = True
            self._thread.start()
        self._queue.put(job_id)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the running job to stop after its current part, and wait up to ``timeout`` seconds."""
        self._stop.set()
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                break
            try:
                run_batch_job(self.store, self.settings, job_id, progress=self._check_stop)
            except BaseException:  # recorded on the job (status FAILED, error); the server goes on
                logger.exception("batch job %s failed", job_id)

    def _check_stop(self, done: int, total: int | None) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt  # between parts: the job is recorded FAILED with its parts kept
