"""``recsmith import interactions|users|items``: import jobs from a file, URL or SQL query."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from recsmith.cli.app import (
    GroupOption,
    JsonOption,
    handle_errors,
    open_store,
    out,
    print_json,
    stage_progress,
)
from recsmith.errors import ConfigError
from recsmith.settings import Settings

import_app = typer.Typer(help="Import interactions, users or items into a dataset group.", no_args_is_help=True)


def _run_import(
    dataset_type: str, path: str | None, group: str, schema: Path | None, mode: str, column_map: str | None,
    sep: str | None, fmt: str | None, no_header: bool, names: str | None, sql: str | None, db_url: str | None,
    on_error: str, reject_file: Path | None, as_json: bool, infer_schema: bool = False, encoding: str = "utf-8",
    flags: list[str] | None = None,
) -> None:
    from recsmith.data.readers import parse_column_map
    from recsmith.jobs.importing import import_dataset

    settings = Settings()
    store = open_store(settings)
    if reject_file is None and on_error == "skip":
        reject_file = settings.home / "rejects" / f"{group}-{dataset_type}-{int(time.time())}.csv"
    stages = {"read": "reading and validating", "write": "writing to the store"}
    with stage_progress(f"import {dataset_type}", stages) as progress:
        report = import_dataset(
            store, group, dataset_type, path, sql=sql, db_url=db_url, schema=schema,
            column_map=parse_column_map(column_map) or None, sep=sep, fmt=fmt, header=not no_header,
            names=[n.strip() for n in names.split(",")] if names else None, mode=mode,  # type: ignore[arg-type]
            on_error=on_error, reject_path=reject_file, progress=progress, infer_schema=infer_schema,  # type: ignore[arg-type]
            encoding=encoding, flags=parse_flags(flags),
        )
    if as_json:
        print_json(report.to_dict())
        return
    if report.schema_inferred is not None:
        out.print(f"inferred {dataset_type} schema, stored with dataset group {group} (save it to a file and pass "
                  f"--schema FILE to import with another one):", highlight=False, soft_wrap=True)
        out.print(_schema_text(report.schema_inferred), highlight=False, markup=False, soft_wrap=True)
    table = Table(title=f"import job {report.job_id}: {report.status}", show_header=False)
    for key in ("dataset_group", "dataset_type", "source", "mode", "rows_read", "rows_loaded", "rows_rejected",
                "duplicates_skipped", "duration_seconds", "rows_per_second", "reject_file"):
        value = getattr(report, key)
        if value is not None:
            table.add_row(key.replace("_", " "), str(value))
    out.print(table)


def parse_flags(values: list[str] | None) -> dict[str, list[str]] | None:
    """``--flags GENRES=Action,Comedy`` / ``--flags GENRES=unknown..Western`` options as ``{field: [columns]}``."""
    if not values:
        return None
    flags: dict[str, list[str]] = {}
    for value in values:
        name, sep, columns = value.partition("=")
        if not sep or not name.strip() or not columns.strip():
            raise ConfigError(f"--flags {value!r}: give FIELD=COLUMN,COLUMN,... or FIELD=FIRST..LAST, e.g. "
                              "--flags GENRES=unknown..Western")
        if name.strip() in flags:
            raise ConfigError(f"--flags names field {name.strip()} twice")
        flags[name.strip()] = [c.strip() for c in columns.split(",") if c.strip()]
    return flags


def _schema_text(schema: dict[str, Any]) -> str:
    """A schema as JSON with one field a line (valid JSON: it can be saved and passed to --schema)."""
    head = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in schema.items() if k != "fields")
    fields = ",\n    ".join(json.dumps(f) for f in schema["fields"])
    return f"{{{head},\n  \"fields\": [\n    {fields}\n  ]}}"


def _import_command(dataset_type: str) -> Callable[..., None]:
    @handle_errors
    def command(
        path: Annotated[str | None, typer.Argument(help="File path or fsspec URL (CSV, TSV, ::, Parquet, JSONL).")]
        = None,
        group: GroupOption = ...,  # type: ignore[assignment]
        schema: Annotated[Path | None, typer.Option(
            help="Personalize Avro schema JSON file (default: the dataset's stored schema; for users and items "
                 "without one, a schema inferred from the file).")] = None,
        infer_schema: Annotated[bool, typer.Option(
            "--infer-schema", help="Users and items: infer the schema from the file even when one is stored "
                                   "(replaces it; --mode full).")] = False,
        mode: Annotated[str, typer.Option(
            help="full (replace) or incremental (add; interactions identical to stored ones are skipped).")] = "full",
        column_map: Annotated[str | None, typer.Option(
            "--map", help="Rename columns: userId=USER_ID,movieId=ITEM_ID; col=- drops a column.")] = None,
        sep: Annotated[str | None, typer.Option(help="Field separator, e.g. ',' '\\t' '::'.")] = None,
        fmt: Annotated[str | None, typer.Option("--format", help="csv, tsv, parquet or jsonl.")] = None,
        no_header: Annotated[bool, typer.Option("--no-header", help="The file has no header line.")] = False,
        names: Annotated[str | None, typer.Option(help="Column names for a file without header.")] = None,
        sql: Annotated[str | None, typer.Option(help="Import the result of this SELECT instead of a file.")] = None,
        db_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the database --sql runs on.")] = None,
        on_error: Annotated[str, typer.Option(help="fail (load nothing) or skip (load good rows).")] = "fail",
        reject_file: Annotated[Path | None, typer.Option(help="Where skipped rows are written.")] = None,
        encoding: Annotated[str, typer.Option(
            help="Text encoding of the file, e.g. latin-1 (MovieLens' u.item, movies.dat).")] = "utf-8",
        flags: Annotated[list[str] | None, typer.Option(
            "--flags", help="Users and items: fold 0/1 flag columns into one multi-valued categorical field: "
                            "GENRES=Action,Comedy or GENRES=unknown..Western (a range of columns); repeatable.")]
        = None,
        as_json: JsonOption = False,
    ) -> None:
        _run_import(dataset_type, path, group, schema, mode, column_map, sep, fmt, no_header, names, sql, db_url,
                    on_error, reject_file, as_json, infer_schema, encoding, flags)

    command.__doc__ = f"Import {dataset_type} from a file, URL or SQL query (all-or-nothing)."
    return command


for _dataset_type in ("interactions", "users", "items"):
    import_app.command(_dataset_type)(_import_command(_dataset_type))
