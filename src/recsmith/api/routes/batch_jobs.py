"""A dataset group's batch inference and batch segment jobs (admin): create one (it runs in the background and
answers at once, ``CREATE_PENDING``), list them, describe one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from recsmith.api.auth import Admin
from recsmith.api.responses import JSON
from recsmith.api.routes.deps import StoreDep
from recsmith.api.schemas import BatchInferenceJobIn, BatchJobOut, BatchSegmentJobIn, GroupPath, RowIdPath
from recsmith.errors import NotFoundError
from recsmith.jobs.batch import create_batch_inference_job, create_batch_segment_job, job_view
from recsmith.store.store import Store

inference = APIRouter(prefix="/v1/dataset-groups/{group}/batch-inference-jobs", tags=["batch jobs"])
segments = APIRouter(prefix="/v1/dataset-groups/{group}/batch-segment-jobs", tags=["batch jobs"])

JobPath = Annotated[int, RowIdPath]


def submit_batch_job(request: Request, job: dict[str, Any]) -> dict[str, Any]:
    """Queue a recorded batch job on the server's batch runner (``app.state.batch``: it runs in the background of
    this process); returns ``job``."""
    request.app.state.batch.submit(int(job["id"]))
    return job


def start_inference_job(request: Request, store: Store, group: str, body: BatchInferenceJobIn) -> dict[str, Any]:
    """Check and record the batch inference job ``body`` asks for (:func:`recsmith.jobs.batch.
    create_batch_inference_job`) and start it in the background; returns its view (``CREATE_PENDING``). The API's
    route and the console's form both start jobs here.

    Raises
    ------
    ConfigError, NotFoundError, DataError
        For a request that cannot run, naming what is wrong (nothing is recorded then).
    """
    job = create_batch_inference_job(store, request.app.state.settings, group=group,
                                     solution_version_id=body.solution_version_id, input=body.input,
                                     all_users=body.all_users, output=body.output, output_table=body.output_table,
                                     db_url=body.db_url, num_results=body.num_results, filter=body.filter,
                                     filter_values=body.filter_values, engine=body.engine,
                                     spark_master=body.spark_master, workers=body.workers)
    return submit_batch_job(request, job)


@inference.post("", response_model=BatchJobOut, status_code=202)
def create_inference_job(group: GroupPath, body: BatchInferenceJobIn, request: Request, store: StoreDep,
                         _: Admin) -> JSON:
    """Record a batch inference job and start it in the background (202, ``CREATE_PENDING``); poll ``GET
    …/{id}`` for its status and counts. Everything that can be checked first is (the version, the filter, the
    input, that the output can be written): a 400 or 404 names what is wrong."""
    return JSON(start_inference_job(request, store, group, body), status_code=202)


@inference.get("", response_model=list[BatchJobOut])
def list_inference_jobs(group: GroupPath, store: StoreDep, _: Admin) -> JSON:
    """The group's batch inference jobs, oldest first."""
    return JSON([job_view(job) for job in store.list_batch_jobs(store.get_dataset_group(group).id, "inference")])


@inference.get("/{job_id}", response_model=BatchJobOut)
def get_inference_job(group: GroupPath, job_id: JobPath, store: StoreDep, _: Admin) -> JSON:
    """One batch inference job: status, counts (lines read, written, failed), duration, error."""
    return JSON(job_view(group_batch_job(store, group, job_id, "inference")))


@segments.post("", response_model=BatchJobOut, status_code=202)
def create_segment_job(group: GroupPath, body: BatchSegmentJobIn, request: Request, store: StoreDep,
                       _: Admin) -> JSON:
    """Record a batch segment job and start it in the background (202)."""
    job = create_batch_segment_job(store, request.app.state.settings, group=group,
                                   solution_version_id=body.solution_version_id, input=body.input,
                                   output=body.output, num_users=body.num_users, workers=body.workers)
    return JSON(submit_batch_job(request, job), status_code=202)


@segments.get("", response_model=list[BatchJobOut])
def list_segment_jobs(group: GroupPath, store: StoreDep, _: Admin) -> JSON:
    """The group's batch segment jobs, oldest first."""
    return JSON([job_view(job) for job in store.list_batch_jobs(store.get_dataset_group(group).id, "segment")])


@segments.get("/{job_id}", response_model=BatchJobOut)
def get_segment_job(group: GroupPath, job_id: JobPath, store: StoreDep, _: Admin) -> JSON:
    """One batch segment job."""
    return JSON(job_view(group_batch_job(store, group, job_id, "segment")))


def group_batch_job(store: Store, group: str, job_id: int, kind: str | None = None) -> dict[str, Any]:
    """The batch job ``job_id`` of dataset group ``group`` (of ``kind``, ``inference`` or ``segment``, when given),
    as the store records it.

    Raises
    ------
    NotFoundError
        If the group has no such job (another group's job is not found either).
    """
    job = store.get_batch_job(job_id, kind)
    if job["dataset_group"] != group:
        raise NotFoundError(f"dataset group {group!r} has no batch {kind or ''} job {job_id}".replace("  ", " "))
    return job
