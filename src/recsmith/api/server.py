"""Running the API: uvicorn worker processes, each with its own ``SO_REUSEPORT`` listening socket.

uvicorn's own ``--workers`` shares one listening socket between the workers, and under keep-alive load the
first worker to wake accepts a whole burst of connections: measured with ``benchmarks/serve_load.py``, in 3 of
4 runs one worker took every connection and throughput halved. With one socket per worker in a
``SO_REUSEPORT`` group the kernel spreads new connections over the workers. The parent process only
supervises: it restarts a worker that dies after running a while and stops them all on SIGTERM/SIGINT.

Each worker's BLAS is limited to one thread: two workers' OpenBLAS thread pools fighting over the cores made
a request cost 4.3 ms of CPU instead of 1.3 ms (measured, same benchmark).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from typing import Any

logger = logging.getLogger(__name__)

APP = "recsmith.api.app:app_from_environment"
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
RESTART_AFTER_SECONDS = 10.0
"""A worker that dies sooner than this after starting is not restarted: the server stops (a bad setting)."""


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(host: str, port: int, log_level: str) -> None:
    import uvicorn

    sock = _listening_socket(host, port)
    sock.listen(2048)
    config = uvicorn.Config(APP, factory=True, log_level=log_level, access_log=False, timeout_graceful_shutdown=10)
    uvicorn.Server(config).run(sockets=[sock])


def limit_blas_threads() -> None:
    """One BLAS thread per server process unless the user set the variables (children inherit them)."""
    for name in BLAS_VARIABLES:
        os.environ.setdefault(name, "1")


def run(host: str, port: int, workers: int, log_level: str = "warning") -> None:
    """Serve the API until SIGTERM or SIGINT.

    Raises
    ------
    OSError
        If the address cannot be bound (in use, not local).
    """
    limit_blas_threads()
    if workers == 1 or not hasattr(socket, "SO_REUSEPORT"):
        import uvicorn

        uvicorn.run(APP, factory=True, host=host, port=port, workers=workers, log_level=log_level, access_log=False,
                    timeout_graceful_shutdown=10)
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:  # fail here when it is taken
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # without SO_REUSEPORT: another server's
        probe.bind((host, port))                                      # reuse-port group must not be joined
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes: list[tuple[Any, float]] = []
    try:
        for _ in range(workers):
            process = context.Process(target=_worker, args=(host, port, log_level), name="recsmith-worker")
            process.start()
            processes.append((process, time.monotonic()))
        while not stopping:
            time.sleep(0.2)
            for i, (process, started) in enumerate(processes):
                if process.is_alive() or stopping:
                    continue
                if time.monotonic() - started < RESTART_AFTER_SECONDS:
                    logger.error("worker %s exited with %s right after starting; stopping", process.pid,
                                 process.exitcode)
                    stopping = True
                    break
                logger.warning("worker %s exited with %s; starting another", process.pid, process.exitcode)
                replacement = context.Process(target=_worker, args=(host, port, log_level), name="recsmith-worker")
                replacement.start()
                processes[i] = (replacement, time.monotonic())
    finally:
        for process, _ in processes:
            if process.is_alive():
                process.terminate()  # uvicorn finishes the requests in flight
        deadline = time.monotonic() + 15
        for process, _ in processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
