"""Read datasets from files, fsspec URLs and SQL queries into validated, canonical DataFrames.

Everything is read and checked before anything is written, with vectorised checks (no Python loop per
row on the happy path). Each problem names the source, the line (``row`` for Parquet), the field and the
value. With ``on_error="fail"`` the first problem raises :class:`~recsmith.errors.DataError`; with
``on_error="skip"`` bad rows are left out and listed as :class:`Reject` records. Problems with the file as
a whole (missing or unknown columns, undecodable bytes, a damaged Parquet file) always raise.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recsmith.data.schema import REQUIRED, Schema, SchemaField
from recsmith.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

OnError = Literal["fail", "skip"]
ID_FIELDS = {"interactions": "USER_ID", "users": "USER_ID", "items": "ITEM_ID"}
FORMATS = ("csv", "tsv", "parquet", "jsonl")
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".dat": "csv", ".data": "tsv", ".txt": "csv",
                  ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
UNIT_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class Reject:
    """A row left out of an import, and why."""

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
        Interactions: USER_ID, ITEM_ID (str), TIMESTAMP (int64), EVENT_TYPE (str or None),
        EVENT_VALUE (float64, NaN if absent), then the other schema fields. Users/items: the id, then the
        metadata fields.
    rows_read : int
        Data rows read from the source (good and rejected).
    rejects : list of Reject
        Rows left out (only with ``on_error="skip"``).
    source : str
        Where the data came from.
    """

    frame: pd.DataFrame
    rows_read: int
    rejects: list[Reject] = field(default_factory=list)
    source: str = ""

    def write_rejects(self, path: str | Path) -> None:
        """Write the rejected rows as CSV: line, field, value, reason."""
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["line", "field", "value", "reason"])
            for r in self.rejects:
                writer.writerow([r.line, r.field or "", "" if r.value is None else r.value, r.reason])


def problem(source: str, line: int | None, field_name: str | None, value: Any, reason: str,
            unit: str = "line") -> DataError:
    """A DataError naming where the problem is, with ``source``/``line``/``field``/``value`` attributes."""
    where = source if line is None else f"{source} {unit} {line}"
    if field_name:
        where += f", field {field_name}"
    text = f"{where}: {reason}" if value is None else f"{where}: value {str(value)!r} {reason}"
    error = DataError(text)
    error.source, error.line, error.field, error.value = source, line, field_name, value  # type: ignore[attr-defined]
    return error


def detect_format(source: str, fmt: str | None, sep: str | None) -> str:
    """The format named, or the one the file name suggests (CSV when unsure)."""
    if fmt is not None:
        fmt = fmt.lower()
        if fmt in ("ndjson", "json"):
            fmt = "jsonl"
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    name = source.split("?")[0].lower()
    for suffix, found in SUFFIX_FORMATS.items():
        if name.endswith(suffix):
            return "csv" if (found == "tsv" and sep is not None) else found
    return "csv"


def _open_bytes(source: str) -> bytes:
    try:
        with fsspec.open(source, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DataError(f"{source}: file not found") from None
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"{source}: cannot be read: {exc}") from exc


def read_dataset(
    source: str,
    *,
    dataset_type: str,
    schema: Schema | None = None,
    column_map: dict[str, str] | None = None,
    sep: str | None = None,
    fmt: str | None = None,
    header: bool = True,
    names: list[str] | None = None,
    on_error: OnError = "fail",
) -> ReadResult:
    """Read and validate a dataset file (local path or fsspec URL).

    Parameters
    ----------
    source : str
        Path or URL of a CSV/TSV/``::``-separated, Parquet or JSON Lines file.
    dataset_type : {"interactions", "users", "items"}
        What the file holds.
    schema : Schema, optional
        The dataset's schema (default: :meth:`Schema.default`).
    column_map : dict, optional
        Source column -> schema field; ``"-"`` drops the column.
    sep : str, optional
        Field separator for text files (default ``,``; tab for ``.tsv``); may be several characters (``::``).
    fmt : {"csv", "tsv", "parquet", "jsonl"}, optional
        Format (default: from the file name).
    header : bool
        Whether a text file's first line names the columns.
    names : list of str, optional
        Column names (for files without a header; with a header they replace it).
    on_error : {"fail", "skip"}
        Raise at the first bad row, or leave bad rows out and list them.

    Returns
    -------
    ReadResult
    """
    schema = _check_args(dataset_type, schema, on_error)
    kind = detect_format(source, fmt, sep)
    data = _open_bytes(source)
    if kind == "parquet":
        frame, lines, rejects = _parquet(source, data), None, []
        unit = "row"
    elif kind == "jsonl":
        frame, lines, rejects = _jsonl(source, data, on_error)
        unit = "line"
    else:
        frame, lines, rejects = _text(source, data, sep or ("\t" if kind == "tsv" else ","), header, names, on_error)
        unit = "line"
    first_line = 1 if (kind != "csv" and kind != "tsv") or not header else 2
    if kind == "parquet":
        first_line = 1
    return validate_frame(frame, source=source, dataset_type=dataset_type, schema=schema, column_map=column_map,
                          on_error=on_error, first_line=first_line, lines=lines, rejects=rejects, unit=unit)


