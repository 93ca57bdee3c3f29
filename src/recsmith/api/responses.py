"""Fast JSON responses (orjson), the error body every failure shares, and errors' advice in HTTP's terms."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from recsmith.errors import Advice


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


_ID_FIELDS = {"USER_ID": "user_id", "ITEM_ID": "item_id"}


def http_advice(advice: Advice, method: str = "POST", group: str | None = None) -> tuple[str, str | None] | None:
    """An error's :class:`~recsmith.errors.Advice` in the HTTP API's terms: the advice naming request fields
    (``properties.COLOR``, ``filter_values.GENRE``) or routes (``""`` where HTTP has no way to do what the error's
    own advice says, such as importing data), and the field to report; None keeps the error's own.

    Parameters
    ----------
    advice : Advice
        What the check that failed attached to its error.
    method : str
        The request's method: a ``GET`` binds filter values with ``filter_value=NAME=VALUE`` query parameters.
    group : str, optional
        The dataset group the request's path names (for advice naming a route of it).
    """
    name, dataset = advice.name, advice.dataset or "records"
    if advice.kind == "unknown_field":  # the message lists the schema's fields already
        near = advice.nearest(exclude=tuple(_ID_FIELDS))
        guess = f"did you mean properties.{near}? Otherwise l" if near else "l"
        return (f"{guess}eave properties.{name} out, or have {name} added to the group's {dataset} schema",
                f"properties.{name}")
    if advice.kind == "duplicate_field":
        first, second = advice.names
        return f"keep one of properties.{first} and properties.{second}", f"properties.{second}"
    if advice.kind == "missing_field":
        field = _ID_FIELDS.get(name, f"properties.{name}")
        return f"give every record {field} (the {dataset} schema requires it)", field
    if advice.kind == "filter_value":
        if method == "GET":
            return f"add the query parameter filter_value={name}=VALUE", "filter_value"
        return f'give it in the body\'s filter_values: {{"{name}": ...}}', f"filter_values.{name}"
    if advice.kind == "current_item":
        return "ask for items related to one: give item_id", "item_id"
    if advice.kind == "campaign_exists":
        return (f'switch it to another version with PUT /v1/dataset-groups/{advice.group}/campaigns/{name} '
                '{"solution_version_id": V}', "name")
    if advice.kind == "campaign_config":
        return (f'fix it with PUT /v1/dataset-groups/{advice.group or group}/campaigns/{name} and a "config" that '
                'has a valid one', None)
    if advice.kind == "no_solution_version":
        group = advice.group or group
        listing = f"list them with GET /v1/dataset-groups/{group}/solution-versions" if group else ""
        return listing, "solution_version_id" if method in ("POST", "PUT") else None
    if advice.kind == "no_dataset_group":
        return "", None  # groups are made by importing data, on the server's command line
    return None
