"""Read datasets from files, fsspec URLs and SQL queries into validated, canonical DataFrames.

Everything is read and checked before anything is written. Parsing is done by pyarrow and the checks are
vectorised (pyarrow compute and numpy masks, no Python loop per row on the happy path); line numbers are
worked out only when there is a problem to report. Each problem names the source, the line (``row`` for
Parquet and SQL), the field and the value. With ``on_error="fail"`` bad rows raise
:class:`~recsmith.errors.DataError` listing the first :data:`MAX_REPORTED` of them in file order; with
``on_error="skip"`` bad rows are left out and listed as :class:`Reject` records. Problems with the file as a
whole (a missing or unknown column, a damaged Parquet file, an empty file) always raise. Column names match
schema fields without regard to case; an unknown column's message suggests the likely ``--map``
(:func:`suggest_column_map`). Users and items schemas can be inferred from the file (``infer_schema=True``).

Examples
--------
>>> result = read_dataset("ratings.csv", dataset_type="interactions",  # doctest: +SKIP
...                       column_map={"userId": "USER_ID", "movieId": "ITEM_ID", "rating": "EVENT_VALUE",
...                                   "timestamp": "TIMESTAMP"})
>>> result.frame.columns.tolist()  # doctest: +SKIP
['USER_ID', 'ITEM_ID', 'TIMESTAMP', 'EVENT_TYPE', 'EVENT_VALUE']
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from recsmith.data.schema import REQUIRED, RESERVED, Schema, SchemaField
from recsmith.data.values import text_problem
from recsmith.errors import Advice, ConfigError, DataError, advise

__all__ = ["FORMATS", "ReadResult", "Reject", "detect_format", "format_of_name", "mask_secrets", "mask_url",
           "parse_column_map", "read_dataset", "read_sql", "suggest_column_map", "validate_frame"]

logger = logging.getLogger(__name__)

OnError = Literal["fail", "skip"]
ID_FIELDS = {"interactions": "USER_ID", "users": "USER_ID", "items": "ITEM_ID"}
INTERACTION_COLUMNS = ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE")
FORMATS = ("csv", "tsv", "parquet", "jsonl")
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".dat": "csv", ".data": "tsv", ".txt": "csv",
                  ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip")
UNIT_SEPARATOR = "\x1f"
NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
MAX_VALUE_CHARS = 200
MAX_REPORTED = 20
"""How many bad rows a failed import (``on_error="fail"``) lists in its error: the first ones in file order."""
NUL_REASON = "holds a NUL character (\\x00), which PostgreSQL cannot store in text; remove it from the source"
NON_FINITE = "is not a finite number (inf, -inf and NaN are refused: they cannot be trained on; {expect})"
INT64_LIMIT = 2.0**63


@dataclass(frozen=True)
class Reject:
    """A row left out of an import, and why.

    Attributes
    ----------
    line : int
        Line of the row in the file (1 is a CSV header), or row number (from 1) for Parquet and SQL.
    field : str or None
        The field at fault, or None for a problem with the whole row (wrong number of columns, bad JSON).
    value : str or None
        The offending value as text (None when it was empty or missing).
    reason : str
        What is wrong, e.g. ``is not a number (epoch seconds expected)``.
    """

    line: int
    field: str | None
    value: str | None
    reason: str


@dataclass
class ReadResult:
    """A validated dataset in canonical form.

    Attributes
    ----------
    frame : pandas.DataFrame
        Interactions: USER_ID, ITEM_ID (str), TIMESTAMP (int64 epoch seconds), EVENT_TYPE (str, missing where
        absent), EVENT_VALUE (float64, NaN where absent), then the other schema fields. Users/items: the id,
        then the metadata fields.
    rows_read : int
        Data rows read from the source (good and rejected).
    rejects : list of Reject
        Rows left out (only with ``on_error="skip"``), in file order.
    source : str
        Where the data came from.
    schema : Schema or None
        The schema the data was validated against (the one given, the default, or the inferred one).
    schema_inferred : bool
        Whether :attr:`schema` was inferred from the source (``infer_schema=True``).
    """

    frame: pd.DataFrame
    rows_read: int
    rejects: list[Reject] = field(default_factory=list)
    source: str = ""
    schema: Schema | None = None
    schema_inferred: bool = False

    @property
    def rows_loaded(self) -> int:
        """Rows in :attr:`frame`."""
        return len(self.frame)

    def write_rejects(self, path: str | Path) -> None:
        """Write the rejected rows as CSV with the columns line, field, value, reason.

        Parameters
        ----------
        path : str or Path
            Local path or fsspec URL of the file to write.
        """
        with fsspec.open(str(path), "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["line", "field", "value", "reason"])
            for r in self.rejects:
                writer.writerow([r.line, r.field or "", "" if r.value is None else r.value, r.reason])


def problem(source: str, line: int | None, field_name: str | None, value: Any, reason: str,
            unit: str = "line") -> DataError:
    """Build a DataError naming where the problem is.

    The message reads ``"<source> <unit> <line>, field <field>: value '<value>' <reason>"``; the error also
    carries ``source``, ``line``, ``field`` and ``value`` attributes.

    Parameters
    ----------
    source : str
        The file or query.
    line : int or None
        Line (or row) number; None for a problem with the whole source.
    field_name : str or None
        The field at fault.
    value : object
        The offending value (None to leave it out of the message).
    reason : str
        What is wrong and, where it helps, how to fix it.
    unit : str
        ``"line"`` or ``"row"``.

    Returns
    -------
    DataError
    """
    where = source if line is None else f"{source} {unit} {line}"
    if field_name:
        where += f", field {field_name}"
    text = f"{where}: {reason}" if value is None else f"{where}: value {_short(str(value))!r} {reason}"
    return _error(text, source, line, field_name, value)


def _error(text: str, source: str, line: int | None, field_name: str | None, value: Any) -> DataError:
    error = DataError(text)
    error.source, error.line, error.field, error.value = source, line, field_name, value  # type: ignore[attr-defined]
    return error


def detect_format(source: str, fmt: str | None = None, sep: str | None = None) -> str:
    """The format named by ``fmt``, or the one the file name suggests (CSV when unsure).

    Parameters
    ----------
    source : str
        Path or URL (its suffix is looked at, after any compression suffix such as ``.gz``).
    fmt : str, optional
        ``csv``, ``tsv``, ``parquet`` or ``jsonl`` (``json`` and ``ndjson`` mean ``jsonl``).
    sep : str, optional
        A separator given by the user; it makes ``.tsv``/``.data`` files plain delimited text.

    Returns
    -------
    str
        One of :data:`FORMATS`.
    """
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt in ("ndjson", "json"):
            fmt = "jsonl"
        if fmt == "dat":
            fmt = "csv"
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    found = format_of_name(source)
    if found is None:
        return "csv"
    return "csv" if (found == "tsv" and sep is not None) else found


def format_of_name(name: str) -> str | None:
    """The format a file name's suffix names (looked at after a compression suffix such as ``.gz``), or None when
    it names none (:func:`detect_format` then reads CSV).

    Examples
    --------
    >>> format_of_name("ratings.csv.gz"), format_of_name("events.jsonl"), format_of_name("notes.docx")
    ('csv', 'jsonl', None)
    """
    name = name.split("?")[0].lower()
    for suffix in COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    return next((found for suffix, found in SUFFIX_FORMATS.items() if name.endswith(suffix)), None)


def parse_column_map(text: str | None, option: str = "--map") -> dict[str, str]:
    """A column map written ``SOURCE=FIELD,SOURCE=FIELD`` (``SOURCE=-`` drops a column), as ``--map`` takes it.

    Parameters
    ----------
    text : str or None
        The map as written; empty or None is no map.
    option : str
        What the text was given as, for the error message.

    Returns
    -------
    dict
        Source column -> schema field, in the order written.

    Raises
    ------
    ConfigError
        A part that is not ``SOURCE=FIELD``, naming ``option`` and the part.

    Examples
    --------
    >>> parse_column_map("userId=USER_ID, movieId=ITEM_ID,title=-")
    {'userId': 'USER_ID', 'movieId': 'ITEM_ID', 'title': '-'}
    """
    pairs: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        column, sep, target = part.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise ConfigError(f"{option}: {part.strip()!r} is not of the form SOURCE=FIELD (e.g. userId=USER_ID; "
                              "SOURCE=- drops a column)")
        pairs[column.strip()] = target.strip()
    return pairs


def read_dataset(
    source: str | Path,
    *,
    dataset_type: str,
    schema: Schema | None = None,
    column_map: dict[str, str] | None = None,
    sep: str | None = None,
    fmt: str | None = None,
    header: bool = True,
    names: Sequence[str] | None = None,
    on_error: OnError = "fail",
    infer_schema: bool = False,
    schema_origin: str | None = None,
    encoding: str = "utf-8",
    flags: Mapping[str, Sequence[str]] | None = None,
    source_name: str | None = None,
    parsed: Callable[[int], None] | None = None,
) -> ReadResult:
    """Read and validate a dataset file (local path or fsspec URL).

    Column names match schema fields without regard to case (``title`` is the field TITLE), after
    ``column_map``; two columns matching one field are an error.

    Parameters
    ----------
    source : str or Path
        Path or URL (``file://``, ``memory://``, ``s3://`` ...) of a CSV/TSV/``::``-separated, Parquet or JSON
        Lines file; compressed files (``.gz``, ``.bz2`` ...) are opened transparently.
    dataset_type : {"interactions", "users", "items"}
        What the file holds.
    schema : Schema, optional
        The dataset's schema (default: :meth:`Schema.default`, unless ``infer_schema``).
    column_map : dict, optional
        Source column -> schema field, e.g. ``{"userId": "USER_ID"}``; ``"-"`` drops the column.
    sep : str, optional
        Field separator for text files (default ``,``; tab for ``.tsv``; ``::`` for ``.dat``). It may be
        several characters (``::``).
    fmt : {"csv", "tsv", "parquet", "jsonl"}, optional
        Format (default: from the file name).
    header : bool
        Whether a text file's first line names the columns.
    names : sequence of str, optional
        Column names: required for text files without a header; with a header they replace it.
    on_error : {"fail", "skip"}
        Raise, listing the first :data:`MAX_REPORTED` bad rows, or leave bad rows out and list them in
        :attr:`ReadResult.rejects`.
    infer_schema : bool
        Users and items only, without ``schema``: infer the schema from the source's columns (the id column,
        then one nullable field per column: booleans, numbers, categorical, textual or plain strings; see
        :data:`INFER_MULTI_VALUE_SHARE` and the thresholds after it). It is :attr:`ReadResult.schema`.
    schema_origin : str, optional
        Where the schema comes from, for messages (e.g. ``"stored with dataset group shop"``).
    encoding : str
        The text encoding of a CSV/TSV or JSON Lines file (any Python codec name, e.g. ``latin-1`` for the
        MovieLens files); it is decoded to UTF-8 before it is read. Parquet ignores it.
    flags : mapping of str to sequence of str, optional
        Fold 0/1 flag columns into one multi-valued categorical field: ``{"GENRES": ["Action", "Comedy"]}``
        makes a field GENRES holding the names of the columns whose value is 1 (``Action|Comedy``; empty when
        none is), and removes those columns. An entry ``"FIRST..LAST"`` names every column from FIRST to LAST
        in the source's order. Column names match without regard to case, before ``column_map``; a flag is
        ``1``/``0``, ``true``/``false`` or empty (0).
    source_name : str, optional
        What messages call the source (default: ``source``, credentials masked), e.g. an uploaded file's own
        name when it is read from a temporary copy.
    parsed : callable, optional
        Called with the number of rows parsed, before they are validated (an import job's progress).

    Returns
    -------
    ReadResult

    Raises
    ------
    DataError
        A problem in the data, naming the source, line, field and value.
    ConfigError
        An invalid argument (dataset type, format, ``on_error``, a headerless file without names, an unknown
        encoding, a flag column the source lacks).
    """
    url = str(source)
    source = source_name or mask_url(url)  # what messages name: never the credentials in the URL
    schema = _check_args(dataset_type, schema, on_error, infer_schema)
    kind = detect_format(url, fmt, sep)
    data = _open_bytes(url)
    if kind != "parquet":
        data = _to_utf8(source, data, encoding)
    if kind == "parquet":
        raw = _read_parquet(source, data)
    elif kind == "jsonl":
        raw = _read_jsonl(source, data, on_error)
    else:
        if sep is None:
            plain = url.split("?")[0].lower()
            sep = "\t" if kind == "tsv" else ("::" if plain.removesuffix(".gz").endswith(".dat") else ",")
        raw = _read_text(source, data, sep, header, list(names) if names is not None else None, on_error)
    if parsed is not None:
        parsed(raw.table.num_rows + len(raw.problems))
    return _validate(raw, dataset_type=dataset_type, schema=schema, column_map=column_map, on_error=on_error,
                     infer=infer_schema, schema_origin=schema_origin, flags=flags)


def read_sql(
    query: str,
    db_url: str,
    *,
    dataset_type: str,
    schema: Schema | None = None,
    column_map: dict[str, str] | None = None,
    on_error: OnError = "fail",
    infer_schema: bool = False,
    schema_origin: str | None = None,
    flags: Mapping[str, Sequence[str]] | None = None,
) -> ReadResult:
    """Read and validate the result of a SQL query run on a database (SQLAlchemy URL).

    Row numbers in messages count the result's rows from 1. Column names match schema fields without
    regard to case (PostgreSQL folds unquoted aliases to lower case), and SQL date/time values in the
    TIMESTAMP column become epoch seconds. A SQLite URL must name an existing database file (SQLite would
    create an empty one).

    Parameters
    ----------
    query : str
        A SELECT statement.
    db_url : str
        SQLAlchemy URL, e.g. ``sqlite:///data.db`` or ``postgresql+psycopg://user@host/db``.
    dataset_type : {"interactions", "users", "items"}
        What the query returns.
    schema : Schema, optional
        The dataset's schema (default: :meth:`Schema.default`).
    column_map : dict, optional
        Result column -> schema field; ``"-"`` drops the column.
    on_error : {"fail", "skip"}
        Raise at the first bad rows, or leave bad rows out and list them.
    infer_schema, schema_origin, flags
        As for :func:`read_dataset`.

    Returns
    -------
    ReadResult
    """
    import sqlalchemy as sa

    schema = _check_args(dataset_type, schema, on_error, infer_schema)
    source = f"sql query on {mask_url(db_url)}"
    try:
        url = sa.engine.make_url(db_url)
        engine = sa.create_engine(db_url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(f"db_url {mask_url(db_url)!r} is not a usable SQLAlchemy URL: "
                          f"{mask_secrets(str(exc), db_url)}") from None
    _check_sqlite_exists(url, db_url)
    try:
        with engine.connect() as conn:
            result = conn.exec_driver_sql(query)
            columns = [str(c) for c in result.keys()]  # noqa: SIM118
            rows = result.fetchall()
    except sa.exc.SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        raise DataError(f"{source}: the query failed: {mask_secrets(str(detail), db_url)}") from None
    finally:
        engine.dispose()
    if len(set(columns)) != len(columns):
        raise problem(source, None, None, None, f"the query returns duplicate column names {columns}; alias them")
    values = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    table = pa.table({name: _py_to_arrow(list(column)) for name, column in zip(columns, values, strict=True)})
    raw = _Raw(source=source, table=table, unit="row", header_line=None)
    return _validate(raw, dataset_type=dataset_type, schema=schema, column_map=column_map, on_error=on_error,
                     infer=infer_schema, schema_origin=schema_origin, flags=flags)


def _check_sqlite_exists(url: Any, db_url: str) -> None:
    """ConfigError when a SQLite URL names a database file that does not exist (SQLite would create it)."""
    if url.get_backend_name() != "sqlite":
        return
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:") or url.query.get("uri"):
        return
    path = Path(database)
    if not path.is_file():
        where = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"--db-url {mask_url(db_url)}: the SQLite database {path} {where} "
                          f"(looked for {path.resolve()}); give the path of an existing database file, "
                          f"e.g. sqlite:///path/to/app.db (four slashes for an absolute path: sqlite:////abs/app.db)")


def validate_frame(
    frame: pd.DataFrame,
    *,
    source: str,
    dataset_type: str,
    schema: Schema | None = None,
    column_map: dict[str, str] | None = None,
    on_error: OnError = "fail",
) -> ReadResult:
    """Validate an in-memory DataFrame as :func:`read_dataset` validates a file.

    Rows are numbered from 1 in messages (``row``).

    Parameters
    ----------
    frame : pandas.DataFrame
        The records, one column per field (or per source column with ``column_map``).
    source : str
        A name for the data, used in messages.
    dataset_type : {"interactions", "users", "items"}
        What the frame holds.
    schema : Schema, optional
        The dataset's schema (default: :meth:`Schema.default`).
    column_map : dict, optional
        Column -> schema field; ``"-"`` drops the column.
    on_error : {"fail", "skip"}
        Raise at the first bad row, or leave bad rows out and list them.

    Returns
    -------
    ReadResult
    """
    schema = _check_args(dataset_type, schema, on_error)
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise problem(source, None, None, None, f"duplicate column names {columns}")
    table = pa.table({name: _py_to_arrow(frame.iloc[:, i]) for i, name in enumerate(columns)})
    raw = _Raw(source=source, table=table, unit="row", header_line=None)
    return _validate(raw, dataset_type=dataset_type, schema=schema, column_map=column_map, on_error=on_error)


# ------------------------------------------------------------------------------------------ plumbing
@dataclass
class _Raw:
    """A source parsed into raw columns, plus what is needed to report problems in it."""

    source: str
    table: pa.Table
    unit: str
    header_line: int | None
    #: Row-level problems found while parsing (wrong column count, bad JSON, bad bytes), with their lines.
    problems: list[Reject] = field(default_factory=list)
    #: Maps table row indices to line numbers; None means row ``i`` is number ``i + 1``.
    line_of: Callable[[np.ndarray], np.ndarray] | None = None

    def lines(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        return rows + 1 if self.line_of is None else self.line_of(rows)


def _check_args(dataset_type: str, schema: Schema | None, on_error: str, infer: bool = False) -> Schema:
    if dataset_type not in REQUIRED:
        raise ConfigError(f"unknown dataset type {dataset_type!r}; use one of {', '.join(REQUIRED)}")
    if on_error not in ("fail", "skip"):
        raise ConfigError(f"unknown on_error {on_error!r}; use 'fail' or 'skip'")
    if infer and dataset_type not in ("users", "items"):
        raise ConfigError(f"a schema is inferred for users and items, not {dataset_type}; interactions have a "
                          f"default schema (give another one with --schema FILE)")
    if infer and schema is not None:
        raise ConfigError("give a schema or infer one from the source, not both")
    schema = schema if schema is not None else Schema.default(dataset_type)
    schema.validate_for(dataset_type)
    return schema


SECRET_QUERY_NAMES = re.compile(r"pass|pwd|secret|token|key|sig|credential|auth|session", re.IGNORECASE)
"""Query parameters of a URL whose values :func:`mask_url` hides (``password``, ``aws_secret_access_key``,
``X-Amz-Signature``, a SAS ``sig``, ``token``...)."""


def mask_url(url: str) -> str:
    """``url`` with its credentials replaced by ``***``: the password of ``scheme://user:password@host`` and
    the values of secret-named query parameters (:data:`SECRET_QUERY_NAMES`); a local path is given back as it is.

    The one masking of URLs for display and for what is stored (import job sources, error messages).

    Examples
    --------
    >>> mask_url("postgresql://reader:s3cret@db:5432/shop")
    'postgresql://reader:***@db:5432/shop'
    >>> mask_url("https://host/data.csv?X-Amz-Signature=abc&x=1")
    'https://host/data.csv?X-Amz-Signature=***&x=1'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    location, slash, path = rest.partition("/")
    if "@" in location:
        userinfo, _, host = location.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        location = f"{user}:***@{host}" if colon else location
    path, question, query = f"{slash}{path}".partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        parts = []
        for part in query.split("&"):
            name, equals, value = part.partition("=")
            parts.append(f"{name}=***" if equals and value and SECRET_QUERY_NAMES.search(name) else part)
        path = f"{path}?{'&'.join(parts)}{hash_}{fragment}"
    return f"{scheme}://{location}{path}"


def mask_secrets(text: str, *urls: str | None) -> str:
    """``text`` (an error message) with each of ``urls`` and the secrets in them (passwords, secret query
    values, as given and percent-decoded) replaced as :func:`mask_url` does."""
    from urllib.parse import unquote

    for url in urls:
        if not url or "://" not in url:
            continue
        text = text.replace(url, mask_url(url))
        masked = mask_url(url)
        secrets = []
        location = url.partition("://")[2].partition("/")[0]
        if "@" in location and ":" in location.rpartition("@")[0]:
            secrets.append(location.rpartition("@")[0].partition(":")[2])
        query = url.partition("?")[2].partition("#")[0]
        secrets += [part.partition("=")[2] for part in query.split("&")
                    if SECRET_QUERY_NAMES.search(part.partition("=")[0])]
        for secret in {s for raw in secrets for s in (raw, unquote(raw))}:
            if len(secret) >= 4 and secret not in masked:  # shorter: masking it would garble the message
                text = text.replace(secret, "***")
    return text


def _short(text: str) -> str:
    """A value as shown in a message or a reject file: cut at MAX_VALUE_CHARS, NUL characters spelled ``\\x00``."""
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."


def _open_bytes(url: str) -> bytes:
    source = mask_url(url)
    try:
        with fsspec.open(url, "rb", compression="infer") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DataError(f"{source}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{source}: is a folder; give the path of a file") from None
    except (OSError, ValueError, ImportError, EOFError) as exc:
        raise DataError(f"{source}: cannot be read: {mask_secrets(str(exc), url)}") from None


def _to_utf8(source: str, data: bytes, encoding: str) -> bytes:
    """Text in ``encoding`` as UTF-8 bytes (UTF-8 itself is returned as it is: its checks come later)."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r}; give a Python codec name such as utf-8, latin-1 or "
                          "cp1252") from None
    if codec == "utf-8":
        return data
    try:
        return data.decode(codec).encode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise problem(source, line, None, None, f"byte 0x{data[exc.start:exc.start + 1].hex()} is not valid "
                                                f"{encoding}; give the file's encoding") from None


def _py_to_arrow(values: Any) -> pa.Array:
    """A column of Python/pandas values as an Arrow array; mixed types become strings."""
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError):
        array = pa.array([_text_of(v) for v in values], type=pa.string())
    if pa.types.is_decimal(array.type):
        array = pc.cast(array, pa.float64())
    return array


def _shown(value: Any) -> str:
    """A present value as text for a message (a float NaN reads ``nan``, not as missing)."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return _text_of(value) or ""


def _text_of(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


# ------------------------------------------------------------------------------------------ bytes and lines
def _line_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of each physical line (``\\n`` separated, the ``\\r`` of ``\\r\\n`` excluded)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    starts = np.r_[0, newlines + 1]
    ends = np.r_[newlines, len(buf)]
    if starts[-1] == len(buf):  # the file ends with a newline: no last line after it
        starts, ends = starts[:-1], ends[:-1]
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13) if len(buf) else np.zeros(0, dtype=bool)
    return starts, ends - has_cr


def _check_encoding(source: str, data: bytes, on_error: OnError, columns: list[str] | None = None,
                    sep: bytes | None = None) -> tuple[bytes, list[Reject]]:
    """Check the bytes are UTF-8. With ``skip``, lines holding bad bytes are blanked and reported."""
    try:
        data.decode("utf-8")
        return data, []
    except UnicodeDecodeError:
        pass
    rejects: list[Reject] = []
    chunks: list[bytes] = []
    position = 0
    while True:
        try:
            data[position:].decode("utf-8")
            chunks.append(data[position:])
            break
        except UnicodeDecodeError as exc:
            bad = position + exc.start
            line_start = data.rfind(b"\n", 0, bad) + 1
            line_end = data.find(b"\n", bad)
            line_end = len(data) if line_end < 0 else line_end
            line = data.count(b"\n", 0, bad) + 1
            column = bad - line_start + 1
            field_name = None
            if columns is not None and sep is not None and b'"' not in data[line_start:bad]:
                index = data.count(sep, line_start, bad)
                field_name = columns[index] if index < len(columns) else None
            reason = (f"encoding error: byte 0x{data[bad:bad + 1].hex()} at character {column} is not valid UTF-8; "
                      f"save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8), or give its encoding "
                      f"(--encoding latin-1)")
            text = data[line_start:line_end].decode("utf-8", errors="replace").rstrip("\r")
            if line == 1:
                raise problem(source, line, None, None, reason) from None
            if on_error == "fail":  # listed with the other bad rows; enough of them: stop looking
                rejects.append(Reject(line, field_name, None, reason))
                if len(rejects) >= MAX_REPORTED:
                    raise _problems_error(source, "line", rejects, None) from None
            else:
                rejects.append(Reject(line, field_name, _short(text), reason))
            chunks.append(data[position:line_start])
            position = line_end  # keep the newline: the line becomes blank and line numbers stay right
    return b"".join(chunks), rejects


class _TextLines:
    """Works out which file line each parsed row came from (only called when there is a problem)."""

    def __init__(self, data: bytes, sep: str, header: bool, n_columns: int) -> None:
        self.data, self.sep, self.header, self.n_columns = data, sep, header, n_columns
        self._valid: np.ndarray | None = None
        self._invalid: list[tuple[int, int, str]] = []  # (line, fields, text)

    def _compute(self) -> None:
        if self._valid is not None:
            return
        if b'"' not in self.data:
            self._compute_plain()
        else:
            self._compute_quoted()

    def _compute_plain(self) -> None:
        buf = np.frombuffer(self.data, dtype=np.uint8)
        starts, ends = _line_bounds(self.data)
        seps = np.flatnonzero(buf == ord(self.sep))
        fields = np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1
        number = np.arange(1, len(starts) + 1)
        record = (ends > starts) & (number > (1 if self.header else 0))
        self._valid = number[record & (fields == self.n_columns)]
        bad = np.flatnonzero(record & (fields != self.n_columns))
        self._invalid = [(int(number[i]), int(fields[i]),
                          self.data[starts[i]:ends[i]].decode("utf-8", errors="replace")) for i in bad]

    def _compute_quoted(self) -> None:
        text = self.data.decode("utf-8", errors="replace")
        physical = text.split("\n")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.sep, strict=False)
        valid: list[int] = []
        end = 0
        try:
            for row in reader:
                start, end = end + 1, reader.line_num
                if not row or (self.header and start == 1):
                    continue
                if len(row) == self.n_columns:
                    valid.append(start)
                else:
                    self._invalid.append((start, len(row), physical[start - 1].rstrip("\r")))
        except csv.Error:  # an unterminated quote runs to the end of the file
            self._invalid.append((end + 1, 0, physical[end].rstrip("\r") if end < len(physical) else ""))
        self._valid = np.asarray(valid, dtype=np.int64)

    def valid_lines(self) -> np.ndarray:
        self._compute()
        assert self._valid is not None
        return self._valid

    def invalid(self) -> list[tuple[int, int, str]]:
        self._compute()
        return self._invalid


