"""The event tracker's users and items: batch upserts with schema validation, and deletions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from recsmith.api.auth import Writer
from recsmith.api.responses import JSON
from recsmith.api.routes.deps import RuntimeDep, StoreDep
from recsmith.api.schemas import DeletedOut, EntityPath, GroupPath, ItemsIn, PutOut, UsersIn
from recsmith.jobs.importing import put_records

router = APIRouter(prefix="/v1/dataset-groups/{group}", tags=["users and items"])


def _put(store: StoreDep, runtime: RuntimeDep, group: str, kind: str, entities: list[Any]) -> JSON:
    key = "USER_ID" if kind == "users" else "ITEM_ID"
    records = [{key: entity.model_dump()[key.lower()], **entity.properties} for entity in entities]
    return JSON({"stored": put_catalog(store, runtime, group, kind, records)})


def put_catalog(store: StoreDep, runtime: RuntimeDep, group: str, kind: str, records: list[dict[str, Any]]) -> int:
    """Validate and upsert user or item records (``{"USER_ID" or "ITEM_ID": id, FIELD: value}``), then reload the
    catalogue (here at once, elsewhere soon): what ``PUT .../users|items`` and Personalize's ``PutUsers`` and
    ``PutItems`` do. The number stored."""
    group_id = store.get_dataset_group(group).id
    stored = put_records(store, group_id, kind, records, source=kind)
    runtime.catalog_changed(group, group_id)
    return stored


@router.put("/users", response_model=PutOut)
def put_users(group: GroupPath, body: UsersIn, store: StoreDep, runtime: RuntimeDep, _: Writer) -> JSON:
    """Create or replace up to 100 users, checked against the group's users schema (a field it lacks, or a value
    that does not fit, is a 400 naming the record and field; nothing is stored then)."""
    return _put(store, runtime, group, "users", body.users)


@router.put("/items", response_model=PutOut)
def put_items(group: GroupPath, body: ItemsIn, store: StoreDep, runtime: RuntimeDep, _: Writer) -> JSON:
    """Create or replace up to 100 items, checked against the group's items schema. New items are recommendable
    at once through filters and when the model's items run out (``reason: new item``), and by the models after
    the next training. A campaign whose recipe scores new items from their features (``tags.cold_start_items``:
    feature-popularity, two-tower, fm with item features) ranks them at once among the model's own items."""
    return _put(store, runtime, group, "items", body.items)


@router.delete("/users/{user_id}", response_model=DeletedOut)
def delete_user(group: GroupPath, user_id: EntityPath, store: StoreDep, runtime: RuntimeDep, _: Writer) -> JSON:
    """Erase a user: their interactions, the anonymous events of the sessions linked to them, their metadata,
    their served-items ledger entries and their live state (Redis too); the tombstone left keeps only a keyed hash
    of the id. Campaigns answer them as a user they never saw from now on, and the next training does not see
    them; models trained before keep their row until `recsmith users delete --purge-models` rewrites them."""
    removed = runtime.delete_user(group, store.get_dataset_group(group).id, user_id)
    return JSON({"deleted": user_id, **removed})


@router.delete("/items/{item_id}", response_model=DeletedOut)
def delete_item(group: GroupPath, item_id: EntityPath, store: StoreDep, runtime: RuntimeDep, _: Writer) -> JSON:
    """Stop recommending an item at once (its metadata is deleted; training leaves it out until it is put
    again)."""
    group_id = store.get_dataset_group(group).id
    removed = store.delete_item(group_id, item_id)
    runtime.catalog_changed(group, group_id)
    return JSON({"deleted": item_id, **removed})
