import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.errors import ConfigError, DataError
from recsmith.evaluation import metrics
from recsmith.evaluation.metrics import compute_metrics, per_user_metrics

# user 0: relevant {1, 3}; recommended [1, 2, 3] -> hits at ranks 1 and 3
# user 1: relevant {0};    recommended [2, 0, -1] -> hit at rank 2
REC = np.array([[1, 2, 3], [2, 0, -1]])
TRUTH = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0]], dtype=np.float32))
ALL = ["precision@3", "recall@3", "recall_capped@3", "ndcg@3", "map@3", "mrr@3", "hit_rate@3", "coverage@3",
       "ndcg@1"]


def test_hand_computed_values() -> None:
    per_user = per_user_metrics(REC, TRUTH, ALL)
    np.testing.assert_allclose(per_user["precision@3"], [2 / 3, 1 / 3])
    np.testing.assert_allclose(per_user["recall@3"], [1.0, 1.0])  # every held-out item found
    np.testing.assert_allclose(per_user["recall_capped@3"], [1.0, 1.0])
    dcg0 = 1 + 1 / math.log2(4)
    idcg0 = 1 + 1 / math.log2(3)
    np.testing.assert_allclose(per_user["ndcg@3"], [dcg0 / idcg0, (1 / math.log2(3)) / 1.0])
    np.testing.assert_allclose(per_user["map@3"], [(1 + 2 / 3) / 2, 0.5])
    np.testing.assert_allclose(per_user["mrr@3"], [1.0, 0.5])
    np.testing.assert_allclose(per_user["hit_rate@3"], [1.0, 1.0])
    np.testing.assert_allclose(per_user["ndcg@1"], [1.0, 0.0])
    means = compute_metrics(REC, TRUTH, ALL)
    assert means["coverage@3"] == pytest.approx(4 / 5)  # items 0, 1, 2, 3 recommended; -1 ignored
    assert means["precision@3"] == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["ndcg", "ndcg@0", "ndcg@-1", "ndcg@x", "accuracy@10"])
def test_bad_metric_names(name: str) -> None:
    with pytest.raises(ConfigError, match="ndcg|precision|k must be positive|integer"):
        compute_metrics(REC, TRUTH, [name])


def test_k_larger_than_recommendations() -> None:
    with pytest.raises(ConfigError, match="needs 10 recommendations"):
        compute_metrics(REC, TRUTH, ["ndcg@10"])


def test_bare_names_take_k_and_keys_are_full_names() -> None:
    means = compute_metrics(REC, TRUTH, ["ndcg", "recall@2", "coverage"], k=3, n_items=10)
    assert set(means) == {"ndcg@3", "recall@2", "coverage@3"}
    assert means["coverage@3"] == pytest.approx(4 / 10)  # n_items overrides the truth's width
    assert means["recall@2"] == pytest.approx((1 / 2 + 1 / 1) / 2)  # user 0: 1 hit of 2
    assert means["ndcg@3"] == pytest.approx(compute_metrics(REC, TRUTH, ["ndcg@3"])["ndcg@3"])


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_bad_k(k: object) -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        compute_metrics(REC, TRUTH, ["ndcg"], k=k)  # type: ignore[arg-type]


def test_bad_shapes() -> None:
    with pytest.raises(ConfigError, match="2-D integer"):
        compute_metrics(REC[0], TRUTH, ["ndcg@1"])
    with pytest.raises(ConfigError, match="2 recommendation rows for 1 truth rows"):
        compute_metrics(REC, TRUTH[:1], ["ndcg@1"])


def test_users_without_truth_score_zero_and_padding_never_hits() -> None:
    truth = sp.csr_matrix(np.array([[0, 0, 0], [1, 0, 0]], dtype=np.float32))
    rec = np.array([[0, 1], [-1, -1]])
    per_user = per_user_metrics(rec, truth, ["ndcg@2", "map@2", "mrr@2", "hit_rate@2"])
    for values in per_user.values():
        assert values.tolist() == [0.0, 0.0]


