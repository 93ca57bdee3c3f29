"""Training jobs: snapshot the interactions, measure offline metrics, fit on everything, save the model.

Like Personalize, a solution version's offline metrics come from a held-out slice: the recipe is fitted
on the rest and scored on the slice, then a fresh copy is fitted on all the data and that one is saved.
The metrics' bootstrap confidence intervals and the inputs of the version's evaluation report are stored with
it (its ``evaluation``, :func:`offline_evaluation`), and its stage and epochs go to its ``progress`` while it
trains (:class:`StoredProgress`), so that every server process can show them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recsmith import __version__
from recsmith.data.interactions import Interactions
from recsmith.data.training import TrainingData
from recsmith.engines import make_engine
from recsmith.errors import DataError
from recsmith.evaluation.evaluate import evaluate_recipes
from recsmith.evaluation.experiment import Experiment
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
    metrics: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train a new solution version and store it.

    :func:`start_training` records the version, then :meth:`TrainingJob.run` trains it; a caller that must know
    the version's id before the training ends (the console, which trains in the background) calls the two itself.

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
        Hold out ``test_fraction`` of each user's interactions, measure, then fit on everything. The metrics'
        bootstrap confidence intervals and what the version's evaluation report is drawn from are stored as its
        ``evaluation`` (:func:`offline_evaluation`).
    test_fraction, k, seed
        The offline-metrics protocol (``seed`` also seeds the bootstrap).
    metrics : sequence of str, optional
        The offline metrics to measure (``"ndcg@25"``...; default: :func:`metric_names` of ``k``); the
        confidence intervals and the evaluation report are drawn at ``k``.
    progress : callable, optional
        Called with each stage name: "read", "metrics", "fit", "save", "done". The stages, and the epochs of an
        iterative recipe, are also written to the version's ``progress`` (:class:`StoredProgress`).
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
        The stored solution version (id, status, metrics, evaluation, artifact_uri, timings), ``ACTIVE``.

    Raises
    ------
    BaseException
        Whatever failed the training (``KeyboardInterrupt`` too), after the version is recorded
        ``CREATE_FAILED`` with :func:`recsmith.jobs.runs.failure_message` as its ``error``.
    """
    return start_training(store, settings, dataset_group, recipe, params, config=config, solution_name=solution_name,
                          with_metrics=with_metrics, test_fraction=test_fraction, k=k, seed=seed, progress=progress,
                          fit_options=fit_options, engine=engine, spark_master=spark_master,
                          spark_conf=spark_conf, metrics=metrics).run()


