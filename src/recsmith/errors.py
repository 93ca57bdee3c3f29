"""The errors recsmith raises.

Every error is a :class:`RecsmithError` and also subclasses the matching builtin, so callers may catch
either. Messages say what was wrong, the value, where (file, line, field) and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence


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
