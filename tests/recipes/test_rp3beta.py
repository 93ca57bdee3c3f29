import numpy as np
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.recipes import create
from recsmith.testing import RecipeContract


class TestRP3BetaContract(RecipeContract):
    recipe_name = "rp3beta"
    min_ndcg = 0.38


def test_walk_probabilities_and_popularity_penalty() -> None:
    # user 0: items 0, 1; user 1: items 0, 2; user 2: item 2
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [0, 0, 1]], dtype=np.float32))
    plain = create("rp3beta", alpha=1.0, beta=0.0).fit(Interactions.from_csr(x))
    # from item 0: to user 0 or 1 (1/2 each), then user 0 -> item 1 (1/2), user 1 -> item 2 (1/2)
    np.testing.assert_allclose(plain.similarity_.toarray()[0], [0.0, 0.25, 0.25])
    penalised = create("rp3beta", alpha=1.0, beta=1.0).fit(Interactions.from_csr(x))
    row = penalised.similarity_.toarray()[0]
    assert row[1] > row[2]  # item 2 is twice as popular, so it is penalised twice as much
    assert penalised.similar_items([0], k=2).ids[0].tolist() == [1, 2]
