import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.errors import ConfigError
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
