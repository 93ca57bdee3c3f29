"""``recsmith evaluate``: compare recipes offline on one split (ranking, or with ``--task binary`` as classifiers of
held-out ratings), or cross-validate rating recipes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from recsmith.cli.app import (
    DeviceOption,
    GroupOption,
    JsonOption,
    check_device,
    handle_errors,
    open_store,
    out,
    parse_params,
    parse_value,
    print_json,
    stage_progress,
)
from recsmith.errors import ConfigError, DataError

if TYPE_CHECKING:
    from recsmith.evaluation.experiment import Experiment
    from recsmith.jobs.evaluation import ClassificationRun, ExperimentRun


def run_evaluation(store: Any, group: str, experiment: Experiment, *, show_progress: bool = True,
                   depth: int | None = None, device: str = "cpu") -> ExperimentRun:
    """Fit and measure each of the experiment's recipes on one split of the group's data (on ``device``:
    checked for every recipe before any data is read).

    The group's item / user feature tables are read only when a recipe's tags say it uses them (and the item
    features for the ``cold-items`` protocol, which ranks held-out items from them)."""
    from recsmith.jobs.evaluation import run_experiment
    from recsmith.jobs.training import training_data_for
    from recsmith.recipes import recipe_class
    from recsmith.recipes.options import FitOptions

    for entry in experiment.recipes:
        check_device(entry.recipe, device)
    classes = [recipe_class(entry.recipe) for entry in experiment.recipes]
    cold_items = experiment.protocol == "cold-items"
    labels = [entry.label for entry in experiment.recipes]
    stages = {"read": "reading interactions"} | {f"fit:{label}": label for label in labels}
    with stage_progress("evaluate", stages, enabled=show_progress) as progress:
        progress("read")
        data = training_data_for(store, group, classes, item_features=cold_items)
        if cold_items and not len(data.item_features):
            raise DataError(f"the cold-items protocol ranks held-out items from their features, and dataset group "
                            f"{group!r} has no item metadata; import it first (recsmith import items PATH "
                            f"--dataset-group {group})")
        with_features = len(data.item_features) or len(data.user_features)
        run = run_experiment(data if with_features else data.interactions, experiment,
                             progress=lambda label, stage: progress(f"fit:{label}"), depth=depth,
                             fit_options=FitOptions(device=device))  # type: ignore[arg-type]
        progress("done")
    return run


def run_binary_evaluation(store: Any, group: str, experiment: Experiment, *, show_progress: bool = True,
                          device: str = "cpu") -> ClassificationRun:
    """Fit each of the experiment's recipes on one split of the group's data (with the feature tables the recipes
    use; on ``device``, checked for every recipe before any data is read) and measure its pair scores as a
    classifier of the held-out ratings."""
    from recsmith.jobs.evaluation import run_classification
    from recsmith.jobs.training import training_data_for
    from recsmith.recipes.options import FitOptions

    for entry in experiment.recipes:
        check_device(entry.recipe, device)

    labels = [entry.label for entry in experiment.recipes]
    stages = {"read": "reading interactions"} | {f"fit:{label}": label for label in labels}
    with stage_progress("evaluate", stages, enabled=show_progress) as progress:
        progress("read")
        data = training_data_for(store, group, experiment.build().values())
        run = run_classification(data, experiment, progress=lambda label, stage: progress(f"fit:{label}"),
                                 fit_options=FitOptions(device=device))  # type: ignore[arg-type]
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
        from recsmith.recipes.registry import canonical_name

        names = [canonical_name(name) for name in (recipes or "popularity,item-knn").split(",") if name.strip()]
        params: dict[str, dict[str, Any]] = {}
        for key, value in parse_params(param).items():
            recipe_name, dot, param_name = key.rpartition(".")
            if not dot:
                raise ConfigError(f"--param {key}=...: write RECIPE.NAME=VALUE, e.g. item-knn.neighbors=50")
            params.setdefault(canonical_name(recipe_name), {})[param_name] = value
        unknown = set(params) - set(names)
        if unknown:
            raise ConfigError(f"--param names recipe(s) {sorted(unknown)} that are not in --recipes {names}")
        data["recipes"] = [{"recipe": name, "params": params.get(name, {})} for name in names]
    data.update({key: value for key, value in overrides.items() if value is not None})
    if split_options:
        data["split"] = dict(data.get("split", {})) | split_options
    return Experiment.parse(data, source=source)


@handle_errors
def evaluate(
    group: GroupOption,
    recipes: Annotated[str | None, typer.Option(
        help="Comma-separated recipe names (default: popularity,item-knn).")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="RECIPE.NAME=VALUE, e.g. item-knn.neighbors=50.")] = None,
    experiment_file: Annotated[Path | None, typer.Option(
        "--experiment", help="TOML experiment file: recipes with params, protocol, metrics.")] = None,
    task: Annotated[str | None, typer.Option(
        help="ranking (default: full-catalogue ranking metrics) | binary (AUC, log loss, accuracy, precision, "
             "recall, F1 of the recipes' pair scores on held-out ratings labelled by --label).")] = None,
    label: Annotated[str | None, typer.Option(
        help="binary: the positive label, a rule on the rating (default 'EVENT_VALUE >= 4').")] = None,
    threshold: Annotated[float | None, typer.Option(
        help="binary: predict positive at or above this probability (default 0.5).")] = None,
    protocol: Annotated[str | None, typer.Option(
        help="random | leave-last | temporal | users | cold-items | ratings-per-user (leave_last is accepted too; "
             "--task binary defaults to ratings-per-user: 10 held-out ratings per user, ml-100k's ua split).")
    ] = None,
    test_fraction: Annotated[float | None, typer.Option(help="random: share of each user's pairs held out.")] = None,
    n: Annotated[int | None, typer.Option(
        "--n", help="leave-last, ratings-per-user: pairs held out per user (ratings-per-user: 10).")] = None,
    at: Annotated[str | None, typer.Option(help="temporal: the cut, an ISO date or epoch seconds.")] = None,
    fraction: Annotated[float | None, typer.Option(
        help="temporal: share of the latest pairs held out; cold-items: share of the items held out.")] = None,
    test_users: Annotated[str | None, typer.Option(help="users: share (0.2) or number (500) held out.")] = None,
    input_fraction: Annotated[float | None, typer.Option(help="users: share of a user's pairs given as input.")
                              ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split (random, users, cold-items, "
                                                  "ratings-per-user).")] = None,
    k: Annotated[int | None, typer.Option("--k", help="Cut-off of the metrics (default 10).")] = None,
    metrics: Annotated[str | None, typer.Option(
        help="Comma-separated, e.g. ndcg@10,recall@20,map: precision, recall (hits / held-out items), "
             "recall_capped (hits / min(k, held-out items)), ndcg, map, mrr, hit_rate, coverage, novelty.")] = None,
    confidence: Annotated[float | None, typer.Option(help="Level of the bootstrap intervals (0.95).")] = None,
    sampled_negatives: Annotated[int | None, typer.Option(
        help="Also rank each held-out item among N sampled negatives (to reproduce papers; labelled).")] = None,
    sampling: Annotated[str | None, typer.Option(help="Sampled negatives: uniform or popularity.")] = None,
    report: Annotated[Path | None, typer.Option(
        help="Also write a self-contained HTML report (leaderboard and plots) to this file.")] = None,
    folds: Annotated[int | None, typer.Option(
        help="Cross-validate rating recipes (svd, svdpp) on N folds, as Surprise's KFold: RMSE and MAE.")] = None,
    device: DeviceOption = "cpu",
    as_json: JsonOption = False,
) -> None:
    """Compare recipes on one split: metrics with bootstrap confidence intervals, paired tests, fit time.

    With --folds N, rating recipes are cross-validated instead (RMSE, MAE), on the folds Surprise's
    KFold(N, random_state=SEED, shuffle=True) draws over the ratings in import order.

    With --task binary, each recipe's score of a held-out (user, item) pair is measured as a classifier of the
    pair's label (--label, on its EVENT_VALUE): AUC, log loss, and accuracy, precision, recall and F1 at
    --threshold, with bootstrap intervals (users resampled). Scores that are not probabilities are calibrated by
    Platt scaling fitted on the training pairs; --report adds a reliability diagram.
    """
    if folds is not None:
        if device not in ("cpu", "auto"):
            raise ConfigError(f"--folds cross-validates rating recipes (svd, svdpp), which train on the CPU only: "
                              f"drop --device {device}")
        cross_validate_command(group, recipes, param, experiment_file, folds, seed, as_json,
                               protocol_options=[protocol, test_fraction, n, at, fraction, test_users,
                                                 input_fraction, k, metrics, confidence, sampled_negatives, sampling,
                                                 report, task, label, threshold])
        return
    split_options = {"test_fraction": test_fraction, "n": n, "fraction": fraction, "input_fraction": input_fraction,
                     "seed": seed, "at": int(at) if at is not None and at.isdigit() else at,
                     "test_users": parse_value(test_users) if test_users is not None else None}
    overrides = {"protocol": protocol, "k": k, "confidence": confidence, "sampled_negatives": sampled_negatives,
                 "sampling": sampling, "task": task, "label": label, "threshold": threshold,
                 "metrics": [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None}
    experiment = build_experiment(experiment_file, recipes, param, overrides,
                                  {key: value for key, value in split_options.items() if value is not None})
    if report is not None and report.parent and not report.parent.is_dir():
        raise ConfigError(f"--report {report}: the folder {report.parent} does not exist")
    if experiment.task == "binary":
        binary_command(group, experiment, report, as_json, device)
        return
    from recsmith.evaluation.analysis import REPORT_DEPTH
    from recsmith.jobs.evaluation import write_experiment_report

    run = run_evaluation(open_store(), group, experiment, show_progress=not as_json,
                         depth=REPORT_DEPTH if report is not None else None, device=device)
    if report is not None:
        write_experiment_report(run, report, title=f"recsmith evaluation: {group}",
                                context={"dataset group": group, "recipes": len(run.rows)})
    if as_json:
        print_json(run.to_json() | ({"report": str(report)} if report is not None else {}))
        return
    print_leaderboard(run)
    if report is not None:
        out.print(f"report: {report}")


def binary_command(group: str, experiment: Experiment, report: Path | None, as_json: bool,
                   device: str = "cpu") -> None:
    """``recsmith evaluate --task binary``: the classification table (or JSON), and the report when asked."""
    from recsmith.jobs.evaluation import write_classification_report

    run = run_binary_evaluation(open_store(), group, experiment, show_progress=not as_json, device=device)
    if report is not None:
        write_classification_report(run, report, title=f"recsmith evaluation: {group}",
                                    context={"dataset group": group, "recipes": len(run.rows)})
    if as_json:
        print_json(run.to_json() | ({"report": str(report)} if report is not None else {}))
        return
    print_classification(run)
    if report is not None:
        out.print(f"report: {report}")


def print_classification(run: ClassificationRun) -> None:
    """The binary task's table: each metric over its bootstrap interval, fit time, how scores were calibrated."""
    from recsmith.evaluation.classification import CLASSIFICATION_METRICS

    split = run.split.describe()
    headers = {"auc": "AUC", "log_loss": "log loss ↓", "accuracy": "accuracy", "precision": "precision",
               "recall": "recall", "f1": "F1"}
    columns: list[tuple[str, list[str]]] = [
        (headers[name], [f"{row[name]:.4f}\n[dim]{_short(row['ci'][name]['ci_low'])}–"
                         f"{_short(row['ci'][name]['ci_high'])}[/]" for row in run.rows])
        for name in CLASSIFICATION_METRICS]
    columns.append(("fit s", [f"{row['fit_seconds']:.2f}" for row in run.rows]))
    columns.append(("calibrated", ["platt" if row["platt"] else "as is" for row in run.rows]))
    title = (f"binary classification of held-out pairs, label {run.rule}, {split['protocol']} split, "
             f"{run.rows[0]['pairs']:,} pairs ({run.rows[0]['positives']:,} positive), "
             f"{split['evaluated_users']:,} users")
    _print_tables(title, [str(row["recipe"]) for row in run.rows], columns)
    out.print(f"under each mean: its {run.experiment.confidence:.0%} bootstrap interval (users resampled); "
              f"accuracy, precision, recall, F1 at threshold {run.experiment.decision_threshold():g}")
    platt = [str(row["recipe"]) for row in run.rows if row["platt"]]
    if platt:
        out.print(f"calibrated: platt on training pairs ({', '.join(platt)}: scores are not probabilities; "
                  "AUC is computed on the raw scores)")
    if run.unlabelled:
        out.print(f"{run.unlabelled:,} held-out pairs without an EVENT_VALUE were left out")
    if split["skipped_users"]:
        out.print(f"{split['skipped_users']:,} users with too little history for the protocol were not evaluated")


