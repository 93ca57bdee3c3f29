"""Write a folder or a file so that readers see either the old one or the complete new one, never half of it,
and so that what was renamed into place is on disk (fsync) before the rename.

Also who writes: :class:`ProcessOwner` names a running process (host, pid, start time) so that what a killed
process left behind (its temporary folders here, its jobs in the store) can be told from what a live one is
still writing, and cleaned up.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# ------------------------------------------------------------------------------------------------ owners


@dataclass(frozen=True)
class ProcessOwner:
    """A process, named well enough to tell later whether it is still running.

    Attributes
    ----------
    host : str
        ``socket.gethostname()`` of the machine it runs on. Processes that share a host name are taken to share
        one pid space: containers that share a store must have distinct host names (not ``--network host``
        with the host's name), or one would take the other's running jobs for abandoned ones. (A restarted
        container keeps its name and gets new pids: its killed jobs are found, by pid or by start time.)
    pid : int
        Its process id.
    started : float or None
        When it started (epoch seconds, to 0.01 s, from ``/proc``; None where there is no ``/proc``): a pid
        reused by a later process has another start time.
    """

    host: str
    pid: int
    started: float | None

    @property
    def tag(self) -> str:
        """``<host hash>-<pid>-<start in centiseconds>``: what temporary folder names carry."""
        started = 0 if self.started is None else round(self.started * 100)
        return f"{_host_hash(self.host)}-{self.pid}-{started}"

    def is_gone(self) -> bool:
        """Whether this process has ended: True only when it ran on this host and its pid is not running, is a
        zombie, or now belongs to a process started at another time. A process on another host is never
        called gone (it cannot be checked from here)."""
        if self.host != socket.gethostname():
            return False
        return not _pid_is(self.pid, self.started)

    def describe(self) -> str:
        """``pid N on host H``, for messages."""
        return f"pid {self.pid} on host {self.host}"


def current_owner() -> ProcessOwner:
    """This process as a :class:`ProcessOwner`."""
    return ProcessOwner(socket.gethostname(), os.getpid(), process_start_time(os.getpid()))


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started, in epoch seconds rounded to 0.01 s (None when unknown: no such process,
    or no ``/proc``)."""
    fields = _proc_stat(pid)
    boot = _boot_time()
    if fields is None or boot is None:
        return None
    try:
        ticks = int(fields[19])  # field 22 of /proc/PID/stat: start time in clock ticks after boot
    except (IndexError, ValueError):
        return None
    return round(boot + ticks / os.sysconf("SC_CLK_TCK"), 2)


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (field 3 on), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


@functools.cache
def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _pid_is(pid: int, started: float | None) -> bool:
    """Whether ``pid`` is a live (not zombie) process that started at ``started`` (when known)."""
    if pid <= 0:
        return False
    fields = _proc_stat(pid)
    if fields is not None:
        if fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent
            return False
        now = process_start_time(pid)
        return started is None or now is None or round(now * 100) == round(started * 100)
    if Path("/proc/self/stat").exists():  # /proc works and has no such pid
        return False
    try:  # no /proc (macOS, Windows): whether the pid exists at all
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _host_hash(host: str) -> str:
    return hashlib.sha256(host.encode()).hexdigest()[:8]


# ------------------------------------------------------------------------------------------------ fsync


def fsync_path(path: str | Path) -> None:
    """Flush a file's or a folder's data and metadata to disk (folders: where the OS allows opening them)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (IsADirectoryError, PermissionError):  # Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:  # a folder on a platform or filesystem that refuses fsync on it
        if not Path(path).is_dir():
            raise
    finally:
        os.close(fd)


def fsync_tree(folder: str | Path) -> None:
    """fsync every file under ``folder``, then every folder bottom-up, ``folder`` itself last."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_path(os.path.join(root, name))
        for name in dirs:
            fsync_path(os.path.join(root, name))
    fsync_path(folder)


# ------------------------------------------------------------------------------------------ atomic writes

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<started>\d+)"
                        r"\.(?P<rest>old|[a-z0-9_]+)$")


