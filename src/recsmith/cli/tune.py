"""``recsmith tune``: search a recipe's hyperparameters with Optuna, save the best as a solution config.

Put on the app by :mod:`recsmith.cli.main`; imports nothing heavy until it runs.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from recsmith.tuning import TrialReport, TuneResult

HOLDOUT_FRACTION, HOLDOUT_SEED = 0.2, 42
"""The slice ``recsmith train`` measures a solution version's offline metrics on (``train_solution_version``'s
defaults): ``tune`` leaves it out, so those metrics stay honest for the tuned params."""


def tune(
    group: Annotated[str, typer.Option("--dataset-group", "-g", help="Dataset group name.")],
    recipe: Annotated[str, typer.Option(
        help="Recipe to tune: als, bpr, ease, item-knn, user-knn, rp3beta, svd or svdpp.")],
    trials: Annotated[int, typer.Option(help="Trials to run now (added to the study's earlier ones).")] = 50,
    metric: Annotated[str, typer.Option(
        help="Validation metric: ndcg@10, recall@20 (hits / held-out items), map@10, hit_rate@10, ... "
             "(maximised); rmse or mae for svd/svdpp (minimised).")] = "ndcg@10",
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after this many seconds.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the validation split and of the sampler.")] = 0,
    study: Annotated[str | None, typer.Option(
        "--study", help="Study name (default GROUP:RECIPE:METRIC); an existing study is resumed.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Hold a param fixed instead of tuning it: NAME=VALUE.")] = None,
    validation_fraction: Annotated[float, typer.Option(
        help="Share of each user's interactions held out to validate the trials on.")] = 0.2,
    solution: Annotated[str | None, typer.Option(
        help="Solution to save the best params in (default: the recipe's name, as `recsmith train`).")] = None,
    event_weights: Annotated[str | None, typer.Option(help="Event-type weights: purchase=5,view=1.")] = None,
    half_life_days: Annotated[float | None, typer.Option(help="Time decay half-life in days.")] = None,
    storage: Annotated[str | None, typer.Option(
        help="Database URL keeping the studies (default: the store's, RECSMITH_DATABASE_URL).")] = None,
    train: Annotated[bool, typer.Option("--train", help="Then train a solution version with the best params.")]
    = False,
    device: Annotated[str, typer.Option(
        "--device", help="Where trials (and --train) fit: cpu, cuda or auto, as for `recsmith train`.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Tune a recipe's hyperparameters with Optuna (TPE, median pruning) and save the best as a solution.

    Trials are measured on a validation slice of the group's interactions, leaving out the slice `recsmith
    train` measures offline metrics on. The study is kept in the store's database: run the same command
    again to add trials, or watch it with optuna-dashboard. Ctrl-C stops after keeping the finished trials.
    """
    import optuna

    from recsmith.cli.app import check_device, err, open_store, parse_params, solution_config, stage_progress
    from recsmith.evaluation.metrics import canonical_metric
    from recsmith.jobs.training import train_solution_version, tuning_interactions
    from recsmith.recipes.options import FitOptions
    from recsmith.recipes.registry import canonical_name
    from recsmith.settings import Settings
    from recsmith.tuning import check_settings, study_name, tune_recipe

    recipe, metric = canonical_name(recipe), canonical_metric(metric)  # item_knn, hit-rate@10 work too
    fixed = parse_params(param)
    check_settings(recipe, metric=metric, trials=trials, timeout=timeout, validation_fraction=validation_fraction,
                   fixed_params=fixed)  # bad settings: said before any data is read
    iterative = check_device(recipe, device)
    config = solution_config(event_weights, half_life_days)
    settings = Settings()
    store = open_store(settings)
    dataset_group = store.get_dataset_group(group)
    name = study or study_name(group, recipe, metric)
    with stage_progress(f"read {group}", {"read": "reading interactions"}, enabled=not as_json) as progress:
        progress("read")
        tune_part, holdout = tuning_interactions(store, group, recipe, config, test_fraction=HOLDOUT_FRACTION,
                                                 seed=HOLDOUT_SEED)  # less the slice `recsmith train` measures
        progress("done")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the progress bar tells the trials; no per-trial lines
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()  # what optuna still says goes through recsmith's logging setup
    with _TrialProgress(err, recipe, metric, trials, enabled=not as_json) as on_trial:
        result = tune_recipe(
            recipe, tune_part, metric=metric, trials=trials, timeout=timeout, seed=seed,
            storage_url=storage or settings.resolved_database_url(), study_name=name,
            validation_fraction=validation_fraction, fixed_params=fixed, callback=on_trial,
            fit_options=FitOptions(device=device))  # type: ignore[arg-type]
    saved = store.get_or_create_solution(dataset_group.id, solution or recipe, recipe, result.best_params,
                                         config.model_dump())
    command = train_command(group, result, solution, event_weights, half_life_days)
    version = None
    if train and not result.interrupted:
        stages = {"read": "reading interactions", "metrics": "offline metrics", "fit": "fitting", "save": "saving"}
        with stage_progress(f"train {recipe}", stages, enabled=not as_json) as progress:
            version = train_solution_version(store, settings, group, recipe, result.best_params, config=config,
                                             solution_name=solution, progress=progress,
                                             fit_options=progress.fit_options(device, epochs=iterative))
    report(result, saved, command, version, as_json, holdout.split()[0])
    if result.interrupted:
        err.print(f"[yellow]interrupted after {result.trials_run} trials; the finished ones are kept in study "
                  f"{result.study_name!r}: run the same command to go on[/]")
        raise typer.Exit(130)


