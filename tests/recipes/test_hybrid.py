import numpy as np
import pytest

from recsmith.errors import ConfigError
from recsmith.recipes import create
from recsmith.recipes.hybrid import _normalise
from recsmith.testing import RecipeContract, synthetic_interactions


class TestHybridContract(RecipeContract):
    recipe_name = "hybrid"
    min_ndcg = 0.38


class TestHybridOfThreeContract(RecipeContract):
    recipe_name = "hybrid"
    params = {"components": {"ease": 0.6, "rp3beta": 0.3, "popularity": 0.1},
              "component_params": {"ease": {"reg": 300.0}}, "normalize": "zscore"}
    min_ndcg = 0.40


def test_a_single_component_ranks_like_that_component() -> None:
    data = synthetic_interactions()
    alone = create("item-knn").fit(data).recommend(np.arange(10), k=5)
    blended = create("hybrid", components={"item-knn": 2.0}).fit(data).recommend(np.arange(10), k=5)
    np.testing.assert_array_equal(alone.ids, blended.ids)


def test_normalisation_is_per_user() -> None:
    scores = np.array([[1.0, 3.0, -np.inf], [10.0, 30.0, 20.0]], dtype=np.float32)
    np.testing.assert_allclose(_normalise(scores, "minmax"), [[0, 1, 0], [0, 1, 0.5]])


@pytest.mark.parametrize(("params", "message"), [
    ({"components": {"magic": 1.0}}, "magic"),
    ({"components": {"hybrid": 1.0}}, "another hybrid"),
    ({"components": {}}, "at least one"),
    ({"components": {"ease": 1.0}, "component_params": {"als": {}}}, "not among the components"),
])
def test_bad_components(params, message) -> None:
    with pytest.raises(ConfigError, match=message):
        create("hybrid", **params)