def start_training(
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
    metrics: Sequence[str] | None = None,
) -> TrainingJob:
    """Check a training's settings and record its solution version (``CREATE_PENDING``), without training it.

    Everything that can be checked before any data is read is checked here: the recipe's name and params
    (``create(recipe, **params)``), the device, the engine, the encryption key, the dataset group. The parameters
    are :func:`train_solution_version`'s.

    Returns
    -------
    TrainingJob
        The version's id (``version_id``); :meth:`TrainingJob.run` trains it (in this thread or another).

    Raises
    ------
    ConfigError, NotFoundError
        A bad recipe, param, device, engine or key, or an unknown group; nothing is recorded then.
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
    return TrainingJob(store=store, dataset_group=dataset_group, group_id=group.id, solution=solution["name"],
                       version_id=version_id, model=model_recipe, config=config, artifacts=artifacts, key=key,
                       with_metrics=with_metrics, test_fraction=test_fraction, k=k, seed=seed, progress=progress,
                       fit_options=fit_options, engine=made_engine,
                       metrics=tuple(metrics) if metrics else tuple(metric_names(k)))


@dataclass
class TrainingJob:
    """A recorded solution version to train (from :func:`start_training`), and how."""

    store: Store
    dataset_group: str
    group_id: int
    solution: str
    version_id: int
    """The solution version this trains."""
    model: Recipe
    config: SolutionConfig
    artifacts: Path
    key: bytes | None
    with_metrics: bool
    test_fraction: float
    k: int
    seed: int
    progress: ProgressCallback | None
    fit_options: FitOptions
    engine: Any = None
    metrics: tuple[str, ...] = ()
    """The offline metrics to measure (empty: :func:`metric_names` of ``k``)."""

    def run(self) -> dict[str, Any]:
        """Train the version: read the data, measure the offline metrics (when asked), fit on everything, save the
        artifact, and record how it ended (``ACTIVE``, or ``CREATE_FAILED`` with the error, the exception going
        on to the caller). Returns the stored version."""
        store, version_id, recipe = self.store, self.version_id, self.model.name
        klass = type(self.model)
        started = time.perf_counter()
        store.update_solution_version(version_id, status=IN_PROGRESS, started_at=_now())
        stored = StoredProgress(store, version_id)
        fit_options = dataclasses.replace(self.fit_options, progress=stored.epochs(self.fit_options.progress))

        def stage(name: str) -> None:
            stored.stage(name)
            if self.progress:
                self.progress(name)

        def record(run: JobRun) -> None:
            if run.failed:
                logger.debug("training failed: %s", traceback.format_exc())
            store.update_solution_version(version_id, status=run.status, error=run.error,
                                          total_seconds=run.seconds, finished_at=_now(), **run.result)

        audited = store.audited("solution_version.create", f"dataset-groups/{self.dataset_group}/solutions/"
                                f"{self.solution}/versions/{version_id}", {"recipe": recipe})
        try:
            with audited, run_job(record, progress=self.progress, started=started) as run:  # ^C: CREATE_FAILED
                stage("read")
                last_event = store.last_interaction_id(self.group_id)  # serving reads the events stored after it
                data = load_training_data(store, self.dataset_group, self.config,
                                          item_features=klass.tags.uses_item_features,
                                          user_features=klass.tags.uses_user_features, context=klass.tags.sequential)
                interactions = data.interactions
                metrics: dict[str, Any] = {}
                evaluation = None
                if self.engine is not None:
                    self.engine.start()  # the Spark session starts here, outside the timed fits
                if self.with_metrics:
                    stage("metrics")
                    metrics, evaluation = self._measure(data, fit_options)
                if data.rows_skipped:  # stored rows training could not use (TrainingData.skipped says why)
                    metrics["rows_skipped"] = data.rows_skipped
                stage("fit")
                fit_started = time.perf_counter()
                self.model.fit(data, fit_options)
                fit_seconds = time.perf_counter() - fit_started
                stage("save")
                artifact = self._save(data, metrics, last_event)
                run.result.update(
                    metrics=metrics, evaluation=evaluation, artifact_uri=str(artifact),
                    fit_seconds=round(fit_seconds, 4), num_users=interactions.n_users, num_items=interactions.n_items,
                    num_interactions=interactions.nnz,
                )
        finally:
            if self.engine is not None:
                self.engine.close()  # stops the Spark session this job started
        return store.get_solution_version(version_id)

    def _measure(self, data: TrainingData, fit_options: FitOptions) -> tuple[dict[str, Any], dict[str, Any]]:
        """The offline metrics (means and protocol) and the :func:`offline_evaluation` of a copy of the recipe
        fitted on all but the held-out slice."""
        from recsmith.evaluation.analysis import REPORT_DEPTH  # scipy.stats: only where metrics are measured

        klass = type(self.model)
        train, test, protocol = holdout_split(data.interactions, sequential=klass.tags.sequential,
                                              fraction=self.test_fraction, seed=self.seed)
        rows = evaluate_recipes({self.model.name: self.model.clone()}, data.with_interactions(train), test, k=self.k,
                                metrics=list(self.metrics or metric_names(self.k)), fit_options=fit_options,
                                details=True, depth=REPORT_DEPTH)
        metrics: dict[str, Any] = {key: value for key, value in rows[0].items() if "@" in key}
        metrics["protocol"] = protocol
        return metrics, offline_evaluation(rows[0], train, test, protocol, k=self.k, seed=self.seed)

    def _save(self, data: TrainingData, metrics: dict[str, Any], last_event: int | None) -> Path:
        interactions = data.interactions
        artifact = self.artifacts / f"solution-version-{self.version_id}"
        meta = {
            "solution_version": self.version_id, "solution": self.solution, "dataset_group": self.dataset_group,
            "recipe": self.model.name, "params": self.model.get_params(), "config": self.config.model_dump(),
            "recsmith_version": __version__, "num_users": interactions.n_users,
            "num_items": interactions.n_items, "num_interactions": interactions.nnz, "metrics": metrics,
            "last_interaction_id": last_event, "rows_skipped": data.skipped,
            # the time decay's reference (the newest event), so serving weighs live events as training did
            "reference_time": None if interactions.timestamps is None or not interactions.nnz
            else int(interactions.timestamps.max()),
        }
        if self.fit_options.engine is not None:  # where it was trained (a local fit records nothing)
            meta["engine"] = self.fit_options.engine.describe()
        TrainedModel.from_fit(self.model, data, meta).save(artifact, encryption_key=self.key)
        return artifact


PROGRESS_SECONDS = 0.25
"""Least time between two writes of a training's epochs to its ``progress`` (a stage change is written at once)."""


