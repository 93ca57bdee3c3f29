"""Import jobs: read a file, URL or SQL query, validate it against the schema, load it atomically.

The whole source is read and validated before anything is written, and the write is one transaction,
so a failed import leaves the store as it was. Every job, failed or not, is recorded with its report, and while it
runs its progress (``{"stage": "read" | "validate" | "write", "done": rows, "total": rows or null}``) is in its row.

A caller that answers before the import ends (the console) records the job first with :func:`record_import_job`,
then runs :func:`import_dataset` with that ``job_id`` in the background; a job recorded so that fails before it
starts (bad options) is recorded as failed too.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from recsmith.data.readers import MAX_REPORTED, ReadResult, mask_secrets, mask_url, read_dataset, read_sql
from recsmith.data.schema import Schema
from recsmith.errors import ConfigError, DataError, NotFoundError
from recsmith.jobs.runs import (
    IN_PROGRESS,
    JobRun,
    ProgressCallback,
    fail_abandoned_jobs,
    failure_message,
    owner_columns,
    run_job,
)
from recsmith.store.store import Store

logger = logging.getLogger(__name__)

DATASET_TYPES = ("interactions", "users", "items")
MODES = ("full", "incremental")
ON_ERROR = ("fail", "skip")
PROGRESS_SECONDS = 0.25
"""The least time between two writes of an import's progress within one stage (each new stage is written)."""


@dataclass
class ImportReport:
    """What an import job did.

    Attributes
    ----------
    job_id : int
        The import job's id in the store.
    status : str
        The job-run status (:mod:`recsmith.jobs.runs`): ``"ACTIVE"`` when the rows were loaded, ``"CREATE_FAILED"``
        when nothing was (``error`` says why); ``"CREATE_IN_PROGRESS"`` while the job runs.
    rows_read, rows_loaded, rows_rejected : int
        Data rows read from the source, written to the store, and left out (``--on-error skip``).
    duplicates_skipped : int
        Valid rows not written because they repeat a record: an interaction identical in (user, item, timestamp,
        event type) to a stored one or to an earlier one in the source (``--mode incremental``), or a user or
        item whose id comes again later in the source (the last one wins).
    schema_inferred : dict or None
        The schema inferred from the source and stored with the dataset (Avro JSON), when one was inferred.
    duration_seconds : float
        Wall time of the whole job.
    reject_file : str or None
        Where the rejected rows and their reasons were written, if any were rejected.
    rejects_sample : list of dict
        The first rejected rows (:data:`recsmith.data.readers.MAX_REPORTED` at most), in file order: ``line``,
        ``field``, ``value``, ``reason``; with ``--on-error fail``, the bad rows that failed the job.
    rows_per_second : float
        ``rows_loaded / duration_seconds``.
    """

    job_id: int
    dataset_group: str
    dataset_type: str
    source: str
    mode: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    duplicates_skipped: int = 0
    duration_seconds: float = 0.0
    rows_per_second: float = 0.0
    reject_file: str | None = None
    error: str | None = None
    rejects_sample: list[dict[str, Any]] = field(default_factory=list)
    schema_inferred: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return asdict(self)


def resolve_schema(store: Store, group_id: int, dataset_type: str, schema: Schema | str | Path | None) -> Schema:
    """The schema an import uses: the one given, else the dataset's current one, else the default."""
    if schema is not None:
        resolved = schema if isinstance(schema, Schema) else Schema.from_json(schema)
    else:
        dataset = store.get_dataset(group_id, dataset_type)
        resolved = Schema.from_json(dataset.schema) if dataset is not None else Schema.default(dataset_type)
    resolved.validate_for(dataset_type)
    return resolved


def record_import_job(store: Store, dataset_group: str, dataset_type: str, source: str, mode: str) -> int:
    """Record an import job before running it (``CREATE_IN_PROGRESS``, owned by this process), so that a caller can
    answer at once and run :func:`import_dataset` with ``job_id`` in the background of this process.

    Parameters
    ----------
    store : Store
        The store.
    dataset_group : str
        An existing dataset group.
    dataset_type : {"interactions", "users", "items"}
        Which dataset the job loads.
    source : str
        What the job calls its source (an uploaded file's own name, a URL: its credentials are masked).
    mode : {"full", "incremental"}
        The import mode.

    Returns
    -------
    int
        The job's id.

    Raises
    ------
    NotFoundError
        No such dataset group.
    ConfigError
        An unknown dataset type or mode.
    """
    _check_choices(dataset_type, mode, "fail")
    group = store.get_dataset_group(dataset_group)
    return store.create_import_job(group.id, dataset_type, mask_url(source), mode, owner=owner_columns())


