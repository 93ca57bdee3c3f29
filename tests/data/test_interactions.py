import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import DataError, UnknownIdError


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


def test_vocabulary() -> None:
    vocab, codes = Vocabulary.from_values(np.array(["b", "a", "b"], dtype=object))
    assert vocab.to_list() == ["b", "a"] and codes.tolist() == [0, 1, 0] and codes.dtype == np.int32
    assert "a" in vocab and "z" not in vocab
    assert vocab.indices(["a", "z"], missing="ignore").tolist() == [1, -1]
    assert vocab.raws([1, -1]) == ["a", None]
    with pytest.raises(UnknownIdError, match="'z'"):
        vocab.index("z")
    with pytest.raises(UnknownIdError):
        vocab.indices(["z"])
    with pytest.raises(DataError, match="'x'"):
        Vocabulary(["x", "y", "x"])
    assert Vocabulary.from_list(vocab.to_list()) == vocab
