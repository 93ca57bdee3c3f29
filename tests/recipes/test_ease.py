import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError
from recsmith.recipes import create
from recsmith.testing import RecipeContract, synthetic_interactions


class TestEASEContract(RecipeContract):
    recipe_name = "ease"
    min_ndcg = 0.42


def test_matches_the_closed_form() -> None:
    data = synthetic_interactions(n_users=40, n_items=15)
    recipe = create("ease", reg=10.0).fit(data)
    x = data.matrix.toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 10.0 * np.eye(15))
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(recipe.weights_, expected, atol=1e-4)
    assert recipe.weights_.flags.c_contiguous and recipe.weights_.dtype == np.float32


def test_refuses_catalogues_that_will_not_fit() -> None:
    data = Interactions.from_csr(sp.random(5, 50, density=0.5, format="csr", random_state=0))
    with pytest.raises(ConfigError, match="use item-knn .* or als"):
        create("ease", max_items=40).fit(data)