def cross_validate_command(group: str, recipes: str | None, param: list[str] | None, experiment_file: Path | None,
                           folds: int, seed: int | None, as_json: bool, protocol_options: list[Any]) -> None:
    """``recsmith evaluate --folds N``: k-fold cross-validation of rating recipes, RMSE and MAE per recipe."""
    from recsmith.evaluation.crossval import check_cross_validation
    from recsmith.jobs.evaluation import run_cross_validation

    if any(option is not None for option in protocol_options):
        raise ConfigError("--folds runs Surprise's k-fold protocol on ratings; drop the ranking options "
                          "(--protocol, --test-fraction, --n, --at, --fraction, --test-users, --input-fraction, "
                          "--k, --metrics, --confidence, --sampled-negatives, --sampling, --report, --task, --label, "
                          "--threshold)")
    experiment = build_experiment(experiment_file, recipes or "svd", param, {}, {})
    try:  # every recipe and option, before any data is read or any fold fitted
        check_cross_validation(experiment.build(), folds)
    except ConfigError as exc:
        raise ConfigError(f"--folds {folds}: {exc}") from None
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
    """The evaluation table: each metric's mean over its confidence interval, fit time, the test against the leader.

    Laid out for the terminal's width (80 columns and up): metric headers break before ``@``, each interval sits
    under its mean (``.228–.265``), the difference to the best recipe (negative: worse) over its p-value; when
    the columns still do not fit, the rest go to a second table (recipes repeated), so nothing is cut.
    """
    from recsmith.evaluation.metrics import DEFINITIONS, parse_metric

    names = run.experiment.metric_names()
    split = run.split.describe()
    level = f"{run.experiment.confidence:.0%}"
    sampled = [key for key in run.rows[0] if key.startswith("sampled_") and key not in ("sampled_protocol",
                                                                                         "sampled_cases")]
    columns: list[tuple[str, list[str]]] = []
    for name in names:
        cells = []
        for row in run.rows:
            interval = row["ci"].get(name)
            cells.append(f"{row[name]:.4f}" if interval is None else
                         f"{row[name]:.4f}\n[dim]{_short(interval['ci_low'])}–{_short(interval['ci_high'])}[/]")
        columns.append((name.replace("@", "\n@"), cells))
    columns.append(("fit s", [f"{row['fit_seconds']:.2f}" for row in run.rows]))
    columns.append((f"vs best\n{run.primary}", [
        "—" if row.get("vs_best") is None else
        f"{row['vs_best']['mean_difference']:+.4f}\n[dim]p={row['vs_best']['p_value']:.2g}[/]" for row in run.rows]))
    columns += [(key.replace("@", "\n@"), [f"{row[key]:.4f}" for row in run.rows]) for key in sampled]
    ranking = ("full-catalogue ranking" if "cold_items" not in split else
               f"full ranking of the {split['cold_items']:,} held-out items")
    title = f"offline evaluation, {split['protocol']} split, {ranking}, {split['evaluated_users']:,} users"
    _print_tables(title, [str(row["recipe"]) for row in run.rows], columns)
    out.print(f"under each mean: its {level} bootstrap interval; vs best: the difference to the best recipe's "
              f"{run.primary} (negative: worse), paired t-test p-value")
    if {parse_metric(name)[0] for name in names} & {"recall", "recall_capped"}:  # which recall is which
        for base in ("recall", "recall_capped"):
            out.print(f"{base}@k: {DEFINITIONS[base]}")
    if sampled:
        out.print(f"sampled_ columns: {run.rows[0]['sampled_protocol']} per held-out item, not full-catalogue "
                  "ranking (only to compare with papers that report it)")
    if split["skipped_users"]:
        out.print(f"{split['skipped_users']:,} users with too little history for the protocol were not evaluated")


