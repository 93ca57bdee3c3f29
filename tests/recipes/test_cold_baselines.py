"""The cold-start baselines: ``random`` and ``feature-popularity`` (contract suite, formula, new items, artifacts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsmith.data.training import FeatureTable, TrainingData
from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import DataError
from recsmith.recipes import create, load_recipe
from recsmith.testing import RecipeContract


class TestRandomContract(RecipeContract):
    recipe_name = "random"
    min_ndcg = 0.0


class TestFeaturePopularityContract(RecipeContract):
    recipe_name = "feature-popularity"
    min_ndcg = 0.1


def genre_data() -> TrainingData:
    """Four users, five movies; genres Drama (m1, m2, m5), Comedy (m3, m4), War (m2)."""
    events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c", "d", "d", "d"],
                           "item_id": ["m1", "m2", "m1", "m3", "m4", "m1", "m2", "m5"]})
    items = pd.DataFrame({"item_id": ["m1", "m2", "m3", "m4", "m5"],
                          "GENRES": ["Drama", "Drama|War", "Comedy", "Comedy", "Drama"]})
    return TrainingData.from_frame(events, items=items)


def new_items(records: dict[str, dict[str, str]]) -> FeatureTable:
    return FeatureTable.from_records(records, Vocabulary(list(records)), {"type": "record", "name": "Items", "fields": [
        {"name": "ITEM_ID", "type": "string"}, {"name": "GENRES", "type": ["null", "string"], "categorical": True}]})


def test_feature_popularity_follows_its_formula() -> None:
    data = genre_data()
    recipe = create("feature-popularity", smoothing=1.0).fit(data)
    # positive interactions: Drama m1 x3 + m2 x2 + m5 = 6; War m2 x2 = 2; Comedy m3 + m4 = 2; total 10
    items = data.item_vocab
    categories = list(recipe.category_names_)
    pop = dict(zip(categories, recipe.popularity_.tolist(), strict=True))
    assert pop == pytest.approx({"Comedy": 0.2, "Drama": 0.6, "War": 0.2})
    user = data.user_vocab.index("c")  # one Comedy item: affinity Comedy (1+1)/(1+1)=1, others 1/2
    scores = recipe.score(np.full(5, user), items.indices(["m1", "m2", "m3", "m4", "m5"]))
    expected = [0.6 * 0.5, 0.6 * 0.5 + 0.2 * 0.5, 0.2 * 1.0, 0.2 * 1.0, 0.6 * 0.5]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_mean_aggregate_divides_by_the_number_of_categories() -> None:
    data = genre_data()
    summed = create("feature-popularity").fit(data)
    mean = create("feature-popularity", aggregate="mean").fit(data)
    m2 = data.item_vocab.indices(["m2"])  # Drama|War
    np.testing.assert_allclose(mean.score(np.zeros(1), m2), summed.score(np.zeros(1), m2) / 2, rtol=1e-6)
    table = new_items({"n1": {"GENRES": "Drama|War"}})
    np.testing.assert_allclose(mean.score_new_items(mean.train_matrix_[:1], np.zeros(1), table),
                               summed.score_new_items(summed.train_matrix_[:1], np.zeros(1), table) / 2, rtol=1e-6)


def test_a_user_without_history_gets_plain_category_popularity() -> None:
    recipe = create("feature-popularity").fit(genre_data())
    empty = sp.csr_matrix((1, 5), dtype=np.float32)
    scores = recipe.score_new_items(empty, None, new_items({"n1": {"GENRES": "Drama"}, "n2": {"GENRES": "Comedy"},
                                                            "n3": {"GENRES": "Drama|War"}}))
    np.testing.assert_allclose(scores[0], [0.6, 0.2, 0.8], rtol=1e-6)


def test_new_items_score_like_known_items_of_their_genres() -> None:
    data = genre_data()
    recipe = create("feature-popularity").fit(data)
    user = data.user_vocab.index("c")
    history = recipe.train_matrix_[[user]]
    table = new_items({"n1": {"GENRES": "Comedy"}, "n2": {"GENRES": "Drama|War"}, "n3": {"GENRES": "Anime"},
                       "n4": {}})
    scores = recipe.score_new_items(history, np.array([user]), table)
    known = recipe.score(np.full(2, user), data.item_vocab.indices(["m3", "m2"]))
    np.testing.assert_allclose(scores[0, :2], known, rtol=1e-6)
    assert scores[0, 2] == 0.0 and scores[0, 3] == 0.0  # a category unknown at training counts for nothing


def test_field_param_and_clear_errors() -> None:
    data = genre_data()
    assert create("feature-popularity", field="GENRES").fit(data).category_names_.tolist() == ["Comedy", "Drama",
                                                                                              "War"]
    with pytest.raises(DataError, match="YEAR.*GENRES"):
        create("feature-popularity", field="YEAR").fit(data)
    with pytest.raises(DataError, match="no features"):
        create("feature-popularity", field="GENRES").fit(data.interactions)


def test_feature_popularity_round_trip_keeps_the_categories(tmp_path: Path) -> None:
    data = genre_data()
    recipe = create("feature-popularity").fit(data)
    path = recipe.save(tmp_path / "model")
    table = new_items({"n1": {"GENRES": "Comedy"}, "n2": {"GENRES": "War"}})
    history = recipe.train_matrix_[:2]
    for mmap in (False, True):
        loaded = load_recipe(path, mmap=mmap)
        np.testing.assert_array_equal(loaded.score_new_items(history, np.arange(2), table),
                                      recipe.score_new_items(history, np.arange(2), table))
        assert loaded.category_names_.tolist() == ["Comedy", "Drama", "War"]


def test_random_is_seeded_and_scores_new_items() -> None:
    data = genre_data()
    first = create("random", seed=1).fit(data)
    again = create("random", seed=1).fit(data)
    other = create("random", seed=2).fit(data)
    users = np.arange(4)
    np.testing.assert_array_equal(first.recommend(users, k=5, exclude_seen=False).scores,
                                  again.recommend(users, k=5, exclude_seen=False).scores)
    assert not np.array_equal(first.recommend(users, k=5, exclude_seen=False).scores,
                              other.recommend(users, k=5, exclude_seen=False).scores)
    scores = first.score_new_items(first.train_matrix_[:2], np.arange(2), new_items({"n1": {}, "n2": {}, "n3": {}}))
    assert scores.shape == (2, 3) and scores.dtype == np.float32 and ((scores >= 0) & (scores < 1)).all()
    assert create("random").tags.cold_start_items and create("feature-popularity").tags.cold_start_items
