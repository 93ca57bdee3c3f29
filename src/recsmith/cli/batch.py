"""``recsmith batch-inference`` and ``recsmith batch-segment``: create, resume, list and describe batch jobs
(Amazon Personalize's batch inference and batch segment jobs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from recsmith.cli.app import GroupOption, JsonOption, err, handle_errors, open_store, out, print_json
from recsmith.cli.recommend import FilterOption, FilterValueOption, request_filter
from recsmith.errors import ConfigError
from recsmith.serving import MAX_RESULTS
from recsmith.settings import Settings

if TYPE_CHECKING:
    from recsmith.jobs.batch import LineProgress

inference_app = typer.Typer(help="Batch inference jobs: recommendations for many users, written to a file or a "
                                 "table.", no_args_is_help=True)
segment_app = typer.Typer(help="Batch segment jobs: the users most likely to interact with items.",
                          no_args_is_help=True)

VersionOption = Annotated[int, typer.Option("--solution-version", help="An ACTIVE solution version of the group.")]
OutputOption = Annotated[str | None, typer.Option(
    "--output", "-o", help="Path or fsspec URL (s3://, gs://, file://) ending in .jsonl or .parquet.")]
EngineOption = Annotated[str, typer.Option(help="local, or spark (needs the spark extra).")]
SparkMasterOption = Annotated[str | None, typer.Option(help="Spark master for --engine spark: local[2], spark://…, "
                                                            "yarn (default local[*]).")]
QuietOption = Annotated[bool, typer.Option("--no-progress", help="No progress bar.")]
WorkersOption = Annotated[int | None, typer.Option(min=1, max=16, help="Processes answering parts at once "
                                                   "(default: the machine's cores).")]


@contextmanager
def line_progress(title: str, *, enabled: bool = True) -> Iterator[LineProgress | None]:
    """A rich bar over a job's lines (its total when known)."""
    if not enabled:
        yield None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"),
                  TimeElapsedColumn(), console=err, transient=False) as bar:
        task = bar.add_task(title, total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def _run(job: dict[str, Any], as_json: bool, quiet: bool) -> None:
    from recsmith.jobs.batch import run_batch_job

    settings = Settings()
    store = open_store(settings)
    try:
        with line_progress(f"batch {job['kind']} job {job['id']}", enabled=not (as_json or quiet)) as progress:
            done = run_batch_job(store, settings, int(job["id"]), progress=progress)
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted; the parts written are kept: resume with recsmith batch-"
                  f"{job['kind']} resume {job['id']}[/]")
        raise typer.Exit(130) from None
    if as_json:
        print_json(done)
        return
    out.print(f"batch {done['kind']} job [bold]{done['id']}[/] {done['status']}: {done['lines_read']:,} lines read, "
              f"{done['lines_written']:,} written, {done['lines_failed']:,} failed, "
              f"{done['duration_seconds']:.1f} s -> {done['output']}")


