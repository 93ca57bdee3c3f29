"""Batch inference and batch segment jobs of a dataset group.

What the API's batch routes show (:func:`recsmith.jobs.batch.job_view` of :meth:`~recsmith.store.store.Store.
list_batch_jobs`), to the keys the API shows it to: admin keys of the group, as ``GET
/v1/dataset-groups/{group}/batch-inference-jobs`` requires. The list and a job's page refresh (htmx) while a job
runs. The form starts a batch inference job over every user of the group (``recsmith batch-inference create
--all-users``) through the function the API's route starts jobs with
(:func:`recsmith.api.routes.batch_jobs.start_inference_job`): recorded, then queued on the server's batch runner.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from recsmith.api.console.audit import audit_action
from recsmith.api.console.render import is_htmx, page
from recsmith.api.console.session import ConsoleUser, User
from recsmith.api.routes.batch_jobs import group_batch_job, start_inference_job
from recsmith.api.schemas import INT32_MAX, BatchInferenceJobIn, GroupPath, RowIdPath
from recsmith.jobs.batch import job_view
from recsmith.jobs.runs import ACTIVE
from recsmith.serving import MAX_RESULTS
from recsmith.store.store import UNFINISHED

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)

LIST_REFRESH_SECONDS = 2
"""How often the list refreshes while one of its jobs runs."""
JOB_REFRESH_SECONDS = 1
"""How often a running job's page refreshes."""

JobPath = Annotated[int, RowIdPath]


def _admin(request: Request, user: ConsoleUser, group: str) -> int:
    """The group's id, once the key is an admin of it (the API's batch routes are admin's)."""
    user.require("admin", group)
    return request.app.state.store.get_dataset_group(group).id


def _views(request: Request, group_id: int) -> list[dict[str, Any]]:
    """The group's batch jobs as the API shows them, newest first."""
    return [job_view(job) for job in reversed(request.app.state.store.list_batch_jobs(group_id))]


def _active_versions(request: Request, group_id: int) -> list[dict[str, Any]]:
    """The group's trained versions (those a job can use), newest first."""
    versions = request.app.state.store.list_solution_versions(group_id)
    return [v for v in reversed(versions) if v["status"] == ACTIVE and v.get("artifact_uri")]


def _running(jobs: list[dict[str, Any]]) -> bool:
    return any(job["status"] in UNFINISHED for job in jobs)


@router.get("/batch-jobs")
def batch_jobs(request: Request, user: User, group: GroupPath) -> Response:
    """The group's batch jobs, newest first; for htmx the list alone (polled while a job runs)."""
    group_id = _admin(request, user, group)
    jobs = _views(request, group_id)
    context = {"group": group, "jobs": jobs, "running": _running(jobs), "every": LIST_REFRESH_SECONDS}
    if is_htmx(request):
        return page(request, "batch/jobs_table.html", **context)
    return page(request, "batch/jobs.html", title=f"Batch jobs of {group}", active="batch",
                versions=_active_versions(request, group_id), max_results=MAX_RESULTS, **context)


@router.post("/batch-jobs")
def create_batch_job(request: Request, user: User, group: GroupPath,
                     solution_version_id: Annotated[int, Form(ge=1, le=INT32_MAX)],
                     output: Annotated[str, Form(min_length=1, max_length=4096)],
                     num_results: Annotated[int, Form(ge=1, le=MAX_RESULTS)] = 25) -> Response:
    """Start a batch inference job over every user of the group, writing to ``output`` (a path or fsspec URL the
    server can write, ending in ``.jsonl`` or ``.parquet``); then the job's page (for htmx, ``HX-Redirect`` to
    it). A request that cannot run is refused (4xx) naming what is wrong, and no job is recorded."""
    _admin(request, user, group)
    try:
        body = BatchInferenceJobIn(solution_version_id=solution_version_id, all_users=True, output=output.strip(),
                                   num_results=num_results)
    except ValidationError as exc:  # the API's checks of the values (text the store can keep)
        raise RequestValidationError(exc.errors()) from None
    job = start_inference_job(request, request.app.state.store, group, body)
    audit_action(request, user.principal.key_id, "batch_inference_job.create",
                 f"dataset-groups/{group}/batch-inference-jobs/{job['id']}", status=202,
                 detail={"solution_version_id": solution_version_id, "all_users": True, "output": job["output"],
                         "num_results": num_results})
    location = f"/console/g/{group}/batch-jobs/{job['id']}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


@router.get("/batch-jobs/{job_id}")
def batch_job(request: Request, user: User, group: GroupPath, job_id: JobPath) -> Response:
    """One batch job: status, counts, duration, error, its config; for htmx the details alone (polled while it
    runs)."""
    _admin(request, user, group)
    job = job_view(group_batch_job(request.app.state.store, group, job_id))
    context = {"group": group, "job": job, "running": job["status"] in UNFINISHED, "every": JOB_REFRESH_SECONDS}
    if is_htmx(request):
        return page(request, "batch/job_props.html", **context)
    return page(request, "batch/job.html", title=f"Batch {job['kind']} job {job_id}", active="batch", **context)
