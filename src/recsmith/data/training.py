"""What a recipe trains on: the interactions matrix, the ordered event log and the feature tables.

:class:`TrainingData` is built in one pass over the events (from the store, arrays or a frame):

- :attr:`TrainingData.interactions`: the users × items :class:`~recsmith.data.interactions.Interactions`
  matrix, exactly as :meth:`Interactions.from_arrays` builds it (event-type weights, half-life decay, one
  entry per pair);
- :attr:`TrainingData.events`: an :class:`EventLog`, every event that reached the matrix, in time order
  (ties in input order), with repeats, sessions, types and values, in the matrix's dense ids;
- :attr:`TrainingData.item_features` and :attr:`TrainingData.user_features`: :class:`FeatureTable` rows
  aligned with the matrix's columns and rows, typed by the datasets' schemas (categorical, multi-valued with
  ``|``, numerical, textual).

Examples
--------
>>> import pandas as pd
>>> events = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"], "timestamp": [3, 1, 2]})
>>> items = pd.DataFrame({"item_id": ["x", "y"], "GENRES": ["Drama|War", "Comedy"]})
>>> data = TrainingData.from_frame(events, items=items, timestamp="timestamp")
>>> data.events.items.tolist(), data.item_features["GENRES"].categories
([1, 0, 0], ('Comedy', 'Drama', 'War'))
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsmith.data.interactions import Interactions, _floats, _timestamp_seconds, encode_events
from recsmith.data.schema import Schema, SchemaField
from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import DataError, SchemaError

logger = logging.getLogger(__name__)

SKIPPED_NON_FINITE = "event_value is not finite (inf or -inf, stored before such values were refused)"
"""The reason :meth:`TrainingData.from_columns` gives for the stored rows it leaves out."""

FeatureKind = Literal["categorical", "numerical", "textual"]
SEPARATOR = "|"
"""Joins the values of a multi-valued categorical field (Personalize's convention)."""

ID_FIELDS = ("USER_ID", "ITEM_ID")


def _codes(values: np.ndarray | None, n: int, what: str) -> tuple[np.ndarray | None, np.ndarray]:
    """Factorise optional strings (None/NaN -> -1): ``int32`` codes and the distinct values in first-seen order."""
    if values is None:
        return None, np.empty(0, dtype=object)
    array = np.asarray(values, dtype=object).ravel()
    if len(array) != n:
        raise DataError(f"{what} has {len(array)} entries for {n} events; give one per event")
    codes, uniques = pd.factorize(array, use_na_sentinel=True)
    return codes.astype(np.int32), np.asarray([str(u) for u in uniques], dtype=object)


@dataclass(frozen=True, eq=False)
class EventLog:
    """The events behind the interactions matrix, one entry per event, in time order.

    Events appear oldest first; events at the same time keep their input (insertion) order. Repeats of a
    pair are separate entries. Only the events the matrix sums are here: events of an event type weighing 0,
    and events whose ids are outside given vocabularies, are left out, so the weights of a (user, item) pair's
    entries sum to its matrix entry.

    Attributes
    ----------
    users, items : numpy.ndarray
        ``int32`` dense indices (the matrix's rows and columns).
    weights : numpy.ndarray
        ``float32`` each event's weight (its own weight times its type's and the half-life decay).
    timestamps : numpy.ndarray or None
        ``int64`` epoch seconds (None when the data had no times: the log is then in input order).
    values : numpy.ndarray or None
        ``float32`` ``EVENT_VALUE`` (NaN where none), or None when the data had no values.
    event_types : numpy.ndarray or None
        ``int32`` codes into :attr:`event_type_names` (-1: untyped), or None when the data had no types.
    event_type_names : tuple of str
        The distinct event types.
    sessions : numpy.ndarray or None
        ``int32`` codes into :attr:`session_ids` (-1: no session), or None when the data had no sessions.
    session_ids : numpy.ndarray
        The distinct raw session ids (object array of str).
    context : numpy.ndarray or None
        Each event's context as JSON-object text (object array; None where empty), or None when the data
        had none; :meth:`context_records` parses it.
    """

    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    timestamps: np.ndarray | None = None
    values: np.ndarray | None = None
    event_types: np.ndarray | None = None
    event_type_names: tuple[str, ...] = ()
    sessions: np.ndarray | None = None
    session_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    context: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.users)
        for name in ("items", "weights", "timestamps", "values", "event_types", "sessions", "context"):
            array = getattr(self, name)
            if array is not None and len(array) != n:
                raise DataError(f"event log {name} has {len(array)} entries, users {n}")

    def __len__(self) -> int:
        return len(self.users)

    def event_type_labels(self) -> np.ndarray:
        """Each event's type as an object array of str (None where untyped, or for every event when the
        data had no types)."""
        out = np.full(len(self), None, dtype=object)
        if self.event_types is not None and self.event_type_names:
            names = np.asarray(self.event_type_names, dtype=object)
            typed = self.event_types >= 0
            out[typed] = names[self.event_types[typed]]
        return out

    def context_records(self) -> list[dict[str, Any]]:
        """Each event's context as a dict (empty where none)."""
        if self.context is None:
            return [{} for _ in range(len(self))]
        return [json.loads(text) if text else {} for text in self.context.tolist()]

    def by_user(self, n_users: int) -> tuple[np.ndarray, np.ndarray]:
        """Each user's events, in time order: ``(indptr, positions)`` such that user ``u``'s events are
        ``positions[indptr[u]:indptr[u + 1]]`` (indices into the log's arrays).

        Parameters
        ----------
        n_users : int
            Users in the matrix (``TrainingData.n_users``).
        """
        positions = np.argsort(self.users, kind="stable").astype(np.int64)  # stable: time order within a user
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.users, minlength=n_users), out=indptr[1:])
        return indptr, positions

    def take(self, positions: np.ndarray) -> EventLog:
        """The events at ``positions`` (an index or boolean array), in that order."""
        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[positions]

        return EventLog(self.users[positions], self.items[positions], self.weights[positions],
                        pick(self.timestamps), pick(self.values), pick(self.event_types), self.event_type_names,
                        pick(self.sessions), self.session_ids, pick(self.context))


