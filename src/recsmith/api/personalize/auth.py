"""Who signed a Personalize call: the recsmith key whose id is the access key id, and whether its role allows the
call (read for the runtime, write for events, admin for the control plane, as on ``/v1``).

The keys' secrets are remembered for :data:`~recsmith.api.auth.KEY_CACHE_SECONDS` per worker, like bearer keys,
so a signed request does not hit the database to authenticate; a deleted key stops working within that time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from recsmith.api.auth import KEY_CACHE_ENTRIES, KEY_CACHE_SECONDS, Principal
from recsmith.api.personalize import sigv4
from recsmith.api.personalize.errors import AwsError

_UNKNOWN = "unknown"
_UNSEALED = "unsealed"


class SigningKeys:
    """The principals and secrets of access key ids, cached briefly (valid and invalid ids apart)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._valid: dict[str, tuple[float, Principal, str]] = {}
        self._invalid: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def lookup(self, key_id: str) -> tuple[Principal, str]:
        """The principal and secret of access key ``key_id``.

        Raises
        ------
        AwsError
            ``UnrecognizedClientException`` (403) for an id that names no key, or a key made before recsmith kept
            the sealed secrets SigV4 needs.
        """
        now = time.monotonic()
        valid = self._valid.get(key_id)
        if valid is not None and valid[0] > now:
            return valid[1], valid[2]
        invalid = self._invalid.get(key_id)
        if invalid is None or invalid[0] <= now:
            record = self.store.signing_key(key_id) if 0 < len(key_id) <= 32 else None
            reason = _UNKNOWN if record is None else _UNSEALED if record["secret"] is None else None
            with self._lock:
                cache: dict[str, Any] = self._invalid if reason else self._valid
                if len(cache) >= KEY_CACHE_ENTRIES:
                    cache.clear()
                if reason:
                    self._invalid[key_id] = (now + KEY_CACHE_SECONDS, reason)
                else:
                    assert record is not None
                    principal = Principal(record["key_id"], record["role"], record["dataset_group"])
                    self._valid[key_id] = (now + KEY_CACHE_SECONDS, principal, record["secret"])
                    return principal, record["secret"]
        else:
            reason = invalid[1]
        if reason == _UNSEALED:
            raise AwsError("UnrecognizedClientException",
                           "The security token included in the request is invalid: this recsmith key was made before "
                           "keys could sign AWS requests; make a new one with `recsmith keys create`", 403)
        raise AwsError("UnrecognizedClientException", "The security token included in the request is invalid.", 403)

    def authenticate(self, request: sigv4.SignedRequest) -> Principal:
        """The principal whose key signed ``request``, the signature verified (:func:`sigv4.verify`)."""
        found: dict[str, Principal] = {}

        def secret_of(key_id: str) -> str:
            principal, secret = self.lookup(key_id)
            found["principal"] = principal
            return secret

        sigv4.verify(request, secret_of)
        return found["principal"]


def authorize(principal: Principal, role: str, group: str | None) -> None:
    """Refuse with ``AccessDeniedException`` (403) unless ``principal`` has ``role`` on ``group``."""
    refusal = principal.refusal(role, group)
    if refusal is not None:
        raise AwsError("AccessDeniedException", refusal, 403)
