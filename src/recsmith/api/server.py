"""Running the API: uvicorn worker processes on one shared listening socket, balanced, with slow-client limits.

**Balance.** Each worker used to have its own ``SO_REUSEPORT`` socket, and the kernel hashes each new connection
to one of them: with 4 keep-alive connections on 2 workers, all 4 land on one worker one run in 8 (measured with
``benchmarks/serve_load.py``: 424 against 913 req/s), because the hash places connections, not requests. Now the
parent binds one socket and every worker accepts from it, and the workers share a count of their open
connections (shared memory, one slot per worker): a worker holding more than the least loaded one leaves a
waiting connection to the others for up to :data:`BALANCE_GRACE_SECONDS`, so they take it first; if none does
(its loop is busy), the busier worker takes it after all, and nothing waits longer than that. uvicorn's own
``--workers`` shares one socket too, without the counts, and under keep-alive load the first worker to wake took
whole bursts of connections (3 of 4 runs unbalanced).

**Slow clients.** uvicorn (httptools) has no header-read timeout: a connection that sends half a request stays
open for ever. :class:`GuardedHttpProtocol` adds one: from the connection's start, or a request's first byte, its
headers must arrive within ``RECSMITH_HEADER_TIMEOUT_SECONDS`` and then its body within
``RECSMITH_BODY_TIMEOUT_SECONDS``; otherwise the client gets a ``408`` (nothing if it sent nothing) and the
connection is closed. Idle keep-alive connections close after uvicorn's 5 s.

**Connection limit.** A worker holding ``RECSMITH_MAX_CONNECTIONS`` connections makes room for a new one by
closing the connection that has waited longest for its headers, else the longest idle keep-alive one (so slow
clients cannot lock normal ones out); when every connection has a request in flight it answers the new one at once
with a ``503`` JSON error (``Connection: close``, ``Retry-After: 1``) and closes it, instead of running out of file
descriptors, which would break every other request. At start the soft ``RLIMIT_NOFILE`` is raised to the hard
limit; each worker needs ``max_connections`` + :data:`FD_RESERVE` descriptors, and the limit is lowered (with a
warning) to fit.

The parent process only supervises: it restarts a worker that dies after running a while and stops them all on
SIGTERM/SIGINT; a worker whose parent is gone stops too.

Each worker's BLAS is limited to one thread: two workers' OpenBLAS thread pools fighting over the cores made
a request cost 4.3 ms of CPU instead of 1.3 ms (measured, same benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http
import logging
import multiprocessing
import os
import re
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from recsmith.api.responses import error

logger = logging.getLogger(__name__)

APP = "recsmith.api.app:app_from_environment"
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
RESTART_AFTER_SECONDS = 10.0
"""A worker that dies sooner than this after starting is not restarted: the server stops (a bad setting)."""
FD_RESERVE = 200
"""File descriptors a worker needs besides its client connections: the listening socket, database connections
and files, the metrics files, Redis, logs, refused connections being closed."""
BALANCE_GRACE_SECONDS = 0.05
"""How long a worker holding more connections than another leaves a waiting connection to the others."""
BALANCE_POLL_SECONDS = 0.001
"""Meanwhile it looks at the counts this often, and takes the connection as soon as it is no longer the busier."""
REFUSED_LINGER_SECONDS = 1.0
"""A refused connection stays open this long (reading and dropping what the client sends) so that the client
reads the 503 instead of a reset; at most :data:`MAX_LINGERING` at a time per worker, the rest close at once."""
MAX_LINGERING = 64
LOG_EVERY_SECONDS = 10.0
METRICS_PREFIX = "recsmith-metrics-"
_METRICS_NAME = re.compile(re.escape(METRICS_PREFIX) + r"(\d+)-")


# ------------------------------------------------------------------------------------------------ limits
@dataclass(frozen=True)
class Limits:
    """The slow-client and connection limits of each worker.

    Attributes
    ----------
    header_timeout : float
        Seconds a connection (or a request, from its first byte) has to send its headers.
    body_timeout : float
        Seconds a request has, after its headers, to send its body.
    max_connections : int
        Open connections per worker; more are refused with a 503.
    fd_limit : int or None
        The soft ``RLIMIT_NOFILE`` of each process (``None``: unlimited or unknown).
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    fd_limit: int | None = None


def raise_fd_limit() -> tuple[int | None, int | None]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (children inherit it).

    Returns
    -------
    tuple of (int or None, int or None)
        The soft and hard limits afterwards; ``None`` for unlimited.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the file-descriptor limit from %d to %d: %s", soft, target, exc)
    unlimited = resource.RLIM_INFINITY
    return (None if soft == unlimited else soft), (None if hard == unlimited else hard)


