"""``recsmith datasets list|load|synthetic``: the built-in datasets (MovieLens) and synthetic logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from recsmith.cli.app import GroupOption, JsonOption, handle_errors, open_store, out, print_json, stage_progress
from recsmith.errors import ConfigError

datasets_app = typer.Typer(help="Built-in datasets (MovieLens).", no_args_is_help=True)


@datasets_app.command("list")
@handle_errors
def datasets_list(as_json: JsonOption = False) -> None:
    """List the built-in datasets."""
    from recsmith.datasets import list_datasets

    rows = [{"name": d.name, "bundled": d.bundled, "description": d.description} for d in list_datasets()]
    if as_json:
        print_json(rows)
        return
    table = Table("name", "bundled", "description")
    for row in rows:
        table.add_row(row["name"], "yes" if row["bundled"] else "no", row["description"])
    out.print(table)


@datasets_app.command("load")
@handle_errors
def datasets_load(
    name: Annotated[str, typer.Argument(help="ml-latest-small, ml-100k or ml-1m.")],
    group: GroupOption,
    path: Annotated[Path | None, typer.Option(help="Folder holding the dataset's files.")] = None,
    download: Annotated[bool, typer.Option("--download", help="Download from GroupLens if needed.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Import a built-in dataset (interactions, items and, for ml-100k and ml-1m, users) into a dataset group."""
    from recsmith.datasets import load_dataset

    store = open_store()
    with stage_progress(f"load {name}", {"read": "reading", "write": "writing"}) as progress:
        reports = load_dataset(store, name, group, path=path, allow_download=download, progress=progress)
    if as_json:
        print_json([r.to_dict() for r in reports])
        return
    for report in reports:
        out.print(f"{report.dataset_type}: {report.rows_loaded:,} rows loaded into {group!r} "
                  f"in {report.duration_seconds:.2f} s (import job {report.job_id})")


@datasets_app.command("export")
@handle_errors
def datasets_export(
    name: Annotated[str, typer.Argument(help="A bundled dataset: ml-latest-small.")],
    target: Annotated[Path, typer.Argument(help="Folder to copy its files (and licence) into.")] = Path("."),
) -> None:
    """Copy a bundled dataset's files (ratings.csv, movies.csv, ..., README.txt) into a folder, to try imports."""
    from recsmith.datasets import export_bundled

    for path in export_bundled(name, target):
        out.print(str(path))


@datasets_app.command("synthetic")
@handle_errors
def datasets_synthetic(
    group: Annotated[str | None, typer.Option("--dataset-group", "-g", help="Import into this group.")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Also write the log to this .csv or .parquet file.")]
    = None,
    users: Annotated[int, typer.Option(help="Number of users.")] = 100_000,
    items: Annotated[int, typer.Option(help="Number of items.")] = 20_000,
    interactions: Annotated[int, typer.Option(help="Number of events.")] = 5_000_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Generate a reproducible power-law interactions log (view/purchase events) for scale tests."""
    import tempfile

    from recsmith.datasets.synthetic import synthetic_frame
    from recsmith.jobs.importing import import_dataset

    if group is None and output is None:
        raise ConfigError("say where the data goes: --dataset-group G and/or --out FILE.parquet")
    if output is not None and output.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out {output}: use a .csv or .parquet file name")
    with stage_progress("synthetic", {"read": "generating", "write": "writing"}) as progress:
        progress("read")
        frame = synthetic_frame(users, items, interactions, seed=seed)
        result: dict[str, Any] = {"rows": len(frame), "users": users, "items": items, "seed": seed}
        if output is not None:
            progress("write")
            output.parent.mkdir(parents=True, exist_ok=True)
            partial = output.with_name(f".{output.name}.partial")  # written whole, then renamed
            if output.suffix == ".parquet":
                frame.to_parquet(partial, index=False)
            else:
                frame.to_csv(partial, index=False)
            partial.replace(output)
            result["file"] = str(output)
        if group is not None:
            with tempfile.TemporaryDirectory(prefix="recsmith-synthetic-") as tmp:
                source = Path(tmp) / "synthetic.parquet"
                frame.to_parquet(source, index=False)
                report = import_dataset(open_store(), group, "interactions", str(source), mode="full",
                                        progress=progress)
            result["import"] = report.to_dict()
        progress("done")
    if as_json:
        print_json(result)
        return
    where = " and ".join(x for x in (result.get("file"), f"dataset group {group!r}" if group else None) if x)
    out.print(f"{len(frame):,} synthetic interactions ({users:,} users × {items:,} items, seed {seed}) -> {where}")
