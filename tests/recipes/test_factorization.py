import numpy as np
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.recipes import create
from recsmith.testing import RecipeContract, synthetic_interactions


class TestALSContract(RecipeContract):
    recipe_name = "als"
    min_ndcg = 0.40


class TestBPRContract(RecipeContract):
    recipe_name = "bpr"
    min_ndcg = 0.30


def test_als_fold_in_matches_a_trained_user() -> None:
    """A training user's history folded in gives (nearly) the factors ALS learned for them."""
    data = synthetic_interactions(n_users=80, n_items=30)
    recipe = create("als", factors=8, epochs=30, reg=0.1).fit(data)
    folded = recipe._fold_in(data.matrix[:5])
    cosine = (folded * recipe.user_factors_[:5]).sum(1) / (
        np.linalg.norm(folded, axis=1) * np.linalg.norm(recipe.user_factors_[:5], axis=1))
    assert (cosine > 0.95).all(), cosine


def test_als_ranks_the_taste_group_first() -> None:
    dense = np.zeros((20, 6), dtype=np.float32)
    dense[:10, :3] = 1
    dense[10:, 3:] = 1
    dense[0, 2] = 0  # user 0 has not seen item 2, which everyone like them has
    recipe = create("als", factors=2, epochs=20).fit(Interactions.from_csr(sp.csr_matrix(dense)))
    assert recipe.recommend([0], k=1).ids[0, 0] == 2
