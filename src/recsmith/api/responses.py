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


def error(status: int, message: str, *, field: str | None = None, **extra: Any) -> JSON:
    """``{"error": {"status", "message", "field"?}}`` with that HTTP status."""
    body: dict[str, Any] = {"status": status, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSON({"error": body}, status_code=status)
