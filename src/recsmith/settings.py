"""Settings, read from ``RECSMITH_*`` environment variables.

Build one :class:`Settings` in an entry point (CLI, server, test) and pass it down; nothing creates
settings at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
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

    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """``recsmith serve``: a connection, or a request from its first byte, must send its headers within this
    many seconds, else it gets a 408 and is closed (slow or half-sent requests)."""

    body_timeout_seconds: float = Field(default=30.0, gt=0)
    """``recsmith serve``: after its headers, a request must send its whole body within this many seconds."""

    max_connections: int = Field(default=1000, ge=1)
    """``recsmith serve``: open connections per worker process; more are refused at once with a 503. Each worker
    needs this many file descriptors plus about 200 (``ulimit -n``); the server lowers it to fit the limit."""

    def resolved_database_url(self) -> str:
        """The database URL to connect to (the SQLite file under ``home`` unless one is set)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'recsmith.db').resolve()}"

    def resolved_artifact_dir(self) -> Path:
        """The folder that holds artifact folders."""
        return (self.artifact_dir or self.home / "artifacts").resolve()
