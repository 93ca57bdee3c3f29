"""Hyperparameter tuning with Optuna: TPE over a recipe's declared search space, on a validation split.

The objective of a trial is one metric of the recipe fitted with the trial's params on the given
interactions less a validation slice (:func:`~recsmith.evaluation.split.holdout_split`: a random share of
each user's pairs, or each user's last pair for sequential recipes), measured on that slice: ranking metrics
(``ndcg@10``, ...) are maximised, the rating errors ``rmse`` and ``mae`` (for rating recipes such as ``svd``)
minimised. Pass training data only; the test split stays untouched.

Iterative recipes (``als``, ``bpr``, ``svd``, ``svdpp``) report the validation metric every few epochs
through the :attr:`~recsmith.recipes.options.FitOptions.epoch_callback` of their fit (recipes tagged
``iterative``), and Optuna's ``MedianPruner`` stops a
trial whose metric falls below the median of earlier trials at the same epoch. A study lives in a database
(normally the store's, see :func:`~recsmith.tuning.storage.study_storage`) under a name, so a later run with
the same name adds trials to it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recsmith import __version__
from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.metrics import METRICS, compute_metrics
from recsmith.evaluation.split import holdout_split
from recsmith.recipes import available, recipe_class
from recsmith.recipes.base import Recipe, SearchDimension
from recsmith.recipes.options import FitOptions
from recsmith.recipes.registry import canonical_name
from recsmith.tuning.space import check_space, contains, search_space, space_json, suggest, tunable_recipes

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

RANKING_METRICS = tuple(name for name in METRICS if name not in ("coverage", "novelty"))
"""Metrics ``tune`` maximises, written ``NAME@K``."""
RATING_METRICS = ("rmse", "mae")
"""Rating errors ``tune`` minimises (recipes that predict ratings with ``score``)."""
MAX_REPORT_USERS = 5_000
"""Validation users ranked for an intermediate (per-epoch) report; the final value uses them all."""
REPORTS_PER_TRIAL = 5
"""About how many intermediate reports a trial of the longest epochs of the space makes."""
DEFAULTS_ATTR = "recsmith_defaults"


@dataclass(frozen=True)
class TrialReport:
    """What a ``tune_recipe`` callback gets after each finished trial.

    Attributes
    ----------
    number : int
        The trial's number in the study (0-based, counting earlier runs).
    state : str
        ``COMPLETE``, ``PRUNED`` or ``FAIL``.
    value : float or None
        Its validation metric (None unless complete).
    params : dict
        The sampled params.
    best_value, best_params
        The study's best so far (None before any trial completes).
    done, trials : int
        Trials finished in this run, and asked for.
    completed, pruned, failed : int
        This run's trials by state.
    elapsed : float
        Seconds since the run started.
    timeout : float or None
        The run's time budget in seconds.
    """

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    best_value: float | None
    best_params: dict[str, Any] | None
    done: int
    trials: int
    completed: int
    pruned: int
    failed: int
    elapsed: float
    timeout: float | None

    @property
    def time_left(self) -> float | None:
        """Estimated seconds left: the remaining trials at the mean pace so far, capped by the timeout."""
        estimate = (self.trials - self.done) * self.elapsed / self.done if self.done else None
        if self.timeout is None:
            return estimate
        budget = max(0.0, self.timeout - self.elapsed)
        return budget if estimate is None else min(estimate, budget)


@dataclass
class TuneResult:
    """The outcome of :func:`tune_recipe`.

    Attributes
    ----------
    recipe, metric, direction : str
        What was tuned, on which metric, ``maximize`` or ``minimize``.
    study_name : str
        The Optuna study (pass it again to resume).
    best_value : float
        The best trial's validation metric, over the whole study.
    best_params : dict
        All the recipe's params with the best trial's values: ready for ``create(recipe, **best_params)``.
    tuned_params : dict
        Only the params the best trial sampled.
    fixed_params : dict
        Params held fixed (not tuned).
    default_value : float or None
        The validation metric of the recipe's defaults (the study's first trial), when the study has it.
    search_space : dict
        The dimensions searched, as JSON.
    trials_run, completed, pruned, failed : int
        Trials of this run, and by state.
    total_trials : int
        Trials in the study, earlier runs included.
    seconds : float
        Wall time of this run.
    interrupted : bool
        The run was stopped by Ctrl-C (finished trials are kept in the study).
    storage : str
        Where the study lives (``memory``, or the database URL without password).
    study : optuna.Study
        The study itself.
    """

    recipe: str
    metric: str
    direction: str
    study_name: str
    best_value: float
    best_params: dict[str, Any]
    tuned_params: dict[str, Any]
    fixed_params: dict[str, Any]
    default_value: float | None
    search_space: dict[str, dict[str, Any]]
    trials_run: int
    completed: int
    pruned: int
    failed: int
    total_trials: int
    seconds: float
    interrupted: bool
    storage: str
    study: optuna.Study = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """Everything but the study object, JSON-ready."""
        return {key: value for key, value in self.__dict__.items() if key != "study"}


def direction_of(metric: str, recipe: str | None = None) -> str:
    """``maximize`` for a ranking metric (``NAME@K``), ``minimize`` for ``rmse``/``mae``.

    Raises
    ------
    ConfigError
        If the metric cannot be tuned (the message lists those that can), or is a rating error and the
        recipe predicts no ratings.
    """
    allowed = (f"maximise one of {', '.join(f'{name}@K' for name in RANKING_METRICS)} (e.g. ndcg@10), or minimise "
               f"{' or '.join(RATING_METRICS)} with a rating recipe")
    if not isinstance(metric, str):
        raise ConfigError(f"metric must be a string, got {metric!r}; {allowed}")
    if metric in RATING_METRICS:
        if recipe is not None and not recipe_class(recipe).tags.predicts_ratings:
            rating = [name for name in tunable_recipes() if recipe_class(name).tags.predicts_ratings]
            raise ConfigError(f"metric {metric} needs a recipe that predicts ratings ({', '.join(rating)}); "
                              f"{recipe} ranks items, so tune it on a ranking metric such as ndcg@10")
        return "minimize"
    base, sep, cut = metric.partition("@")
    if base not in RANKING_METRICS or not sep:
        raise ConfigError(f"unknown metric {metric!r} for tuning; {allowed}")
    if not cut.isdigit() or int(cut) <= 0:
        raise ConfigError(f"metric {metric!r}: the cut-off after '@' must be a positive integer, e.g. {base}@10")
    return "maximize"


class _Validation:
    """The validation slice and the metric measured on it."""

    def __init__(self, valid: Interactions, metric: str, seed: int) -> None:
        self.metric = metric
        self.rating = metric in RATING_METRICS
        if self.rating:
            from recsmith.recipes.svd import ratings_matrix

            ratings = ratings_matrix(valid)
            self.users = np.repeat(np.arange(ratings.shape[0]), np.diff(ratings.indptr))
            self.items = ratings.indices.astype(np.int64)
            self.actual = ratings.data.astype(np.float64)
            if not len(self.actual):
                raise DataError("the validation slice holds no ratings to measure rmse/mae on")
            return
        self.k = int(metric.partition("@")[2])
        self.users = np.flatnonzero(np.diff(valid.matrix.indptr) > 0)
        if not len(self.users):
            raise DataError("the validation slice holds no users; the data is too small to tune on")
        self.truth = valid.matrix[self.users]
        self.report_rows = np.arange(len(self.users))
        if len(self.users) > MAX_REPORT_USERS:
            rng = np.random.default_rng(seed)
            self.report_rows = np.sort(rng.choice(len(self.users), MAX_REPORT_USERS, replace=False))

    def __call__(self, recipe: Recipe, partial: bool = False) -> float:
        """The metric of a fitted recipe; ``partial``: on the users sampled for intermediate reports."""
        if self.rating:
            error = recipe.score(self.users, self.items).astype(np.float64) - self.actual
            value = np.sqrt(np.mean(error**2)) if self.metric == "rmse" else np.mean(np.abs(error))
            return float(value)
        rows = self.report_rows if partial else slice(None)
        ids = recipe.recommend(self.users[rows], self.k, exclude_seen=True).ids
        return compute_metrics(ids, self.truth[rows], [self.metric], n_items=recipe.n_items)[self.metric]


def check_settings(recipe: str, *, metric: str = "ndcg@10", trials: int = 50, timeout: float | None = None,
                   validation_fraction: float = 0.2, fixed_params: Mapping[str, Any] | None = None,
                   space: Mapping[str, SearchDimension] | None = None) -> tuple[str, dict[str, SearchDimension]]:
    """Check :func:`tune_recipe`'s settings without any data; returns the direction and the dimensions to search.

    Raises
    ------
    ConfigError
        Naming the bad value and the allowed ones.
    """
    fixed = dict(fixed_params or {})
    if isinstance(recipe, str):
        recipe = canonical_name(recipe)
    if not isinstance(recipe, str) or recipe not in available():
        raise ConfigError(f"unknown recipe {recipe!r}; tunable recipes: {', '.join(tunable_recipes())}")
    direction = direction_of(metric, recipe)
    if isinstance(trials, bool) or not isinstance(trials, int | np.integer) or trials <= 0:
        raise ConfigError(f"trials must be a positive integer, got {trials!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or not timeout > 0):
        raise ConfigError(f"timeout must be a positive number of seconds (or None for no limit), got {timeout!r}")
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, int | float) \
            or not 0.0 < validation_fraction < 1.0:
        raise ConfigError(f"validation_fraction must be between 0 and 1 (exclusive), got {validation_fraction!r}")
    dims = dict(space) if space is not None else search_space(recipe)
    check_space(recipe, dims)
    recipe_class(recipe)(fixed)  # unknown names and bad values of the fixed params: ConfigError now
    dims = {name: dim for name, dim in dims.items() if name not in fixed}
    if not dims:
        raise ConfigError(f"every param of {recipe}'s search space is fixed ({', '.join(sorted(fixed))}); "
                          "leave at least one free to tune")
    return direction, dims


def _report_every(klass: type[Recipe], dims: Mapping[str, SearchDimension], fixed: dict[str, Any],
                  report_every: int | None) -> int | None:
    """Epochs between intermediate reports (None: the recipe reports none)."""
    if not klass.tags.iterative or "epochs" not in klass.Params.model_fields:
        return None
    if report_every is not None:
        if isinstance(report_every, bool) or not isinstance(report_every, int) or report_every <= 0:
            raise ConfigError(f"report_every must be a positive number of epochs, got {report_every!r}")
        return report_every
    epochs = dims.get("epochs")
    longest = getattr(epochs, "high", None) or fixed.get("epochs") or klass.Params.model_fields["epochs"].default
    return max(1, math.ceil(int(longest) / (REPORTS_PER_TRIAL + 1)))


def _open_study(storage: optuna.storages.BaseStorage | None, name: str, direction: str,
                pruner: optuna.pruners.BasePruner, attrs: dict[str, Any]) -> optuna.Study:
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True,
                                pruner=pruner)
    existing = study.user_attrs
    if not existing and not study.trials:
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        return study
    for key in ("recipe", "metric", "fixed_params"):
        if existing.get(key) != attrs[key]:
            were = existing.get(key, "(not set: it was not made by recsmith tune)")
            raise ConfigError(f"study {name!r} was run with {key} {were!r}, not {attrs[key]!r}; its trials could "
                              "not be compared with these. Use the same settings to resume it, or another study name")
    if existing.get("data") != attrs["data"]:
        logger.warning("study %r was run on other data (%s, now %s); its earlier trials may not be comparable",
                       name, existing.get("data"), attrs["data"])
    return study


def tune_recipe(
    recipe: str,
    interactions: Interactions,
    *,
    metric: str = "ndcg@10",
    trials: int = 50,
    timeout: float | None = None,
    seed: int = 0,
    storage_url: str | None = None,
    study_name: str | None = None,
    validation_fraction: float = 0.2,
    fixed_params: Mapping[str, Any] | None = None,
    callback: Callable[[TrialReport], None] | None = None,
    space: Mapping[str, SearchDimension] | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    report_every: int | None = None,
    fit_options: FitOptions | None = None,
) -> TuneResult:
    """Search a recipe's hyperparameters with Optuna's TPE sampler, on a validation slice of ``interactions``.

    Parameters
    ----------
    recipe : str
        A recipe that declares a search space (see :func:`~recsmith.tuning.space.tunable_recipes`).
    interactions : Interactions
        Training data only: a validation slice is carved out of it, the rest trains each trial.
    metric : str
        ``NAME@K`` of a ranking metric (maximised), or ``rmse``/``mae`` for a rating recipe (minimised).
    trials : int
        Trials to run now (added to any the study already has).
    timeout : float, optional
        Stop starting trials after this many seconds.
    seed : int
        Seed of the validation split and of the sampler (a resumed study reseeds by its trial count, so
        it does not draw the same points again).
    storage_url : str, optional
        SQLAlchemy URL of the database keeping the study (normally ``Settings().resolved_database_url()``);
        default: in memory, gone when the process ends.
    study_name : str, optional
        Default ``"{recipe}:{metric}"``; an existing study of that name is resumed.
    validation_fraction : float
        Share of each user's interactions held out for validation.
    fixed_params : dict, optional
        Params held at these values instead of being searched.
    callback : callable, optional
        Called with a :class:`TrialReport` after each trial (for progress displays).
    space : dict, optional
        Dimensions to search instead of the recipe's declared ``Params.search_space``.
    pruner : optuna.pruners.BasePruner, optional
        Default ``MedianPruner(n_startup_trials=5)``; used by iterative recipes only.
    report_every : int, optional
        Epochs between intermediate reports of iterative recipes (default: about five per trial).
    fit_options : FitOptions, optional
        How each trial fits (the device, threads); its ``epoch_callback`` is replaced by the pruning reports.

    Returns
    -------
    TuneResult
        The study's best params and value, and counts. On Ctrl-C the run stops, the finished trials stay
        in the study, and the result (``interrupted=True``) holds the best so far.

    Raises
    ------
    ConfigError
        On an unknown recipe or metric, a recipe without search space, ``trials`` <= 0, bad fixed params,
        a resumed study run with another recipe, metric or fixed params, or when no trial completes.
    DataError
        If the data is too small to carve a validation slice out of.
    """
    import optuna

    from recsmith.tuning.storage import study_storage

    fixed = dict(fixed_params or {})
    direction, dims = check_settings(recipe, metric=metric, trials=trials, timeout=timeout,
                                     validation_fraction=validation_fraction, fixed_params=fixed, space=space)
    if not isinstance(interactions, Interactions):
        raise DataError(f"tune_recipe needs an Interactions object, got {type(interactions).__name__}")
    klass = recipe_class(recipe)
    every = _report_every(klass, dims, fixed, report_every)
    train, valid, protocol = holdout_split(interactions, sequential=klass.tags.sequential,
                                           fraction=validation_fraction, seed=seed)
    validation = _Validation(valid, metric, seed)
    name = study_name or f"{recipe}:{metric}"
    attrs = {"recipe": recipe, "metric": metric, "fixed_params": fixed, "validation_fraction": validation_fraction,
             "validation_protocol": protocol,
             "seed": seed, "recsmith_version": __version__,
             "data": {"users": interactions.n_users, "items": interactions.n_items, "interactions": interactions.nnz}}
    storage = study_storage(storage_url) if storage_url else None
    try:
        return _run(klass, study_name=name, storage=storage, storage_url=storage_url, direction=direction,
                    pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=5), attrs=attrs, dims=dims,
                    fixed=fixed, every=every, train=train, validation=validation, trials=int(trials),
                    timeout=timeout, seed=seed, callback=callback, fit_options=fit_options or FitOptions())
    finally:
        if storage is not None:
            storage.remove_session()
            storage.engine.dispose()


def _run(klass: type[Recipe], *, study_name: str, storage: optuna.storages.RDBStorage | None,
         storage_url: str | None, direction: str, pruner: optuna.pruners.BasePruner, attrs: dict[str, Any],
         dims: dict[str, SearchDimension], fixed: dict[str, Any], every: int | None, train: Interactions,
         validation: _Validation, trials: int, timeout: float | None, seed: int,
         callback: Callable[[TrialReport], None] | None, fit_options: FitOptions) -> TuneResult:
    import optuna

    name, metric = study_name, validation.metric
    study = _open_study(storage, name, direction, pruner, attrs)
    earlier = len(study.trials)
    study.sampler = optuna.samplers.TPESampler(seed=seed + earlier)
    if not earlier:
        defaults = klass.Params().model_dump()
        start = {key: defaults[key] for key, dim in dims.items() if contains(dim, defaults[key])}
        if start:
            study.enqueue_trial(start, user_attrs={DEFAULTS_ATTR: True})

    def objective(trial: optuna.Trial) -> float:
        params = fixed | {key: suggest(trial, key, dim) for key, dim in dims.items()}
        model = klass(params)
        options = fit_options
        if every is not None:
            def report(epoch: int, fitted: Recipe) -> None:
                if epoch % every or epoch >= fitted.params.epochs:  # type: ignore[attr-defined]
                    return  # the last epoch's value is the trial's own
                trial.report(validation(fitted, partial=True), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"validation {metric} below the median at epoch {epoch}")

            options = dataclasses.replace(options, epoch_callback=report)
        started = time.perf_counter()
        try:
            model.fit(train, options)
        except (ConfigError, np.linalg.LinAlgError) as exc:  # a numerically bad region: this trial fails, not the run
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        trial.set_user_attr("fit_seconds", round(time.perf_counter() - started, 4))
        return validation(model)

    started = time.perf_counter()
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
        if callback is None:
            return
        best = _best(study)
        callback(TrialReport(
            number=trial.number, state=trial.state.name, value=trial.value, params=dict(trial.params),
            best_value=None if best is None else best.value, best_params=None if best is None else dict(best.params),
            done=sum(counts.values()), trials=trials, completed=counts["COMPLETE"], pruned=counts["PRUNED"],
            failed=counts["FAIL"], elapsed=time.perf_counter() - started, timeout=timeout))

    interrupted = False
    try:
        study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=[after_trial],
                       catch=(ConfigError, np.linalg.LinAlgError))
    except KeyboardInterrupt:
        interrupted = True
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}  # again from the study: the trial Ctrl-C stopped is a FAIL
    for trial in study.trials[earlier:]:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    best = _best(study)
    if best is None:
        if interrupted:
            raise KeyboardInterrupt
        errors = [t.user_attrs["error"] for t in study.trials if "error" in t.user_attrs]
        raise ConfigError(f"no trial of study {name!r} completed ({counts['PRUNED']} pruned, {counts['FAIL']} failed"
                          + (f"; last error: {errors[-1]}" if errors else "") + "); narrow the search space or fix "
                          "params with fixed_params / --param")
    default_value = next((t.value for t in study.trials
                          if t.user_attrs.get(DEFAULTS_ATTR) and t.state.name == "COMPLETE"), None)
    return TuneResult(
        recipe=klass.name, metric=metric, direction=direction, study_name=name, best_value=float(best.value),
        best_params=klass(fixed | best.params).get_params(), tuned_params=dict(best.params), fixed_params=fixed,
        default_value=default_value, search_space=space_json(dims), trials_run=sum(counts.values()),
        completed=counts["COMPLETE"], pruned=counts["PRUNED"], failed=counts["FAIL"],
        total_trials=len(study.trials), seconds=round(time.perf_counter() - started, 3), interrupted=interrupted,
        storage=_where(storage_url), study=study)


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def _where(storage_url: str | None) -> str:
    if not storage_url:
        return "memory"
    from recsmith.data.readers import mask_url

    return mask_url(storage_url)
