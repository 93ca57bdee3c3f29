"""Real-time events as the store's interaction rows: what the event tracker (``POST .../events``) and
``recsmith events put`` both write."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from recsmith.data.values import number_problem, text_problem
from recsmith.errors import DataError

__all__ = ["check_event", "event_id", "event_rows"]


def _refused(field: str, value: Any, reason: str) -> DataError:
    shown = value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "..."
    error = DataError(f"{field}: {shown!r} {reason}")
    error.field, error.value = field, value  # type: ignore[attr-defined]
    return error


def _check_text(field: str, value: Any) -> None:
    problem = text_problem(value) if isinstance(value, str) else None
    if problem is not None:
        raise _refused(field, value, problem)


def _check_number(field: str, value: Any) -> None:
    problem = number_problem(value)
    if problem is not None:
        raise _refused(field, value, problem)


def check_event(user_id: str | None, session_id: str, event: Mapping[str, Any], where: str = "events[0]") -> None:
    """Refuse an event the store could not keep or training could not use.

    The one check every way of writing events goes through (HTTP, ``recsmith events put``, :func:`event_rows`):
    ``event_value`` and number properties must be finite, and no id or text may hold a NUL character (which
    PostgreSQL cannot store) or an unpaired surrogate (not valid Unicode).

    Parameters
    ----------
    user_id : str or None
        The user (None for anonymous traffic).
    session_id : str
        The session.
    event : mapping
        One validated event (see :func:`event_rows`).
    where : str
        How to name the event in the message, e.g. ``events[3]``.

    Raises
    ------
    DataError
        Naming the field (``events[3].event_value``) and the value; its ``field`` attribute holds that name.
    """
    _check_text("user_id", user_id)
    _check_text("session_id", session_id)
    for name in ("event_id", "event_type", "item_id", "recommendation_id"):
        _check_text(f"{where}.{name}", event.get(name))
    _check_number(f"{where}.event_value", event.get("event_value"))
    for key, value in (event.get("properties") or {}).items():
        _check_text(f"{where}.properties", key)
        _check_text(f"{where}.properties.{key}", value)
        _check_number(f"{where}.properties.{key}", value)
    for position, item in enumerate(event.get("impression") or ()):
        _check_text(f"{where}.impression[{position}]", item)


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

    Raises
    ------
    DataError
        An event :func:`check_event` refuses (a non-finite ``event_value``, a NUL character in an id ...),
        naming the field; no row is returned then.
    """
    events = list(events)  # checked in full before any row is built
    rows = []
    for position, event in enumerate(events):
        check_event(user_id, session_id, event, f"events[{position}]")
    user_id = user_id or session_id
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