def test_chunked_hits_match_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    truth = sp.random(50, 30, density=0.2, format="csr", random_state=1)
    rec = np.argsort(-rng.random((50, 30)), axis=1)[:, :5]
    names = ["precision@5", "ndcg@5", "map@5"]
    whole = compute_metrics(rec, truth, names)
    monkeypatch.setattr(metrics, "HIT_CHUNK_USERS", 7)
    assert compute_metrics(rec, truth, names) == pytest.approx(whole)
    # and a direct check of precision against a per-user set intersection
    expected = np.mean([len(set(r) & set(truth[u].indices)) / 5 for u, r in enumerate(rec.tolist())])
    assert whole["precision@5"] == pytest.approx(expected)


# ------------------------------------------------------------------------------------------ novelty
# shares of training users: item 0 1/2, item 1 1/4, item 2 1/8, item 3 all users, item 4 nobody
SHARES = np.array([0.5, 0.25, 0.125, 1.0, 0.0])


def test_novelty_is_mean_self_information_of_the_recommended_items() -> None:
    per_user = per_user_metrics(REC, TRUTH, ["novelty@3", "novelty@1"], item_popularity=SHARES)
    # user 0: items 1, 2, 3 -> (2 + 3 + 0) / 3 bits; user 1: items 2, 0 (and padding) -> (3 + 1) / 2
    np.testing.assert_allclose(per_user["novelty@3"], [5 / 3, 2.0])
    np.testing.assert_allclose(per_user["novelty@1"], [2.0, 3.0])
    means = compute_metrics(REC, TRUTH, ["novelty", "ndcg"], k=3, item_popularity=SHARES)
    assert means["novelty@3"] == pytest.approx((5 / 3 + 2.0) / 2)
    assert means["ndcg@3"] == pytest.approx(compute_metrics(REC, TRUTH, ["ndcg@3"])["ndcg@3"])


def test_novelty_ignores_truth_and_counts_unseen_items_as_the_rarest() -> None:
    truth = sp.csr_matrix((2, 5), dtype=np.float32)  # nobody has held-out items
    rec = np.array([[4, 3], [-1, -1]])
    per_user = per_user_metrics(rec, truth, ["novelty@2"], item_popularity=SHARES)
    # item 4 has share 0: it counts as the rarest item with a positive share (1/8 -> 3 bits); no recs -> 0
    np.testing.assert_allclose(per_user["novelty@2"], [(3.0 + 0.0) / 2, 0.0])


def test_popularity_shares_count_users_with_positive_interactions() -> None:
    train = sp.csr_matrix(np.array([[1, 0, 2, -1], [1, 0, 0, 1], [0, 0, 1, 0], [5, 0, 0, 0]], dtype=np.float32))
    np.testing.assert_allclose(metrics.popularity_shares(train), [3 / 4, 0.0, 2 / 4, 1 / 4])  # -1 is not a share
    per_user = per_user_metrics(np.array([[0, 2]]), sp.csr_matrix((1, 4)), ["novelty@2"],
                                item_popularity=metrics.popularity_shares(train))
    np.testing.assert_allclose(per_user["novelty@2"], [(-math.log2(0.75) + 1.0) / 2])
    with pytest.raises(DataError, match="users × items"):
        metrics.popularity_shares(np.ones(3))


def test_novelty_without_popularity_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="novelty@3 needs item_popularity"):
        compute_metrics(REC, TRUTH, ["ndcg@3", "novelty@3"])
    with pytest.raises(ConfigError, match="novelty@3 needs item_popularity"):
        per_user_metrics(REC, TRUTH, ["novelty"], k=3)
    assert metrics.parse_metric("novelty@10") == ("novelty", 10)