def import_dataset(
    store: Store,
    dataset_group: str,
    dataset_type: str,
    source: str | None = None,
    *,
    sql: str | None = None,
    db_url: str | None = None,
    schema: Schema | str | Path | None = None,
    column_map: dict[str, str] | None = None,
    sep: str | None = None,
    fmt: str | None = None,
    header: bool = True,
    names: list[str] | None = None,
    mode: Literal["full", "incremental"] = "full",
    on_error: Literal["fail", "skip"] = "fail",
    reject_path: str | Path | None = None,
    progress: ProgressCallback | None = None,
    infer_schema: bool = False,
    encoding: str = "utf-8",
    flags: Mapping[str, Sequence[str]] | None = None,
    job_id: int | None = None,
) -> ImportReport:
    """Run one import job into a dataset group (created if it does not exist; a failed import of a new group
    leaves no group behind).

    Parameters
    ----------
    store : Store
        The store to load into.
    dataset_group : str
        Name of the dataset group.
    dataset_type : {"interactions", "users", "items"}
        Which dataset to load.
    source : str, optional
        A local path or an fsspec URL (CSV, TSV, ``::``-separated, Parquet, JSON Lines).
    sql, db_url : str, optional
        Instead of ``source``: a ``SELECT`` run against the SQLAlchemy URL ``db_url``.
    schema : Schema or path or JSON text, optional
        Personalize-style Avro schema; default: the dataset's current schema, else for users and items one
        inferred from the source (:func:`recsmith.data.readers.read_dataset`'s ``infer_schema``), else the
        default interactions schema.
    column_map : dict, optional
        Source column -> schema field, e.g. ``{"userId": "USER_ID"}``; map to ``"-"`` to drop a column.
    sep, fmt, header, names
        Reader options (separator, format, whether the first line is a header, column names).
    mode : {"full", "incremental"}
        ``full`` replaces the dataset; ``incremental`` adds interactions (less those identical in user, item,
        timestamp and event type to a stored one: re-importing a file adds nothing) and upserts users/items.
    on_error : {"fail", "skip"}
        ``fail`` loads nothing and reports the first 20 bad rows; ``skip`` loads the good rows and writes
        the rejected ones with their reasons to ``reject_path``.
    reject_path : path, optional
        Where rejected rows go (default: ``<home>/rejects/import-<job>.csv`` chosen by the caller).
    progress : callable, optional
        Called with the stage name.
    infer_schema : bool
        Users and items: infer the schema from the source even when the dataset has one (it replaces it;
        ``full`` mode only). Without ``schema``, a dataset without a schema infers one anyway.
    encoding : str
        Text encoding of a CSV/TSV/JSON Lines source (e.g. ``latin-1``); default UTF-8.
    flags : mapping of str to sequence of str, optional
        Users and items: fold 0/1 flag columns into one multi-valued categorical field, e.g.
        ``{"GENRES": ["unknown..Western"]}`` (see :func:`recsmith.data.readers.read_dataset`).
    job_id : int, optional
        Run the job :func:`record_import_job` recorded (same group, dataset type and mode), instead of recording
        a new one; its recorded source names the source in the report and in messages. The group must exist. If
        this raises, the job is recorded as failed, whatever the reason.

    Returns
    -------
    ImportReport
        The job's report (also stored with the job).

    Raises
    ------
    DataError
        Bad input, naming the file, line, field and value; the store is unchanged.
    ConfigError
        Bad options (unknown dataset type or mode, neither or both of source and sql).
    """
    with _failing_recorded_job(store, job_id, source, db_url):
        _check_options(dataset_type, mode, on_error, source, sql, db_url, schema, infer_schema)
        fail_abandoned_jobs(store)  # what killed imports and trainings left (their artifacts: the next training)
        try:
            group, new_group = store.get_dataset_group(dataset_group), False
        except NotFoundError:
            if job_id is not None:  # a recorded job's group went away (and the job with it)
                raise
            group, new_group = store.create_dataset_group(dataset_group), True
        try:
            return _import(store, group.id, dataset_group, dataset_type, source, sql, db_url, schema, column_map, sep,
                           fmt, header, names, mode, on_error, reject_path, progress, infer_schema, encoding, flags,
                           job_id)
        except BaseException:
            if new_group:  # a failed import of a new group creates nothing
                try:
                    store.delete_dataset_group(dataset_group)
                except Exception:  # the import's own error is the one to report
                    logger.exception("could not remove dataset group %s after its first import failed",
                                     dataset_group)
            raise


def _check_choices(dataset_type: str, mode: str, on_error: str) -> None:
    if dataset_type not in DATASET_TYPES:
        raise ConfigError(f"unknown dataset type {dataset_type!r}; use one of {', '.join(DATASET_TYPES)}")
    if mode not in MODES:
        raise ConfigError(f"unknown import mode {mode!r}; use one of {', '.join(MODES)}")
    if on_error not in ON_ERROR:
        raise ConfigError(f"unknown --on-error value {on_error!r}; use 'fail' or 'skip'")


