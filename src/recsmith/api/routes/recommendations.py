"""Recommendations and personalized ranking from a campaign."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, TypeVar

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
from recsmith.data.filters import Filter
from recsmith.errors import ConfigError
from recsmith.serving import MAX_RESULTS
from recsmith.serving.campaign import CampaignRuntime, Promotion
from recsmith.store.store import BlockingReadError, no_blocking_reads

RequestModel = TypeVar("RequestModel", RecommendationRequest, RankingRequest)

router = APIRouter(prefix="/v1/dataset-groups/{group}/campaigns/{campaign}", tags=["recommendations"])


Answer = TypeVar("Answer")


async def off_the_loop_if_reading(answer: Callable[..., Answer], *args: Any) -> Answer:
    """``answer(*args)`` on the event loop when memory suffices (a known user, no new events, cached filters and
    live state), else in a worker thread: a database read never stalls the loop (the first attempt stops at
    the read, before anything is recorded)."""
    try:
        with no_blocking_reads():
            return answer(*args)
    except BlockingReadError:
        return await run_in_threadpool(answer, *args)


def recommendation_answer(runtime: CampaignRuntime, group: str, campaign: str, body: RecommendationRequest, *,
                          expression: Filter | None = None, log: bool = True) -> dict[str, Any]:
    """A campaign's answer to a recommendations request, as every ``/recommendations`` route asks the runtime for
    it (the console's Try it page asks the same way).

    Parameters
    ----------
    runtime : CampaignRuntime
        The app's campaign runtime.
    group, campaign : str
        Where to ask.
    body : RecommendationRequest
        The request, validated.
    expression : Filter, optional
        A parsed filter expression to apply instead of ``body.filter`` (a stored filter's name), without storing
        it: what ``recsmith recommend --filter-expression`` does, and the console's test of an unsaved filter.
    log : bool
        Write the answer to the served-items ledger (False for a test that serves nobody).

    Returns
    -------
    dict
        The runtime's answer (:meth:`~recsmith.serving.campaign.CampaignRuntime.answer`).
    """
    promotion = None
    if body.promotion is not None:
        p = body.promotion
        promotion = Promotion(p.name, p.filter, p.filter_values, p.percent)
    return runtime.recommend(
        group, campaign, user_id=body.user_id, item_id=body.item_id, session_id=body.session_id,
        num_results=body.num_results, filter=body.filter if expression is None else expression,
        filter_values=body.filter_values, exclude=body.exclude, exclude_seen=body.exclude_seen,
        metadata_columns=body.metadata_columns, promotion=promotion,
        suppress_served_minutes=body.suppress_served_minutes, log=log,
    )


def ranking_answer(runtime: CampaignRuntime, group: str, campaign: str, body: RankingRequest, *,
                   log: bool = True) -> dict[str, Any]:
    """A campaign's personalized ranking of ``body.input_list``, as the ``/personalized-ranking`` route asks the
    runtime for it (the console's Try it page asks the same way); ``log``: write it to the served-items ledger."""
    return runtime.rank(group, campaign, user_id=body.user_id, input_list=body.input_list, filter=body.filter,
                        filter_values=body.filter_values, metadata_columns=body.metadata_columns, log=log)


def filter_values_from_pairs(pairs: Iterable[str]) -> dict[str, str | list[str]]:
    """``NAME=VALUE`` texts as a request's ``filter_values``: a name given once is one value, a name repeated is
    a list, a leading ``$`` is dropped (the GET route's ``filter_value`` query parameters, the CLI's
    ``--filter-value``, the console's forms).

    Raises
    ------
    ConfigError
        For a text not written ``NAME=VALUE``, naming it.
    """
    values: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().lstrip("$")
        if not sep or not name:
            raise ConfigError(f"filter value {pair!r}: write NAME=VALUE, e.g. GENRE=Comedy")
        values.setdefault(name, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in values.items()}


def validated_request(model: type[RequestModel], data: Mapping[str, Any], where: str = "query") -> RequestModel:
    """``data`` (a request put together from query parameters or form fields) validated by its schema; the checks
    that span fields too, their problems a 422 like FastAPI's own, each naming its field under ``where``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": (where, *e["loc"])} for e in exc.errors(include_url=False)]) \
            from None


def _answer(runtime: RuntimeDep, metrics: MetricsDep, group: str, campaign: str,
            body: RecommendationRequest) -> JSON:
    answer = recommendation_answer(runtime, group, campaign, body)
    metrics.items_served.labels(group, campaign).inc(len(answer["items"]))
    return JSON(answer)


@router.post("/recommendations", response_model=RecommendationResponse)
async def recommend(group: GroupPath, campaign: CampaignPath, body: RecommendationRequest, runtime: RuntimeDep,
                    metrics: MetricsDep, _: Reader) -> JSON:
    """Top items for ``user_id``, or items related to ``item_id``; unknown users get popular items
    (``reason: popular``); a filter that leaves too few is padded with popular items that pass it."""
    return await off_the_loop_if_reading(_answer, runtime, metrics, group, campaign, body)


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
    try:
        values = filter_values_from_pairs(filter_value or [])
    except ConfigError as exc:
        raise RequestValidationError([{"type": "filter_value", "loc": ("query", "filter_value"),
                                       "msg": str(exc)}]) from None
    body = validated_request(RecommendationRequest, {
        "user_id": user_id, "session_id": session_id, "item_id": item_id, "num_results": num_results,
        "filter": filter, "suppress_served_minutes": suppress_served_minutes, "filter_values": values,
        "exclude": exclude or [], "exclude_seen": exclude_seen, "metadata_columns": metadata_column or [],
    })
    return await off_the_loop_if_reading(_answer, runtime, metrics, group, campaign, body)


@router.post("/personalized-ranking", response_model=RecommendationResponse)
async def personalized_ranking(group: GroupPath, campaign: CampaignPath, body: RankingRequest,
                               runtime: RuntimeDep, metrics: MetricsDep, _: Reader) -> JSON:
    """``input_list`` ordered for the user, best first; items the model does not know go last."""
    return await off_the_loop_if_reading(_rank, runtime, metrics, group, campaign, body)


def _rank(runtime: RuntimeDep, metrics: MetricsDep, group: str, campaign: str, body: RankingRequest) -> JSON:
    answer = ranking_answer(runtime, group, campaign, body)
    metrics.items_served.labels(group, campaign).inc(len(answer["items"]))
    return JSON(answer)
