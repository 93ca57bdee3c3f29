"""Recipes: algorithms with typed hyperparameters behind one contract (see :class:`Recipe`)."""

from recsmith.recipes import (  # noqa: F401 (importing a recipe module registers it)
    ease,
    factorization,
    hybrid,
    item_knn,
    popularity,
    rp3beta,
    svd,
    svdpp,
    trending,
    user_knn,
)
from recsmith.recipes.base import Recipe, RecipeParams, Recommendations
from recsmith.recipes.registry import available, create, recipe_class, register

__all__ = ["Recipe", "RecipeParams", "Recommendations", "available", "create", "recipe_class", "register"]
