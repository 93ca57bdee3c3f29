"""Feature tables as model inputs: one sparse design row per user or item, the same at training and serving.

A :class:`FeatureEncoder` is fitted on the training :class:`~recsmith.data.training.FeatureTable` and turns a
table (the training one, or one of items put after training) into a CSR design matrix whose columns are:

- one per category of each categorical field (a multi-valued field's categories are averaged: each of a row's
  ``n`` categories weighs ``1/n``);
- one per numerical field, standardised with the training mean and standard deviation (missing: 0, the mean).

Textual fields are not used. Categories unseen at training count for nothing. The encoder saves as plain arrays
(:meth:`FeatureEncoder.state`), so a serving host rebuilds it without pickle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsmith.data.training import FeatureTable


@dataclass(frozen=True)
class FeatureEncoder:
    """Column layout of a design matrix (see the module docstring).

    Attributes
    ----------
    fields : numpy.ndarray
        ``str[d]``: each column's field name.
    categories : numpy.ndarray
        ``str[d]``: each column's category ("" for a numerical column).
    means, scales : numpy.ndarray
        ``float64[d]``: the standardisation of numerical columns (0 and 1 for categorical ones).
    """

    fields: np.ndarray
    categories: np.ndarray
    means: np.ndarray
    scales: np.ndarray

    @classmethod
    def fit(cls, table: FeatureTable | None) -> FeatureEncoder:
        """The layout of a training table's categorical and numerical features (none for None)."""
        fields: list[str] = []
        categories: list[str] = []
        means: list[float] = []
        scales: list[float] = []
        for feature in table or ():
            if feature.kind == "categorical":
                fields += [feature.name] * len(feature.categories)
                categories += list(feature.categories)
                means += [0.0] * len(feature.categories)
                scales += [1.0] * len(feature.categories)
            elif feature.kind == "numerical":
                values = np.asarray(feature.values, dtype=np.float64)
                finite = values[np.isfinite(values)]
                mean = float(finite.mean()) if len(finite) else 0.0
                scale = float(finite.std()) if len(finite) else 1.0
                fields.append(feature.name)
                categories.append("")
                means.append(mean)
                scales.append(scale if scale > 0 else 1.0)
        return cls(np.asarray(fields, dtype=str), np.asarray(categories, dtype=str),
                   np.asarray(means, dtype=np.float64), np.asarray(scales, dtype=np.float64))

    @property
    def n_columns(self) -> int:
        """Columns of the design matrix."""
        return len(self.fields)

    def encode(self, table: FeatureTable | None, n_rows: int) -> sp.csr_matrix:
        """``float32`` CSR ``n_rows × n_columns`` design of ``table`` (rows without a record are empty).

        Parameters
        ----------
        table : FeatureTable or None
            Rows aligned with the users or items to encode; None (or a table lacking a field) gives empty rows.
        n_rows : int
            Rows of the result.
        """
        blocks: list[sp.csr_matrix] = []
        names = self.fields.tolist()
        start = 0
        while start < len(names):
            name = names[start]
            stop = start
            while stop < len(names) and names[stop] == name:
                stop += 1
            feature = table.features.get(name) if table is not None else None
            numerical = self.categories[start] == "" and stop - start == 1
            if feature is None:
                block = sp.csr_matrix((n_rows, stop - start), dtype=np.float32)
            elif numerical:
                values = np.asarray(feature.values, dtype=np.float64) if feature.kind == "numerical" else \
                    np.full(n_rows, np.nan)
                standard = np.where(np.isfinite(values), (values - self.means[start]) / self.scales[start], 0.0)
                block = sp.csr_matrix(standard.astype(np.float32).reshape(-1, 1))
            else:
                block = self._categorical(feature, self.categories[start:stop], n_rows)
            blocks.append(block)
            start = stop
        if not blocks:
            return sp.csr_matrix((n_rows, 0), dtype=np.float32)
        design = sp.hstack(blocks, format="csr", dtype=np.float32)
        design.eliminate_zeros()
        return design

    @staticmethod
    def _categorical(feature: object, categories: np.ndarray, n_rows: int) -> sp.csr_matrix:
        """The multi-hot of ``feature`` over the training ``categories``, each row averaged."""
        own = list(getattr(feature, "categories", ()))
        values = getattr(feature, "values", None)
        if getattr(feature, "kind", None) != "categorical" or values is None:
            return sp.csr_matrix((n_rows, len(categories)), dtype=np.float32)
        position = {category: j for j, category in enumerate(categories.tolist())}
        mapping = np.asarray([position.get(category, -1) for category in own], dtype=np.int64)
        coo = sp.csr_matrix(values).tocoo()
        columns = mapping[coo.col] if len(mapping) else np.empty(0, dtype=np.int64)
        keep = columns >= 0
        multi = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (coo.row[keep], columns[keep])),
                              shape=(n_rows, len(categories)))
        counts = np.diff(multi.indptr)
        multi.data /= np.repeat(np.maximum(counts, 1), counts).astype(np.float32)
        return multi

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        """The encoder as arrays (for a recipe's ``_state``), keys starting with ``prefix``."""
        return {f"{prefix}fields": self.fields, f"{prefix}categories": self.categories,
                f"{prefix}means": self.means, f"{prefix}scales": self.scales}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], prefix: str) -> FeatureEncoder:
        """The encoder :meth:`state` saved."""
        return cls(np.asarray(arrays[f"{prefix}fields"]).astype(str),
                   np.asarray(arrays[f"{prefix}categories"]).astype(str),
                   np.asarray(arrays[f"{prefix}means"], dtype=np.float64),
                   np.asarray(arrays[f"{prefix}scales"], dtype=np.float64))


def with_ids(design: sp.csr_matrix, ids: bool = True) -> sp.csr_matrix:
    """``[I | design]``: each row's own id column (weight 1) before its features, as FM and the towers read
    them; just ``design`` when ``ids`` is false."""
    if not ids:
        return sp.csr_matrix(design, dtype=np.float32)
    n = design.shape[0]
    return sp.hstack([sp.identity(n, dtype=np.float32, format="csr"), design], format="csr", dtype=np.float32)


def padded_bags(design: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Each row's sparse entries as fixed-width arrays ``(columns int64[n, L], values float32[n, L])``, ``L`` the
    most entries of a row; the padding has column ``design.shape[1]`` (an embedding table's padding row) and
    value 0. A batch's inputs are then plain row gathers, and the sums per row dense reductions."""
    design = sp.csr_matrix(design, dtype=np.float32)
    lengths = np.diff(design.indptr)
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    columns = np.full((design.shape[0], width), design.shape[1], dtype=np.int64)
    values = np.zeros((design.shape[0], width), dtype=np.float32)
    rows = np.repeat(np.arange(design.shape[0]), lengths)
    slots = np.arange(design.nnz) - np.repeat(design.indptr[:-1], lengths)
    columns[rows, slots] = design.indices
    values[rows, slots] = design.data
    return columns, values


def bag_sum(bags: tuple[np.ndarray, np.ndarray], table: np.ndarray) -> np.ndarray:
    """Each row's ``Σ table[column] · value`` over its padded bag (:func:`padded_bags`; the padding column is one
    past ``table``): the numpy side of an embedding-bag sum."""
    cols, vals = bags
    padded = np.vstack([np.asarray(table, dtype=np.float32), np.zeros((1, table.shape[1]), dtype=np.float32)])
    return np.einsum("nl,nld->nd", vals, padded[cols]).astype(np.float32)
