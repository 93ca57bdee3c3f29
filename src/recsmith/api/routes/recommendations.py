"""Recommendations and personalized ranking from a campaign."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from recsmith.api.auth import Reader
from recsmith.api.responses import JSON
from recsmith.api.routes.deps import MetricsDep, RuntimeDep
from recsmith.api.schemas import (
    FILTER_MAX_PARAMETERS,
    FILTER_MAX_VALUES,
    CampaignPath,
    GroupPath,
    Number,
    RankingRequest,
    RecommendationRequest,
    RecommendationResponse,
    Text,
)
from recsmith.serving import MAX_RESULTS
from recsmith.serving.campaign import Promotion
from recsmith.store.store import BlockingReadError, no_blocking_reads

router = APIRouter(prefix="/v1/dataset-groups/{group}/campaigns/{campaign}", tags=["recommendations"])


async def _off_the_loop_if_reading(answer: Callable[..., JSON], *args: Any) -> JSON:
    """``answer(*args)`` on the event loop when memory suffices (a known user, no new events, cached filters and
    live state), else in a worker thread: a database read never stalls the loop (the first attempt stops at
    the read, before anything is recorded)."""
    try:
        with no_blocking_reads():
            return answer(*args)
    except BlockingReadError:
        return await run_in_threadpool(answer, *args)


def _answer(runtime: RuntimeDep, metrics: MetricsDep, group: str, campaign: str,
            body: RecommendationRequest) -> JSON:
    promotion = None
    if body.promotion is not None:
        p = body.promotion
        promotion = Promotion(p.name, p.filter, p.filter_values, p.percent)
    answer = runtime.recommend(
        group, campaign, user_id=body.user_id, item_id=body.item_id, session_id=body.session_id,
        num_results=body.num_results, filter=body.filter, filter_values=body.filter_values, exclude=body.exclude,
        exclude_seen=body.exclude_seen, metadata_columns=body.metadata_columns, promotion=promotion,
        suppress_served_minutes=body.suppress_served_minutes,
    )
    metrics.items_served.labels(group, campaign).inc(len(answer["items"]))
    return JSON(answer)


@router.post("/recommendations", response_model=RecommendationResponse)
async def recommend(group: GroupPath, campaign: CampaignPath, body: RecommendationRequest, runtime: RuntimeDep,
                    metrics: MetricsDep, _: Reader) -> JSON:
    """Top items for ``user_id``, or items related to ``item_id``; unknown users get popular items
    (``reason: popular``); a filter that leaves too few is padded with popular items that pass it."""
    return await _off_the_loop_if_reading(_answer, runtime, metrics, group, campaign, body)


@router.get("/recommendations", response_model=RecommendationResponse)
async def recommend_get(
    group: GroupPath, campaign: CampaignPath, runtime: RuntimeDep, metrics: MetricsDep, _: Reader,
    user_id: Annotated[Text | None, Query(min_length=1, max_length=256)] = None,
    session_id: Annotated[Text | None, Query(min_length=1, max_length=256)] = None,
    item_id: Annotated[Text | None, Query(min_length=1, max_length=256)] = None,
    num_results: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 25,
    filter: Annotated[Text | None, Query(min_length=1, max_length=128)] = None,
    filter_value: Annotated[list[Text] | None, Query(
        max_length=FILTER_MAX_PARAMETERS * FILTER_MAX_VALUES,
        description="NAME=VALUE; repeat for several values.")] = None,
    exclude: Annotated[list[Text] | None, Query(max_length=1000,
                                                description="An item id never to return; repeatable.")] = None,
    exclude_seen: bool | None = None,
    metadata_column: Annotated[list[Text] | None, Query(max_length=50,
                                                        description="An item field to return; repeatable.")] = None,
    suppress_served_minutes: Annotated[Number | None, Query(gt=0, le=1440)] = None,
) -> JSON:
    """The same as the POST form, with query parameters (for quick use from a browser or curl)."""
    values: dict[str, list[str]] = {}
    for pair in filter_value or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise RequestValidationError([{"type": "filter_value", "loc": ("query", "filter_value"),
                                           "msg": f"{pair!r}: write NAME=VALUE, e.g. filter_value=GENRE=Comedy"}])
        values.setdefault(name.lstrip("$"), []).append(value)
    try:
        body = RecommendationRequest.model_validate({
            "user_id": user_id, "session_id": session_id, "item_id": item_id, "num_results": num_results,
            "filter": filter, "suppress_served_minutes": suppress_served_minutes,
            "filter_values": {k: v[0] if len(v) == 1 else v for k, v in values.items()}, "exclude": exclude or [],
            "exclude_seen": exclude_seen, "metadata_columns": metadata_column or [],
        })
    except ValidationError as exc:  # the query's checks that span parameters: a 422 like the others
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]) \
            from None
    return await _off_the_loop_if_reading(_answer, runtime, metrics, group, campaign, body)


@router.post("/personalized-ranking", response_model=RecommendationResponse)
async def personalized_ranking(group: GroupPath, campaign: CampaignPath, body: RankingRequest,
                               runtime: RuntimeDep, metrics: MetricsDep, _: Reader) -> JSON:
    """``input_list`` ordered for the user, best first; items the model does not know go last."""
    return await _off_the_loop_if_reading(_rank, runtime, metrics, group, campaign, body)


def _rank(runtime: RuntimeDep, metrics: MetricsDep, group: str, campaign: str, body: RankingRequest) -> JSON:
    answer = runtime.rank(group, campaign, user_id=body.user_id, input_list=body.input_list, filter=body.filter,
                          filter_values=body.filter_values, metadata_columns=body.metadata_columns)
    metrics.items_served.labels(group, campaign).inc(len(answer["items"]))
    return JSON(answer)
