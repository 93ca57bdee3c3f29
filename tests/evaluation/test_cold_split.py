"""The cold-items protocol: held-out items with all their interactions, ranked among themselves from features."""

from __future__ import annotations

import numpy as np
import pytest

from recsmith.data.training import FeatureTable, TrainingData
from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.evaluate import evaluate_recipes, rank_new_items
from recsmith.evaluation.experiment import Experiment
from recsmith.evaluation.split import make_split, split_cold_items
from recsmith.jobs.evaluation import run_experiment
from recsmith.recipes import create
from recsmith.testing import synthetic_interactions


def genre_data(n_users: int = 80, n_items: int = 60) -> TrainingData:
    """The synthetic two-taste set, with each item's taste group as its genre (even items Even, odd Odd)."""
    interactions = synthetic_interactions(n_users=n_users, n_items=n_items, seed=3)
    records = {str(raw): {"GENRES": "Even" if index % 2 == 0 else "Odd"}
               for index, raw in enumerate(interactions.item_vocab.ids)}
    return TrainingData(interactions, item_features=FeatureTable.from_records(records, interactions.item_vocab))


def test_items_are_held_out_with_all_their_interactions() -> None:
    data = genre_data()
    split = make_split(data.interactions, "cold-items", fraction=0.1, seed=7)
    cold = split.cold_items
    assert split.protocol == "cold-items" and len(cold) == 6 and (np.diff(cold) > 0).all()
    assert split.train.matrix.shape == data.interactions.matrix.shape  # the full item vocabulary
    assert split.train.matrix[:, cold].nnz == 0  # their columns are empty
    assert set(split.test.matrix.indices.tolist()) == set(cold.tolist())
    assert split.test.nnz == data.interactions.matrix[:, cold].nnz  # every (positive) pair of theirs
    assert split.train.nnz + split.test.nnz == data.interactions.nnz
    assert split.describe()["cold_items"] == 6
    again = make_split(data.interactions, "cold-items", fraction=0.1, seed=7)
    np.testing.assert_array_equal(again.cold_items, cold)
    assert not np.array_equal(make_split(data.interactions, "cold_items", seed=8).cold_items, cold)
    train, test, items = split_cold_items(data.interactions, fraction=0.1, seed=7)
    np.testing.assert_array_equal(items, cold)
    validation = split.validation()
    assert not set(validation.cold_items.tolist()) & set(cold.tolist())  # held-out items have nothing to hold


def test_bad_options_name_the_problem() -> None:
    data = genre_data()
    with pytest.raises(ConfigError, match="fraction must be between 0 and 1"):
        make_split(data.interactions, "cold-items", fraction=1.5)
    with pytest.raises(ConfigError, match="has no option 'test_users'.*fraction, seed"):
        make_split(data.interactions, "cold-items", test_users=0.2)


def test_the_ranking_is_of_the_held_out_items_and_features_help() -> None:
    data = genre_data()
    experiment = Experiment(recipes=[{"recipe": "feature-popularity"}, {"recipe": "random"}], protocol="cold-items",
                            split={"fraction": 0.2, "seed": 1})
    assert experiment.metric_names() == ["ndcg@10", "recall@20"]
    run = run_experiment(data, experiment, seed=0)
    rows = {row["recipe"]: row for row in run.rows}
    cold = set(run.split.cold_items.tolist())
    for row in rows.values():
        ids = row["rec_ids"]
        assert set(ids[ids >= 0].tolist()) <= cold
        assert ((ids >= 0).sum(axis=1) == len(cold)).all()  # all of them, not sampled
    assert rows["feature-popularity"]["ndcg@10"] > rows["random"]["ndcg@10"] + 0.1, rows
    assert run.to_json()["split"]["cold_items"] == len(cold)


def test_score_new_items_ranks_as_recommend_over_the_empty_columns() -> None:
    """For a recipe scoring items from features, the protocol's path (score_new_items over the held-out rows of
    the feature table) gives the ranking that recommend(candidates=held-out items) gives."""
    data = genre_data()
    split = make_split(data.interactions, "cold-items", fraction=0.2, seed=1)
    recipe = create("feature-popularity").fit(data.with_interactions(split.train))
    users = split.evaluated_users
    cold = split.cold_items
    protocol = rank_new_items(recipe, split.train.matrix, users, cold, data.item_features.take(cold), len(cold))
    plain = recipe.recommend(users, len(cold), candidates=cold)
    np.testing.assert_allclose(protocol.scores, plain.scores, rtol=1e-5)


def test_recipes_that_cannot_rank_unseen_items_are_refused() -> None:
    with pytest.raises(ConfigError, match="item-knn cannot score.*feature-popularity.*random"):
        Experiment.parse({"recipes": [{"recipe": "item-knn"}, {"recipe": "random"}], "protocol": "cold-items"})
    data = genre_data()
    split = make_split(data.interactions, "cold-items")
    with pytest.raises(ConfigError, match="ease cannot score"):
        evaluate_recipes({"ease": create("ease")}, data.with_interactions(split.train), split.test,
                         cold_items=split.cold_items)
    with pytest.raises(ConfigError, match="sampled negatives"):
        Experiment.parse({"recipes": [{"recipe": "random"}], "protocol": "cold-items", "sampled_negatives": 100})


def test_items_without_features_fail_clearly() -> None:
    data = genre_data()
    experiment = Experiment.parse({"recipes": [{"recipe": "random"}], "protocol": "cold-items"})
    with pytest.raises(DataError, match="from their features, and the items have none"):
        run_experiment(data.interactions, experiment)


def test_ranking_protocols_fit_on_the_feature_tables() -> None:
    data = genre_data()
    split = make_split(data.interactions, "random")
    recipes = {"feature-popularity": create("feature-popularity")}
    evaluate_recipes(recipes, data.with_interactions(split.train), split.test)
    assert recipes["feature-popularity"].category_names_.tolist() == ["Even", "Odd"]
