"""``recsmith train``: train a solution version."""

from __future__ import annotations

from typing import Annotated

import typer

from recsmith.cli.app import (
    DeviceOption,
    GroupOption,
    JsonOption,
    check_device,
    handle_errors,
    open_store,
    out,
    parse_params,
    print_json,
    solution_config,
    stage_progress,
)
from recsmith.errors import ConfigError, SplitTooSmallError
from recsmith.settings import Settings


@handle_errors
def train(
    group: GroupOption,
    recipe: Annotated[str, typer.Option(help="Recipe name, e.g. item-knn or popularity.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Hyperparameter NAME=VALUE.")] = None,
    solution: Annotated[str | None, typer.Option(help="Solution name (default: the recipe).")] = None,
    event_weights: Annotated[str | None, typer.Option(help="Event-type weights: purchase=5,view=1.")] = None,
    half_life_days: Annotated[float | None, typer.Option(help="Time decay half-life in days.")] = None,
    no_metrics: Annotated[bool, typer.Option("--no-metrics", help="Skip the offline metrics.")] = False,
    device: DeviceOption = "cpu",
    engine: Annotated[str, typer.Option(help="Where to train: local (this process) or spark (als only; needs "
                                             "pip install 'recsmith[spark]').")] = "local",
    spark_master: Annotated[str | None, typer.Option(help="Spark master for --engine spark: local[2] (default), "
                                                          "local[*], spark://HOST:PORT, yarn.")] = None,
    spark_conf: Annotated[list[str] | None, typer.Option(help="A Spark setting KEY=VALUE for --engine spark, e.g. "
                                                               "spark.driver.memory=8g (repeat it).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a solution version; prints its id, timings and offline metrics (iterative recipes: a bar over the
    epochs, with the training and validation loss of the recipes that keep them). With --engine spark, als
    trains on Apache Spark into the same kind of model (no epoch bar: Spark reports no epochs)."""
    from recsmith.jobs.training import train_solution_version

    settings = Settings()
    store = open_store(settings)
    config = solution_config(event_weights, half_life_days)
    stages = {"read": "reading interactions", "metrics": "offline metrics", "fit": "fitting", "save": "saving"}
    params = parse_params(param)
    iterative = check_device(recipe, device)
    conf = {key: str(value) for key, value in _spark_settings(spark_conf).items()}
    try:
        with stage_progress(f"train {recipe}", stages) as progress:
            version = train_solution_version(
                store, settings, group, recipe, params, config=config, solution_name=solution,
                with_metrics=not no_metrics, progress=progress,
                fit_options=progress.fit_options(device, epochs=iterative and engine == "local"),
                engine=engine, spark_master=spark_master, spark_conf=conf or None,
            )
    except SplitTooSmallError as exc:
        raise ConfigError(f"{group!r} is too small for the offline metrics, which hold out 20 % of each user's "
                          f"interactions ({exc}); train without them: recsmith train -g {group} --recipe {recipe} "
                          "--no-metrics") from None
    if as_json:
        print_json(version)
        return
    on = f" on Spark ({(version.get('config') or {}).get('engine', {}).get('master')})" if engine == "spark" else ""
    out.print(f"solution version [bold]{version['id']}[/] ({recipe}{on}) {version['status']}: "
              f"fit {version['fit_seconds']:.2f} s, total {version['total_seconds']:.2f} s")
    for key, value in (version.get("metrics") or {}).items():
        out.print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    out.print(f"next: recsmith recommend --solution-version {version['id']} --user USER_ID")


def _spark_settings(values: list[str] | None) -> dict[str, str]:
    """``--spark-conf KEY=VALUE`` options as a dict (a ConfigError naming a malformed one)."""
    settings: dict[str, str] = {}
    for value in values or []:
        key, sep, setting = value.partition("=")
        if not sep or not key.strip() or not setting.strip():
            raise ConfigError(f"--spark-conf takes KEY=VALUE (spark.driver.memory=8g), got {value!r}")
        settings[key.strip()] = setting.strip()
    return settings
