"""Optuna studies in recsmith's own database (SQLite or PostgreSQL), beside the store's tables.

Optuna's ``RDBStorage`` adds its tables (``studies``, ``trials``, ...) and its Alembic revision (in
``alembic_version``) to the database; the store's tables have other names and the store keeps its revision in
``recsmith_alembic_version``, so the two never meet. A study is opened with the plain URL, by recsmith or
by Optuna's own tools (``optuna.load_study(study_name=..., storage=URL)``, ``optuna-dashboard URL``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.data.readers import mask_url
from recsmith.errors import ConfigError

if TYPE_CHECKING:
    import optuna


OPTUNA_VERSION_TABLE = "alembic_version"
"""Where Optuna's ``RDBStorage`` stamps its schema version (the store's own is ``recsmith_alembic_version``)."""


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


def study_name(group: str, recipe: str, metric: str) -> str:
    """The name ``recsmith tune`` gives a dataset group's study of a recipe on a metric: ``GROUP:RECIPE:METRIC``
    (a group's name holds no ``:``)."""
    return f"{group}:{recipe}:{metric}"


def _has_studies(url: str) -> bool:
    """Whether the database at ``url`` holds Optuna's tables, made and stamped with their version (opening Optuna's
    storage would make them; opening it while another process is making them races on the version stamp)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            if not {"studies", OPTUNA_VERSION_TABLE} <= tables:
                return False
            return bool(conn.execute(sa.text(f"SELECT COUNT(*) FROM {OPTUNA_VERSION_TABLE}")).scalar())
    finally:
        engine.dispose()


def _trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {"number": trial.number, "state": trial.state.name, "value": trial.value, "params": dict(trial.params),
            "fit_seconds": trial.user_attrs.get("fit_seconds"), "error": trial.user_attrs.get("error"),
            "defaults": bool(trial.user_attrs.get("recsmith_defaults")), "started": _utc(trial.datetime_start),
            "finished": _utc(trial.datetime_complete)}


def _utc(moment: datetime | None) -> datetime | None:
    """Optuna's naive local times as aware UTC ones."""
    return None if moment is None else moment.astimezone(UTC)


def read_study(url: str, name: str) -> dict[str, Any] | None:
    """A study kept at ``url`` as ``recsmith tune`` made it, for display: what it tunes and its trials, as every
    process reading the database sees them (trials appear as they finish, ``RUNNING`` while they run).

    Returns
    -------
    dict or None
        ``name``, ``direction``, ``recipe``, ``metric``, ``fixed_params``, ``attrs`` (the study's user attributes),
        ``trials`` (``number``, ``state``,
        ``value``, ``params``, ``fit_seconds``, ``error``, ``defaults``, ``started``, ``finished``; oldest first),
        ``best`` (``number``, ``value`` and ``params``: every param of the recipe, the best trial's sampled ones
        over the fixed ones and the defaults; None before a trial completes). None when there is no such study.
    """
    if not _has_studies(url):
        return None
    import optuna

    storage = study_storage(url)
    try:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # optuna's word for "no study of that name"
            return None
        attrs = study.user_attrs
        trials = [_trial_row(trial) for trial in study.get_trials(deepcopy=False)]
        complete = [trial for trial in trials if trial["state"] == "COMPLETE" and trial["value"] is not None]
        direction = study.direction.name.lower()
        best = None
        if complete:
            pick = max if direction == "maximize" else min
            chosen = pick(complete, key=lambda trial: trial["value"])
            best = {"number": chosen["number"], "value": chosen["value"],
                    "params": _full_params(attrs.get("recipe"), attrs.get("fixed_params") or {}, chosen["params"])}
        return {"name": name, "direction": direction, "recipe": attrs.get("recipe"), "metric": attrs.get("metric"),
                "fixed_params": attrs.get("fixed_params") or {}, "attrs": dict(attrs), "trials": trials,
                "best": best}
    finally:
        storage.remove_session()
        storage.engine.dispose()


def set_study_attr(url: str, name: str, key: str, value: Any) -> bool:
    """Set a user attribute of the study ``name`` kept at ``url``; False when there is no such study."""
    if not _has_studies(url):
        return False
    import optuna

    storage = study_storage(url)
    try:
        optuna.load_study(study_name=name, storage=storage).set_user_attr(key, value)
        return True
    except KeyError:  # no study of that name
        return False
    finally:
        storage.remove_session()
        storage.engine.dispose()


def _full_params(recipe: str | None, fixed: dict[str, Any], sampled: dict[str, Any]) -> dict[str, Any]:
    """Every param of ``recipe`` with the trial's values (what ``create(recipe, **params)`` takes)."""
    if recipe is None:
        return fixed | sampled
    from recsmith.recipes import recipe_class

    return recipe_class(recipe)(fixed | sampled).get_params()


def _group_names(storage: optuna.storages.RDBStorage, group: str) -> list[str]:
    import optuna

    return sorted(name for name in optuna.get_all_study_names(storage) if name.startswith(f"{group}:"))


def group_study_names(url: str, group: str) -> list[str]:
    """The names of the dataset group's studies kept at ``url`` (named ``GROUP:...`` as :func:`study_name` names
    them), sorted; none when the database holds no Optuna tables."""
    if not _has_studies(url):
        return []
    storage = study_storage(url)
    try:
        return _group_names(storage, group)
    finally:
        storage.remove_session()
        storage.engine.dispose()


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
    if not _has_studies(url):  # opening Optuna's storage would make its tables: look first
        return []
    import optuna

    storage = study_storage(url)
    try:
        names = _group_names(storage, group)
        for name in names:
            optuna.delete_study(study_name=name, storage=storage)
    finally:
        storage.remove_session()
        storage.engine.dispose()
    return names
