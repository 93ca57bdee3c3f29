"""Settings, read from ``RECSMITH_*`` environment variables.

Build one :class:`Settings` in an entry point (CLI, server, test) and pass it down; nothing creates
settings at import time.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """recsmith's configuration.

    Attributes are read from environment variables with the ``RECSMITH_`` prefix, e.g.
    ``RECSMITH_HOME`` or ``RECSMITH_DATABASE_URL``.
    """

    model_config = SettingsConfigDict(env_prefix="RECSMITH_", extra="ignore")

    home: Path = Field(default=Path(".recsmith"))
    """Folder holding the embedded SQLite database and the artifacts."""

    database_url: str | None = None
    """SQLAlchemy URL of the store; default: a SQLite file ``recsmith.db`` under ``home``.
    PostgreSQL: ``postgresql+psycopg://user@host:5432/db``."""

    artifact_dir: Path | None = None
    """Folder for trained artifacts; default: ``home/artifacts``."""

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body the HTTP API accepts (413 beyond)."""

    campaign_sync_seconds: float = Field(default=1.0, gt=0)
    """How often each server process checks the store for new or switched campaigns."""

    redis_url: str | None = None
    """``redis://host:6379/0``: share live event histories, the served-items ledger and campaign switches between
    workers and hosts through Redis (``pip install 'recsmith[redis]'``); without it one host works from the
    database alone."""

    redis_prefix: str = Field(default="recsmith", min_length=1, max_length=64)
    """Prefix of recsmith's Redis keys and channel: give each store sharing one Redis its own."""

    filter_cache_bytes: int = Field(default=64 * 2**20, ge=0)
    """Bytes each server process may spend caching compiled filter masks and their keys (least recently used
    dropped first; 0 caches nothing). Default 64 MiB."""

    docs: bool = False
    """``RECSMITH_DOCS=1`` serves the interactive API docs at ``/docs`` (Swagger UI, whose scripts load from a
    CDN); off by default. ``/openapi.json`` is always served."""

    erasure_key: SecretStr | None = Field(default=None, min_length=16)
    """Key of the keyed hash (HMAC-SHA256) that deletion tombstones store instead of raw user and item ids; default:
    a random key made once in ``home/erasure.key`` (0600). Set the same value on every host sharing one database."""

    artifact_retention_days: float = Field(default=30.0, ge=0)
    """``recsmith users delete --purge-models`` deletes the artifacts of superseded solution versions (serving no
    campaign, not among the newest :attr:`artifact_keep_versions` of their solution) older than this."""

    artifact_keep_versions: int = Field(default=2, ge=1)
    """Newest solution versions per solution whose artifacts ``--purge-models`` rewrites but never deletes."""

    sqlite_synchronous: Literal["off", "normal", "full", "extra"] = "normal"
    """SQLite's ``PRAGMA synchronous`` for the embedded store (WAL mode): ``normal`` (default) keeps every
    committed transaction through a crash of the process, but the last ones may be lost on a power loss or an
    OS crash; ``full`` (or ``extra``) syncs the WAL at every commit, so a commit survives power loss too, at a
    cost in events/s; ``off`` risks corruption on power loss. Ignored on PostgreSQL."""

    encryption_key: SecretStr | None = None
    """Encrypts trained artifacts at rest (AES-256-GCM): 32 random bytes, written as 64 hex digits or as
    base64 (44 characters), e.g. ``python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"``.
    Artifacts written without it still load; encrypted ones need the same key to load
    (:func:`recsmith.recipes.bundle.artifact_key` decodes it)."""

    audit_denied_per_minute: int = Field(default=60, ge=0)
    """The most refused requests (401, 403) each server process writes to the audit log per minute; the rest are
    counted in one ``audit.suppressed`` entry, so that a flood of bad requests cannot fill the disk."""

    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """``recsmith serve``: a connection, or a request from its first byte, must send its headers within this
    many seconds, else it gets a 408 and is closed (slow or half-sent requests)."""

    body_timeout_seconds: float = Field(default=30.0, gt=0)
    """``recsmith serve``: after its headers, a request must send its whole body within this many seconds."""

    max_connections: int = Field(default=1000, ge=1)
    """``recsmith serve``: open connections per worker process; more are refused at once with a 503. Each worker
    needs this many file descriptors plus about 200 (``ulimit -n``); the server lowers it to fit the limit."""

    console_session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    """How long a console sign-in lasts; the session cookie expires with it, and revoking the key ends it at once."""

    console_upload_bytes: int = Field(default=256 * 2**20, ge=1024)
    """The largest file the console's import form takes (other requests keep :attr:`max_body_bytes`)."""

    aws_region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,32}$")
    """The region in the ARNs of the Personalize-compatible API (``RECSMITH_AWS_REGION``)."""

    aws_account: str = Field(default="000000000000", pattern=r"^[0-9]{12}$")
    """The twelve-digit account in those ARNs (``RECSMITH_AWS_ACCOUNT``): set it to the AWS account a migrating
    application's stored ARNs name, and they resolve here unchanged."""

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _lower_synchronous(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    def resolved_database_url(self) -> str:
        """The database URL to connect to (the SQLite file under ``home`` unless one is set)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'recsmith.db').resolve()}"

    def resolved_artifact_dir(self) -> Path:
        """The folder that holds artifact folders."""
        return (self.artifact_dir or self.home / "artifacts").resolve()

    def resolved_erasure_key(self) -> bytes:
        """The tombstones' HMAC key: :attr:`erasure_key`, else the one in ``home/erasure.key``, created (32 random
        bytes, hex, mode 0600) the first time; concurrent first calls agree on one key."""
        if self.erasure_key is not None:
            return self.erasure_key.get_secret_value().encode()
        path = (self.home / "erasure.key").resolve()
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".erasure.key.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32))
                    handle.flush()
                    os.fsync(handle.fileno())
                with contextlib.suppress(FileExistsError):  # another process made it first: theirs is used
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        key = path.read_text().strip()
        if len(key) < 32:
            raise ValueError(f"the erasure key file {path} is damaged (under 32 characters); restore it from a "
                             "backup or set RECSMITH_ERASURE_KEY")
        return key.encode()
