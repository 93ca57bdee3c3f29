"""What the store can keep: the one rule for strings (no NUL, valid Unicode) and numbers (finite) that every
entrance applies (HTTP schemas, ``recsmith events put``, imports)."""

from __future__ import annotations

import math
from typing import Any


def text_problem(value: str) -> str | None:
    """Why the store cannot keep ``value``, or None: a NUL character (PostgreSQL cannot store one in text) or an
    unpaired surrogate such as ``"\\ud800"`` (not valid Unicode: no database can store it)."""
    if "\x00" in value:
        return f"holds a NUL character (\\x00) at position {value.index(chr(0))}, which the store cannot keep"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"holds an unpaired surrogate \\u{ord(value[exc.start]):04x} at position {exc.start}, which is not "
                "valid Unicode")
    return None


def number_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as a number, or None: infinity or NaN (``1e309`` parses as infinity),
    which training cannot use."""
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number (inf, -inf and NaN are refused: they cannot be trained on)"
    return None
