"""Users and items: search by id, a user's history and what each campaign recommends them now,
an item's metadata and similar items.

Everything here reads: a read key sees all of it. The store's reads are :class:`recsmith.store.people_records.
PeopleRecords` and the store's own (``present_users``, ``read_items``, ``read_users``, ``schema_fields``); the
recommendations come from the one serving pipeline, ``runtime.recommend`` (as ``/v1/.../recommendations``
calls it), with ``log=False``: what the console shows is not served traffic, so it stays out of the ledger (and
out of the items-served metric, which the API route counts). Each campaign's answer is a fragment loaded by
htmx, so one slow campaign does not hold the page.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from recsmith.api.console.render import is_htmx, page
from recsmith.api.console.session import ConsoleUser, User
from recsmith.api.schemas import EntityPath, GroupPath, Text
from recsmith.errors import NotFoundError
from recsmith.store.store import Store

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/console/g/{group}", include_in_schema=False)

ACTIVE = "users"
"""This area's key in the group navigation."""
HISTORY_PAGE = 50
"""Interactions per page of a user's history."""
NUM_RESULTS = 10
"""Recommendations and related items shown per campaign."""
SEARCH_LIMIT = 20
"""Ids a search lists."""
MAX_HISTORY_PAGES = 100_000
TITLE_FIELDS = ("TITLE", "NAME", "ITEM_NAME", "PRODUCT_NAME")
"""Item fields that name an item, in the order looked for."""
CATEGORY_FIELDS = ("GENRES", "GENRE", "CATEGORIES", "CATEGORY", "CATEGORY_L1", "TAGS", "BRAND")
"""Item fields shown beside its name, in the order looked for."""
ITEM_REASON = re.compile(r"^(because you interacted with|similar to) (.+)$", re.DOTALL)
"""The pipeline's reasons that name an item (:meth:`recsmith.serving.campaign.CampaignRuntime._explain`,
``_related``): the console links that item by its title."""

IdQuery = Annotated[Text | None, Query(max_length=256)]
IdParam = Annotated[Text, Query(min_length=1, max_length=256)]
CampaignParam = Annotated[Text, Query(min_length=1, max_length=128)]


def display_fields(fields: Iterable[str]) -> list[str]:
    """The item fields a list of items shows: a name (``TITLE``...) and a category (``GENRES``...), else the
    first two fields there are.

    Parameters
    ----------
    fields : iterable of str
        The item fields available (the schema's, or those a loaded catalogue has), ``ITEM_ID`` ignored.

    Returns
    -------
    list of str
        At most two field names.
    """
    available = [f for f in fields if f != "ITEM_ID"]
    chosen = [next((f for f in names if f in available), None) for names in (TITLE_FIELDS, CATEGORY_FIELDS)]
    picked = [f for f in chosen if f is not None]
    return picked or available[:2]


def _title_field(fields: Sequence[str]) -> str | None:
    return next((f for f in TITLE_FIELDS if f in fields), None)


def _group_id(request: Request, user: ConsoleUser, group: str) -> int:
    """The group's id, once the key may read it (403 otherwise; 404 for a group that does not exist)."""
    user.require("read", group)
    store: Store = request.app.state.store
    return store.get_dataset_group(group).id


def _item_fields(store: Store, group_id: int) -> list[str]:
    return [f for f in store.schema_fields(group_id)["items"] or [] if f != "ITEM_ID"]


def _campaigns(store: Store, group: str) -> list[dict[str, Any]]:
    return [{"name": c["name"], "recipe": c["recipe"], "solution_version_id": c["solution_version_id"]}
            for c in store.list_campaigns(group)]


# ------------------------------------------------------------------------------------------- search
def _search(store: Store, group_id: int, kind: str, prefix: str) -> dict[str, Any]:
    """The search results of one kind (``users`` or ``items``) for the template ``people/results.html``."""
    finder = store.search_users if kind == "users" else store.search_items
    matches = finder(group_id, prefix, SEARCH_LIMIT) if prefix else []
    titles: dict[str, Any] = {}
    if kind == "items" and matches:
        field = _title_field(_item_fields(store, group_id))
        if field is not None:
            records = store.read_items(group_id, [m.id for m in matches])
            titles = {item: record.get(field) for item, record in records.items()}
    return {"kind": kind, "prefix": prefix, "matches": matches, "titles": titles,
            "exact": any(m.id == prefix for m in matches), "capped": len(matches) >= SEARCH_LIMIT}


@router.get("/users")
def search(request: Request, user: User, group: GroupPath, user_id: IdQuery = None,
           item_id: IdQuery = None) -> Response:
    """Find users and items by id: the page (with results for what was submitted, or straight to the page of an
    id that exists), or for htmx as you type the results of the field typed in."""
    group_id = _group_id(request, user, group)
    store: Store = request.app.state.store
    user_id, item_id = (user_id or "").strip(), (item_id or "").strip()
    if is_htmx(request):
        kind = "items" if request.headers.get("hx-trigger-name") == "item_id" or (item_id and not user_id) \
            else "users"
        return page(request, "people/results.html", group=group,
                    r=_search(store, group_id, kind, item_id if kind == "items" else user_id))
    results = [_search(store, group_id, kind, prefix) for kind, prefix in (("users", user_id), ("items", item_id))
               if prefix]
    if len(results) == 1 and results[0]["exact"]:
        found = results[0]
        return RedirectResponse(_path(group, found["kind"], found["prefix"]), status_code=303)
    return page(request, "people/search.html", title="Users & items", group=group, active=ACTIVE,
                user_id=user_id, item_id=item_id, results={r["kind"]: r for r in results}, limit=SEARCH_LIMIT)


