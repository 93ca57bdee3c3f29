"""The training job's offline metrics fit feature-aware recipes on the group's feature tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsmith.datasets import load_dataset
from recsmith.evaluation.evaluate import evaluate_recipes
from recsmith.evaluation.split import split_random
from recsmith.jobs.training import load_training_data, metric_names, train_solution_version
from recsmith.recipes import create
from recsmith.settings import Settings
from recsmith.store.store import Store


@pytest.mark.slow
def test_offline_metrics_of_a_feature_recipe_use_the_item_features(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    store = Store.from_settings(settings)
    try:
        store.migrate()
        load_dataset(store, "ml-latest-small", "movies")
        version = train_solution_version(store, settings, "movies", "feature-popularity")
        data = load_training_data(store, "movies")
        train, test = split_random(data.interactions, test_fraction=0.2, seed=42)
        with_features = evaluate_recipes({"fp": create("feature-popularity")}, data.with_interactions(train), test,
                                         metrics=metric_names(10))[0]
        bare = evaluate_recipes({"fp": create("feature-popularity")}, train, test, metrics=metric_names(10))[0]
        assert version["metrics"]["ndcg@10"] == pytest.approx(with_features["ndcg@10"])
        assert with_features["ndcg@10"] != pytest.approx(bare["ndcg@10"])
    finally:
        store.close()
