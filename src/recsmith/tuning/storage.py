"""Optuna studies in recsmith's own database (SQLite or PostgreSQL), beside the store's tables.

Optuna's ``RDBStorage`` adds its tables (``studies``, ``trials``, ...) and its Alembic revision (in
``alembic_version``) to the database; the store's tables have other names and the store keeps its revision in
``recsmith_alembic_version``, so the two never meet. A study is opened with the plain URL, by recsmith or
by Optuna's own tools (``optuna.load_study(study_name=..., storage=URL)``, ``optuna-dashboard URL``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.data.readers import mask_url
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
        If the database cannot be opened, or holds Optuna tables of another schema version.
    """
    import optuna

    engine_kwargs: dict[str, Any] = ({"connect_args": {"timeout": 30}} if url.startswith("sqlite")
                                     else {"pool_pre_ping": True})
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise ConfigError(f"cannot open the study database {mask_url(url)}: {exc}") from None
    except RuntimeError as exc:  # optuna's word for a schema of another version
        raise ConfigError(f"the studies in {mask_url(url)} need another optuna version ({exc}); use that "
                          "version, or keep the studies in a separate database (recsmith tune --storage URL)") from None





def delete_group_studies(url: str, group: str) -> list[str]:
    """Delete the dataset group's studies from the database at ``url`` (the store's): those named as ``recsmith
    tune`` names them by default, ``GROUP:RECIPE:METRIC`` (a group's name holds no ``:``, so no other group's
    study starts with ``GROUP:``). Studies given another name with ``--study``, or kept elsewhere with
    ``--storage``, are not known to belong to the group and stay.

    Returns
    -------
    list of str
        The names of the studies deleted (none when the database holds no Optuna tables).
    """
    engine = sa.create_engine(url)
    try:  # opening Optuna's storage would make its tables: look first
        with engine.connect() as conn:
            kept = "studies" in sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()
    if not kept:
        return []
    import optuna

    storage = study_storage(url)
    try:
        names = sorted(name for name in optuna.get_all_study_names(storage) if name.startswith(f"{group}:"))
        for name in names:
            optuna.delete_study(study_name=name, storage=storage)
    finally:
        storage.remove_session()
        storage.engine.dispose()
    return names