def _path(group: str, kind: str, entity_id: str) -> str:
    return f"/console/g/{quote(group, safe='')}/{kind}/{quote(entity_id, safe='/')}"


# --------------------------------------------------------------------------------------------- a user
@router.get("/users/{user_id:path}")
def user_page(request: Request, user: User, group: GroupPath, user_id: EntityPath,
              page_number: Annotated[int, Query(alias="page", ge=1, le=MAX_HISTORY_PAGES)] = 1) -> Response:
    """A user: their record, what each campaign recommends them now (htmx fragments), and their history, newest
    first, 50 a page. A user the group never saw still has a page: no history, and the campaigns' answer for a
    new user (popular items)."""
    group_id = _group_id(request, user, group)
    store: Store = request.app.state.store
    total = store.count_user_interactions(group_id, user_id)
    record = store.read_users(group_id, [user_id]).get(user_id)
    pages = max(1, math.ceil(total / HISTORY_PAGE))
    events = store.user_interactions(group_id, user_id, offset=(page_number - 1) * HISTORY_PAGE,
                                     limit=HISTORY_PAGE) if total else []
    fields = display_fields(_item_fields(store, group_id))
    items = store.read_items(group_id, sorted({e["item_id"] for e in events})) if events and fields else {}
    return page(request, "people/user.html", title=f"User {user_id}", group=group, active=ACTIVE,
                user_id=user_id, record=record, users_fields=store.schema_fields(group_id)["users"],
                total=total, events=events, items=items, fields=fields, page_number=page_number, pages=pages,
                page_size=HISTORY_PAGE, campaigns=_campaigns(store, group), known=bool(total or record is not None),
                num_results=NUM_RESULTS)


# --------------------------------------------------------------------------------------------- an item
@router.get("/items/{item_id:path}")
def item_page(request: Request, user: User, group: GroupPath, item_id: EntityPath) -> Response:
    """An item: all its fields, its number of interactions, and the items each campaign relates to it (htmx
    fragments). An item the group has neither a record nor interactions of is a 404."""
    group_id = _group_id(request, user, group)
    store: Store = request.app.state.store
    record = store.read_items(group_id, [item_id]).get(item_id)
    count = store.count_item_interactions(group_id, item_id)
    if record is None and not count:
        raise NotFoundError(f"dataset group {group!r} has no item {item_id!r}: no item record and no "
                            "interactions with it (ids are case-sensitive; search for it on the Users & items page)")
    fields = _item_fields(store, group_id)
    title_field = _title_field(fields)
    title = (record or {}).get(title_field) if title_field else None
    return page(request, "people/item.html", title=str(title or f"Item {item_id}"), group=group, active=ACTIVE,
                item_id=item_id, item_title=title, record=record, fields=fields, count=count,
                campaigns=_campaigns(store, group), num_results=NUM_RESULTS)


# ------------------------------------------------------------------------------------ campaign answers
def _answer(request: Request, group: str, group_id: int, campaign: str, **target: str) -> dict[str, Any]:
    """A campaign's top items for ``user_id=`` or related to ``item_id=`` (the serving pipeline, not logged as
    served), with item metadata and the items their reasons name, for ``people/answer.html``."""
    runtime = request.app.state.runtime
    store: Store = request.app.state.store
    try:
        loaded = runtime.get(group, campaign)
    except NotFoundError as exc:  # still loading, failed to load, or deleted meanwhile: the slot says so
        return {"campaign": campaign, "unavailable": str(exc)}
    columns = display_fields(loaded.catalog.fields)
    answer = runtime.recommend(group, campaign, num_results=NUM_RESULTS, metadata_columns=columns, log=False,
                               **target)
    named = {}
    for row in answer["items"]:
        match = ITEM_REASON.match(row.get("reason") or "")
        if match:
            named[row["item_id"]] = (match.group(1), match.group(2))
    title_field = _title_field(columns)
    reason_titles: Mapping[str, Any] = {}
    if named and title_field:
        records = store.read_items(group_id, sorted({item for _, item in named.values()}))
        reason_titles = {item: record.get(title_field) for item, record in records.items()}
    return {"campaign": campaign, "recipe": loaded.recipe, "version_id": loaded.version_id, "columns": columns,
            "title_field": title_field, "answer": answer, "named": named, "reason_titles": reason_titles,
            "similar_items": bool(loaded.model.recipe.tags.similar_items), "unavailable": None}


@router.get("/people/recommendations")
def user_recommendations(request: Request, user: User, group: GroupPath, campaign: CampaignParam,
                         user_id: IdParam) -> Response:
    """What ``campaign`` recommends ``user_id`` now (a fragment of the user's page)."""
    group_id = _group_id(request, user, group)
    return page(request, "people/answer.html", group=group, mode="user", target=user_id,
                **_answer(request, group, group_id, campaign, user_id=user_id))


@router.get("/people/related")
def related_items(request: Request, user: User, group: GroupPath, campaign: CampaignParam,
                  item_id: IdParam) -> Response:
    """The items ``campaign`` relates to ``item_id`` (a fragment of the item's page)."""
    group_id = _group_id(request, user, group)
    return page(request, "people/answer.html", group=group, mode="item", target=item_id,
                **_answer(request, group, group_id, campaign, item_id=item_id))
