"""Recipes by name, imported on first use: ``create("item-knn", neighbors=50)``.

The registry names each built-in recipe as ``"module:Class"`` and imports its module only when the recipe is
asked for, so ``import recsmith.recipes`` (and ``recsmith --help``) never pays for a recipe's dependencies
(``implicit``, later torch). Recipes of other packages join with :func:`register` (a class) or
:func:`register_path` (a ``"module:Class"`` string).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from recsmith.errors import ConfigError
from recsmith.recipes.base import Recipe, read_saved_meta, set_class_lookup

BUILTIN: dict[str, str] = {
    "popularity": "recsmith.recipes.popularity:Popularity",
    "trending": "recsmith.recipes.trending:Trending",
    "item-knn": "recsmith.recipes.item_knn:ItemKNN",
    "user-knn": "recsmith.recipes.user_knn:UserKNN",
    "rp3beta": "recsmith.recipes.rp3beta:RP3Beta",
    "ease": "recsmith.recipes.ease:EASE",
    "als": "recsmith.recipes.factorization:ALS",
    "bpr": "recsmith.recipes.factorization:BPR",
    "svd": "recsmith.recipes.svd:SVD",
    "svdpp": "recsmith.recipes.svdpp:SVDpp",
    "hybrid": "recsmith.recipes.hybrid:Hybrid",
}
"""The built-in recipes: registry name -> ``"module:Class"``."""

_PATHS: dict[str, str] = dict(BUILTIN)
_CLASSES: dict[str, type[Recipe]] = {}
R = TypeVar("R", bound=type[Recipe])


def register(cls: R) -> R:
    """Class decorator adding a recipe class to the registry under ``cls.name`` (replacing one of that name)."""
    _CLASSES[cls.name] = cls
    _PATHS.pop(cls.name, None)
    return cls


def register_path(name: str, path: str) -> None:
    """Add a recipe by ``"module:Class"``, imported when it is first asked for.

    Raises
    ------
    ConfigError
        If ``path`` is not of the form ``module:Class``.
    """
    module, _, attribute = path.partition(":")
    if not module or not attribute:
        raise ConfigError(f"a recipe path is 'module:Class', got {path!r}")
    _PATHS[name] = path
    _CLASSES.pop(name, None)


def available() -> list[str]:
    """Names of the registered recipes (imports none of them)."""
    return sorted(set(_PATHS) | set(_CLASSES))


def recipe_class(name: str) -> type[Recipe]:
    """The recipe class registered as ``name``, its module imported on first use.

    Raises
    ------
    ConfigError
        For an unknown name, or a path that does not lead to a recipe class of that name.
    """
    cls = _CLASSES.get(name)
    if cls is not None:
        return cls
    path = _PATHS.get(name) if isinstance(name, str) else None
    if path is None:
        raise ConfigError(f"unknown recipe {name!r}; available recipes: {', '.join(available())}")
    module, _, attribute = path.partition(":")
    cls = getattr(importlib.import_module(module), attribute, None)
    if not (isinstance(cls, type) and issubclass(cls, Recipe)) or getattr(cls, "name", None) != name:
        raise ConfigError(f"recipe {name!r} is registered as {path!r}, which is not a Recipe class named {name!r}")
    _CLASSES[name] = cls
    return cls


def create(name: str, **params: Any) -> Recipe:
    """A new, unfitted recipe by registry name with the given params."""
    return recipe_class(name)(**params)


def load_recipe(path: str | Path, *, mmap: bool = False, read: Callable[[Path], bytes] | None = None) -> Recipe:
    """Read a recipe saved with :meth:`Recipe.save`, of the class ``meta.json`` names (no pickle).

    Parameters
    ----------
    path : str or Path
        The folder ``save`` wrote.
    mmap : bool
        Memory-map the arrays read-only (see :meth:`Recipe.load`).
    read : callable, optional
        Reads a file into memory instead (see :meth:`Recipe.load`).

    Raises
    ------
    DataError
        When the folder holds no saved recipe.
    ConfigError
        When it names a recipe the registry does not know.
    """
    return recipe_class(read_saved_meta(path, read=read)["recipe"]).load(path, mmap=mmap, read=read)


set_class_lookup(recipe_class)
