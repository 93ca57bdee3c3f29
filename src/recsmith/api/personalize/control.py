"""The Personalize control plane: json 1.1, ``POST /`` with ``X-Amz-Target: AmazonPersonalize.<Operation>``,
admin keys only (a key scoped to a dataset group acts on that group's resources only: each operation checks its
group with :meth:`~recsmith.api.personalize.protocol.Call.authorize`).

The operations live in :mod:`.control_data` (dataset groups, schemas, datasets, import jobs, event trackers,
filters) and :mod:`.control_models` (recipes, solutions, solution versions, metrics, campaigns, batch inference
jobs); each is a function of the verified :class:`~recsmith.api.personalize.protocol.Call`, run in a worker
thread, that answers the operation's output shape. An operation recsmith lacks is an ``UnknownOperationException``
naming it. Every operation that changes something is written to the audit log (``campaign.create``...,
``ok``, ``failed`` or ``denied``, with the key's id as the actor and the ARN or name it acted on), as ``/v1``'s
changes are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from recsmith.api.personalize import control_data, control_models
from recsmith.api.personalize.errors import JSON_1_1, AwsError, error_response
from recsmith.api.personalize.protocol import Call, answer
from recsmith.store.serving_records import ROLES

TARGET_PREFIX = "AmazonPersonalize."
OPERATIONS: dict[str, Callable[[Call], dict[str, Any]]] = {**control_data.OPERATIONS, **control_models.OPERATIONS}
"""Every control-plane operation recsmith serves, by Personalize's name."""

router = APIRouter(include_in_schema=False)


@router.post("/")
async def control_plane(request: Request) -> Response:
    """Personalize's control-plane operations."""
    target = request.headers.get("x-amz-target", "")
    operation = OPERATIONS.get(target.removeprefix(TARGET_PREFIX)) if target.startswith(TARGET_PREFIX) else None
    if operation is None:
        name = target.removeprefix(TARGET_PREFIX) or "(none)"
        supported = ", ".join(sorted(OPERATIONS))
        return error_response(AwsError("UnknownOperationException",
                                       f"recsmith does not serve the operation {name!r} (X-Amz-Target "
                                       f"{target!r}); it serves: {supported}", 400), content_type=JSON_1_1)

    op_name = target.removeprefix(TARGET_PREFIX)
    action = audit_action(op_name)
    source = request.client.host if request.client else None

    async def run(call: Call) -> Any:
        try:
            if ROLES.index(call.principal.role) < ROLES.index("admin"):
                call.authorize("admin", None)  # raises AccessDeniedException naming the role needed
            result = await run_in_threadpool(operation, call)
        except Exception as exc:
            if action is not None:
                denied = isinstance(exc, AwsError) and exc.code == "AccessDeniedException"
                await run_in_threadpool(call.state.store.audit_quietly, action, _resource(call.body),
                                        outcome="denied" if denied else "failed", actor=call.principal.key_id,
                                        source=source, detail={"operation": op_name, "error": _code(exc)})
            raise
        if action is not None:
            await run_in_threadpool(call.state.store.audit, action, _resource(call.body),
                                    actor=call.principal.key_id, source=source, detail={"operation": op_name})
        return result

    return await answer(request, run, content_type=JSON_1_1, not_found_status=400)


_VERBS = (("Create", "create"), ("Update", "update"), ("Delete", "delete"), ("Stop", "stop"))


def audit_action(operation: str) -> str | None:
    """The audit action of a control-plane operation that changes something (``CreateCampaign`` is
    ``campaign.create``, as ``POST .../campaigns`` on ``/v1``); None for one that only reads."""
    for prefix, verb in _VERBS:
        if operation.startswith(prefix) and len(operation) > len(prefix):
            kind = re.sub(r"(?<!^)(?=[A-Z])", "_", operation[len(prefix):]).lower()
            return f"{kind}.{verb}"
    return None


def _resource(body: dict[str, Any]) -> str:
    """What a change names: its ARN, or the name of what it creates."""
    for key, value in body.items():
        if key.endswith("Arn") and isinstance(value, str) and key != "roleArn":
            return value[:256]
    name = body.get("name") or body.get("jobName")
    return str(name)[:256] if name else "(none)"


def _code(exc: Exception) -> str:
    return exc.code if isinstance(exc, AwsError) else type(exc).__name__
