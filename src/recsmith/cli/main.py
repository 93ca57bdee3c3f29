"""The ``recsmith`` command line."""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from recsmith.errors import ConfigError, RecsmithError
from recsmith.settings import Settings

if TYPE_CHECKING:  # imported lazily at run time, so `recsmith --help` stays fast
    from recsmith.evaluation.experiment import Experiment
    from recsmith.jobs.config import SolutionConfig
    from recsmith.jobs.evaluation import ExperimentRun
    from recsmith.store.artifacts import TrainedModel
    from recsmith.store.store import Store

app = typer.Typer(
    name="recsmith",
    help="recsmith: a self-hosted recommendation engine. Start with `recsmith quickstart`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
import_app = typer.Typer(help="Import interactions, users or items into a dataset group.", no_args_is_help=True)
datasets_app = typer.Typer(help="Built-in datasets (MovieLens).", no_args_is_help=True)
versions_app = typer.Typer(help="Trained solution versions.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(datasets_app, name="datasets")
app.add_typer(versions_app, name="solution-versions")

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

GroupOption = Annotated[str, typer.Option("--dataset-group", "-g", help="Dataset group name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def handle_errors(func: F) -> F:
    """Turn recsmith's errors into a one-line message on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RecsmithError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted; nothing half-written was kept[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def open_store(settings: Settings | None = None) -> Store:
    """The store named by the settings, migrated to the current schema."""
    from recsmith.store.store import Store

    settings = settings or Settings()
    store = Store.from_settings(settings)
    store.migrate()
    return store


@contextmanager
def stage_progress(title: str, stages: dict[str, str], *, enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A rich progress bar advanced by a stage callback; ``stages`` maps stage names to labels."""
    if not enabled:
        yield lambda stage: None
        return
    order = list(stages)
    with Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(), console=err, transient=False,
    ) as progress:
        task = progress.add_task(title, total=len(order), stage="")

        def advance(stage: str) -> None:
            if stage in stages:
                progress.update(task, completed=order.index(stage), stage=stages[stage])
            if stage == "done":
                progress.update(task, completed=len(order), stage="done")

        yield advance


def parse_pairs(text: str | None, option: str) -> dict[str, str]:
    """Parse ``a=b,c=d`` into a dict (ConfigError naming the bad part)."""
    pairs: dict[str, str] = {}
    if not text:
        return pairs
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{option}: {part!r} is not of the form NAME=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


def parse_value(text: str) -> Any:
    """A CLI param value: JSON when it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_params(values: list[str] | None) -> dict[str, Any]:
    """``--param name=value`` options into a params dict."""
    params: dict[str, Any] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        is_json = bool(sep) and value.lstrip().startswith(("{", "["))  # a JSON object or list may hold commas
        pairs = {key.strip(): value} if is_json else parse_pairs(item, "--param")
        for name, text in pairs.items():
            params[name] = parse_value(text)
    return params


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------------------------- import
def _run_import(
    dataset_type: str, path: str | None, group: str, schema: Path | None, mode: str, column_map: str | None,
    sep: str | None, fmt: str | None, no_header: bool, names: str | None, sql: str | None, db_url: str | None,
    on_error: str, reject_file: Path | None, as_json: bool,
) -> None:
    from recsmith.jobs.importing import import_dataset

    settings = Settings()
    store = open_store(settings)
    if reject_file is None and on_error == "skip":
        reject_file = settings.home / "rejects" / f"{group}-{dataset_type}-{int(time.time())}.csv"
    stages = {"read": "reading and validating", "write": "writing to the store"}
    with stage_progress(f"import {dataset_type}", stages) as progress:
        report = import_dataset(
            store, group, dataset_type, path, sql=sql, db_url=db_url, schema=schema,
            column_map=parse_pairs(column_map, "--map") or None, sep=sep, fmt=fmt, header=not no_header,
            names=[n.strip() for n in names.split(",")] if names else None, mode=mode,  # type: ignore[arg-type]
            on_error=on_error, reject_path=reject_file, progress=progress,  # type: ignore[arg-type]
        )
    if as_json:
        print_json(report.to_dict())
        return
    table = Table(title=f"import job {report.job_id}: {report.status}", show_header=False)
    for key in ("dataset_group", "dataset_type", "source", "mode", "rows_read", "rows_loaded", "rows_rejected",
                "duration_seconds", "rows_per_second", "reject_file"):
        value = getattr(report, key)
        if value is not None:
            table.add_row(key.replace("_", " "), str(value))
    out.print(table)


def _import_command(dataset_type: str) -> Callable[..., None]:
    @handle_errors
    def command(
        path: Annotated[str | None, typer.Argument(help="File path or fsspec URL (CSV, TSV, ::, Parquet, JSONL).")]
        = None,
        group: GroupOption = ...,  # type: ignore[assignment]
        schema: Annotated[Path | None, typer.Option(help="Personalize Avro schema JSON file.")] = None,
        mode: Annotated[str, typer.Option(help="full (replace) or incremental (append/upsert).")] = "full",
        column_map: Annotated[str | None, typer.Option(
            "--map", help="Rename columns: userId=USER_ID,movieId=ITEM_ID; col=- drops a column.")] = None,
        sep: Annotated[str | None, typer.Option(help="Field separator, e.g. ',' '\\t' '::'.")] = None,
        fmt: Annotated[str | None, typer.Option("--format", help="csv, tsv, parquet or jsonl.")] = None,
        no_header: Annotated[bool, typer.Option("--no-header", help="The file has no header line.")] = False,
        names: Annotated[str | None, typer.Option(help="Column names for a file without header.")] = None,
        sql: Annotated[str | None, typer.Option(help="Import the result of this SELECT instead of a file.")] = None,
        db_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the database --sql runs on.")] = None,
        on_error: Annotated[str, typer.Option(help="fail (load nothing) or skip (load good rows).")] = "fail",
        reject_file: Annotated[Path | None, typer.Option(help="Where skipped rows are written.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        _run_import(dataset_type, path, group, schema, mode, column_map, sep, fmt, no_header, names, sql, db_url,
                    on_error, reject_file, as_json)

    command.__doc__ = f"Import {dataset_type} from a file, URL or SQL query (all-or-nothing)."
    return command


for _dataset_type in ("interactions", "users", "items"):
    import_app.command(_dataset_type)(_import_command(_dataset_type))


# ------------------------------------------------------------------------------------------- datasets
@datasets_app.command("list")
@handle_errors
def datasets_list(as_json: JsonOption = False) -> None:
    """List the built-in datasets."""
    from recsmith.datasets import list_datasets

    rows = [{"name": d.name, "bundled": d.bundled, "description": d.description} for d in list_datasets()]
    if as_json:
        print_json(rows)
        return
    table = Table("name", "bundled", "description")
    for row in rows:
        table.add_row(row["name"], "yes" if row["bundled"] else "no", row["description"])
    out.print(table)


@datasets_app.command("load")
@handle_errors
def datasets_load(
    name: Annotated[str, typer.Argument(help="ml-latest-small, ml-100k or ml-1m.")],
    group: GroupOption,
    path: Annotated[Path | None, typer.Option(help="Folder holding the dataset's files.")] = None,
    download: Annotated[bool, typer.Option("--download", help="Download from GroupLens if needed.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Import a built-in dataset (interactions and items) into a dataset group."""
    from recsmith.datasets import load_dataset

    store = open_store()
    with stage_progress(f"load {name}", {"read": "reading", "write": "writing"}) as progress:
        reports = load_dataset(store, name, group, path=path, allow_download=download, progress=progress)
    if as_json:
        print_json([r.to_dict() for r in reports])
        return
    for report in reports:
        out.print(f"{report.dataset_type}: {report.rows_loaded:,} rows loaded into {group!r} "
                  f"in {report.duration_seconds:.2f} s (import job {report.job_id})")


@datasets_app.command("synthetic")
@handle_errors
def datasets_synthetic(
    group: Annotated[str | None, typer.Option("--dataset-group", "-g", help="Import into this group.")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Also write the log to this .csv or .parquet file.")]
    = None,
    users: Annotated[int, typer.Option(help="Number of users.")] = 100_000,
    items: Annotated[int, typer.Option(help="Number of items.")] = 20_000,
    interactions: Annotated[int, typer.Option(help="Number of events.")] = 5_000_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Generate a reproducible power-law interactions log (view/purchase events) for scale tests."""
    import tempfile

    from recsmith.datasets.synthetic import synthetic_frame
    from recsmith.jobs.importing import import_dataset

    if group is None and output is None:
        raise ConfigError("say where the data goes: --dataset-group G and/or --out FILE.parquet")
    if output is not None and output.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out {output}: use a .csv or .parquet file name")
    with stage_progress("synthetic", {"read": "generating", "write": "writing"}) as progress:
        progress("read")
        frame = synthetic_frame(users, items, interactions, seed=seed)
        result: dict[str, Any] = {"rows": len(frame), "users": users, "items": items, "seed": seed}
        if output is not None:
            progress("write")
            output.parent.mkdir(parents=True, exist_ok=True)
            partial = output.with_name(f".{output.name}.partial")  # written whole, then renamed
            if output.suffix == ".parquet":
                frame.to_parquet(partial, index=False)
            else:
                frame.to_csv(partial, index=False)
            partial.replace(output)
            result["file"] = str(output)
        if group is not None:
            with tempfile.TemporaryDirectory(prefix="recsmith-synthetic-") as tmp:
                source = Path(tmp) / "synthetic.parquet"
                frame.to_parquet(source, index=False)
                report = import_dataset(open_store(), group, "interactions", str(source), mode="full",
                                        progress=progress)
            result["import"] = report.to_dict()
        progress("done")
    if as_json:
        print_json(result)
        return
    where = " and ".join(x for x in (result.get("file"), f"dataset group {group!r}" if group else None) if x)
    out.print(f"{len(frame):,} synthetic interactions ({users:,} users × {items:,} items, seed {seed}) -> {where}")


# ----------------------------------------------------------------------------------------- describe
@app.command()
@handle_errors
def describe(group: GroupOption, as_json: JsonOption = False) -> None:
    """Counts of users, items and interactions, event types, time range and sparsity."""
    store = open_store()
    stats = store.describe(store.get_dataset_group(group).id)
    if as_json:
        print_json(stats)
        return
    table = Table(title=f"dataset group {group}", show_header=False)
    for key, value in stats.items():
        if key == "event_types":
            value = ", ".join(f"{k or '(none)'}: {v:,}" for k, v in value.items()) or "(none)"
        elif key.endswith("timestamp") and value is not None:
            value = f"{value} ({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(value))} UTC)"
        elif key == "sparsity" and value is not None:
            value = f"{value:.4%}"
        elif isinstance(value, int):
            value = f"{value:,}"
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)


# -------------------------------------------------------------------------------------------- train
def _solution_config(event_weights: str | None, half_life_days: float | None) -> SolutionConfig:
    from recsmith.jobs.config import SolutionConfig

    weights = {key: float(parse_value(value)) for key, value in parse_pairs(event_weights, "--event-weights").items()}
    try:
        return SolutionConfig(event_weights=weights, half_life_days=half_life_days)
    except ValueError as exc:
        raise ConfigError(f"invalid solution config: {exc}") from exc


@app.command()
@handle_errors
def train(
    group: GroupOption,
    recipe: Annotated[str, typer.Option(help="Recipe name, e.g. item-knn or popularity.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Hyperparameter NAME=VALUE.")] = None,
    solution: Annotated[str | None, typer.Option(help="Solution name (default: the recipe).")] = None,
    event_weights: Annotated[str | None, typer.Option(help="Event-type weights: purchase=5,view=1.")] = None,
    half_life_days: Annotated[float | None, typer.Option(help="Time decay half-life in days.")] = None,
    no_metrics: Annotated[bool, typer.Option("--no-metrics", help="Skip the offline metrics.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Train a solution version; prints its id, timings and offline metrics."""
    from recsmith.jobs.training import train_solution_version

    settings = Settings()
    store = open_store(settings)
    config = _solution_config(event_weights, half_life_days)
    stages = {"read": "reading interactions", "metrics": "offline metrics", "fit": "fitting", "save": "saving"}
    with stage_progress(f"train {recipe}", stages) as progress:
        version = train_solution_version(
            store, settings, group, recipe, parse_params(param), config=config, solution_name=solution,
            with_metrics=not no_metrics, progress=progress,
        )
    if as_json:
        print_json(version)
        return
    out.print(f"solution version [bold]{version['id']}[/] ({recipe}) {version['status']}: "
              f"fit {version['fit_seconds']:.2f} s, total {version['total_seconds']:.2f} s")
    for key, value in (version.get("metrics") or {}).items():
        out.print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    out.print(f"next: recsmith recommend --solution-version {version['id']} --user USER_ID")


# ----------------------------------------------------------------------------------------- evaluate
def run_evaluation(store: Any, group: str, experiment: Experiment, *, show_progress: bool = True,
                   depth: int | None = None) -> ExperimentRun:
    """Fit and measure each of the experiment's recipes on one split of the group's data."""
    from recsmith.jobs.evaluation import run_experiment
    from recsmith.jobs.training import load_interactions

    labels = [entry.label for entry in experiment.recipes]
    stages = {"read": "reading interactions"} | {f"fit:{label}": label for label in labels}
    with stage_progress("evaluate", stages, enabled=show_progress) as progress:
        progress("read")
        interactions = load_interactions(store, group)
        run = run_experiment(interactions, experiment, progress=lambda label, stage: progress(f"fit:{label}"),
                             depth=depth)
        progress("done")
    return run


def build_experiment(experiment_file: Path | None, recipes: str | None, param: list[str] | None,
                     overrides: dict[str, Any], split_options: dict[str, Any]) -> Experiment:
    """The experiment from a TOML file and/or the command line (options given on the command line win)."""
    from recsmith.evaluation.experiment import Experiment, read_toml

    data: dict[str, Any] = {}
    source = "the command line"
    if experiment_file is not None:
        if recipes is not None or param:
            raise ConfigError("give the recipes either in --experiment or with --recipes/--param, not both")
        data = read_toml(experiment_file)
        source = str(experiment_file)
    else:
        names = [name.strip() for name in (recipes or "popularity,item-knn").split(",") if name.strip()]
        params: dict[str, dict[str, Any]] = {}
        for key, value in parse_params(param).items():
            recipe_name, dot, param_name = key.rpartition(".")
            if not dot:
                raise ConfigError(f"--param {key}=...: write RECIPE.NAME=VALUE, e.g. item-knn.neighbors=50")
            params.setdefault(recipe_name, {})[param_name] = value
        unknown = set(params) - set(names)
        if unknown:
            raise ConfigError(f"--param names recipe(s) {sorted(unknown)} that are not in --recipes {names}")
        data["recipes"] = [{"recipe": name, "params": params.get(name, {})} for name in names]
    data.update({key: value for key, value in overrides.items() if value is not None})
    if split_options:
        data["split"] = dict(data.get("split", {})) | split_options
    return Experiment.parse(data, source=source)


@app.command()
@handle_errors
def evaluate(
    group: GroupOption,
    recipes: Annotated[str | None, typer.Option(
        help="Comma-separated recipe names (default: popularity,item-knn).")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="RECIPE.NAME=VALUE, e.g. item-knn.neighbors=50.")] = None,
    experiment_file: Annotated[Path | None, typer.Option(
        "--experiment", help="TOML experiment file: recipes with params, protocol, metrics.")] = None,
    protocol: Annotated[str | None, typer.Option(help="random | leave_last | temporal | users.")] = None,
    test_fraction: Annotated[float | None, typer.Option(help="random: share of each user's pairs held out.")] = None,
    n: Annotated[int | None, typer.Option("--n", help="leave_last: pairs held out per user.")] = None,
    at: Annotated[str | None, typer.Option(help="temporal: the cut, an ISO date or epoch seconds.")] = None,
    fraction: Annotated[float | None, typer.Option(help="temporal: share of the latest pairs held out.")] = None,
    test_users: Annotated[str | None, typer.Option(help="users: share (0.2) or number (500) held out.")] = None,
    input_fraction: Annotated[float | None, typer.Option(help="users: share of a user's pairs given as input.")
                              ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split (random, users).")] = None,
    k: Annotated[int | None, typer.Option("--k", help="Cut-off of the metrics (default 10).")] = None,
    metrics: Annotated[str | None, typer.Option(help="Comma-separated, e.g. ndcg@10,recall@20,map.")] = None,
    confidence: Annotated[float | None, typer.Option(help="Level of the bootstrap intervals (0.95).")] = None,
    sampled_negatives: Annotated[int | None, typer.Option(
        help="Also rank each held-out item among N sampled negatives (to reproduce papers; labelled).")] = None,
    sampling: Annotated[str | None, typer.Option(help="Sampled negatives: uniform or popularity.")] = None,
    report: Annotated[Path | None, typer.Option(
        help="Also write a self-contained HTML report (leaderboard and plots) to this file.")] = None,
    folds: Annotated[int | None, typer.Option(
        help="Cross-validate rating recipes (svd, svdpp) on N folds, as Surprise's KFold: RMSE and MAE.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare recipes on one split: metrics with bootstrap confidence intervals, paired tests, fit time.

    With --folds N, rating recipes are cross-validated instead (RMSE, MAE), on the folds Surprise's
    KFold(N, random_state=SEED, shuffle=True) draws over the ratings in import order.
    """
    if folds is not None:
        cross_validate_command(group, recipes, param, experiment_file, folds, seed, as_json,
                               protocol_options=[protocol, test_fraction, n, at, fraction, test_users,
                                                 input_fraction, k, metrics, confidence, sampled_negatives, sampling,
                                                 report])
        return
    split_options = {"test_fraction": test_fraction, "n": n, "fraction": fraction, "input_fraction": input_fraction,
                     "seed": seed, "at": int(at) if at is not None and at.isdigit() else at,
                     "test_users": parse_value(test_users) if test_users is not None else None}
    overrides = {"protocol": protocol, "k": k, "confidence": confidence, "sampled_negatives": sampled_negatives,
                 "sampling": sampling,
                 "metrics": [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None}
    experiment = build_experiment(experiment_file, recipes, param, overrides,
                                  {key: value for key, value in split_options.items() if value is not None})
    if report is not None and report.parent and not report.parent.is_dir():
        raise ConfigError(f"--report {report}: the folder {report.parent} does not exist")
    from recsmith.jobs.evaluation import REPORT_DEPTH, write_experiment_report

    run = run_evaluation(open_store(), group, experiment, show_progress=not as_json,
                         depth=REPORT_DEPTH if report is not None else None)
    if report is not None:
        write_experiment_report(run, report, title=f"recsmith evaluation: {group}",
                                context={"dataset group": group, "recipes": len(run.rows)})
    if as_json:
        print_json(run.to_json() | ({"report": str(report)} if report is not None else {}))
        return
    print_leaderboard(run)
    if report is not None:
        out.print(f"report: {report}")


def cross_validate_command(group: str, recipes: str | None, param: list[str] | None, experiment_file: Path | None,
                           folds: int, seed: int | None, as_json: bool, protocol_options: list[Any]) -> None:
    """``recsmith evaluate --folds N``: k-fold cross-validation of rating recipes, RMSE and MAE per recipe."""
    from recsmith.jobs.evaluation import run_cross_validation

    if any(option is not None for option in protocol_options):
        raise ConfigError("--folds runs Surprise's k-fold protocol on ratings; drop the ranking options "
                          "(--protocol, --test-fraction, --n, --at, --fraction, --test-users, --input-fraction, "
                          "--k, --metrics, --confidence, --sampled-negatives, --sampling, --report)")
    experiment = build_experiment(experiment_file, recipes or "svd", param, {}, {})
    store = open_store()
    labels = [entry.label for entry in experiment.recipes]
    stages = {"read": "reading ratings"} | {f"{label}:{fold}": f"{label} fold {fold}" for label in labels
                                            for fold in range(1, folds + 1)}
    with stage_progress("cross-validate", stages, enabled=not as_json) as progress:
        progress("read")
        columns = store.read_interactions(store.get_dataset_group(group).id)
        rows = run_cross_validation(columns, experiment, folds=folds, seed=seed or 0,
                                    progress=lambda label, fold: progress(f"{label}:{fold}"))
        progress("done")
    if as_json:
        print_json({"protocol": f"kfold n_splits={folds} seed={seed or 0} (Surprise's KFold)", "results": rows})
        return
    table = Table("recipe", "RMSE", "MAE", "fit s / fold",
                  title=f"{folds}-fold cross-validation of ratings (Surprise's KFold, random_state={seed or 0})")
    for row in rows:
        table.add_row(row["recipe"], f"{row['rmse']:.4f} ± {row['rmse_std']:.4f}",
                      f"{row['mae']:.4f} ± {row['mae_std']:.4f}", f"{row['fit_seconds']:.2f}")
    out.print(table)


def print_leaderboard(run: ExperimentRun) -> None:
    """The evaluation table: each metric's mean and confidence interval, fit time, the test against the leader."""
    names = run.experiment.metric_names()
    split = run.split.describe()
    level = f"{run.experiment.confidence:.0%}"
    table = Table("recipe", *names, "fit s", f"vs best ({run.primary})",
                  title=f"offline evaluation, {split['protocol']} split, full-catalog ranking "
                        f"({split['evaluated_users']:,} users; {level} bootstrap intervals)")
    sampled = [key for key in run.rows[0] if key.startswith("sampled_") and key not in ("sampled_protocol",
                                                                                         "sampled_cases")]
    for key in sampled:
        table.add_column(key)
    for row in run.rows:
        cells = []
        for name in names:
            interval = row["ci"].get(name)
            cells.append(f"{row[name]:.4f}" if interval is None else
                         f"{row[name]:.4f} [{interval['ci_low']:.4f}, {interval['ci_high']:.4f}]")
        test = row.get("vs_best")
        versus = "best" if test is None else f"{test['mean_difference']:+.4f} (p={test['p_value']:.2g})"
        table.add_row(row["recipe"], *cells, f"{row['fit_seconds']:.2f}", versus,
                      *(f"{row[key]:.4f}" for key in sampled))
    out.print(table)
    if sampled:
        out.print(f"sampled_ columns: {run.rows[0]['sampled_protocol']} per held-out item, not full-catalogue "
                  "ranking (only to compare with papers that report it)")
    if split["skipped_users"]:
        out.print(f"{split['skipped_users']:,} users with too little history for the protocol were not evaluated")


# ---------------------------------------------------------------------------------------- recommend
def load_active_model(store: Store, version_id: int) -> TrainedModel:
    """The trained model of an ACTIVE solution version."""
    from recsmith.store.artifacts import TrainedModel

    version = store.get_solution_version(version_id)
    if version["status"] != "ACTIVE" or not version.get("artifact_uri"):
        raise ConfigError(f"solution version {version_id} is {version['status']}, not ACTIVE; train it again")
    return TrainedModel.load(version["artifact_uri"])


def titled_rows(store: Store, group_id: int, scored: list[tuple[str, float, str]]) -> list[dict[str, Any]]:
    """Result rows (rank, item id, score, reason) with each item's title when its metadata has one."""
    metadata = store.read_items(group_id, [item_id for item_id, _, _ in scored])
    rows = []
    for rank, (item_id, score, reason) in enumerate(scored, start=1):
        row: dict[str, Any] = {"rank": rank, "item_id": item_id, "score": round(float(score), 6), "reason": reason}
        title = item_title(metadata.get(item_id))
        if title is not None:
            row["title"] = title
        rows.append(row)
    return rows


def item_title(metadata: dict[str, Any] | None) -> Any:
    """The value of an item's ``title`` field, whatever its case, or None."""
    return next((value for key, value in (metadata or {}).items() if key.lower() == "title"), None)


def recommendations_for(store: Store, version_id: int, user: str, num: int, *, filter_expression: str | None = None,
                        filter_values: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Load a solution version and recommend for one raw user id, with item titles when known."""
    from recsmith.serving import filter_mask, recommend_for_user
    from recsmith.serving.filters import ItemCatalog

    model = load_active_model(store, version_id)
    group = store.get_dataset_group(model.meta["dataset_group"])
    events = store.user_events(group.id, user)
    allowed = None
    if filter_expression is not None:
        catalog = ItemCatalog(model.items, store.read_items(group.id))
        allowed = filter_mask(model, filter_expression, catalog,
                              user_metadata=store.read_users(group.id, [user]).get(user), events=events,
                              values=filter_values)
    items = recommend_for_user(model, user, num, history=[item_id for item_id, _ in events], allowed=allowed)
    return titled_rows(store, group.id, [(item.item_id, item.score, item.reason) for item in items])


@app.command()
@handle_errors
def recommend(
    solution_version: Annotated[int, typer.Option(help="Solution version id (from `recsmith train`).")],
    user: Annotated[str, typer.Option(help="Raw user id.")],
    num: Annotated[int, typer.Option(help="Number of items.")] = 10,
    filter_expression: Annotated[str | None, typer.Option(
        "--filter", help='A filter, e.g. \'EXCLUDE ItemID WHERE Items.GENRES IN ($G)\' (Personalize grammar).')] = None,
    filter_value: Annotated[list[str] | None, typer.Option(
        "--filter-value", help="$PARAM value NAME=VALUE; repeat for several values of one parameter.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Recommend items for a user from a trained solution version."""
    values: dict[str, list[str]] = {}
    for pair in filter_value or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--filter-value {pair!r}: write NAME=VALUE, e.g. G=Comedy")
        values.setdefault(name.strip().lstrip("$"), []).append(value)
    if values and filter_expression is None:
        raise ConfigError("--filter-value needs a --filter")
    rows = recommendations_for(open_store(), solution_version, user, num, filter_expression=filter_expression,
                               filter_values=values)
    if as_json:
        print_json({"solution_version": solution_version, "user_id": user, "items": rows})
        return
    print_recommendations(rows, f"top {num} for user {user} (solution version {solution_version})")


def print_recommendations(rows: list[dict[str, Any]], title: str) -> None:
    """The recommendations table."""
    table = Table("#", "item", "title", "score", "reason", title=title)
    for row in rows:
        table.add_row(str(row["rank"]), row["item_id"], row.get("title", ""), f"{row['score']:.4f}", row["reason"])
    out.print(table)


@app.command()
@handle_errors
def similar(
    solution_version: Annotated[int, typer.Option(help="Solution version id of a recipe with item similarity.")],
    item: Annotated[str, typer.Option(help="Raw item id.")],
    num: Annotated[int, typer.Option(help="Number of items.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Items most similar to an item ("customers who liked this also liked")."""
    store = open_store()
    model = load_active_model(store, solution_version)
    result = model.recipe.similar_items([model.items.index(item)], num)
    scored = [(model.items.raw(int(i)), float(score), "similar")
              for i, score in zip(result.ids[0], result.scores[0], strict=True) if i >= 0]
    group = store.get_dataset_group(model.meta["dataset_group"])
    rows = titled_rows(store, group.id, scored)
    if as_json:
        print_json({"solution_version": solution_version, "item_id": item, "items": rows})
        return
    source_title = item_title(store.read_items(group.id, [item]).get(item)) or item
    print_recommendations(rows, f"items similar to {source_title} (solution version {solution_version})")


# --------------------------------------------------------------------------------- solution versions
@versions_app.command("list")
@handle_errors
def versions_list(
    group: Annotated[str | None, typer.Option("--dataset-group", "-g", help="Only this group.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List solution versions."""
    store = open_store()
    group_id = store.get_dataset_group(group).id if group else None
    versions = store.list_solution_versions(group_id)
    if as_json:
        print_json(versions)
        return
    table = Table("id", "dataset group", "solution", "recipe", "status", "ndcg@10", "fit s", "created")
    for v in versions:
        ndcg = (v.get("metrics") or {}).get("ndcg@10")
        table.add_row(str(v["id"]), str(v.get("dataset_group", "")), str(v.get("solution_name", "")),
                      str(v.get("recipe", "")), v["status"], f"{ndcg:.4f}" if ndcg is not None else "",
                      f"{v['fit_seconds']:.2f}" if v.get("fit_seconds") is not None else "", str(v["created_at"]))
    out.print(table)


@versions_app.command("describe")
@handle_errors
def versions_describe(version_id: Annotated[int, typer.Argument(help="Solution version id.")]) -> None:
    """Everything stored about a solution version, as JSON."""
    print_json(open_store().get_solution_version(version_id))


# ---------------------------------------------------------------------------------------- quickstart
@app.command()
@handle_errors
def quickstart(
    group: Annotated[str, typer.Option("--dataset-group", "-g", help="Dataset group to create.")] = "quickstart",
    user: Annotated[str, typer.Option(help="User to recommend for.")] = "1",
) -> None:
    """Import the bundled MovieLens data, train and evaluate two recipes, recommend for one user (offline)."""
    from recsmith.datasets import load_dataset
    from recsmith.jobs.training import train_solution_version

    started = time.perf_counter()
    settings = Settings()
    store = open_store(settings)
    out.rule("[bold]recsmith quickstart")
    out.print(f"store: {settings.resolved_database_url()}")
    with stage_progress("load ml-latest-small", {"read": "reading", "write": "writing"}) as progress:
        reports = load_dataset(store, "ml-latest-small", group, progress=progress)
    for report in reports:
        out.print(f"imported {report.rows_loaded:,} {report.dataset_type} rows in {report.duration_seconds:.2f} s")
    run = run_evaluation(store, group, build_experiment(None, "popularity,item-knn", None, {}, {}))
    print_leaderboard(run)
    with stage_progress("train item-knn", {"read": "reading", "fit": "fitting", "save": "saving"}) as progress:
        version = train_solution_version(store, settings, group, "item-knn", with_metrics=False, progress=progress)
    recs = recommendations_for(store, version["id"], user, 10)
    print_recommendations(recs, f"top 10 movies for user {user} (item-knn, solution version {version['id']})")
    out.print(f"done in {time.perf_counter() - started:.1f} s. Next:")
    for line in (
        f"recsmith describe --dataset-group {group}",
        f"recsmith recommend --solution-version {version['id']} --user 42 --num 10",
        f"recsmith evaluate --dataset-group {group} --recipes popularity,item-knn --param item-knn.neighbors=50",
        "recsmith import interactions YOUR.csv --dataset-group shop --map userId=USER_ID,itemId=ITEM_ID",
    ):
        out.print(f"  [cyan]{line}[/]", soft_wrap=True)


from recsmith.cli.tune import tune  # noqa: E402 (registered last: tune.py imports main's helpers lazily)

app.command()(handle_errors(tune))
import recsmith.cli.schedule  # noqa: E402, F401 (registers schedule)
import recsmith.cli.serving  # noqa: E402, F401 (registers campaign, filter, keys and serve)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