@dataclass(frozen=True, eq=False)
class Feature:
    """One typed column of a :class:`FeatureTable`, one row per user or item (dense order).

    Attributes
    ----------
    name : str
        The schema field's name (e.g. ``GENRES``).
    kind : {"categorical", "numerical", "textual"}
        How the values are held.
    values : numpy.ndarray or scipy.sparse.csr_matrix
        ``categorical``: a ``float32`` CSR ``n_rows × len(categories)`` multi-hot matrix (1 where the row has
        the category; a multi-valued field has several per row). ``numerical``: ``float64[n_rows]``, NaN
        where missing (booleans are 1.0/0.0). ``textual``: an object array of str, None where missing.
    categories : tuple of str
        The categories of a categorical field, sorted (columns of ``values``); empty otherwise.
    multi_valued : bool
        Whether values were split on ``|`` (categorical fields of the schema).
    """

    name: str
    kind: FeatureKind
    values: np.ndarray | sp.csr_matrix
    categories: tuple[str, ...] = ()
    multi_valued: bool = False


class FeatureTable:
    """Typed features of the users or the items, rows aligned with the matrix's dense indices.

    Records of ids the matrix does not know are left out (a recipe cannot rank them); rows without a
    record have no categories, NaN numbers and None texts, and :attr:`present` false.

    Parameters
    ----------
    n_rows : int
        Users or items in the matrix.
    features : mapping of str to Feature
        The columns, in schema order.
    present : numpy.ndarray, optional
        ``bool[n_rows]``: rows that have a record (default: none).
    """

    def __init__(self, n_rows: int, features: Mapping[str, Feature] | None = None,
                 present: np.ndarray | None = None) -> None:
        self.n_rows = int(n_rows)
        self.features: dict[str, Feature] = dict(features or {})
        self.present = np.zeros(self.n_rows, dtype=bool) if present is None else np.asarray(present, dtype=bool)
        if len(self.present) != self.n_rows:
            raise DataError(f"present has {len(self.present)} rows, the table {self.n_rows}")
        for feature in self.features.values():
            if feature.values.shape[0] != self.n_rows:
                raise DataError(f"feature {feature.name} has {feature.values.shape[0]} rows, the table {self.n_rows}")

    @classmethod
    def empty(cls, n_rows: int) -> FeatureTable:
        """A table with no features."""
        return cls(n_rows)

    @classmethod
    def from_records(cls, records: Mapping[str, Mapping[str, Any]], vocab: Vocabulary,
                     schema: Schema | Mapping[str, Any] | None = None) -> FeatureTable:
        """Type metadata records (``raw id -> {field: value}``, as ``Store.read_items`` returns them).

        Parameters
        ----------
        records : mapping
            Each id's metadata.
        vocab : Vocabulary
            The matrix's ids for these rows; records of other ids are left out.
        schema : Schema or dict, optional
            The dataset's schema: its fields, except ``USER_ID``/``ITEM_ID``, become the features, typed by
            it (a categorical string is split on ``|``; a plain string is one category; booleans are 1/0
            numbers). Without one, each field's type is inferred from its values: numbers and booleans are
            numerical, strings categorical and split on ``|``.

        Raises
        ------
        DataError
            When a numerical field holds a value that is not a number.
        """
        ids = list(records)
        rows = vocab.indices(ids, missing="ignore") if ids else np.empty(0, dtype=np.int32)
        keep = rows >= 0
        rows = rows[keep]
        kept = [record for record, k in zip(records.values(), keep.tolist(), strict=True) if k]
        fields = _fields(schema, kept)
        present = np.zeros(len(vocab), dtype=bool)
        present[rows] = True
        features = {spec.name: _typed(spec, [record.get(spec.name) for record in kept], rows, len(vocab))
                    for spec in fields}
        return cls(len(vocab), features, present)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, vocab: Vocabulary, id_column: str,
                   schema: Schema | Mapping[str, Any] | None = None) -> FeatureTable:
        """Type a frame with one row per user or item (the id in ``id_column``; the last row of an id wins).

        See :meth:`from_records` for the typing; other columns are the fields.

        Raises
        ------
        DataError
            When ``id_column`` is absent or holds a missing id, and as :meth:`from_records`.
        """
        if id_column not in frame.columns:
            raise DataError(f"the feature frame has no id column {id_column!r}; its columns are {list(frame.columns)}")
        if frame[id_column].isna().any():
            raise DataError(f"column {id_column!r} of the feature frame has a missing id at row "
                            f"{int(np.flatnonzero(frame[id_column].isna().to_numpy())[0])}")
        names = [c for c in frame.columns if c != id_column]
        ids = frame[id_column].astype(str).tolist()
        columns = [frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in names]
        records = {raw: dict(zip(names, values, strict=True))
                   for raw, values in zip(ids, zip(*columns, strict=True) if names else [()] * len(ids), strict=True)}
        return cls.from_records(records, vocab, schema)

    # ---------------------------------------------------------------------------------------- views
    @property
    def names(self) -> list[str]:
        """Feature names in order."""
        return list(self.features)

    def of_kind(self, kind: FeatureKind) -> list[Feature]:
        """The features of one kind, in order."""
        return [f for f in self.features.values() if f.kind == kind]

    def __getitem__(self, name: str) -> Feature:
        try:
            return self.features[name]
        except KeyError:
            raise KeyError(f"no feature {name!r}; the table has {self.names}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.features

    def __iter__(self) -> Iterator[Feature]:
        return iter(self.features.values())

    def __len__(self) -> int:
        return len(self.features)

    def take(self, rows: np.ndarray) -> FeatureTable:
        """The table of the rows at ``rows`` (dense indices, in that order): e.g. the held-out items of a
        ``cold-items`` split, scored as items the model never saw."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        features = {name: Feature(f.name, f.kind, f.values[rows], f.categories, f.multi_valued)
                    for name, f in self.features.items()}
        return FeatureTable(len(rows), features, self.present[rows])

    def __repr__(self) -> str:
        kinds = ", ".join(f"{f.name}: {f.kind}" for f in self) or "no features"
        return f"FeatureTable({self.n_rows} rows; {kinds})"


def _fields(schema: Schema | Mapping[str, Any] | None, records: Sequence[Mapping[str, Any]]) -> list[SchemaField]:
    """The feature fields: the schema's (less the ids), or inferred from the records' values."""
    if schema is not None:
        parsed = schema if isinstance(schema, Schema) else Schema.from_json(dict(schema))
        return [spec for spec in parsed.fields if spec.name not in ID_FIELDS]
    kinds: dict[str, set[str]] = {}
    for record in records:
        for name, value in record.items():
            if value is None or name in ID_FIELDS or (isinstance(value, float) and math.isnan(value)):
                continue
            kind = ("boolean" if isinstance(value, bool | np.bool_) else
                    "double" if isinstance(value, int | float | np.number) else "string")
            kinds.setdefault(name, set()).add(kind)
    fields = []
    for name, found in kinds.items():
        kind = "string" if "string" in found else "double" if "double" in found else "boolean"
        try:
            fields.append(SchemaField(name, kind, nullable=True, categorical=kind == "string"))
        except SchemaError as exc:
            raise DataError(f"feature {name}: {exc}") from None
    return fields


def _typed(spec: SchemaField, values: list[Any], rows: np.ndarray, n_rows: int) -> Feature:
    """One field's values (aligned with ``rows``) as a :class:`Feature` of ``n_rows`` rows."""
    if spec.kind == "boolean":
        numbers = np.full(n_rows, np.nan)
        numbers[rows] = [_boolean(v, spec.name) for v in values]
        return Feature(spec.name, "numerical", numbers)
    if spec.numeric:
        try:
            parsed = pd.to_numeric(pd.Series(values, dtype=object), errors="raise").to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"feature {spec.name} is numerical ({spec.kind}), but {exc}") from None
        numbers = np.full(n_rows, np.nan)
        numbers[rows] = parsed
        return Feature(spec.name, "numerical", numbers)
    if spec.textual:
        texts = np.full(n_rows, None, dtype=object)
        texts[rows] = [None if v is None else str(v) for v in values]
        return Feature(spec.name, "textual", texts)
    split = spec.categorical
    row_of, labels = [], []
    for row, value in zip(rows.tolist(), values, strict=True):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        parts = str(value).split(SEPARATOR) if split else [str(value)]
        for part in parts:
            part = part.strip()
            if part:
                row_of.append(row)
                labels.append(part)
    categories = tuple(sorted(set(labels)))
    position = {label: i for i, label in enumerate(categories)}
    cols = np.fromiter((position[label] for label in labels), dtype=np.int64, count=len(labels))
    matrix = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (np.asarray(row_of, dtype=np.int64), cols)),
                           shape=(n_rows, len(categories)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # a category named twice in one value counts once
    return Feature(spec.name, "categorical", matrix, categories, split)


def _boolean(value: Any, name: str) -> float:
    if value is None:
        return np.nan
    if isinstance(value, bool | np.bool_):
        return float(value)
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return 1.0
    if text in ("false", "0"):
        return 0.0
    raise DataError(f"feature {name} is boolean, but {value!r} is neither true nor false")


class TrainingData:
    """Everything a recipe trains on, built in one pass: matrix, ordered event log, feature tables.

    Build one with :meth:`from_arrays`, :meth:`from_frame`, :meth:`from_columns` (the store's columns) or
    :meth:`from_interactions` (a bare matrix) rather than the constructor. ``recipe.fit`` accepts a
    :class:`~recsmith.data.interactions.Interactions` too, and wraps it with :meth:`from_interactions`.

    Parameters
    ----------
    interactions : Interactions
        The users × items matrix.
    events : EventLog or callable, optional
        The ordered events, or a function that builds them when first read (:meth:`from_arrays` passes one:
        most recipes train on the matrix alone); None derives one entry per matrix pair (see
        :meth:`from_interactions`) when first read.
    item_features, user_features : FeatureTable, optional
        Rows aligned with the matrix's columns / rows (default: no features).

    Attributes
    ----------
    skipped : dict of str to int
        Input rows left out, by reason (only :meth:`from_columns` leaves any out); see :attr:`rows_skipped`.

    Raises
    ------
    DataError
        When the log or the tables do not match the matrix's shape.
    """

    def __init__(self, interactions: Interactions, events: EventLog | Callable[[], EventLog] | None = None,
                 item_features: FeatureTable | None = None, user_features: FeatureTable | None = None) -> None:
        if not isinstance(interactions, Interactions):
            raise DataError(f"TrainingData needs an Interactions matrix, got {type(interactions).__name__}")
        self.interactions = interactions
        self._build_events = events if callable(events) else None
        events = None if callable(events) else events
        self._events = events
        self._events_derived = events is None and self._build_events is None
        self.skipped: dict[str, int] = {}
        self.item_features = item_features if item_features is not None else FeatureTable.empty(interactions.n_items)
        self.user_features = user_features if user_features is not None else FeatureTable.empty(interactions.n_users)
        if self.item_features.n_rows != interactions.n_items or self.user_features.n_rows != interactions.n_users:
            raise DataError(f"feature tables of {self.user_features.n_rows} users and {self.item_features.n_rows} "
                            f"items do not match the matrix ({interactions.n_users} × {interactions.n_items})")
        if events is not None and len(events) and (
                int(events.users.max()) >= interactions.n_users or int(events.items.max()) >= interactions.n_items):
            raise DataError("the event log names users or items outside the matrix")

    @property
    def rows_skipped(self) -> int:
        """How many input rows were left out (the sum of :attr:`skipped`)."""
        return sum(self.skipped.values())

    def with_interactions(self, interactions: Interactions) -> TrainingData:
        """The same feature tables over another matrix of the same vocabularies (a split's train part): what
        evaluation fits feature-aware recipes on. The event log is derived from the new matrix's pairs.

        Raises
        ------
        DataError
            When ``interactions`` has another shape than this data's matrix.
        """
        if interactions.matrix.shape != self.interactions.matrix.shape:
            raise DataError(f"interactions of shape {interactions.matrix.shape} do not share this data's "
                            f"vocabularies {self.interactions.matrix.shape}; split this data's own interactions")
        return TrainingData(interactions, None, self.item_features, self.user_features)

    # ---------------------------------------------------------------------------------- constructors
    @classmethod
    def wrap(cls, data: TrainingData | Interactions) -> TrainingData:
        """``data`` itself, or an :class:`Interactions` wrapped with :meth:`from_interactions`.

        Raises
        ------
        DataError
            For anything else.
        """
        if isinstance(data, TrainingData):
            return data
        if isinstance(data, Interactions):
            return cls.from_interactions(data)
        raise DataError(f"fit needs TrainingData or Interactions, got {type(data).__name__}; wrap a matrix with "
                        "Interactions.from_csr(X)")

    @classmethod
    def from_interactions(cls, interactions: Interactions) -> TrainingData:
        """Wrap a matrix without events or features.

        Its event log, read on demand, holds one event per stored pair (weight the pair's, time its latest
        event's, value its last), in time order (ties in row-major order): what remains of the events once
        they are summed per pair.
        """
        return cls(interactions)

    @classmethod
    def from_arrays(
        cls,
        users: np.ndarray,
        items: np.ndarray,
        *,
        timestamps: np.ndarray | None = None,
        event_types: np.ndarray | None = None,
        event_values: np.ndarray | None = None,
        session_ids: np.ndarray | None = None,
        context: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        event_weights: Mapping[str, float] | None = None,
        half_life_days: float | None = None,
        user_vocab: Vocabulary | None = None,
        item_vocab: Vocabulary | None = None,
        item_features: Mapping[str, Mapping[str, Any]] | FeatureTable | None = None,
        user_features: Mapping[str, Mapping[str, Any]] | FeatureTable | None = None,
        item_schema: Schema | Mapping[str, Any] | None = None,
        user_schema: Schema | Mapping[str, Any] | None = None,
    ) -> TrainingData:
        """Build from one row per event, in raw ids, in input (insertion) order.

        Parameters
        ----------
        users, items, timestamps, event_types, event_values, weights, event_weights, half_life_days
            As :meth:`Interactions.from_arrays`, which builds :attr:`interactions` from them unchanged.
        user_vocab, item_vocab : Vocabulary, optional
            As :meth:`Interactions.from_arrays`.
        session_ids : array-like of str, optional
            Each event's session (None where none).
        context : array-like, optional
            Each event's context: JSON-object text or a dict (None where none).
        item_features, user_features : mapping or FeatureTable, optional
            Metadata records by raw id (``{"i1": {"GENRES": "Drama|War"}}``), typed with
            :meth:`FeatureTable.from_records`, or ready tables.
        item_schema, user_schema : Schema or dict, optional
            The items / users datasets' schemas, to type the records.

        Returns
        -------
        TrainingData

        Raises
        ------
        DataError
            As :meth:`Interactions.from_arrays`, and for per-event arrays of the wrong length.
        """
        n = len(np.asarray(users, dtype=object).ravel())
        for name, array in (("session_ids", session_ids), ("context", context)):
            if array is not None and len(array) != n:
                raise DataError(f"{name} has {len(array)} entries for {n} events; give one per event")
        # one pass: the events the matrix sums are the log's events
        encoded = encode_events(users, items, timestamps=timestamps, event_types=event_types,
                                event_values=event_values, weights=weights, event_weights=event_weights,
                                half_life_days=half_life_days, user_vocab=user_vocab, item_vocab=item_vocab)
        interactions = Interactions.from_encoded(encoded)
        kept = encoded.kept if not encoded.kept.all() else slice(None)
        if context is not None:
            _context_texts(context, n)  # bad context is an error now, not when the log is first read

        def build_log() -> EventLog:  # on first use: most recipes train on the matrix alone
            type_codes, type_names = _codes(event_types, n, "event_types")
            session_codes, session_names = _codes(session_ids, n, "session_ids")
            contexts = None if context is None else _context_texts(context, n)
            kept_stamps = encoded.timestamps
            log = EventLog(encoded.users, encoded.items, encoded.weights.astype(np.float32), kept_stamps,
                           None if encoded.values is None else encoded.values.astype(np.float32),
                           None if type_codes is None else type_codes[kept], tuple(type_names.tolist()),
                           None if session_codes is None else session_codes[kept], session_names,
                           None if contexts is None else contexts[kept])
            return log if kept_stamps is None else log.take(np.argsort(kept_stamps, kind="stable"))

        return cls(interactions, build_log, _table(item_features, encoded.item_vocab, item_schema),
                   _table(user_features, encoded.user_vocab, user_schema))

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray], *, event_weights: Mapping[str, float] | None = None,
                     half_life_days: float | None = None,
                     item_features: Mapping[str, Mapping[str, Any]] | None = None,
                     user_features: Mapping[str, Mapping[str, Any]] | None = None,
                     item_schema: Schema | Mapping[str, Any] | None = None,
                     user_schema: Schema | Mapping[str, Any] | None = None) -> TrainingData:
        """Build from the store's interaction columns (``Store.read_interactions``: ``user_id``, ``item_id``,
        ``timestamp``, ``event_type``, ``event_value``, and ``session_id``/``context`` where read) and its
        metadata records (``Store.read_items``/``read_users``); see :meth:`from_arrays`.

        One bad stored row never stops a training: rows whose ``event_value`` is infinite (stored before such
        values were refused at every entrance) are left out, logged with a warning and counted in
        :attr:`skipped` under :data:`SKIPPED_NON_FINITE`. A NaN value reads as no value, as NULL does.
        """
        values = columns.get("event_value")
        skipped: dict[str, int] = {}
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            bad = np.isinf(values)
            if bad.any():
                count = int(bad.sum())
                first = int(np.flatnonzero(bad)[0])
                logger.warning("left out %d stored interaction(s) whose event_value is infinite (the first: user %r, "
                               "item %r, value %s); delete or fix them in the store", count,
                               columns["user_id"][first], columns["item_id"][first], values[first])
                keep = ~bad
                columns = {name: np.asarray(column)[keep] if column is not None else None
                           for name, column in columns.items()}
                skipped[SKIPPED_NON_FINITE] = count
        data = cls.from_arrays(
            columns["user_id"], columns["item_id"], timestamps=columns.get("timestamp"),
            event_types=columns.get("event_type"), event_values=columns.get("event_value"),
            session_ids=columns.get("session_id"), context=columns.get("context"),
            event_weights=event_weights, half_life_days=half_life_days, item_features=item_features,
            user_features=user_features, item_schema=item_schema, user_schema=user_schema)
        data.skipped = skipped
        return data

    @classmethod
    def from_frame(
        cls,
        events: pd.DataFrame,
        items: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        *,
        user: str = "user_id",
        item: str = "item_id",
        timestamp: str | None = None,
        event_type: str | None = None,
        value: str | None = None,
        session: str | None = None,
        weight: str | None = None,
        context: Sequence[str] = (),
        event_weights: Mapping[str, float] | None = None,
        half_life_days: float | None = None,
        item_schema: Schema | Mapping[str, Any] | None = None,
        user_schema: Schema | Mapping[str, Any] | None = None,
        item_id_column: str | None = None,
        user_id_column: str | None = None,
    ) -> TrainingData:
        """Build from plain frames: one row per event, and optionally one row per item / user.

        Parameters
        ----------
        events : pandas.DataFrame
            The events, in insertion order.
        items, users : pandas.DataFrame, optional
            Item / user metadata, one row per id; the other columns become features (see
            :meth:`FeatureTable.from_frame`).
        user, item, timestamp, event_type, value, weight
            Columns of ``events``, as :meth:`Interactions.from_frame`.
        session : str, optional
            Column of the session ids.
        context : sequence of str
            Columns of ``events`` kept as each event's context.
        event_weights, half_life_days
            As :meth:`Interactions.from_arrays`.
        item_schema, user_schema : Schema or dict, optional
            Schemas typing the feature columns (inferred from the values without).
        item_id_column, user_id_column : str, optional
            The id columns of ``items`` / ``users`` (default: ``item`` / ``user``).

        Raises
        ------
        DataError
            If a column is absent or holds missing ids/times, and as :meth:`from_arrays`.
        """
        wanted = [user, item, timestamp, event_type, value, session, weight, *context]
        missing = [c for c in wanted if c is not None and c not in events.columns]
        if missing:
            raise DataError(f"the events frame has no column {missing[0]!r}; its columns are {list(events.columns)}")

        def ids(name: str) -> np.ndarray:
            column = events[name]
            empty = column.isna().to_numpy()
            if empty.any():
                raise DataError(f"column {name!r} has a missing id at row {int(np.flatnonzero(empty)[0])}; "
                                "drop or fill rows without ids first")
            return column.astype(str).to_numpy(dtype=object)

        def optional(name: str | None) -> np.ndarray | None:
            if name is None:
                return None
            column = events[name]
            return column.astype(object).where(column.notna(), None).to_numpy(dtype=object)

        contexts = None
        if context:
            frame = events[list(context)]
            contexts = np.asarray([_json_object(dict(zip(context, row, strict=True)))
                                   for row in frame.itertuples(index=False, name=None)], dtype=object)
        data = cls.from_arrays(
            ids(user), ids(item),
            timestamps=None if timestamp is None else _timestamp_seconds(events[timestamp], f"column {timestamp!r}"),
            event_types=optional(event_type),
            event_values=None if value is None else _floats(events[value], f"column {value!r}", allow_nan=True),
            session_ids=optional(session), context=contexts,
            weights=None if weight is None else _floats(events[weight], f"column {weight!r}", allow_nan=False),
            event_weights=event_weights, half_life_days=half_life_days)
        item_table = (None if items is None else
                      FeatureTable.from_frame(items, data.item_vocab, item_id_column or item, item_schema))
        user_table = (None if users is None else
                      FeatureTable.from_frame(users, data.user_vocab, user_id_column or user, user_schema))
        return cls(data.interactions, data.events, item_table, user_table)

    # ---------------------------------------------------------------------------------------- views
    @property
    def events(self) -> EventLog:
        """The ordered event log (derived from the matrix's pairs for data built from a bare matrix)."""
        if self._events is None:
            self._events = (_pairs_as_events(self.interactions) if self._build_events is None
                            else self._build_events())
            self._build_events = None
        return self._events

    @property
    def has_event_log(self) -> bool:
        """Whether the log holds the real events (False: derived from the matrix's pairs)."""
        return not self._events_derived

    @property
    def n_users(self) -> int:
        """Users (matrix rows)."""
        return self.interactions.n_users

    @property
    def n_items(self) -> int:
        """Items (matrix columns)."""
        return self.interactions.n_items

    @property
    def user_vocab(self) -> Vocabulary:
        """Raw <-> dense user ids."""
        return self.interactions.user_vocab

    @property
    def item_vocab(self) -> Vocabulary:
        """Raw <-> dense item ids."""
        return self.interactions.item_vocab

    def __repr__(self) -> str:
        log = "events derived from the pairs" if self._events_derived else f"{len(self.events)} events"
        return (f"TrainingData({self.interactions!r}, {log}, {len(self.item_features)} item features, "
                f"{len(self.user_features)} user features)")