@inference_app.command("create")
@handle_errors
def inference_create(
    group: GroupOption,
    solution_version: VersionOption,
    input: Annotated[str | None, typer.Option("--input", "-i", help="JSON Lines (or Parquet) of {\"userId\"}, "
                                              "{\"itemId\"} or {\"userId\", \"itemList\"} lines; path or URL.")] = None,
    output: OutputOption = None,
    all_users: Annotated[bool, typer.Option("--all-users", help="Every user of the dataset group.")] = False,
    num_results: Annotated[int, typer.Option(min=1, max=MAX_RESULTS, help="Items per line.")] = 25,
    filter_name: FilterOption = None,
    filter_value: FilterValueOption = None,
    output_table: Annotated[str | None, typer.Option(help="Write to this table of --db-url's database instead "
                                                     "(created if missing, replaced atomically).")] = None,
    db_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the application's database.")] = None,
    engine: EngineOption = "local",
    spark_master: SparkMasterOption = None,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Recommendations for every line of the input (or every user) from a solution version, through the
    campaigns' pipeline (filters, exclusions, deletions, popular padding, reasons); one output line per input
    line, a bad line with its error. Interrupted, it resumes with `recsmith batch-inference resume ID`."""
    from recsmith.jobs.batch import create_batch_inference_job

    settings = Settings()
    name, values = request_filter(filter_name, None, filter_value)
    if name is not None and not isinstance(name, str):
        raise ConfigError("--filter takes a stored filter's name (recsmith filter create NAME -g G --expression ...)")
    job = create_batch_inference_job(open_store(settings), settings, group=group,
                                     solution_version_id=solution_version, input=input, all_users=all_users,
                                     output=output, output_table=output_table, db_url=db_url,
                                     num_results=num_results, filter=name, filter_values=values, engine=engine,
                                     spark_master=spark_master, workers=workers)
    _run(job, as_json, quiet)


@segment_app.command("create")
@handle_errors
def segment_create(
    group: GroupOption,
    solution_version: VersionOption,
    input: Annotated[str, typer.Option("--input", "-i", help="JSON Lines of {\"itemId\"} or {\"itemAttributes\": "
                                       "\"ITEMS.GENRES = \\\"Comedy\\\"\"} lines; path or URL.")],
    output: OutputOption = None,
    num_users: Annotated[int, typer.Option(min=1, help="Users per line.")] = 100,
    workers: WorkersOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """The users most likely to interact with each line's item (Item-Affinity) or with the items its attribute
    expression selects (Item-Attribute-Affinity), with their scores."""
    from recsmith.jobs.batch import create_batch_segment_job

    settings = Settings()
    if output is None:
        raise ConfigError("give --output PATH_OR_URL (.jsonl or .parquet)")
    job = create_batch_segment_job(open_store(settings), settings, group=group, solution_version_id=solution_version,
                                   input=input, output=output, num_users=num_users, workers=workers)
    _run(job, as_json, quiet)


def _resume(kind: str, job_id: int, as_json: bool, quiet: bool) -> None:
    from recsmith.jobs.batch import job_view

    job = job_view(open_store().get_batch_job(job_id, kind))
    _run(job, as_json, quiet)


def _list(kind: str, group: str, as_json: bool) -> None:
    from recsmith.jobs.batch import job_view

    store = open_store()
    jobs = [job_view(job) for job in store.list_batch_jobs(store.get_dataset_group(group).id, kind)]
    if as_json:
        print_json(jobs)
        return
    table = Table("id", "version", "status", "read", "written", "failed", "seconds", "output",
                  title=f"batch {kind} jobs")
    for job in jobs:
        seconds = job["duration_seconds"]
        table.add_row(str(job["id"]), str(job["solution_version_id"]), job["status"], f"{job['lines_read']:,}",
                      f"{job['lines_written']:,}", f"{job['lines_failed']:,}",
                      "" if seconds is None else f"{seconds:.1f}", job["output"])
    out.print(table)


def _describe(kind: str, job_id: int) -> None:
    from recsmith.jobs.batch import job_view

    print_json(job_view(open_store().get_batch_job(job_id, kind)))


JobArgument = Annotated[int, typer.Argument(help="Batch job id.")]


@inference_app.command("resume")
@handle_errors
def inference_resume(job_id: JobArgument, quiet: QuietOption = False, as_json: JsonOption = False) -> None:
    """Run a batch inference job that failed or was interrupted again, from its last whole part."""
    _resume("inference", job_id, as_json, quiet)


@inference_app.command("list")
@handle_errors
def inference_list(group: GroupOption, as_json: JsonOption = False) -> None:
    """The group's batch inference jobs, oldest first."""
    _list("inference", group, as_json)


@inference_app.command("describe")
@handle_errors
def inference_describe(job_id: JobArgument) -> None:
    """A batch inference job's record (JSON): status, counts, duration, config, error."""
    _describe("inference", job_id)


@segment_app.command("resume")
@handle_errors
def segment_resume(job_id: JobArgument, quiet: QuietOption = False, as_json: JsonOption = False) -> None:
    """Run a batch segment job that failed or was interrupted again, from its last whole part."""
    _resume("segment", job_id, as_json, quiet)


@segment_app.command("list")
@handle_errors
def segment_list(group: GroupOption, as_json: JsonOption = False) -> None:
    """The group's batch segment jobs, oldest first."""
    _list("segment", group, as_json)


@segment_app.command("describe")
@handle_errors
def segment_describe(job_id: JobArgument) -> None:
    """A batch segment job's record (JSON)."""
    _describe("segment", job_id)
