import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.sampled import sample_negatives, sampled_metrics
from recsmith.evaluation.split import split_random
from recsmith.recipes import create
from recsmith.recipes.base import Recipe, RecipeParams
from recsmith.testing import synthetic_interactions

ALL = ["hit_rate@10", "ndcg@10", "mrr@10", "auc"]


class Oracle(Recipe):
    """Scores each user's held-out items ``sign`` and everything else 0 (not registered)."""

    name = "test-oracle"
    Params = RecipeParams

    def __init__(self, truth: sp.csr_matrix, sign: float = 1.0) -> None:
        super().__init__()
        self.truth = truth
        self.sign = sign

    def _fit(self, interactions: Interactions) -> None:
        pass

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        assert users is not None
        return self.sign * self.truth[users].toarray().astype(np.float32)


def skewed_split(seed: int = 0) -> tuple[Interactions, Interactions]:
    """1,000 users × 2,000 items, item i interacted with at rate 0.3 / (i + 1) ** 0.8 (a long tail)."""
    rng = np.random.default_rng(seed)
    rate = 0.3 / (np.arange(2000) + 1) ** 0.8
    dense = (rng.random((1000, 2000)) < rate).astype(np.float32)
    for _ in range(2):  # everybody has at least one pair to hold out and one to train on
        dense[np.arange(1000), rng.choice(2000, 1000, p=rate / rate.sum())] = 1.0
    return split_random(Interactions.from_csr(sp.csr_matrix(dense)), test_fraction=0.2, seed=seed)


def tiny_split() -> tuple[Interactions, Interactions]:
    """5 users × 6 items. Training popularity (users per item): 4, 3, 2, 2, 0, 1. User 0 trained on item 5
    and holds out item 2, so its never-interacted items are 0, 1, 3, 4 (popularity 4, 3, 2, 0)."""
    train = np.zeros((5, 6), dtype=np.float32)
    train[0, 5] = 1
    train[1, :4] = train[2, :4] = 1
    train[3, :2] = 1
    train[4, 0] = 1
    test = np.zeros((5, 6), dtype=np.float32)
    test[0, 2] = 1
    return Interactions.from_csr(train), Interactions.from_csr(test)


def test_hand_computed_case_with_a_tie() -> None:
    train, test = tiny_split()
    recipe = create("popularity").fit(train)
    # the positive (popularity 2) is below items 0 and 1, tied with item 3, above item 4: its rank is 3 or 4
    result = sampled_metrics(recipe, train, test, ["hit_rate@3", "hit_rate@2", "ndcg@3", "ndcg@4", "mrr@4", "auc"],
                             n_negatives=4)
    assert result["cases"] == 1
    assert result["protocol"] == "sampled: 4 uniform negatives"
    assert result["sampled_hit_rate@2"] == 0.0
    assert result["sampled_hit_rate@3"] == pytest.approx(0.5)
    assert result["sampled_ndcg@3"] == pytest.approx(0.5 * (1 / math.log2(4)))
    assert result["sampled_ndcg@4"] == pytest.approx(0.5 * (1 / math.log2(4) + 1 / math.log2(5)))
    assert result["sampled_mrr@4"] == pytest.approx(0.5 * (1 / 3 + 1 / 4))
    assert result["sampled_auc"] == pytest.approx((1 + 0.5) / 4)  # one below, one tied, of four


def test_popularity_sampling_never_draws_untrained_items() -> None:
    train, test = tiny_split()
    recipe = create("popularity").fit(train)
    # item 4 has no training users, so only items 0, 1, 3 can be drawn: one tie, no negative below
    result = sampled_metrics(recipe, train, test, ["auc"], n_negatives=3, sampling="popularity")
    assert result == {"sampled_auc": pytest.approx(0.5 / 3), "cases": 1,
                      "protocol": "sampled: 3 popularity negatives"}
    with pytest.raises(DataError, match="n_negatives=4 is more than.*as few as 3.*n_negatives <= 3"):
        sampled_metrics(recipe, train, test, ["auc"], n_negatives=4, sampling="popularity")
    with pytest.raises(DataError, match="n_negatives=5 is more than.*as few as 4"):
        sampled_metrics(recipe, train, test, ["auc"], n_negatives=5)


def test_oracle_and_anti_oracle() -> None:
    train, test = split_random(synthetic_interactions(n_users=150, n_items=300, density=0.05), seed=3)
    best = sampled_metrics(Oracle(test.matrix).fit(train), train, test, ALL, n_negatives=50)
    assert best["cases"] == test.matrix.nnz
    assert {key: best[key] for key in ("sampled_hit_rate@10", "sampled_ndcg@10", "sampled_mrr@10",
                                       "sampled_auc")} == {"sampled_hit_rate@10": 1.0, "sampled_ndcg@10": 1.0,
                                                           "sampled_mrr@10": 1.0, "sampled_auc": 1.0}
    worst = sampled_metrics(Oracle(test.matrix, sign=-1.0).fit(train), train, test, ALL + ["hit_rate@51"],
                            n_negatives=50)
    assert worst["sampled_auc"] == 0.0 and worst["sampled_hit_rate@10"] == 0.0 and worst["sampled_ndcg@10"] == 0.0
    assert worst["sampled_hit_rate@51"] == 1.0  # 50 negatives: the positive is always within 51


