import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import DataError


def test_from_frame_sums_weights_keeps_latest_time_and_value() -> None:
    frame = pd.DataFrame({
        "user": ["a", "a", "b", "a"], "item": ["x", "x", "y", "z"], "t": [10, 30, 20, 5],
        "type": ["view", "purchase", "view", "dislike"], "rating": [1.0, 5.0, 3.0, 2.0],
    })
    data = Interactions.from_frame(frame, user="user", item="item", timestamp="t", event_type="type", value="rating",
                                   event_weights={"purchase": 5, "view": 1, "dislike": -2})
    assert (data.n_users, data.n_items, data.nnz) == (2, 3, 3)
    a, x, z = data.user_vocab.index("a"), data.item_vocab.index("x"), data.item_vocab.index("z")
    assert data.matrix[a, x] == 6.0 and data.matrix[a, z] == -2.0
    entry = data.matrix.indptr[a] + list(data.matrix.indices[data.matrix.indptr[a]:data.matrix.indptr[a + 1]]).index(x)
    assert data.timestamps[entry] == 30 and data.values[entry] == 5.0


def test_zero_weight_types_are_dropped_and_unlisted_weigh_one() -> None:
    data = Interactions.from_arrays(np.array(["u", "u"], dtype=object), np.array(["i", "j"], dtype=object),
                                    event_types=np.array(["impression", "click"], dtype=object),
                                    event_weights={"impression": 0})
    assert data.nnz == 1 and data.matrix.data.tolist() == [1.0]


def test_half_life_decay() -> None:
    day = 86_400
    data = Interactions.from_arrays(np.array(["u", "u"], dtype=object), np.array(["old", "new"], dtype=object),
                                    timestamps=np.array([0, 10 * day]), half_life_days=10)
    weights = dict(zip(data.item_vocab.raws(data.matrix.indices), data.matrix.data.tolist(), strict=True))
    assert weights == pytest.approx({"old": 0.5, "new": 1.0})
    with pytest.raises(DataError, match="needs timestamps"):
        Interactions.from_arrays(np.array(["u"], dtype=object), np.array(["i"], dtype=object), half_life_days=1)


def test_given_vocabularies_drop_unknown_ids() -> None:
    data = Interactions.from_arrays(np.array(["u", "v"], dtype=object), np.array(["i", "new"], dtype=object),
                                    user_vocab=Vocabulary(["u", "v"]), item_vocab=Vocabulary(["i"]))
    assert data.matrix.shape == (2, 1) and data.nnz == 1


def test_from_csr_and_errors() -> None:
    data = Interactions.from_csr(sp.csr_matrix(np.array([[1, 0], [2, 3]])))
    assert data.matrix.dtype == np.float32 and data.user_vocab.to_list() == ["0", "1"]
    assert data.user_history(1).tolist() == [0, 1]
    with pytest.raises(DataError, match="2-D"):
        Interactions.from_csr(np.zeros(3))
    with pytest.raises(DataError, match="items has 1 entries"):
        Interactions.from_arrays(np.array(["a", "b"], dtype=object), np.array(["x"], dtype=object))
    with pytest.raises(DataError, match="no column 'who'"):
        Interactions.from_frame(pd.DataFrame({"user": [1], "item": [2]}), user="who", item="item")


def test_from_arrays_rejects_bad_input() -> None:
    users, items = np.array(["a", "b"], dtype=object), np.array(["x", "y"], dtype=object)
    with pytest.raises(DataError, match="missing value.*position 1"):
        Interactions.from_arrays(users, items, timestamps=np.array([1.0, np.nan]))
    with pytest.raises(DataError, match="epoch seconds"):
        Interactions.from_arrays(users, items, timestamps=np.array(["soon", "later"], dtype=object))
    with pytest.raises(DataError, match="weights has a non-finite value"):
        Interactions.from_arrays(users, items, weights=np.array([1.0, np.inf]))
    with pytest.raises(DataError, match="missing id"):
        Interactions.from_arrays(np.array(["a", None], dtype=object), items)
    with pytest.raises(DataError, match="half_life_days must be positive"):
        Interactions.from_arrays(users, items, timestamps=np.array([1, 2]), half_life_days=0)
    with pytest.raises(DataError, match="column 'user' has a missing id at row 1"):
        Interactions.from_frame(pd.DataFrame({"user": ["a", None], "item": ["x", "y"]}), user="user", item="item")


