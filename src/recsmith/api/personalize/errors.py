"""AWS's error shape: ``{"__type": code, "message": text}`` with the ``x-amzn-ErrorType`` header, as botocore's
rest-json and json parsers read it, and the mapping of recsmith's errors to Personalize's codes."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from recsmith.errors import ConflictError, NotFoundError, RecsmithError, UnknownIdError

JSON_1_1 = "application/x-amz-json-1.1"


class AwsError(Exception):
    """An error to answer in AWS's shape.

    Parameters
    ----------
    code : str
        The error code botocore raises as ``ClientError`` (``InvalidInputException``...).
    message : str
        What went wrong, naming the field where one is at fault.
    status : int
        The HTTP status (Personalize's: 400 for a bad input, 404 for a missing resource).
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def invalid_input(message: str) -> AwsError:
    """Personalize's ``InvalidInputException`` (400): a field is missing, of the wrong type or out of range."""
    return AwsError("InvalidInputException", message, 400)


def not_found(message: str) -> AwsError:
    """Personalize's ``ResourceNotFoundException`` (404)."""
    return AwsError("ResourceNotFoundException", message, 404)


def from_recsmith(exc: RecsmithError) -> AwsError:
    """A recsmith error as Personalize would say it: not found → ``ResourceNotFoundException`` (404), a resource in
    use → ``ResourceInUseException`` (400), anything else (a bad value, filter or name) → ``InvalidInputException``
    (400)."""
    if isinstance(exc, NotFoundError | UnknownIdError):
        return not_found(str(exc))
    if isinstance(exc, ConflictError):
        return AwsError("ResourceInUseException", str(exc), 400)
    field = getattr(exc, "field", None)
    return invalid_input(f"{field}: {exc}" if field and field not in str(exc) else str(exc))


def aws_response(body: Any, *, status: int = 200, content_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> Response:
    """A JSON answer as Personalize sends it."""
    return Response(orjson.dumps(body), status_code=status, media_type=content_type, headers=headers)


def error_response(error: AwsError, *, content_type: str = "application/json") -> Response:
    """``error`` in AWS's shape."""
    return aws_response({"__type": error.code, "message": error.message}, status=error.status,
                        content_type=content_type, headers={"x-amzn-ErrorType": error.code})
