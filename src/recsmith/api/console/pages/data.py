"""Data: datasets with their schemas, import jobs with their rejects, and uploading a file to import (admins).

- ``GET /console/g/{group}/data``: the interactions, users and items datasets (schema fields, types, flags, the
  Avro JSON, row counts), an upload form for admins, and the group's import jobs, newest first.
- ``GET /console/g/{group}/data/imports/{job_id}``: one import job, its report and its first rejected lines; its
  ``/status`` fragment is what the page polls (htmx, every second) until the job is ``ACTIVE`` or
  ``CREATE_FAILED``, reading the job's status and ``progress`` from the store (any worker can answer).
- ``POST /console/g/{group}/data/upload`` (admins; its body may be up to ``RECSMITH_CONSOLE_UPLOAD_BYTES``): a
  CSV, Parquet or JSON Lines file (the format from its name, as ``recsmith import`` finds it), the dataset type,
  mode, on-error and an optional column map (``userId=USER_ID,...`` as ``--map``). The file is streamed to a
  temporary file under ``RECSMITH_HOME/uploads`` (removed when the import ends), the import job is recorded
  (:func:`recsmith.jobs.importing.record_import_job`), then run in the background
  (:func:`recsmith.jobs.importing.import_dataset` with that job id): atomic, as from the CLI.

The upload writes two audit entries, both naming the key: ``import.create`` with status 202 when the console
accepts it (``via: console``), and the import job's own ``import.create`` (``ok`` or ``failed``) when it ends.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.responses import RedirectResponse, Response

from recsmith.api.console.audit import audit_action
from recsmith.api.console.render import error_page, is_htmx, page
from recsmith.api.console.session import ConsoleUser, User
from recsmith.data.readers import SUFFIX_FORMATS, format_of_name, parse_column_map
from recsmith.data.schema import Schema
from recsmith.errors import ConfigError, RecsmithError
from recsmith.jobs.importing import DATASET_TYPES, MODES, ON_ERROR, import_dataset, record_import_job
from recsmith.jobs.runs import ACTIVE, FAILED
from recsmith.store.audit_records import acting_as
from recsmith.store.data_records import progress_of
from recsmith.store.store import Store

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)

COPY_CHUNK_BYTES = 1 << 20
"""How much of an upload is copied at a time to its temporary file."""
STAGES = (("read", "Read"), ("validate", "Validate"), ("write", "Write"))
"""An import's stages, as its progress names them, and their labels."""
FINISHED = (ACTIVE, FAILED)
FINISHED_EVENT = "recsmith-import-finished"
"""The event (``HX-Trigger``) a finished job's status fragment fires."""
UPLOAD_FORMATS = "CSV (.csv, .tsv, .dat, .txt), Parquet (.parquet) or JSON Lines (.jsonl, .ndjson, .json)"


