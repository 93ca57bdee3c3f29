"""Recipes by name: ``create("item-knn", neighbors=50)``."""

from __future__ import annotations

from typing import Any, TypeVar

from recsmith.errors import ConfigError
from recsmith.recipes.base import Recipe

_RECIPES: dict[str, type[Recipe]] = {}
R = TypeVar("R", bound=type[Recipe])


def register(cls: R) -> R:
    """Class decorator adding a recipe to the registry under ``cls.name``."""
    _RECIPES[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of the registered recipes."""
    return sorted(_RECIPES)


def recipe_class(name: str) -> type[Recipe]:
    """The recipe class registered as ``name``."""
    try:
        return _RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; available recipes: {', '.join(available())}") from None


def create(name: str, **params: Any) -> Recipe:
    """A new, unfitted recipe by registry name with the given params."""
    return recipe_class(name)(**params)
