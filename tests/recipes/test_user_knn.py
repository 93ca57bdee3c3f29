import numpy as np
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.recipes import create
from recsmith.testing import RecipeContract


class TestUserKNNContract(RecipeContract):
    recipe_name = "user-knn"
    min_ndcg = 0.38


def test_votes_come_from_the_nearest_users_only() -> None:
    dense = np.array([
        [1, 1, 1, 0, 0],  # user 0: like user 1, who also has item 3
        [1, 1, 1, 1, 0],
        [0, 0, 0, 1, 1],  # user 2: unlike user 0, has item 4
    ], dtype=np.float32)
    recipe = create("user-knn", neighbors=1, shrink=0.0, weighting="none")
    recipe.fit(Interactions.from_csr(sp.csr_matrix(dense)))
    recs = recipe.recommend([0], k=2)
    assert recs.ids[0].tolist() == [3, 4]
    assert recs.scores[0, 0] > 0 and recs.scores[0, 1] == 0  # only user 1 votes; item 4 gets nothing
