"""``recsmith export``: a dataset group's interactions, users or items as one Parquet file."""

from __future__ import annotations

from typing import Annotated

import typer

from recsmith.cli.app import GroupOption, JsonOption, handle_errors, open_store, out, print_json, stage_progress


@handle_errors
def export(
    group: GroupOption,
    to: Annotated[str, typer.Option("--to", help="A .parquet path or fsspec URL (s3://bucket/key.parquet).")],
    dataset: Annotated[str, typer.Option(help="interactions, users or items.")] = "interactions",
    as_json: JsonOption = False,
) -> None:
    """Export a dataset of a group to Parquet (Personalize's dataset export job), written atomically: the
    schema's fields as columns, readable by recsmith import, Spark, pandas or DuckDB."""
    from recsmith.jobs.export import export_dataset

    store = open_store()
    with stage_progress(f"export {dataset}", {"read": "reading", "write": "writing"}, enabled=not as_json) as progress:
        report = export_dataset(store, group, to, dataset=dataset, progress=progress)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"{report.dataset_type}: {report.rows:,} rows of {group!r} written to {report.target} "
              f"in {report.seconds:.2f} s ({', '.join(report.columns)})")