def _check_options(dataset_type: str, mode: str, on_error: str, source: str | None, sql: str | None,
                   db_url: str | None, schema: Schema | str | Path | None, infer_schema: bool) -> None:
    """Refuse options that do not go together (ConfigError), before anything is done."""
    _check_choices(dataset_type, mode, on_error)
    if (source is None) == (sql is None):
        raise ConfigError("give either a source path/URL or --sql with --db-url, not both and not neither")
    if sql is not None and not db_url:
        raise ConfigError("--sql needs --db-url, the SQLAlchemy URL of the database to query")
    if infer_schema and schema is not None:
        raise ConfigError("give --schema FILE or --infer-schema, not both")
    if infer_schema and dataset_type == "interactions":
        raise ConfigError("--infer-schema is for users and items; interactions have a default schema "
                          "(give another one with --schema FILE)")


@contextmanager
def _failing_recorded_job(store: Store, job_id: int | None, *urls: str | None) -> Iterator[None]:
    """A recorded job (``job_id``) that fails before its run records itself is recorded as failed here (a failed
    run has recorded itself already: then this changes nothing)."""
    try:
        yield
    except BaseException as exc:
        if job_id is not None:
            try:
                store.fail_abandoned_job("import", job_id, mask_secrets(failure_message(exc), *urls))
            except Exception:  # the import's own error is the one to report
                logger.exception("could not record import job %s as failed", job_id)
        raise


def _recorded_source(store: Store, job_id: int, group_id: int, dataset_type: str, mode: str) -> str:
    """The source recorded with job ``job_id``, after checking that it is an unfinished import of this group's
    ``dataset_type`` in ``mode`` (ConfigError otherwise)."""
    job = store.get_import_job(job_id)
    recorded = (job["dataset_group_id"], job["dataset_type"], job["mode"])
    if recorded != (group_id, dataset_type, mode) or job["status"] != IN_PROGRESS:
        raise ConfigError(f"import job {job_id} is a {job['status']} {job['mode']} import of {job['dataset_type']} "
                          f"(dataset group id {job['dataset_group_id']}), not the {IN_PROGRESS} {mode} import of "
                          f"{dataset_type} asked for: record it with record_import_job")
    return str(job["source"])


class _Progress:
    """Writes an import's progress into its row: each new stage at once, updates within a stage at most every
    :data:`PROGRESS_SECONDS`. A failure to write is logged, never fails the import."""

    def __init__(self, store: Store, job_id: int) -> None:
        self.store, self.job_id = store, job_id
        self.stage: str | None = None
        self.written = -math.inf

    def __call__(self, stage: str, done: int = 0, total: int | None = None) -> None:
        now = time.monotonic()
        if stage == self.stage and now - self.written < PROGRESS_SECONDS:
            return
        self.stage, self.written = stage, now
        try:
            self.store.set_import_progress(self.job_id, {"stage": stage, "done": done, "total": total})
        except Exception:
            logger.warning("import job %s: could not record its progress", self.job_id, exc_info=True)


