"""personalize-runtime: ``GetRecommendations`` (``POST /recommendations``) and ``GetPersonalizedRanking``
(``POST /personalize-ranking``), answered by the same pipeline as ``/v1``'s routes
(:func:`~recsmith.api.routes.recommendations.recommendation_answer`), read keys and up.

Personalize's fields map to ``/v1``'s request (and are checked by its model): ``campaignArn`` → the campaign (and
its dataset group), ``filterArn`` → a filter of that group by name, ``filterValues`` → ``filter_values`` (the
quoted form Personalize documents, ``"\\"Comedy\\",\\"Drama\\""``, or bare), ``promotions[0]`` → ``promotion``,
``metadataColumns`` → ``metadata_columns`` (which takes Personalize's ``{"ITEMS": [...]}``), ``numResults`` 0 →
the default 25. The answer's ``reason`` is a list of one reason, ``metadata`` a map of strings (lists joined with
``|``, as Personalize's categorical fields).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from recsmith.api.personalize import resolve
from recsmith.api.personalize.errors import invalid_input
from recsmith.api.personalize.protocol import Call, answer, field, validated
from recsmith.api.routes.recommendations import off_the_loop_if_reading, ranking_answer, recommendation_answer
from recsmith.api.schemas import RankingRequest, RecommendationRequest

router = APIRouter(include_in_schema=False)

_NAMES = {"user_id": "userId", "item_id": "itemId", "num_results": "numResults", "filter": "filterArn",
          "filter_values": "filterValues", "context": "context", "metadata_columns": "metadataColumns",
          "promotion": "promotions[0]", "input_list": "inputList", "percent": "percentPromotedItems",
          "name": "name"}
"""``/v1``'s field names → Personalize's, for the messages of :func:`validated`."""


def _filter(body: dict[str, Any], where: str = "") -> dict[str, Any]:
    arn = field(body, "filterArn", str, where=where)
    return {"filter": None if arn is None else resolve.filter_name(arn, f"{where}filterArn"),
            "filter_values": field(body, "filterValues", dict, default={}, where=where)}


def _metadata(value: Any) -> str:
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    return "" if value is None else str(value)


def _items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        entry: dict[str, Any] = {"itemId": item["item_id"]}
        if item.get("score") is not None:
            entry["score"] = float(item["score"])
        if item.get("metadata"):
            entry["metadata"] = {k: _metadata(v) for k, v in item["metadata"].items()}
        reason = item.get("reason")
        if reason:
            entry["reason"] = [reason]
            if reason.startswith("promotion: "):
                entry["promotionName"] = reason.removeprefix("promotion: ")
        out.append(entry)
    return out


def _campaign(call: Call) -> tuple[str, str]:
    if call.body.get("recommenderArn") is not None and call.body.get("campaignArn") is None:
        raise invalid_input("recommenderArn: recommenders (domain dataset groups) are not supported by recsmith: "
                            "send the campaignArn of a campaign")
    group, name = resolve.campaign(call.state, field(call.body, "campaignArn", str, required=True))
    call.authorize("read", group)
    return group, name


def _recommend(call: Call) -> dict[str, Any]:
    body = call.body
    group, name = _campaign(call)
    request: dict[str, Any] = {
        "user_id": field(body, "userId", str), "item_id": field(body, "itemId", str),
        "num_results": field(body, "numResults", int, default=0) or 25,
        "context": field(body, "context", dict, default={}),
        "metadata_columns": field(body, "metadataColumns", dict, default={}),
        **_filter(body),
    }
    promotions = field(body, "promotions", list, default=[])
    if len(promotions) > 1:
        raise invalid_input("promotions: at most 1 promotion")
    if promotions:
        promotion = field({"p": promotions[0]}, "p", dict, where="promotions[0]")
        found = _filter(promotion, "promotions[0].")
        request["promotion"] = {
            "name": field(promotion, "name", str, required=True, where="promotions[0]."),
            "percent": field(promotion, "percentPromotedItems", int, default=10, where="promotions[0]."),
            "filter": found["filter"], "filter_values": found["filter_values"],
        }
    result = recommendation_answer(call.state.runtime, group, name,
                                   validated(RecommendationRequest, request, _NAMES))
    call.state.metrics.items_served.labels(group, name).inc(len(result["items"]))
    return {"itemList": _items(result["items"]), "recommendationId": result["recommendation_id"]}


def _rank(call: Call) -> dict[str, Any]:
    body = call.body
    group, name = _campaign(call)
    request = {"user_id": field(body, "userId", str, required=True),
               "input_list": field(body, "inputList", list, required=True),
               "context": field(body, "context", dict, default={}),
               "metadata_columns": field(body, "metadataColumns", dict, default={}),
               **_filter(body)}
    result = ranking_answer(call.state.runtime, group, name, validated(RankingRequest, request, _NAMES))
    call.state.metrics.items_served.labels(group, name).inc(len(result["items"]))
    return {"personalizedRanking": _items(result["items"]), "recommendationId": result["recommendation_id"]}


async def _serve(call: Call, answer_of: Any) -> Any:
    return await off_the_loop_if_reading(answer_of, call)


@router.post("/recommendations")
async def get_recommendations(request: Request) -> Response:
    """Personalize's ``GetRecommendations``."""
    return await answer(request, lambda call: _serve(call, _recommend))


@router.post("/personalize-ranking")
async def get_personalized_ranking(request: Request) -> Response:
    """Personalize's ``GetPersonalizedRanking``."""
    return await answer(request, lambda call: _serve(call, _rank))