@pytest.mark.parametrize(("shares", "message"), [
    (np.array([0.5, 0.25, 0.125, 1.5, 0.0]), r"shares in \[0, 1\]; item 3 has 1.5"),
    (np.array([0.5, np.nan, 0.125, 1.0, 0.0]), "item 1 has nan"),
    (np.array([0.5, 0.25, 0.125]), "has 3 entries but the recommendations hold item 3"),
    (np.zeros(5), "all zeros"),
    (np.ones((5, 1)), "must be 1-D"),
])
def test_bad_item_popularity_is_a_data_error(shares: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        compute_metrics(REC, TRUTH, ["novelty@3"], item_popularity=shares)


def test_positional_signatures_still_work() -> None:
    means = compute_metrics(REC, TRUTH, ["coverage"], 3, 8)
    assert means == {"coverage@3": pytest.approx(4 / 8)}
    assert set(per_user_metrics(REC, TRUTH, ["mrr"], 2)) == {"mrr@2"}


# ------------------------------------------------------------------------------------ rating metrics
def test_rating_metrics_hand_computed() -> None:
    # errors 0, -1, -2 -> squared 0, 1, 4 -> rmse sqrt(5 / 3); absolute 0, 1, 2 -> mae 1
    result = metrics.rating_metrics(np.array([1.0, 2.0, 3.0]), [1, 3, 5])
    assert result == {"rmse": pytest.approx(math.sqrt(5 / 3)), "mae": pytest.approx(1.0)}
    assert metrics.rating_metrics([4.5], [4.5]) == {"rmse": 0.0, "mae": 0.0}


@pytest.mark.parametrize(("predicted", "actual", "message"), [
    ([1.0, 2.0], [1.0], "predicted has 2 ratings, actual 1"),
    ([1.0, np.nan], [1.0, 2.0], "predicted ratings hold 1 NaN or infinite values"),
    ([1.0, 2.0], [np.inf, 2.0], "actual ratings hold 1 NaN or infinite values .first at position 0"),
    ([], [], "no ratings"),
    (["a"], [1.0], "must be numbers"),
])
def test_rating_metrics_reject_bad_input(predicted: list, actual: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        metrics.rating_metrics(predicted, actual)


def test_recall_and_recall_capped_are_two_metrics() -> None:
    """recall@k divides the hits by all the held-out items, recall_capped@k by min(k, |truth|)."""
    truth = sp.csr_matrix(np.array([[1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=np.float32))
    rec = np.array([[0, 1], [5, 0]])  # user 0: 2 hits of 4 held out; user 1: 1 hit of 1
    per_user = per_user_metrics(rec, truth, ["recall@2", "recall_capped@2", "recall@1", "recall_capped@1"])
    np.testing.assert_allclose(per_user["recall@2"], [2 / 4, 1.0])
    np.testing.assert_allclose(per_user["recall_capped@2"], [2 / 2, 1.0])
    np.testing.assert_allclose(per_user["recall@1"], [1 / 4, 0.0])
    np.testing.assert_allclose(per_user["recall_capped@1"], [1 / 1, 0.0])
    assert {"recall", "recall_capped"} <= set(metrics.METRICS)
    assert "min(k" in metrics.DEFINITIONS["recall_capped"] and "min(k" not in metrics.DEFINITIONS["recall"]
    assert "recall_capped@k" in metrics.per_user_metrics.__doc__


def test_metric_names_take_either_spelling() -> None:
    spelt = compute_metrics(REC, TRUTH, ["hit-rate@3", "recall-capped", " ndcg@3"], k=2)
    assert list(spelt) == ["hit_rate@3", "recall_capped@2", "ndcg@3"]
    assert spelt == compute_metrics(REC, TRUTH, ["hit_rate@3", "recall_capped@2", "ndcg@3"])
    assert metrics.parse_metric("hit-rate@10") == ("hit_rate", 10)
    assert metrics.full_names(["hit-rate", "map@5"], 10) == ["hit_rate@10", "map@5"]
    with pytest.raises(ConfigError, match="unknown metric 'hit-ratio@3'"):
        compute_metrics(REC, TRUTH, ["hit-ratio@3"])