# ------------------------------------------------------------------------------------------ formats
def _read_text(source: str, data: bytes, sep: str, header: bool, names: list[str] | None,
               on_error: OnError) -> _Raw:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise problem(source, None, None, None, "the file is empty")
    if sep in ("\\t", "tab"):
        sep = "\t"
    if not sep:
        raise ConfigError("the separator cannot be empty")
    shown_sep = sep
    if len(sep.encode("utf-8")) > 1:
        if UNIT_SEPARATOR.encode() in data:
            raise problem(source, None, None, None, f"cannot use separator {sep!r}: the file holds byte 0x1f")
        data = data.replace(sep.encode("utf-8"), UNIT_SEPARATOR.encode())
        sep = UNIT_SEPARATOR
    first_end = data.find(b"\n")
    first = data[: len(data) if first_end < 0 else first_end].decode("utf-8", errors="replace").rstrip("\r")
    file_columns = [c.strip() for c in next(csv.reader([first], delimiter=sep))] if header else None
    if names is None and file_columns is None:
        raise ConfigError(f"{source}: a file without a header needs column names (names=[...] or --names)")
    columns = list(names) if names is not None else list(file_columns or [])
    where = 1 if header else None
    if any(not c for c in columns):
        raise problem(source, where, None, None,
                      f"column {columns.index('') + 1} has no name; the columns are {columns}")
    if len(set(columns)) != len(columns):
        duplicate = next(c for c in columns if columns.count(c) > 1)
        raise problem(source, where, duplicate, None, f"duplicate column name; the columns are {columns}")
    if file_columns is not None and len(file_columns) != len(columns):
        raise problem(source, 1, None, None,
                      f"names gives {len(columns)} columns but the header has {len(file_columns)}: {file_columns}")
    data, encoding_rejects = _check_encoding(source, data, on_error, columns, sep.encode("utf-8"))
    invalid_count = 0

    def on_invalid(row: Any) -> str:
        nonlocal invalid_count
        invalid_count += 1
        return "skip"

    quoted = b'"' in data
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=columns, skip_rows=1 if header else 0, use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=sep, invalid_row_handler=on_invalid,
                                              newlines_in_values=quoted),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        raise problem(source, None, None, None, f"cannot be parsed as delimited text: {exc}") from exc
    lines = _TextLines(data, sep, header, len(columns))
    raw = _Raw(source=source, table=table, unit="line", header_line=1 if header else None,
               problems=list(encoding_rejects))
    valid_cache: dict[str, np.ndarray] = {}

    def line_of(rows: np.ndarray) -> np.ndarray:
        if "valid" not in valid_cache:
            valid = lines.valid_lines()
            if len(valid) != table.num_rows:  # should not happen; fall back to counting rows
                logger.warning("%s: could not map rows to lines (%d rows, %d lines); line numbers are approximate",
                               source, table.num_rows, len(valid))
                first_line = 2 if header else 1
                valid = np.arange(first_line, first_line + table.num_rows, dtype=np.int64)
            valid_cache["valid"] = valid
        return valid_cache["valid"][rows]

    raw.line_of = line_of
    if invalid_count:
        stripped = data.rstrip(b"\r\n")
        last_line = stripped.count(b"\n") + 1
        for line, n_fields, text in lines.invalid():
            shown = text.replace(UNIT_SEPARATOR, shown_sep)
            if text.count('"') % 2 == 1:
                reason = "unterminated quote"
            else:
                reason = f"has {n_fields} columns, {len(columns)} expected ({', '.join(columns)})"
            if line == last_line or (text.count('"') % 2 == 1 and line >= last_line - text.count("\n")):
                reason += " (the file looks truncated)"
            raw.problems.append(Reject(line, None, _short(shown), reason))
        if len(lines.invalid()) != invalid_count:
            logger.warning("%s: pyarrow skipped %d malformed rows, %d found by line", source, invalid_count,
                           len(lines.invalid()))
    return raw


