"""Batch segments at the recipe layer: ``Recipe.top_users`` (Item-Affinity, Item-Attribute-Affinity).

The contract suite (``RecipeContract.test_top_users_rank_by_the_scores``) checks every recipe on a small
synthetic set; here the recipes with a fast (transpose-scoring) path are checked on MovieLens 100K against
``score`` over every pair and against the base class's dense path, and ties, blocks and inputs are pinned down.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.recipes import Recipe, Recommendations, create
from recsmith.testing import ml100k_split

TORCH_FAST = {"epochs": 1, "factors": 16, "batch_size": 1024, "lr": 0.01, "val_fraction": 0.0, "patience": 0}
FAST_PATHS: list[Any] = [
    ("als", {"factors": 32, "epochs": 8}),
    ("bpr", {"epochs": 20}),
    ("item-knn", {}),
    ("item-knn", {"weighting": "none", "neighbors": 50}),
    ("rp3beta", {}),
    ("ease", {}),
    ("svd", {"epochs": 5}),
    ("svdpp", {"epochs": 3}),
    pytest.param("fm", TORCH_FAST, marks=pytest.mark.torch),
    pytest.param("two-tower", TORCH_FAST, marks=pytest.mark.torch),
]


def expected_means(full: np.ndarray, seen: np.ndarray, items: np.ndarray, exclude_seen: bool) -> np.ndarray:
    """Each user's mean of ``full`` over ``items`` (the unseen ones with ``exclude_seen``; -inf when none)."""
    counted = ~seen[:, items] if exclude_seen else np.ones((full.shape[0], len(items)), dtype=bool)
    count = counted.sum(axis=1)
    total = np.where(counted, full[:, items], 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), -np.inf)


def assert_valid_top(result: Recommendations, row: int, expected: np.ndarray, k: int, tol: float) -> None:
    """Row ``row`` of ``result`` is a top-``k`` of ``expected`` up to ``tol``: the right number of distinct
    qualifying users, scored as expected, descending, and nobody left out scoring above the last one kept."""
    qualify = np.flatnonzero(np.isfinite(expected))
    n = min(k, len(qualify))
    ids, scores = result.ids[row], result.scores[row]
    assert (ids[:n] >= 0).all() and (ids[n:] == -1).all() and np.isneginf(scores[n:]).all()
    assert len(set(ids[:n].tolist())) == n and np.isfinite(expected[ids[:n]]).all()
    np.testing.assert_allclose(scores[:n], expected[ids[:n]], rtol=1e-4, atol=tol)
    assert np.all(np.diff(scores[:n]) <= tol)
    left_out = np.setdiff1d(qualify, ids[:n])
    if n and len(left_out):
        assert expected[left_out].max() <= scores[n - 1] + tol


@pytest.fixture(scope="module")
def ml100k() -> Interactions:
    train, _ = ml100k_split()
    return train