def _table(source: Mapping[str, Mapping[str, Any]] | FeatureTable | None, vocab: Vocabulary,
           schema: Schema | Mapping[str, Any] | None) -> FeatureTable | None:
    if source is None or isinstance(source, FeatureTable):
        return source
    return FeatureTable.from_records(source, vocab, schema)


def _json_object(record: Mapping[str, Any]) -> str | None:
    """A context record as JSON text, nulls left out; None when nothing is left."""
    kept = {}
    for key, value in record.items():
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        kept[key] = value
    return json.dumps(kept, default=str) if kept else None


def _context_texts(context: Any, n: int) -> np.ndarray:
    array = np.empty(len(context), dtype=object)
    array[:] = list(context)  # element by element: a list of dicts must not become a 2-D array
    if len(array) != n:
        raise DataError(f"context has {len(array)} entries for {n} events; give one per event")
    return np.asarray([value if value is None or isinstance(value, str) else _json_object(value)
                       for value in array.tolist()], dtype=object)


def _pairs_as_events(interactions: Interactions) -> EventLog:
    """One event per stored pair, in time order (row-major for ties, and without timestamps)."""
    m = interactions.matrix
    users = np.repeat(np.arange(interactions.n_users, dtype=np.int32), np.diff(m.indptr))
    log = EventLog(users, m.indices.astype(np.int32), m.data.astype(np.float32), interactions.timestamps,
                   interactions.values)
    if interactions.timestamps is not None:
        log = log.take(np.argsort(interactions.timestamps, kind="stable"))
    return log