def _read_parquet(source: str, data: bytes) -> _Raw:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise problem(source, None, None, None,
                      f"is not a readable Parquet file (truncated or damaged?): {exc}") from exc
    return _Raw(source=source, table=table, unit="row", header_line=None)


def _read_jsonl(source: str, data: bytes, on_error: OnError) -> _Raw:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise problem(source, None, None, None, "the file is empty")
    data, encoding_rejects = _check_encoding(source, data, on_error)
    starts, ends = _line_bounds(data)
    blank = ends <= starts
    buf = np.frombuffer(data, dtype=np.uint8)
    maybe = np.flatnonzero(~blank & np.isin(buf[np.minimum(starts, max(len(buf) - 1, 0))], (9, 13, 32)))
    for i in maybe:  # lines that start with a space: few, so a loop over them is fine
        blank[i] = not data[starts[i]:ends[i]].strip()
    record_lines = np.flatnonzero(~blank) + 1
    table: pa.Table | None = None
    try:
        table = pajson.read_json(io.BytesIO(data))
        if table.num_rows != len(record_lines):
            table = None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        table = None
    if table is not None:
        lines = record_lines

        def line_of(rows: np.ndarray) -> np.ndarray:
            return lines[rows]

        return _Raw(source=source, table=table, unit="line", header_line=None, line_of=line_of,
                    problems=list(encoding_rejects))
    return _read_jsonl_slow(source, data, on_error, encoding_rejects)