def train_command(group: str, result: TuneResult, solution: str | None, event_weights: str | None,
                  half_life_days: float | None) -> str:
    """The ``recsmith train`` command line that trains the tuned params (only those off their defaults)."""
    from recsmith.recipes import recipe_class

    defaults = recipe_class(result.recipe).Params().model_dump()
    words = ["recsmith", "train", "--dataset-group", group, "--recipe", result.recipe]
    if solution:
        words += ["--solution", solution]
    for key, value in result.best_params.items():
        if value != defaults.get(key):
            words += ["--param", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    if event_weights:
        words += ["--event-weights", event_weights]
    if half_life_days is not None:
        words += ["--half-life-days", str(half_life_days)]
    return shlex.join(words)


def report(result: TuneResult, saved: dict[str, Any], command: str, version: dict[str, Any] | None,
           as_json: bool, holdout: str = "random") -> None:
    """Print the outcome: JSON, or a table of the best params and what to run next."""
    from rich.markup import escape
    from rich.table import Table

    from recsmith.cli.app import out, print_json

    if as_json:
        print_json(result.to_json() | {
            "holdout": {"protocol": holdout, "test_fraction": HOLDOUT_FRACTION, "seed": HOLDOUT_SEED,
                        "note": "left out of tuning: recsmith train measures offline metrics on it"},
            "solution": {"id": saved["id"], "name": saved["name"], "recipe": saved["recipe"],
                         "params": saved["params"], "config": saved["config"]},
            "train_command": command, "solution_version": version})
        return
    table = Table("param", "best", "searched", title=f"{result.recipe}: best {result.metric} {result.best_value:.4f}",
                  caption=None if result.default_value is None else f"defaults: {result.default_value:.4f}")
    for key, value in result.best_params.items():
        searched = result.search_space.get(key)
        where = ("fixed" if key in result.fixed_params else "" if searched is None else
                 ", ".join(map(str, searched["choices"])) if searched["kind"] == "categorical" else
                 f"{searched['low']:g} .. {searched['high']:g}{' (log)' if searched.get('log') else ''}")
        table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value), where)
    out.print(table)
    out.print(f"study {escape(result.study_name)!r}: {result.trials_run} trials in {result.seconds:.1f} s "
              f"({result.completed} complete, {result.pruned} pruned, {result.failed} failed), "
              f"{result.total_trials} in all")
    out.print(f"saved as solution {escape(saved['name'])!r} (id {saved['id']})")
    if version is not None:
        metrics = ", ".join(f"{key} {value:.4f}" for key, value in (version.get("metrics") or {}).items()
                            if isinstance(value, float))
        out.print(f"trained solution version [bold]{version['id']}[/] {version['status']}: {metrics}")
        out.print(f"next: recsmith recommend --solution-version {version['id']} --user USER_ID")
    else:
        out.print(f"next: [cyan]{escape(command)}[/]", soft_wrap=True)


class _TrialProgress:
    """A rich progress bar over the trials: done, best so far, pruned/failed, time elapsed and left."""

    def __init__(self, console: Any, recipe: str, metric: str, trials: int, *, enabled: bool) -> None:
        self.console, self.recipe, self.metric, self.trials, self.enabled = console, recipe, metric, trials, enabled
        self.progress: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[best]}"), TimeElapsedColumn(), TextColumn("{task.fields[left]}"),
            console=self.console)
        self.progress.__enter__()
        self.task = self.progress.add_task(f"tune {self.recipe}", total=self.trials, best="", left="")
        return self.update

    def update(self, trial: TrialReport) -> None:
        best = "no trial complete yet" if trial.best_value is None else f"best {self.metric} {trial.best_value:.4f}"
        if trial.pruned or trial.failed:
            best += f" ({trial.pruned} pruned, {trial.failed} failed)"
        left = trial.time_left
        self.progress.update(self.task, completed=trial.done, best=best,
                             left="" if left is None else f"~{_duration(left)} left")

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