@pytest.mark.parametrize(("name", "params"), FAST_PATHS)
def test_fast_path_ranks_as_score_and_the_dense_path(name: str, params: dict[str, Any], ml100k: Interactions,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """On MovieLens 100K, the recipe's transpose scoring gives the ranking of ``score`` over every pair and of
    the base class's dense path (``Recipe._set_scorer``), to float tolerance, with and without exclusions."""
    recipe = create(name, **params).fit(ml100k)
    n_users, n_items = ml100k.n_users, ml100k.n_items
    full = recipe.score(np.repeat(np.arange(n_users), n_items), np.tile(np.arange(n_items), n_users))
    full = full.reshape(n_users, n_items).astype(np.float64)
    seen = np.zeros((n_users, n_items), dtype=bool)
    coo = ml100k.matrix.tocoo()
    seen[coo.row, coo.col] = True
    rng = np.random.default_rng(7)
    popular = np.argsort(-seen.sum(axis=0), kind="stable")
    sets = ([np.array([i]) for i in rng.choice(n_items, 40, replace=False)]
            + [np.array([popular[0]]), np.array([popular[-1]])]  # everyone's item; an item nobody kept
            + [rng.choice(n_items, 25, replace=False) for _ in range(4)]
            + [popular[:300], np.arange(n_items)])
    tol = 1e-5 * max(1.0, float(np.abs(full).max()))
    k = 60
    for exclude_seen in (True, False):
        fast = recipe.top_users(sets, k=k, exclude_seen=exclude_seen)
        with monkeypatch.context() as patch:
            patch.setattr(type(recipe), "_set_scorer", Recipe._set_scorer)
            dense = recipe.top_users(sets, k=k, exclude_seen=exclude_seen)
        for row, items in enumerate(sets):
            expected = expected_means(full, seen, np.unique(items), exclude_seen)
            assert_valid_top(fast, row, expected, k, tol)
            assert_valid_top(dense, row, expected, k, tol)
        np.testing.assert_allclose(fast.scores, dense.scores, rtol=1e-4, atol=tol)
        assert (fast.ids == dense.ids).mean() > 0.98  # the same users, but for near-ties in float rounding


def test_ties_come_out_by_user_index_across_blocks() -> None:
    """Users with the same history tie; they come out by index, also across blocks of users and with a
    ``users`` filter given in any order."""
    n_users = 2_600  # three blocks of at most 1,024 users
    rng = np.random.default_rng(3)
    group = rng.integers(0, 4, n_users)  # four distinct histories
    histories = [[0, 1], [1, 2], [2, 3], [0, 3]]
    rows = np.repeat(np.arange(n_users), 2)
    cols = np.concatenate([histories[g] for g in group])
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, 5))
    matrix[:50, 4] = 1.0  # so item 4 has neighbours
    recipe = create("item-knn", weighting="none").fit(Interactions.from_csr(matrix))
    full = recipe.score(np.repeat(np.arange(n_users), 5), np.tile(np.arange(5), n_users)).reshape(n_users, 5)
    seen = matrix.toarray() > 0
    for item in range(5):
        expected = np.where(seen[:, item], -np.inf, full[:, item])
        order = np.lexsort((np.arange(n_users), -expected))
        order = order[np.isfinite(expected[order])][:1_500]
        result = recipe.top_users([item], k=1_500)
        np.testing.assert_array_equal(result.ids[0, :len(order)], order)
        chosen = rng.permutation(n_users)[:1_800]
        filtered = recipe.top_users([item], k=1_500, users=np.concatenate([chosen, chosen[:10]]))
        keep = np.zeros(n_users, dtype=bool)
        keep[chosen] = True
        order_chosen = np.lexsort((np.arange(n_users), -expected))
        order_chosen = order_chosen[keep[order_chosen] & np.isfinite(expected[order_chosen])][:1_500]
        np.testing.assert_array_equal(filtered.ids[0, :len(order_chosen)], order_chosen)


def test_item_set_inputs_agree() -> None:
    """A sparse ``n_sets × n_items`` matrix, lists with repeats and -1 padding, and a padded 2-D array give the
    same sets; no sets give an empty answer; an empty set a row of padding."""
    data = Interactions.from_csr(sp.random(80, 30, density=0.2, format="csr", random_state=4, dtype=np.float32))
    recipe = create("als", factors=4, epochs=3).fit(data)
    lists = [[3, 4, 4], [7], [1, -1, 2, 9]]
    padded = np.array([[3, 4, -1, -1], [7, -1, -1, -1], [1, 2, 9, -1]])
    mask = sp.csr_matrix((np.ones(7), ([0, 0, 1, 2, 2, 2, 0], [3, 4, 7, 1, 2, 9, 4])), shape=(3, 30))
    reference = recipe.top_users(lists, k=10)
    for other in (padded, mask):
        result = recipe.top_users(other, k=10)
        np.testing.assert_array_equal(result.ids, reference.ids)
        np.testing.assert_allclose(result.scores, reference.scores, rtol=1e-6)
    none = recipe.top_users([], k=5)
    assert none.ids.shape == (0, 5) and none.scores.shape == (0, 5)
    empty = recipe.top_users([[], [-1], [3]], k=5)
    assert (empty.ids[:2] == -1).all() and np.isneginf(empty.scores[:2]).all() and (empty.ids[2] >= 0).any()
    nobody = recipe.top_users([3], k=5, users=np.array([], dtype=np.int64))
    assert (nobody.ids == -1).all()


@pytest.mark.parametrize("name", ["popularity", "trending"])
def test_user_independent_recipes_refuse_with_the_way_out(name: str) -> None:
    data = Interactions.from_csr(sp.random(30, 10, density=0.3, format="csr", random_state=0, dtype=np.float32),
                                 timestamps=1_700_000_000 + np.arange(int(30 * 10 * 0.3)))
    recipe = create(name).fit(data)
    assert not recipe.tags.top_users
    with pytest.raises(ValueError, match=f"recipe {name} gives every user the same scores.*als, item-knn or ease"):
        recipe.top_users([0, 1], k=3)
