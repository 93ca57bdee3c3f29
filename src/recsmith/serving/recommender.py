"""The first steps of the serving pipeline for one user: their history (training row plus live events,
weighed like training), the recipe's scores for it, and the popular fallback."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from recsmith.data.weighting import event_weights_of
from recsmith.recipes.bundle import TrainedModel
from recsmith.recipes.query import HistoryQuery
from recsmith.store.store import UserEvent


class RecommendedItem(NamedTuple):
    """One recommended item (a named tuple: a batch job makes millions of them).

    Attributes
    ----------
    item_id : str
        Raw item id.
    score : float
        The recipe's score (for ``reason="popular"``: the item's popularity).
    reason : str
        ``"personalized"`` (the model knows the user), ``"history"`` (scored from the user's stored
        history, a user who arrived after training), ``"popular"`` (the fallback) or the recipe's own
        (:meth:`~recsmith.recipes.base.Recipe.reason_kinds`: trending's ``"trending"`` and ``"popular"``).
    """

    item_id: str
    score: float
    reason: str
    index: int = -1
    """The item's dense index in the model where the step that chose it knew it (-1: not known, or an item put
    since training)."""


def popular_items(model: TrainedModel, k: int, skip: set[int], allowed: np.ndarray | None) -> list[RecommendedItem]:
    """The ``k`` most popular items that pass ``allowed`` and are not in ``skip``, with ``reason="popular"``."""
    out: list[RecommendedItem] = []
    order = model.popular_order
    start = 0
    while len(out) < k and start < len(order):  # scan in chunks: a filter rarely needs the whole catalogue
        chunk = order[start:start + 4 * k + len(skip)]
        start += len(chunk)
        if allowed is not None:
            chunk = chunk[allowed[chunk]]
        for index in chunk.tolist():
            if index in skip:
                continue
            out.append(RecommendedItem(str(model.items.raw(index)), float(model.popularity[index]), "popular", index))
            if len(out) >= k:
                break
    return out


@dataclass(frozen=True)
class History:
    """What one request knows of its user, looked up once and read by every later step (scores, exclusions,
    filters, reasons).

    Attributes
    ----------
    row : int or None
        The user's training row, when the model knows the user (and the user was not deleted since).
    items : numpy.ndarray
        ``int64`` distinct dense items of the model the user interacted with, sorted.
    weights : numpy.ndarray
        ``float32`` their weights: the training row plus every event since, each weighed as training weighs it
        (the solution's event-type weights and decay), summed per item; a net-negative item is pushed down.
    live : bool
        Whether events since training are in it (the scores are then recomputed from it: fold-in).
    seen : frozenset of str
        Raw ids of everything the user interacted with, items the model does not know included.
    events : list of UserEvent or None
        The user's stored events, when the request read them all (for ``Interactions.EVENT_TYPE`` filters).
    sequence : numpy.ndarray or None
        For a sequential recipe (``tags.sequential``): ``int64`` dense items of the user's events in time order,
        repeats kept: the training sequence the recipe kept, then every event since (None for other recipes).
    timestamps : numpy.ndarray or None
        ``int64`` epoch seconds of each ``sequence`` entry (None where unknown).
    """

    row: int | None
    items: np.ndarray
    weights: np.ndarray
    live: bool = False
    seen: frozenset[str] = frozenset()
    events: list[UserEvent] | None = None
    sequence: np.ndarray | None = None
    timestamps: np.ndarray | None = None

    @property
    def known(self) -> bool:
        """Whether the model was trained on this user."""
        return self.row is not None

    def as_row(self, n_items: int) -> sp.csr_matrix:
        """The history as a ``1 × n_items`` CSR row of weights (what fold-in scores)."""
        indptr = np.array([0, len(self.items)], dtype=np.int64)
        return sp.csr_matrix((self.weights, self.items.astype(np.int32), indptr), shape=(1, n_items))


EMPTY_HISTORY = History(None, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))


def event_weights(model: TrainedModel, events: Sequence[UserEvent]) -> np.ndarray:
    """``float64`` weight of each event as the model's training weighed it: the solution's event-type weights
    (``meta["config"]``) and its half-life decay seen from the training data's newest event
    (``meta["reference_time"]``; an event since then weighs its full type weight)."""
    config = model.meta.get("config") or {}
    return event_weights_of([event.event_type for event in events], np.array([e.timestamp for e in events]),
                            event_weights=config.get("event_weights"), half_life_days=config.get("half_life_days"),
                            reference_time=model.meta.get("reference_time"), n=len(events))


def build_history(model: TrainedModel, row: int | None, new_events: Sequence[UserEvent],
                  all_events: list[UserEvent] | None = None) -> History:
    """A user's :class:`History`: the training row (``row``, None for a user the model never saw) plus
    ``new_events`` (the events since training for a known user, all stored events for another), weighed like
    training and summed per item. ``all_events`` (when read) is kept for filters."""
    train = model.recipe.train_matrix_
    if row is not None:
        span = slice(train.indptr[row], train.indptr[row + 1])
        items = np.asarray(train.indices[span], dtype=np.int64)
        weights = np.asarray(train.data[span], dtype=np.float32)
    else:
        items, weights = EMPTY_HISTORY.items, EMPTY_HISTORY.weights
    seen = frozenset(event.item_id for event in (all_events if all_events is not None else new_events))
    if row is not None:
        seen = seen | frozenset(model.items.ids[items].tolist())
    if new_events:  # in time order (ties: as stored), so a sequential recipe reads them as they happened
        new_events = sorted(new_events, key=lambda event: (event.timestamp, event.row))
    new = model.items.indices([event.item_id for event in new_events], missing="ignore") if new_events else None
    live_weights = None if new is None else event_weights(model, new_events)
    sequence = times = None
    if model.recipe.tags.sequential:
        sequence, times = _sequence(model, row, new, new_events, live_weights)
    if new is None or not (new >= 0).any():
        return History(row, items, weights, False, seen, all_events, sequence, times)
    known = new >= 0
    merged_items = np.concatenate([items, new[known]])
    merged_weights = np.concatenate([weights.astype(np.float64), live_weights[known]])
    order = np.argsort(merged_items, kind="stable")
    merged_items, merged_weights = merged_items[order], merged_weights[order]
    starts = np.flatnonzero(np.r_[True, merged_items[1:] != merged_items[:-1]])
    return History(row, merged_items[starts], np.add.reduceat(merged_weights, starts).astype(np.float32), True, seen,
                   all_events, sequence, times)


def _sequence(model: TrainedModel, row: int | None, new: np.ndarray | None, new_events: Sequence[UserEvent],
              live_weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The ordered history of a sequential recipe: the training sequence it kept for ``row``, then the events
    since (items it knows, of positive weight, as training reads a sequence), with their times."""
    if row is not None:
        items, stamps = model.recipe.user_sequence(row)
    else:
        items, stamps = np.empty(0, dtype=np.int64), None
    if new is None:
        return items, stamps
    take = (new >= 0) & (live_weights > 0)
    new_stamps = np.fromiter((event.timestamp for event in new_events), dtype=np.int64, count=len(new_events))[take]
    if stamps is None and len(items):  # a training sequence without times: the whole sequence has none
        return np.concatenate([items, new[take]]), None
    stamps = new_stamps if stamps is None else np.concatenate([stamps, new_stamps])
    return np.concatenate([items, new[take]]), stamps


def history_query(model: TrainedModel, history: History) -> HistoryQuery | None:
    """The inference query of a :class:`History` (what the recipe scores): for a sequential recipe the ordered
    sequence with its times, for the others the summed weights; scored as the training user when nothing
    happened since training, folded in otherwise. None when there is nothing to score (no history, and a
    recipe whose list depends on the user)."""
    user = history.row if history.row is not None and not history.live else None
    if model.recipe.tags.sequential and history.sequence is not None:
        if not len(history.sequence) and not model.recipe.tags.same_for_everyone:
            return None
        return HistoryQuery(history.sequence, timestamps=history.timestamps, user=user)
    if user is None and not len(history.items) and not model.recipe.tags.same_for_everyone:
        return None
    return HistoryQuery(history.items, history.weights, user=user)


def score_history(model: TrainedModel, history: History, k: int, *, exclude_seen: bool = True,
                  exclude: np.ndarray | None = None, candidates: np.ndarray | None = None) -> list[RecommendedItem]:
    """The recipe's top ``k`` for one :class:`History` (no padding): a known user without new events from the
    model's own row, anyone else from the history's weights (fold-in); ``[]`` when there is nothing to score (no
    history, and a recipe whose list depends on the user). Reasons: the recipe's own
    (:meth:`~recsmith.recipes.base.Recipe.reason_kinds`, e.g. ``"trending"`` / ``"popular"``) where it gives them,
    else ``"personalized"`` for a known user and ``"history"`` for another."""
    query = history_query(model, history)
    if query is None:
        return []
    rec = model.recipe.recommend_for_queries([query], k, exclude_seen=exclude_seen, exclude=exclude,
                                             candidates=candidates)
    return _scored_items(model, history, rec.ids[0], rec.scores[0])


def score_histories(model: TrainedModel, histories: Sequence[History], k: int, *, exclude_seen: bool = True,
                    allowed: Sequence[np.ndarray | None] | None = None) -> list[list[RecommendedItem]]:
    """:func:`score_history` for many users at once (batch inference): the same items and scores, the recipe
    scoring the block in as few :meth:`~recsmith.recipes.base.Recipe.recommend_for_queries` calls as there are
    distinct masks (one, when every user shares a filter's mask or has none).

    Parameters
    ----------
    histories : sequence of History
        One per user.
    k : int
        Items per user.
    exclude_seen : bool
        Leave out each history's items.
    allowed : sequence of (bool array or None), optional
        Per user, the model's items it may get (``None``: all); users sharing one array share one call.

    Returns
    -------
    list of list of RecommendedItem
        One list per history, as :func:`score_history` gives it.
    """
    masks = list(allowed) if allowed is not None else [None] * len(histories)
    out: list[list[RecommendedItem]] = [[] for _ in histories]
    queries = [history_query(model, history) for history in histories]
    groups: dict[bytes | None, list[int]] = {}  # users with equal masks (by content: a mask may be rebuilt)
    for position, (query, mask) in enumerate(zip(queries, masks, strict=True)):
        if query is not None:
            groups.setdefault(None if mask is None else np.packbits(mask).tobytes(), []).append(position)
    for positions in groups.values():
        mask = masks[positions[0]]
        candidates = None if mask is None else np.flatnonzero(mask)
        exclude = [histories[p].items for p in positions] if exclude_seen else None
        rec = model.recipe.recommend_for_queries([queries[p] for p in positions], k, exclude_seen=exclude_seen,
                                                 candidates=candidates, exclude=exclude)
        for row, position in enumerate(positions):
            out[position] = _scored_items(model, histories[position], rec.ids[row], rec.scores[row])
    return out


def _scored_items(model: TrainedModel, history: History, ids: np.ndarray, scores: np.ndarray
                  ) -> list[RecommendedItem]:
    """One row of a recipe's :class:`~recsmith.recipes.base.Recommendations` as items with reasons (padding
    and unscorable entries dropped)."""
    keep = (ids >= 0) & np.isfinite(scores)
    chosen = ids[keep]
    kinds = model.recipe.reason_kinds(chosen)
    reasons = kinds if kinds is not None else repeat("personalized" if history.known else "history", len(chosen))
    return [RecommendedItem(name, score, reason, index)
            for name, score, reason, index in zip(model.items.ids[chosen].tolist(), scores[keep].tolist(), reasons,
                                                  chosen.tolist(), strict=True)]


def items_by_event_type(model: TrainedModel, events: Sequence[UserEvent]) -> dict[str, set[int]]:
    """A user's events as event type -> dense item indices of the model (what ``Interactions.EVENT_TYPE``
    filters read); items the model does not know, and untyped events, are left out."""
    indices = model.items.indices([event.item_id for event in events], missing="ignore")
    interactions: dict[str, set[int]] = {}
    for index, event in zip(indices.tolist(), events, strict=True):
        if index >= 0 and event.event_type is not None:
            interactions.setdefault(event.event_type, set()).add(index)
    return interactions
