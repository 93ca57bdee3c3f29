"""The campaign runtime: deployed solution versions kept loaded and answering requests in raw ids.

A :class:`CampaignRuntime` mirrors the store's ``campaigns`` table. :meth:`CampaignRuntime.sync` loads every
campaign's artifact (memory-mapped, so worker processes serving the same artifact share its pages) together
with the group's item metadata, and swaps a fully loaded, warmed-up :class:`LoadedCampaign` in with one
assignment; a request takes the campaign once at its start, so it is answered wholly by the old version or
wholly by the new one, never a mix, and never fails because of a swap. ``start`` runs ``sync`` on a timer in
a background thread, which is how an update made by another process (the CLI, another worker) reaches this
one.

Request pipeline (:meth:`CampaignRuntime.recommend`): history lookup → candidates and scores (the recipe) →
filter, exclusions and promotion (item masks) → top-k, padded with popular items that pass the filter →
reasons ("because you interacted with <item>" where the recipe can tell).

Cold-start items: a campaign whose recipe has ``tags.cold_start_items`` keeps the items put after training (the
model's vocabulary lacks them) as a :class:`~recsmith.data.training.FeatureTable`, rebuilt with the catalogue
whenever items are put; each request scores those that pass its filter and exclusions with
``recipe.score_new_items`` and merges them into the top-k by score (``reason: "new item"``). Other recipes do
no such work.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from recsmith.data.filters import FILTER_CACHE_BYTES, Filter, FilterCache, ItemCatalog, parse_filter
from recsmith.data.training import FeatureTable
from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import Advice, ConfigError, DataError, NotFoundError, advise
from recsmith.recipes.bundle import TrainedModel, remove_artifact
from recsmith.serving import MAX_RESULTS
from recsmith.serving.ledger import DatabaseLedger, Ledger
from recsmith.serving.live import DatabaseLive, RedisLive
from recsmith.serving.recommender import (
    EMPTY_HISTORY,
    History,
    RecommendedItem,
    build_history,
    items_by_event_type,
    popular_items,
    score_histories,
    score_history,
)
from recsmith.store.live_records import LiveState, Served, keyed_hash
from recsmith.store.store import EventBatch, Store

logger = logging.getLogger(__name__)

FILTER_REFRESH_SECONDS = 2.0
MAX_SUPPRESS_MINUTES = 24 * 60
GROUP_ID_SECONDS = 10.0
NEW_ITEM = "new item"
"""The reason of an item put since training (scored from its features, or offered unscored)."""
EXPLAIN_HISTORY = 64
"""Reasons are looked for among a user's 64 highest-weighted interactions (the cost grows with the history)."""


@dataclass(frozen=True)
class LoadedCampaign:
    """One campaign's loaded solution version: an immutable snapshot that requests read without locks.

    Attributes
    ----------
    group, name : str
        Dataset group and campaign name.
    group_id : int
        The group's id in the store.
    version_id : int
        The solution version it serves.
    recipe : str
        The version's recipe.
    model : TrainedModel
        The artifact (arrays memory-mapped).
    catalog : ItemCatalog
        The group's item metadata indexed on ``model.items`` for filters.
    metadata : dict
        Item metadata by raw id, for ``metadata_columns``.
    config : dict
        The campaign's config (``exclude_seen`` default, ...).
    catalog_version : int
        The group's catalogue version the catalogue below was read at.
    fresh : tuple of str
        Items put after training (the model does not know them): positions ``len(model.items)`` on of
        ``catalog``, so filters select them, and requests offer them when the model's items run out.
    fresh_features : FeatureTable or None
        The ``fresh`` items' features (rows in ``fresh`` order, typed by the items schema), for a recipe with
        ``tags.cold_start_items``, which scores them from these (:meth:`~recsmith.recipes.base.Recipe.
        score_new_items`); None for other recipes or when there are none.
    visible_items : numpy.ndarray or None
        ``bool`` per model item, False for deleted items (never returned); None when none is deleted.
    hidden_users : frozenset of str
        Keyed hashes (:meth:`~recsmith.store.store.Store.entity_hash`) of the users deleted after training:
        answered as users the model never saw.
    item_hashes : dict or None
        Keyed hash -> index of every model item, made the first time an item tombstone needs it and carried to the
        snapshots a catalogue refresh makes (~1 µs an item).
    artifact_uri : str
        The artifact loaded (a version's artifact rewritten by ``recsmith users delete --purge-models`` moves:
        the next sync loads the new one).
    loaded_at : datetime
        When this snapshot finished loading.
    """

    group: str
    name: str
    group_id: int
    version_id: int
    recipe: str
    model: TrainedModel
    catalog: ItemCatalog
    metadata: Mapping[str, Mapping[str, Any]]
    config: Mapping[str, Any]
    catalog_version: int = 0
    fresh: tuple[str, ...] = ()
    fresh_features: FeatureTable | None = None
    visible_items: np.ndarray | None = None
    hidden_users: frozenset[str] = frozenset()
    item_hashes: dict[str, int] | None = None
    artifact_uri: str = ""
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def last_event(self) -> int | None:
        """The newest interaction row the model was trained on (None for artifacts that did not record it)."""
        value = self.model.meta.get("last_interaction_id")
        return None if value is None else int(value)

    def describe(self) -> dict[str, Any]:
        """What this snapshot serves (for ``/ready`` and campaign descriptions)."""
        return {"dataset_group": self.group, "campaign": self.name, "solution_version_id": self.version_id,
                "recipe": self.recipe, "num_items": len(self.model.items), "num_users": len(self.model.users),
                "loaded_at": self.loaded_at.isoformat()}


@dataclass(frozen=True)
class Promotion:
    """Part of the results reserved for items that pass a promotion filter (Personalize's promotions).

    Attributes
    ----------
    name : str
        Shown in the promoted items' reason (``"promotion: <name>"``).
    filter : str
        Name of a stored filter selecting the promoted items.
    filter_values : mapping
        Its ``$PARAM`` values.
    percent : int
        Share of the results to promote, 1-100 (rounded up to whole items).
    """

    name: str
    filter: str
    filter_values: Mapping[str, Any] = field(default_factory=dict)
    percent: int = 10


