"""The store: dataset groups, datasets, users, items, interactions, import jobs and solution versions in SQL.

SQLite (WAL mode) by default, PostgreSQL in production. Tables are SQLAlchemy Core; bulk loads go through
the driver directly (``executemany`` on SQLite, ``COPY`` on PostgreSQL) inside one transaction, so an import
either lands whole or not at all.
"""

from __future__ import annotations

import contextvars
import functools
import io
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

try:
    import fcntl
except ImportError:  # Windows: SQLite's busy timeout alone
    fcntl = None  # type: ignore[assignment]

from recsmith.errors import Advice, ConfigError, ConflictError, DataError, NotFoundError, advise
from recsmith.settings import Settings
from recsmith.store import tables as t
from recsmith.store.activity_records import ActivityRecords
from recsmith.store.audit_records import AuditRecords
from recsmith.store.batch_records import BatchRecords
from recsmith.store.data_records import DataRecords
from recsmith.store.filters_records import FiltersRecords
from recsmith.store.live_records import LiveRecords
from recsmith.store.people_records import PeopleRecords
from recsmith.store.retraining_records import RetrainingRecords
from recsmith.store.schema_registry_records import SchemaRegistryRecords
from recsmith.store.serving_records import ServingRecords
from recsmith.store.session_records import SessionRecords
from recsmith.store.solutions_records import SolutionRecords
from recsmith.store.tracker_records import TrackerRecords

logger = logging.getLogger(__name__)

DATASET_TYPES = ("interactions", "users", "items")
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
INTERACTION_COLUMNS = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
JSON_FIELDS = ("params", "config", "metrics", "report", "evaluation")
INTERACTIONS_INDEX = "ix_interactions_group_user"
EVENTS_READY_SECONDS = 10.0
"""How long a group seen with an interactions dataset is trusted to have it (another process may delete it)."""
EVENT_COLUMNS = ("user_id", "item_id", "timestamp", "event_type", "event_value", "context", "event_id", "session_id",
                 "recommendation_id")
BULK_INDEX_REBUILD_ROWS = 50_000
DEDUPE_COLUMNS = ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE")
"""What makes two interactions the same record to an incremental import (Personalize's upsert by identical record)."""
STAGING_TABLE = "recsmith_import_staging"
"""The temporary table an incremental import of interactions is staged in, to leave out what is stored."""
UNFINISHED = t.UNFINISHED


_now = t.utc_now
_utc = t.as_utc


_NO_BLOCKING_READS: contextvars.ContextVar[bool] = contextvars.ContextVar("recsmith_no_blocking_reads", default=False)


class BlockingReadError(RuntimeError):
    """The store was asked for a connection inside :func:`no_blocking_reads` (on an event loop): the caller does
    the work again off the loop."""


@contextmanager
def no_blocking_reads() -> Iterator[None]:
    """Within the block, any use of a store's connections raises :class:`BlockingReadError` instead of blocking
    (the async routes answer on the event loop from memory, and go to a thread only when the database is
    needed)."""
    token = _NO_BLOCKING_READS.set(True)
    try:
        yield
    finally:
        _NO_BLOCKING_READS.reset(token)


def _refuse_blocking_reads(*_: Any) -> None:
    if _NO_BLOCKING_READS.get():
        raise BlockingReadError("a store connection was asked for on the event loop")


@dataclass(frozen=True)
class EventBatch:
    """What :meth:`Store.record_events` did.

    Attributes
    ----------
    accepted, duplicates : int
        Events stored, and events skipped because their ``event_id`` was stored before.
    before : int
        The group's event watermark before the batch: every stored event's row id is above it.
    newest : int
        The watermark after it: at least every stored event's row id.
    """

    accepted: int
    duplicates: int
    before: int
    newest: int


class UserEvent(NamedTuple):
    """One of a user's stored events, as serving reads them (:meth:`Store.user_events`).

    ``row`` is the interaction row id (from Redis: the batch's watermark, which is at least the row id), so
    ``row > a training's watermark`` tells the events since that training."""

    item_id: str
    event_type: str | None
    timestamp: int
    row: int


@dataclass(frozen=True)
class DatasetGroup:
    """A tenant: its own datasets, solutions and campaigns."""

    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True)
class GroupDeletion:
    """What :meth:`Store.delete_dataset_group` deleted.

    Attributes
    ----------
    group : str
        The group's name.
    group_id : int
        The id it had (SQLite may give it to the next group made).
    campaigns : tuple of str
        The campaigns deleted with it.
    artifacts : tuple of str
        The artifact folders of its solution versions: the caller removes them once the deletion has committed.
    rows : dict
        Rows deleted, by table (``interactions``, ``users``, ``items``, ``solution_versions``, ``api_keys``...).
    """

    group: str
    group_id: int
    campaigns: tuple[str, ...]
    artifacts: tuple[str, ...]
    rows: dict[str, int]


GROUP_COUNTS = ("interactions", "users", "items", "solution_versions", "campaigns", "filters", "import_jobs",
                "batch_jobs")
"""What :meth:`Store.dataset_group_counts` counts per dataset group."""


@dataclass(frozen=True)
class Dataset:
    """One of a group's datasets (interactions, users or items) and its schema."""

    id: int
    dataset_type: str
    schema: dict[str, Any]
    created_at: datetime
    updated_at: datetime


SQLITE_SYNCHRONOUS = ("off", "normal", "full", "extra")
"""SQLite's ``PRAGMA synchronous`` levels (:attr:`recsmith.settings.Settings.sqlite_synchronous`)."""


def private_dir(path: Path) -> Path:
    """Make the folder ``path`` and its missing parents readable by the owner only (0700); folders that exist
    keep their modes."""
    path = Path(path)
    if not path.is_dir():
        if path.parent != path:
            private_dir(path.parent)
        path.mkdir(mode=0o700, exist_ok=True)
    return path


