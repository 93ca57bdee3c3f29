"""The store's tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

VERSION_TABLE = "recsmith_alembic_version"
"""Where the store's Alembic revision is kept: not Alembic's default ``alembic_version``, which other tools
sharing the database (Optuna's study storage) use for their own revision."""

TS = sa.DateTime(timezone=True)

UNFINISHED = ("CREATE_PENDING", "CREATE_IN_PROGRESS")
"""Job statuses (:mod:`recsmith.jobs.runs`) of a job that has not ended."""


def utc_now() -> datetime:
    """The time to store: every stored time is UTC."""
    return datetime.now(UTC)


def as_utc(value: Any) -> Any:
    """A time read back, made UTC-aware (SQLite gives back naive datetimes)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


dataset_groups = sa.Table(
    "dataset_groups", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_event_id", sa.BigInteger, nullable=True),  # at least the newest real-time event's row id
    # bumped by every change to users or items made while serving (puts, deletes): workers reload their catalogue
    sa.Column("catalog_version", sa.BigInteger, nullable=False, server_default="0"),
)

schemas = sa.Table(
    "schemas", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("dataset_type", sa.String(16), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

datasets = sa.Table(
    "datasets", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("dataset_type", sa.String(16), nullable=False),
    sa.Column("schema_id", sa.Integer, sa.ForeignKey("schemas.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("dataset_group_id", "dataset_type", name="uq_datasets_group_type"),
)


def _entity_table(name: str, key: str) -> sa.Table:
    """Users and items: one record per id in a group, metadata as a JSON object."""
    return sa.Table(
        name, metadata,
        sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column(key, sa.Text, primary_key=True),
        sa.Column("metadata", sa.Text, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )


users = _entity_table("users", "user_id")
items = _entity_table("items", "item_id")

interactions = sa.Table(
    "interactions", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("item_id", sa.Text, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("event_type", sa.Text, nullable=True),
    sa.Column("event_value", sa.Float, nullable=True),
    sa.Column("context", sa.Text, nullable=True),
    sa.Column("event_id", sa.Text, nullable=True),
    sa.Column("session_id", sa.Text, nullable=True),
    sa.Column("recommendation_id", sa.Text, nullable=True),
    sa.Index("ix_interactions_group_user", "dataset_group_id", "user_id"),
    # real-time events' ids, unique per group (idempotent submissions); partial, so that bulk-imported rows
    # (event_id NULL) add no index entries: a full index made a bulk import 0.64x as fast
    sa.Index("uq_interactions_group_event", "dataset_group_id", "event_id", unique=True,
             sqlite_where=sa.text("event_id IS NOT NULL"), postgresql_where=sa.text("event_id IS NOT NULL")),
)

import_jobs = sa.Table(
    "import_jobs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("dataset_type", sa.String(16), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),  # CREATE_IN_PROGRESS, ACTIVE, CREATE_FAILED (jobs.runs)
    sa.Column("rows_read", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("duration_seconds", sa.Float, nullable=True),
    sa.Column("report", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("finished_at", TS, nullable=True),
    sa.Column("progress", sa.Text, nullable=True),  # JSON while it runs: {"stage", "done", "total"} (the console)
    sa.Column("name", sa.String(128), nullable=True),  # Personalize's jobName (its ARN); None: unnamed
    sa.UniqueConstraint("name", name="uq_import_jobs_name"),
)

solutions = sa.Table(
    "solutions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("recipe", sa.String(64), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("dataset_group_id", "name", name="uq_solutions_group_name"),
)

solution_versions = sa.Table(
    "solution_versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("solution_id", sa.Integer, sa.ForeignKey("solutions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("metrics", sa.Text, nullable=True),
    # JSON of a training with metrics: the intervals and the report's inputs (jobs.training.offline_evaluation)
    sa.Column("evaluation", sa.Text, nullable=True),
    sa.Column("artifact_uri", sa.Text, nullable=True),
    sa.Column("fit_seconds", sa.Float, nullable=True),
    sa.Column("total_seconds", sa.Float, nullable=True),
    sa.Column("num_users", sa.Integer, nullable=True),
    sa.Column("num_items", sa.Integer, nullable=True),
    sa.Column("num_interactions", sa.BigInteger, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("progress", sa.Text, nullable=True),  # JSON while it trains: {"stage", "done", "total"} (the console)
    sa.Column("created_at", TS, nullable=False),
    sa.Column("started_at", TS, nullable=True),
    sa.Column("finished_at", TS, nullable=True),
    sa.Column("name", sa.String(128), nullable=True),  # Personalize's optional version name (a label); None: unnamed
    sa.UniqueConstraint("name", name="uq_solution_versions_name"),
)

filters = sa.Table(
    "filters", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("expression", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("dataset_group_id", "name", name="uq_filters_group_name"),
)

campaigns = sa.Table(
    "campaigns", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("solution_version_id", sa.Integer, sa.ForeignKey("solution_versions.id"), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("dataset_group_id", "name", name="uq_campaigns_group_name"),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key_id", sa.String(32), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.String(128), nullable=True),
    sa.Column("created_at", TS, nullable=False),
    # the secret sealed (AES-256-GCM, key_id as associated data) under a key derived from the erasure key, so that
    # AWS Signature Version 4 can be verified (it needs the secret itself); None for keys made before migration
    # 0013, which work with bearer authentication only
    sa.Column("sealed_secret", sa.Text, nullable=True),
)

deletions = sa.Table(
    "deletions", metadata,
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.String(8), primary_key=True),  # "user" or "item"
    sa.Column("entity_id", sa.Text, primary_key=True),
    sa.Column("watermark", sa.BigInteger, nullable=False),  # the group's newest interaction row id at the deletion
    sa.Column("deleted_at", TS, nullable=False),
)
"""Users and items deleted while serving: models trained before ``watermark`` still know them, so the campaign
runtime hides them from those models' answers."""

served_items = sa.Table(
    "served_items", metadata,
    sa.Column("recommendation_id", sa.String(64), primary_key=True),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("campaign", sa.String(128), nullable=False),
    sa.Column("user_id", sa.Text, nullable=True),
    sa.Column("items", sa.Text, nullable=False),  # JSON list of the item ids returned
    sa.Column("served_at", sa.Float, nullable=False),  # epoch seconds
    sa.Index("ix_served_items_user", "dataset_group_id", "user_id", "served_at"),
)
"""The served-items ledger: what each recommendation response returned, to whom, and when."""

retrain_decisions = sa.Table(
    "retrain_decisions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("solution", sa.String(128), nullable=False),
    sa.Column("candidate_version_id", sa.Integer, nullable=True),
    sa.Column("current_version_id", sa.Integer, nullable=True),
    sa.Column("decision", sa.String(16), nullable=False),  # "switched", "kept", "failed", "no-campaign"
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("campaigns", sa.Text, nullable=True),  # JSON list of the campaigns switched
    sa.Column("created_at", TS, nullable=False),
)
"""Every decision of automatic retraining (``recsmith schedule``)."""

sa.Index("ix_interactions_group_session", interactions.c.dataset_group_id, interactions.c.session_id,
         sqlite_where=sa.text("session_id IS NOT NULL"), postgresql_where=sa.text("session_id IS NOT NULL"))
"""Real-time events by session (partial: bulk-imported rows, session NULL, add no entries), so that deleting a
user deletes the events of the sessions linked to them without reading the whole table."""


def _owner_columns() -> list[sa.Column]:
    """Which process runs a job (:class:`recsmith.atomic.ProcessOwner`): a job left unfinished by a process that
    is gone is marked failed by the next job that starts (:func:`recsmith.jobs.runs.fail_abandoned_jobs`)."""
    return [sa.Column("owner_host", sa.String(255), nullable=True), sa.Column("owner_pid", sa.Integer, nullable=True),
            sa.Column("owner_started", sa.Float, nullable=True)]


batch_jobs = sa.Table(
    "batch_jobs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # "inference" or "segment"
    sa.Column("solution_version_id", sa.Integer, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),  # jobs.runs statuses
    sa.Column("input", sa.Text, nullable=False),  # a path or fsspec URL, or "all-users"
    sa.Column("output", sa.Text, nullable=False),  # a path or fsspec URL, or "table:<name>"
    sa.Column("config", sa.Text, nullable=False),  # JSON: num_results, filter, filter_values, engine, ...
    sa.Column("lines_read", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("lines_written", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("lines_failed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("parts_done", sa.Integer, nullable=False, server_default="0"),  # what a resumed job skips
    sa.Column("duration_seconds", sa.Float, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("started_at", TS, nullable=True),
    sa.Column("finished_at", TS, nullable=True),
    sa.Column("name", sa.String(128), nullable=True),  # Personalize's jobName (its ARN); None: unnamed
    sa.UniqueConstraint("name", name="uq_batch_jobs_name"),
    sa.Index("ix_batch_jobs_group", "dataset_group_id", "kind"),
)
"""Batch inference and batch segment jobs (:mod:`recsmith.jobs.batch`), with their counts and progress."""

event_trackers = sa.Table(
    "event_trackers", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_group_id", sa.Integer, sa.ForeignKey("dataset_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("tracking_id", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", TS, nullable=False),
)
"""Personalize's event trackers: a name and the tracking id that ``PutEvents`` sends for a dataset group."""

aws_schemas = sa.Table(
    "aws_schemas", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("definition", sa.Text, nullable=False),  # the Avro JSON as CreateSchema received it
    sa.Column("domain", sa.String(32), nullable=True),
    sa.Column("created_at", TS, nullable=False),
)
"""Personalize's account-level schemas (``CreateSchema``); ``CreateDataset`` copies one into its group's schema."""


for _table in (import_jobs, solution_versions, batch_jobs):
    for _column in _owner_columns():
        _table.append_column(_column)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),  # an API key id, "cli:<os user>", "scheduler", "anonymous"
    sa.Column("action", sa.String(64), nullable=False),  # "campaign.create", "key.delete", "schedule.switch", ...
    sa.Column("resource", sa.Text, nullable=False),  # "dataset-groups/g/campaigns/c"
    sa.Column("source", sa.String(256), nullable=False),  # the client's address (HTTP) or the host (CLI, jobs)
    sa.Column("outcome", sa.String(16), nullable=False),  # "ok", "denied" or "failed"
    sa.Column("status", sa.Integer, nullable=True),  # the HTTP status (None outside HTTP)
    sa.Column("detail", sa.Text, nullable=True),  # a JSON object, never a secret
    sa.Index("ix_audit_log_at", "at"),
)
"""The audit log: every change (and every refused attempt at one), append-only. No foreign keys: entries outlive
the keys, campaigns and groups they name (triggers refuse UPDATE and DELETE, see migration 0009)."""

console_sessions = sa.Table(
    "console_sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),  # SHA-256 of the cookie's token; the token is not kept
    sa.Column("key_id", sa.String(32), sa.ForeignKey("api_keys.key_id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),  # epoch seconds
    sa.Index("ix_console_sessions_key", "key_id"),
)
"""Signed-in console sessions: the cookie carries a random token, the row the key it stands for and the session's
CSRF token. A revoked key's sessions go with it."""
