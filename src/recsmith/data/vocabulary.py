"""Raw string ids <-> dense ``int32`` indices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from recsmith.errors import DataError, UnknownIdError


class Vocabulary:
    """A bijection between raw ids (strings) and dense indices ``0..n-1``.

    Parameters
    ----------
    ids : sequence of str
        The raw ids in dense order; must be unique.

    Examples
    --------
    >>> vocab = Vocabulary(["u7", "u3"])
    >>> vocab.index("u3"), vocab.raw(0)
    (1, 'u7')
    """

    def __init__(self, ids: Sequence[str] | np.ndarray) -> None:
        self._ids = np.asarray([str(x) for x in ids], dtype=object)
        self._lookup: dict[str, int] | None = None
        if len(pd.unique(self._ids)) != len(self._ids):
            duplicated = pd.Series(self._ids)[pd.Series(self._ids).duplicated()].iloc[0]
            raise DataError(f"vocabulary ids must be unique; {duplicated!r} appears more than once")

    @classmethod
    def from_values(cls, values: Iterable[object] | np.ndarray) -> tuple[Vocabulary, np.ndarray]:
        """Factorise raw ids in order of first appearance.

        Returns
        -------
        (Vocabulary, numpy.ndarray)
            The vocabulary and the ``int32`` index of every value.
        """
        array = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
        codes, uniques = pd.factorize(array.astype(str) if array.dtype.kind != "O" else array)
        vocab = cls.__new__(cls)
        vocab._ids = np.asarray([str(x) for x in uniques], dtype=object)
        vocab._lookup = None
        return vocab, codes.astype(np.int32)

    @classmethod
    def from_list(cls, ids: list[str]) -> Vocabulary:
        """The inverse of :meth:`to_list`."""
        return cls(ids)

    def _table(self) -> dict[str, int]:
        if self._lookup is None:
            self._lookup = {raw: index for index, raw in enumerate(self._ids.tolist())}
        return self._lookup

    @property
    def ids(self) -> np.ndarray:
        """Raw ids in dense order (object array of str)."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw: object) -> bool:
        return str(raw) in self._table()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and np.array_equal(self._ids, other._ids)

    __hash__ = None  # type: ignore[assignment]

    def index(self, raw: object) -> int:
        """Dense index of a raw id (UnknownIdError if absent)."""
        try:
            return self._table()[str(raw)]
        except KeyError:
            raise UnknownIdError(f"unknown id {raw!r} (the vocabulary has {len(self)} ids)") from None

    def indices(self, raws: Iterable[object], missing: Literal["raise", "ignore"] = "raise") -> np.ndarray:
        """Dense indices of raw ids; unknown ids raise, or become -1 with ``missing="ignore"``."""
        table = self._table()
        out = np.fromiter((table.get(str(r), -1) for r in raws), dtype=np.int32)
        if missing == "raise" and (out < 0).any():
            bad = [r for r, i in zip(raws, out, strict=False) if i < 0][:1] if isinstance(raws, Sequence) else ["?"]
            raise UnknownIdError(f"unknown id {bad[0]!r}")
        return out

    def raw(self, index: int) -> str:
        """Raw id of a dense index."""
        if not 0 <= index < len(self._ids):
            raise UnknownIdError(f"index {index} is outside the vocabulary (0..{len(self) - 1})")
        return str(self._ids[index])

    def raws(self, indices: Iterable[int] | np.ndarray) -> list[str | None]:
        """Raw ids of dense indices; -1 becomes None."""
        return [None if i < 0 else str(self._ids[i]) for i in np.asarray(indices, dtype=np.int64)]

    def to_list(self) -> list[str]:
        """Raw ids in dense order."""
        return [str(x) for x in self._ids]

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} ids)"
