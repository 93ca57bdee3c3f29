"""Recipes: algorithms with typed hyperparameters behind one contract (see :class:`Recipe`).

Importing this package imports no recipe module: :func:`create` and :func:`recipe_class` import a recipe's
module the first time it is asked for (see :mod:`recsmith.recipes.registry`).
"""

from recsmith.recipes.base import Recipe, RecipeParams, Recommendations
from recsmith.recipes.options import FitOptions
from recsmith.recipes.query import HistoryQuery
from recsmith.recipes.registry import available, create, load_recipe, recipe_class, register, register_path
from recsmith.recipes.tags import RecipeTags

__all__ = ["FitOptions", "HistoryQuery", "Recipe", "RecipeParams", "RecipeTags", "Recommendations", "available",
           "create", "load_recipe", "recipe_class", "register", "register_path"]
