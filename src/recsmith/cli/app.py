"""The ``recsmith`` command line's app and what every command group shares: the options, the consoles, the error
handling, the store, progress bars and parsing of ``NAME=VALUE`` options.

The command groups live in their own modules; :mod:`recsmith.cli.main` assembles them on :data:`app`.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import typer.core
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from recsmith.errors import Advice, ConfigError, RecsmithError, reworded
from recsmith.settings import Settings

if TYPE_CHECKING:  # imported lazily at run time, so `recsmith --help` stays fast
    from recsmith.jobs.config import SolutionConfig
    from recsmith.store.store import Store

def _flag_type_hidden(display: Callable[..., str | None]) -> Callable[..., str | None]:
    """``TyperOption.display_type_rich`` with no type for flags: typer 0.29's rich help (``rich_utils.
    _print_options_panel``) shows every option's type, flags too (``--json <bool>``, ``--help <bool>``), while its
    plain help leaves flags without one; a flag takes no value, so it shows none (every command, ``--help`` too)."""

    @functools.wraps(display)
    def wrapper(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) or getattr(self, "count", False):
            return None
        return display(self, ctx)

    return wrapper


if hasattr(typer.core.TyperOption, "display_type_rich"):  # the typer versions that render types in rich help
    typer.core.TyperOption.display_type_rich = _flag_type_hidden(  # type: ignore[method-assign]
        typer.core.TyperOption.display_type_rich)

app = typer.Typer(
    name="recsmith",
    help="recsmith: a self-hosted recommendation engine. Start with `recsmith quickstart`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console()
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from recsmith import __version__

        print(f"recsmith {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print recsmith's version and exit.")] = False,
) -> None:
    """Options of ``recsmith`` itself, before any command."""
F = TypeVar("F", bound=Callable[..., Any])

GroupOption = Annotated[str, typer.Option("--dataset-group", "-g", help="Dataset group name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DeviceOption = Annotated[str, typer.Option(
    "--device", help="Where iterative recipes train: cpu, cuda (a GPU; an error where none is usable) or auto "
                     "(the GPU when the recipe can use one and one is there).")]
LegacyNameOption = Annotated[str | None, typer.Option("--name", hidden=True,
                                                      help="Deprecated: give the name as the first argument.")]
"""The ``--name NAME`` that ``campaign create`` and ``filter create`` took before the name became their first
argument (as in ``update``, ``describe`` and ``delete``): still accepted, with a note on stderr."""


def resource_name(kind: str, positional: str | None, legacy: str | None, usage: str) -> str:
    """The name a ``create`` command was given: its first argument, or the deprecated ``--name`` (a note on stderr
    shows the new form); ``usage`` is the command line with ``NAME`` where the name goes.

    Raises
    ------
    ConfigError
        If neither is given, or both with different names.
    """
    if legacy is not None:
        if positional is not None and positional != legacy:
            raise ConfigError(f"the {kind} is named twice ({positional!r} and --name {legacy!r}): give the name once, "
                              f"as the first argument: {usage}")
        err.print(f"note: --name is deprecated; give the {kind}'s name as the first argument: "
                  f"{usage.replace('NAME', legacy)}", highlight=False, soft_wrap=True)
        return legacy
    if positional is None:
        raise ConfigError(f"give the {kind}'s name as the first argument: {usage}")
    return positional


def cli_advice(advice: Advice) -> str | None:
    """An error's :class:`~recsmith.errors.Advice` in the command line's terms (its flags), for
    :func:`handle_errors`; None keeps the error's own wording."""
    name = advice.name
    if advice.kind in ("unknown_field", "missing_field", "duplicate_field"):  # the import's wording names --map
        return None
    if advice.kind == "filter_value":
        return f"pass --filter-value {name}=VALUE (repeat it for several values)"
    if advice.kind == "current_item":
        return "recommend asks for a user and has no current item (related items: item_id over HTTP)"
    return None