def _load(store: Store, record: Mapping[str, Any], encryption_key: Any = None) -> LoadedCampaign:
    """Read a campaign's artifact (decrypted with ``encryption_key`` when it is encrypted) and item metadata, and
    warm the model up with one request."""
    uri = record.get("artifact_uri")
    if not uri:
        raise NotFoundError(f"solution version {record['solution_version_id']} has no artifact")
    model = TrainedModel.load(Path(uri), mmap=True, encryption_key=encryption_key)
    group = store.get_dataset_group(record["dataset_group"])
    if len(model.users):  # touch the pages the first requests need
        model.recipe.recommend(np.zeros(1, dtype=np.int32), 1)
    last_event = model.meta.get("last_interaction_id")
    return LoadedCampaign(record["dataset_group"], record["name"], group.id, int(record["solution_version_id"]),
                          str(record["recipe"]), model, config=dict(record.get("config") or {}), artifact_uri=str(uri),
                          **_catalog_fields(store, model, group.id, None if last_event is None else int(last_event)))


def load_version(store: Store, version_id: int, *, encryption_key: Any = None) -> LoadedCampaign:
    """An ACTIVE solution version loaded as a campaign would serve it (named ``solution-version-<id>``, default
    config), for answers outside a campaign: ``recsmith recommend`` and batch jobs go through the same pipeline
    (:meth:`CampaignRuntime.answer`) as HTTP.

    ``encryption_key`` is ``RECSMITH_ENCRYPTION_KEY`` (``Settings.encryption_key``), for encrypted artifacts.

    Raises
    ------
    ConfigError
        If the version is not ACTIVE (still training, or failed).
    """
    version = store.get_solution_version(version_id)
    if version["status"] != "ACTIVE" or not version.get("artifact_uri"):
        raise ConfigError(f"solution version {version_id} is {version['status']}, not ACTIVE; train it again")
    return _load(store, {"artifact_uri": version["artifact_uri"], "dataset_group": version["dataset_group"],
                         "name": f"solution-version-{version_id}", "solution_version_id": version_id,
                         "recipe": version["recipe"], "config": {}}, encryption_key)


def live_backends(store: Store, redis_url: str | None, prefix: str = "recsmith") -> dict[str, Any]:
    """The live-state and served-items ledger backends of a :class:`CampaignRuntime`, as its keyword arguments:
    Redis when ``redis_url`` is set (``RECSMITH_REDIS_URL``, ``RECSMITH_REDIS_PREFIX``), else ``{}``, the store
    alone. The one choice for the server and every command that changes or reads live state."""
    if not redis_url:
        return {}
    from recsmith.serving.ledger import RedisLedger
    from recsmith.serving.live import connect_redis

    client = connect_redis(redis_url)
    return {"live": RedisLive(store, client, prefix=prefix), "ledger": RedisLedger(client, prefix=prefix)}


def delete_solution_version(store: Store, group: str, version_id: int) -> dict[str, Any]:
    """Delete a solution version of the group that no campaign serves, for HTTP and the CLI alike: its row
    (:meth:`~recsmith.store.store.Store.delete_solution_version`, which refuses while a campaign serves it,
    naming the campaigns, or while it trains), then its artifact folder.

    Returns
    -------
    dict
        ``{"deleted", "dataset_group", "solution", "recipe", "status", "artifact", "left"}``: the version id, what
        it was, whether its artifact folder was deleted, and what could not be removed (with why; logged too).
    """
    version = store.delete_solution_version(group, version_id)
    removed, left = _remove_artifact(version)
    return {"deleted": version_id, "dataset_group": group, "solution": version["solution_name"],
            "recipe": version["recipe"], "status": version["status"], "artifact": removed, "left": left}


def delete_solution(store: Store, group: str, name: str) -> dict[str, Any]:
    """Delete a solution of the group, with every version of it, that no campaign serves: the rows
    (:meth:`~recsmith.store.store.Store.delete_solution`, which refuses while a campaign serves a version, naming
    the campaigns, or while one trains), then the versions' artifact folders.

    Returns
    -------
    dict
        ``{"deleted", "dataset_group", "versions", "left"}``: the solution, the ids of the versions deleted, and
        what could not be removed (with why; logged too).
    """
    versions = store.delete_solution(group, name)
    left = [problem for version in versions for problem in _remove_artifact(version)[1]]
    return {"deleted": name, "dataset_group": group, "versions": [v["id"] for v in versions], "left": left}


def _remove_artifact(version: dict[str, Any]) -> tuple[bool, list[str]]:
    """Remove a deleted version's artifact folder: whether it was removed, and what could not be (logged)."""
    if not version.get("artifact_uri"):
        return False, []
    try:
        return remove_artifact(version["artifact_uri"]), []
    except OSError as exc:
        logger.exception("solution version %s: removing artifact %s failed", version["id"], version["artifact_uri"])
        return False, [f"{version['artifact_uri']}: {exc.strerror or exc}"]


def _catalog_fields(store: Store, model: TrainedModel, group_id: int, last_event: int | None,
                    item_hashes: dict[str, int] | None = None) -> dict[str, Any]:
    """The catalogue part of a :class:`LoadedCampaign`: item metadata (items put since training appended),
    deleted items and users; ``item_hashes`` are the model's items' keyed hashes when already made."""
    version = store.live_state(group_id).catalog_version  # first: a change made meanwhile triggers another read
    metadata = store.read_items(group_id)
    fresh = tuple(reversed([item for item in metadata if item not in model.items]))  # latest stored first
    catalog = ItemCatalog(list(model.items.ids) + list(fresh), metadata) if fresh else ItemCatalog(model.items,
                                                                                                   metadata)
    visible = None
    tombstones = store.deletions(group_id, "item")
    if len(tombstones):  # tombstones hold keyed hashes: look them up among the model's items' hashes
        if item_hashes is None:
            item_hashes = {keyed_hash(store.erasure_key, str(item)): position
                           for position, item in enumerate(model.items.ids)}
        deleted = [item_hashes[hashed] for hashed in tombstones.hashes() if hashed in item_hashes]
        if deleted:
            visible = np.ones(len(model.items), dtype=bool)
            visible[deleted] = False
            visible.setflags(write=False)  # shared by every request: copied before any change
    # a deletion at or after the training data's watermark: the model still knows the user
    users = frozenset(hashed for hashed, mark in store.deletions(group_id, "user").marks.items()
                      if last_event is None or mark >= last_event)
    return {"catalog": catalog, "metadata": metadata, "catalog_version": version, "fresh": fresh,
            "fresh_features": _fresh_features(store, model, group_id, fresh, metadata),
            "visible_items": visible, "hidden_users": users, "item_hashes": item_hashes}


