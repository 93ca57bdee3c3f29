"""Training jobs: snapshot the interactions, measure offline metrics, fit on everything, save the model.

Like Personalize, a solution version's offline metrics come from a held-out slice: the recipe is fitted
on the rest and scored on the slice, then a fresh copy is fitted on all the data and that one is saved.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recsmith import __version__
from recsmith.data.interactions import Interactions
from recsmith.data.training import TrainingData
from recsmith.engines import make_engine
from recsmith.errors import DataError
from recsmith.evaluation.evaluate import evaluate_recipes
from recsmith.evaluation.split import holdout_split
from recsmith.jobs.config import SolutionConfig
from recsmith.jobs.runs import IN_PROGRESS, JobRun, ProgressCallback, fail_abandoned_jobs, owner_columns, run_job
from recsmith.recipes import Recipe, create, recipe_class
from recsmith.recipes.bundle import TrainedModel, artifact_key
from recsmith.recipes.options import FitOptions
from recsmith.recipes.registry import recipe_name
from recsmith.settings import Settings
from recsmith.store.store import Store

logger = logging.getLogger(__name__)

DEFAULT_METRICS = ("precision@k", "recall@k", "ndcg@k", "coverage@k")


def load_training_data(store: Store, dataset_group: str, config: SolutionConfig | None = None, *,
                       item_features: bool = True, user_features: bool = True,
                       context: bool = True) -> TrainingData:
    """Snapshot a dataset group as :class:`TrainingData`: the interactions read once, in one query, give the
    matrix (weighted by ``config``'s event weights and decay) and the ordered event log; the items and users
    datasets give the feature tables, typed by their schemas.

    Parameters
    ----------
    store : Store
        Where the data is.
    dataset_group : str
        The dataset group's name.
    config : SolutionConfig, optional
        Event weights and time decay (default: none).
    item_features, user_features : bool
        Read the item / user metadata into the feature tables (training reads them only for recipes whose
        tags say they use them).
    context : bool
        Keep each event's context in the log.

    Returns
    -------
    TrainingData

    Raises
    ------
    DataError
        If the dataset group has no interactions.
    """
    config = config or SolutionConfig()
    group = store.get_dataset_group(dataset_group)
    columns = store.read_interactions(group.id, context=context)
    if len(columns["user_id"]) == 0:
        raise DataError(
            f"dataset group {dataset_group!r} has no interactions; import some first "
            f"(recsmith import interactions PATH --dataset-group {dataset_group})"
        )

    def metadata(kind: str, wanted: bool) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        dataset = store.get_dataset(group.id, kind) if wanted else None
        if dataset is None:
            return None, None
        records = store.read_items(group.id) if kind == "items" else store.read_users(group.id)
        return records, dataset.schema

    items, item_schema = metadata("items", item_features)
    users, user_schema = metadata("users", user_features)
    return TrainingData.from_columns(
        columns, event_weights=config.event_weights or None, half_life_days=config.half_life_days,
        item_features=items, user_features=users, item_schema=item_schema, user_schema=user_schema)


def training_data_for(store: Store, dataset_group: str, recipes: Iterable[Recipe | type[Recipe]], *,
                      item_features: bool = False) -> TrainingData:
    """The group's :class:`TrainingData` for fitting ``recipes`` (instances or classes) side by side (an
    evaluation): the item / user feature tables are read only when some recipe's tags say it uses them
    (``uses_item_features`` / ``uses_user_features``), as :func:`load_training_data` reads them for one recipe's
    training; ``item_features`` reads the item table whatever the tags (the ``cold-items`` protocol)."""
    chosen = list(recipes)
    return load_training_data(store, dataset_group,
                              item_features=item_features or any(r.tags.uses_item_features for r in chosen),
                              user_features=any(r.tags.uses_user_features for r in chosen), context=False)


def load_interactions(store: Store, dataset_group: str, config: SolutionConfig | None = None) -> Interactions:
    """The interactions matrix of :func:`load_training_data` (without features); kept for older callers."""
    return load_training_data(store, dataset_group, config, item_features=False, user_features=False,
                              context=False).interactions


def metric_names(k: int) -> list[str]:
    """The standard offline metrics at cut-off ``k``."""
    return [name.replace("@k", f"@{k}") for name in DEFAULT_METRICS]


def train_solution_version(
    store: Store,
    settings: Settings,
    dataset_group: str,
    recipe: str,
    params: dict[str, Any] | None = None,
    *,
    config: SolutionConfig | None = None,
    solution_name: str | None = None,
    with_metrics: bool = True,
    test_fraction: float = 0.2,
    k: int = 10,
    seed: int = 42,
    progress: ProgressCallback | None = None,
    fit_options: FitOptions | None = None,
    engine: str = "local",
    spark_master: str | None = None,
    spark_conf: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train a new solution version and store it.

    Parameters
    ----------
    store, settings
        Where the data comes from and where the artifact goes.
    dataset_group : str
        The dataset group to train on.
    recipe : str
        Registry name of the recipe, e.g. ``"item-knn"``.
    params : dict, optional
        Hyperparameters. A solution keeps its params (as Personalize's solution config): training an
        existing solution again reuses them, and these update them (for example the best ones saved by
        ``recsmith tune``); a new solution starts from the recipe's defaults.
    config : SolutionConfig, optional
        Event weights and time decay.
    solution_name : str, optional
        Name of the solution (default: the recipe name); created if new.
    with_metrics : bool
        Hold out ``test_fraction`` of each user's interactions, measure, then fit on everything.
    test_fraction, k, seed
        The offline-metrics protocol.
    progress : callable, optional
        Called with each stage name: "read", "metrics", "fit", "save", "done".
    fit_options : FitOptions, optional
        How both fits run, the offline metrics' and the final one: the device (``FitOptions(device="cuda")``;
        an unusable one fails before any work), threads, and the ``progress`` / ``epoch_callback`` an iterative
        recipe calls per epoch (called again from epoch 0 for the second fit). Never saved with the model.
    engine : {"local", "spark"}
        Where both fits run: here, or on Apache Spark (``als`` only; :mod:`recsmith.engines.spark`). The
        version is the same kind of model and artifact either way; a Spark one records the engine (name,
        master, Spark version) in its config and its artifact's meta. A ``fit_options.engine`` given directly
        is used (and recorded) the same way.
    spark_master, spark_conf
        Spark's master URL (default ``local[2]``) and extra Spark settings, for ``engine="spark"``.

    Returns
    -------
    dict
        The stored solution version (id, status, metrics, artifact_uri, timings), ``ACTIVE``.

    Raises
    ------
    BaseException
        Whatever failed the training (``KeyboardInterrupt`` too), after the version is recorded
        ``CREATE_FAILED`` with :func:`recsmith.jobs.runs.failure_message` as its ``error``.
    """
    config = config or SolutionConfig()
    recipe = recipe_name(recipe)  # validates the name (either spelling) before any work
    klass = recipe_class(recipe)
    artifacts = Path(settings.resolved_artifact_dir())
    key = artifact_key(settings.encryption_key)  # a bad key fails here, before any work
    fail_abandoned_jobs(store, artifacts)  # what killed trainings and imports left
    fields = klass.Params.model_fields
    group = store.get_dataset_group(dataset_group)
    saved = store.find_solution(group.id, solution_name or recipe)
    kept = {} if saved is None or saved["recipe"] != recipe else saved["params"]
    params = {key: value for key, value in kept.items() if key in fields} | dict(params or {})
    model_recipe = create(recipe, **params)  # validates the params before any work
    fit_options = fit_options or FitOptions()
    fit_options.resolve_device(model_recipe)  # a device it cannot use here fails before any work
    made_engine = make_engine(engine, recipe, master=spark_master, conf=spark_conf)  # a missing extra fails here
    if made_engine is not None:
        fit_options = dataclasses.replace(fit_options, engine=made_engine)
    if fit_options.engine is not None:
        fit_options.engine.check(klass, dataclasses.replace(fit_options, device=fit_options.resolve_device(klass)))
    engine_record = None if fit_options.engine is None else fit_options.engine.describe()
    solution = store.get_or_create_solution(
        group.id, solution_name or recipe, recipe, model_recipe.get_params(), config.model_dump()
    )
    version_config = config.model_dump() | ({} if engine_record is None else {"engine": engine_record})
    version_id = store.create_solution_version(solution["id"], model_recipe.get_params(), version_config,
                                               owner=owner_columns())
    started = time.perf_counter()
    store.update_solution_version(version_id, status=IN_PROGRESS, started_at=_now())

    def record(run: JobRun) -> None:
        if run.failed:
            logger.debug("training failed: %s", traceback.format_exc())
        store.update_solution_version(version_id, status=run.status, error=run.error, total_seconds=run.seconds,
                                      finished_at=_now(), **run.result)

    audited = store.audited("solution_version.create", f"dataset-groups/{dataset_group}/solutions/{solution['name']}"
                            f"/versions/{version_id}", {"recipe": recipe})
    try:
        with audited, run_job(record, progress=progress, started=started) as run:  # KeyboardInterrupt: CREATE_FAILED
            if progress:
                progress("read")
            last_event = store.last_interaction_id(group.id)  # serving reads the events stored after it live
            data = load_training_data(store, dataset_group, config, item_features=klass.tags.uses_item_features,
                                      user_features=klass.tags.uses_user_features, context=klass.tags.sequential)
            interactions = data.interactions
            metrics: dict[str, Any] = {}
            if made_engine is not None:
                made_engine.start()  # the Spark session starts here, outside the timed fits
            if with_metrics:
                if progress:
                    progress("metrics")
                train, test, protocol = holdout_split(interactions, sequential=klass.tags.sequential,
                                                      fraction=test_fraction, seed=seed)
                rows = evaluate_recipes({recipe: model_recipe.clone()}, data.with_interactions(train), test, k=k,
                                        metrics=metric_names(k), fit_options=fit_options)
                metrics = {key: value for key, value in rows[0].items() if "@" in key}
                metrics["protocol"] = protocol
            if data.rows_skipped:  # stored rows training could not use (TrainingData.skipped says why)
                metrics["rows_skipped"] = data.rows_skipped
            if progress:
                progress("fit")
            fit_started = time.perf_counter()
            model_recipe.fit(data, fit_options)
            fit_seconds = time.perf_counter() - fit_started
            if progress:
                progress("save")
            artifact = artifacts / f"solution-version-{version_id}"
            meta = {
                "solution_version": version_id, "solution": solution["name"], "dataset_group": dataset_group,
                "recipe": recipe, "params": model_recipe.get_params(), "config": config.model_dump(),
                "recsmith_version": __version__, "num_users": interactions.n_users,
                "num_items": interactions.n_items, "num_interactions": interactions.nnz, "metrics": metrics,
                "last_interaction_id": last_event, "rows_skipped": data.skipped,
                # the time decay's reference (the newest event), so serving weighs live events as training did
                "reference_time": None if interactions.timestamps is None or not interactions.nnz
                else int(interactions.timestamps.max()),
            }
            if fit_options.engine is not None:  # where it was trained (a local fit records nothing)
                meta["engine"] = fit_options.engine.describe()
            TrainedModel.from_fit(model_recipe, data, meta).save(artifact, encryption_key=key)
            run.result.update(
                metrics=metrics, artifact_uri=str(artifact), fit_seconds=round(fit_seconds, 4),
                num_users=interactions.n_users, num_items=interactions.n_items, num_interactions=interactions.nnz,
            )
    finally:
        if made_engine is not None:
            made_engine.close()  # stops the Spark session this job started
    return store.get_solution_version(version_id)


def _now() -> datetime:
    return datetime.now(UTC)
