"""personalize-events: ``PutEvents`` (``POST /events``), ``PutUsers`` (``POST /users``) and ``PutItems``
(``POST /items``), write keys and up, with ``/v1``'s durability, idempotency and schema checks (the same
functions: :func:`~recsmith.api.routes.events.record_events`, :func:`~recsmith.api.routes.catalog.put_catalog`).

``trackingId`` names an event tracker (``CreateEventTracker``), and so the dataset group. An event's
``properties`` is a JSON string, as in Personalize; for users and items its keys are matched to the schema's
fields as Personalize does (``numberOfRatings`` is ``NUMBER_OF_RATINGS``: case and underscores ignored).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from recsmith.api.personalize import resolve
from recsmith.api.personalize.arns import parse_arn
from recsmith.api.personalize.errors import invalid_input, not_found
from recsmith.api.personalize.protocol import Call, answer, field, validated
from recsmith.api.routes.catalog import put_catalog
from recsmith.api.routes.events import record_events
from recsmith.api.schemas import EventsIn

router = APIRouter(include_in_schema=False)

MAX_BATCH = 10
"""Events, users or items per call, as in Personalize."""
_NAMES = {"user_id": "userId", "session_id": "sessionId", "events": "eventList", "event_id": "eventId",
          "event_type": "eventType", "item_id": "itemId", "event_value": "eventValue", "sent_at": "sentAt",
          "properties": "properties", "recommendation_id": "recommendationId", "impression": "impression"}


def _properties(value: Any, label: str) -> dict[str, Any]:
    """A ``properties`` JSON string as a map."""
    if value is None:
        return {}
    if not isinstance(value, str):
        raise invalid_input(f"{label}: expected a JSON string, got {value!r}"[:300])
    if len(value) > 1024:
        raise invalid_input(f"{label}: at most 1024 characters")
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise invalid_input(f"{label}: not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise invalid_input(f"{label}: must be a JSON object")
    return parsed


def _batch(body: dict[str, Any], name: str) -> list[Any]:
    entries = field(body, name, list, required=True)
    if not 1 <= len(entries) <= MAX_BATCH:
        raise invalid_input(f"{name}: 1 to {MAX_BATCH} entries, got {len(entries)}")
    return entries


def _sent_at(value: Any, label: str) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise invalid_input(f"{label}: {value!r} is not a time") from None
    return value  # an ISO string: the model checks it


def _put_events(call: Call) -> dict[str, Any]:
    body = call.body
    tracking_id = field(body, "trackingId", str, required=True)
    tracker = call.state.store.tracker_of(tracking_id)
    if tracker is None:
        raise not_found(f"trackingId: no event tracker has the tracking id {tracking_id!r}")
    group = tracker["dataset_group"]
    call.authorize("write", group)
    events = []
    for position, event in enumerate(_batch(body, "eventList")):
        where = f"eventList[{position}]."
        event = field({"e": event}, "e", dict, where=f"eventList[{position}]")
        events.append({
            "event_id": field(event, "eventId", str, where=where),
            "event_type": field(event, "eventType", str, required=True, where=where),
            "item_id": field(event, "itemId", str, required=True, where=where),
            "event_value": field(event, "eventValue", float, where=where),
            "sent_at": _sent_at(field(event, "sentAt", (int, float, str), required=True, where=where),
                                f"{where}sentAt"),
            "properties": _properties(event.get("properties"), f"{where}properties"),
            "recommendation_id": field(event, "recommendationId", str, where=where),
            "impression": field(event, "impression", list, default=[], where=where),
        })
    request = {"user_id": field(body, "userId", str), "session_id": field(body, "sessionId", str, required=True),
               "events": events}
    record_events(call.state.store, call.state.runtime, call.state.metrics, group,
                  validated(EventsIn, request, _NAMES))
    return {}


def _dataset(call: Call, kind: str) -> str:
    group, dataset_type = parse_arn(field(call.body, "datasetArn", str, required=True), "dataset", "datasetArn",
                                    parts=2)
    if dataset_type.lower() != kind:
        raise invalid_input(f"datasetArn: {call.body['datasetArn']} is the {dataset_type} dataset; Put"
                            f"{kind.capitalize()} takes the {kind.upper()} dataset")
    group = resolve.dataset_group(call.state, call.arns.dataset_group(group), "datasetArn")
    call.authorize("write", group)
    return group


def _field_names(store: Any, group: str, kind: str) -> dict[str, str]:
    """The schema's fields by their key with case and underscores ignored."""
    fields = store.schema_fields(store.get_dataset_group(group).id).get(kind) or []
    return {name.replace("_", "").lower(): name for name in fields}


def _put_entities(call: Call, kind: str) -> dict[str, Any]:
    group = _dataset(call, kind)
    key, entity = ("USER_ID", "userId") if kind == "users" else ("ITEM_ID", "itemId")
    names = _field_names(call.state.store, group, kind)
    records = []
    for position, raw in enumerate(_batch(call.body, kind)):
        where = f"{kind}[{position}]."
        raw = field({"e": raw}, "e", dict, where=f"{kind}[{position}]")
        record: dict[str, Any] = {key: field(raw, entity, str, required=True, where=where)}
        for name, value in _properties(raw.get("properties"), f"{where}properties").items():
            record[names.get(str(name).replace("_", "").lower(), str(name))] = value
        records.append(record)
    put_catalog(call.state.store, call.state.runtime, group, kind, records)
    return {}


@router.post("/events")
async def put_events(request: Request) -> Response:
    """Personalize's ``PutEvents``."""
    return await answer(request, lambda call: run_in_threadpool(_put_events, call))


@router.post("/users")
async def put_users(request: Request) -> Response:
    """Personalize's ``PutUsers``."""
    return await answer(request, lambda call: run_in_threadpool(_put_entities, call, "users"))


@router.post("/items")
async def put_items(request: Request) -> Response:
    """Personalize's ``PutItems``."""
    return await answer(request, lambda call: run_in_threadpool(_put_entities, call, "items"))
