import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.errors import ConfigError
from recsmith.evaluation import metrics
from recsmith.evaluation.metrics import compute_metrics, per_user_metrics

# user 0: relevant {1, 3}; recommended [1, 2, 3] -> hits at ranks 1 and 3
# user 1: relevant {0};    recommended [2, 0, -1] -> hit at rank 2
REC = np.array([[1, 2, 3], [2, 0, -1]])
TRUTH = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0]], dtype=np.float32))
ALL = ["precision@3", "recall@3", "ndcg@3", "map@3", "mrr@3", "hit_rate@3", "coverage@3", "ndcg@1"]


def test_hand_computed_values() -> None:
    per_user = per_user_metrics(REC, TRUTH, ALL)
    np.testing.assert_allclose(per_user["precision@3"], [2 / 3, 1 / 3])
    np.testing.assert_allclose(per_user["recall@3"], [1.0, 1.0])  # divided by min(k, |truth|)
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
    assert means["recall@2"] == pytest.approx((1 / 2 + 1 / 1) / 2)  # user 0: 1 hit of min(2, 2)
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
