"""Optuna studies in recsmith's own database (SQLite or PostgreSQL), beside the store's tables.

Optuna's ``RDBStorage`` adds its tables (``studies``, ``trials``, ...) to the database; none of their names
clash with the store's. Both Optuna and the store keep their schema revision in Alembic's
``alembic_version`` table, though, so in a database the store shares, the store's revision is written
first (the store is migrated) and Optuna's own Alembic check is replaced by a check of its
``version_info`` schema number. A database Optuna has to itself (its tables, none of the store's) is opened
the ordinary way.

So open such a study through :func:`study_storage` (``optuna.load_study(study_name=NAME,
storage=study_storage(url))``), not by handing Optuna the bare URL, which would trip on the store's revision.
``optuna-dashboard URL`` works as it is (it skips that check).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.errors import ConfigError

if TYPE_CHECKING:
    import optuna


def study_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage on the database at ``url`` (a SQLAlchemy URL; the store's, normally).

    Studies kept there can be resumed (``load_if_exists``) and watched while they run, e.g. with
    ``optuna-dashboard URL``.

    Raises
    ------
    ConfigError
        If the database cannot be reached, or holds Optuna tables of another schema version.
    """
    import optuna

    from recsmith.store.store import Store

    engine_kwargs: dict[str, Any] = ({"connect_args": {"timeout": 30}} if url.startswith("sqlite")
                                     else {"pool_pre_ping": True})
    try:
        engine = sa.create_engine(url, **engine_kwargs)
        try:
            tables = set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise ConfigError(f"cannot open the study database {masked_url(url)}: {exc}") from None
    if "studies" in tables and "dataset_groups" not in tables:  # Optuna's alone
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    store = Store(url)  # the store's tables, and its Alembic revision, come first
    try:
        store.migrate()
    finally:
        store.close()
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=True)
    _check_schema(storage, url)
    return storage


def _check_schema(storage: optuna.storages.RDBStorage, url: str) -> None:
    import optuna
    from optuna.storages._rdb import models

    expected = getattr(models, "SCHEMA_VERSION", None)
    with storage.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT schema_version, library_version FROM version_info")).first()
    if expected is not None and row is not None and row.schema_version != expected:
        raise ConfigError(
            f"the studies in {masked_url(url)} were written by optuna {row.library_version} (schema "
            f"{row.schema_version}); this optuna {optuna.__version__} uses schema {expected}. Use the same optuna "
            "version, or keep the studies in a separate database (recsmith tune --storage URL)")


def masked_url(url: str) -> str:
    """The URL without its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url
