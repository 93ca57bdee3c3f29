"""A dataset group's batch inference and batch segment jobs (admin): create one (it runs in the background and
answers at once, ``CREATE_PENDING``), list them, describe one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from recsmith.api.auth import Admin
from recsmith.api.responses import JSON
from recsmith.api.routes.deps import StoreDep
from recsmith.api.schemas import BatchInferenceJobIn, BatchJobOut, BatchSegmentJobIn, GroupPath, RowIdPath
from recsmith.jobs.batch import create_batch_inference_job, create_batch_segment_job, job_view

inference = APIRouter(prefix="/v1/dataset-groups/{group}/batch-inference-jobs", tags=["batch jobs"])
segments = APIRouter(prefix="/v1/dataset-groups/{group}/batch-segment-jobs", tags=["batch jobs"])

JobPath = Annotated[int, RowIdPath]


def _started(request: Request, job: dict[str, Any]) -> JSON:
    request.app.state.batch.submit(int(job["id"]))
    return JSON(job, status_code=202)


@inference.post("", response_model=BatchJobOut, status_code=202)
def create_inference_job(group: GroupPath, body: BatchInferenceJobIn, request: Request, store: StoreDep,
                         _: Admin) -> JSON:
    """Record a batch inference job and start it in the background (202, ``CREATE_PENDING``); poll ``GET
    …/{id}`` for its status and counts. Everything that can be checked first is (the version, the filter, the
    input, that the output can be written): a 400 or 404 names what is wrong."""
    job = create_batch_inference_job(store, request.app.state.settings, group=group,
                                     solution_version_id=body.solution_version_id, input=body.input,
                                     all_users=body.all_users, output=body.output, output_table=body.output_table,
                                     db_url=body.db_url, num_results=body.num_results, filter=body.filter,
                                     filter_values=body.filter_values, engine=body.engine,
                                     spark_master=body.spark_master, workers=body.workers)
    return _started(request, job)


@inference.get("", response_model=list[BatchJobOut])
def list_inference_jobs(group: GroupPath, store: StoreDep, _: Admin) -> JSON:
    """The group's batch inference jobs, oldest first."""
    return JSON([job_view(job) for job in store.list_batch_jobs(store.get_dataset_group(group).id, "inference")])


@inference.get("/{job_id}", response_model=BatchJobOut)
def get_inference_job(group: GroupPath, job_id: JobPath, store: StoreDep, _: Admin) -> JSON:
    """One batch inference job: status, counts (lines read, written, failed), duration, error."""
    return JSON(job_view(_job(store, group, job_id, "inference")))


@segments.post("", response_model=BatchJobOut, status_code=202)
def create_segment_job(group: GroupPath, body: BatchSegmentJobIn, request: Request, store: StoreDep,
                       _: Admin) -> JSON:
    """Record a batch segment job and start it in the background (202)."""
    job = create_batch_segment_job(store, request.app.state.settings, group=group,
                                   solution_version_id=body.solution_version_id, input=body.input,
                                   output=body.output, num_users=body.num_users, workers=body.workers)
    return _started(request, job)


@segments.get("", response_model=list[BatchJobOut])
def list_segment_jobs(group: GroupPath, store: StoreDep, _: Admin) -> JSON:
    """The group's batch segment jobs, oldest first."""
    return JSON([job_view(job) for job in store.list_batch_jobs(store.get_dataset_group(group).id, "segment")])


@segments.get("/{job_id}", response_model=BatchJobOut)
def get_segment_job(group: GroupPath, job_id: JobPath, store: StoreDep, _: Admin) -> JSON:
    """One batch segment job."""
    return JSON(job_view(_job(store, group, job_id, "segment")))


def _job(store: Any, group: str, job_id: int, kind: str) -> dict[str, Any]:
    from recsmith.errors import NotFoundError

    job = store.get_batch_job(job_id, kind)
    if job["dataset_group"] != group:
        raise NotFoundError(f"dataset group {group!r} has no batch {kind} job {job_id}")
    return job
