"""Recipes: algorithms with typed hyperparameters behind one contract (see :class:`Recipe`)."""

from recsmith.recipes import ease, factorization, item_knn, popularity, rp3beta  # noqa: F401 (registers them)
from recsmith.recipes.base import Recipe, RecipeParams, Recommendations
from recsmith.recipes.registry import available, create, recipe_class, register

__all__ = ["Recipe", "RecipeParams", "Recommendations", "available", "create", "recipe_class", "register"]
