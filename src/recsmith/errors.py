"""The errors recsmith raises.

Every error is a :class:`RecsmithError` and also subclasses the matching builtin, so callers may catch
either. Messages say what was wrong, the value, where (file, line, field) and how to fix it; advice that
depends on the interface (a CLI flag, an HTTP body field, a keyword argument) travels as :class:`Advice`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar


class RecsmithError(Exception):
    """Base class of every error recsmith raises on purpose."""


class DataError(RecsmithError, ValueError):
    """Input data is malformed: a bad value, a missing column, an unreadable file."""


class SplitTooSmallError(DataError):
    """The data is too small for an evaluation split: it would leave no test interactions (interfaces say how to go
    on without the split, e.g. ``recsmith train --no-metrics``)."""


class SchemaError(DataError):
    """A schema is invalid, or data does not match its schema."""


class ConfigError(RecsmithError, ValueError):
    """A parameter, option or configuration value is invalid."""


class UnknownIdError(RecsmithError, KeyError):
    """A user, item or other id is not known."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class NotFoundError(RecsmithError, LookupError):
    """A named object (dataset group, solution version, ...) does not exist."""


class ConflictError(RecsmithError, RuntimeError):
    """The change cannot be made in the resource's present state (a dataset group with campaigns, a solution
    version a campaign serves, a job still running); the message says what stands in the way and how to clear
    it. HTTP answers 409.

    Attributes
    ----------
    campaigns : tuple of str
        The campaigns in the way, when campaigns are (each interface says in its own terms how to clear them).
    """

    def __init__(self, message: str, *, campaigns: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.campaigns = tuple(campaigns)


class NotFittedError(RecsmithError, RuntimeError):
    """A recipe was used before ``fit`` (or ``load``)."""


class FilterError(RecsmithError, ValueError):
    """A filter expression is invalid."""


class ArtifactIntegrityError(DataError):
    """A stored artifact's file is missing, truncated or altered (its SHA-256 does not match ``meta.json``)."""


class ArtifactKeyError(ConfigError):
    """An encrypted artifact cannot be read with the configured ``RECSMITH_ENCRYPTION_KEY`` (none, or another)."""


@dataclass(frozen=True)
class Advice:
    """How to fix an error, as data, so that each interface words it in its own terms: the CLI names its flags
    (``--map COLOR=-``, ``--filter-value GENRE=...``), HTTP the body fields (``properties.COLOR``,
    ``filter_values.GENRE``), Python the keyword arguments (``column_map=``, ``filter_values=``).

    The check that finds the problem runs once, wherever it lives, and attaches an ``Advice`` with
    :func:`advise`; the error's own message ends with the raise site's wording (keyword arguments; for the
    import's field errors, the ``--map`` flags that ``import_dataset``'s ``column_map`` mirrors), and an interface
    rewords it with :func:`reworded` (``recsmith.cli.app.cli_advice``, ``recsmith.api.responses.http_advice``).

    Attributes
    ----------
    kind : str
        ``unknown_field``: a record has a field its dataset's schema lacks; ``missing_field``: records lack a
        field the schema requires; ``duplicate_field``: two columns match one field (``names``: both);
        ``filter_value``: an ``INCLUDE`` filter's ``$PARAM`` has no value;
        ``current_item``: a ``CurrentItem`` filter on a request that names no item; ``campaign_exists``: a
        campaign's name is taken; ``campaign_config``: a stored campaign's config is invalid;
        ``no_solution_version``, ``no_dataset_group``: what was named does not exist.
    name : str
        The field, parameter, campaign, solution version or group (for ``current_item``, the item field the
        filter reads).
    dataset : str or None
        ``"users"``, ``"items"`` or ``"interactions"`` for a field.
    names : tuple of str
        What exists instead: the schema's fields (``unknown_field``), the source's columns (``missing_field``),
        the filter's parameters (``filter_value``).
    group : str or None
        The dataset group, where the advice names a route or command of it.
    """

    kind: str
    name: str
    dataset: str | None = None
    names: tuple[str, ...] = ()
    group: str | None = None

    def nearest(self, exclude: tuple[str, ...] = ()) -> str | None:
        """The name in :attr:`names` (less ``exclude``) closest to :attr:`name` ignoring case, or None when
        none is close (:func:`difflib.get_close_matches`, cutoff 0.6)."""
        candidates = {n.upper(): n for n in self.names if n not in exclude and n != self.name}
        found = difflib.get_close_matches(self.name.upper(), list(candidates), n=1, cutoff=0.6)
        return candidates[found[0]] if found else None


E = TypeVar("E", bound=BaseException)


def advise(error: E, advice: Advice, wording: str) -> E:
    """Attach ``advice`` to ``error``: its message becomes ``"<message>; <wording>"``; :func:`reworded` swaps the
    wording for an interface's own.

    Parameters
    ----------
    error : Exception
        The error, its message saying what is wrong (without the advice).
    advice : Advice
        What the caller can do, as data.
    wording : str
        The advice as the error's own message gives it (what an interface that does not reword it shows).

    Returns
    -------
    Exception
        ``error``, to be raised (with ``advice`` and ``problem``, the message before the advice, set on it).
    """
    problem = str(error)
    error.advice = advice  # type: ignore[attr-defined]
    error.problem = problem  # type: ignore[attr-defined]
    error.args = (f"{problem}; {wording}",)
    return error


def reworded(error: BaseException, wording: Callable[[Advice], str | None]) -> str:
    """``error``'s message with its advice in an interface's terms.

    Parameters
    ----------
    error : Exception
        Any error; one without :class:`Advice` keeps its message.
    wording : callable
        ``Advice -> str``: the interface's wording; ``""`` for none (the interface has no way to do what the
        error's own advice says), or None to keep the error's own.

    Returns
    -------
    str
    """
    advice = getattr(error, "advice", None)
    text = wording(advice) if isinstance(advice, Advice) else None
    if text is None:
        return str(error)
    problem: str = error.problem  # type: ignore[attr-defined]
    return f"{problem}; {text}" if text else problem
