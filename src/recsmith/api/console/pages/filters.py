"""Filters: the group's filters with their parameters; for admins, create one (its expression checked as it is typed,
a parse error shown where the parser names it), test it on a user before saving, and delete one.

The check is the store's own (:meth:`recsmith.store.store.Store.check_filter`, the one ``create_filter`` makes), and
the test asks the campaign runtime as the API's ``/recommendations`` route does, with the unsaved expression applied
in place of a stored filter (as ``recsmith recommend --filter-expression`` does).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from recsmith.api.console.audit import audit_action
from recsmith.api.console.render import is_htmx, page
from recsmith.api.console.session import ConsoleUser, User
from recsmith.api.routes.filters import filter_view
from recsmith.api.routes.recommendations import filter_values_from_pairs, recommendation_answer, validated_request
from recsmith.api.schemas import RecommendationRequest
from recsmith.data.filters import FILTER_MAX_EXPRESSION_LENGTH, Filter, FilterFieldError, FilterSyntaxError, error_span
from recsmith.errors import Advice, ConfigError, FilterError, reworded
from recsmith.serving import MAX_RESULTS
from recsmith.store.store import Store

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)

TEST_RESULTS = 10
"""How many items a test of an unsaved filter shows by default."""
TEST_COLUMNS = 3
"""How many of the items schema's fields a test shows (the first ones: TITLE and GENRES for MovieLens)."""

Expression = Annotated[str, Form(max_length=FILTER_MAX_EXPRESSION_LENGTH)]


def problem_view(exc: FilterError) -> dict[str, Any]:
    """A filter error as the form shows it: the problem, the fix, and where the parser points.

    For a :class:`FilterSyntaxError` (a :class:`FilterFieldError` too) the expression is cut in three around the
    token at the error's ``position`` (``before``, ``marked``, ``after``; ``marked`` is empty at the end of the
    expression), with the position's line and column (1-based) and offset (0-based, the parser's).
    """
    if not isinstance(exc, FilterSyntaxError):
        return {"message": str(exc), "hint": None, "position": None}
    text, position = exc.expression, exc.position
    start, end = error_span(text, position)
    line_start = text.rfind("\n", 0, start) + 1
    return {"message": exc.problem, "hint": exc.hint if isinstance(exc, FilterFieldError) else None,
            "position": start, "line": text.count("\n", 0, start) + 1, "column": start - line_start + 1,
            "before": text[:start], "marked": text[start:end], "after": text[end:]}


def check_view(store: Store, group: str, expression: str) -> dict[str, Any]:
    """The store's check of ``expression`` (the one ``create_filter`` makes), for ``filters/_check.html``:
    ``problem`` (see :func:`problem_view`), or the parsed filter's canonical text and parameters."""
    if not expression.strip():
        return {}
    try:
        parsed = store.check_filter(group, expression)
    except FilterError as exc:
        return {"problem": problem_view(exc)}
    return {"canonical": str(parsed), "parameters": list(parsed.parameters)}


def _path(group: str) -> str:
    return f"/console/g/{quote(group, safe='')}/filters"


def _admin(user: ConsoleUser, group: str) -> None:
    user.require("admin", group)


def _filters_page(request: Request, user: ConsoleUser, group: str, *, status: int = 200,
                  form: dict[str, str] | None = None, check: dict[str, Any] | None = None,
                  error: str | None = None) -> Response:
    store: Store = request.app.state.store
    filters = [filter_view(record) for record in store.list_filters(group)]
    names = {f["name"] for f in filters}
    notice = None
    if request.query_params.get("created") in names:
        notice = f"Filter {request.query_params['created']} created."
    elif (deleted := request.query_params.get("deleted")) and deleted not in names:
        notice = f"Filter {deleted} deleted."
    admin = user.may("admin", group)
    return page(request, "filters/index.html", status=status, title="Filters", group=group, active="filters",
                filters=filters, admin=admin, notice=notice, error=error, form=form or {}, check=check or {},
                campaigns=[c["name"] for c in store.list_campaigns(group)] if admin else [],
                item_fields=store.item_fields(group), max_results=MAX_RESULTS, test_results=TEST_RESULTS)


@router.get("/filters")
def list_filters(request: Request, user: User, group: str) -> Response:
    """The group's filters (expression, parameters); for admins, the create form."""
    user.require("read", group)
    return _filters_page(request, user, group)


