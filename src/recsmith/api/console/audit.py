"""The audit entries of what is done through the console (the API's middleware writes those of ``/v1``)."""

from __future__ import annotations

from typing import Any

from fastapi import Request


def audit_action(request: Request, actor: str | None, action: str, resource: str, *, outcome: str = "ok",
                 status: int | None = None, detail: dict[str, Any] | None = None) -> None:
    """Append an audit entry for a console action: ``action`` and ``resource`` as the API names them
    (``campaign.update``, ``dataset-groups/shop/campaigns/top``), the key id as actor, ``"via": "console"`` in the
    detail. A failure to write is logged, not raised (the action is already done)."""
    client = request.client
    request.app.state.store.audit_quietly(action, resource, outcome=outcome, status=status,
                                          actor=actor or "anonymous", source=client.host if client else "unknown",
                                          detail={"via": "console", **(detail or {})})
