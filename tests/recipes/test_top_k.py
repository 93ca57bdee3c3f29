"""top_k: ties broken by item index, so a top-n is the same whatever k is asked for."""

import numpy as np
import pytest

from recsmith.recipes import create
from recsmith.recipes.base import top_k


def test_ties_come_out_by_item_index_for_any_k() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (50, 300)).astype(np.float32)  # many ties at every cut
    scores[0] = -np.inf
    scores[1, 7] = np.nan
    for k in (1, 2, 5, 10, 25, 100, 299, 300, 400):
        result = top_k(scores, k)
        for row in range(len(scores)):
            finite = np.flatnonzero(np.isfinite(scores[row]))
            expected = finite[np.lexsort((finite, -scores[row, finite]))][:k]
            assert result.ids[row, :len(expected)].tolist() == expected.tolist()
            assert (result.ids[row, len(expected):] == -1).all()
            assert np.isneginf(result.scores[row, len(expected):]).all()


@pytest.mark.parametrize("k", [3, 10, 40])
def test_a_recipe_gives_the_same_top_n_whatever_k(k: int) -> None:
    import scipy.sparse as sp

    from recsmith.data.interactions import Interactions

    matrix = sp.random(40, 60, density=0.1, random_state=1, format="csr", dtype=np.float32)
    matrix.data[:] = 1.0
    popularity = create("popularity").fit(Interactions.from_csr(matrix))
    users = np.arange(40)
    assert (popularity.recommend(users, k).ids == popularity.recommend(users, 60).ids[:, :k]).all()
