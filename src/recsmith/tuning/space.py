"""Search spaces: the ranges each recipe declares on its params (``Params.search_space``), as Optuna samples them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from recsmith.errors import ConfigError
from recsmith.recipes import available, recipe_class
from recsmith.recipes.base import Choice, FloatRange, IntRange, SearchDimension

if TYPE_CHECKING:
    import optuna


def tunable_recipes() -> list[str]:
    """Names of the recipes that declare a search space (the ones ``tune`` accepts)."""
    return [name for name in available() if recipe_class(name).Params.search_space]


def search_space(recipe: str) -> dict[str, SearchDimension]:
    """The search space declared by the recipe called ``recipe``.

    Raises
    ------
    ConfigError
        If the recipe is unknown, or declares no search space (the message names those that do).
    """
    space = recipe_class(recipe).Params.search_space
    if not space:
        raise ConfigError(f"recipe {recipe!r} declares no search space, so it cannot be tuned; "
                          f"tunable recipes: {', '.join(tunable_recipes())}")
    return dict(space)


def space_json(space: Mapping[str, SearchDimension]) -> dict[str, dict[str, Any]]:
    """The space as plain JSON (``{"reg": {"kind": "float", "low": 1.0, "high": 10000.0, "log": true}}``)."""
    return {name: dimension.model_dump(mode="json") for name, dimension in space.items()}


def check_space(recipe: str, space: Mapping[str, SearchDimension]) -> None:
    """Every dimension names a param of the recipe and is a :data:`SearchDimension` (ConfigError otherwise)."""
    fields = recipe_class(recipe).Params.model_fields
    for name, dimension in space.items():
        if name not in fields:
            raise ConfigError(f"search space of {recipe}: {name!r} is not one of its params ({', '.join(fields)})")
        if not isinstance(dimension, FloatRange | IntRange | Choice):
            raise ConfigError(f"search space of {recipe}: {name!r} must be a FloatRange, IntRange or Choice, "
                              f"got {dimension!r}")


def contains(dimension: SearchDimension, value: Any) -> bool:
    """Whether ``value`` is a point of ``dimension``."""
    if isinstance(dimension, Choice):
        return value in dimension.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(dimension, IntRange):
        return int(value) == value and dimension.low <= value <= dimension.high \
            and (value - dimension.low) % dimension.step == 0
    return dimension.low <= value <= dimension.high


def suggest(trial: optuna.Trial, name: str, dimension: SearchDimension) -> Any:
    """Sample the param ``name`` of ``dimension`` for an Optuna trial."""
    if isinstance(dimension, FloatRange):
        return trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log)
    if isinstance(dimension, IntRange):
        return trial.suggest_int(name, dimension.low, dimension.high, step=dimension.step, log=dimension.log)
    return trial.suggest_categorical(name, list(dimension.choices))
