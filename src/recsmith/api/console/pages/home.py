"""Signing in and out, the console's front door and the list of dataset groups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from recsmith.api.console.audit import audit_action
from recsmith.api.console.render import page
from recsmith.api.console.session import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    User,
    clear_session_cookie,
    safe_next,
    set_session_cookie,
    set_sign_in_cookie,
    sign_in_token,
    tokens_match,
)
from recsmith.api.routes.dataset_groups import group_views

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
def home(user: User) -> Response:
    """A key of one group goes to that group's overview; a key of every group to the list of groups."""
    if user.dataset_group:
        return RedirectResponse(f"/console/g/{user.dataset_group}", status_code=303)
    return RedirectResponse("/console/groups", status_code=303)


@router.get("/sign-in")
def sign_in_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form (with its CSRF cookie)."""
    token, new = sign_in_token(request)
    response = page(request, "sign_in.html", csrf_token=token, next_path=safe_next(next), message=None)
    if new:
        set_sign_in_cookie(response, request, token)
    return response


@router.post("/sign-in")
async def sign_in(request: Request, api_key: Annotated[str, Form(max_length=512)] = "",
                  csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=256)] = "",
                  next: Annotated[str, Form(max_length=2048)] = "/console") -> Response:
    """Check the key as the API does, open a session and set its cookie; a bad key shows the form again (401)."""
    if not tokens_match(request.cookies.get(SIGN_IN_COOKIE), csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token on the sign-in form: reload the sign-in page")
    principal = await run_in_threadpool(request.app.state.keys.principal, api_key.strip())
    store, settings = request.app.state.store, request.app.state.settings
    if principal is None:
        await run_in_threadpool(audit_action, request, None, "console.sign_in", "console", outcome="denied",
                                status=401)
        return page(request, "sign_in.html", status=401, csrf_token=csrf_token, next_path=safe_next(next),
                    message="That is not a valid API key (or it was revoked). Keys look like rsk_<id>_<secret>.")
    ttl = int(settings.console_session_hours * 3600)
    session = await run_in_threadpool(store.create_console_session, principal.key_id, ttl)
    await run_in_threadpool(audit_action, request, principal.key_id, "console.sign_in", "console")
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, request, session["token"], ttl)
    response.delete_cookie(SIGN_IN_COOKIE, path="/console")
    return response


@router.post("/sign-out")
def sign_out(request: Request, user: User) -> Response:
    """End the session (the cookie is cleared, the row deleted)."""
    request.app.state.store.delete_console_session(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/console/sign-in", status_code=303)
    clear_session_cookie(response, request)
    return response


@router.get("/groups")
def groups(request: Request, user: User) -> Response:
    """Every dataset group the key may see, with its counts (the API's listing)."""
    views = [g for g in group_views(request.app.state.store) if user.may("read", g["name"])]
    return page(request, "groups.html", title="Dataset groups", active="groups", groups=views)