def _import(store: Store, group_id: int, dataset_group: str, dataset_type: str, source: str | None, sql: str | None,
            db_url: str | None, schema: Schema | str | Path | None, column_map: dict[str, str] | None,
            sep: str | None, fmt: str | None, header: bool, names: list[str] | None, mode: str, on_error: str,
            reject_path: str | Path | None, progress: ProgressCallback | None, infer_schema: bool, encoding: str,
            flags: Mapping[str, Sequence[str]] | None, job_id: int | None) -> ImportReport:
    """:func:`import_dataset` into an existing group."""
    described_source = mask_url(source) if source is not None else f"sql: {sql}"  # stored: never credentials
    if job_id is not None:
        described_source = _recorded_source(store, job_id, group_id, dataset_type, mode)
    started = time.perf_counter()
    stored = store.get_dataset(group_id, dataset_type) if schema is None else None
    infer = schema is None and dataset_type in ("users", "items") and (infer_schema or stored is None)
    if infer and stored is not None and mode == "incremental":
        raise ConfigError(f"--infer-schema with --mode incremental would change the schema of the stored "
                          f"{dataset_type}; infer it with --mode full, or give the new schema with --schema FILE")
    resolved_schema = None if infer else resolve_schema(store, group_id, dataset_type, schema)
    schema_origin = (None if infer else f"from {schema}" if isinstance(schema, Path) else
                     f"stored with dataset group {dataset_group}" if stored is not None else
                     "the default" if schema is None else None)
    if job_id is None:
        job_id = store.create_import_job(group_id, dataset_type, described_source, mode, owner=owner_columns())
    report = ImportReport(
        job_id=job_id, dataset_group=dataset_group, dataset_type=dataset_type, source=described_source,
        mode=mode, status=IN_PROGRESS,
    )
    stage = _Progress(store, job_id)

    def record(run: JobRun) -> None:
        report.status = run.status
        report.error = None if run.error is None else mask_secrets(run.error, source, db_url)
        report.duration_seconds = run.seconds
        if report.duration_seconds > 0:
            report.rows_per_second = round(report.rows_loaded / report.duration_seconds, 1)
        store.finish_import_job(
            job_id,
            status=report.status,
            rows_read=report.rows_read,
            rows_loaded=0 if run.failed else report.rows_loaded,
            rows_rejected=report.rows_rejected,
            duration_seconds=report.duration_seconds,
            report=report.to_dict(),
            error=report.error,
        )

    audited = store.audited("import.create", f"dataset-groups/{dataset_group}/import-jobs/{job_id}",
                            {"dataset_type": dataset_type, "mode": mode, "source": described_source})
    with audited, run_job(record, progress=progress, started=started):  # KeyboardInterrupt: the transaction rolls back
        if progress:
            progress("read")
        stage("read")
        result: ReadResult
        try:
            if sql is not None:
                result = read_sql(
                    sql, str(db_url), dataset_type=dataset_type, schema=resolved_schema, column_map=column_map,
                    on_error=on_error, infer_schema=infer, schema_origin=schema_origin,  # type: ignore[arg-type]
                    flags=flags,
                )
            else:
                result = read_dataset(
                    str(source), dataset_type=dataset_type, schema=resolved_schema, column_map=column_map,
                    sep=sep, fmt=fmt, header=header, names=names, on_error=on_error,  # type: ignore[arg-type]
                    infer_schema=infer, schema_origin=schema_origin, encoding=encoding, flags=flags,
                    source_name=described_source, parsed=lambda rows: stage("validate", 0, rows),
                )
        except DataError as exc:  # the bad rows that failed it, for the report
            report.rejects_sample = [_reject_entry(r) for r in getattr(exc, "rejects", ())]
            raise
        assert result.schema is not None
        resolved_schema = result.schema
        if result.schema_inferred:
            report.schema_inferred = resolved_schema.to_dict()
        report.rows_read = result.rows_read
        report.rows_rejected = len(result.rejects)
        if result.rejects:
            path = Path(reject_path) if reject_path else Path(f"import-{job_id}-rejects.csv")
            path.parent.mkdir(parents=True, exist_ok=True)
            result.write_rejects(path)
            report.reject_file = str(path)
            report.rejects_sample = [_reject_entry(r) for r in result.rejects[:MAX_REPORTED]]
        if progress:
            progress("write")
        stage("write", 0, len(result.frame))
        writer = {
            "interactions": store.write_interactions,
            "users": store.write_users,
            "items": store.write_items,
        }[dataset_type]
        report.rows_loaded = writer(group_id, result.frame, mode=mode, schema=resolved_schema.to_dict())
        report.duplicates_skipped = len(result.frame) - report.rows_loaded
    logger.info("import job %s: %s rows loaded (%s duplicates skipped) in %.2f s", job_id, report.rows_loaded,
                report.duplicates_skipped, report.duration_seconds)
    return report


def _reject_entry(reject: Any) -> dict[str, Any]:
    """A rejected row as the report lists it."""
    return {"line": reject.line, "field": reject.field, "value": reject.value, "reason": reject.reason}


def put_records(store: Store, group_id: int, dataset_type: str, records: list[dict[str, Any]],
                *, source: str = "request") -> int:
    """Validate user or item records against the group's schema and upsert them in one transaction (the event
    tracker's ``PUT .../users`` and ``PUT .../items``); a deleted id put again is live again.

    Parameters
    ----------
    store : Store
        The store.
    group_id : int
        The dataset group.
    dataset_type : {"users", "items"}
        What the records are.
    records : list of dict
        ``{"USER_ID" or "ITEM_ID": id, FIELD: value, ...}``; a field the schema lacks, or a value that does not
        fit its field, is an error naming the record (``row`` n, from 1) and the field.
    source : str
        Names the records in messages.

    Returns
    -------
    int
        Records stored.
    """
    import pandas as pd

    from recsmith.data.readers import validate_frame

    if dataset_type not in ("users", "items"):
        raise ConfigError(f"records can be put for users or items, not {dataset_type!r}")
    schema = resolve_schema(store, group_id, dataset_type, None)
    columns = list(dict.fromkeys(name for record in records for name in record))
    frame = pd.DataFrame({name: [record.get(name) for record in records] for name in columns})
    result = validate_frame(frame, source=source, dataset_type=dataset_type, schema=schema)
    return store.upsert_entities(group_id, dataset_type, result.frame, schema.to_dict())
