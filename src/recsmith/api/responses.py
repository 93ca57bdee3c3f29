"""Fast JSON responses (orjson) and the error body every failure shares."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    """``application/json`` serialised with orjson (datetimes as ISO 8601, numpy scalars as numbers)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY, default=str)


def printable(value: Any) -> Any:
    """``value`` with every string made encodable: a lone surrogate (``"\\ud800"``, which JSON input may hold but
    UTF-8 cannot) is written as its escape, in strings and dict keys at any depth."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    return value


def error(status: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None,
          **extra: Any) -> JSON:
    """``{"error": {"status", "message", "field"?}}`` with that HTTP status (the one error shape of every route,
    middleware and handler)."""
    body: dict[str, Any] = {"status": status, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSON({"error": printable(body)}, status_code=status, headers=headers)