def _read_jsonl_slow(source: str, data: bytes, on_error: OnError, rejects: list[Reject]) -> _Raw:
    """Line by line, for files pyarrow cannot read (bad or truncated lines, values that change type)."""
    text = data.decode("utf-8")
    physical = text.split("\n")
    last = max((i for i, line in enumerate(physical, start=1) if line.strip()), default=0)
    columns: dict[str, list[Any]] = {}
    lines: list[int] = []
    problems = list(rejects)
    n = 0
    for number, line in enumerate(physical, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"a JSON object {{...}} was expected, not {type(record).__name__}")
            _check_unicode(record)
        except ValueError as exc:
            reason = f"not a valid JSON object ({exc})"
            if number == last and isinstance(exc, json.JSONDecodeError):
                reason += " (the file looks truncated)"
            problems.append(Reject(number, None, _short(line.rstrip("\r")), reason))
            if on_error == "fail" and len(problems) >= MAX_REPORTED:
                raise _problems_error(source, "line", problems, None) from None
            continue
        for key, value in record.items():
            column = columns.get(str(key))
            if column is None:
                column = columns[str(key)] = [None] * n
            if isinstance(value, float) and not math.isfinite(value):
                value = json.dumps(value)  # NaN / Infinity as text, so validation names them (not a missing value)
            column.append(value)
        n += 1
        for column in columns.values():
            if len(column) < n:
                column.append(None)
        lines.append(number)
    table = pa.table({name: _py_to_arrow(values) for name, values in columns.items()}) if columns else (
        pa.table({}))
    if not columns and n:
        table = pa.table({"__empty__": pa.nulls(n)}).drop_columns(["__empty__"])
    array = np.asarray(lines, dtype=np.int64)

    def line_of(rows: np.ndarray) -> np.ndarray:
        return array[rows]

    return _Raw(source=source, table=table, unit="line", header_line=None, problems=problems, line_of=line_of)


