"""Where batch jobs read their input and write their output: JSON Lines or Parquet from a path or an fsspec URL,
JSON Lines or Parquet to one, or a table in the application's own SQL database.

A job's output is written in parts (JSON Lines files in the job's staging folder, each written then renamed), so
an interrupted job resumes from its last part; :func:`publish` then makes the one output from the parts: a file
written beside the target and renamed onto it (a local path), written whole and moved (an fsspec URL), or a table
filled under a temporary name and renamed in one transaction (SQL). Nothing half-written is ever at the target.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from recsmith.atomic import atomic_file, atomic_output, is_local_target
from recsmith.data.readers import mask_secrets, mask_url
from recsmith.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = (".jsonl", ".json", ".parquet")
"""How an output path may end: JSON Lines (``.jsonl``, ``.json``) or Parquet."""
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
"""An output table's name: a plain SQL identifier (no quoting, no schema)."""


def local_path(url: str) -> Path:
    """The local path of ``url`` (``file://`` stripped)."""
    return Path(url[len("file://"):] if url.startswith("file://") else url)


def input_fingerprint(url: str) -> dict[str, Any]:
    """What identifies an input file's content cheaply (size and modification time), so that a resumed job can
    tell its input changed since it started.

    Raises
    ------
    DataError
        If the input cannot be found or read, naming it.
    """
    try:
        fs, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
    except FileNotFoundError:
        raise DataError(f"{mask_url(url)}: input file not found") from None
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"{mask_url(url)}: input cannot be read: {mask_secrets(str(exc), url)}") from None
    if info.get("type") == "directory":
        raise DataError(f"{mask_url(url)}: is a folder; give the path of a JSON Lines or Parquet file")
    modified = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("updated")
    return {"size": int(info.get("size") or 0), "modified": str(modified) if modified is not None else None}


def read_lines(url: str, *, skip: int = 0) -> Iterator[tuple[int, str]]:
    """The input's lines as ``(line number, text)``, 1-based, after the first ``skip`` lines: a JSON Lines file
    as it is, a Parquet file one JSON object per row (null columns left out).

    Raises
    ------
    DataError
        If the input cannot be read.
    """
    source = mask_url(url)
    try:
        if url.lower().endswith(".parquet"):
            yield from _parquet_lines(url, skip)
            return
        with fsspec.open(url, "rt", encoding="utf-8", compression="infer") as handle:
            for number, text in enumerate(handle, start=1):
                if number > skip:
                    yield number, text.rstrip("\r\n")
    except FileNotFoundError:
        raise DataError(f"{source}: input file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, ValueError, ImportError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{source}: input cannot be read: {mask_secrets(str(exc), url)}") from None


def _parquet_lines(url: str, skip: int) -> Iterator[tuple[int, str]]:
    import pyarrow.parquet as pq

    with fsspec.open(url, "rb") as handle:
        table = pq.ParquetFile(handle)
        number = 0
        for batch in table.iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                number += 1
                if number > skip:
                    yield number, json.dumps({key: value for key, value in row.items() if value is not None},
                                             separators=(",", ":"))


def count_lines(url: str) -> int | None:
    """How many lines the input has (for progress), or None when counting would cost a second download (an
    fsspec URL)."""
    if not is_local_target(url):
        return None
    path = local_path(url)
    if url.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


# ----------------------------------------------------------------------------------------------- output
def check_output(output: str | None, table: str | None, db_url: str | None) -> str:
    """Check, before any work, that the output can be written, and return what the job records as its output
    (the URL, or ``table:<name>``).

    A file output must end in one of :data:`OUTPUT_FORMATS`; its folder must exist or be creatable, and a probe
    file is written there and removed. A table output needs ``db_url`` (a SQLAlchemy URL) that connects, and a
    plain identifier for the name.

    Raises
    ------
    ConfigError
        Neither or both of ``output`` and ``table``; an unknown extension; a bad table name; ``table`` without
        ``db_url``; an output that cannot be written (naming it and why).
    """
    if (output is None) == (table is None):
        raise ConfigError("give one output: --output PATH_OR_URL (.jsonl or .parquet) or --output-table TABLE with "
                          "--db-url URL")
    if table is not None:
        if not TABLE_NAME.match(table):
            raise ConfigError(f"output table {table!r} is not a plain SQL name (letters, digits, _; at most 63)")
        if not db_url:
            raise ConfigError(f"output table {table!r} needs --db-url, the SQLAlchemy URL of the database to write to")
        _connect(db_url).dispose()
        return f"table:{table}"
    assert output is not None
    if not output.lower().endswith(OUTPUT_FORMATS):
        raise ConfigError(f"output {mask_url(output)!r}: end the name in .jsonl (JSON Lines) or .parquet")
    probe = f"{output}.recsmith-probe-{uuid.uuid4().hex[:8]}"
    try:
        fs, path = fsspec.core.url_to_fs(probe)
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(path, "wb") as handle:
            handle.write(b"")
        fs.rm(path)
    except (OSError, ValueError, ImportError) as exc:
        raise ConfigError(f"output {mask_url(output)} cannot be written: "
                          f"{mask_secrets(str(exc) or type(exc).__name__, output)}") from None
    return output