def test_popularity_scorer_auc_depends_on_how_negatives_are_drawn() -> None:
    train, test = skewed_split()
    recipe = create("popularity").fit(train)
    uniform = sampled_metrics(recipe, train, test, ALL, sampling="uniform", seed=1)
    popular = sampled_metrics(recipe, train, test, ALL, sampling="popularity", seed=1)
    assert uniform["protocol"] == "sampled: 100 uniform negatives"
    assert popular["protocol"] == "sampled: 100 popularity negatives"
    assert uniform["sampled_auc"] > 0.7  # uniform negatives are mostly tail items: popularity looks good
    assert 0.45 < popular["sampled_auc"] < 0.6  # negatives as popular as positives: close to chance
    assert uniform["sampled_hit_rate@10"] > popular["sampled_hit_rate@10"] + 0.15
    assert set(uniform) == {"sampled_hit_rate@10", "sampled_ndcg@10", "sampled_mrr@10", "sampled_auc", "cases",
                            "protocol"}


def test_constant_scorer_gets_chance_level_exactly() -> None:
    train, test = split_random(synthetic_interactions(n_users=80, n_items=200, density=0.05), seed=0)
    flat = create("popularity").fit(Interactions.from_csr(sp.csr_matrix(train.matrix.shape, dtype=np.float32)))
    result = sampled_metrics(flat, train, test, ["auc", "hit_rate@10", "mrr@100"], n_negatives=99)
    assert result["sampled_auc"] == pytest.approx(0.5)
    assert result["sampled_hit_rate@10"] == pytest.approx(10 / 100)
    assert result["sampled_mrr@100"] == pytest.approx(sum(1 / r for r in range(1, 101)) / 100)


def test_item_knn_beats_popularity_and_is_seeded() -> None:
    train, test = split_random(synthetic_interactions(n_users=300, n_items=400, density=0.1), seed=1)
    knn = create("item-knn").fit(train)
    first = sampled_metrics(knn, train, test, ALL, seed=7)
    assert sampled_metrics(knn, train, test, ALL, seed=7) == first
    assert sampled_metrics(knn, train, test, ALL, seed=8) != first
    popularity = sampled_metrics(create("popularity").fit(train), train, test, ALL, seed=7)
    assert first["sampled_auc"] > popularity["sampled_auc"] + 0.05


def test_sample_negatives_are_distinct_and_unseen() -> None:
    seen = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 1]], dtype=np.float32))
    users = np.array([0, 1, 0, 1] * 50)
    negatives = sample_negatives(seen, users, 5, seed=0)
    assert negatives.shape == (200, 5) and negatives.dtype == np.int32
    assert all(len(set(row)) == 5 for row in negatives.tolist())
    assert not np.isin(negatives[users == 0], [0, 1]).any()
    assert not np.isin(negatives[users == 1], [6, 7]).any()
    exhaustive = sample_negatives(seen, users[:2], 6, seed=0)  # all six unseen items
    assert [sorted(row) for row in exhaustive.tolist()] == [[2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5]]


def test_sample_negatives_frequencies() -> None:
    seen = sp.csr_matrix((1, 4), dtype=np.float32)
    users = np.zeros(40_000, dtype=np.int64)
    uniform = np.bincount(sample_negatives(seen, users, 1, seed=1).ravel(), minlength=4) / 40_000
    np.testing.assert_allclose(uniform, [0.25] * 4, atol=0.01)
    weighted = np.bincount(sample_negatives(seen, users, 1, weights=np.array([1.0, 2, 3, 4]), seed=1).ravel(),
                           minlength=4) / 40_000
    np.testing.assert_allclose(weighted, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    # two of three items drawn without replacement, weights 1, 1, 2: item 2 is drawn first with p 1/2, else
    # second with p 2/3 -> 5/6; item 0 first 1/4, after item 1 1/3, after item 2 1/2 -> 7/12
    pairs = sample_negatives(sp.csr_matrix((1, 3)), users, 2, weights=np.array([1.0, 1.0, 2.0]), seed=2)
    included = np.bincount(pairs.ravel(), minlength=3) / 40_000
    np.testing.assert_allclose(included, [7 / 12, 7 / 12, 5 / 6], atol=0.01)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sampling": "zipf"}, "unknown sampling 'zipf'; use one of: uniform, popularity"),
    ({"n_negatives": 0}, "n_negatives must be a positive integer"),
    ({"names": ["precision@10"]}, "unknown sampled metric 'precision@10'; use one of hit_rate@K, ndcg@K, mrr@K, auc"),
    ({"names": ["ndcg"]}, "needs a cut-off"),
    ({"names": ["ndcg@0"]}, "k must be positive"),
    ({"names": ["auc@10"]}, "unknown sampled metric 'auc@10'"),
])
def test_bad_options_are_config_errors(kwargs: dict, message: str) -> None:
    train, test = tiny_split()
    recipe = create("popularity").fit(train)
    names = kwargs.pop("names", ["auc"])
    with pytest.raises(ConfigError, match=message):
        sampled_metrics(recipe, train, test, names, **kwargs)


def test_bare_names_take_k_and_bad_splits_are_data_errors() -> None:
    train, test = tiny_split()
    recipe = create("popularity").fit(train)
    result = sampled_metrics(recipe, train, test, ["hit_rate", "ndcg"], k=3, n_negatives=4)
    assert result["sampled_hit_rate@3"] == pytest.approx(0.5)
    assert result["sampled_ndcg@3"] == pytest.approx(0.25)
    with pytest.raises(DataError, match="must share the vocabularies"):
        sampled_metrics(recipe, train, Interactions.from_csr(sp.csr_matrix((5, 7))), ["auc"], n_negatives=2)
    with pytest.raises(DataError, match="no positive pairs"):
        sampled_metrics(recipe, train, Interactions.from_csr(sp.csr_matrix((5, 6))), ["auc"], n_negatives=2)
