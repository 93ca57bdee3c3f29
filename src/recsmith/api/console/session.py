"""Signing in to the console, its session cookie, CSRF tokens, and who the signed-in user is.

- **Sign-in.** ``POST /console/sign-in`` takes an API key, checks it exactly as ``/v1`` does
  (:class:`recsmith.api.auth.KeyChecker`), and opens a session in the store
  (:meth:`recsmith.store.store.Store.create_console_session`). The cookie :data:`SESSION_COOKIE` holds only the
  session's random token: ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when the console is served over https, and
  expiring with the session (:attr:`recsmith.settings.Settings.console_session_hours`). The key itself never
  reaches the browser again.
- **CSRF.** Every form and htmx request that changes something carries the session's CSRF token (the form field
  :data:`CSRF_FIELD` or the header :data:`CSRF_HEADER`); without it, or with another, the answer is 403. The
  sign-in form has no session yet: it carries the token of a short-lived cookie instead (double submit).
- **Roles.** A page reads :class:`ConsoleUser` (a dependency); what it shows and allows follows the key's role and
  dataset group through :meth:`recsmith.api.auth.Principal.may`, the same check the API makes.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from recsmith.api.auth import Principal
from recsmith.store.store import Store

SESSION_COOKIE = "recsmith_console"
SIGN_IN_COOKIE = "recsmith_console_sign_in"
"""The sign-in form's CSRF cookie (before there is a session)."""
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
COOKIE_PATH = "/console"
SIGN_IN_COOKIE_SECONDS = 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in user: their key's principal, the session's CSRF token and the key's name."""

    principal: Principal
    csrf_token: str
    key_name: str | None = None

    @property
    def role(self) -> str:
        """``read``, ``write`` or ``admin``."""
        return self.principal.role

    @property
    def dataset_group(self) -> str | None:
        """The one group the key works on (None: every group)."""
        return self.principal.dataset_group

    def may(self, role: str, group: str | None = None) -> bool:
        """Whether the key has at least ``role`` on ``group`` (the API's check)."""
        return self.principal.may(role, group)

    def require(self, role: str, group: str | None = None) -> None:
        """Refuse with 403 unless the key has at least ``role`` on ``group``, naming what is needed."""
        if not self.may(role, group):
            where = f"dataset group {group!r}" if group else "every dataset group"
            holds = f"role {self.role}" + (f" on dataset group {self.dataset_group!r}" if self.dataset_group else "")
            raise HTTPException(403, f"this API key may not do this: it needs role {role} on {where}, and it has "
                                     f"{holds}")


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page, coming back to ``next_path`` after."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def sign_in_location(next_path: str | None = None) -> str:
    """The sign-in page's URL, returning to ``next_path`` (a console path) after."""
    if next_path and safe_next(next_path) != "/console":
        return f"/console/sign-in?next={quote(next_path, safe='/')}"
    return "/console/sign-in"


def safe_next(path: str | None) -> str:
    """``path`` when it is a path of the console, else ``/console`` (never another site: no open redirect)."""
    if not path or not path.startswith("/console") or path.startswith("//") or "\\" in path:
        return "/console"
    return path


def is_https(request: Request) -> bool:
    """Whether the browser reached us over https (uvicorn's ``--proxy-headers`` turn a trusted proxy's
    ``X-Forwarded-Proto`` into the scheme)."""
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, Secure over https, expiring with the session."""
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path=COOKIE_PATH, httponly=True,
                        secure=is_https(request), samesite="strict")


def clear_session_cookie(response: Response, request: Request) -> None:
    """Remove the session cookie from the browser."""
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, secure=is_https(request),
                           samesite="strict")


def sign_in_token(request: Request) -> tuple[str, bool]:
    """The sign-in form's CSRF token and whether it is new (then the caller sets it with
    :func:`set_sign_in_cookie`)."""
    token = request.cookies.get(SIGN_IN_COOKIE)
    if token and 20 <= len(token) <= 128:
        return token, False
    return secrets.token_urlsafe(32), True


def set_sign_in_cookie(response: Response, request: Request, token: str) -> None:
    """The sign-in form's CSRF cookie."""
    response.set_cookie(SIGN_IN_COOKIE, token, max_age=SIGN_IN_COOKIE_SECONDS, path=COOKIE_PATH, httponly=True,
                        secure=is_https(request), samesite="strict")


def tokens_match(expected: str | None, given: str | None) -> bool:
    """A constant-time comparison of CSRF tokens (False when either is missing)."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


async def submitted_csrf(request: Request) -> str | None:
    """The CSRF token a request carries: the header, else the form field (the form is parsed once and kept by
    Starlette for the route's own form parameters)."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def _user(request: Request) -> ConsoleUser:
    token = request.cookies.get(SESSION_COOKIE)
    store: Store = request.app.state.store
    record = await run_in_threadpool(store.console_session, token) if token else None
    if record is None:
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    user = ConsoleUser(Principal(record["key_id"], record["role"], record["dataset_group"]), record["csrf_token"],
                       record["key_name"])
    if request.method not in SAFE_METHODS and not tokens_match(user.csrf_token, await submitted_csrf(request)):
        raise HTTPException(403, f"missing or wrong CSRF token: send the form's {CSRF_FIELD!r} field or the "
                                 f"{CSRF_HEADER!r} header (reload the page to get a fresh one)")
    request.scope.setdefault("state", {})["console_user"] = user
    return user


User = Annotated[ConsoleUser, Depends(_user)]
"""The signed-in user of a console route; for a method that changes something, also the CSRF check."""