class StoredProgress:
    """A training's progress written to its solution version's ``progress`` column, as JSON ``{"stage", "done",
    "total"}`` (``done``/``total``: epochs of the current fit, None before the fit reports any), so every server
    process can show it. Epochs are written at most every :data:`PROGRESS_SECONDS`, and always the first and the
    last of a fit; a write that fails is logged, never raised (the training goes on)."""

    def __init__(self, store: Store, version_id: int, every: float = PROGRESS_SECONDS) -> None:
        self.store, self.version_id, self.every = store, version_id, every
        self.current = "read"
        self.written = 0.0

    def stage(self, name: str) -> None:
        """The training entered stage ``name`` (``read``, ``metrics``, ``fit``, ``save``)."""
        self.current = name
        self._write(None, None)

    def epochs(self, then: Callable[[int, int], None] | None = None) -> Callable[[int, int], None]:
        """A ``FitOptions.progress`` callback that records ``(done, total)`` in the current stage, then calls
        ``then`` (the caller's own callback)."""

        def report(done: int, total: int) -> None:
            if done in (0, total) or time.monotonic() - self.written >= self.every:
                self._write(done, total)
            if then is not None:
                then(done, total)

        return report

    def _write(self, done: int | None, total: int | None) -> None:
        try:
            self.store.update_solution_version(self.version_id, progress=json.dumps(
                {"stage": self.current, "done": done, "total": total}))
        except Exception:  # the store is busy or gone: the training itself goes on
            logger.warning("could not write the progress of solution version %s", self.version_id, exc_info=True)
        self.written = time.monotonic()


def read_progress(version: dict[str, Any]) -> dict[str, Any] | None:
    """A stored version's ``progress`` (see :class:`StoredProgress`) as a dict; None when it has none."""
    text = version.get("progress")
    if not text:
        return None
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


EVALUATION_CONFIDENCE: float = Experiment.model_fields["confidence"].default
"""Level of the intervals training stores: ``recsmith evaluate``'s default."""
EVALUATION_RESAMPLES: int = Experiment.model_fields["bootstrap"].default
"""Bootstrap resamples per interval: ``recsmith evaluate``'s default."""


