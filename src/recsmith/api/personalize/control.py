"""The Personalize control plane: json 1.1, ``POST /`` with ``X-Amz-Target: AmazonPersonalize.<Operation>``,
admin keys only (a key scoped to a dataset group acts on that group's resources only: each operation checks its
group with :meth:`~recsmith.api.personalize.protocol.Call.authorize`).

The operations live in :mod:`.control_data` (dataset groups, schemas, datasets, import jobs, event trackers,
filters) and :mod:`.control_models` (recipes, solutions, solution versions, metrics, campaigns, batch inference
jobs); each is a function of the verified :class:`~recsmith.api.personalize.protocol.Call`, run in a worker
thread, that answers the operation's output shape. An operation recsmith lacks is an ``UnknownOperationException``
naming it.
"""

from __future__ import annotations

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

    async def run(call: Call) -> Any:
        if ROLES.index(call.principal.role) < ROLES.index("admin"):
            call.authorize("admin", None)  # raises AccessDeniedException naming the role needed
        return await run_in_threadpool(operation, call)

    return await answer(request, run, content_type=JSON_1_1)
