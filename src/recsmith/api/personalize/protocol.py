"""One Personalize call, read and answered: the body read, the signature verified, the JSON parsed, the role
checked; the answer or the error in AWS's shape (never a 5xx for bad input, never recsmith's ``/v1`` error body).

Fields are read with :func:`field`, which names the field a bad value is in as Personalize's
``InvalidInputException`` does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from recsmith.api.auth import Principal
from recsmith.api.metrics import AUTHORISED
from recsmith.api.personalize.arns import Arns
from recsmith.api.personalize.auth import authorize
from recsmith.api.personalize.errors import AwsError, aws_response, error_response, from_recsmith, invalid_input
from recsmith.api.personalize.sigv4 import SignedRequest
from recsmith.errors import ConfigError, RecsmithError
from recsmith.store.schema_registry_records import check_personalize_name

logger = logging.getLogger(__name__)
_MISSING = object()


@dataclass
class Call:
    """A verified call: who made it, its JSON body, and the app's state (store, runtime, settings...)."""

    principal: Principal
    body: dict[str, Any]
    state: Any
    arns: Arns
    request_state: dict[str, Any]
    """The ASGI scope's state (where the metrics read whether the role check passed)."""

    def authorize(self, role: str, group: str | None) -> None:
        """Refuse (``AccessDeniedException``) unless the caller's key has ``role`` on ``group``."""
        authorize(self.principal, role, group)
        self.request_state[AUTHORISED] = True


def _headers(request: Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.scope["headers"]:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


async def read_call(request: Request) -> Call:
    """Verify the request's signature and parse its body (a JSON object; empty is ``{}``).

    Raises
    ------
    AwsError
        For a missing or bad signature, an unknown key, or a body that is not a JSON object.
    """
    body = await request.body()
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    signed = SignedRequest(request.method, raw_path.decode("latin-1"),
                           request.scope.get("query_string", b"").decode("latin-1"), _headers(request), body)
    principal = request.app.state.signing_keys.authenticate(signed)
    try:
        parsed = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise AwsError("SerializationException", f"the body is not JSON: {exc}", 400) from None
    if not isinstance(parsed, dict):
        raise AwsError("SerializationException", "the body must be a JSON object", 400)
    state = request.app.state
    return Call(principal, parsed, state, state.arns, request.scope.setdefault("state", {}))


async def answer(request: Request, handle: Callable[[Call], Awaitable[Any]], *,
                 content_type: str = "application/json", not_found_status: int = 404) -> Response:
    """``handle``'s answer to the verified call as JSON, or its error in AWS's shape: an :class:`AwsError` as it is,
    a recsmith error mapped by :func:`~recsmith.api.personalize.errors.from_recsmith`, and anything unexpected a
    logged 500 ``ServiceException``; ``not_found_status``: the status of ``ResourceNotFoundException`` (404 in the
    runtime's and events' models, 400 in the control plane's, whose errors are all 400s)."""
    try:
        call = await read_call(request)
        result = await handle(call)
        return aws_response(result if result is not None else {}, content_type=content_type)
    except (AwsError, RecsmithError) as exc:
        error = exc if isinstance(exc, AwsError) else from_recsmith(exc)
        if error.code == "ResourceNotFoundException":
            error.status = not_found_status
        return error_response(error, content_type=content_type)
    except Exception:
        logger.exception("%s %s failed", request.method, request.url.path)
        return error_response(AwsError("ServiceException", "internal error: the server logged the details", 500),
                              content_type=content_type)


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = False,
          default: Any = None, where: str = "") -> Any:
    """``body[name]``, checked to be of ``kind`` (``InvalidInputException`` naming ``where + name`` otherwise);
    ``default`` when absent and not ``required``."""
    value = body.get(name, _MISSING)
    label = f"{where}{name}"
    if value is _MISSING or value is None:
        if required:
            raise invalid_input(f"{label}: required")
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join({str: "a string", int: "an integer", float: "a number", bool: "a boolean",
                             list: "a list", dict: "a map"}.get(k, k.__name__) for k in kinds)
        raise invalid_input(f"{label}: expected {names}, got {value!r}"[:500])
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid_input(f"{label}: must be a finite number")
    return value