@contextmanager
def atomic_folder(target: str | Path, *, seal: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; when the block succeeds, it replaces ``target``.

    Before the rename, every file and folder written is made private (0600, 0700) and fsynced; after it, the
    parent folder is, so a power loss leaves the old folder or the complete new one. If the block raises (or is
    interrupted), the temporary folder is removed and ``target`` is untouched; if the process is killed, the
    folder (named after its writer: ``.<name>.<host hash>-<pid>-<start>.<random>``) is removed later by
    :func:`remove_orphaned_temp_folders`.

    Parameters
    ----------
    target : str or Path
        The folder to write.
    seal : callable, optional
        Called with the temporary folder once the block has written it, before the fsync and rename (for
        example to checksum or encrypt its files).

    Examples
    --------
    >>> with atomic_folder("model") as tmp:  # doctest: +SKIP
    ...     (tmp / "meta.json").write_text("{}")
    """
    final = Path(target)
    final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tag = current_owner().tag
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{tag}.", dir=final.parent))
    try:
        yield tmp
        if seal is not None:
            seal(tmp)
        for path in tmp.rglob("*"):  # artifacts hold users' data: readable by the owner only
            path.chmod(0o700 if path.is_dir() else 0o600)
        fsync_tree(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.{tag}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            fsync_path(final.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
            fsync_path(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary file's path beside ``target``; when the block succeeds, the file is fsynced and renamed
    onto ``target`` (then the parent folder is fsynced). On an error it is removed and ``target`` is untouched.

    Parameters
    ----------
    target : str or Path
        The file to write (parent folders are created).

    Examples
    --------
    >>> with atomic_file("report.html") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("<html>...</html>")
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.{current_owner().tag}.", dir=final.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, final)
        fsync_path(final.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def is_local_target(target: str | Path) -> bool:
    """Whether ``target`` is a path on this machine (a plain path or a ``file://`` URL), not another fsspec URL."""
    text = str(target)
    return "://" not in text or text.startswith("file://")


@contextmanager
def atomic_output(target: str | Path) -> Iterator[Path]:
    """Yield a local temporary file's path; when the block succeeds, it becomes ``target``, a path or an fsspec
    URL (``s3://bucket/key``, ``gs://``, ``memory://``), in one step, so readers never see half of it.

    A local target (a path or ``file://``) goes through :func:`atomic_file` (fsynced, renamed). Another URL is
    uploaded beside the target as ``.<name>.<writer>.tmp`` and moved onto it (on object stores the move is a
    server-side copy, which is all-or-nothing too); the upload is removed if anything fails. On an error the
    target is untouched.

    Parameters
    ----------
    target : str or Path
        The file to write.

    Examples
    --------
    >>> with atomic_output("s3://bucket/export.parquet") as tmp:  # doctest: +SKIP
    ...     tmp.write_bytes(data)
    """
    if is_local_target(target):
        text = str(target)
        with atomic_file(text.removeprefix("file://") if text.startswith("file://") else text) as tmp:
            yield tmp
        return
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(target))
    parent, _, name = str(path).rstrip("/").rpartition("/")
    staging = f"{parent}/.{name}.{current_owner().tag}.tmp" if parent else f".{name}.{current_owner().tag}.tmp"
    with tempfile.TemporaryDirectory(prefix="recsmith-upload-") as folder:
        local = Path(folder) / name
        yield local
        try:
            fs.put_file(str(local), staging)
            fs.mv(staging, path)
        except BaseException:
            with contextlib.suppress(Exception):
                fs.rm(staging)
            raise


def remove_orphaned_temp_folders(parent: str | Path) -> list[Path]:
    """Remove the temporary folders and files that :func:`atomic_folder` and :func:`atomic_file` left in
    ``parent`` when their writer was killed (written on this host by a process that is gone).

    A ``.<name>...old`` folder (the previous ``<name>`` moved aside during the swap) goes back to ``<name>``
    when the swap did not finish, and is removed otherwise.

    Returns
    -------
    list of Path
        What was removed or put back.
    """
    folder = Path(parent)
    if not folder.is_dir():
        return []
    host = _host_hash(socket.gethostname())
    cleaned: list[Path] = []
    for entry in folder.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if match is None or match["host"] != host:
            continue
        started = int(match["started"])
        owner = ProcessOwner(socket.gethostname(), int(match["pid"]), started / 100 if started else None)
        if not owner.is_gone():
            continue
        final = entry.with_name(match["name"])
        if match["rest"] == "old" and not final.exists():
            os.replace(entry, final)
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        cleaned.append(entry)
    return cleaned