def connection_limits(header_timeout: float, body_timeout: float, max_connections: int) -> Limits:
    """The limits to serve with: raises the file-descriptor limit, and lowers ``max_connections`` to what it allows.

    Each worker process needs ``max_connections`` + :data:`FD_RESERVE` file descriptors (``ulimit -n``, or
    ``LimitNOFILE=`` in a systemd unit); all workers together need that many times the workers from the
    system-wide limit (``fs.file-max``).
    """
    soft, hard = raise_fd_limit()
    allowed = max_connections if soft is None else max(1, soft - FD_RESERVE)
    if allowed < max_connections:
        logger.warning("the file-descriptor limit is %d per process (hard limit %s): each worker takes at most %d "
                       "connections, not RECSMITH_MAX_CONNECTIONS=%d; raise `ulimit -n` (LimitNOFILE= under systemd) "
                       "to at least %d", soft, hard, allowed, max_connections, max_connections + FD_RESERVE)
    limits = Limits(header_timeout, body_timeout, min(max_connections, allowed), soft)
    logger.info("file-descriptor limit %s per process (hard %s); up to %d connections per worker",
                soft or "unlimited", hard or "unlimited", limits.max_connections)
    return limits


def _raw_response(status: int, message: str, *headers: str) -> bytes:
    """A complete HTTP/1.1 response with the API's JSON error body and ``Connection: close``."""
    body = bytes(error(status, message).body)
    head = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}", "content-type: application/json",
            f"content-length: {len(body)}", "connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


# -------------------------------------------------------------------------------------------- the balance
class Balance:
    """The open-connection counts of all workers (shared memory); this worker writes only its own slot.

    Parameters
    ----------
    counts : sequence of int
        A ``multiprocessing`` shared array, one slot per worker.
    index : int
        This worker's slot.
    """

    def __init__(self, counts: Any, index: int) -> None:
        self.counts = counts
        self.index = index

    def opened(self) -> None:
        self.counts[self.index] += 1

    def closed(self) -> None:
        self.counts[self.index] -= 1

    def over_share(self) -> bool:
        """Whether another worker holds fewer connections than this one."""
        mine = self.counts[self.index]
        return any(count < mine for i, count in enumerate(self.counts) if i != self.index)


