"""Recommendations for one user in raw ids, with the popular fallback for users the model never saw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from recsmith.errors import ConfigError, FilterError
from recsmith.store.artifacts import TrainedModel

if TYPE_CHECKING:
    from recsmith.serving.filters import ItemCatalog


@dataclass(frozen=True)
class RecommendedItem:
    """One recommended item.

    Attributes
    ----------
    item_id : str
        Raw item id.
    score : float
        The recipe's score (for ``reason="popular"``: the item's popularity).
    reason : str
        ``"personalized"`` (the model knows the user), ``"history"`` (scored from the user's stored
        history, a user who arrived after training) or ``"popular"`` (the fallback).
    """

    item_id: str
    score: float
    reason: str


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
            out.append(RecommendedItem(str(model.items.raw(index)), float(model.popularity[index]), "popular"))
            if len(out) >= k:
                break
    return out


def _distinct(indices: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` by sorting: numpy's hash-based unique is slower on short arrays)."""
    ordered = np.sort(np.asarray(indices, dtype=np.int64))
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))] if len(ordered) else ordered


def recommend_for_user(
    model: TrainedModel, user_id: str | None, k: int = 10, *, history: Sequence[str] = (), exclude_seen: bool = True,
    allowed: np.ndarray | None = None,
) -> list[RecommendedItem]:
    """Top ``k`` items for a raw user id.

    Parameters
    ----------
    model : TrainedModel
        The trained model.
    user_id : str or None
        Raw user id; None for an anonymous visitor (recommended from ``history`` alone).
    k : int
        How many items.
    history : sequence of str
        The user's item ids from the store (all of them, or those since training): users the model never
        saw are scored from them (fold-in); for a known user, items not in their training row are added to
        it and the scores recomputed from the whole (fold-in); all are excluded with ``exclude_seen``.
    exclude_seen : bool
        Leave out items the user interacted with.
    allowed : numpy.ndarray, optional
        ``bool`` per item of the model (e.g. a compiled filter, :func:`recsmith.serving.filters.compile_filter`
        on an ``ItemCatalog`` of ``model.items``): only these may be recommended, popular padding included.

    Returns
    -------
    list of RecommendedItem
        At most ``k`` items; padded with popular items (that pass ``allowed``) when the model has fewer to
        offer; fewer than ``k`` only when fewer items pass.
    """
    if k <= 0:
        raise ConfigError(f"the number of results must be positive, got {k}")
    if allowed is not None:
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape != (len(model.items),):
            raise ConfigError(f"the allowed-items mask has shape {allowed.shape}; the model has {len(model.items)} "
                              "items (build the filter's ItemCatalog on model.items)")
    past = model.items.indices(list(history), missing="ignore")
    past = past[past >= 0]
    known_user = user_id is not None and user_id in model.users
    live_row = None
    if known_user:  # what the user did before training counts as seen too
        live_row = live_history_row(model, user_id, past)
        train = model.recipe.train_matrix_
        row = model.users.index(user_id)
        past = np.concatenate([past, train.indices[train.indptr[row]:train.indptr[row + 1]]])
    seen = _distinct(past) if exclude_seen else np.empty(0, dtype=np.int64)
    if allowed is not None or len(seen):  # the recipe leaves out its training row; events stored since go too
        refused = np.zeros(len(model.items), dtype=bool) if allowed is None else ~allowed
        refused[seen] = True
        banned = np.flatnonzero(refused)
    else:
        banned = None
    items: list[RecommendedItem] = []
    if live_row is not None:
        rec = model.recipe.recommend_from_history(live_row, k, exclude_seen=exclude_seen, exclude=banned)
        reason = "personalized"
    elif known_user:
        rec = model.recipe.recommend(
            np.array([model.users.index(user_id)], dtype=np.int32), k, exclude_seen=exclude_seen, exclude=banned
        )
        reason = "personalized"
    elif len(past):
        rec = model.recipe.recommend_from_history([_distinct(past).astype(np.int32)], k, exclude_seen=exclude_seen,
                                                  exclude=banned)
        reason = "history"
    else:
        rec = None
        reason = "popular"
    if rec is not None:
        ids, scores = rec.ids[0], rec.scores[0]
        keep = (ids >= 0) & np.isfinite(scores)
        raw = model.items.ids
        items = [RecommendedItem(str(raw[index]), score, reason)
                 for index, score in zip(ids[keep].tolist(), scores[keep].tolist(), strict=True)]
    if len(items) < k:
        taken = set(seen.tolist()) | {model.items.index(item.item_id) for item in items}
        items.extend(popular_items(model, k - len(items), taken, allowed))
    return items[:k]


def live_history_row(model: TrainedModel, user_id: str, new_items: np.ndarray) -> sp.csr_matrix | None:
    """A known user's training row with the items of ``new_items`` (dense indices) it lacks added at weight 1:
    the whole live history, for fold-in scoring; None when nothing is new."""
    train = model.recipe.train_matrix_
    row = model.users.index(user_id)
    new = np.setdiff1d(new_items, train.indices[train.indptr[row]:train.indptr[row + 1]])
    if not len(new):
        return None
    live = train[row:row + 1].tolil()
    live[0, new] = 1.0
    return live.tocsr()


def filter_mask(model: TrainedModel, expression: str, catalog: ItemCatalog, *,
                user_metadata: Mapping[str, Any] | None = None, events: Sequence[tuple[str, str | None]] = (),
                values: Mapping[str, Any] | None = None) -> np.ndarray:
    """The items a filter expression lets through for one user, as a mask over ``model.items``.

    Parameters
    ----------
    model : TrainedModel
        Whose items are filtered.
    expression : str
        A filter in Personalize's grammar (see :mod:`recsmith.serving.filters`).
    catalog : ItemCatalog
        The items' metadata indexed on ``model.items`` (``ItemCatalog(model.items, metadata)``); build it
        once per model, not per request.
    user_metadata : mapping, optional
        The user's metadata, for ``IF CurrentUser.F ...``.
    events : sequence of (item id, event type)
        The user's interactions, for ``Interactions.EVENT_TYPE``; items the model does not know are ignored.
    values : mapping, optional
        ``$PARAM`` values.

    Raises
    ------
    FilterError
        On a malformed expression, a missing INCLUDE parameter, an unknown field, or a catalogue of other items.
    """
    from recsmith.serving.filters import compile_filter

    if len(catalog) != len(model.items):
        raise FilterError(f"the item catalogue has {len(catalog)} items, the model {len(model.items)}; build it as "
                          "ItemCatalog(model.items, metadata)")
    return compile_filter(expression, catalog, values=dict(values or {}), user=dict(user_metadata or {}),
                          interactions=items_by_event_type(model, events))


def items_by_event_type(model: TrainedModel, events: Sequence[tuple[str, str | None]]) -> dict[str, set[int]]:
    """A user's ``(item id, event type)`` pairs as event type -> dense item indices of the model (what
    ``Interactions.EVENT_TYPE`` filters read); items the model does not know, and untyped events, are left out."""
    indices = model.items.indices([item_id for item_id, _ in events], missing="ignore")
    interactions: dict[str, set[int]] = {}
    for index, (_, event_type) in zip(indices.tolist(), events, strict=True):
        if index >= 0 and event_type is not None:
            interactions.setdefault(event_type, set()).add(index)
    return interactions
