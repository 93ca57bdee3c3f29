"""Real-time events as the store's interaction rows: what the event tracker (``POST .../events``) and
``recsmith events put`` both write."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any


def event_id(user_id: str, session_id: str, event: Mapping[str, Any]) -> str:
    """An id derived from what the event says, so resending the same event is recognised."""
    key = json.dumps([user_id, session_id, event["item_id"], event["event_type"], event["sent_at"].isoformat(),
                      event["event_value"]], default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def event_rows(user_id: str | None, session_id: str, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The store rows (``Store.record_events``' and ``Store.write_events``' input) of one user's validated events.

    Parameters
    ----------
    user_id : str or None
        The user; None for anonymous traffic, where the session stands for its user (as in Personalize).
    session_id : str
        The session the events belong to.
    events : iterable of mapping
        Validated events (``EventIn.model_dump()`` of the API's schema): ``event_id`` (None: derived from the
        event, see :func:`event_id`), ``event_type``, ``item_id``, ``event_value``, ``sent_at`` (a datetime),
        ``properties``, ``recommendation_id`` and ``impression`` (item ids shown, kept in the context).

    Returns
    -------
    list of dict
        One row per event.
    """
    user_id = user_id or session_id
    rows = []
    for event in events:
        context: dict[str, Any] = dict(event["properties"])
        if event["impression"]:
            context["impression"] = "|".join(event["impression"])
        rows.append({"event_id": event["event_id"] or event_id(user_id, session_id, event), "user_id": user_id,
                     "item_id": event["item_id"], "timestamp": int(event["sent_at"].timestamp()),
                     "event_type": event["event_type"], "event_value": event["event_value"],
                     "session_id": session_id, "recommendation_id": event["recommendation_id"],
                     "context": context})
    return rows
