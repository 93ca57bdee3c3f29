"""API keys (admins): create one (its secret shown once), list them, revoke one.

An admin key of every group manages every key; an admin key of one group manages the keys of that group."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from recsmith.api.console.audit import audit_action
from recsmith.api.console.render import page
from recsmith.api.console.session import ConsoleUser, User
from recsmith.store.serving_records import ROLES

router = APIRouter(prefix="/console/keys", include_in_schema=False)


def _visible_keys(request: Request, user: ConsoleUser) -> list[dict]:
    keys = request.app.state.store.list_api_keys()
    return keys if user.dataset_group is None else [k for k in keys if k["dataset_group"] == user.dataset_group]


def _require_admin(user: ConsoleUser) -> None:
    user.require("admin", user.dataset_group)


def _keys_page(request: Request, user: ConsoleUser, created: dict | None = None, status: int = 200) -> Response:
    groups = [g.name for g in request.app.state.store.list_dataset_groups()
              if user.dataset_group in (None, g.name)]
    return page(request, "keys.html", status=status, title="API keys", active="keys", keys=_visible_keys(request, user),
                roles=ROLES, groups=groups, created=created)


@router.get("")
def list_keys(request: Request, user: User) -> Response:
    """Every key the admin manages: id, role, group, name, created (never a secret)."""
    _require_admin(user)
    return _keys_page(request, user)


@router.post("")
def create_key(request: Request, user: User, role: Annotated[str, Form()],
               dataset_group: Annotated[str, Form()] = "", name: Annotated[str, Form(max_length=128)] = "") -> Response:
    """Make a key; the page shows its secret this once."""
    _require_admin(user)
    group = dataset_group or None
    if user.dataset_group is not None and group != user.dataset_group:
        raise HTTPException(403, f"this API key manages only the keys of dataset group {user.dataset_group!r}")
    created = request.app.state.store.create_api_key(role, group, name or None)
    audit_action(request, user.principal.key_id, "key.create", f"keys/{created['key_id']}",
                 detail={"role": role, "dataset_group": group})
    return _keys_page(request, user, created=created, status=201)


@router.post("/{key_id}/revoke")
def revoke_key(request: Request, user: User, key_id: str) -> Response:
    """Revoke a key (not the one this session stands for)."""
    _require_admin(user)
    if key_id == user.principal.key_id:
        raise HTTPException(409, "this session signed in with that key: sign in with another admin key to revoke it")
    if not any(k["key_id"] == key_id for k in _visible_keys(request, user)):
        raise HTTPException(404, f"no API key {key_id!r} among the keys this key manages")
    request.app.state.store.delete_api_key(key_id)
    audit_action(request, user.principal.key_id, "key.delete", f"keys/{key_id}")
    return RedirectResponse("/console/keys", status_code=303)
