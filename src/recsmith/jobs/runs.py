"""One way to run a job (import, training, retraining): its statuses, its wall time and how a failure reads.

Statuses are Amazon Personalize's: a job is :data:`PENDING` when it is recorded, :data:`IN_PROGRESS` while it
runs, then :data:`ACTIVE` (done) or :data:`FAILED`.

Examples
--------
>>> def record(run: JobRun) -> None:  # doctest: +SKIP
...     store.update_solution_version(version_id, status=run.status, error=run.error,
...                                   total_seconds=run.seconds, **run.result)
>>> with run_job(record, progress=progress) as run:  # doctest: +SKIP
...     run.result["metrics"] = measure()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from recsmith.errors import RecsmithError

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