@router.post("/filters/check")
def check_expression(request: Request, user: User, group: str, expression: Expression = "") -> Response:
    """The create form's check as the expression is typed: its problem, shown at the position the parser names
    (``role=alert``), or that it is valid and the parameters it takes. Always 200: the check itself worked."""
    _admin(user, group)
    return page(request, "filters/_check.html", **check_view(request.app.state.store, group, expression))


@router.post("/filters")
def create_filter(request: Request, user: User, group: str, name: Annotated[str, Form(max_length=128)] = "",
                  expression: Expression = "") -> Response:
    """Store a filter (the store checks it); a problem shows the form again with it (400)."""
    _admin(user, group)
    store: Store = request.app.state.store
    form = {"name": name, "expression": expression}
    try:
        store.create_filter(group, name.strip(), expression)
    except FilterError as exc:
        return _filters_page(request, user, group, status=400, form=form, check={"problem": problem_view(exc)})
    except ConfigError as exc:  # a bad or taken name
        return _filters_page(request, user, group, status=400, form=form, error=f"name: {exc}")
    audit_action(request, user.principal.key_id, "filter.create", f"dataset-groups/{group}/filters/{name.strip()}",
                 status=201, detail={"expression": expression})
    return RedirectResponse(f"{_path(group)}?created={quote(name.strip())}", status_code=303)


def _tested(request: Request, group: str, campaign: str, body: RecommendationRequest, parsed: Filter) -> dict[str, Any]:
    """The campaign's answer with the unsaved filter applied (as the API's route asks for it), not logged as
    served; a parameter left without a value is named in the form's terms."""
    try:
        return recommendation_answer(request.app.state.runtime, group, campaign, body, expression=parsed, log=False)
    except FilterError as exc:
        advice = getattr(exc, "advice", None)
        if isinstance(advice, Advice) and advice.kind == "filter_value":
            raise HTTPException(400, reworded(exc, lambda a: f"add the line {a.name}=VALUE to the parameter "
                                                             "values")) from None
        raise


@router.post("/filters/test")
def test_expression(request: Request, user: User, group: str, expression: Expression = "",
                    campaign: Annotated[str, Form(max_length=128)] = "",
                    user_id: Annotated[str, Form(max_length=256)] = "",
                    values: Annotated[str, Form(max_length=200_000)] = "",
                    num_results: Annotated[int, Form(ge=1, le=MAX_RESULTS)] = TEST_RESULTS) -> Response:
    """A campaign's recommendations for ``user_id`` with the unsaved expression applied (its ``$PARAM`` values as
    NAME=VALUE lines), through the one serving pipeline; a problem with the expression is shown as the check shows
    it (400)."""
    _admin(user, group)
    store: Store = request.app.state.store
    try:
        parsed: Filter = store.check_filter(group, expression)
    except FilterError as exc:
        return page(request, "filters/_check.html", status=400, problem=problem_view(exc))
    bound = filter_values_from_pairs(line.strip() for line in values.splitlines() if line.strip())
    columns = store.item_fields(group)[:TEST_COLUMNS]
    body = validated_request(RecommendationRequest, {"user_id": user_id.strip(), "num_results": num_results,
                                                     "filter_values": bound, "metadata_columns": columns}, "body")
    answer = _tested(request, group, campaign, body, parsed)
    bindings = "; ".join(f"{k}={v if isinstance(v, str) else ', '.join(v)}" for k, v in bound.items())
    summary = f"Campaign {campaign}: user {body.user_id}, unsaved expression" + (f" ({bindings})" if bindings else "")
    return page(request, "try/_results.html", answer=answer, columns=columns, summary=summary)


@router.post("/filters/{name}/delete")
def delete_filter(request: Request, user: User, group: str, name: str) -> Response:
    """Delete a filter (requests naming it then fail with 404); for htmx, the row says so in its place."""
    _admin(user, group)
    request.app.state.store.delete_filter(group, name)
    audit_action(request, user.principal.key_id, "filter.delete", f"dataset-groups/{group}/filters/{name}",
                 status=204)
    if is_htmx(request):
        return page(request, "filters/_deleted.html", name=name)
    return RedirectResponse(f"{_path(group)}?deleted={quote(name)}", status_code=303)
