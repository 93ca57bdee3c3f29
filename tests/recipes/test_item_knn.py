import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError
from recsmith.recipes import available, create
from recsmith.testing import RecipeContract, datasets_dir


class TestItemKNNContract(RecipeContract):
    recipe_name = "item-knn"
    min_ndcg = 0.33


class TestItemKNNCosineContract(RecipeContract):
    recipe_name = "item-knn"
    params = {"weighting": "none", "neighbors": 20}
    min_ndcg = 0.33


def test_library_use_without_a_store() -> None:
    x = sp.random(100, 50, density=0.1, format="csr", random_state=0)
    recs = create("item-knn").fit(Interactions.from_csr(x)).recommend(np.arange(10), k=10)
    assert recs.ids.shape == (10, 10) and (recs.ids >= 0).all()


def test_similar_items_are_co_consumed() -> None:
    # items 0 and 1 always together, 2 and 3 always together
    dense = np.zeros((6, 4), dtype=np.float32)
    dense[:3, [0, 1]] = 1
    dense[3:, [2, 3]] = 1
    recipe = create("item-knn", weighting="none").fit(Interactions.from_csr(sp.csr_matrix(dense)))
    similar = recipe.similar_items([0, 2], k=3)
    assert similar.ids[:, 0].tolist() == [1, 3]
    assert (similar.ids[:, 1:] == -1).all()  # nothing else co-occurs


def test_similar_movies_on_movielens() -> None:
    folder = datasets_dir() / "ml-100k"
    if not (folder / "u.data").is_file():
        pytest.skip("ml-100k absent")
    ratings = pd.read_csv(folder / "u.data", sep="\t", names=["u", "i", "r", "t"])
    titles = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1")[[0, 1]]
    title = dict(zip(titles[0].astype(str), titles[1], strict=True))
    data = Interactions.from_frame(ratings, user="u", item="i")
    recipe = create("item-knn").fit(data)
    star_wars = data.item_vocab.index("50")
    neighbours = [title[data.item_vocab.raw(i)] for i in recipe.similar_items([star_wars], k=5).ids[0]]
    assert any("Return of the Jedi" in t or "Empire Strikes Back" in t for t in neighbours), neighbours


def test_negative_feedback_pushes_neighbours_down() -> None:
    dense = np.zeros((6, 4), dtype=np.float32)
    dense[:3, [0, 1]] = 1
    dense[3:, [2, 3]] = 1
    recipe = create("item-knn", weighting="none").fit(Interactions.from_csr(sp.csr_matrix(dense)))
    history = sp.csr_matrix(np.array([[0, 0, -1, 0]], dtype=np.float32))
    recs = recipe.recommend_from_history(history, k=4, exclude_seen=False)
    assert recs.ids[0, -1] == 3  # disliking 2 puts its neighbour 3 last


def test_bad_params_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="neighbors"):
        create("item-knn", neighbors=0)
    with pytest.raises(ConfigError, match="colour"):
        create("item-knn", colour="blue")
    with pytest.raises(ConfigError, match="item-knn"):
        create("item-cnn")
    assert {"item-knn", "popularity"} <= set(available())


def test_popularity_has_no_similar_items() -> None:
    recipe = create("popularity").fit(Interactions.from_csr(sp.eye(3, format="csr")))
    with pytest.raises(ConfigError, match="item-knn"):
        recipe.similar_items([0])


def test_similarity_is_shrunk_cosine() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 8)) < 0.4).astype(np.float32)
    recipe = create("item-knn", weighting="none", shrink=2.0, neighbors=8).fit(
        Interactions.from_csr(sp.csr_matrix(dense)))
    norms = np.linalg.norm(dense, axis=0)
    expected = dense.T @ dense / (np.outer(norms, norms) + 2.0)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(recipe.similarity_.toarray(), expected, rtol=1e-5, atol=1e-7)
    history = np.array([[1, 0, 1, 0, 0, 0, 0, 0]], dtype=np.float32)
    recs = recipe.recommend_from_history(sp.csr_matrix(history), k=8, exclude_seen=False)
    scores = (history @ expected)[0]
    valid = recs.ids[0] >= 0
    np.testing.assert_allclose(recs.scores[0][valid], scores[recs.ids[0][valid]], rtol=1e-5)


def test_neighbors_caps_each_row() -> None:
    x = sp.random(200, 60, density=0.2, format="csr", random_state=3)
    recipe = create("item-knn", neighbors=5).fit(Interactions.from_csr(x))
    assert np.diff(recipe.similarity_.indptr).max() <= 5


def test_weighting_choices_are_listed() -> None:
    with pytest.raises(ConfigError, match="'none', 'bm25' or 'tfidf'"):
        create("item-knn", weighting="idf")
    for weighting in ("none", "bm25", "tfidf"):
        recs = create("item-knn", weighting=weighting).fit(
            Interactions.from_csr(sp.random(40, 20, density=0.3, format="csr", random_state=0))).recommend([0], k=3)
        assert (recs.ids >= 0).all()
