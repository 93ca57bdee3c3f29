import numpy as np
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.recipes import create
from recsmith.testing import RecipeContract


class TestPopularityContract(RecipeContract):
    recipe_name = "popularity"
    min_ndcg = 0.18


def test_ranks_by_number_of_users() -> None:
    matrix = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32))
    recs = create("popularity").fit(Interactions.from_csr(matrix)).recommend([3], k=3, exclude_seen=False)
    assert recs.ids[0].tolist() == [1, 2, 0]
    assert recs.scores[0].tolist() == [3.0, 2.0, 1.0]


def test_negative_weights_push_down_when_counting_weight() -> None:
    matrix = sp.csr_matrix(np.array([[5, -2], [1, -2], [0, 3]], dtype=np.float32))
    by_users = create("popularity").fit(Interactions.from_csr(matrix)).recommend([0], k=2, exclude_seen=False)
    by_weight = create("popularity", by="weight").fit(Interactions.from_csr(matrix)).recommend(
        [0], k=2, exclude_seen=False)
    assert by_users.ids[0].tolist() == [0, 1]  # 2 users vs 1 user
    assert by_weight.scores[0].tolist() == [6.0, -1.0]


def test_same_list_for_everyone_and_for_new_users() -> None:
    matrix = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=np.float32))
    recipe = create("popularity").fit(Interactions.from_csr(matrix))
    everyone = recipe.recommend(np.arange(3), k=4, exclude_seen=False)
    assert (everyone.ids == [2, 1, 0, 3]).all() or (everyone.ids == [2, 1, 3, 0]).all()
    assert (everyone.ids == everyone.ids[0]).all()
    new_user = recipe.recommend_from_history([np.array([2])], k=4)
    assert new_user.ids[0, :3].tolist() in ([1, 0, 3], [1, 3, 0]) and new_user.ids[0, 3] == -1
