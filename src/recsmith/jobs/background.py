"""Long jobs started over HTTP (the console's imports, trainings and tunes), run in threads of the server process.

A request records the job first (its row, ``CREATE_PENDING`` or ``CREATE_IN_PROGRESS``, owned by this process)
and then hands the work to :class:`BackgroundJobs`, so every worker can show it at once and poll its status and
``progress`` from the store. A server stopped or killed mid-job leaves the row unfinished; the next start's
:func:`recsmith.jobs.runs.fail_abandoned_jobs` marks it failed, as for a killed CLI job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_THREADS = 1
"""Jobs run one at a time per server process by default: a training already uses the cores it is given."""


class BackgroundJobs:
    """A small pool of daemon threads for a server's long jobs.

    Parameters
    ----------
    threads : int
        How many jobs run at once in this process; the others wait their turn.
    """

    def __init__(self, threads: int = DEFAULT_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="recsmith-job")

    def submit(self, name: str, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``work(*args, **kwargs)`` in the background; a failure is logged with ``name`` (the job's own record
        says how it ended)."""

        def run() -> Any:
            try:
                return work(*args, **kwargs)
            except BaseException:
                logger.exception("background job %s failed", name)
                raise

        return self._pool.submit(run)

    def stop(self) -> None:
        """Drop the jobs not started yet and stop taking new ones (running ones finish in their threads; a server
        exiting meanwhile leaves them to :func:`~recsmith.jobs.runs.fail_abandoned_jobs`)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