def handle_errors(func: F) -> F:
    """Turn recsmith's errors into a one-line message on stderr and exit status 1 (advice worded in flags)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RecsmithError as exc:
            message = reworded(exc, cli_advice)
            err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted; nothing half-written was kept[/]")
            raise typer.Exit(130) from None
        except ValidationError as exc:
            if exc.title != Settings.__name__:
                raise
            problems = "; ".join(f"RECSMITH_{'_'.join(str(p) for p in e['loc']).upper()}={e.get('input')!r}: "
                                 f"{e['msg']}" for e in exc.errors(include_url=False))
            err.print(f"[bold red]error:[/] invalid setting {escape(problems)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def open_store(settings: Settings | None = None) -> Store:
    """The store named by the settings, migrated to the current schema."""
    from recsmith.store.store import Store

    settings = settings or Settings()
    store = Store.from_settings(settings)
    store.migrate()
    return store


def confirm_or_exit(question: str) -> None:
    """Ask ``question`` on stderr before a deletion; anything but yes (or no terminal to ask on) ends the command
    with status 1, nothing changed."""
    try:
        confirmed = typer.confirm(question, default=False, err=True)
    except typer.Abort:
        confirmed = False
    if not confirmed:
        err.print("nothing deleted")
        raise typer.Exit(1)


class StageProgress:
    """What :func:`stage_progress` yields: called with a stage name, it moves the stage bar; ``fit_options``
    gives the :class:`~recsmith.recipes.options.FitOptions` callbacks that draw a second bar over an iterative
    recipe's epochs, with the last entry of the recipe's ``history_`` when it keeps one (loss, val_loss)."""

    def __init__(self, progress: Progress | None = None, task: Any = None,
                 stages: dict[str, str] | None = None) -> None:
        self._progress, self._task, self._stages = progress, task, stages or {}
        self._order = list(self._stages)
        self._epochs: Any = None
        self.stage: str | None = None

    def __call__(self, stage: str) -> None:
        self.stage = stage
        if self._progress is None:
            return
        if stage in self._stages:
            self._progress.update(self._task, completed=self._order.index(stage), stage=self._stages[stage])
        if stage == "done":
            self._progress.update(self._task, completed=len(self._order), stage="done")
        if stage == "failed":
            self._progress.update(self._task, stage="[red]failed[/]")

    def fit_options(self, device: str = "cpu", *, epochs: bool = True) -> Any:
        """``FitOptions(device=device)``, with the epoch bar's ``progress`` and ``epoch_callback`` when ``epochs``
        (pass the recipe's ``tags.iterative``: the others have no epochs to show)."""
        from recsmith.recipes.options import FitOptions

        if not epochs or self._progress is None:
            return FitOptions(device=device)  # type: ignore[arg-type]
        return FitOptions(device=device, progress=self._epoch_progress,  # type: ignore[arg-type]
                          epoch_callback=self._epoch_done)

    def _epoch_progress(self, done: int, total: int) -> None:
        assert self._progress is not None
        label = f"  epochs ({self._stages.get(self.stage or '', self.stage or 'fit')})"
        if self._epochs is None:
            self._epochs = self._progress.add_task(label, total=total, stage="")
        if done == 0:  # a new fit (the offline metrics' first, then the final one)
            self._progress.reset(self._epochs, total=total, description=label, stage=f"0/{total}")
        self._progress.update(self._epochs, completed=done, total=total)

    def _epoch_done(self, epoch: int, recipe: Any) -> None:
        assert self._progress is not None and self._epochs is not None
        total = self._progress.tasks[self._epochs].total
        self._progress.update(self._epochs, stage=escape(epoch_text(epoch, total, recipe)))


def check_device(recipe: str, device: str) -> bool:
    """Check, before any work, that ``recipe`` can train on ``device`` here (``--device``); returns whether the
    recipe is iterative (whether :meth:`StageProgress.fit_options` should draw its epochs).

    Raises
    ------
    ConfigError
        For an unknown recipe or device, or a device the recipe cannot use here, worded in the CLI's flags.
    """
    from recsmith.recipes import recipe_class
    from recsmith.recipes.options import FitOptions

    klass = recipe_class(recipe)
    try:
        FitOptions(device=device).resolve_device(klass)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ConfigError(re.sub(r"(?:FitOptions\()?device='(\w+)'\)?", r"--device \1", str(exc))) from None
    return klass.tags.iterative


def epoch_text(epoch: int, total: float | None, recipe: Any) -> str:
    """``epoch 3/20  loss 0.4123  val_loss 0.4410  lr 0.001  1.2 s``: an epoch, with the recipe's last
    ``history_`` entry when it keeps one (torch recipes do; svd and als have only the epoch count)."""
    text = f"epoch {epoch}/{int(total) if total else '?'}"
    history = getattr(recipe, "history_", None)
    if history:
        last = history[-1]
        for key in ("loss", "val_loss", "lr"):
            value = last.get(key)
            if isinstance(value, int | float):
                text += f"  {key} {value:.4g}"
        seconds = last.get("seconds")
        if isinstance(seconds, int | float):
            text += f"  {seconds:.1f} s"
    return text


@contextmanager
def stage_progress(title: str, stages: dict[str, str], *, enabled: bool = True) -> Iterator[StageProgress]:
    """A rich progress bar advanced by a stage callback; ``stages`` maps stage names to labels.

    The bar ends at "done" when the block ends, or "failed" (in red) when it raises, whatever stage was last.
    The callback is a :class:`StageProgress`, whose ``fit_options`` adds a bar over a recipe's epochs.
    """
    if not enabled:
        yield StageProgress()
        return
    with Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(), console=err, transient=False,
    ) as progress:
        advance = StageProgress(progress, progress.add_task(title, total=len(stages), stage=""), stages)
        try:
            yield advance
        except BaseException:  # the job says "done" when it ends, failed or not: the bar shows which
            advance("failed")
            raise


def parse_pairs(text: str | None, option: str) -> dict[str, str]:
    """Parse ``a=b,c=d`` into a dict (ConfigError naming the bad part)."""
    pairs: dict[str, str] = {}
    if not text:
        return pairs
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{option}: {part!r} is not of the form NAME=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


def parse_value(text: str) -> Any:
    """A CLI param value: JSON when it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_params(values: list[str] | None) -> dict[str, Any]:
    """``--param name=value`` options into a params dict."""
    params: dict[str, Any] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        is_json = bool(sep) and value.lstrip().startswith(("{", "["))  # a JSON object or list may hold commas
        if is_json:  # meant as JSON: a typo is an error here, not a string the recipe then refuses
            try:
                params[key.strip()] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--param {key.strip()}: invalid JSON at column {exc.colno} of {value!r}: "
                                  f"{exc.msg}") from None
            continue
        for name, text in parse_pairs(item, "--param").items():
            params[name] = parse_value(text)
    return params


def solution_config(event_weights: str | None, half_life_days: float | None) -> SolutionConfig:
    """The solution config of the ``--event-weights`` and ``--half-life-days`` options (``train``, ``tune``)."""
    from recsmith.jobs.config import SolutionConfig

    weights = {key: float(parse_value(value)) for key, value in parse_pairs(event_weights, "--event-weights").items()}
    try:
        return SolutionConfig(event_weights=weights, half_life_days=half_life_days)
    except ValueError as exc:
        raise ConfigError(f"invalid solution config: {exc}") from exc


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