def offline_evaluation(row: dict[str, Any], train: Interactions, test: Interactions, protocol: str, *, k: int,
                       seed: int) -> dict[str, Any]:
    """What a version stores of its offline evaluation (its ``evaluation``), from the ``evaluate_recipes(...,
    details=True)`` row measured on the split ``train``/``test``.

    The intervals are ``recsmith evaluate``'s (:func:`recsmith.evaluation.stats.summarise`: percentile bootstrap of
    the mean over the evaluated users); the report entry is :func:`recsmith.evaluation.analysis.report_entry`'s, so
    :func:`evaluation_report` draws the report ``recsmith evaluate --report`` would for this recipe on this split.

    Returns
    -------
    dict
        ``confidence``, ``n_resamples``, ``seed``, ``protocol``, ``k``, ``users`` (evaluated), ``intervals``
        (``{metric: {"mean", "ci_low", "ci_high"}}``; catalogue-wide metrics such as coverage have none) and
        ``report`` (``entry``, ``reference_deciles``, ``primary``), JSON-ready.
    """
    from recsmith.evaluation.analysis import interaction_deciles, report_entry  # scipy.stats, imported late: a
    from recsmith.evaluation.stats import summarise  # training without metrics, and `recsmith --help`, never need it

    intervals = summarise(row["per_user"], confidence=EVALUATION_CONFIDENCE, n_resamples=EVALUATION_RESAMPLES,
                          seed=seed)
    primary = f"ndcg@{k}"
    entry = report_entry(row, train.matrix, test.matrix, intervals=intervals,
                         segment_metric=primary if primary in row["per_user"] else None)
    return {"confidence": EVALUATION_CONFIDENCE, "n_resamples": EVALUATION_RESAMPLES, "seed": seed,
            "protocol": protocol, "k": k, "users": int(row["users"]), "intervals": intervals,
            "report": {"entry": entry, "reference_deciles": interaction_deciles(train.matrix).tolist(),
                       "primary": primary if primary in entry["metrics"] else None}}


def evaluation_report(version: dict[str, Any]) -> str | None:
    """The self-contained HTML evaluation report of a stored version (:func:`recsmith.evaluation.report.
    render_report`), drawn from its stored :func:`offline_evaluation`; None when it has none (trained without
    metrics, or before versions stored their evaluation)."""
    from recsmith.evaluation.report import render_report

    stored = (version.get("evaluation") or {}).get("report")
    if not stored:
        return None
    evaluation = version["evaluation"]
    entry = dict(stored["entry"]) | {"recipe": f"{version['recipe']} (version {version['id']})"}
    context = {"dataset group": version.get("dataset_group"), "solution": version.get("solution_name"),
               "solution version": version["id"], "params": version.get("params"),
               "protocol": evaluation.get("protocol"), "evaluated users": evaluation.get("users"),
               "intervals": f"{evaluation['confidence']:.0%} bootstrap, {evaluation['n_resamples']} resamples, "
                            f"seed {evaluation['seed']}",
               "trained": _text_time(version.get("finished_at"))}
    return render_report([entry], title=f"recsmith evaluation: {version.get('dataset_group')} version {version['id']}",
                         context={key: value for key, value in context.items() if value is not None},
                         primary=stored.get("primary"), reference_deciles=stored.get("reference_deciles"),
                         confidence=float(evaluation["confidence"]))


def tuning_interactions(store: Store, dataset_group: str, recipe: str, config: SolutionConfig | None = None, *,
                        test_fraction: float = 0.2, seed: int = 42) -> tuple[Interactions, str]:
    """The interactions ``recsmith tune`` searches a recipe's params on: the group's, less the slice
    :func:`train_solution_version` measures offline metrics on (its ``test_fraction`` and ``seed`` defaults), so
    those metrics stay honest for the tuned params.

    Returns
    -------
    (Interactions, str)
        What the trials may use, and the protocol of the slice left out.
    """
    interactions = load_training_data(store, dataset_group, config, item_features=False,
                                      user_features=False).interactions
    sequential = recipe_class(recipe).tags.sequential  # held out as training measures it
    tune_part, _, holdout = holdout_split(interactions, sequential=sequential, fraction=test_fraction, seed=seed)
    return tune_part, holdout


def _text_time(value: Any) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else str(value)


def _now() -> datetime:
    return datetime.now(UTC)
