from datetime import UTC, datetime

import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.split import (
    PROTOCOLS,
    make_split,
    split_leave_last,
    split_random,
    split_temporal,
    split_users,
)
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


# ------------------------------------------------------------------------------ the other protocols


def pairs(data: Interactions) -> set[tuple[int, int]]:
    rows, cols = data.matrix.nonzero()
    return set(zip(rows.tolist(), cols.tolist(), strict=True))


def stamps_of(data: Interactions) -> dict[tuple[int, int], int]:
    rows, cols = data.matrix.nonzero()
    return dict(zip(zip(rows.tolist(), cols.tolist(), strict=True), data.timestamps.tolist(), strict=True))


def test_leave_last_holds_out_each_users_newest_pairs() -> None:
    data = synthetic_interactions(n_users=40, n_items=30)
    train, test = split_leave_last(data, n=2)
    assert not pairs(train) & pairs(test) and pairs(train) | pairs(test) == pairs(data)
    when = stamps_of(data)
    for user in range(data.n_users):
        held = [when[(user, i)] for i in test.user_history(user)]
        kept = [when[(user, i)] for i in train.user_history(user)]
        if len(data.user_history(user)) >= 3:
            assert len(held) == 2 and min(held) >= max(kept)
        else:
            assert held == []
    again = split_leave_last(data, n=2)[1]
    assert (again.matrix != test.matrix).nnz == 0


def test_temporal_cut_by_date_and_by_fraction() -> None:
    data = synthetic_interactions(n_users=40, n_items=30)
    when = stamps_of(data)
    cut = int(np.median(data.timestamps))
    train, test = split_temporal(data, at=cut)
    assert all(when[p] > cut for p in pairs(test)) and all(when[p] <= cut for p in pairs(train))
    assert not pairs(train) & pairs(test)
    by_date = split_temporal(data, at=datetime.fromtimestamp(cut, UTC).isoformat())[1]
    assert (by_date.matrix != test.matrix).nnz == 0
    split = make_split(data, "temporal", fraction=0.25)
    held = split.test.nnz + split.skipped_users  # users first seen after the cut are dropped, not leaked
    assert 0.15 * data.nnz < split.test.nnz <= 0.25 * data.nnz + 1 and held > 0
    assert np.all(np.diff(split.train.matrix.indptr)[split.evaluated_users] > 0)


def test_users_protocol_holds_out_whole_users() -> None:
    data = synthetic_interactions(n_users=50, n_items=30)
    train, test_input, test = split_users(data, test_users=10, input_fraction=0.8, seed=3)
    held = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
    assert len(held) == 10
    assert np.all(np.diff(train.matrix.indptr)[held] == 0), "held-out users must be absent from training"
    assert not pairs(test_input) & pairs(test)
    for user in held:
        everything = set(data.user_history(user).tolist())
        assert set(test_input.user_history(user).tolist()) | set(test.user_history(user).tolist()) == everything
        assert len(test.user_history(user)) == max(1, int(np.floor(len(everything) * 0.2 + 0.5)))
    assert train.nnz + test_input.nnz + test.nnz == data.nnz
    again = split_users(data, test_users=10, input_fraction=0.8, seed=3)[2]
    assert (again.matrix != test.matrix).nnz == 0
    assert (split_users(data, test_users=10, seed=4)[2].matrix != test.matrix).nnz > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_validation_never_touches_the_test_pairs(protocol: str) -> None:
    data = synthetic_interactions(n_users=60, n_items=30)
    options = {"temporal": {"fraction": 0.2}, "ratings-per-user": {"n": 2}}.get(protocol, {})
    split = make_split(data, protocol, **options)
    validation = split.validation()
    assert not pairs(validation.train) & pairs(split.test)
    assert not pairs(validation.test) & pairs(split.test)
    assert pairs(validation.train) | pairs(validation.test) | pairs(validation.test_input or validation.train) \
        <= pairs(split.train)
    description = split.describe()
    assert description["protocol"] == protocol and description["evaluated_users"] == len(split.evaluated_users)


def test_protocol_errors_name_the_value() -> None:
    data = synthetic_interactions()
    with pytest.raises(ConfigError, match="'by_time'.*random, leave-last, temporal, users"):
        make_split(data, "by_time")
    with pytest.raises(ConfigError, match="no option 'test_fraction'.*n, min_interactions"):
        make_split(data, "leave_last", test_fraction=0.2)
    with pytest.raises(ConfigError, match="exactly one"):
        make_split(data, "temporal")
    with pytest.raises(ConfigError, match="ISO date"):
        make_split(data, "temporal", at="last tuesday")
    with pytest.raises(ConfigError, match="n >= 1"):
        make_split(data, "leave_last", n=0)
    with pytest.raises(DataError, match="no timestamps"):
        make_split(Interactions.from_csr(sp.eye(3, format="csr")), "leave_last")
    with pytest.raises(DataError, match="no test interactions"):
        make_split(data, "temporal", at=2_000_000_000)
    with pytest.raises(DataError, match="eligible"):
        make_split(data, "users", test_users=1000)


def test_protocol_names_take_either_spelling() -> None:
    """``leave-last`` is the canonical name (hyphens, like recipe names); ``leave_last`` is the same protocol."""
    from recsmith.evaluation.split import protocol_name

    data = synthetic_interactions(n_users=40, n_items=30)
    hyphen, underscore = make_split(data, "leave-last", n=2), make_split(data, " leave_last", n=2)
    assert hyphen.protocol == underscore.protocol == "leave-last" == underscore.describe()["protocol"]
    assert (hyphen.test.matrix != underscore.test.matrix).nnz == 0
    assert underscore.validation().protocol == "leave-last"
    assert PROTOCOLS == ("random", "leave-last", "temporal", "users", "cold-items", "ratings-per-user")
    assert [protocol_name(name) for name in ("random", "leave_last", "leave-last", "users")] == \
        ["random", "leave-last", "leave-last", "users"]
    with pytest.raises(ConfigError, match="unknown protocol 'leave_first'; available: random, leave-last"):
        protocol_name("leave_first")