def test_datetime_timestamps_become_epoch_seconds() -> None:
    frame = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["x", "y"],
                          "when": pd.to_datetime(["1970-01-02 00:00:00", "2024-01-01 00:00:05"], utc=True)})
    data = Interactions.from_frame(frame, timestamp="when")
    assert data.timestamps.dtype == np.int64
    assert sorted(data.timestamps.tolist()) == [86_400, 1_704_067_205]


def test_value_is_the_last_non_missing_one() -> None:
    # a rating then a later view without a value: the pair keeps the rating; a pair with no value gets NaN
    data = Interactions.from_arrays(np.array(["u", "u", "u"], dtype=object), np.array(["i", "i", "j"], dtype=object),
                                    timestamps=np.array([10, 20, 5]), event_values=np.array([4.0, np.nan, np.nan]))
    values = dict(zip(data.item_vocab.raws(data.matrix.indices), data.values.tolist(), strict=True))
    assert values["i"] == 4.0 and np.isnan(values["j"])
    assert data.matrix.data.tolist() == [2.0, 1.0] and data.timestamps.tolist() == [20, 5]


def test_from_csr_keeps_aligned_arrays_aligned_when_sorting_and_summing() -> None:
    # unsorted columns and a duplicate (0, 2) in COO order, with timestamps/values aligned to the entries
    coo = sp.coo_matrix((np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32),
                         (np.array([0, 0, 0, 1]), np.array([2, 0, 2, 1]))), shape=(2, 3))
    data = Interactions.from_csr(coo, timestamps=np.array([100, 200, 300, 400]), values=np.array([1, 2, 3, 4.0]))
    assert data.matrix.has_canonical_format
    assert data.matrix.indices.tolist() == [0, 2, 1]
    assert data.matrix.data.tolist() == [2.0, 4.0, 4.0]
    assert data.timestamps.tolist() == [200, 300, 400]
    assert data.values.tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(DataError, match="timestamps has 2 entries"):
        Interactions.from_csr(coo, timestamps=np.array([1, 2]))
    with pytest.raises(DataError, match="NaN"):
        Interactions.from_csr(sp.csr_matrix(np.array([[np.nan, 1.0]])))


def test_with_entries_and_with_matrix_share_vocabularies() -> None:
    frame = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"], "ts": [1, 2, 3]})
    data = Interactions.from_frame(frame, timestamp="ts")
    part = data.with_entries(np.array([True, False, True]))
    assert part.user_vocab is data.user_vocab and part.item_vocab is data.item_vocab
    assert part.nnz == 2 and part.timestamps.tolist() == [1, 3] and part.matrix.shape == data.matrix.shape
    other = data.with_matrix(sp.csr_matrix(np.array([[0, 5], [0, 0]], dtype=np.float32)))
    assert other.item_vocab is data.item_vocab and other.matrix[0, 1] == 5.0
    with pytest.raises(DataError, match="shape"):
        data.with_matrix(sp.eye(3, format="csr"))
    with pytest.raises(DataError, match="mask"):
        data.with_entries(np.array([True]))
    with pytest.raises(DataError, match="outside"):
        data.user_history(5)


def test_large_input_is_built_without_python_loops() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    users = rng.integers(0, 5_000, n).astype(str).astype(object)
    items = rng.integers(0, 2_000, n).astype(str).astype(object)
    types = rng.choice(np.array(["view", "buy"], dtype=object), n)
    data = Interactions.from_arrays(users, items, event_types=types, event_weights={"view": 1.0, "buy": 3.0})
    # the summed weights match a pandas group-by
    expected = pd.DataFrame({"u": users, "i": items, "w": np.where(types == "buy", 3.0, 1.0)}).groupby(
        ["u", "i"])["w"].sum()
    assert data.nnz == len(expected)
    coo = data.matrix.tocoo()
    got = pd.Series(coo.data, index=pd.MultiIndex.from_arrays(
        [data.user_vocab.ids[coo.row], data.item_vocab.ids[coo.col]], names=["u", "i"]))
    np.testing.assert_allclose(got.sort_index().to_numpy(), expected.sort_index().to_numpy(), rtol=1e-6)
