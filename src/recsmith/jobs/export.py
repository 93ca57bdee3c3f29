"""Dataset export jobs (Personalize's ``CreateDatasetExportJob``): a dataset group's interactions, users or
items written to one Parquet file, a local path or an fsspec URL, atomically.

The file has the dataset's schema fields as columns, in the schema's order (``USER_ID``, ``ITEM_ID``,
``TIMESTAMP``, ``EVENT_TYPE``, ``EVENT_VALUE`` and the extra fields of the interactions schema; the id and the
metadata fields for users and items), typed by the schema, so ``recsmith import`` reads it back as it is. It is
what a SQLite store hands to Spark or anything else that reads Parquet. Interactions are those training reads
(:meth:`Store.read_interactions`: deleted items' events left out), in the order they were stored; deleted users
and items have no rows. Live events' session ids are not a schema field and are not exported.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsmith.atomic import atomic_output
from recsmith.data.schema import Schema
from recsmith.errors import ConfigError, DataError
from recsmith.store.store import Store

logger = logging.getLogger(__name__)

EXPORT_DATASETS = ("interactions", "users", "items")
"""What ``recsmith export --dataset`` takes."""
ARROW_TYPES = {"string": pa.string(), "int": pa.int32(), "long": pa.int64(), "float": pa.float32(),
               "double": pa.float64(), "boolean": pa.bool_()}
"""The Parquet column type of each schema kind."""


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote.

    Attributes
    ----------
    dataset_group, dataset_type : str
        What was exported.
    target : str
        The file (path or URL).
    rows : int
        Rows written.
    columns : list of str
        Its columns, in order.
    seconds : float
        How long it took.
    """

    dataset_group: str
    dataset_type: str
    target: str
    rows: int
    columns: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return asdict(self)


def dataset_table(store: Store, dataset_group: str, dataset: str = "interactions") -> pa.Table:
    """A dataset of a group as an Arrow table with its schema's columns and types (see the module's notes).

    Raises
    ------
    ConfigError
        For a dataset type other than interactions, users or items.
    NotFoundError
        For an unknown dataset group.
    DataError
        When the group has no such dataset (nothing was imported into it).
    """
    if dataset not in EXPORT_DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r} to export; use one of {', '.join(EXPORT_DATASETS)}")
    group = store.get_dataset_group(dataset_group)
    stored = store.get_dataset(group.id, dataset)
    if stored is None and dataset != "interactions":
        raise DataError(f"dataset group {dataset_group!r} has no {dataset} dataset to export; import one first "
                        f"(recsmith import {dataset} PATH --dataset-group {dataset_group})")
    schema = Schema.from_json(stored.schema) if stored is not None else Schema.default(dataset)
    if dataset == "interactions":
        columns = _interaction_columns(store, group.id, schema)
    else:
        columns = _entity_columns(store, group.id, dataset, schema)
    return pa.table({field.name: _typed(columns[field.name], field.kind, field.name)
                     for field in schema.fields})


def export_dataset(store: Store, dataset_group: str, target: str, *, dataset: str = "interactions",
                   progress: Callable[[str], None] | None = None) -> ExportReport:
    """Write a dataset of a group to ``target`` as Parquet, atomically (a temporary file, then a rename or an
    upload and a move: a reader sees the old file or the complete new one, and a failure leaves no file).

    Parameters
    ----------
    store : Store
        Where the data is.
    dataset_group : str
        The dataset group.
    target : str
        A ``.parquet`` path or fsspec URL (``s3://bucket/interactions.parquet``).
    dataset : {"interactions", "users", "items"}
        What to export.
    progress : callable, optional
        Called with each stage name: "read", "write", "done".

    Returns
    -------
    ExportReport

    Raises
    ------
    ConfigError
        For a target that is not ``.parquet``, an unknown dataset, or a target that cannot be written (the
        message names it and the reason).
    NotFoundError, DataError
        As :func:`dataset_table`.
    """
    target = str(target)
    if not target.lower().endswith(".parquet"):
        raise ConfigError(f"an export is written as Parquet: give a target ending in .parquet, got {target!r}")
    started = time.perf_counter()
    if progress:
        progress("read")
    table = dataset_table(store, dataset_group, dataset)
    if progress:
        progress("write")
    try:
        with atomic_output(target) as tmp:
            pq.write_table(table, tmp)
    except (OSError, ValueError) as exc:  # fsspec and pyarrow raise these for unwritable places
        raise ConfigError(f"cannot write the {dataset} export to {target}: {exc}; give a path or URL that can be "
                          "written (its folder or bucket must exist and allow writing)") from exc
    if progress:
        progress("done")
    report = ExportReport(dataset_group, dataset, target, table.num_rows, table.column_names,
                          round(time.perf_counter() - started, 4))
    logger.info("exported %d %s of %r to %s in %.2f s", report.rows, dataset, dataset_group, target, report.seconds)
    return report


def _interaction_columns(store: Store, group_id: int, schema: Schema) -> dict[str, Any]:
    columns = store.read_interactions(group_id, context=True)
    out: dict[str, Any] = {"USER_ID": columns["user_id"], "ITEM_ID": columns["item_id"],
                           "TIMESTAMP": columns["timestamp"], "EVENT_TYPE": columns["event_type"],
                           "EVENT_VALUE": columns["event_value"]}  # NaN: no value (null in the file)
    extra = [f.name for f in schema.fields if f.name not in out]
    if extra:
        contexts = [json.loads(text) if text else {} for text in columns["context"]]
        for name in extra:
            out[name] = [record.get(name) for record in contexts]
    return out


def _entity_columns(store: Store, group_id: int, dataset: str, schema: Schema) -> dict[str, Any]:
    key = "USER_ID" if dataset == "users" else "ITEM_ID"
    records = store.read_users(group_id) if dataset == "users" else store.read_items(group_id)
    deleted = store.deletions(group_id, "user" if dataset == "users" else "item")
    ids = [entity for entity in records if entity not in deleted] if deleted else list(records)
    out: dict[str, Any] = {key: ids}
    for field in schema.fields:
        if field.name != key:
            out[field.name] = [records[entity].get(field.name) for entity in ids]
    return out


def _typed(values: Any, kind: str, name: str) -> pa.Array:
    """``values`` as an Arrow array of the schema kind's type (numbers stored as floats, such as an ``int`` AGE
    of 24.0, are cast when they are whole)."""
    wanted = ARROW_TYPES[kind]
    array = pa.array(values.tolist() if isinstance(values, np.ndarray) and values.dtype == object else values,
                     from_pandas=True)
    if array.type == wanted:
        return array
    try:
        return array.cast(wanted)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise DataError(f"the stored values of field {name} do not fit its schema type {kind} ({exc})") from exc