def _print_tables(title: str, recipes: list[str], columns: list[tuple[str, list[str]]]) -> None:
    """Print the (header, cells) columns beside the recipes in as few tables as fit the width (recipes repeated)."""
    unbounded = out.options.update_width(10_000)  # measure a table's natural width, not clamped to the terminal
    while columns:  # as many columns as fit the width in each table, at least one
        count = 1
        while count < len(columns) and out.measure(_table(title, recipes, columns[:count + 1]),
                                                   options=unbounded).maximum <= out.width:
            count += 1
        out.print(_table(title, recipes, columns[:count]))
        columns, title = columns[count:], ""


def _table(title: str, recipes: list[str], columns: list[tuple[str, list[str]]]) -> Table:
    """One leaderboard table: the recipes, then the given (header, cells) columns, right-aligned, never cut."""
    table = Table(title=title or None, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("recipe", no_wrap=True)
    for header, _ in columns:
        table.add_column(header, justify="right", overflow="fold")
    for number, recipe in enumerate(recipes):
        table.add_row(recipe, *(cells[number] for _, cells in columns))
    return table


def _short(value: float) -> str:
    """An interval bound in three decimals, without the leading zero of a share: ``0.2285`` -> ``.228``."""
    text = f"{value:.3f}"
    return text[1:] if text.startswith("0.") else text.replace("-0.", "-.", 1)
