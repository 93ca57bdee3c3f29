"""Try it: a campaign's ranked list for a user, an anonymous session or an item (related items), or its personalized
ranking of a list of items, with a filter and its values.

The page asks the campaign runtime exactly as the API's ``/recommendations`` and ``/personalized-ranking`` routes do
(:func:`recsmith.api.routes.recommendations.recommendation_answer` and ``ranking_answer``, with the request validated
by the same schemas), so what it shows is what a client gets. A try serves nobody: it is not written to the
served-items ledger (no impressions, no suppression of what was "shown").

A session is given by its id: the pipeline scores an anonymous session from the events the event tracker stored under
it (``session_id``); it takes no list of items typed inline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.responses import Response

from recsmith.api.console.render import is_htmx, page
from recsmith.api.console.session import User
from recsmith.api.routes.filters import filter_view
from recsmith.api.routes.recommendations import (
    filter_values_from_pairs,
    ranking_answer,
    recommendation_answer,
    validated_request,
)
from recsmith.api.schemas import RankingRequest, RecommendationRequest
from recsmith.errors import Advice, FilterError, reworded
from recsmith.serving import MAX_RESULTS
from recsmith.store.store import Store

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)

KINDS: dict[str, str] = {
    "user": "A user",
    "session": "An anonymous session",
    "item": "An item (related items)",
    "rank": "Rank items for a user",
}
"""What a try asks for (the form's ``kind``), and how the form names it."""

Kind = Literal["user", "session", "item", "rank"]
DEFAULT_RESULTS = 10
DEFAULT_COLUMNS = 3
"""How many of the items schema's fields are shown when the form has not chosen (the first ones)."""
FILTER_VALUE_PREFIX = "filter_value."
"""A filter parameter's input is named ``filter_value.NAME``: one value a line."""
ID_SEPARATORS = re.compile(r"[\s,]+")


def split_ids(text: str) -> list[str]:
    """Ids written with commas, spaces or new lines between them."""
    return [part for part in ID_SEPARATORS.split(text) if part]


def typed_values(fields: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """A form's ``filter_value.NAME`` fields, by parameter name."""
    return {key[len(FILTER_VALUE_PREFIX):]: str(text) for key, text in fields if key.startswith(FILTER_VALUE_PREFIX)}


def value_pairs(typed: Mapping[str, str]) -> list[str]:
    """``NAME=VALUE`` texts from the parameters' inputs (one value a line; blank lines skipped)."""
    return [f"{name}={line.strip()}" for name, text in typed.items() for line in text.splitlines() if line.strip()]


def required(field: str, what: str, where: str = "query") -> RequestValidationError:
    """The 422 of a form field left empty, naming it: ``enter <what>``."""
    return RequestValidationError([{"type": "missing", "loc": (where, field), "msg": f"enter {what}"}])


def build_request(kind: str, *, user_id: str, session_id: str, item_id: str, items: str, num_results: int,
                  filter: str | None, values: dict[str, Any], columns: list[str]) -> BaseModel:
    """The API request a try stands for: a :class:`RecommendationRequest`, or a :class:`RankingRequest` for
    ``kind="rank"``, validated as the API validates it."""
    common = {"filter": filter, "filter_values": values if filter else {}, "metadata_columns": columns}
    field, value, what = {"user": ("user_id", user_id, "a user id"),
                          "session": ("session_id", session_id, "a session id"),
                          "item": ("item_id", item_id, "an item id"), "rank": ("user_id", user_id, "a user id")}[kind]
    if not value.strip():
        raise required(field, what)
    if kind == "rank":
        listed = split_ids(items)
        if not listed:
            raise required("items", "the item ids to rank")
        return validated_request(RankingRequest, {"user_id": user_id.strip(), "input_list": listed, **common})
    return validated_request(RecommendationRequest, {field: value.strip(), "num_results": num_results, **common})


def _answer(request: Request, group: str, campaign: str, body: BaseModel) -> dict[str, Any]:
    """The campaign runtime's answer, asked as the API's routes ask it (not logged as served)."""
    runtime = request.app.state.runtime
    try:
        if isinstance(body, RankingRequest):
            return ranking_answer(runtime, group, campaign, body, log=False)
        return recommendation_answer(runtime, group, campaign, body, log=False)
    except FilterError as exc:
        advice = getattr(exc, "advice", None)
        if isinstance(advice, Advice) and advice.kind == "filter_value":  # in the form's terms
            raise HTTPException(400, reworded(exc, lambda a: f"type a value for ${a.name} under the filter")) \
                from None
        raise


def _summary(kind: str, campaign: str, body: BaseModel, filter: str | None) -> str:
    data = body.model_dump()
    who = {"user": f"user {data.get('user_id')}", "session": f"anonymous session {data.get('session_id')}",
           "item": f"items related to {data.get('item_id')}",
           "rank": f"{len(data.get('input_list') or [])} items ranked for user {data.get('user_id')}"}[kind]
    text = f"Campaign {campaign}: {who}"
    if filter:
        values = "; ".join(f"{k}={v if isinstance(v, str) else ', '.join(map(str, v))}"
                           for k, v in data.get("filter_values", {}).items())
        text += f", filter {filter}" + (f" ({values})" if values else "")
    return text


def _filters(store: Store, group: str) -> list[dict[str, Any]]:
    return [filter_view(record) for record in store.list_filters(group)]


@router.get("/try")
def try_it(request: Request, user: User, group: str,
           campaign: Annotated[str, Query(max_length=128)] = "",
           kind: Annotated[Kind, Query()] = "user",
           user_id: Annotated[str, Query(max_length=256)] = "",
           session_id: Annotated[str, Query(max_length=256)] = "",
           item_id: Annotated[str, Query(max_length=256)] = "",
           items: Annotated[str, Query(max_length=200_000)] = "",
           filter: Annotated[str, Query(max_length=128)] = "",
           num_results: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = DEFAULT_RESULTS,
           metadata_column: Annotated[list[str] | None, Query(max_length=50)] = None,
           columns: Annotated[str, Query(max_length=16)] = "") -> Response:
    """The form, and with a campaign chosen the ranked list (for htmx only the list, which replaces the last)."""
    user.require("read", group)
    store: Store = request.app.state.store
    fields = store.item_fields(group)
    chosen = list(metadata_column or []) if columns else fields[:DEFAULT_COLUMNS]
    typed = typed_values(request.query_params.multi_items())
    results = None
    if campaign:
        values = filter_values_from_pairs(value_pairs(typed))
        body = build_request(kind, user_id=user_id, session_id=session_id, item_id=item_id, items=items,
                             num_results=num_results, filter=filter or None, values=values, columns=chosen)
        results = {"answer": _answer(request, group, campaign, body), "columns": chosen,
                   "summary": _summary(kind, campaign, body, filter or None)}
        if is_htmx(request) and not request.headers.get("hx-history-restore-request"):
            return page(request, "try/_results.html", **results)
    filters = _filters(store, group)
    parameters = next((f["parameters"] for f in filters if f["name"] == filter), [])
    form = {"campaign": campaign, "kind": kind, "user_id": user_id, "session_id": session_id, "item_id": item_id,
            "items": items, "filter": filter, "num_results": num_results, "columns": chosen}
    return page(request, "try/index.html", title="Try it", group=group, active="try", kinds=KINDS,
                campaigns=[c["name"] for c in store.list_campaigns(group)], filters=filters, fields=fields,
                parameters=parameters, values=typed, form=form, max_results=MAX_RESULTS,
                has_results=results is not None, **(results or {}))


@router.get("/try/filter-values")
def filter_values_inputs(request: Request, user: User, group: str,
                         filter: Annotated[str, Query(max_length=128)] = "") -> Response:
    """The inputs of the chosen filter's ``$PARAM`` values (none for no filter): htmx swaps them into the form."""
    user.require("read", group)
    store: Store = request.app.state.store
    parameters = filter_view(store.get_filter(group, filter))["parameters"] if filter else []
    return page(request, "try/_filter_values.html", parameters=parameters, values={})