def _fresh_features(store: Store, model: TrainedModel, group_id: int, fresh: Sequence[str],
                    metadata: Mapping[str, Mapping[str, Any]]) -> FeatureTable | None:
    """The features of the items put since training, typed by the group's items schema, when the model's recipe
    scores new items from them (``tags.cold_start_items``); None otherwise (no work for other recipes)."""
    if not fresh or not model.recipe.tags.cold_start_items:
        return None
    dataset = store.get_dataset(group_id, "items")
    try:
        return FeatureTable.from_records({item: metadata[item] for item in fresh}, Vocabulary(list(fresh)),
                                         dataset.schema if dataset is not None else None)
    except DataError:
        logger.warning("the items put since training cannot be typed by the items schema; they are offered "
                       "unscored", exc_info=True)
        return None


class CampaignRuntime:
    """The campaigns of a store, loaded and answering requests.

    Parameters
    ----------
    store : Store
        Where campaigns, filters, items and histories live.
    filter_cache_bytes : int
        Bytes of compiled filter masks (and their keys) kept, least recently used dropped first
        (``Settings.filter_cache_bytes``).
    live : DatabaseLive or RedisLive, optional
        How other processes' writes are noticed (default: polling the store).
    ledger : Ledger, optional
        Where served items are logged (default: the store's ``served_items`` table, written in batches).
    encryption_key : str, optional
        ``RECSMITH_ENCRYPTION_KEY`` (``Settings.encryption_key``): decrypts encrypted artifacts.
    """

    def __init__(self, store: Store, *, filter_cache_bytes: int = FILTER_CACHE_BYTES,
                 live: DatabaseLive | RedisLive | None = None, ledger: Ledger | None = None,
                 encryption_key: Any = None) -> None:
        self.store = store
        self.encryption_key = encryption_key
        self.masks = FilterCache(max_bytes=filter_cache_bytes)
        self.live = live or DatabaseLive(store)
        self.ledger = ledger or DatabaseLedger(store)
        self._campaigns: dict[tuple[str, str], LoadedCampaign] = {}
        self._errors: dict[tuple[str, str], str] = {}
        self._wanted: set[tuple[str, str]] = set()
        self._filters: dict[str, tuple[float, dict[str, Filter]]] = {}
        self._group_ids: dict[str, tuple[float, int]] = {}
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.live.on_change = self._wake.set
        self._thread: threading.Thread | None = None
        self.synced = False

    # ----------------------------------------------------------------------------------- lifecycle
    def sync(self) -> None:
        """Load new campaigns and new versions, drop deleted campaigns (one sync at a time)."""
        with self._sync_lock:
            records = self.store.list_campaigns()
            wanted = {(r["dataset_group"], r["name"]): r for r in records}
            for key, record in wanted.items():
                current = self._campaigns.get(key)
                if (current is not None and current.version_id == record["solution_version_id"]
                        and current.artifact_uri == str(record.get("artifact_uri"))):
                    if current.config != record["config"]:
                        current = self._campaigns[key] = _replace_config(current, record["config"])
                    if self.live.state(current.group_id).catalog_version != current.catalog_version:
                        self._refresh(key, current)
                    continue
                try:
                    loaded = _load(self.store, record, self.encryption_key)
                except Exception as exc:  # keep serving the old version; report the failure
                    self._errors[key] = f"solution version {record['solution_version_id']}: {exc}"
                    logger.exception("campaign %s/%s: loading solution version %s failed", *key,
                                     record["solution_version_id"])
                    continue
                self._campaigns[key] = loaded  # the atomic swap
                self._errors.pop(key, None)
                logger.info("campaign %s/%s now serves solution version %s", *key, loaded.version_id)
            for key in set(self._campaigns) - set(wanted):
                del self._campaigns[key]
            self._wanted = set(wanted)
            self.synced = True

    def _refresh(self, key: tuple[str, str], current: LoadedCampaign) -> None:
        """Swap in the campaign with its group's catalogue read again (new items, deletions)."""
        try:
            fields = _catalog_fields(self.store, current.model, current.group_id, current.last_event,
                                     current.item_hashes)
        except Exception:
            logger.exception("campaign %s/%s: reading the catalogue failed", *key)
            return
        if self._campaigns.get(key) is current:
            self._campaigns[key] = dataclasses.replace(current, **fields)

    def catalog_changed(self, group: str, group_id: int) -> None:
        """This process changed the group's users or items: answer from the new catalogue from the next request
        on, and tell the other processes."""
        self.live.catalog_changed(group_id)
        campaigns = [(key, loaded) for key, loaded in list(self._campaigns.items()) if key[0] == group]
        with self._sync_lock:
            for key, loaded in campaigns:
                self._refresh(key, self._campaigns.get(key, loaded))

    def delete_user(self, group: str, group_id: int, user_id: str) -> dict[str, int]:
        """Erase a user everywhere it is kept while serving, for HTTP and the CLI alike: the store's records
        (:meth:`~recsmith.store.store.Store.delete_user`: events, linked sessions' events, metadata, ledger rows,
        a keyed-hash tombstone), the live backend's event lists and the ledger's entries (in Redis when it is
        used), then reload the group's catalogue here and tell the other processes.

        Returns
        -------
        dict
            ``{"interactions", "records", "sessions", "served", "keys"}``: what was deleted (``keys``: Redis keys).
        """
        deletion = self.store.delete_user(group_id, user_id)
        keys = self.live.forget(group_id, deletion.ids)
        keys += self.ledger.forget(group_id, deletion.ids, deletion.recommendation_ids)
        self.catalog_changed(group, group_id)
        return deletion.counts() | {"keys": keys}

    def delete_dataset_group(self, group: str, *, force: bool = False) -> dict[str, Any]:
        """Delete a dataset group everywhere it is kept, for HTTP and the CLI alike: the store's records in one
        transaction (:meth:`~recsmith.store.store.Store.delete_dataset_group`); then, once that has committed,
        this process stops serving its campaigns at once and the others at their next sync (at once with
        Redis, which is told), its live state and ledger entries go from Redis, its solution versions'
        artifact folders from disk, and its tuning studies (``GROUP:RECIPE:METRIC``) from the store's database.

        Parameters
        ----------
        group : str
            The dataset group.
        force : bool
            Delete its campaigns too; False: refuse while it has any (ConflictError naming them).

        Returns
        -------
        dict
            ``{"deleted", "campaigns", "rows", "artifacts", "studies", "keys", "left"}``: the group, the campaigns
            deleted, rows deleted by table, artifact folders deleted, studies deleted, Redis keys deleted, and
            what could not be removed after the commit (each with why; logged too).
        """
        from recsmith.tuning.storage import delete_group_studies

        deletion = self.store.delete_dataset_group(group, force=force)
        with self._sync_lock:  # after a sync in progress, which may have read the campaigns before the commit
            for table in (self._campaigns, self._errors):
                for key in [key for key in table if key[0] == group]:
                    del table[key]
            self._wanted = {key for key in self._wanted if key[0] != group}
        self._filters.pop(group, None)
        self.forget_group(group)
        left: list[str] = []
        keys = 0
        try:
            keys = self.live.forget_group(deletion.group_id) + self.ledger.forget_group(deletion.group_id)
            self.live.campaigns_changed()
        except Exception as exc:  # Redis away: its keys expire (events after a week, the ledger after a day)
            logger.exception("dataset group %s: forgetting its live state failed", group)
            left.append(f"Redis keys of group id {deletion.group_id}: {exc}")
        removed = 0
        for uri in deletion.artifacts:
            try:
                removed += remove_artifact(uri)
            except OSError as exc:
                logger.exception("dataset group %s: removing artifact %s failed", group, uri)
                left.append(f"{uri}: {exc.strerror or exc}")
        studies: list[str] = []
        try:
            studies = delete_group_studies(self.store.url, group)
        except Exception as exc:  # the store's database holds Optuna tables of another version, or is away
            logger.exception("dataset group %s: deleting its tuning studies failed", group)
            left.append(f"tuning studies {group}:*: {exc}")
        return {"deleted": group, "campaigns": list(deletion.campaigns), "rows": deletion.rows,
                "artifacts": removed, "studies": studies, "keys": keys, "left": left}

    def start(self, interval: float = 1.0) -> None:
        """Sync now, then every ``interval`` seconds (or at once when woken: a catalogue change, a campaign
        switch announced through Redis) in a daemon thread; start the live-state listener and the ledger."""
        self.live.start()
        self.ledger.start()
        self.sync()
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                self._wake.wait(interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    self.sync()
                except Exception:  # the database may be briefly away; try again next tick
                    logger.exception("campaign sync failed")

        self._thread = threading.Thread(target=loop, name="recsmith-campaign-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background sync, the listener and the ledger (pending entries are written)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.live.stop()
        self.ledger.stop()

    def ready(self) -> bool:
        """True once every campaign in the store has a loaded version."""
        return self.synced and all(key in self._campaigns for key in self._wanted)

    def status(self) -> list[dict[str, Any]]:
        """Each campaign's loaded version, or the error that keeps it from loading."""
        # copies: the sync thread may add or drop entries meanwhile
        out = [loaded.describe() for loaded in list(self._campaigns.values())]
        for (group, name), error in list(self._errors.items()):
            out.append({"dataset_group": group, "campaign": name, "error": error})
        return out

    def get(self, group: str, name: str) -> LoadedCampaign:
        """The loaded campaign (NotFoundError when there is none, or it is still loading)."""
        loaded = self._campaigns.get((group, name))
        if loaded is None:
            if (group, name) in self._errors:
                raise NotFoundError(f"campaign {name!r} of dataset group {group!r} failed to load: "
                                    f"{self._errors[(group, name)]}")
            raise NotFoundError(f"dataset group {group!r} has no campaign {name!r} (or it is still loading)")
        return loaded

    def groups_serving(self, name: str) -> list[str]:
        """The dataset groups whose loaded campaigns include one called ``name`` (from memory: none until the
        first sync has loaded it)."""
        return sorted(group for group, campaign in list(self._campaigns) if campaign == name)

    # --------------------------------------------------------------------------------- live events
    def group_id(self, group: str) -> int:
        """The dataset group's id, remembered for :data:`GROUP_ID_SECONDS` (event posts would otherwise read it
        on every batch; a write to a group deleted meanwhile fails on its foreign key, and :meth:`forget_group`
        makes the next call read it again)."""
        now = time.monotonic()
        cached = self._group_ids.get(group)
        if cached is None or now - cached[0] > GROUP_ID_SECONDS:
            cached = (now, self.store.get_dataset_group(group).id)
            self._group_ids[group] = cached
        return cached[1]

    def forget_group(self, group: str) -> None:
        """Read the group's id from the store again next time (it was deleted, perhaps created again)."""
        self._group_ids.pop(group, None)

    def _live(self, campaign: LoadedCampaign) -> LiveState:
        """The group's live state (see :mod:`recsmith.serving.live`); a newer catalogue wakes the sync thread."""
        state = self.live.state(campaign.group_id)
        if state.catalog_version != campaign.catalog_version:
            self._wake.set()
        return state

    def _has_new_events(self, campaign: LoadedCampaign) -> bool:
        """Whether the group received real-time events after the campaign's training data (requests look a
        user's new events up only when there are some). Bulk imports count at the next training, as in
        Personalize."""
        return campaign.last_event is not None and self._live(campaign).last_event_id > campaign.last_event

    def events_written(self, group_id: int, rows: Sequence[Mapping[str, Any]], batch: EventBatch) -> None:
        """This process just stored ``rows`` in the group: every process answers from them from the next request
        on (this one at once; others within the live backend's delay)."""
        self.live.events_written(group_id, rows, batch)

    # ------------------------------------------------------------------------------------- filters
    def filter_named(self, group: str, name: str) -> Filter:
        """A stored filter of the group, parsed (re-read from the store at most every 2 s, or on a miss)."""
        stamp, parsed = self._filters.get(group, (0.0, {}))
        if name not in parsed or time.monotonic() - stamp > FILTER_REFRESH_SECONDS:
            parsed = {f["name"]: parse_filter(f["expression"]) for f in self.store.list_filters(group)}
            self._filters[group] = (time.monotonic(), parsed)
        if name not in parsed:
            raise NotFoundError(f"dataset group {group!r} has no filter {name!r}; its filters: "
                                f"{', '.join(sorted(parsed)) or '(none)'}")
        return parsed[name]

    def _filter(self, campaign: LoadedCampaign, filter: str | Filter | None) -> Filter | None:
        """A request's filter: a stored one by name, or an expression already parsed (the CLI's ``--filter``)."""
        if filter is None or isinstance(filter, Filter):
            return filter
        return self.filter_named(campaign.group, filter)

    def _mask(self, campaign: LoadedCampaign, parsed: Filter, values: Mapping[str, Any] | None, user_id: str | None,
              current_item: str | None, history: History) -> np.ndarray:
        user = None
        if parsed.user_fields and user_id is not None:
            user = self.store.read_users(campaign.group_id, [user_id]).get(user_id) or {}
        interactions = None
        if parsed.uses_interactions and user_id is not None:
            interactions = items_by_event_type(campaign.model, history.events or [])
        return self.masks.get(parsed, campaign.catalog, values=dict(values or {}), user=user,
                              current_item=current_item, interactions=interactions)

    def _allowed(self, campaign: LoadedCampaign, parsed: Filter | None, values: Mapping[str, Any] | None,
                 exclude: Sequence[str], user_id: str | None, current_item: str | None,
                 history: History) -> tuple[np.ndarray | None, list[str]]:
        """The model's items a request may return (a mask, or None for all of them), and the items put since
        training that it may return."""
        allowed = None
        fresh = list(campaign.fresh)
        if parsed is not None:
            allowed, fresh = _split(campaign, self._mask(campaign, parsed, values, user_id, current_item, history))
        if exclude:
            banned = campaign.model.items.indices(list(exclude), missing="ignore")
            banned = banned[banned >= 0]
            if len(banned):
                allowed = np.ones(len(campaign.model.items), dtype=bool) if allowed is None else allowed.copy()
                allowed[banned] = False
            if fresh:
                excluded = set(exclude)
                fresh = [item for item in fresh if item not in excluded]
        if campaign.visible_items is not None:
            allowed = campaign.visible_items if allowed is None else allowed & campaign.visible_items
        return allowed, fresh

    def _history(self, campaign: LoadedCampaign, user_id: str | None, session_id: str | None = None, *,
                 all_events: bool = False) -> History:
        """Step 1 of the pipeline, looked up once per request: the user's training row (unless deleted since)
        plus their events since training (all their stored events for a user the model never saw), and with a
        ``session_id`` of its own the session's anonymous events too, weighed like training
        (:func:`recsmith.serving.recommender.build_history`). ``all_events`` reads every stored event at once
        (for filters on ``Interactions``)."""
        if user_id is None:
            return EMPTY_HISTORY
        model = campaign.model
        known = user_id in model.users and not (campaign.hidden_users  # deleted since: one keyed hash to tell
                                                and self.store.entity_hash(user_id) in campaign.hidden_users)
        row = model.users.index(user_id) if known else None
        events = None
        if all_events or row is None:
            events = self.store.user_events(campaign.group_id, user_id)
            if row is None:
                new = events
            else:  # an artifact that did not record its watermark: its row is all it knows
                new = [] if campaign.last_event is None else [e for e in events if e.row > campaign.last_event]
        elif self._has_new_events(campaign):  # events since training count at once
            new = self.live.user_events_after(campaign.group_id, user_id, campaign.last_event)
        else:
            new = []
        if session_id is not None and session_id != user_id:
            session = self.store.user_events(campaign.group_id, session_id)
            new = [*new, *session]
            events = None if events is None else [*events, *session]
        return build_history(model, row, new, events)

    # ------------------------------------------------------------------------------------ requests
    def recommend(self, group: str, name: str, **request: Any) -> dict[str, Any]:
        """Recommendations from a campaign: :meth:`answer` with the campaign's loaded version (this snapshot
        answers the whole request)."""
        return self.answer(self.get(group, name), **request)

    def answer(self, campaign: LoadedCampaign, *, user_id: str | None = None, item_id: str | None = None,
               session_id: str | None = None, num_results: int = 25, filter: str | Filter | None = None,
               filter_values: Mapping[str, Any] | None = None, exclude: Sequence[str] = (),
               exclude_seen: bool | None = None, metadata_columns: Sequence[str] = (),
               promotion: Promotion | None = None, suppress_served_minutes: float | None = None,
               log: bool = True) -> dict[str, Any]:
        """The one pipeline: recommendations for a user (``user_id``), an anonymous session (``session_id``
        alone: scored from the session's events) or related to an item (``item_id``), in raw ids. HTTP, the CLI
        and batch jobs all answer through it.

        Steps: the user's history (training row plus live events, weighed like training, deletions applied) ->
        candidates and scores (the recipe) -> filter, exclusions, promotion, ledger suppression, new-item share
        (item masks) -> top-k (ties by item index), padded with popular items that pass the filter -> reasons.

        With ``user_id`` and ``session_id`` both, the session's anonymous events (sent before the user signed in)
        count as the user's too. ``filter`` names a stored filter, or is a parsed expression. ``suppress_served_
        minutes`` leaves out items the ledger shows were served to the user in the last N minutes and that the
        user has not acted on since. ``log`` writes the answer to the served-items ledger.

        Returns
        -------
        dict
            ``{"items": [{"item_id", "score", "reason", "metadata"?}], "recommendation_id",
            "solution_version_id"}``.

        Raises
        ------
        ConfigError
            Neither or both of ``user_id`` and ``item_id``; ``num_results`` out of 1..500; unknown metadata column.
        NotFoundError
            Unknown campaign or filter.
        FilterError
            A filter parameter an INCLUDE part needs is missing, or a value does not fit its field.
        """
        own_session = None
        if user_id is None and item_id is None and session_id is not None:
            user_id = session_id  # anonymous traffic: the tracker stores a session's events under its id
        elif user_id is not None and session_id is not None and session_id != user_id:
            own_session = session_id
        if (user_id is None) == (item_id is None):
            raise ConfigError("give exactly one of user_id (recommendations for a user), session_id (for an "
                              "anonymous session) and item_id (related items)")
        _check_num_results(num_results)
        columns = self._check_columns(campaign, metadata_columns)
        if exclude_seen is None:
            exclude_seen = bool(campaign.config.get("exclude_seen", True))
        parsed = self._filter(campaign, filter)
        promoted_filter = None if promotion is None else self._filter(campaign, promotion.filter)
        history = EMPTY_HISTORY
        if item_id is None:
            interactions = any(f is not None and f.uses_interactions for f in (parsed, promoted_filter))
            history = self._history(campaign, user_id, own_session, all_events=interactions)
        if suppress_served_minutes is not None and user_id is not None:
            exclude = [*exclude, *self._suppressed(campaign, user_id, suppress_served_minutes)]
        allowed, fresh = self._allowed(campaign, parsed, filter_values, exclude, user_id, item_id, history)
        promoted: list[RecommendedItem] = []
        if promotion is not None:
            promoted = self._promoted(campaign, promotion, promoted_filter, num_results, allowed, fresh, user_id,
                                      item_id, exclude_seen, history)
            if promoted:
                allowed = np.ones(len(campaign.model.items), dtype=bool) if allowed is None else allowed.copy()
                chosen = campaign.model.items.indices([p.item_id for p in promoted], missing="ignore")
                allowed[chosen[chosen >= 0]] = False
                taken = {p.item_id for p in promoted}
                fresh = [item for item in fresh if item not in taken]
        rest = num_results - len(promoted)
        if item_id is not None:
            items = self._related(campaign, item_id, rest, allowed, fresh) if rest else []
        else:
            items = self._for_user(campaign, history, rest, allowed, fresh, exclude_seen) if rest else []
        merged = sorted(promoted + items, key=lambda item: -item.score) if promoted else items
        response = self._response(campaign, merged, columns)
        if user_id is not None and log:
            self._log(campaign, response, user_id)
        return response

    def _suppressed(self, campaign: LoadedCampaign, user_id: str, minutes: float) -> list[str]:
        """Items the ledger shows were served to the user in the last ``minutes`` and not acted on since."""
        if not 0 < minutes <= MAX_SUPPRESS_MINUTES:
            raise ConfigError(f"suppress_served_minutes must be more than 0 and at most {MAX_SUPPRESS_MINUTES}, "
                              f"got {minutes}")
        since = time.time() - minutes * 60
        served = {item for entry in self.ledger.served_to(campaign.group_id, user_id, since) for item in entry.items}
        if not served:
            return []
        acted = self.store.user_items_since(campaign.group_id, user_id, math.floor(since))
        return sorted(served - acted)

    def _log(self, campaign: LoadedCampaign, response: Mapping[str, Any], user_id: str | None) -> None:
        """Write the response to the served-items ledger."""
        self.ledger.record(Served(response["recommendation_id"], campaign.group_id, campaign.name, user_id,
                                  tuple(item["item_id"] for item in response["items"]), time.time()))

    def answer_users(self, campaign: LoadedCampaign, user_ids: Sequence[str], *, num_results: int = 25,
                     filter: str | Filter | None = None, filter_values: Mapping[str, Any] | None = None,
                     exclude_seen: bool | None = None, metadata_columns: Sequence[str] = ()) -> list[dict[str, Any]]:
        """:meth:`answer` for many users at once (batch inference jobs): the same steps and the same answers as
        ``[answer(campaign, user_id=u, ..., log=False) for u in user_ids]``, with the recipe scoring the whole
        block in one :meth:`~recsmith.recipes.base.Recipe.recommend_for_queries` call
        (:func:`~recsmith.serving.recommender.score_histories`) instead of once per user. Nothing is written to
        the served-items ledger.

        Raises
        ------
        ConfigError, NotFoundError, FilterError
            As :meth:`answer`, for the whole block.
        """
        _check_num_results(num_results)
        columns = self._check_columns(campaign, metadata_columns)
        if exclude_seen is None:
            exclude_seen = bool(campaign.config.get("exclude_seen", True))
        parsed = self._filter(campaign, filter)
        interactions = parsed is not None and parsed.uses_interactions
        histories = [self._history(campaign, user_id, all_events=interactions) for user_id in user_ids]
        masks = [self._allowed(campaign, parsed, filter_values, (), user_id, None, history)
                 for user_id, history in zip(user_ids, histories, strict=True)]
        scored = score_histories(campaign.model, histories, num_results, exclude_seen=exclude_seen,
                                 allowed=[allowed for allowed, _ in masks])
        return [self._response(campaign, self._finish_user(campaign, history, num_results, items, allowed, fresh,
                                                           exclude_seen), columns)
                for history, items, (allowed, fresh) in zip(histories, scored, masks, strict=True)]

    def _for_user(self, campaign: LoadedCampaign, history: History, k: int, allowed: np.ndarray | None,
                  fresh: Sequence[str], exclude_seen: bool) -> list[RecommendedItem]:
        model = campaign.model
        banned = None
        if allowed is not None or (exclude_seen and len(history.items)):  # one mask: filter, deletions, seen
            refused = np.zeros(len(model.items), dtype=bool) if allowed is None else ~allowed
            if exclude_seen:
                refused[history.items] = True
            banned = np.flatnonzero(refused)
        scored = score_history(model, history, k, exclude_seen=exclude_seen, exclude=banned)
        return self._finish_user(campaign, history, k, scored, allowed, fresh, exclude_seen)

    def _finish_user(self, campaign: LoadedCampaign, history: History, k: int, scored: list[RecommendedItem],
                     allowed: np.ndarray | None, fresh: Sequence[str], exclude_seen: bool) -> list[RecommendedItem]:
        """The steps after scoring of a user's answer: reasons, new items merged, popular padding, the share of
        items put since training."""
        model = campaign.model
        explained = self._explain(campaign, history, scored)
        seen = history.seen if exclude_seen else frozenset()
        if scored and fresh and campaign.fresh_features is not None:  # the recipe scores new items: merge them
            explained = _merge_new_items(campaign, history, k, explained, fresh, seen)
        if len(explained) < k:  # padded with popular items (nothing in the history supports the dropped ones)
            skip = {item.index if item.index >= 0 else model.items.index(item.item_id) for item in explained
                    if item.reason != NEW_ITEM}
            if exclude_seen:
                skip.update(history.items.tolist())
            explained.extend(popular_items(model, k - len(explained), skip, allowed))
        taken = {item.item_id for item in explained}
        pending = [item for item in fresh if item not in seen and item not in taken]
        reserve = math.ceil(k * _new_items_share(campaign)) if pending else 0
        if reserve:  # exploration: the last places go to items put since training
            offered = pending[:reserve]
            del explained[k - len(offered):]
        if len(explained) < k and fresh:
            _add_fresh(explained, k, fresh, set(seen))
        return explained

    @staticmethod
    def _explain(campaign: LoadedCampaign, history: History, items: list[RecommendedItem]) -> list[RecommendedItem]:
        """Replace "personalized"/"history" reasons with "because you interacted with X" where the recipe can
        tell (X: the largest contributor among the user's :data:`EXPLAIN_HISTORY` strongest interactions); for
        such recipes, scored items that nothing in the history supports (a zero score) are dropped (the caller
        pads with popular ones); with a longer history, an item no strong interaction supports keeps its reason."""
        past, weights = history.items, history.weights
        if not items or not len(past):
            return items
        model = campaign.model
        targets = np.fromiter((item.index for item in items), dtype=np.int64, count=len(items))
        if (targets < 0).any():
            targets = model.items.indices([item.item_id for item in items])
        whole = len(past) <= EXPLAIN_HISTORY
        if not whole:  # long histories: the reason comes from the strongest interactions
            strongest = np.argpartition(-np.asarray(weights), EXPLAIN_HISTORY)[:EXPLAIN_HISTORY]
            past, weights = past[strongest], weights[strongest]
        why = model.recipe.explain(past, weights, targets)
        if why is None:
            return items
        out = []
        for item, source in zip(items, why.tolist(), strict=True):
            if source >= 0:
                out.append(RecommendedItem(item.item_id, item.score,
                                           f"because you interacted with {model.items.raw(source)}", item.index))
            elif not whole:  # nothing in the history supports it: a zero score, not evidence
                out.append(item)
        return out

    def _related(self, campaign: LoadedCampaign, item_id: str, k: int, allowed: np.ndarray | None,
                 fresh: Sequence[str]) -> list[RecommendedItem]:
        model = campaign.model
        skip: set[int] = set()
        out: list[RecommendedItem] = []
        if item_id in model.items and model.recipe.tags.similar_items:
            index = model.items.index(item_id)
            skip.add(index)
            banned = 0 if allowed is None else int(len(allowed) - allowed.sum())
            similar = model.recipe.similar_items([index], min(len(model.items), k + banned + 1))
            for other, score in zip(similar.ids[0].tolist(), similar.scores[0].tolist(), strict=True):
                if other < 0 or not math.isfinite(score) or (allowed is not None and not allowed[other]):
                    continue
                out.append(RecommendedItem(model.items.raw(other), float(score), f"similar to {item_id}"))
                skip.add(other)
                if len(out) >= k:
                    break
        elif item_id in model.items:
            skip.add(model.items.index(item_id))
        if len(out) < k:
            out.extend(popular_items(model, k - len(out), skip, allowed))
        if len(out) < k and fresh:
            _add_fresh(out, k, fresh, {item_id})
        return out

    def _promoted(self, campaign: LoadedCampaign, promotion: Promotion, parsed: Filter | None, num_results: int,
                  allowed: np.ndarray | None, fresh: Sequence[str], user_id: str | None, item_id: str | None,
                  exclude_seen: bool, history: History) -> list[RecommendedItem]:
        if not 1 <= promotion.percent <= 100:
            raise ConfigError(f"promotion.percent must be 1-100, got {promotion.percent}")
        count = math.ceil(num_results * promotion.percent / 100)
        if parsed is None:
            raise ConfigError(f"promotion {promotion.name!r} needs a filter selecting the promoted items")
        mask, promoted_fresh = _split(campaign, self._mask(campaign, parsed, promotion.filter_values, user_id,
                                                           item_id, history))
        if allowed is not None:
            mask = mask & allowed
        offered = set(fresh)
        promoted_fresh = [item for item in promoted_fresh if item in offered]
        if item_id is not None:
            chosen = self._related(campaign, item_id, count, mask, promoted_fresh)
        else:
            chosen = self._for_user(campaign, history, count, mask, promoted_fresh, exclude_seen)
        reason = f"promotion: {promotion.name}"
        return [RecommendedItem(item.item_id, item.score, reason) for item in chosen]

    def rank(self, group: str, name: str, **request: Any) -> dict[str, Any]:
        """Personalized ranking from a campaign: :meth:`rank_with` its loaded version."""
        return self.rank_with(self.get(group, name), **request)

    def rank_with(self, campaign: LoadedCampaign, *, user_id: str, input_list: Sequence[str],
                  filter: str | Filter | None = None, filter_values: Mapping[str, Any] | None = None,
                  metadata_columns: Sequence[str] = (), log: bool = True) -> dict[str, Any]:
        """Personalized ranking: ``input_list`` ordered for the user; items the model does not know go last.

        The same history step as :meth:`answer` (training row plus live events, weighed like training). Items a
        filter removes are left out (as in Personalize). A user the model never saw is ranked from their stored
        history, or by popularity (``reason="popular"``) when there is none.
        """
        if not input_list:
            raise ConfigError("input_list is empty; give the item ids to rank")
        if len(input_list) > MAX_RESULTS:
            raise ConfigError(f"input_list has {len(input_list)} items; at most {MAX_RESULTS} can be ranked")
        columns = self._check_columns(campaign, metadata_columns)
        model = campaign.model
        parsed = self._filter(campaign, filter)
        history = self._history(campaign, user_id, all_events=parsed is not None and parsed.uses_interactions)
        allowed, _ = self._allowed(campaign, parsed, filter_values, (), user_id, None, history)
        unique = list(dict.fromkeys(input_list))
        indices = model.items.indices(unique, missing="ignore")
        known = [(raw, int(i)) for raw, i in zip(unique, indices.tolist(), strict=True)
                 if i >= 0 and (allowed is None or allowed[i])]
        unknown = [raw for raw, i in zip(unique, indices.tolist(), strict=True) if i < 0]
        ranked: list[RecommendedItem] = []
        if known:
            candidates = np.array([i for _, i in known], dtype=np.int32)
            ranked = score_history(model, history, len(candidates), exclude_seen=False, candidates=candidates)
            placed = {item.item_id for item in ranked}
            rest = sorted((i for raw, i in known if raw not in placed), key=lambda i: -model.popularity[i])
            ranked.extend(RecommendedItem(model.items.raw(i), float(model.popularity[i]), "popular") for i in rest)
        response = self._response(campaign, ranked, columns)
        response["items"].extend({"item_id": raw, "score": None, "reason": "unknown item"}
                                 | ({"metadata": _columns(campaign, raw, columns)} if columns else {})
                                 for raw in unknown)
        if log:
            self._log(campaign, response, user_id)
        return response

    # ------------------------------------------------------------------------------------- helpers
    @staticmethod
    def _check_columns(campaign: LoadedCampaign, columns: Sequence[str]) -> list[str]:
        fields = campaign.catalog.fields
        unknown = [c for c in columns if c not in fields]
        if unknown:
            raise ConfigError(f"metadata_columns: unknown item field(s) {', '.join(map(repr, unknown))}; the items of "
                              f"{campaign.group!r} have: {', '.join(sorted(fields)) or '(no metadata)'}")
        return list(columns)

    @staticmethod
    def _response(campaign: LoadedCampaign, items: list[RecommendedItem], columns: list[str]) -> dict[str, Any]:
        rows = []
        for item in items:
            row: dict[str, Any] = {"item_id": item.item_id, "score": item.score, "reason": item.reason}
            if columns:
                row["metadata"] = _columns(campaign, item.item_id, columns)
            rows.append(row)
        return {"items": rows, "recommendation_id": uuid.uuid4().hex, "solution_version_id": campaign.version_id}


def _new_items_share(campaign: LoadedCampaign) -> float:
    """The campaign's ``new_items_share`` config: the share of a user's results (rounded up) given to items put
    since training, latest first (like Personalize's exploration weight for cold items; default 0)."""
    value = campaign.config.get("new_items_share", 0) or 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise advise(ConfigError(f"campaign {campaign.name!r}: config new_items_share must be a number from 0 to 1, "
                                 f"got {value!r}"), Advice("campaign_config", campaign.name, group=campaign.group),
                     "fix it with recsmith campaign update")
    return float(value)


def _merge_new_items(campaign: LoadedCampaign, history: History, k: int, items: list[RecommendedItem],
                     fresh: Sequence[str], seen: frozenset[str]) -> list[RecommendedItem]:
    """The recipe's top ``k`` with the items put since training merged in by score: ``fresh`` (those the
    request's filter and exclusions let through) less ``seen``, scored with ``recipe.score_new_items`` from
    their features (ties: the known item first), reason ``"new item"``."""
    assert campaign.fresh_features is not None
    position = {item: index for index, item in enumerate(campaign.fresh)}
    offered = [item for item in fresh if item not in seen and item in position]
    if not offered:
        return items
    model = campaign.model
    table = campaign.fresh_features.take(np.array([position[item] for item in offered], dtype=np.int64))
    users = None if history.row is None else np.array([history.row], dtype=np.int64)
    scores = np.asarray(model.recipe.score_new_items(history.as_row(len(model.items)), users, table),
                        dtype=np.float32)[0]
    new = [RecommendedItem(item, float(score), NEW_ITEM)
           for item, score in zip(offered, scores.tolist(), strict=True) if math.isfinite(score)]
    return sorted(items + new, key=lambda item: -item.score)[:k]


def _split(campaign: LoadedCampaign, mask: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A catalogue mask as (the model's items' part, the items put since training that pass)."""
    n = len(campaign.model.items)
    if not campaign.fresh:
        return mask, []
    return mask[:n], [item for item, ok in zip(campaign.fresh, mask[n:].tolist(), strict=True) if ok]


def _add_fresh(out: list[RecommendedItem], k: int, fresh: Sequence[str], skip: set[str]) -> None:
    """Pad ``out`` to ``k`` with items put since training (the model cannot score them: reason "new item")."""
    taken = {item.item_id for item in out} | skip
    for item in fresh:
        if len(out) >= k:
            break
        if item not in taken:
            out.append(RecommendedItem(item, 0.0, NEW_ITEM))


def _columns(campaign: LoadedCampaign, item_id: str, columns: list[str]) -> dict[str, Any]:
    record = campaign.metadata.get(item_id) or {}
    return {c: record.get(c) for c in columns}


def _check_num_results(num_results: int) -> None:
    if isinstance(num_results, bool) or not isinstance(num_results, int) or not 1 <= num_results <= MAX_RESULTS:
        raise ConfigError(f"num_results must be an integer from 1 to {MAX_RESULTS}, got {num_results!r}")


def _replace_config(loaded: LoadedCampaign, config: Mapping[str, Any]) -> LoadedCampaign:
    return dataclasses.replace(loaded, config=dict(config))