def validated(model: type[Any], data: dict[str, Any], names: dict[str, str], where: str = "") -> Any:
    """``data`` validated by one of ``/v1``'s request models (the same checks), its problems an
    ``InvalidInputException`` naming the field by Personalize's name (``names``: ours → theirs)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for item in exc.errors(include_url=False):
            loc = [str(part) for part in item.get("loc", ())]
            if loc:
                loc[0] = names.get(loc[0], loc[0])
            for i, part in enumerate(loc[1:], start=1):
                loc[i] = names.get(part, f"[{part}]" if part.isdigit() else part)
            label = where + ".".join(loc).replace(".[", "[")
            problems.append(f"{label}: {item.get('msg', 'invalid')}" if label else str(item.get("msg")))
        raise invalid_input("; ".join(problems)[:1000] or "invalid input") from None


# ------------------------------------------------------------------------------ the control plane's conventions
Operation = Callable[[Call], dict[str, Any]]
"""A control-plane operation: the verified call → the operation's output shape."""


def registrar(operations: dict[str, Operation]) -> Callable[[Operation], Operation]:
    """A decorator that registers a function in ``operations`` under its Personalize name
    (``create_dataset_group`` → ``CreateDatasetGroup``)."""

    def operation(function: Operation) -> Operation:
        operations["".join(part.capitalize() for part in function.__name__.split("_"))] = function
        return function

    return operation
MAX_RESULTS = 100
"""The most entries a list answers at once (Personalize's ``maxResults`` limit)."""

def personalize_status(status: str) -> str:
    """Personalize's spelling of a job status of :mod:`recsmith.jobs.runs`: ``CREATE_PENDING`` → ``"CREATE
    PENDING"``, ``CREATE_IN_PROGRESS`` → ``"CREATE IN_PROGRESS"``, ``CREATE_FAILED`` → ``"CREATE FAILED"`` (any
    ``CREATE_``/``DELETE_``/``UPDATE_`` status likewise: the first underscore is a space); ``ACTIVE`` as it is."""
    action, sep, state = status.partition("_")
    return f"{action} {state}" if sep and action in ("CREATE", "DELETE", "UPDATE") else status


def epoch(value: datetime | None) -> float | None:
    """A stored time as epoch seconds (how the control plane's timestamps travel)."""
    return None if value is None else value.timestamp()


def resource_name(body: dict[str, Any], key: str = "name", kind: str = "resource") -> str:
    """The required name in field ``key``, checked against Personalize's ``Name`` shape (1-63 letters, digits,
    ``-``, ``_``: :func:`~recsmith.store.schema_registry_records.check_personalize_name`)."""
    value = field(body, key, str, required=True)
    try:
        return check_personalize_name(kind, value)
    except ConfigError as exc:
        raise invalid_input(f"{key}: {exc}") from None


def already_exists(message: str) -> AwsError:
    """Personalize's ``ResourceAlreadyExistsException`` (400)."""
    return AwsError("ResourceAlreadyExistsException", message, 400)


def refuse_taken(kind: str, name: str, names: Iterable[str]) -> None:
    """Refuse (``ResourceAlreadyExistsException``) a name a resource of ``kind`` already has in some dataset group
    (names are unique in a Personalize account)."""
    if name in set(names):
        raise already_exists(f"a {kind} named {name!r} already exists (names are unique in the account, across "
                             "dataset groups): choose another name")


def page(body: dict[str, Any], items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """One page of ``items`` as ``{key: [...], "nextToken": ...}``: ``maxResults`` (1-100, default 100) from the
    offset ``nextToken`` holds."""
    limit = field(body, "maxResults", int, default=MAX_RESULTS)
    if not 1 <= limit <= MAX_RESULTS:
        raise invalid_input(f"maxResults: must be 1 to {MAX_RESULTS}, got {limit}")
    token = field(body, "nextToken", str)
    start = 0
    if token is not None:
        if not token.isdigit() or int(token) > len(items):
            raise AwsError("InvalidNextTokenException", f"nextToken {token[:100]!r} is not one this list gave", 400)
        start = int(token)
    out: dict[str, Any] = {key: items[start:start + limit]}
    if start + limit < len(items):
        out["nextToken"] = str(start + limit)
    return out
