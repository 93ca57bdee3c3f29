"""One way to run a job (import, training, retraining): its statuses, its wall time and how a failure reads.

Statuses are Amazon Personalize's: a job is :data:`PENDING` when it is recorded, :data:`IN_PROGRESS` while it
runs, then :data:`ACTIVE` (done) or :data:`FAILED`.

A job records the process running it (:func:`owner_columns`); a process killed mid-job (``kill -9``, power
loss) cannot record anything, so every job that starts first calls :func:`fail_abandoned_jobs`, which marks
the unfinished jobs of processes that are gone :data:`FAILED` and removes their temporary artifact folders.

Examples
--------
>>> def record(run: JobRun) -> None:  # doctest: +SKIP
...     store.update_solution_version(version_id, status=run.status, error=run.error,
...                                   total_seconds=run.seconds, **run.result)
>>> with run_job(record, progress=progress) as run:  # doctest: +SKIP
...     run.result["metrics"] = measure()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsmith.atomic import ProcessOwner, current_owner, remove_orphaned_temp_folders
from recsmith.errors import RecsmithError

if TYPE_CHECKING:
    from recsmith.store.store import Store

logger = logging.getLogger(__name__)

PENDING = "CREATE_PENDING"
"""Recorded, not started."""
IN_PROGRESS = "CREATE_IN_PROGRESS"
"""Running."""
ACTIVE = "ACTIVE"
"""Done: what the job made can be used."""
FAILED = "CREATE_FAILED"
"""Failed (or interrupted): the job's ``error`` says why, and nothing it would have made is used."""
STATUSES = (PENDING, IN_PROGRESS, ACTIVE, FAILED)

#: Called with a stage name ("read", ..., "done") so a caller can show progress.
ProgressCallback = Callable[[str], None]


def failure_message(exc: BaseException) -> str:
    """What a failed job records as its ``error``: a recsmith error's own message (it says what was wrong and
    how to fix it), another exception's type and message, or that it was interrupted."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted; nothing was written"
    if isinstance(exc, RecsmithError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclass
class JobRun:
    """A job's run, as :func:`run_job` hands it to its body and then to the callback that records it.

    Attributes
    ----------
    started : float
        ``time.perf_counter()`` when the run started.
    status : str
        :data:`IN_PROGRESS` in the body; :data:`ACTIVE` or :data:`FAILED` when it is recorded.
    error : str or None
        :func:`failure_message` of the exception that failed the run.
    result : dict
        What the body wants recorded with the outcome (for example metrics or row counts).
    """

    started: float = field(default_factory=time.perf_counter)
    status: str = IN_PROGRESS
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether the run failed."""
        return self.status == FAILED

    @property
    def seconds(self) -> float:
        """Wall time since the run started, rounded to 0.1 ms."""
        return round(time.perf_counter() - self.started, 4)


@contextmanager
def run_job(record: Callable[[JobRun], None], *, progress: ProgressCallback | None = None,
            started: float | None = None) -> Iterator[JobRun]:
    """Run a job's body and record how it ended, whatever happened.

    The body's run is :data:`IN_PROGRESS`. When the body returns, it is :data:`ACTIVE`; when it raises
    (``KeyboardInterrupt`` too), it is :data:`FAILED` with :func:`failure_message` as its ``error``, and the
    exception goes on to the caller. Either way ``record(run)`` is called once, then ``progress("done")``.

    Parameters
    ----------
    record : callable
        Called with the finished :class:`JobRun`: it writes the outcome (the job's row, its report).
    progress : callable, optional
        Called with ``"done"`` after the run is recorded.
    started : float, optional
        ``time.perf_counter()`` when the job started, if it started before the run (default: now).
    """
    run = JobRun() if started is None else JobRun(started=started)
    try:
        yield run
        run.status = ACTIVE
    except BaseException as exc:
        run.status, run.error = FAILED, failure_message(exc)
        raise
    finally:
        record(run)
        if progress:
            progress("done")


def owner_columns(owner: ProcessOwner | None = None) -> dict[str, Any]:
    """The store columns naming the process that runs a job (default: this one)."""
    owner = owner or current_owner()
    return {"owner_host": owner.host, "owner_pid": owner.pid, "owner_started": owner.started}


def fail_abandoned_jobs(store: Store, artifact_dir: str | Path | None = None) -> list[str]:
    """Mark :data:`FAILED` the unfinished import jobs, solution versions and batch jobs whose process is gone, and
    remove the temporary folders killed writers left in ``artifact_dir``.

    A job's process is gone when it ran on this host and its pid is no longer running (or is now another
    process, started at another time). Jobs run on other hosts, and jobs recorded before owners were (no
    ``owner_pid``), are left as they are. The job's ``error`` reads "the process running it (pid N on host H)
    is gone".

    Parameters
    ----------
    store : Store
        Where the jobs are recorded.
    artifact_dir : path, optional
        The artifacts folder (``Settings.resolved_artifact_dir()``) to clean of orphaned temporary folders.

    Returns
    -------
    list of str
        One line per job failed and per folder removed (also logged at WARNING).
    """
    done: list[str] = []
    for job in store.running_jobs():
        owner = ProcessOwner(job["owner_host"] or "", int(job["owner_pid"]), job["owner_started"])
        if not owner.is_gone():
            continue
        error = f"the process running it ({owner.describe()}) is gone: it was killed or its machine stopped"
        if store.fail_abandoned_job(job["kind"], int(job["id"]), error):
            name = {"import": "import job", "batch": "batch job"}.get(job["kind"], "solution version")
            done.append(f"{name} {job['id']} marked {FAILED}: {error}")
    if artifact_dir is not None:
        done.extend(f"removed {path}, left by a killed writer" for path in remove_orphaned_temp_folders(artifact_dir))
    for line in done:
        logger.warning("%s", line)
    return done