def _private_sqlite_file(url: str) -> None:
    """Create a SQLite store's file 0600 before SQLite does (SQLite gives its -wal and -shm files the
    database file's mode); a file that exists keeps its mode."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists():
        return
    private_dir(path.parent)
    with suppress(FileExistsError):  # another process made it first
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any, *, synchronous: str = "normal") -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")  # one of SQLITE_SYNCHRONOUS, checked by Store
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def _clean(value: Any) -> Any:
    """A metadata value ready for JSON (numpy scalars to Python, NaN to None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _records_json(frame: pd.DataFrame) -> list[str | None]:
    """One JSON object per row of ``frame`` (nulls left out; ``None`` for a row with nothing)."""
    if frame.shape[1] == 0:
        return [None] * len(frame)
    names = list(frame.columns)
    out: list[str | None] = []
    for row in zip(*(frame[c].tolist() for c in names), strict=True):
        record = {name: _clean(v) for name, v in zip(names, row, strict=True) if v is not None}
        record = {k: v for k, v in record.items() if v is not None}
        out.append(json.dumps(record) if record else None)
    return out


class Store(ServingRecords, LiveRecords, RetrainingRecords, AuditRecords, BatchRecords, SessionRecords,
            PeopleRecords, ActivityRecords, DataRecords, FiltersRecords, SolutionRecords, TrackerRecords,
            SchemaRegistryRecords):
    """recsmith's SQL store.

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///path/recsmith.db`` or ``postgresql+psycopg://user@host/db``.
    sqlite_synchronous : {"off", "normal", "full", "extra"}
        SQLite's ``PRAGMA synchronous`` (``RECSMITH_SQLITE_SYNCHRONOUS``): ``full`` makes each commit survive a
        power loss; ``normal`` (default) each commit survives a crash of the process. Ignored on PostgreSQL.
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "normal") -> None:
        if sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise ConfigError(f"RECSMITH_SQLITE_SYNCHRONOUS={sqlite_synchronous!r} is not one of "
                              f"{', '.join(SQLITE_SYNCHRONOUS)}")
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._events_ready: dict[int, float] = {}  # groups seen with an interactions dataset, and when
        self._write_lock = threading.Lock()
        self._lock_file: Any = None
        if self.is_sqlite:
            _private_sqlite_file(url)
            self.engine: Engine = sa.create_engine(url, connect_args={"timeout": 30})
            sa.event.listen(self.engine, "connect",
                            functools.partial(_set_sqlite_pragmas, synchronous=sqlite_synchronous))
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        sa.event.listen(self.engine.pool, "checkout", _refuse_blocking_reads)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store named by the settings (creating ``settings.home`` for the default SQLite file, and the
        artifact folder, both 0700 when this makes them)."""
        if not settings.database_url:
            private_dir(Path(settings.home))
        try:
            private_dir(settings.resolved_artifact_dir())
        except OSError as exc:  # a read-only place for a server on PostgreSQL that never trains: training says so
            logger.debug("artifact folder %s not made: %s", settings.resolved_artifact_dir(), exc)
        store = cls(settings.resolved_database_url(), sqlite_synchronous=settings.sqlite_synchronous)
        store.erasure_settings = settings  # the tombstones' key (LiveRecords.erasure_key)
        return store

    def migrate(self, revision: str = "head") -> None:
        """Create or upgrade the tables to the newest migration (idempotent), or move them up or down to
        ``revision`` (``"0005"``: for tests of a migration)."""
        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as conn:
            _adopt_legacy_revision(conn, {script.revision for script in ScriptDirectory.from_config(config)
                                          .walk_revisions()})
            config.attributes["connection"] = conn
            config.attributes["erasure_key"] = lambda: self.erasure_key  # migration 0007 hashes tombstones with it
            current = MigrationContext.configure(conn, opts={"version_table": t.VERSION_TABLE}).get_current_revision()
            if revision == "head" or current is None or current < revision:
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    # ----------------------------------------------------------------------------------- dataset groups
    def create_dataset_group(self, name: str) -> DatasetGroup:
        """Create a dataset group; the name is 1-63 letters, digits, ``_``, ``.``, ``-``."""
        if not GROUP_NAME.match(name or ""):
            raise ConfigError(
                f"invalid dataset group name {name!r}: use 1-63 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        with self.begin() as conn:
            exists = conn.execute(sa.select(t.dataset_groups.c.id).where(t.dataset_groups.c.name == name)).first()
            if exists:
                raise ConfigError(f"dataset group {name!r} already exists")
            created = _now()
            insert = t.dataset_groups.insert().values(name=name, created_at=created)
            group_id = conn.execute(insert).inserted_primary_key[0]
        return DatasetGroup(int(group_id), name, created)

    def get_dataset_group(self, name: str) -> DatasetGroup:
        """The dataset group called ``name`` (NotFoundError listing the existing ones)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.dataset_groups).where(t.dataset_groups.c.name == name)).first()
        if row is None:
            names = [g.name for g in self.list_dataset_groups()]
            existing = ", ".join(names) if names else "(none)"
            raise advise(NotFoundError(f"no dataset group {name!r}; existing: {existing}"),
                         Advice("no_dataset_group", name),
                         "create one by importing data into it (recsmith import ... --dataset-group NAME)")
        return DatasetGroup(row.id, row.name, _utc(row.created_at))

    def get_or_create_dataset_group(self, name: str) -> DatasetGroup:
        """The dataset group called ``name``, created if it does not exist."""
        try:
            return self.get_dataset_group(name)
        except NotFoundError:
            return self.create_dataset_group(name)

    def list_dataset_groups(self) -> list[DatasetGroup]:
        """All dataset groups, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.dataset_groups).order_by(t.dataset_groups.c.name)).all()
        return [DatasetGroup(r.id, r.name, _utc(r.created_at)) for r in rows]

    def dataset_group_counts(self, group_id: int | None = None) -> dict[int, dict[str, int]]:
        """Rows of each dataset group (or of ``group_id`` only), by group id: every name of :data:`GROUP_COUNTS`
        (0 where it has none); one grouped count per table."""
        where = (lambda table: table.c.dataset_group_id == group_id) if group_id is not None else None
        g, v, s = t.dataset_groups, t.solution_versions, t.solutions
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(g.c.id) if group_id is None else sa.select(g.c.id).where(g.c.id == group_id))
            out = {int(i): dict.fromkeys(GROUP_COUNTS, 0) for i in ids.scalars()}
            for name in GROUP_COUNTS:
                if name == "solution_versions":
                    query = (sa.select(s.c.dataset_group_id, sa.func.count()).select_from(v)
                             .join(s, s.c.id == v.c.solution_id).group_by(s.c.dataset_group_id))
                    table = s
                else:
                    table = t.metadata.tables[name]
                    query = sa.select(table.c.dataset_group_id, sa.func.count()).group_by(table.c.dataset_group_id)
                if where is not None:
                    query = query.where(where(table))
                for found, count in conn.execute(query):
                    if int(found) in out:
                        out[int(found)][name] = int(count)
        return out

    def delete_dataset_group(self, name: str, *, force: bool = True) -> GroupDeletion:
        """Delete a dataset group and everything of it in one transaction: its datasets and schemas, interactions,
        users, items, import jobs, solutions and solution versions, campaigns, filters, API keys scoped to it,
        served-items ledger rows, deletion tombstones and retraining decisions. On SQLite the deleted rows are
        overwritten and the write-ahead log checkpointed, as for a user's erasure. Its audit-log entries stay.

        Parameters
        ----------
        name : str
            The dataset group.
        force : bool
            Delete its campaigns too; False: refuse while it has any.

        Returns
        -------
        GroupDeletion
            What was deleted, and the artifact folders of its solution versions, which the caller removes once this
            has returned (:meth:`recsmith.serving.campaign.CampaignRuntime.delete_dataset_group` does, with what is
            kept outside the database).

        Raises
        ------
        NotFoundError
            If there is no such group.
        ConflictError
            If it has campaigns and not ``force`` (``campaigns`` names them), or one of its import jobs or
            trainings is still running; nothing is deleted then.
        """
        group = self.get_dataset_group(name)
        c, v, s, j = t.campaigns, t.solution_versions, t.solutions, t.import_jobs
        rows: dict[str, int] = {}
        with self.begin() as conn:
            self._secure_delete(conn)
            campaigns = tuple(conn.execute(sa.select(c.c.name).where(c.c.dataset_group_id == group.id)
                                           .order_by(c.c.name)).scalars())
            if campaigns and not force:
                raise ConflictError(f"dataset group {name!r} has {len(campaigns)} campaign(s): {', '.join(campaigns)}",
                                    campaigns=campaigns)
            solution_ids = sa.select(s.c.id).where(s.c.dataset_group_id == group.id)
            running = [f"import job {i}" for i in conn.execute(sa.select(j.c.id).where(
                j.c.dataset_group_id == group.id, j.c.status.in_(UNFINISHED))).scalars()]
            running += [f"the training of solution version {i}" for i in conn.execute(sa.select(v.c.id).where(
                v.c.solution_id.in_(solution_ids), v.c.status.in_(UNFINISHED))).scalars()]
            running += [f"batch {kind} job {i}" for i, kind in conn.execute(sa.select(t.batch_jobs.c.id,
                        t.batch_jobs.c.kind).where(t.batch_jobs.c.dataset_group_id == group.id,
                                                   t.batch_jobs.c.status.in_(UNFINISHED)))]
            if running:
                raise ConflictError(f"dataset group {name!r} is in use: {' and '.join(running)} "
                                    f"{'is' if len(running) == 1 else 'are'} still running; delete the group once "
                                    f"{'it has' if len(running) == 1 else 'they have'} finished")
            artifacts = tuple(conn.execute(sa.select(v.c.artifact_uri).where(
                v.c.solution_id.in_(solution_ids), v.c.artifact_uri.is_not(None)).order_by(v.c.id)).scalars())
            for table in (t.campaigns, t.filters, t.api_keys, t.served_items, t.deletions, t.retrain_decisions,
                          t.event_trackers):
                rows[table.name] = conn.execute(table.delete().where(table.c.dataset_group_id == group.id)).rowcount
            rows["solution_versions"] = conn.execute(v.delete().where(v.c.solution_id.in_(solution_ids))).rowcount
            for table in (t.solutions, t.import_jobs, t.batch_jobs, t.interactions, t.users, t.items, t.datasets,
                          t.schemas):
                rows[table.name] = conn.execute(table.delete().where(table.c.dataset_group_id == group.id)).rowcount
            if not conn.execute(t.dataset_groups.delete().where(t.dataset_groups.c.id == group.id)).rowcount:
                raise NotFoundError(f"dataset group {name!r} was deleted meanwhile")
        self._events_ready.pop(group.id, None)
        self.checkpoint()
        return GroupDeletion(name, group.id, campaigns, artifacts, {str(k): int(n) for k, n in rows.items()})

    # ----------------------------------------------------------------------------------------- datasets
    def ensure_dataset(
        self, group_id: int, dataset_type: str, schema: dict[str, Any], *, conn: Connection | None = None
    ) -> Dataset:
        """Create the dataset with this schema, or give an existing one this schema."""
        if dataset_type not in DATASET_TYPES:
            raise ConfigError(f"unknown dataset type {dataset_type!r}; use one of {', '.join(DATASET_TYPES)}")
        if conn is None:
            with self.begin() as new_conn:
                return self.ensure_dataset(group_id, dataset_type, schema, conn=new_conn)
        now = _now()
        definition = json.dumps(schema, sort_keys=True)
        row = conn.execute(
            sa.select(t.datasets, t.schemas.c.definition)
            .join(t.schemas, t.schemas.c.id == t.datasets.c.schema_id)
            .where(t.datasets.c.dataset_group_id == group_id, t.datasets.c.dataset_type == dataset_type)
        ).first()
        if row is not None and row.definition == definition:
            conn.execute(t.datasets.update().where(t.datasets.c.id == row.id).values(updated_at=now))
            return Dataset(row.id, dataset_type, schema, _utc(row.created_at), now)
        schema_id = conn.execute(t.schemas.insert().values(
            dataset_group_id=group_id, dataset_type=dataset_type, name=str(schema.get("name", dataset_type)),
            definition=definition, created_at=now,
        )).inserted_primary_key[0]
        if row is None:
            dataset_id = conn.execute(t.datasets.insert().values(
                dataset_group_id=group_id, dataset_type=dataset_type, schema_id=schema_id, created_at=now,
                updated_at=now,
            )).inserted_primary_key[0]
            return Dataset(int(dataset_id), dataset_type, schema, now, now)
        conn.execute(t.datasets.update().where(t.datasets.c.id == row.id).values(schema_id=schema_id, updated_at=now))
        return Dataset(row.id, dataset_type, schema, _utc(row.created_at), now)

    def get_dataset(self, group_id: int, dataset_type: str) -> Dataset | None:
        """A group's dataset of this type, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.datasets, t.schemas.c.definition)
                .join(t.schemas, t.schemas.c.id == t.datasets.c.schema_id)
                .where(t.datasets.c.dataset_group_id == group_id, t.datasets.c.dataset_type == dataset_type)
            ).first()
        if row is None:
            return None
        return Dataset(row.id, dataset_type, json.loads(row.definition), _utc(row.created_at), _utc(row.updated_at))

    # ------------------------------------------------------------------------------------- bulk writes
    def write_interactions(
        self, group_id: int, frame: pd.DataFrame, *, mode: str = "full", schema: dict[str, Any] | None = None
    ) -> int:
        """Load interactions in one transaction; ``full`` replaces the group's, ``incremental`` adds the new ones.

        ``frame`` has USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, EVENT_VALUE; other columns are context,
        stored as one JSON object per row. ``incremental`` leaves out, as Personalize's incremental import does,
        the rows identical in (USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE) to one stored or to an earlier row of
        ``frame`` (the stored or earlier one is kept), so importing a file again adds nothing.

        Returns
        -------
        int
            Rows written (``len(frame)`` less the duplicates left out).
        """
        self._check_mode(mode)
        missing = [c for c in INTERACTION_COLUMNS[:3] if c not in frame.columns]
        if missing:
            raise DataError(f"interactions frame lacks column(s) {missing}")
        for column in ("USER_ID", "ITEM_ID", "TIMESTAMP"):
            if frame[column].isna().any():
                row = int(np.flatnonzero(frame[column].isna().to_numpy())[0])
                raise DataError(f"interactions row {row}: {column} is empty")
        if mode == "incremental":
            keys = [c for c in DEDUPE_COLUMNS if c in frame.columns]
            repeated = frame.duplicated(subset=keys, keep="first").to_numpy()
            if repeated.any():
                frame = frame[~repeated]
        n = len(frame)
        users = frame["USER_ID"].astype(str).tolist()
        items = frame["ITEM_ID"].astype(str).tolist()
        stamps = frame["TIMESTAMP"].astype("int64").tolist()
        types = (frame["EVENT_TYPE"].astype(object).where(frame["EVENT_TYPE"].notna(), None).tolist()
                 if "EVENT_TYPE" in frame else [None] * n)
        values = (frame["EVENT_VALUE"].astype("float64").astype(object).where(frame["EVENT_VALUE"].notna(), None)
                  .tolist() if "EVENT_VALUE" in frame else [None] * n)
        context = _records_json(frame[[c for c in frame.columns if c not in INTERACTION_COLUMNS]])
        groups = [group_id] * n
        with self.begin() as conn:
            if schema is not None:
                self.ensure_dataset(group_id, "interactions", schema, conn=conn)
            elif self._dataset_id(conn, group_id, "interactions") is None:
                raise DataError("no interactions schema known for this dataset group; pass schema=")
            if mode == "full":
                conn.execute(t.interactions.delete().where(t.interactions.c.dataset_group_id == group_id))
            columns = ("dataset_group_id", "user_id", "item_id", "timestamp", "event_type", "event_value", "context")
            rows = zip(groups, users, items, stamps, types, values, context, strict=True)
            if mode == "incremental":
                rows = zip(range(n), users, items, stamps, types, values, context, strict=True)
                return self._insert_new_interactions(conn, group_id, columns, rows, n)
            # SQLite: building the index once after a big load is twice as fast as updating it row by row
            # (1M rows: 1.9 s against 3.9 s); DDL is transactional there, so a failure restores the index too.
            rebuild_index = self.is_sqlite and n >= BULK_INDEX_REBUILD_ROWS
            if rebuild_index:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {INTERACTIONS_INDEX}")
            self._bulk_insert(conn, "interactions", columns, rows)
            if rebuild_index:
                conn.exec_driver_sql(
                    f"CREATE INDEX {INTERACTIONS_INDEX} ON interactions (dataset_group_id, user_id)")
        return n

    def _insert_new_interactions(self, conn: Connection, group_id: int, columns: tuple[str, ...], rows: Any,
                                 n: int) -> int:
        """Insert the ``n`` ``rows`` (seq, user, item, timestamp, type, value, context) that no stored interaction
        of the group matches in (user, item, timestamp, type); returns how many were inserted.

        The rows go to a temporary staging table, then one set-based ``INSERT ... SELECT`` leaves out the stored
        records. PostgreSQL: a hash anti-join for a big import, an index probe per staged row for a small one
        (the table's statistics may be stale after a bulk load). SQLite (no hash join): for a small import,
        ``NOT IN`` the stored keys of the staged users (through the (group, user) index); for a big one, a scan
        of the table that probes an index of the staged keys (the (group, user) index is rebuilt after it, as a
        full import does).
        """
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {STAGING_TABLE}")
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {STAGING_TABLE} (seq INTEGER PRIMARY KEY, user_id TEXT NOT NULL, "
            f"item_id TEXT NOT NULL, timestamp BIGINT NOT NULL, event_type TEXT, event_value DOUBLE PRECISION, "
            f"context TEXT)" + ("" if self.is_sqlite else " ON COMMIT DROP"))
        self._bulk_insert(conn, STAGING_TABLE, ("seq",) + columns[1:], rows)
        into = f"INSERT INTO interactions ({', '.join(columns)}) SELECT :group_id, {', '.join(columns[1:])}"
        big = n >= BULK_INDEX_REBUILD_ROWS
        bulk = self.is_sqlite and big
        match = ("i.user_id = s.user_id AND i.item_id = s.item_id AND i.timestamp = s.timestamp "
                 "AND coalesce(i.event_type, '') = coalesce(s.event_type, '')")
        if self.is_sqlite and bulk:  # one scan of the table, probing the staged keys' index (built by sorting)
            conn.exec_driver_sql(f"CREATE INDEX {STAGING_TABLE}_key ON {STAGING_TABLE} (user_id, item_id, timestamp)")
            insert = (f"{into} FROM {STAGING_TABLE} WHERE seq NOT IN (SELECT s.seq FROM interactions AS i NOT INDEXED "
                      f"CROSS JOIN {STAGING_TABLE} s ON s.user_id = i.user_id AND s.item_id = i.item_id "
                      f"AND s.timestamp = i.timestamp AND s.event_type IS i.event_type "
                      f"WHERE i.dataset_group_id = :group_id) ORDER BY seq")
        elif self.is_sqlite:  # the stored keys of the staged users, through the (group, user) index
            insert = (f"{into} FROM {STAGING_TABLE} s WHERE (s.user_id, s.item_id, s.timestamp, "
                      f"coalesce(s.event_type, '')) NOT IN (SELECT i.user_id, i.item_id, i.timestamp, "
                      f"coalesce(i.event_type, '') FROM interactions i WHERE i.dataset_group_id = :group_id "
                      f"AND i.user_id IN (SELECT user_id FROM {STAGING_TABLE})) ORDER BY s.seq")
        elif big:  # a hash anti-join
            conn.exec_driver_sql(f"ANALYZE {STAGING_TABLE}")  # a temporary table has no statistics until analysed
            insert = (f"{into} FROM {STAGING_TABLE} s WHERE NOT EXISTS (SELECT 1 FROM interactions i "
                      f"WHERE i.dataset_group_id = :group_id AND {match}) ORDER BY s.seq")
        else:  # a probe of the (group, user) index per staged row, whatever the (maybe stale) statistics say
            insert = (f"{into} FROM {STAGING_TABLE} s LEFT JOIN LATERAL (SELECT 1 AS hit FROM interactions i "
                      f"WHERE i.dataset_group_id = :group_id AND {match} LIMIT 1) stored ON true "
                      f"WHERE stored.hit IS NULL ORDER BY s.seq")
        if bulk:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {INTERACTIONS_INDEX}")
        inserted = int(conn.execute(sa.text(insert), {"group_id": group_id}).rowcount or 0)
        if bulk:
            conn.exec_driver_sql(f"CREATE INDEX {INTERACTIONS_INDEX} ON interactions (dataset_group_id, user_id)")
        conn.exec_driver_sql(f"DROP TABLE {STAGING_TABLE}")
        return inserted

    def write_users(self, group_id: int, frame: pd.DataFrame, *, mode: str = "full",
                    schema: dict[str, Any] | None = None) -> int:
        """Load user records (USER_ID + metadata); ``incremental`` upserts by id."""
        return self._write_entities("users", "USER_ID", group_id, frame, mode, schema)

    def write_items(self, group_id: int, frame: pd.DataFrame, *, mode: str = "full",
                    schema: dict[str, Any] | None = None) -> int:
        """Load item records (ITEM_ID + metadata); ``incremental`` upserts by id."""
        return self._write_entities("items", "ITEM_ID", group_id, frame, mode, schema)

    def _write_entities(self, kind: str, id_column: str, group_id: int, frame: pd.DataFrame, mode: str,
                        schema: dict[str, Any] | None, *, conn: Connection | None = None) -> int:
        if conn is None:
            with self.begin() as new_conn:
                return self._write_entities(kind, id_column, group_id, frame, mode, schema, conn=new_conn)
        self._check_mode(mode)
        if id_column not in frame.columns:
            raise DataError(f"{kind} frame lacks column {id_column}")
        table = t.users if kind == "users" else t.items
        key = "user_id" if kind == "users" else "item_id"
        ids = frame[id_column].astype(str).tolist()
        if len(set(ids)) != len(ids):  # the last record of an id wins, as in an upsert
            keep = ~frame[id_column].astype(str).duplicated(keep="last")
            frame = frame[keep.to_numpy()]
            ids = frame[id_column].astype(str).tolist()
        meta = _records_json(frame[[c for c in frame.columns if c != id_column]])
        now = _now()
        if schema is not None:
            self.ensure_dataset(group_id, kind, schema, conn=conn)
        if mode == "full":
            conn.execute(table.delete().where(table.c.dataset_group_id == group_id))
        else:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                conn.execute(table.delete().where(table.c.dataset_group_id == group_id, table.c[key].in_(chunk)))
        stamp = now.isoformat(sep=" ") if self.is_sqlite else now
        rows = zip([group_id] * len(ids), ids, meta, [stamp] * len(ids), strict=True)
        self._bulk_insert(conn, kind, ("dataset_group_id", key, "metadata", "updated_at"), rows)
        self._bump_catalog(conn, group_id)  # serving processes reload their catalogue
        return len(ids)

    def _bulk_insert(self, conn: Connection, table: str, columns: tuple[str, ...], rows: Any) -> None:
        """Insert many rows through the driver: executemany on SQLite, COPY on PostgreSQL."""
        dbapi = conn.connection.dbapi_connection
        if self.is_sqlite:
            marks = ", ".join("?" * len(columns))
            cursor = dbapi.cursor()
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
            cursor.close()
            return
        cursor = dbapi.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            buffer = io.StringIO()
            for count, row in enumerate(rows, start=1):
                buffer.write("\t".join(_copy_text(v) for v in row))
                buffer.write("\n")
                if count % 100_000 == 0:
                    copy.write(buffer.getvalue())
                    buffer = io.StringIO()
            copy.write(buffer.getvalue())
        cursor.close()

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in ("full", "incremental"):
            raise ConfigError(f"unknown import mode {mode!r}; use 'full' or 'incremental'")

    @staticmethod
    def _dataset_id(conn: Connection, group_id: int, dataset_type: str) -> int | None:
        return conn.execute(sa.select(t.datasets.c.id).where(
            t.datasets.c.dataset_group_id == group_id, t.datasets.c.dataset_type == dataset_type)).scalar()

    # -------------------------------------------------------------------------------------------- reads
    def read_interactions(self, group_id: int, *, context: bool = True) -> dict[str, np.ndarray]:
        """All of a group's interactions as column arrays, in insertion order (one query).

        Parameters
        ----------
        group_id : int
            The dataset group.
        context : bool
            Also read each event's context (the JSON text of the import's extra columns or the event's
            ``context``); leave it out when it is not needed.

        Returns
        -------
        dict
            ``user_id``, ``item_id`` (object arrays of str), ``timestamp`` (int64), ``event_type`` (object,
            None where absent), ``event_value`` (float64, NaN where absent), ``session_id`` (object, None
            where absent) and, with ``context``, ``context`` (object: JSON-object text, None where absent).
        """
        names = ["user_id", "item_id", "timestamp", "event_type", "event_value", "session_id"] + (
            ["context"] if context else [])
        if self.is_sqlite:
            # A scan in rowid (= insertion) order; through the (group, user) index SQLite would jump
            # around the table and take twice as long.
            sql = f"SELECT {', '.join(names)} FROM interactions NOT INDEXED WHERE dataset_group_id = ?"
        else:
            sql = f"SELECT {', '.join(names)} FROM interactions WHERE dataset_group_id = %s ORDER BY id"
        with self.engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.execute(sql, (group_id,))
            rows = cursor.fetchall()
            cursor.close()
        if not rows:
            empty = {name: np.empty(0, dtype=object) for name in names}
            return empty | {"timestamp": np.empty(0, dtype=np.int64), "event_value": np.empty(0, dtype=np.float64)}
        table = np.array(rows, dtype=object)  # one 2-D pass; 4x faster than zip(*rows)
        del rows
        deleted = self.deletions(group_id, "item")
        if deleted:  # deleted items are not trained on (their interactions stay, as users' history)
            table = table[np.fromiter((item not in deleted for item in table[:, 1]), dtype=bool, count=len(table))]
        columns = {name: table[:, position].copy() for position, name in enumerate(names)}
        columns["timestamp"] = columns["timestamp"].astype(np.int64)
        columns["event_value"] = columns["event_value"].astype(np.float64)  # None becomes NaN
        return columns

    def count_interactions(self, group_id: int) -> int:
        """Number of stored interactions in the group."""
        return self._count(t.interactions, group_id)

    def count_users(self, group_id: int) -> int:
        """Number of user records in the group."""
        return self._count(t.users, group_id)

    def count_items(self, group_id: int) -> int:
        """Number of item records in the group."""
        return self._count(t.items, group_id)

    def _count(self, table: sa.Table, group_id: int) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)
                                    .where(table.c.dataset_group_id == group_id)).scalar_one())

    def write_events(self, group_id: int, events: list[dict[str, Any]], *,
                     group_name: str | None = None) -> tuple[int, int]:
        """Record real-time events in one transaction (:meth:`record_events`); returns (stored, duplicates)."""
        batch = self.record_events(group_id, events, group_name=group_name)
        return batch.accepted, batch.duplicates

    def record_events(self, group_id: int, events: list[dict[str, Any]], *,
                      group_name: str | None = None) -> EventBatch:
        """Record real-time events in one transaction; an event whose ``event_id`` the group already has is
        skipped, so submitting a batch again changes nothing.

        Parameters
        ----------
        group_id : int
            The dataset group.
        events : list of dict
            ``user_id``, ``item_id``, ``timestamp`` (epoch seconds), ``event_id``, and optionally
            ``event_type``, ``event_value``, ``session_id``, ``recommendation_id``, ``context`` (a dict).
        group_name : str, optional
            The name ``group_id`` was looked up by (a cached id): the transaction checks the group still has
            it, so a group deleted meanwhile (whose id a new group may reuse) never gets the events.

        Raises
        ------
        NotFoundError
            No group ``group_id`` (called ``group_name``) exists now; nothing was written.

        Returns
        -------
        EventBatch
            Events stored, duplicates skipped, and the group's event watermark before and after.
        """
        if not events:
            return EventBatch(0, 0, 0, 0)
        first: dict[str, dict[str, Any]] = {}
        for event in events:  # the same id twice in one batch: keep the first
            first.setdefault(event["event_id"], event)
        rows = [(e["user_id"], e["item_id"], int(e["timestamp"]), e.get("event_type"), e.get("event_value"),
                 _json_or_none(e.get("context") or None), e["event_id"], e.get("session_id"),
                 e.get("recommendation_id")) for e in first.values()]
        insert = self._insert_events_sqlite if self.is_sqlite else self._insert_events_pg
        try:
            self._ensure_events_dataset(group_id)
            accepted, before, newest = insert(group_id, group_name, rows)
        except (sa.exc.IntegrityError, self.engine.dialect.dbapi.IntegrityError) as exc:  # the group's foreign key
            raise NotFoundError(f"no dataset group with id {group_id} (deleted while events were sent?)") from exc
        if accepted < 0:
            raise NotFoundError(f"no dataset group with id {group_id}" if group_name is None else
                                f"dataset group {group_name!r} is no longer id {group_id}")
        return EventBatch(accepted, len(events) - accepted, before, newest)

    @contextmanager
    def sqlite_writer(self) -> Iterator[None]:
        """Hold the right to write to a SQLite file: a thread lock, then an exclusive ``flock`` on
        ``<database>.write-lock`` shared by every process on the file. Writers then queue in the kernel and start
        the moment the previous one commits, instead of polling in SQLite's busy handler, whose back-off sleeps
        (up to 100 ms) gave the event API p99s of over a second with two workers. Only the frequent small writes
        (events, the ledger) take it; others rely on the busy timeout. Nothing to hold on PostgreSQL."""
        with self._write_lock:
            if self._lock_file is None and self.is_sqlite:
                database = sa.engine.make_url(self.url).database
                if database and database != ":memory:" and fcntl is not None:
                    self._lock_file = open(f"{database}.write-lock", "a")  # noqa: SIM115 - kept open
            if self._lock_file is None:
                yield
                return
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    @contextmanager
    def sqlite_write_transaction(self) -> Iterator[Any]:
        """A driver cursor in a ``BEGIN IMMEDIATE`` transaction (the write lock up front: no deadlock-and-retry
        between workers) under :meth:`sqlite_writer`: committed when the block ends, rolled back if it raises."""
        with self.sqlite_writer():
            raw = self.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
            finally:
                raw.close()

    def _insert_events_sqlite(self, group_id: int, name: str | None,
                              rows: list[tuple[Any, ...]]) -> tuple[int, int, int]:
        """One :meth:`sqlite_write_transaction`: the group checked, one ``executemany`` that skips known ids, and
        the watermark."""
        insert = (f"INSERT INTO interactions (dataset_group_id, {', '.join(EVENT_COLUMNS)}) VALUES (?{', ?' * 9}) "
                  "ON CONFLICT (dataset_group_id, event_id) WHERE event_id IS NOT NULL DO NOTHING")
        with self.sqlite_write_transaction() as cursor:
            group = cursor.execute("SELECT name, last_event_id FROM dataset_groups WHERE id = ?",
                                   (group_id,)).fetchone()
            if group is None or (name is not None and group[0] != name):
                return -1, 0, 0  # nothing written
            before = newest = int(group[1] or 0)
            cursor.executemany(insert, [(group_id, *row) for row in rows])
            accepted = max(cursor.rowcount, 0)
            if accepted:  # the table's newest id (O(1) on the rowid) bounds these events' ids from above
                newest = int(cursor.execute("SELECT max(id) FROM interactions").fetchone()[0])
                cursor.execute("UPDATE dataset_groups SET last_event_id = ? WHERE id = ?", (newest, group_id))
        return accepted, before, newest

    def _insert_events_pg(self, group_id: int, name: str | None,
                          rows: list[tuple[Any, ...]]) -> tuple[int, int, int]:
        """One statement: the rows as arrays (``unnest``), known ids skipped, the watermark moved by what was
        inserted; returns how many were (-1 when the group is no longer called ``name``), the watermark the
        statement saw before (every inserted id is above it: ids are drawn after its snapshot), and the newest
        inserted id (the old watermark when none was)."""
        columns = list(zip(*rows, strict=True))
        sql = (
            "WITH ins AS (INSERT INTO interactions (dataset_group_id, " + ", ".join(EVENT_COLUMNS) + ") "
            "SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::float8[], %s::text[], "
            "%s::text[], %s::text[], %s::text[]) "
            "WHERE EXISTS (SELECT 1 FROM dataset_groups WHERE id = %s AND (%s::text IS NULL OR name = %s)) "
            "ON CONFLICT (dataset_group_id, event_id) WHERE event_id IS NOT NULL DO NOTHING RETURNING id), "
            "up AS (UPDATE dataset_groups SET last_event_id = GREATEST(COALESCE(last_event_id, 0), "
            "(SELECT max(id) FROM ins)) WHERE id = %s AND EXISTS (SELECT 1 FROM ins)) "
            "SELECT count(*), max(id), "
            "(SELECT coalesce(last_event_id, 0) FROM dataset_groups WHERE id = %s AND (%s::text IS NULL OR name = %s)) "
            "FROM ins")
        check = (group_id, name, name)
        with self.begin() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.execute(sql, (group_id, *[list(column) for column in columns], *check, group_id, *check))
            accepted, newest, before = cursor.fetchone()
            cursor.close()
        if before is None:  # no such group (by that name)
            return -1, 0, 0
        return int(accepted), int(before), int(newest if newest is not None else before)

    def _ensure_events_dataset(self, group_id: int) -> None:
        """Give a group that has none the default interactions schema; its first batches may arrive at once on
        several workers: the loser of that race finds the winner's dataset."""
        if time.monotonic() - self._events_ready.get(group_id, -math.inf) < EVENTS_READY_SECONDS:
            return
        with self.engine.connect() as conn:
            if self._dataset_id(conn, group_id, "interactions") is not None:
                self._events_ready[group_id] = time.monotonic()
                return
        from recsmith.data.schema import Schema

        try:
            with self.begin() as conn:
                if self._dataset_id(conn, group_id, "interactions") is None:
                    self.ensure_dataset(group_id, "interactions", Schema.default("interactions").to_dict(), conn=conn)
        except sa.exc.IntegrityError:
            with self.engine.connect() as conn:
                if self._dataset_id(conn, group_id, "interactions") is None:
                    raise

    def last_interaction_id(self, group_id: int) -> int:
        """A training snapshot's watermark: at least the newest interaction row id of the group (0 when it has
        none); scans the group's rows once."""
        i = t.interactions
        with self.engine.connect() as conn:
            newest = conn.execute(sa.select(sa.func.max(i.c.id)).where(i.c.dataset_group_id == group_id)).scalar_one()
        return max(int(newest or 0), self.last_event_id(group_id))

    def last_event_id(self, group_id: int) -> int:
        """At least the row id of the group's newest real-time event (0 before any); one-row read, cheap to poll."""
        return self.live_state(group_id).last_event_id

    def user_events(self, group_id: int, user_id: str, after_id: int = 0) -> list[UserEvent]:
        """A user's events stored after interaction row ``after_id`` (0: all of them; a training's watermark: the
        events since that training), in the order stored (as Redis keeps them): what serving weighs like training
        and filters read."""
        i = t.interactions
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(i.c.item_id, i.c.event_type, i.c.timestamp, i.c.id)
                .where(i.c.dataset_group_id == group_id, i.c.user_id == user_id, i.c.id > after_id)
                .order_by(i.c.id)
            ).all()
        return [UserEvent(row.item_id, row.event_type, int(row.timestamp), int(row.id)) for row in rows]

    def present_users(self, group_id: int, user_ids: Sequence[str]) -> set[str]:
        """Which of ``user_ids`` the group has: interactions, or a user record (batch jobs tell an unknown user
        from a user with nothing to go on); one query per 500 ids."""
        found: set[str] = set()
        wanted = list(dict.fromkeys(user_ids))
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                for table in (t.interactions, t.users):
                    found.update(conn.execute(sa.select(table.c.user_id).distinct().where(
                        table.c.dataset_group_id == group_id, table.c.user_id.in_(chunk))).scalars())
        return found

    def group_user_ids(self, group_id: int) -> list[str]:
        """Every user of the group (with interactions or a user record), sorted: a batch job's ``--all-users``."""
        i, u = t.interactions, t.users
        query = sa.union(sa.select(i.c.user_id).where(i.c.dataset_group_id == group_id),
                         sa.select(u.c.user_id).where(u.c.dataset_group_id == group_id))
        with self.engine.connect() as conn:
            return sorted(str(user) for user in conn.execute(query).scalars())

    def user_history(self, group_id: int, user_id: str) -> list[str]:
        """A user's item ids, in the order stored."""
        return [event.item_id for event in self.user_events(group_id, user_id)]

    def read_items(self, group_id: int, ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Item metadata by item id (all items, or those in ``ids``)."""
        return self._read_entities(t.items, "item_id", group_id, ids)

    def read_users(self, group_id: int, ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """User metadata by user id (all users, or those in ``ids``)."""
        return self._read_entities(t.users, "user_id", group_id, ids)

    def _read_entities(self, table: sa.Table, key: str, group_id: int,
                       ids: list[str] | None) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            query = sa.select(table.c[key], table.c.metadata).where(table.c.dataset_group_id == group_id)
            chunks = [None] if ids is None else [ids[i:i + 500] for i in range(0, len(ids), 500)]
            for chunk in chunks:
                q = query if chunk is None else query.where(table.c[key].in_(chunk))
                for row in conn.execute(q):
                    out[row[0]] = json.loads(row[1]) if row[1] else {}
        return out

    def describe(self, group_id: int) -> dict[str, Any]:
        """Counts, event types, time range and sparsity of a group's data."""
        i = t.interactions
        with self.engine.connect() as conn:
            where = i.c.dataset_group_id == group_id
            row = conn.execute(sa.select(
                sa.func.count(), sa.func.count(sa.distinct(i.c.user_id)), sa.func.count(sa.distinct(i.c.item_id)),
                sa.func.min(i.c.timestamp), sa.func.max(i.c.timestamp),
            ).where(where)).one()
        n, n_users, n_items = int(row[0]), int(row[1]), int(row[2])
        return {
            "num_users": n_users,
            "num_items": n_items,
            "num_interactions": n,
            "num_user_records": self.count_users(group_id),
            "num_item_records": self.count_items(group_id),
            "event_types": self.event_type_counts(group_id),
            "min_timestamp": None if row[3] is None else int(row[3]),
            "max_timestamp": None if row[4] is None else int(row[4]),
            "sparsity": (1 - n / (n_users * n_items)) if n_users and n_items else None,
        }

    # ------------------------------------------------------------------------------------- import jobs
    def create_import_job(self, group_id: int, dataset_type: str, source: str, mode: str, *,
                          owner: dict[str, Any] | None = None) -> int:
        """Record a running import job (``CREATE_IN_PROGRESS``, as :data:`recsmith.jobs.runs.IN_PROGRESS`); returns
        its id. ``owner`` (``owner_host``, ``owner_pid``, ``owner_started``) names the process running it."""
        with self.begin() as conn:
            return int(conn.execute(t.import_jobs.insert().values(
                dataset_group_id=group_id, dataset_type=dataset_type, source=source, mode=mode,
                status="CREATE_IN_PROGRESS", created_at=_now(), **(owner or {}),
            )).inserted_primary_key[0])

    def finish_import_job(self, job_id: int, *, status: str, rows_read: int, rows_loaded: int, rows_rejected: int,
                          duration_seconds: float, report: dict[str, Any], error: str | None = None) -> None:
        """Record an import job's outcome."""
        with self.begin() as conn:
            conn.execute(t.import_jobs.update().where(t.import_jobs.c.id == job_id).values(
                status=status, rows_read=rows_read, rows_loaded=rows_loaded, rows_rejected=rows_rejected,
                duration_seconds=duration_seconds, report=_json_or_none(report), error=error, finished_at=_now(),
            ))

    def get_import_job(self, job_id: int) -> dict[str, Any]:
        """An import job by id."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.import_jobs).where(t.import_jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"no import job {job_id}")
        return _decode(row)

    def list_import_jobs(self, group_id: int) -> list[dict[str, Any]]:
        """A group's import jobs, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.import_jobs).where(t.import_jobs.c.dataset_group_id == group_id)
                                .order_by(t.import_jobs.c.id)).all()
        return [_decode(r) for r in rows]

    # ----------------------------------------------------------------------------------- running jobs
    def running_jobs(self) -> list[dict[str, Any]]:
        """Import jobs, solution versions and batch jobs not finished (``CREATE_PENDING`` or ``CREATE_IN_PROGRESS``)
        whose running process is recorded: ``kind`` (``"import"``, ``"solution_version"`` or ``"batch"``), ``id``,
        ``owner_host``,
        ``owner_pid``, ``owner_started``."""
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for kind, table in (("import", t.import_jobs), ("solution_version", t.solution_versions),
                                ("batch", t.batch_jobs)):
                rows = conn.execute(sa.select(table.c.id, table.c.owner_host, table.c.owner_pid,
                                              table.c.owner_started)
                                    .where(table.c.status.in_(UNFINISHED), table.c.owner_pid.is_not(None))
                                    .order_by(table.c.id)).all()
                out.extend({"kind": kind, **row._mapping} for row in rows)
        return out

    def fail_abandoned_job(self, kind: str, job_id: int, error: str) -> bool:
        """Mark an import job, solution version or batch job ``CREATE_FAILED`` with ``error`` if it is still unfinished
        (another process may have finished it meanwhile); returns whether it was."""
        table = {"import": t.import_jobs, "solution_version": t.solution_versions, "batch": t.batch_jobs}[kind]
        with self.begin() as conn:
            changed = conn.execute(table.update().where(table.c.id == job_id, table.c.status.in_(UNFINISHED))
                                   .values(status="CREATE_FAILED", error=error, finished_at=_now())).rowcount
        if changed and kind == "import":  # the stored report says so too
            job = self.get_import_job(job_id)
            if isinstance(job.get("report"), dict):
                report = job["report"] | {"status": "CREATE_FAILED", "error": error}
                with self.begin() as conn:
                    conn.execute(t.import_jobs.update().where(t.import_jobs.c.id == job_id)
                                 .values(report=_json_or_none(report)))
        return bool(changed)

    # --------------------------------------------------------------------------------------- solutions
    def get_or_create_solution(self, group_id: int, name: str, recipe: str, params: dict[str, Any],
                               config: dict[str, Any]) -> dict[str, Any]:
        """The group's solution called ``name``; created if new, updated to these params if it exists.

        Raises
        ------
        ConfigError
            If a solution of that name exists with another recipe.
        """
        s = t.solutions
        with self.begin() as conn:
            row = _solution_row(conn, group_id, name)
            if row is None:
                solution_id = conn.execute(s.insert().values(
                    dataset_group_id=group_id, name=name, recipe=recipe, params=json.dumps(params),
                    config=json.dumps(config), created_at=_now(),
                )).inserted_primary_key[0]
            else:
                if row.recipe != recipe:
                    raise ConfigError(
                        f"solution {name!r} uses recipe {row.recipe!r}, not {recipe!r}; choose another --solution name"
                    )
                solution_id = row.id
                conn.execute(s.update().where(s.c.id == row.id).values(params=json.dumps(params),
                                                                       config=json.dumps(config)))
        return self.get_solution(int(solution_id))

    def find_solution(self, group_id: int, name: str) -> dict[str, Any] | None:
        """The group's solution called ``name``, or None when there is none."""
        with self.engine.connect() as conn:
            row = _solution_row(conn, group_id, name)
        return None if row is None else _decode(row)

    def get_solution(self, solution_id: int) -> dict[str, Any]:
        """A solution by id."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.solutions).where(t.solutions.c.id == solution_id)).first()
        if row is None:
            raise NotFoundError(f"no solution {solution_id}")
        return _decode(row)

    def create_solution_version(self, solution_id: int, params: dict[str, Any], config: dict[str, Any], *,
                                owner: dict[str, Any] | None = None) -> int:
        """Record a new solution version (CREATE_PENDING); returns its id. ``owner`` (``owner_host``,
        ``owner_pid``, ``owner_started``) names the process training it."""
        with self.begin() as conn:
            return int(conn.execute(t.solution_versions.insert().values(
                solution_id=solution_id, status="CREATE_PENDING", params=json.dumps(params),
                config=json.dumps(config), created_at=_now(), **(owner or {}),
            )).inserted_primary_key[0])

    def update_solution_version(self, version_id: int, **fields: Any) -> None:
        """Set fields of a solution version (dicts in JSON fields are encoded)."""
        values = {k: (_json_or_none(v) if k in JSON_FIELDS else v) for k, v in fields.items()}
        with self.begin() as conn:
            conn.execute(t.solution_versions.update().where(t.solution_versions.c.id == version_id).values(**values))

    def _versions_query(self) -> sa.Select:
        v, s, g = t.solution_versions, t.solutions, t.dataset_groups
        return (sa.select(v, s.c.name.label("solution_name"), s.c.recipe, g.c.name.label("dataset_group"))
                .join(s, s.c.id == v.c.solution_id).join(g, g.c.id == s.c.dataset_group_id))

    def get_solution_version(self, version_id: int) -> dict[str, Any]:
        """A solution version with its solution's name, recipe and dataset group."""
        with self.engine.connect() as conn:
            row = conn.execute(self._versions_query().where(t.solution_versions.c.id == version_id)).first()
        if row is None:
            raise advise(NotFoundError(f"no solution version {version_id}"),
                         Advice("no_solution_version", str(version_id)),
                         "list them with `recsmith solution-versions list`")
        return _decode(row)

    def list_solution_versions(self, group_id: int | None = None) -> list[dict[str, Any]]:
        """Solution versions, oldest first, optionally of one group."""
        query = self._versions_query().order_by(t.solution_versions.c.id)
        if group_id is not None:
            query = query.where(t.solutions.c.dataset_group_id == group_id)
        with self.engine.connect() as conn:
            return [_decode(r) for r in conn.execute(query).all()]

    def delete_solution_version(self, group: str, version_id: int) -> dict[str, Any]:
        """Delete a solution version of the group (its row: status, params, metrics, timings) in one transaction;
        its solution stays (a new training reuses its params). Retraining decisions and audit entries naming it
        stay.

        Returns
        -------
        dict
            The version as it was (:meth:`get_solution_version`): its ``artifact_uri`` is for the caller to remove
            once this has returned.

        Raises
        ------
        NotFoundError
            If the group has no such version (the message lists the ones it has).
        ConflictError
            If a campaign serves it (``campaigns`` names them) or it is still training; nothing is deleted then.
        """
        group_id = self.get_dataset_group(group).id
        v, c = t.solution_versions, t.campaigns
        try:
            with self.begin() as conn:
                row = conn.execute(self._versions_query().where(v.c.id == version_id)).first()
                if row is None or row.dataset_group != group:
                    ids = [str(r["id"]) for r in self.list_solution_versions(group_id)][-20:]
                    raise NotFoundError(f"dataset group {group!r} has no solution version {version_id}; its versions: "
                                        f"{', '.join(ids) or '(none)'}")
                serving = tuple(conn.execute(sa.select(c.c.name).where(c.c.solution_version_id == version_id)
                                             .order_by(c.c.name)).scalars())
                if serving:
                    raise ConflictError(f"solution version {version_id} is served by campaign(s) "
                                        f"{', '.join(serving)} of dataset group {group!r}", campaigns=serving)
                if row.status in UNFINISHED:
                    raise ConflictError(f"solution version {version_id} is {row.status}: its training is still "
                                        "running; delete it once that has finished")
                conn.execute(v.delete().where(v.c.id == version_id))
        except sa.exc.IntegrityError as exc:  # a campaign switched to it meanwhile (its foreign key)
            raise ConflictError(f"solution version {version_id} was deployed meanwhile; it is kept") from exc
        return _decode(row)


    def delete_solution(self, group: str, name: str) -> list[dict[str, Any]]:
        """Delete a solution of the group and every version of it in one transaction (what Personalize's
        ``DeleteSolution`` does). Retraining decisions and audit entries naming it stay.

        Returns
        -------
        list of dict
            Its versions as they were (:meth:`get_solution_version`'s fields): their ``artifact_uri`` folders are
            for the caller to remove once this has returned.

        Raises
        ------
        NotFoundError
            If the group has no such solution.
        ConflictError
            If a campaign serves one of its versions (``campaigns`` names them) or one is still training; nothing
            is deleted then.
        """
        group_id = self.get_dataset_group(group).id
        s, v, c = t.solutions, t.solution_versions, t.campaigns
        try:
            with self.begin() as conn:
                row = _solution_row(conn, group_id, name)
                if row is None:
                    raise NotFoundError(f"dataset group {group!r} has no solution {name!r}")
                versions = conn.execute(self._versions_query().where(v.c.solution_id == row.id)).all()
                ids = [version.id for version in versions]
                serving = tuple(conn.execute(sa.select(c.c.name).where(c.c.solution_version_id.in_(ids))
                                             .order_by(c.c.name)).scalars()) if ids else ()
                if serving:
                    raise ConflictError(f"solution {name!r} has versions that campaign(s) {', '.join(serving)} of "
                                        f"dataset group {group!r} serve", campaigns=serving)
                training = [str(version.id) for version in versions if version.status in UNFINISHED]
                if training:
                    raise ConflictError(f"solution {name!r} has version(s) {', '.join(training)} still training; "
                                        "delete it once they have finished")
                conn.execute(v.delete().where(v.c.solution_id == row.id))
                conn.execute(s.delete().where(s.c.id == row.id))
        except sa.exc.IntegrityError as exc:  # a campaign switched to one of its versions meanwhile
            raise ConflictError(f"a version of solution {name!r} was deployed meanwhile; it is kept") from exc
        return [_decode(version) for version in versions]