def _connect(db_url: str) -> Any:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(db_url)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # a bad URL, a missing driver, a database that is not there
        raise ConfigError(f"--db-url {mask_url(db_url)}: cannot connect: "
                          f"{mask_secrets(str(exc).splitlines()[0], db_url)}") from None
    return engine


def write_part(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """One part of a job's output: its records as JSON Lines, written then renamed onto ``path``."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
            handle.write("\n")


def part_records(parts: Sequence[Path]) -> Iterator[dict[str, Any]]:
    """The records of the parts, in order."""
    for part in parts:
        with open(part, encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)


def publish(parts: Sequence[Path], output: str, *, output_keys: Sequence[str], db_url: str | None = None,
            table: TableRows | None = None) -> None:
    """Make the job's output from its parts, all at once: nothing is at the target until it is whole.

    Parameters
    ----------
    parts : sequence of Path
        The parts, in order (JSON Lines).
    output : str
        The job's output: a path or fsspec URL (``.jsonl``/``.json`` copied as they are, ``.parquet`` converted:
        an ``input`` column holding each line's input as JSON, a list column per ``output_keys``, and ``error``),
        or ``table:<name>``.
    output_keys : sequence of str
        The keys of a record's ``output`` (``recommendedItems``, ``scores``, ...): the Parquet columns.
    db_url : str, optional
        The database of a table output.
    table : TableRows, optional
        For a table output: its columns and how a record becomes rows.
    """
    if output.startswith("table:"):
        assert db_url is not None and table is not None
        _publish_table(parts, output[len("table:"):], db_url, table)
    elif output.lower().endswith(".parquet"):
        _publish_file(output, lambda target: _write_parquet(parts, target, output_keys))
    else:
        _publish_file(output, lambda target: _concatenate(parts, target))


@dataclass(frozen=True)
class TableRows:
    """How a job's records become rows of an output table.

    Attributes
    ----------
    columns : dict
        Column name -> SQLAlchemy type, in order.
    to_rows : callable
        One record -> its rows (dicts keyed by column); a failed line gives none.
    index : tuple of str
        Columns of an index made on the table (what the application looks rows up by).
    """

    columns: dict[str, Any]
    to_rows: Callable[[dict[str, Any]], list[dict[str, Any]]]
    index: tuple[str, ...] = ()


def _concatenate(parts: Sequence[Path], target: Any) -> None:
    with fsspec.open(str(target), "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    out.write(chunk)


def _write_parquet(parts: Sequence[Path], target: Any, keys: Sequence[str]) -> None:
    """The parts as one Parquet file, written a part at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("input", pa.string())]
                       + [(key, pa.list_(pa.float64() if key == "scores" else pa.string())) for key in keys]
                       + [("error", pa.string())])
    with fsspec.open(str(target), "wb") as handle, pq.ParquetWriter(handle, schema) as writer:
        for part in parts:
            records = list(part_records([part]))
            columns: dict[str, list[Any]] = {
                "input": [record["input"] if isinstance(record["input"], str)
                          else json.dumps(record["input"], separators=(",", ":")) for record in records]}
            for key in keys:
                columns[key] = [(record.get("output") or {}).get(key) for record in records]
            columns["error"] = [record.get("error") for record in records]
            writer.write_table(pa.table(columns, schema=schema))


def _publish_file(output: str, write: Callable[[Path], None]) -> None:
    """Write through ``write(path)`` to a local temporary file, which then becomes ``output`` in one step
    (:func:`~recsmith.atomic.atomic_output`: renamed locally, uploaded and moved for a URL), readable by its
    owner only (it holds users' data)."""
    with atomic_output(output) as tmp:
        write(tmp)
        os.chmod(tmp, 0o600)


def _publish_table(parts: Sequence[Path], name: str, db_url: str, table: TableRows) -> None:
    """Fill ``<name>__recsmith_new`` with the parts' rows, then, in one transaction, drop ``name`` and rename the
    new one onto it: readers see the old table or the whole new one."""
    import sqlalchemy as sa

    engine = _connect(db_url)
    staging = f"{name}__recsmith_new"[:63]
    meta = sa.MetaData()
    new = sa.Table(staging, meta, *(sa.Column(column, kind) for column, kind in table.columns.items()))
    if table.index:  # a fresh name each time: the index moves with the table it is renamed to
        sa.Index(f"ix_{name[:40]}_{uuid.uuid4().hex[:8]}", *(new.c[column] for column in table.index))
    try:
        with engine.begin() as conn:
            new.drop(conn, checkfirst=True)
            new.create(conn)
        batch: list[dict[str, Any]] = []
        with engine.begin() as conn:
            for record in part_records(parts):
                batch.extend(table.to_rows(record))
                if len(batch) >= 10_000:
                    conn.execute(new.insert(), batch)
                    batch = []
            if batch:
                conn.execute(new.insert(), batch)
        quote = engine.dialect.identifier_preparer.quote
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {quote(name)}"))
            conn.execute(sa.text(f"ALTER TABLE {quote(staging)} RENAME TO {quote(name)}"))
    except BaseException:
        try:
            with engine.begin() as conn:
                new.drop(conn, checkfirst=True)
        except Exception:
            logger.exception("dropping the staging table %s failed", staging)
        raise
    finally:
        engine.dispose()
