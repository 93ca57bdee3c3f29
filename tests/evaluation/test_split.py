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
