"""The event tracker: real-time interactions, committed to the store before the answer."""

from __future__ import annotations

from fastapi import APIRouter

from recsmith.api.auth import Writer
from recsmith.api.responses import JSON
from recsmith.api.routes.deps import MetricsDep, RuntimeDep, StoreDep
from recsmith.api.schemas import EventsIn, EventsOut, GroupPath
from recsmith.errors import NotFoundError
from recsmith.jobs.events import event_rows
from recsmith.serving.ledger import attribution

router = APIRouter(prefix="/v1/dataset-groups/{group}", tags=["events"])


@router.post("/events", response_model=EventsOut)
def put_events(group: GroupPath, body: EventsIn, store: StoreDep, runtime: RuntimeDep, metrics: MetricsDep,
               _: Writer) -> JSON:
    """Record up to 100 events; the 200 answer comes after they are committed (SQLite WAL or PostgreSQL), and an
    event whose ``event_id`` was stored before is skipped (counted in ``duplicates``). Events that carry a
    ``recommendation_id`` count as clicks and impressions of the campaign that served it."""
    return JSON(record_events(store, runtime, metrics, group, body))


def record_events(store: StoreDep, runtime: RuntimeDep, metrics: MetricsDep, group: str,
                  body: EventsIn) -> dict[str, int]:
    """Commit validated events of ``group`` (skipping event ids stored before), tell the runtime, and count the
    clicks and impressions they attribute: what ``POST .../events`` and Personalize's ``PutEvents`` do.

    Returns
    -------
    dict
        ``{"accepted": n, "duplicates": n}``.
    """
    group_id = runtime.group_id(group)
    rows = event_rows(body.user_id, body.session_id, (event.model_dump() for event in body.events))
    try:
        batch = store.record_events(group_id, rows, group_name=group)
    except NotFoundError:  # the group was deleted since its id was cached (and perhaps created again)
        runtime.forget_group(group)
        group_id = runtime.group_id(group)  # NotFoundError (404) if it is gone
        batch = store.record_events(group_id, rows, group_name=group)
    if batch.accepted:
        runtime.events_written(group_id, rows, batch)
        _attribute(body, runtime, metrics, group)
    return {"accepted": batch.accepted, "duplicates": batch.duplicates}


def _attribute(body: EventsIn, runtime: RuntimeDep, metrics: MetricsDep, group: str) -> None:
    """Clicks (an event on an item of the response it names) and impressions per campaign, from the ledger."""
    linked = [event for event in body.events if event.recommendation_id]
    if not linked:
        return
    served = runtime.ledger.lookup(event.recommendation_id for event in linked)
    for event in linked:
        entry = served.get(event.recommendation_id)
        if entry is None:
            continue
        impressions, clicks = attribution(event.item_id, event.impression, entry)
        if impressions:
            metrics.impressions.labels(group, entry.campaign).inc(impressions)
        if clicks:
            metrics.clicks.labels(group, entry.campaign).inc(clicks)