class BadField(Exception):
    """An upload form field with a bad value: a 400 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class UploadForm:
    """What the upload form asks for, checked."""

    file: UploadFile
    filename: str
    dataset_type: str
    mode: str
    on_error: str
    column_map: dict[str, str] | None


# ------------------------------------------------------------------------------------------------ views
def dataset_views(store: Store, group_id: int) -> list[dict[str, Any]]:
    """The group's three datasets, in :data:`~recsmith.jobs.importing.DATASET_TYPES` order: ``dataset_type``,
    ``rows``, and when it exists ``fields`` (:class:`~recsmith.data.schema.SchemaField`), ``schema`` (the Avro
    JSON), ``created_at``, ``updated_at``."""
    counts = store.dataset_group_counts(group_id).get(group_id, {})
    views = []
    for dataset_type in DATASET_TYPES:
        dataset = store.get_dataset(group_id, dataset_type)
        view: dict[str, Any] = {"dataset_type": dataset_type, "rows": counts.get(dataset_type, 0), "fields": None}
        if dataset is not None:
            view.update(fields=Schema.from_json(dataset.schema).fields, schema=dataset.schema,
                        created_at=dataset.created_at, updated_at=dataset.updated_at)
        views.append(view)
    return views


def import_job_view(job: dict[str, Any]) -> dict[str, Any]:
    """An import job as the pages show it: its row, plus ``progress`` (decoded), ``finished``, ``report`` (a dict,
    empty when none was stored), ``duplicates``, ``rejects`` (the report's first rejected rows) and ``source_name``
    (the file's name without its folder)."""
    report = job.get("report") if isinstance(job.get("report"), dict) else {}
    source = str(job["source"])
    short = source if source.startswith("sql:") else source.rstrip("/").rsplit("/", 1)[-1]
    return {**job, "progress": progress_of(job), "finished": job["status"] in FINISHED, "report": report,
            "duplicates": report.get("duplicates_skipped"), "rejects": report.get("rejects_sample") or [],
            "source_name": short or source}


def _group_id(request: Request, user: ConsoleUser, group: str) -> int:
    user.require("read", group)
    return request.app.state.store.get_dataset_group(group).id


def _job(request: Request, group_id: int, job_id: int) -> dict[str, Any]:
    job = request.app.state.store.get_import_job(job_id)
    if job["dataset_group_id"] != group_id:
        raise HTTPException(404, f"no import job {job_id} in this dataset group")
    return import_job_view(job)


def _data_page(request: Request, user: ConsoleUser, group: str, *, status: int = 200,
               upload_error: BadField | None = None) -> Response:
    store: Store = request.app.state.store
    group_id = _group_id(request, user, group)
    jobs = [import_job_view(job) for job in reversed(store.list_import_jobs(group_id))]
    return page(request, "data/data.html", status=status, title=f"Data · {group}", group=group, active="data",
                datasets=dataset_views(store, group_id), jobs=jobs, may_upload=user.may("admin", group),
                dataset_types=DATASET_TYPES, modes=MODES, on_errors=ON_ERROR, upload_error=upload_error,
                formats=UPLOAD_FORMATS, max_bytes=request.app.state.settings.console_upload_bytes)


@router.get("/data")
def data_page(request: Request, user: User, group: str) -> Response:
    """The datasets with their schemas and row counts, the upload form (admins) and the import jobs."""
    return _data_page(request, user, group)


@router.get("/data/imports/{job_id}")
def import_job_page(request: Request, user: User, group: str, job_id: int) -> Response:
    """One import job: its counts, report, error and first rejected lines (polled while it runs)."""
    job = _job(request, _group_id(request, user, group), job_id)
    return page(request, "data/import_job.html", title=f"Import job {job_id} · {group}", group=group,
                active="data", job=job, stages=STAGES)


@router.get("/data/imports/{job_id}/status")
def import_job_status(request: Request, user: User, group: str, job_id: int) -> Response:
    """The job's status fragment: progress while it runs (it polls itself every second), its report when done."""
    job = _job(request, _group_id(request, user, group), job_id)
    return _status_fragment(request, group, job)


def _status_fragment(request: Request, group: str, job: dict[str, Any], status: int = 200) -> Response:
    """The status fragment; once the job is done, its answer also fires ``recsmith-import-finished`` (the Data
    page then reloads its datasets and import jobs)."""
    headers = {"HX-Trigger": FINISHED_EVENT} if job["finished"] else None
    return page(request, "data/import_status.html", status=status, headers=headers, group=group, job=job,
                stages=STAGES)


# ----------------------------------------------------------------------------------------------- upload
def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _choice(form: FormData, name: str, allowed: tuple[str, ...], label: str) -> str:
    value = _text(form, name)
    if value not in allowed:
        shown = f"{value!r}" if value else "nothing"
        raise BadField(name, f"{label} must be one of {', '.join(allowed)}, not {shown}")
    return value


def parse_upload_form(form: FormData) -> UploadForm:
    """Check the upload form: a file whose name says its format, a dataset type, mode, on-error and column map.

    Raises
    ------
    BadField
        Naming the field and its bad value.
    """
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise BadField("file", "choose a file to import")
    filename = Path(upload.filename.replace("\\", "/")).name
    if format_of_name(filename) is None:
        known = ", ".join(sorted(SUFFIX_FORMATS))
        raise BadField("file", f"{filename!r}: the name does not say the format; name it with one of {known} "
                               "(optionally compressed: .gz, .bz2, .xz, .zst)")
    dataset_type = _choice(form, "dataset_type", DATASET_TYPES, "the dataset type")
    mode = _choice(form, "mode", MODES, "the mode")
    on_error = _choice(form, "on_error", ON_ERROR, "on error")
    try:
        column_map = parse_column_map(_text(form, "column_map"), "column_map") or None
    except ConfigError as exc:  # "column_map: 'x' is not ...": the field is named once
        raise BadField("column_map", str(exc).removeprefix("column_map: ")) from exc
    return UploadForm(upload, filename, dataset_type, mode, on_error, column_map)


def save_upload(source: IO[bytes], folder: Path, filename: str) -> Path:
    """Copy an uploaded file, a chunk at a time, to a new temporary file in ``folder`` whose name ends with
    ``filename`` (its suffix says the format); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[-120:]
    handle, name = tempfile.mkstemp(prefix="upload-", suffix=f"-{safe}", dir=folder)
    path = Path(name)
    try:
        with open(handle, "wb") as out:
            source.seek(0)
            shutil.copyfileobj(source, out, COPY_CHUNK_BYTES)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def run_upload(store: Store, group: str, form: UploadForm, path: Path, job_id: int, reject_path: Path,
               actor: str, source: str) -> None:
    """The import of an uploaded file (in the background): the recorded job records how it ended, its audit
    entry names the key; the temporary file is removed whatever happens."""
    try:
        with acting_as(actor, source):
            import_dataset(store, group, form.dataset_type, str(path), mode=form.mode,  # type: ignore[arg-type]
                           on_error=form.on_error, column_map=form.column_map,  # type: ignore[arg-type]
                           reject_path=reject_path, job_id=job_id)
    except RecsmithError as exc:  # bad data: the job's row says why
        logger.info("import job %s (console upload) failed: %s", job_id, str(exc).splitlines()[0])
    finally:
        path.unlink(missing_ok=True)


def _refuse_upload(request: Request, user: ConsoleUser, group: str) -> None:
    if not user.may("admin", group):
        audit_action(request, user.principal.key_id, "import.create", f"dataset-groups/{group}/import-jobs",
                     outcome="denied", status=403, detail={"role": user.role})
        user.require("admin", group)


def _bad_upload(request: Request, user: ConsoleUser, group: str, bad: BadField) -> Response:
    if is_htmx(request):
        return error_page(request, 400, bad.message, field=bad.field)
    return _data_page(request, user, group, status=400, upload_error=bad)


@router.post("/data/upload")
async def upload(request: Request, user: User, group: str) -> Response:
    """Import an uploaded file (admins): save it, record the job, run it in the background; answers with the job's
    status fragment (htmx) or sends the browser to the job's page."""
    await run_in_threadpool(_refuse_upload, request, user, group)
    store: Store = request.app.state.store
    group_id = (await run_in_threadpool(store.get_dataset_group, group)).id  # 404 before the file is looked at
    try:
        form = parse_upload_form(await request.form())
    except BadField as bad:
        return await run_in_threadpool(_bad_upload, request, user, group, bad)
    home = Path(request.app.state.settings.home)
    path = await run_in_threadpool(save_upload, form.file.file, home / "uploads", form.filename)
    try:
        job_id = await run_in_threadpool(record_import_job, store, group, form.dataset_type, form.filename, form.mode)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    actor, source = user.principal.key_id, request.client.host if request.client else "unknown"
    await run_in_threadpool(audit_action, request, actor, "import.create",
                            f"dataset-groups/{group}/import-jobs/{job_id}", status=202,
                            detail={"dataset_type": form.dataset_type, "mode": form.mode, "on_error": form.on_error,
                                    "file": form.filename, "bytes": path.stat().st_size,
                                    "column_map": form.column_map})
    reject_path = home / "rejects" / f"{group}-{form.dataset_type}-import-{job_id}.csv"
    try:
        request.app.state.jobs.submit(f"import job {job_id}", run_upload, store, group, form, path, job_id,
                                      reject_path, actor, source)
    except RuntimeError as exc:  # the server is stopping: it takes no new jobs
        path.unlink(missing_ok=True)
        await run_in_threadpool(store.fail_abandoned_job, "import", job_id, "the server was stopping; upload again")
        raise HTTPException(503, "the server is stopping and takes no new imports: upload the file again") from exc
    if not is_htmx(request):
        return RedirectResponse(f"/console/g/{group}/data/imports/{job_id}", status_code=303)
    job = await run_in_threadpool(_job, request, group_id, job_id)
    return _status_fragment(request, group, job, status=202)