def _check_unicode(record: dict[str, Any]) -> None:
    """ValueError when a JSON record holds a string that is not valid Unicode (an unpaired surrogate such as
    ``"\\ud800"``, which no database can store: :func:`recsmith.data.values.text_problem`)."""
    for key, value in record.items():
        for text in (key, value) if isinstance(value, str) else (key,):
            problem = text_problem(str(text).replace("\x00", ""))  # NUL: refused per column, naming the field
            if problem is not None:
                raise ValueError(f"field {str(key).encode('utf-8', 'backslashreplace').decode()!r} {problem}")


# ------------------------------------------------------------------------------------------ column names
LIKELY_FIELDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("USER_ID", re.compile(r"^(user|customer|client|member|visitor|account|buyer|viewer|person|profile|u)"
                           r"(id|key|no|num|number)?$|^user[a-z0-9]*id$")),
    ("ITEM_ID", re.compile(r"^(item|movie|product|sku|article|video|song|track|book|asin|film|show|offer|listing|i)"
                           r"(id|key|no|num|number|code)?$|^(item|movie|product)[a-z0-9]*id$")),
    ("EVENT_VALUE", re.compile(r"^(rating|ratings|value|score|stars|eventvalue|weight|amount|quantity|qty)$")),
    ("TIMESTAMP", re.compile(r"^(ts|epoch|when|at|created|createdat)$|(timestamp|time|date)$")),
    ("EVENT_TYPE", re.compile(r"^(event|eventtype|type|action|kind|interaction|interactiontype|eventname|activity)$")),
)
"""Which schema field a source column is likely meant for, by its name (lower case, letters and digits only):
``userId`` -> USER_ID, ``movie_id``/``sku`` -> ITEM_ID, ``rating`` -> EVENT_VALUE, ``date`` -> TIMESTAMP,
``type`` -> EVENT_TYPE. Only ever suggested in messages (:func:`suggest_column_map`), never applied."""


