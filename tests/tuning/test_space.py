"""Search spaces declared on the recipes' params."""

from __future__ import annotations

import json

import pytest

from recsmith.errors import ConfigError
from recsmith.recipes import create, recipe_class
from recsmith.recipes.base import Choice, FloatRange, IntRange
from recsmith.tuning import search_space, space_json, tunable_recipes

REQUIRED = {"als": {"factors", "reg", "alpha", "epochs"}, "bpr": {"factors", "learning_rate", "reg", "epochs"},
            "ease": {"reg"}, "item-knn": {"neighbors", "shrink", "weighting"},
            "user-knn": {"neighbors", "shrink", "weighting"}, "rp3beta": {"alpha", "beta", "neighbors"},
            "svd": {"factors", "reg", "bias_reg", "epochs"}, "svdpp": {"factors", "reg", "bias_reg", "epochs"}}


def test_the_main_recipes_declare_their_spaces() -> None:
    assert set(REQUIRED) <= set(tunable_recipes())
    for recipe, names in REQUIRED.items():
        assert names <= set(search_space(recipe)), recipe


@pytest.mark.parametrize("recipe", tunable_recipes())
def test_every_point_of_a_space_is_a_valid_param(recipe: str) -> None:
    fields = recipe_class(recipe).Params.model_fields
    for name, dimension in search_space(recipe).items():
        assert name in fields
        points = dimension.choices if isinstance(dimension, Choice) else (dimension.low, dimension.high)
        for value in points:
            assert create(recipe, **{name: value}).get_params()[name] == value


def test_spaces_are_plain_json() -> None:
    for recipe in tunable_recipes():
        data = space_json(search_space(recipe))
        assert json.loads(json.dumps(data)) == data
    assert space_json(search_space("ease")) == {"reg": {"kind": "float", "low": 1.0, "high": 10_000.0, "log": True}}


def test_a_recipe_without_space_names_those_with_one() -> None:
    with pytest.raises(ConfigError, match=r"'popularity' declares no search space.*tunable recipes: als, bpr"):
        search_space("popularity")
    with pytest.raises(ConfigError, match="unknown recipe 'nope'"):
        search_space("nope")


def test_dimensions_check_their_bounds() -> None:
    with pytest.raises(ValueError, match="low < high"):
        FloatRange(low=2.0, high=1.0)
    with pytest.raises(ValueError, match="low > 0"):
        FloatRange(low=0.0, high=1.0, log=True)
    with pytest.raises(ValueError, match="low < high"):
        IntRange(low=5, high=5)
    with pytest.raises(ValueError):
        Choice(choices=("only",))
