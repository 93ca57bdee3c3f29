"""Raw string ids <-> dense ``int32`` indices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from recsmith.errors import ConfigError, DataError, UnknownIdError


def _as_object_array(values: Iterable[object] | np.ndarray | pd.Series | pd.Index) -> np.ndarray:
    """Values as a 1-D numpy object array (no copy of object arrays)."""
    if isinstance(values, pd.Series | pd.Index):
        values = values.to_numpy(dtype=object)
    elif isinstance(values, str):
        values = [values]
    elif not isinstance(values, np.ndarray):
        values = list(values)
    array = np.asarray(values, dtype=object)
    if array.ndim != 1:
        raise DataError(f"ids must be a 1-D sequence, got an array of shape {array.shape}")
    return array


def _check_no_missing(array: np.ndarray, what: str) -> None:
    missing = pd.isna(array)
    if missing.any():
        position = int(np.flatnonzero(missing)[0])
        raise DataError(f"{what} has a missing id (None/NaN) at position {position}; "
                        "drop or fill rows without ids first")


def _as_str_array(array: np.ndarray) -> np.ndarray:
    """Object array of ``str`` (ints and other scalars converted with ``str``)."""
    if array.dtype == object and (len(array) == 0 or pd.api.types.infer_dtype(array, skipna=False) == "string"):
        return array
    return np.asarray([str(x) for x in array.tolist()], dtype=object) if array.dtype == object \
        else array.astype(str).astype(object)


class Vocabulary:
    """A bijection between raw ids (strings) and dense indices ``0..n-1``.

    Parameters
    ----------
    ids : sequence of str
        The raw ids in dense order; must be unique. Non-string ids are converted with ``str``.

    Raises
    ------
    DataError
        If an id appears twice or is missing (None/NaN).

    Examples
    --------
    >>> vocab = Vocabulary(["u7", "u3"])
    >>> vocab.index("u3"), vocab.raw(0)
    (1, 'u7')
    """

    def __init__(self, ids: Sequence[str] | np.ndarray) -> None:
        array = _as_object_array(ids)
        _check_no_missing(array, "vocabulary ids")
        self._ids = _as_str_array(array).copy()  # never share (and freeze) the caller's array
        self._ids.flags.writeable = False
        self._lookup: dict[str, int] | None = None
        duplicated = pd.Index(self._ids).duplicated()
        if duplicated.any():
            raise DataError(f"vocabulary ids must be unique; {self._ids[np.argmax(duplicated)]!r} appears more "
                            "than once")

    @classmethod
    def from_values(cls, values: Iterable[object] | np.ndarray) -> tuple[Vocabulary, np.ndarray]:
        """Factorise raw ids in order of first appearance (vectorised with :func:`pandas.factorize`).

        Parameters
        ----------
        values : array-like
            One raw id per row (converted to ``str``); None/NaN is an error.

        Returns
        -------
        (Vocabulary, numpy.ndarray)
            The vocabulary and the ``int32`` index of every value.

        Raises
        ------
        DataError
            If a value is missing.
        """
        array = _as_object_array(values)
        _check_no_missing(array, "the ids")
        codes, uniques = pd.factorize(_as_str_array(array))
        vocab = cls.__new__(cls)
        vocab._ids = np.asarray(uniques, dtype=object)
        vocab._ids.flags.writeable = False
        vocab._lookup = None
        return vocab, codes.astype(np.int32)

    @classmethod
    def from_list(cls, ids: list[str]) -> Vocabulary:
        """The inverse of :meth:`to_list` (for JSON artifacts)."""
        return cls(ids)

    def _table(self) -> dict[str, int]:
        if self._lookup is None:
            self._lookup = {raw: index for index, raw in enumerate(self._ids.tolist())}
        return self._lookup

    @property
    def ids(self) -> np.ndarray:
        """Raw ids in dense order (read-only object array of str)."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw: object) -> bool:
        return str(raw) in self._table()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and np.array_equal(self._ids, other._ids)

    __hash__ = None  # type: ignore[assignment]

    def index(self, raw: object) -> int:
        """Dense index of one raw id.

        Raises
        ------
        UnknownIdError
            If the id is not in the vocabulary.
        """
        try:
            return self._table()[str(raw)]
        except KeyError:
            raise UnknownIdError(f"unknown id {raw!r} (the vocabulary has {len(self)} ids)") from None

    def indices(self, raws: Iterable[object] | np.ndarray,
                missing: Literal["raise", "ignore"] = "raise") -> np.ndarray:
        """Dense ``int32`` indices of many raw ids (vectorised).

        Parameters
        ----------
        raws : array-like
            Raw ids (converted to ``str``).
        missing : {"raise", "ignore"}
            What to do with unknown ids: raise :class:`UnknownIdError`, or return -1 for them.

        Returns
        -------
        numpy.ndarray
            ``int32`` indices, -1 where unknown (with ``missing="ignore"``).
        """
        if missing not in ("raise", "ignore"):
            raise ConfigError(f"missing={missing!r} is not allowed; use 'raise' or 'ignore'")
        array = _as_object_array(raws)
        if len(array) == 0:
            return np.empty(0, dtype=np.int32)
        if pd.api.types.infer_dtype(array, skipna=False) != "string":  # ints, or None/NaN among the ids
            known = ~pd.isna(array)
            array = array.copy()
            array[known] = _as_str_array(array[known])
        get = self._table().get  # a dict lookup per id beats pandas' object-index hashing here
        out = np.fromiter((get(raw, -1) for raw in array.tolist()), dtype=np.int32, count=len(array))
        if missing == "raise" and (out < 0).any():
            position = int(np.flatnonzero(out < 0)[0])
            n_unknown = int((out < 0).sum())
            raise UnknownIdError(f"unknown id {array[position]!r} at position {position} ({n_unknown} unknown in "
                                 f"all; the vocabulary has {len(self)} ids); pass missing='ignore' to get -1")
        return out

    def raw(self, index: int) -> str:
        """Raw id of a dense index.

        Raises
        ------
        UnknownIdError
            If the index is outside ``0..len-1``.
        """
        if not 0 <= index < len(self._ids):
            raise UnknownIdError(f"index {index} is outside the vocabulary (0..{len(self) - 1})")
        return str(self._ids[index])

    def raws(self, indices: Iterable[int] | np.ndarray) -> list[str | None]:
        """Raw ids of dense indices; -1 becomes None.

        Raises
        ------
        UnknownIdError
            If an index is ``>= len`` or below -1.
        """
        array = np.asarray(indices, dtype=np.int64).ravel()
        bad = (array < -1) | (array >= len(self._ids))
        if bad.any():
            raise UnknownIdError(f"index {int(array[bad][0])} is outside the vocabulary (0..{len(self) - 1})")
        if len(self._ids) == 0:
            return [None] * len(array)
        found = self._ids[np.maximum(array, 0)]
        return [None if i < 0 else raw for i, raw in zip(array.tolist(), found.tolist(), strict=True)]

    def to_list(self) -> list[str]:
        """Raw ids in dense order (JSON-serialisable)."""
        return self._ids.tolist()

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} ids)"
