"""AWS Signature Version 4, verified: the canonical request, the signed headers, the payload's hash and the clock.

The server recomputes what the client signed (botocore's ``SigV4Auth`` for a non-S3 service: the path URI-encoded
once more, the query sorted, each signed header's value trimmed, the body's SHA-256, which the server computes
itself since botocore sends no ``x-amz-content-sha256`` for Personalize) and compares the signature in constant
time. ``host`` and ``x-amz-date`` must be signed; the request's time may be at most :data:`MAX_SKEW_SECONDS` from
the server's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from recsmith.api.personalize.errors import AwsError

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "personalize"
"""The signing name of all three services (personalize, personalize-runtime, personalize-events)."""
MAX_SKEW_SECONDS = 300.0
_AUTH = re.compile(r"^AWS4-HMAC-SHA256\s+(.*)$", re.S)
_DATE = re.compile(r"^\d{8}T\d{6}Z$")


@dataclass(frozen=True)
class SignedRequest:
    """What the signature covers, as the server received it."""

    method: str
    raw_path: str
    """The path as sent, still percent-encoded."""
    query: str
    """The raw query string, without the ``?``."""
    headers: Mapping[str, str]
    """Lower-case names; a repeated header's values joined with ``,``."""
    body: bytes


@dataclass(frozen=True)
class Credential:
    """The parsed ``Authorization`` header."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        """``date/region/service/aws4_request``."""
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def _incomplete(message: str) -> AwsError:
    return AwsError("IncompleteSignatureException", message, 400)


def parse_authorization(header: str | None) -> Credential:
    """The credential, scope, signed headers and signature of an ``Authorization: AWS4-HMAC-SHA256 ...`` header.

    Raises
    ------
    AwsError
        ``MissingAuthenticationTokenException`` (403) without the header, ``IncompleteSignatureException`` (400)
        when it is not a well-formed SigV4 header.
    """
    if not header:
        raise AwsError("MissingAuthenticationTokenException",
                       "Missing Authentication Token: sign the request with AWS Signature Version 4, the access key "
                       "id a recsmith key's id and the secret access key its secret", 403)
    match = _AUTH.match(header.strip())
    if match is None:
        raise _incomplete(f"Authorization header requires the {ALGORITHM} algorithm (recsmith's bearer keys are "
                          "for /v1)")
    fields: dict[str, str] = {}
    for part in match.group(1).split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise _incomplete(f"Authorization header requires {', '.join(missing)}")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not re.fullmatch(r"\d{8}", scope[1]):
        raise _incomplete(f"Credential should be <access key>/<yyyymmdd>/<region>/<service>/aws4_request, got "
                          f"{fields['Credential']!r}")
    if scope[3] != SERVICE:
        raise _incomplete(f"Credential should be scoped to the service {SERVICE!r}, not {scope[3]!r}")
    signed = tuple(fields["SignedHeaders"].lower().split(";"))
    for needed in ("host", "x-amz-date"):
        if needed not in signed:
            raise _incomplete(f"SignedHeaders must include {needed!r}")
    return Credential(scope[0], scope[1], scope[2], scope[3], signed, fields["Signature"].lower())


def _canonical_query(query: str) -> str:
    pairs = []
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _canonical_path(raw_path: str) -> str:
    path = raw_path or "/"
    return quote(path, safe="/~")


def canonical_request(request: SignedRequest, signed_headers: tuple[str, ...]) -> str:
    """The canonical request of SigV4: method, path, query, signed headers and their values, the body's hash."""
    lines = []
    for name in signed_headers:
        value = request.headers.get(name)
        if value is None:
            raise _incomplete(f"the signed header {name!r} is not in the request")
        lines.append(f"{name}:{' '.join(value.split())}")
    payload = hashlib.sha256(request.body).hexdigest()
    claimed = request.headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != "UNSIGNED-PAYLOAD" and not hmac.compare_digest(claimed.lower(), payload):
        raise AwsError("InvalidSignatureException", "The provided x-amz-content-sha256 header does not match what "
                                                    "was computed.", 403)
    return "\n".join([request.method.upper(), _canonical_path(request.raw_path), _canonical_query(request.query),
                      "\n".join(lines) + "\n", ";".join(signed_headers),
                      claimed if claimed == "UNSIGNED-PAYLOAD" else payload])


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's derived key: HMAC-SHA256 down ``AWS4<secret>`` → date → region → service → ``aws4_request``."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def request_time(headers: Mapping[str, str]) -> datetime:
    """The request's ``x-amz-date``."""
    stamp = headers.get("x-amz-date", "")
    if not _DATE.match(stamp):
        raise _incomplete(f"x-amz-date must be yyyymmddThhmmssZ, got {stamp!r}")
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def verify(request: SignedRequest, secret_of: Callable[[str], str], *, now: datetime | None = None) -> Credential:
    """Check the request's signature; the credential when it holds.

    Parameters
    ----------
    request : SignedRequest
        The request as received.
    secret_of : callable
        The secret access key of an access key id; raises :class:`AwsError` (``UnrecognizedClientException``) for
        an id it does not know.
    now : datetime, optional
        The server's time (the clock's by default).

    Raises
    ------
    AwsError
        ``InvalidSignatureException`` (403) for a signature that does not match or a time more than five minutes
        off; the errors of :func:`parse_authorization` and ``secret_of``.
    """
    credential = parse_authorization(request.headers.get("authorization"))
    when = request_time(request.headers)
    now = now or datetime.now(UTC)
    if abs((now - when).total_seconds()) > MAX_SKEW_SECONDS:
        raise AwsError("InvalidSignatureException",
                       f"Signature expired: {when:%Y%m%dT%H%M%SZ} is now earlier than "
                       f"{now:%Y%m%dT%H%M%SZ} minus 5 minutes (or later than plus 5 minutes): check the clock",
                       403)
    if credential.date != f"{when:%Y%m%d}":
        raise AwsError("InvalidSignatureException", f"Credential should be scoped to a valid date: "
                                                    f"{credential.date!r} is not the date of x-amz-date", 403)
    secret = secret_of(credential.access_key)
    canonical = canonical_request(request, credential.signed_headers)
    to_sign = "\n".join([ALGORITHM, request.headers["x-amz-date"], credential.scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = signing_key(secret, credential.date, credential.region, credential.service)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, credential.signature):
        raise AwsError("InvalidSignatureException",
                       "The request signature we calculated does not match the signature you provided. Check your "
                       "AWS Secret Access Key and signing method.", 403)
    return credential