# -------------------------------------------------------------------------------------------- the protocol
class _Throttled:
    """A warning at most every :data:`LOG_EVERY_SECONDS`, with the count of events since the last one."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.count = 0
        self.last = 0.0

    def __call__(self, *args: Any) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= LOG_EVERY_SECONDS:
            logger.warning(self.message, self.count, *args)
            self.count, self.last = 0, now


_log_refused = _Throttled("refused %d connection(s) with 503: %d open, the limit is %d per worker "
                          "(RECSMITH_MAX_CONNECTIONS)")
_log_evicted = _Throttled("closed %d connection(s) waiting for headers or idle, to make room for new ones: the "
                          "limit is %d per worker (RECSMITH_MAX_CONNECTIONS)")
_log_timed_out = _Throttled("closed %d slow connection(s): %s not received in time")


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body timeouts and a per-worker connection limit.

    Build a configured subclass with :func:`protocol_class`; uvicorn instantiates it per connection.
    """

    limits: ClassVar[Limits] = Limits()
    balance: ClassVar[Balance | None] = None
    lingering: ClassVar[int] = 0  # refused connections of this process not yet closed

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase = "idle"  # "headers" (a request, or the connection, has begun), "body", "idle"
        self._begun = False  # bytes of the current request have arrived
        self._since = 0.0  # loop time the phase began
        self._refused = False
        self._lingers = False

    # connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections and not self._evict_one():
            self._refuse(transport)
            return
        super().connection_made(transport)
        self._phase, self._since = "headers", self.loop.time()
        self._arm(self.limits.header_timeout, self._headers_timed_out)

    def _evict_one(self) -> bool:
        """Make room for a new connection: close the one waiting longest for its headers, else the longest idle
        keep-alive one. False when every connection has a request in flight (the new one is refused)."""
        victim, rank = None, None
        for other in self.connections:
            if not isinstance(other, GuardedHttpProtocol) or other.transport.is_closing():
                continue
            if other.cycle is not None and not other.cycle.response_complete:
                continue  # a request in flight
            order = {"headers": 0, "idle": 1}.get(other._phase)
            if order is not None and (rank is None or (order, other._since) < rank):
                victim, rank = other, (order, other._since)
        if victim is None:
            return False
        self.connections.discard(victim)
        victim.transport.close()
        _log_evicted(self.limits.max_connections)
        return True

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refused = True
        self.transport = transport
        limit = self.limits.max_connections
        transport.write(_raw_response(503, f"the server holds its limit of {limit} connections per worker; "
                                           "retry shortly", "retry-after: 1"))
        _log_refused(len(self.connections), limit)
        if GuardedHttpProtocol.lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()  # the client reads the 503, then the end; what it sends is dropped
        GuardedHttpProtocol.lingering += 1
        self._lingers = True
        self._timer = self.loop.call_later(REFUSED_LINGER_SECONDS, transport.abort)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.balance is not None:
            self.balance.closed()
        if self._refused:
            if self._lingers:
                GuardedHttpProtocol.lingering -= 1
            return
        super().connection_lost(exc)

    # parser callbacks (httptools)
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        if self._phase != "headers":  # a keep-alive connection's next request; the first keeps its deadline
            self._phase, self._since = "headers", self.loop.time()
            self._arm(self.limits.header_timeout, self._headers_timed_out)

    def on_headers_complete(self) -> None:
        self._phase = "body"
        self._arm(self.limits.body_timeout, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase, self._since = "idle", self.loop.time()
        self._begun = False
        self._disarm()
        super().on_message_complete()

    # timers
    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        in_response = self.cycle is not None and not self.cycle.response_complete
        if self._begun and not in_response:
            self.transport.write(_raw_response(408, f"the request headers did not arrive within "
                                                    f"{self.limits.header_timeout:g} s "
                                                    "(RECSMITH_HEADER_TIMEOUT_SECONDS)"))
        _log_timed_out("request headers")
        self.transport.close()

    def _body_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            cycle.disconnected = True  # the app sees the client gone, and what it still sends is dropped
            cycle.message_event.set()
            self.transport.write(_raw_response(408, f"the request body did not arrive within "
                                                    f"{self.limits.body_timeout:g} s (RECSMITH_BODY_TIMEOUT_SECONDS)"))
        _log_timed_out("request body")
        self.transport.close()


def protocol_class(limits: Limits, balance: Balance | None = None) -> type[GuardedHttpProtocol]:
    """A :class:`GuardedHttpProtocol` subclass with these limits, for ``uvicorn.Config(http=...)``."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"limits": limits, "balance": balance})


# ------------------------------------------------------------------------------------------ the workers
class _BalancedServer(uvicorn.Server):
    """A uvicorn server accepting from a shared socket itself, balanced by the shared connection counts."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, balance: Balance, parent: int) -> None:
        super().__init__(config)
        self.sock = sock
        self.balance = balance
        self.parent = parent
        self._accepting: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        config, loop = self.config, asyncio.get_running_loop()

        def create_protocol() -> asyncio.Protocol:
            return config.http_protocol_class(config=config, server_state=self.server_state,  # type: ignore[call-arg]
                                              app_state=self.lifespan.state, _loop=loop)

        self.servers = []
        self.sock.setblocking(False)
        self._accepting = loop.create_task(self._accept_loop(create_protocol))
        self._accepting.add_done_callback(self._accepting_ended)
        self.started = True

    def _accepting_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("worker %d stopped accepting connections; it stops (the server starts another)", os.getpid(),
                         exc_info=task.exception())
            self.should_exit = True

    async def _wait_readable(self) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_reader(self.sock.fileno(), lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(self.sock.fileno())

    async def _accept_loop(self, create_protocol: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_readable()
            waited = 0.0
            while self.balance.over_share() and waited < BALANCE_GRACE_SECONDS:  # a less loaded worker takes it,
                await asyncio.sleep(BALANCE_POLL_SECONDS)                         # else this one does after all
                waited += BALANCE_POLL_SECONDS
            for _ in range(64):  # a burst, while this worker's share allows
                try:
                    conn, _ = self.sock.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    break
                except OSError as exc:  # out of descriptors or memory, or another error: keep accepting later
                    short = exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
                    logger.warning("cannot accept a connection: %s%s", exc, "; the file-descriptor limit is too "
                                   "low for RECSMITH_MAX_CONNECTIONS" if short else "")
                    await asyncio.sleep(0.5)
                    break
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.balance.opened()
                try:
                    await loop.connect_accepted_socket(create_protocol, conn)
                except Exception:
                    logger.exception("could not set up an accepted connection")
                    self.balance.closed()
                    conn.close()
                if self.balance.over_share():
                    break

    async def on_tick(self, counter: int) -> bool:
        if counter % 10 == 0 and os.getppid() != self.parent:
            logger.warning("the server's parent process is gone; worker %d stops", os.getpid())
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        self.sock.close()
        await super().shutdown(sockets=None)


def _worker(sock: socket.socket, counts: Any, index: int, parent: int, limits: Limits, log_level: str) -> None:
    balance = Balance(counts, index)
    config = uvicorn.Config(APP, factory=True, log_level=log_level, access_log=False, timeout_graceful_shutdown=10,
                            http=protocol_class(limits, balance))
    _BalancedServer(config, sock, balance, parent).run()


def _listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def limit_blas_threads() -> None:
    """One BLAS thread per server process unless the user set the variables (children inherit them)."""
    for name in BLAS_VARIABLES:
        os.environ.setdefault(name, "1")


def run(host: str, port: int, workers: int, log_level: str = "warning", limits: Limits | None = None) -> None:
    """Serve the API until SIGTERM or SIGINT.

    Parameters
    ----------
    host, port : str, int
        The address to listen on.
    workers : int
        Server processes; 1 runs in this process.
    log_level : str
        uvicorn's log level.
    limits : Limits, optional
        Slow-client and connection limits (default: :func:`connection_limits` from the defaults).

    Raises
    ------
    OSError
        If the address cannot be bound (in use, not local).
    """
    limit_blas_threads()
    if limits is None:
        defaults = Limits()
        limits = connection_limits(defaults.header_timeout, defaults.body_timeout, defaults.max_connections)
    if workers == 1:
        # uvicorn re-raises the stop signal once it is done: with a handler that ignores it, this returns (and
        # the caller cleans up) instead of the process dying of the signal
        previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            uvicorn.run(APP, factory=True, host=host, port=port, workers=1, log_level=log_level, access_log=False,
                        timeout_graceful_shutdown=10, http=protocol_class(limits))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return
    sock = _listening_socket(host, port)  # OSError here when the address is taken
    context = multiprocessing.get_context("spawn")
    counts = context.RawArray("i", workers)
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    def start(index: int) -> tuple[Any, float]:
        counts[index] = 0
        process = context.Process(target=_worker, args=(sock, counts, index, os.getpid(), limits, log_level),
                                  name=f"recsmith-worker-{index}")
        process.start()
        return process, time.monotonic()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes: list[tuple[Any, float]] = []
    try:
        for index in range(workers):
            processes.append(start(index))
        while not stopping:
            time.sleep(0.2)
            for index, (process, started) in enumerate(processes):
                if process.is_alive() or stopping:
                    continue
                if time.monotonic() - started < RESTART_AFTER_SECONDS:
                    logger.error("worker %s exited with %s right after starting; stopping", process.pid,
                                 process.exitcode)
                    stopping = True
                    break
                logger.warning("worker %s exited with %s; starting another", process.pid, process.exitcode)
                processes[index] = start(index)
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
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ------------------------------------------------------------------------------------- metrics folders
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_metrics_folders(parent: Path | None = None) -> list[Path]:
    """Remove the metrics folders (``recsmith-metrics-<pid>-*``) of servers whose process is gone.

    Only this user's folders named with a pid are considered; a live pid's folder is kept.

    Returns
    -------
    list of Path
        The folders removed.
    """
    parent = Path(parent or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries: Sequence[Path] = list(parent.glob(METRICS_PREFIX + "*"))
    except OSError:
        return removed
    for path in entries:
        match = _METRICS_NAME.match(path.name)
        if match is None:
            continue
        try:
            info = path.lstat()
        except OSError:
            continue
        if not path.is_dir() or path.is_symlink() or info.st_uid != os.getuid() or _alive(int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        logger.info("removed %d metrics folder(s) of servers that are gone: %s", len(removed),
                    ", ".join(str(p) for p in removed))
    return removed


@contextlib.contextmanager
def metrics_folder() -> Iterator[Path]:
    """A fresh ``recsmith-metrics-<pid>-*`` folder in the temporary folder for the workers' shared metrics
    (``PROMETHEUS_MULTIPROC_DIR``, set for the block and restored after it, so a process that goes on, such as a
    test, is not left pointing at a removed folder), removed on exit; stale ones of dead servers are removed first."""
    remove_stale_metrics_folders()
    path = Path(tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-"))
    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)  # the workers share their metrics through it
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
        shutil.rmtree(path, ignore_errors=True)