def _decode(row: Any) -> dict[str, Any]:
    out = {key: _utc(value) for key, value in row._mapping.items()}
    for key in JSON_FIELDS:
        if key in out and isinstance(out[key], str):
            out[key] = json.loads(out[key])
    return out


def _copy_text(value: Any) -> str:
    """A value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, float) and math.isnan(value):
        return "\\N"
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _solution_row(conn: Connection, group_id: int, name: str) -> sa.Row | None:
    s = t.solutions
    return conn.execute(sa.select(s).where(s.c.dataset_group_id == group_id, s.c.name == name)).first()


def _adopt_legacy_revision(conn: Connection, revisions: set[str]) -> None:
    """Move the store's revision out of Alembic's default ``alembic_version`` table (where stores made before
    :data:`~recsmith.store.tables.VERSION_TABLE` kept it) into its own table, leaving other tools' rows."""
    names = set(sa.inspect(conn).get_table_names())
    if t.VERSION_TABLE in names or "alembic_version" not in names:
        return
    rows = [row[0] for row in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
    ours = [revision for revision in rows if revision in revisions]
    if not ours:
        return
    version = sa.Table(t.VERSION_TABLE, sa.MetaData(), sa.Column("version_num", sa.String(32), primary_key=True))
    version.create(conn)
    conn.execute(version.insert(), [{"version_num": revision} for revision in ours])
    legacy = sa.table("alembic_version", sa.column("version_num"))
    conn.execute(legacy.delete().where(legacy.c.version_num.in_(ours)))
    if len(ours) == len(rows):
        conn.execute(sa.text("DROP TABLE alembic_version"))
