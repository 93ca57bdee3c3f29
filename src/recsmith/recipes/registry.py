"""Recipes by name, imported on first use: ``create("item-knn", neighbors=50)``.

Names are looked up through :func:`canonical_name`: ``item_knn`` finds ``item-knn`` (recipe names are spelled
with hyphens, as on the command line; underscores are accepted everywhere a recipe name is taken).

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
    "fm": "recsmith.recipes.fm:FM",
    "neumf": "recsmith.recipes.neumf:NeuMF",
    "two-tower": "recsmith.recipes.two_tower:TwoTower",
    "sasrec": "recsmith.recipes.sasrec:SASRec",
    "session-knn": "recsmith.recipes.session_knn:SessionKNN",
    "gru4rec": "recsmith.recipes.gru4rec:GRU4Rec",
    "random": "recsmith.recipes.baselines:RandomScores",
    "feature-popularity": "recsmith.recipes.baselines:FeaturePopularity",
}
"""The built-in recipes: registry name -> ``"module:Class"``."""



def canonical_name(name: str, separator: str = "-") -> str:
    """A name as recsmith spells it: surrounding blanks dropped, ``_`` and ``-`` both written ``separator``.

    The one spelling rule of the names a user types: recipe and protocol names are written with ``-``
    (``item-knn``, ``leave-last``, like the command line's options), metric names with ``_`` (``hit_rate@10``,
    like the keys of every result, and Personalize's metric names); either spelling is accepted on input.

    Parameters
    ----------
    name : str
        The name as given.
    separator : str
        ``"-"`` (recipes, protocols) or ``"_"`` (metrics).

    Returns
    -------
    str
        The canonical spelling; a value that is not a string is returned unchanged (for the caller's error).

    Examples
    --------
    >>> canonical_name("item_knn"), canonical_name(" leave-last "), canonical_name("hit-rate@10", "_")
    ('item-knn', 'leave-last', 'hit_rate@10')
    """
    if not isinstance(name, str):
        return name
    return name.strip().replace("_" if separator == "-" else "-", separator)


_PATHS: dict[str, str] = dict(BUILTIN)
_CLASSES: dict[str, type[Recipe]] = {}
R = TypeVar("R", bound=type[Recipe])


def register(cls: R) -> R:
    """Class decorator adding a recipe class to the registry under ``cls.name`` (replacing one of that name;
    ``my_recipe`` and ``my-recipe`` are the same name, see :func:`canonical_name`)."""
    key = canonical_name(cls.name)
    _CLASSES[key] = cls
    _PATHS.pop(key, None)
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
    key = canonical_name(name)
    _PATHS[key] = path
    _CLASSES.pop(key, None)


def available() -> list[str]:
    """Names of the registered recipes, canonically spelt (imports none of them)."""
    return sorted(set(_PATHS) | set(_CLASSES))


def recipe_class(name: str) -> type[Recipe]:
    """The recipe class registered as ``name`` (either spelling, see :func:`canonical_name`), its module
    imported on first use.

    Raises
    ------
    ConfigError
        For an unknown name, or a path that does not lead to a recipe class of that name.
    """
    key = canonical_name(name)
    cls = _CLASSES.get(key) if isinstance(key, str) else None
    if cls is not None:
        return cls
    path = _PATHS.get(key) if isinstance(key, str) else None
    if path is None:
        raise ConfigError(f"unknown recipe {name!r}; available recipes: {', '.join(available())}")
    module, _, attribute = path.partition(":")
    cls = getattr(importlib.import_module(module), attribute, None)
    if not (isinstance(cls, type) and issubclass(cls, Recipe)) or canonical_name(getattr(cls, "name", None)) != key:
        raise ConfigError(f"recipe {key!r} is registered as {path!r}, which is not a Recipe class named {key!r}")
    _CLASSES[key] = cls
    return cls


def recipe_name(name: str) -> str:
    """The registered, canonical name of a recipe given in either spelling: ``item_knn`` -> ``item-knn``.

    Raises
    ------
    ConfigError
        For an unknown name (the message lists the available ones).
    """
    recipe_class(name)
    return canonical_name(name)


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