def read_sql(
    query: str,
    db_url: str,
    *,
    dataset_type: str,
    schema: Schema | None = None,
    column_map: dict[str, str] | None = None,
    on_error: OnError = "fail",
) -> ReadResult:
    """Read and validate the result of a SQL query run on another database (SQLAlchemy URL).

    Row numbers in messages count the result's rows from 1.
    """
    import sqlalchemy as sa

    schema = _check_args(dataset_type, schema, on_error)
    source = f"sql query on {db_url.split('@')[-1]}"
    try:
        engine = sa.create_engine(db_url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(f"--db-url {db_url!r} is not a usable SQLAlchemy URL: {exc}") from exc
    try:
        with engine.connect() as conn:
            result = conn.exec_driver_sql(query)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(f"{source}: the query failed: {str(exc.orig if hasattr(exc, 'orig') else exc)}") from exc
    finally:
        engine.dispose()
    frame.columns = [str(c) for c in frame.columns]
    _uppercase_reserved(frame)
    return validate_frame(frame, source=source, dataset_type=dataset_type, schema=schema, column_map=column_map,
                          on_error=on_error, first_line=1, unit="row")


def _check_args(dataset_type: str, schema: Schema | None, on_error: str) -> Schema:
    if dataset_type not in REQUIRED:
        raise ConfigError(f"unknown dataset type {dataset_type!r}; use one of {', '.join(REQUIRED)}")
    if on_error not in ("fail", "skip"):
        raise ConfigError(f"unknown on_error {on_error!r}; use 'fail' or 'skip'")
    schema = schema or Schema.default(dataset_type)
    schema.validate_for(dataset_type)
    return schema


def _uppercase_reserved(frame: pd.DataFrame) -> None:
    """Databases fold unquoted aliases to lower case (PostgreSQL): ``user_id`` means ``USER_ID``."""
    reserved = {"user_id", "item_id", "timestamp", "event_type", "event_value"}
    frame.columns = [c.upper() if c.lower() in reserved else c for c in frame.columns]


# ------------------------------------------------------------------------------------------ formats
def _decode_check(source: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start:exc.start + 1].hex()
        raise problem(source, line, None, None,
                      f"encoding error: byte 0x{bad} is not valid UTF-8; save the file as UTF-8") from None


def _text(source: str, data: bytes, sep: str, header: bool, names: list[str] | None,
          on_error: OnError) -> tuple[pd.DataFrame, np.ndarray | None, list[Reject]]:
    text = _decode_check(source, data)
    if not text.strip():
        raise problem(source, None, None, None, "the file is empty")
    if text.count('"') % 2 == 1:
        last_quote = text.rfind('"')
        line = text.count("\n", 0, last_quote) + 1
        raise problem(source, line, None, None, "unterminated quote: the file looks truncated")
    if sep == "\\t":
        sep = "\t"
    if len(sep) > 1:
        if UNIT_SEPARATOR in text:
            raise problem(source, None, None, None, f"cannot use separator {sep!r}: the file holds byte 0x1f")
        text = text.replace(sep, UNIT_SEPARATOR)
        sep = UNIT_SEPARATOR
    first = text.split("\n", 1)[0].rstrip("\r")
    file_columns = next(csv.reader([first], delimiter=sep)) if header else None
    if names is None and file_columns is None:
        raise ConfigError(f"{source}: a file without a header needs column names (--names)")
    columns = names if names is not None else file_columns
    assert columns is not None
    if len(set(columns)) != len(columns):
        raise problem(source, 1, None, None, f"duplicate column names in {columns}")
    if file_columns is not None and len(file_columns) != len(columns):
        raise problem(source, 1, None, None,
                      f"--names gives {len(columns)} columns, the header has {len(file_columns)}")
    invalid: list[tuple[int, str, int, int]] = []

    def on_invalid(row: Any) -> str:
        invalid.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=columns, skip_rows=1 if header else 0, use_threads=False,
                                           block_size=1 << 26),
            parse_options=pacsv.ParseOptions(delimiter=sep, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        raise problem(source, None, None, None, f"cannot be parsed as delimited text: {exc}") from exc
    rejects: list[Reject] = []
    lines: np.ndarray | None = None
    if invalid:
        number, row_text, expected, actual = invalid[0]
        line = (number if header else number) if number is not None else None
        reason = (f"has {actual} columns, {expected} expected"
                  + (" (the file looks truncated)" if number is not None and _is_last_line(text, row_text) else ""))
        if on_error == "fail":
            raise problem(source, line, None, row_text.replace(UNIT_SEPARATOR, sep if len(sep) == 1 else "::"),
                          reason)
        rejects = [Reject(n or 0, None, txt, f"has {a} columns, {e} expected") for n, txt, e, a in invalid]
        lines = _data_line_numbers(text, header, skip={n for n, *_ in invalid})
    frame = table.to_pandas()
    if lines is None and "\n\n" in text.replace("\r\n", "\n"):
        lines = _data_line_numbers(text, header, skip=set())
    return frame, lines, rejects


def _is_last_line(text: str, row_text: str) -> bool:
    return text.rstrip("\r\n").endswith(row_text)


def _data_line_numbers(text: str, header: bool, skip: set[int]) -> np.ndarray:
    """File line numbers of the data rows pyarrow returned (it drops blank lines and skipped rows)."""
    numbers = []
    for number, line in enumerate(text.split("\n"), start=1):
        if (header and number == 1) or not line.strip("\r") or number in skip:
            continue
        numbers.append(number)
    return np.asarray(numbers, dtype=np.int64)


def _parquet(source: str, data: bytes) -> pd.DataFrame:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise problem(source, None, None, None,
                      f"is not a readable Parquet file (truncated or damaged?): {exc}") from exc
    return table.to_pandas()


def _jsonl(source: str, data: bytes, on_error: OnError) -> tuple[pd.DataFrame, np.ndarray, list[Reject]]:
    text = _decode_check(source, data)
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    rejects: list[Reject] = []
    all_lines = text.split("\n")
    last_content = max((i for i, line in enumerate(all_lines, start=1) if line.strip()), default=0)
    for number, line in enumerate(all_lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            truncated = number == last_content and not text.endswith("\n")
            reason = f"is not a JSON object ({exc})" + (" (the file looks truncated)" if truncated else "")
            if on_error == "fail":
                raise problem(source, number, None, line[:80], reason) from None
            rejects.append(Reject(number, None, line[:200], reason))
            continue
        records.append(record)
        lines.append(number)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return frame.astype(object), np.asarray(lines, dtype=np.int64), rejects


# ------------------------------------------------------------------------------------------ validation
def validate_frame(
    frame: pd.DataFrame,
    *,
    source: str,
    dataset_type: str,
    schema: Schema,
    column_map: dict[str, str] | None = None,
    on_error: OnError = "fail",
    first_line: int = 2,
    lines: np.ndarray | None = None,
    rejects: list[Reject] | None = None,
    unit: str = "line",
) -> ReadResult:
    """Map columns, check them against the schema and convert every field to its canonical type.

    ``lines`` gives each row's line number in the source; by default row ``i`` is line ``first_line + i``.
    """
    rejects = list(rejects or [])
    header_line = 1 if unit == "line" else None
    frame = _map_columns(frame, source, column_map, header_line)
    unknown = [c for c in frame.columns if schema.field(c) is None]
    if unknown:
        raise problem(source, header_line, unknown[0], None,
                      f"unknown field {unknown[0]!r}: it is not in the schema ({', '.join(schema.names)}); add it to "
                      f"the schema or drop it with --map {unknown[0]}=-")
    required = [f.name for f in schema.fields if not f.nullable or f.name in REQUIRED[dataset_type]]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise problem(source, header_line, missing[0], None,
                      f"required column {missing[0]} is missing; the columns are {list(frame.columns)} "
                      f"(rename one with --map SOURCE={missing[0]})")
    n = len(frame)
    line_of = lines if lines is not None else np.arange(first_line, first_line + n, dtype=np.int64)
    out: dict[str, pd.Series] = {}
    bad_rows = np.zeros(n, dtype=bool)
    first_problem: tuple[int, str, str] | None = None  # (row, field, reason) earliest in the file
    for spec in schema.fields:
        if spec.name not in frame.columns:
            out[spec.name] = pd.Series([None] * n, dtype=object) if not spec.numeric else pd.Series(np.full(n, np.nan))
            continue
        converted, bad, reason = _convert(frame[spec.name], spec)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            if first_problem is None or first < first_problem[0]:
                first_problem = (first, spec.name, reason)
            for row in np.flatnonzero(bad & ~bad_rows):
                rejects.append(Reject(int(line_of[row]), spec.name, _raw(frame[spec.name].iloc[row]), reason))
            bad_rows |= bad
        out[spec.name] = converted
    if first_problem is not None and on_error == "fail":
        row, name, reason = first_problem
        raise problem(source, int(line_of[row]), name, _raw(frame[name].iloc[row]), reason, unit=unit)
    result = pd.DataFrame(out)
    if bad_rows.any():
        result = result[~bad_rows].reset_index(drop=True)
    rejects.sort(key=lambda r: r.line)
    canonical = _canonical_order(result, dataset_type, schema)
    return ReadResult(canonical, rows_read=n + sum(1 for r in rejects if r.field is None), rejects=rejects,
                      source=source)


def _map_columns(frame: pd.DataFrame, source: str, column_map: dict[str, str] | None,
                 header_line: int | None) -> pd.DataFrame:
    if not column_map:
        return frame
    absent = [c for c in column_map if c not in frame.columns]
    if absent:
        raise problem(source, header_line, absent[0], None,
                      f"--map {absent[0]}={column_map[absent[0]]} names column {absent[0]!r}, which the source "
                      f"does not have; its columns are "
                      f"{list(frame.columns)}")
    frame = frame.drop(columns=[c for c, target in column_map.items() if target == "-"])
    renamed = frame.rename(columns={c: target for c, target in column_map.items() if target != "-"})
    duplicated = renamed.columns[renamed.columns.duplicated()].tolist()
    if duplicated:
        raise problem(source, header_line, duplicated[0], None, "two columns map to the same field")
    return renamed


def _raw(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _blank(series: pd.Series) -> np.ndarray:
    """Rows that are null or empty after stripping spaces."""
    isnull = series.isna().to_numpy()
    if series.dtype.kind in "iufb":
        return isnull
    text = series.astype(object).where(~isnull, "").astype(str).str.strip()
    return isnull | (text == "").to_numpy()


def _convert(series: pd.Series, spec: SchemaField) -> tuple[pd.Series, np.ndarray, str]:
    """Convert a column to the field's type; returns the values, the bad-row mask and the reason."""
    blank = _blank(series)
    required = not spec.nullable
    if spec.numeric:
        if series.dtype.kind in "iuf":
            values = series.astype("float64")
        else:
            values = pd.to_numeric(series.astype(object).where(~blank, None), errors="coerce")
        not_number = values.isna().to_numpy() & ~blank
        bad = not_number | (blank if required else np.zeros(len(series), dtype=bool))
        if spec.name == "TIMESTAMP":
            reason = "is not a number (epoch seconds expected)"
            return values.fillna(0).astype("int64"), bad, reason if not_number.any() else "is empty"
        reason = f"is not a number ({spec.kind} expected)" if not_number.any() else "is empty"
        values = values.astype("float64") if spec.kind in ("float", "double") or spec.nullable else values
        if spec.kind in ("int", "long") and not spec.nullable:
            values = values.fillna(0).astype("int64")
        return values, bad, reason
    if spec.kind == "boolean":
        lowered = series.astype(object).where(~blank, "").astype(str).str.strip().str.lower()
        valid = lowered.isin(["true", "false"]).to_numpy()
        bad = (~valid & ~blank) | (blank if required else np.zeros(len(series), dtype=bool))
        values = pd.Series(np.where(blank, None, (lowered == "true").to_numpy()), dtype=object)
        return values, bad, "is not a boolean (true or false expected)" if (~valid & ~blank).any() else "is empty"
    values = series.astype(object).where(~blank, None)
    if series.dtype.kind == "f":  # ids that came as floats from Parquet/SQL: 12.0 -> "12"
        values = pd.Series([_id_text(v) for v in values], dtype=object)
    else:
        values = values.where(blank, series.astype(str).str.strip()).astype(object).where(~blank, None)
    bad = blank if required else np.zeros(len(series), dtype=bool)
    return values.reset_index(drop=True), bad, "is empty" if spec.name not in ("USER_ID", "ITEM_ID") else (
        "is empty: every row needs an id")


def _id_text(value: Any) -> str | None:
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else str(value)


def _canonical_order(frame: pd.DataFrame, dataset_type: str, schema: Schema) -> pd.DataFrame:
    if dataset_type == "interactions":
        first = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
        for name in ("EVENT_TYPE", "EVENT_VALUE"):
            if name not in frame.columns:
                frame[name] = None if name == "EVENT_TYPE" else np.nan
        frame["EVENT_VALUE"] = pd.to_numeric(frame["EVENT_VALUE"], errors="coerce").astype("float64")
    else:
        first = [ID_FIELDS[dataset_type]]
    rest = [c for c in schema.names if c not in first]
    return frame[first + rest].reset_index(drop=True)