def _normalized(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def suggest_column_map(columns: Sequence[str], fields: Sequence[str], dataset_type: str) -> dict[str, str]:
    """The fields that source columns matching none are likely meant for, judged by their names.

    Only for messages ("did you mean --map userId=USER_ID,movieId=ITEM_ID?"): an import never maps a column
    the user did not map.

    Parameters
    ----------
    columns : sequence of str
        The source's columns.
    fields : sequence of str
        The schema's field names.
    dataset_type : {"interactions", "users", "items"}
        What the source holds (a column called ``id`` is its id field).

    Returns
    -------
    dict
        Column -> field, in column order, for the columns with a likely field the other columns do not
        already match (see :data:`LIKELY_FIELDS`); each field at most once.

    Examples
    --------
    >>> suggest_column_map(["userId", "movieId", "rating", "timestamp"],
    ...                    ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"], "interactions")
    {'userId': 'USER_ID', 'movieId': 'ITEM_ID', 'rating': 'EVENT_VALUE'}
    """
    upper = {f.upper(): f for f in fields}
    taken = {upper[c.upper()] for c in columns if c.upper() in upper}
    free = [c for c in columns if c.upper() not in upper]
    found: dict[str, str] = {}
    for target, pattern in LIKELY_FIELDS:
        if target not in fields or target in taken:
            continue
        column = next((c for c in free if c not in found and pattern.search(_normalized(c))), None)
        if column is not None:
            found[column] = target
    id_field = ID_FIELDS[dataset_type]
    if id_field in fields and id_field not in taken and id_field not in found.values():
        column = next((c for c in free if c not in found and _normalized(c) == "id"), None)
        if column is not None:
            found[column] = id_field
    return {c: found[c] for c in columns if c in found}


def _match_name(wanted: str, names: Sequence[str]) -> str | None:
    """``wanted`` if it is one of ``names``, else the one name equal to it without regard to case, else None."""
    if wanted in names:
        return wanted
    matches = [n for n in names if n.upper() == wanted.upper()]
    return matches[0] if len(matches) == 1 else None


def _apply_map(raw: _Raw, schema: Schema | None, column_map: dict[str, str] | None) -> tuple[pa.Table, list[str]]:
    """The source's table with ``--map`` applied (renamed, dropped columns), and each column's source name.

    Source columns and target fields are matched without regard to case; ``schema`` None (inference) leaves
    the targets as given.
    """
    table = raw.table
    names = list(table.column_names)
    if not column_map:
        return table, names
    renamed: dict[str, str] = {}
    for wanted, target in column_map.items():
        column = _match_name(wanted, names)
        if column is None:
            raise problem(raw.source, raw.header_line, wanted, None,
                          f"the column map names source column {wanted!r} (--map {wanted}={target}), which "
                          f"the source does not have; its columns are {names}", unit=raw.unit)
        if target != "-" and schema is not None:
            field_name = _match_name(target, schema.names)
            if field_name is None:
                raise ConfigError(f"the column map targets {target!r}, which is not a field of the schema "
                                  f"({', '.join(schema.names)}); use '-' to drop a column")
            target = field_name
        renamed[column] = target
    keep = [c for c in names if renamed.get(c) != "-"]
    return table.select(keep).rename_columns([renamed.get(c, c) for c in keep]), keep


def _check_distinct(raw: _Raw, names: list[str], origins: list[str]) -> None:
    """Refuse two source columns that end up as one field (mapped to it, or equal to it but for case)."""
    first: dict[str, str] = {}
    for name, origin in zip(names, origins, strict=True):
        if name in first:
            other = first[name]
            raise advise(problem(raw.source, raw.header_line, name, None,
                                 f"columns {other!r} and {origin!r} both match field {name} (column names match "
                                 "fields without regard to case)", unit=raw.unit),
                         Advice("duplicate_field", name, names=(other, origin)),
                         f"keep one (after --map), e.g. drop the other with --map {origin}=-")
        first[name] = origin


def _match_fields(raw: _Raw, table: pa.Table, origins: list[str], schema: Schema) -> pa.Table:
    """The columns renamed to the schema fields they match without regard to case (``title`` -> TITLE)."""
    names = [_match_name(c, schema.names) or c for c in table.column_names]
    _check_distinct(raw, names, origins)
    return table.rename_columns(names)


def _map_hint(column_map: dict[str, str] | None, suggested: dict[str, str]) -> str:
    """"did you mean --map ...?": the ``--map`` already given with the suggested pairs added."""
    pairs = dict(column_map or {}) | suggested
    return f"did you mean --map {','.join(f'{c}={t}' for c, t in pairs.items())}?"


def _unknown_fields_error(raw: _Raw, table: pa.Table, schema: Schema, dataset_type: str, unknown: list[str],
                          column_map: dict[str, str] | None, schema_origin: str | None) -> DataError:
    """What is wrong when columns match no field of the schema, then the likely fix in the CLI's terms (the
    ``--map`` and ``--schema`` that ``import_dataset``'s ``column_map`` and ``schema`` mirror)."""
    where = "" if raw.header_line is None else f" line {raw.header_line}"
    origin = f" ({schema_origin})" if schema_origin else ""
    what = (f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in {raw.source}{where}: "
            f"the {dataset_type} schema{origin} has {', '.join(schema.names)} (column names match fields without "
            f"regard to case)")
    suggested = {c: f for c, f in suggest_column_map(table.column_names, schema.names, dataset_type).items()
                 if c in unknown}
    rest = [c for c in unknown if c not in suggested]
    advice = [_map_hint(column_map, suggested)] if suggested else []
    if rest:
        lead = f"For {', '.join(map(repr, rest))}: p" if suggested else "p"
        them = "them" if len(rest) > 1 else "it"
        advice.append(f"{lead}ass a schema that also has {', '.join(_inferred_name(c) for c in rest)} with "
                      f"--schema FILE, or drop {them} with --map {','.join(f'{c}=-' for c in rest)}")
    return advise(_error(what, raw.source, raw.header_line, unknown[0], None),
                  Advice("unknown_field", unknown[0], dataset_type, tuple(schema.names)), " ".join(advice))


# ------------------------------------------------------------------------------------------ schema inference
INFER_MULTI_VALUE_SHARE = 0.1
"""A string column where at least this share of the values holds ``|`` is categorical with several values."""
INFER_CATEGORICAL_MAX_DISTINCT = 1000
INFER_CATEGORICAL_MAX_SHARE = 0.2
"""A string column with at most 1000 distinct values, and at most this share of distinct values among its values
(each value repeated five times on average), is categorical."""
INFER_TEXTUAL_MIN_CHARS = 20
INFER_TEXTUAL_MIN_SPACE_SHARE = 0.5
"""A string column, not categorical, whose values are 20 characters long on average and at least half of which
hold a space (words), is free text: textual. Other strings are plain strings."""
INTEGER_TEXT = r"^[+-]?\d{1,18}$"


def _inferred_name(column: str) -> str:
    """The field name a column gets in an inferred schema: upper case, other characters as ``_``."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", column.strip()).strip("_").upper() or "FIELD"
    return ("_" + name if name[0].isdigit() else name)[:150]


def _infer_field(name: str, column: pa.ChunkedArray) -> SchemaField:
    """One field of an inferred schema, from the column's values (blank values make no difference)."""
    kind = column.type
    if pa.types.is_boolean(kind):
        return SchemaField(name, "boolean", nullable=True)
    if pa.types.is_integer(kind) or pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return SchemaField(name, "long", nullable=True)
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return SchemaField(name, "double", nullable=True)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return SchemaField(name, "string", nullable=True, categorical=True)
    text, blank = _blank(_as_text(column))
    values = text.filter(pa.array(~blank)) if blank.any() else text
    n = len(values)
    if n == 0:
        return SchemaField(name, "string", nullable=True)
    if _mask(pc.is_in(pc.utf8_lower(values), pa.array(["true", "false"]))).all():
        return SchemaField(name, "boolean", nullable=True)
    if _mask(pc.match_substring_regex(values, NUMBER)).all() and not _mask(
            pc.match_substring_regex(values, r"^[+-]?0\d")).any():  # 0123 is a code, not a number
        integer = _mask(pc.match_substring_regex(values, INTEGER_TEXT)).all()
        return SchemaField(name, "long" if integer else "double", nullable=True)
    if _mask(pc.match_substring(values, "|")).mean() >= INFER_MULTI_VALUE_SHARE:
        return SchemaField(name, "string", nullable=True, categorical=True)
    distinct = pc.count_distinct(values).as_py()
    if distinct <= INFER_CATEGORICAL_MAX_DISTINCT and distinct <= INFER_CATEGORICAL_MAX_SHARE * n:
        return SchemaField(name, "string", nullable=True, categorical=True)
    mean_chars = pc.mean(pc.utf8_length(values)).as_py() or 0.0
    if (mean_chars >= INFER_TEXTUAL_MIN_CHARS
            and _mask(pc.match_substring_regex(values, r"\s")).mean() >= INFER_TEXTUAL_MIN_SPACE_SHARE):
        return SchemaField(name, "string", nullable=True, textual=True)
    return SchemaField(name, "string", nullable=True)


def _infer_schema(raw: _Raw, table: pa.Table, origins: list[str], dataset_type: str,
                  column_map: dict[str, str] | None, categorical: set[str] | None = None) -> tuple[Schema, pa.Table]:
    """A users or items schema inferred from the source's columns, and the columns renamed to its fields.

    The id column is the one called USER_ID / ITEM_ID without regard to case (after ``--map``); each other
    column becomes a nullable field named after it in upper case: a boolean (true/false), a number (``long``
    when every value is a whole number, else ``double``; a value with a leading zero makes it a string), or a
    string that is categorical (multi-valued with ``|``, or of few distinct values), textual (long text of
    words) or plain, by the thresholds above. The columns named in ``categorical`` (folded flags) are
    categorical strings whatever their values.
    """
    id_field = ID_FIELDS[dataset_type]
    id_column = _match_name(id_field, table.column_names)
    if id_column is None:
        suggested = suggest_column_map(table.column_names, [id_field], dataset_type)
        hint = (_map_hint(column_map, suggested) if suggested else
                f"map the id column to it with --map COLUMN={id_field}")
        raise problem(raw.source, raw.header_line, id_field, None,
                      f"required column {id_field} is missing; the columns are {table.column_names}; {hint}",
                      unit=raw.unit)
    names = [id_field if c == id_column else _inferred_name(c) for c in table.column_names]
    _check_distinct(raw, names, origins)
    fields = [SchemaField(id_field, "string")]
    for name, column in zip(names, table.columns, strict=True):
        if name == id_field:
            continue
        folded = categorical is not None and origins[names.index(name)] in categorical
        spec = SchemaField(name, "string", nullable=True, categorical=True) if folded else _infer_field(name, column)
        allowed = RESERVED.get(name)
        if allowed is not None and spec.kind not in allowed:
            origin = origins[names.index(name)]
            raise problem(raw.source, raw.header_line, name, None,
                          f"column {origin!r} would be the reserved field {name}, which must be "
                          f"{' or '.join(allowed)}, but its values are {spec.kind}s; rename it with "
                          f"--map {origin}=OTHER_NAME or give a schema with --schema FILE", unit=raw.unit)
        fields.append(spec)
    schema = Schema(fields, name=dataset_type.capitalize())
    schema = Schema.from_json(schema.to_dict())  # what is stored must parse back
    logger.info("%s: inferred the %s schema %s", raw.source, dataset_type, json.dumps(schema.to_dict()))
    return schema, table.rename_columns(names)


# ------------------------------------------------------------------------------------------ flag columns
FLAG_TRUE = ("1", "true")
FLAG_FALSE = ("0", "false")


def _flag_columns(raw: _Raw, field_name: str, entries: Sequence[str]) -> list[str]:
    """The source columns one ``flags`` entry names, in the source's order (``FIRST..LAST`` ranges expanded)."""
    names = list(raw.table.column_names)
    columns: list[str] = []

    def find(wanted: str) -> str:
        column = _match_name(wanted.strip(), names)
        if column is None:
            raise problem(raw.source, raw.header_line, field_name, None,
                          f"the flag columns of {field_name} name column {wanted.strip()!r} (--flags), which the "
                          f"source does not have; its columns are {names}", unit=raw.unit)
        return column

    for entry in entries:
        first, dots, last = entry.partition("..")
        if dots:
            start, stop = names.index(find(first)), names.index(find(last))
            if stop < start:
                raise ConfigError(f"--flags {field_name}={entry}: column {last.strip()!r} comes before "
                                  f"{first.strip()!r} in the source; give FIRST..LAST in the file's order")
            columns.extend(names[start:stop + 1])
        elif entry.strip():
            columns.append(find(entry))
    if not columns:
        raise ConfigError(f"--flags {field_name}= names no columns; give FIELD=COLUMN,COLUMN,... or FIELD=FIRST..LAST")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ConfigError(f"--flags {field_name}: column {repeated[0]!r} is named twice")
    return columns


def _fold_flags(raw: _Raw, flags: Mapping[str, Sequence[str]]) -> tuple[pa.Table, list[tuple[np.ndarray, str, str]]]:
    """The source's table with each group of 0/1 flag columns folded into one ``|``-joined field (the names of
    the columns set, in the source's order; null when none is), and the bad flag values as ``(rows, column,
    reason)``."""
    table = raw.table
    issues: list[tuple[np.ndarray, str, str]] = []
    taken: dict[str, str] = {}
    folded: dict[str, pa.Array] = {}
    for field_name, entries in flags.items():
        columns = _flag_columns(raw, field_name, entries)
        for column in columns:
            if column in taken:
                raise ConfigError(f"--flags: column {column!r} is a flag of both {taken[column]} and {field_name}")
            taken[column] = field_name
        joined = np.full(table.num_rows, "", dtype=object)
        for column in columns:
            text, blank = _blank(_as_text(table.column(column)))
            lowered = pc.utf8_lower(text)
            on = _mask(pc.is_in(lowered, pa.array(FLAG_TRUE)))
            off = _mask(pc.is_in(lowered, pa.array(FLAG_FALSE))) | blank
            bad = ~(on | off)
            if bad.any():
                issues.append((np.flatnonzero(bad), column, f"is not a flag of {field_name} (1 or 0 expected)"))
            joined[on] = joined[on] + f"|{column}"
        values = pc.utf8_ltrim(pa.array(joined, type=pa.string()), characters="|")
        folded[field_name] = pa.array(np.where(joined == "", None, values.to_numpy(zero_copy_only=False)),
                                      type=pa.string())
    keep = [c for c in table.column_names if c not in taken]
    table = table.select(keep)
    for field_name, values in folded.items():
        if _match_name(field_name, table.column_names) is not None:
            raise ConfigError(f"--flags {field_name}: the source already has a column {field_name!r}; name the "
                              "folded field otherwise")
        table = table.append_column(field_name, values)
    return table, issues


# ------------------------------------------------------------------------------------------ validation
def _validate(raw: _Raw, *, dataset_type: str, schema: Schema, column_map: dict[str, str] | None,
              on_error: OnError, infer: bool = False, schema_origin: str | None = None,
              flags: Mapping[str, Sequence[str]] | None = None) -> ReadResult:
    source = raw.source
    if raw.problems and (raw.table.num_columns == 0 or (on_error == "fail" and raw.table.num_rows == 0)):
        # not one row parsed: the bad lines say what is wrong, not the columns
        raise _problems_error(source, raw.unit, sorted(raw.problems, key=lambda r: r.line), len(raw.problems))
    flag_issues: list[tuple[np.ndarray, str, str]] = []
    flag_values: dict[str, pa.ChunkedArray] = {}
    if flags:
        if dataset_type == "interactions":
            raise ConfigError("--flags folds flag columns of users or items, not of interactions")
        flag_values = {c: raw.table.column(c) for c in raw.table.column_names}  # the values bad flags show
        folded, flag_issues = _fold_flags(raw, flags)
        raw = dataclasses.replace(raw, table=folded)
    table, origins = _apply_map(raw, None if infer else schema, column_map)
    if infer:
        schema, table = _infer_schema(raw, table, origins, dataset_type, column_map, categorical=set(flags or ()))
    else:
        table = _match_fields(raw, table, origins, schema)
    unknown = [c for c in table.column_names if schema.field(c) is None]
    if unknown:
        raise _unknown_fields_error(raw, table, schema, dataset_type, unknown, column_map, schema_origin)
    required = [f.name for f in schema.fields if not f.nullable or f.name in REQUIRED[dataset_type]]
    missing = [name for name in required if name not in table.column_names]
    if missing:
        raise advise(problem(source, raw.header_line, missing[0], None,
                             f"required column {missing[0]} is missing; the columns are {table.column_names}",
                             unit=raw.unit), Advice("missing_field", missing[0], dataset_type,
                                                    tuple(table.column_names)),
                     f"map a source column to it with --map SOURCE={missing[0]}")
    n = table.num_rows
    converted: dict[str, pa.Array | pa.ChunkedArray] = {}
    bad_rows = np.zeros(n, dtype=bool)
    row_problems: list[tuple[np.ndarray, str, str, bool]] = []  # (rows, field, reason, show value)
    position = {name: i for i, name in enumerate(table.column_names)}
    shown = table  # where the bad values are shown from: the flag columns folded away too
    for rows, column, reason in flag_issues:
        new = np.zeros(n, dtype=bool)
        new[rows] = True
        new &= ~bad_rows
        if new.any():
            row_problems.append((np.flatnonzero(new), column, reason, True))
            bad_rows |= new
            if column not in shown.column_names:
                shown = shown.append_column(column, flag_values[column])
    # a row's first problem is the one in its leftmost column, as a reader of the file would find it
    for spec in sorted(schema.fields, key=lambda f: position.get(f.name, len(position))):
        if spec.name not in table.column_names:
            converted[spec.name] = pa.nulls(n, _arrow_type(spec))
            continue
        column = table.column(spec.name)
        values, issues = _convert(column, spec, required=spec.name in required)
        converted[spec.name] = values
        for mask, reason, show in issues:
            new = mask & ~bad_rows
            if new.any():
                row_problems.append((np.flatnonzero(new), spec.name, reason, show))
                bad_rows |= new
    if on_error == "fail":
        _raise_problems(raw, shown, row_problems)
    rejects = list(raw.problems)
    for rows, name, reason, show in row_problems:
        lines = raw.lines(rows)
        values = shown.column(name).take(pa.array(rows)).to_pylist() if show else [None] * len(rows)
        rejects.extend(Reject(int(line), name, None if v is None else _short(_shown(v)), reason)
                       for line, v in zip(lines, values, strict=True))
    rejects.sort(key=lambda r: r.line)
    if rejects:
        logger.info("%s: %d of %d rows rejected", source, len(rejects), n + len(raw.problems))
    keep = pa.array(~bad_rows) if bad_rows.any() else None
    frame = _to_frame(converted, schema, dataset_type, keep)
    if dataset_type == "interactions" and len(frame) and frame["TIMESTAMP"].max() > 10**11:
        logger.warning("%s: TIMESTAMP values reach %d, which looks like milliseconds; Personalize and recsmith "
                       "expect epoch seconds", source, frame["TIMESTAMP"].max())
    return ReadResult(frame, rows_read=n + sum(1 for r in raw.problems), rejects=rejects, source=source,
                      schema=schema, schema_inferred=infer)


def _raise_problems(raw: _Raw, table: pa.Table, row_problems: list[tuple[np.ndarray, str, str, bool]]) -> None:
    """Raise, listing the first :data:`MAX_REPORTED` bad rows in file order, if there are any."""
    found = list(raw.problems)
    total = len(raw.problems)
    for rows, name, reason, show in row_problems:
        total += len(rows)
        first = rows[:MAX_REPORTED]  # the earliest rows of each problem hold the earliest ones of all
        lines = raw.lines(first)
        shown = table.column(name).take(pa.array(first)).to_pylist() if show else [None] * len(first)
        found.extend(Reject(int(line), name, None if v is None else _shown(v), reason)
                     for line, v in zip(lines, shown, strict=True))
    if found:
        found.sort(key=lambda r: r.line)
        raise _problems_error(raw.source, raw.unit, found, total)


def _problem_text(reject: Reject, unit: str) -> str:
    """``line 5, field TIMESTAMP: value 'x' is not a number (...)``: one bad row, as messages show it."""
    where = f"{unit} {reject.line}"
    if reject.field is None and reject.value is not None:  # a problem with the whole line: show it after the reason
        return f"{where}: {reject.reason}; the {unit} reads {_short(reject.value)!r}"
    if reject.field:
        where += f", field {reject.field}"
    if reject.value is None:
        return f"{where}: {reject.reason}"
    return f"{where}: value {_short(reject.value)!r} {reject.reason}"


def _problems_error(source: str, unit: str, found: list[Reject], total: int | None) -> DataError:
    """The error of a failed read: its first bad row, then the next ones, :data:`MAX_REPORTED` in all.

    ``found`` is in file order; ``total`` counts all the bad rows (None: at least those found, the read stopped
    looking). The message starts as the first bad row's own would. The error's ``source``, ``line``, ``field``
    and ``value`` are the first's; ``rejects`` lists the reported ones.
    """
    first = found[0]
    text = f"{source} {_problem_text(first, unit)}"
    listed = found[:MAX_REPORTED]
    others = (total if total is not None else len(found)) - 1
    if others > 0:
        count = f"{others} more bad {unit}{'s' if others > 1 else ''}" if total is not None else (
            f"at least {others} more bad {unit}s")
        text += (f"\n... and {count}; nothing was imported (--on-error skip loads the good {unit}s and writes "
                 f"the bad ones to a reject file):\n  " + "\n  ".join(_problem_text(r, unit) for r in listed[1:]))
        hidden = (total - len(listed)) if total is not None else None
        if hidden is None or hidden > 0:
            text += f"\n  ... {hidden if hidden is not None else 'maybe more'}{' not listed' if hidden else ''}"
    error = _error(text, source, first.line, first.field, first.value)
    error.rejects = listed  # type: ignore[attr-defined]
    return error


def _arrow_type(spec: SchemaField) -> pa.DataType:
    if spec.kind == "boolean":
        return pa.bool_()
    if spec.kind in ("int", "long"):
        return pa.int64() if not spec.nullable else pa.float64()
    if spec.numeric:
        return pa.float64()
    return pa.string()


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as a numpy mask (nulls count as False)."""
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Any column as strings: lists are joined with ``|``, other types cast (or written out)."""
    kind = column.type
    if pa.types.is_string(kind):
        return column
    if pa.types.is_large_string(kind) or pa.types.is_dictionary(kind) or pa.types.is_string_view(kind):
        return pc.cast(column, pa.string())
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        try:
            return pc.binary_join(pc.cast(column, pa.list_(pa.string())), "|")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    if pa.types.is_floating(kind):  # ids stored as floats: 12.0 -> "12"
        values = column.to_numpy(zero_copy_only=False)
        finite = np.isfinite(values)
        if np.all(values[finite] == np.floor(values[finite])) and np.all(np.abs(values[finite]) < INT64_LIMIT):
            return pc.cast(pc.cast(column, pa.int64(), safe=False), pa.string())
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.chunked_array([pa.array([_text_of(v) for v in column.to_pylist()], type=pa.string())])


def _blank(text: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Trimmed strings and the mask of rows that are null or hold only spaces."""
    trimmed = pc.utf8_trim_whitespace(text)
    blank = pc.fill_null(pc.equal(trimmed, ""), True)
    return trimmed, _mask(blank)


def _convert(column: pa.ChunkedArray, spec: SchemaField,
             required: bool) -> tuple[pa.ChunkedArray | pa.Array, list[tuple[np.ndarray, str, bool]]]:
    """Convert a raw column to the field's type.

    Returns the converted values and the problems as ``(row mask, reason, show the value)``, where the first
    problem of a row is the one reported.
    """
    if spec.numeric:
        return _convert_number(column, spec, required)
    if spec.kind == "boolean":
        return _convert_boolean(column, spec, required)
    trimmed, blank = _blank(_as_text(column))
    if spec.categorical:
        trimmed = pc.replace_substring_regex(trimmed, r"\s*\|\s*", "|")
    issues: list[tuple[np.ndarray, str, bool]] = []
    if required and blank.any():
        what = {"USER_ID": "a user id", "ITEM_ID": "an item id"}.get(spec.name, f"a {spec.name} value")
        issues.append((blank, f"is empty: every row needs {what}", False))
    nul = _mask(pc.match_substring(trimmed, "\x00"))
    if nul.any():
        issues.append((nul, NUL_REASON, True))
    values = pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), trimmed) if blank.any() else trimmed
    return values, issues


def _convert_number(column: pa.ChunkedArray, spec: SchemaField,
                    required: bool) -> tuple[pa.ChunkedArray | pa.Array, list[tuple[np.ndarray, str, bool]]]:
    is_timestamp = spec.name == "TIMESTAMP"
    integer = spec.kind in ("int", "long")
    expect = "epoch seconds expected" if is_timestamp else f"{spec.kind} expected"
    kind = column.type
    issues: list[tuple[np.ndarray, str, bool]] = []
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        seconds = pc.cast(pc.cast(column, pa.timestamp("s"), safe=False), pa.int64())
        numbers = pc.cast(seconds, pa.float64())
        blank = _mask(pc.is_null(column))
        not_number = np.zeros(len(column), dtype=bool)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind):
        numbers = pc.cast(column, pa.float64()) if not pa.types.is_null(kind) else pa.nulls(len(column), pa.float64())
        blank = _mask(pc.is_null(numbers))
        not_number = np.zeros(len(column), dtype=bool)
        if integer and pa.types.is_integer(kind):  # exact: no trip through float64
            values = pc.cast(column, pa.int64())
            return _finish_integer(values, blank, not_number, spec, required, expect, issues)
        if pa.types.is_floating(kind):  # a JSON NaN or 1e309, a Parquet or SQL inf: present, but no use
            non_finite = ~_mask(pc.is_finite(numbers)) & ~blank
            if non_finite.any():
                issues.append((non_finite, NON_FINITE.format(expect=expect), True))
    else:
        trimmed, blank = _blank(_as_text(column))
        if integer:
            try:  # fast path: every value is a plain integer
                values = pc.cast(trimmed, pa.int64())
                return _finish_integer(values, blank, np.zeros(len(column), dtype=bool), spec, required, expect,
                                       issues)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        try:
            numbers = pc.cast(trimmed, pa.float64())
            not_number = np.zeros(len(column), dtype=bool)
            finite = _mask(pc.is_finite(numbers))
            if not finite[~blank].all():  # "nan" and "inf" parse, but are no use
                issues.append((~finite & ~blank, NON_FINITE.format(expect=expect), True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            looks_numeric = _mask(pc.match_substring_regex(trimmed, NUMBER))
            not_number = ~looks_numeric & ~blank
            candidates = pc.if_else(pa.array(looks_numeric), trimmed, pa.scalar(None, pa.string()))
            try:
                numbers = pc.cast(candidates, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # should not happen: let pandas decide
                parsed = pd.to_numeric(pd.Series(candidates.to_pylist(), dtype=object), errors="coerce")
                numbers = pa.array(parsed.to_numpy(dtype=np.float64), from_pandas=True)
                not_number |= parsed.isna().to_numpy() & ~blank
    if not_number.any():
        issues.append((not_number, f"is not a number ({expect})", True))
    floats = np.asarray(pc.fill_null(numbers, np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
    if integer:
        finite = np.isfinite(floats)
        out_of_range = finite & (np.abs(floats) >= INT64_LIMIT)
        if out_of_range.any():
            issues.append((out_of_range, f"is out of range ({expect})", True))
        if not is_timestamp:
            fraction = finite & ~out_of_range & (floats != np.floor(floats))
            if fraction.any():
                issues.append((fraction, f"is not a whole number ({expect})", True))
        if required:
            if blank.any():
                issues.append((blank, f"is empty ({expect})", False))
            safe = np.where(finite & ~out_of_range, floats, 0.0)
            return pa.array(np.trunc(safe).astype(np.int64)), issues
        return pa.array(np.trunc(floats), from_pandas=True), issues
    if required and blank.any():
        issues.append((blank, f"is empty ({expect})", False))
    return pa.array(floats), issues


def _finish_integer(values: pa.ChunkedArray | pa.Array, blank: np.ndarray, not_number: np.ndarray,
                    spec: SchemaField, required: bool, expect: str,
                    issues: list[tuple[np.ndarray, str, bool]]) -> tuple[pa.ChunkedArray | pa.Array,
                                                                         list[tuple[np.ndarray, str, bool]]]:
    if required:
        if blank.any():
            issues.append((blank, f"is empty ({expect})", False))
            values = pc.fill_null(values, 0)
        return values, issues
    return pc.cast(values, pa.float64()), issues


def _convert_boolean(column: pa.ChunkedArray, spec: SchemaField,
                     required: bool) -> tuple[pa.ChunkedArray | pa.Array, list[tuple[np.ndarray, str, bool]]]:
    issues: list[tuple[np.ndarray, str, bool]] = []
    if pa.types.is_boolean(column.type):
        values: pa.ChunkedArray | pa.Array = column
        blank = _mask(pc.is_null(column))
    else:
        trimmed, blank = _blank(_as_text(column))
        lowered = pc.utf8_lower(trimmed)
        is_true = _mask(pc.equal(lowered, "true"))
        is_false = _mask(pc.equal(lowered, "false"))
        not_boolean = ~(is_true | is_false) & ~blank
        if not_boolean.any():
            issues.append((not_boolean, "is not a boolean (true or false expected)", True))
        values = pa.array(np.where(is_true | is_false, is_true, None) if (~(is_true | is_false)).any() else is_true,
                          type=pa.bool_(), from_pandas=True)
    if required and blank.any():
        issues.append((blank, "is empty (true or false expected)", False))
    return values, issues


def _to_frame(converted: dict[str, pa.Array | pa.ChunkedArray], schema: Schema, dataset_type: str,
              keep: pa.Array | None) -> pd.DataFrame:
    if dataset_type == "interactions":
        first: Iterable[str] = INTERACTION_COLUMNS
        n = len(next(iter(converted.values())))
        converted.setdefault("EVENT_TYPE", pa.nulls(n, pa.string()))
        converted.setdefault("EVENT_VALUE", pa.nulls(n, pa.float64()))
    else:
        first = (ID_FIELDS[dataset_type],)
    order = list(first) + [name for name in schema.names if name not in first]
    out: dict[str, Any] = {}
    for name in order:
        array = converted[name]
        if keep is not None:
            array = array.filter(keep)
        spec = schema.field(name)
        out[name] = _to_pandas(array, spec, name)
    return pd.DataFrame(out)


def _to_pandas(array: pa.Array | pa.ChunkedArray, spec: SchemaField | None, name: str) -> Any:
    kind = array.type
    if name == "EVENT_VALUE" or pa.types.is_floating(kind):
        return np.asarray(pc.fill_null(pc.cast(array, pa.float64()), np.nan).to_numpy(zero_copy_only=False),
                          dtype=np.float64)
    if pa.types.is_integer(kind):
        return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_boolean(kind):
        if spec is not None and not spec.nullable:
            return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)
        return pd.Series(array.to_pylist(), dtype=object)
    if pa.types.is_null(kind):
        return pd.Series(np.full(len(array), None, dtype=object), dtype=object)
    if name == "EVENT_TYPE" or spec is None or spec.nullable:  # may be missing: object dtype with None
        return pd.Series(np.asarray(array.to_numpy(zero_copy_only=False), dtype=object), dtype=object)
    return pd.Series(array.to_pandas()).reset_index(drop=True)  # never missing: pandas' string dtype
