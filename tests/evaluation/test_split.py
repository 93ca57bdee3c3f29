import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.split import split_random
from recsmith.testing import synthetic_interactions


def test_random_split_is_per_user_disjoint_and_seeded() -> None:
    data = synthetic_interactions(n_users=50, n_items=40)
    train, test = split_random(data, test_fraction=0.2, seed=1)
    assert train.nnz + test.nnz == data.nnz
    assert (train.matrix.multiply(test.matrix)).nnz == 0
    for user in range(data.n_users):
        n = len(data.user_history(user))
        assert len(test.user_history(user)) == (min(int(np.floor(n * 0.2 + 0.5)), n - 1) if n >= 2 else 0)
    again = split_random(data, test_fraction=0.2, seed=1)[1]
    assert (again.matrix != test.matrix).nnz == 0
    other = split_random(data, test_fraction=0.2, seed=2)[1]
    assert (other.matrix != test.matrix).nnz > 0


def test_negative_pairs_are_never_held_out() -> None:
    dense = np.array([[1, 1, -1, 1, 1], [1, -1, -1, 1, 1]], dtype=np.float32)
    _, test = split_random(Interactions.from_csr(sp.csr_matrix(dense)), test_fraction=0.5, seed=0)
    assert (test.matrix.data > 0).all()


def test_bad_fraction_and_too_small() -> None:
    data = synthetic_interactions()
    with pytest.raises(ConfigError, match="1.5"):
        split_random(data, test_fraction=1.5)
    with pytest.raises(DataError, match="too small"):
        split_random(Interactions.from_csr(sp.eye(3, format="csr")), test_fraction=0.2)


def test_short_histories_stay_in_train_and_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    dense = np.zeros((4, 6), dtype=np.float32)
    dense[0, :5] = 1  # 5 pairs: one held out
    dense[1, :5] = 1
    dense[2, 0] = 1  # a single pair: kept in train
    dense[3, :2] = 1  # 2 pairs < min_interactions=3: kept in train
    data = Interactions.from_csr(sp.csr_matrix(dense))
    with caplog.at_level("INFO", logger="recsmith.evaluation.split"):
        train, test = split_random(data, test_fraction=0.2, seed=0, min_interactions=3)
    assert np.diff(test.matrix.indptr).tolist() == [1, 1, 0, 0]
    assert train.user_history(2).tolist() == [0] and train.user_history(3).tolist() == [0, 1]
    assert "2 users" in caplog.text
    assert train.user_vocab is data.user_vocab and test.item_vocab is data.item_vocab


def test_split_keeps_timestamps_and_values_aligned() -> None:
    data = synthetic_interactions(n_users=30, n_items=20)
    stamp_of = {(u, i): t for u, i, t in zip(*data.matrix.nonzero(), data.timestamps, strict=True)}
    train, test = split_random(data, seed=3)
    for part in (train, test):
        rows, cols = part.matrix.nonzero()
        assert [stamp_of[(u, i)] for u, i in zip(rows, cols, strict=True)] == part.timestamps.tolist()
