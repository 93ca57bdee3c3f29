import numpy as np
import pytest

from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import ConfigError, DataError, UnknownIdError


def test_from_values_factorises_in_order_of_appearance() -> None:
    vocab, codes = Vocabulary.from_values(np.array(["b", "a", "b"], dtype=object))
    assert vocab.to_list() == ["b", "a"] and codes.tolist() == [0, 1, 0] and codes.dtype == np.int32
    assert vocab.ids.dtype == object and len(vocab) == 2


def test_non_string_ids_become_strings() -> None:
    vocab, codes = Vocabulary.from_values(np.array([10, 20, 10]))
    assert vocab.to_list() == ["10", "20"] and codes.tolist() == [0, 1, 0]
    mixed, codes = Vocabulary.from_values(np.array([1, "1", 2], dtype=object))  # 1 and "1" are the same id
    assert mixed.to_list() == ["1", "2"] and codes.tolist() == [0, 0, 1]
    assert Vocabulary([3, 4]).index("4") == 1


def test_lookups() -> None:
    vocab = Vocabulary(["u7", "u3", "u9"])
    assert vocab.index("u3") == 1 and vocab.raw(2) == "u9"
    assert "u7" in vocab and "zz" not in vocab
    assert vocab.indices(np.array(["u9", "u7"], dtype=object)).tolist() == [2, 0]
    assert vocab.indices(["u9", "nope", None], missing="ignore").tolist() == [2, -1, -1]
    assert vocab.indices([]).dtype == np.int32
    assert vocab.raws([1, -1, 0]) == ["u3", None, "u7"]


def test_unknown_ids_are_named() -> None:
    vocab = Vocabulary(["a", "b"])
    with pytest.raises(UnknownIdError, match="'z'"):
        vocab.index("z")
    with pytest.raises(UnknownIdError, match="'z' at position 1"):
        vocab.indices(np.array(["a", "z"], dtype=object))
    with pytest.raises(UnknownIdError, match="outside"):
        vocab.raw(2)
    with pytest.raises(UnknownIdError, match="outside"):
        vocab.raws([0, 5])
    with pytest.raises(KeyError):  # UnknownIdError is also a KeyError
        vocab.index("z")
    with pytest.raises(ConfigError, match="missing='drop'"):
        vocab.indices(["a"], missing="drop")  # type: ignore[arg-type]


def test_duplicates_and_missing_are_data_errors() -> None:
    with pytest.raises(DataError, match="'x' appears more than once"):
        Vocabulary(["x", "y", "x"])
    with pytest.raises(DataError, match="missing id.*position 1"):
        Vocabulary.from_values(np.array(["a", np.nan], dtype=object))
    with pytest.raises(ValueError):  # DataError is a ValueError
        Vocabulary(["x", "x"])


def test_list_round_trip_and_equality() -> None:
    vocab = Vocabulary(["b", "a"])
    assert Vocabulary.from_list(vocab.to_list()) == vocab
    assert vocab != Vocabulary(["a", "b"])
    assert isinstance(vocab.to_list()[0], str)


def test_does_not_freeze_the_callers_array() -> None:
    ids = np.array(["a", "b"], dtype=object)
    Vocabulary(ids)
    ids[0] = "c"  # still writable
    assert ids[0] == "c"
