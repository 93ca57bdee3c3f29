import numpy as np
import pandas as pd

from recsmith.data.interactions import Interactions
from recsmith.evaluation.split import split_random
from recsmith.recipes import Recipe, create
from recsmith.testing import RecipeContract, ml100k_split


class TestSVDppContract(RecipeContract):
    recipe_name = "svdpp"
    min_ndcg = 0.01  # a rating predictor, not a top-N ranker


def implicit_signal_frame(n_users: int = 200, n_items: int = 40, seed: int = 0) -> pd.DataFrame:
    """Ratings whose user effect is carried only by *which* items a user rated (SVD++'s premise).

    Users are of two kinds: each kind rates items from its own half of the catalogue more often and gives
    every item a kind-specific offset of ±1. A model that sees N(u) can tell the kinds apart from the
    items alone, even for a new user whose ratings say little.
    """
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 2, n_users)
    item_half = (np.arange(n_items) >= n_items // 2).astype(int)
    likes = np.where(kind[:, None] == item_half[None, :], 0.8, 0.15)
    users, items = np.nonzero(rng.random((n_users, n_items)) < likes)
    ratings = 3.0 + np.where(kind[users] == item_half[items], 1.0, -1.0) + rng.normal(0, 0.2, len(users))
    return pd.DataFrame({"user": users.astype(str), "item": items.astype(str), "rating": ratings})


def rmse(model: Recipe, test: Interactions) -> float:
    rows = np.repeat(np.arange(test.n_users), np.diff(test.matrix.indptr))
    return float(np.sqrt(np.mean((model.score(rows, test.matrix.indices) - test.values) ** 2)))


def test_implicit_factors_learn_from_which_items_were_rated(tmp_path) -> None:
    data = Interactions.from_frame(implicit_signal_frame(), user="user", item="item", value="rating")
    train, test = split_random(data, test_fraction=0.2, seed=0)
    model = create("svdpp", factors=4, epochs=10).fit(train)
    assert rmse(model, test) < 0.35, rmse(model, test)  # the ±1 offsets are learnt (their spread is 1)
    assert np.abs(model.implicit_factors_).max() > 0.01, "the implicit factors stayed at zero"
    loaded = Recipe.load(model.save(tmp_path / "svdpp"))
    np.testing.assert_array_equal(loaded.implicit_factors_, model.implicit_factors_)
    # fold-in: a new user who rated items of the second half highly is predicted to like that half
    new = sp_history(data, [str(j) for j in range(20, 30)], 4.0)
    top = model.recommend_from_history(new, k=10).ids[0]
    assert sum(int(raw) >= 20 for raw in data.item_vocab.raws(top)) >= 9


def sp_history(data: Interactions, items: list[str], rating: float):
    import scipy.sparse as sp

    cols = data.item_vocab.indices(items)
    return sp.csr_matrix((np.full(len(cols), rating), (np.zeros(len(cols), dtype=int), cols)),
                         shape=(1, data.n_items))


def test_rmse_on_movielens_100k_beats_svd() -> None:
    train, test = ml100k_split(seed=0)
    plus = rmse(create("svdpp").fit(train), test)
    plain = rmse(create("svd").fit(train), test)
    assert plus < 0.915 and plus < plain, (plus, plain)
