"""Recommendations for one user in raw ids, with the popular fallback for users the model never saw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsmith.errors import ConfigError
from recsmith.store.artifacts import TrainedModel


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


def _popular(model: TrainedModel, k: int, skip: set[int]) -> list[RecommendedItem]:
    order = np.argsort(-model.popularity, kind="stable")
    out: list[RecommendedItem] = []
    for index in order:
        if len(out) >= k:
            break
        if int(index) in skip:
            continue
        out.append(RecommendedItem(str(model.items.raw(int(index))), float(model.popularity[index]), "popular"))
    return out


def recommend_for_user(
    model: TrainedModel, user_id: str, k: int = 10, *, history: Sequence[str] = (), exclude_seen: bool = True
) -> list[RecommendedItem]:
    """Top ``k`` items for a raw user id.

    Parameters
    ----------
    model : TrainedModel
        The trained model.
    user_id : str
        Raw user id.
    k : int
        How many items.
    history : sequence of str
        The user's item ids from the store; used for users the model never saw (fold-in) and to
        exclude what they already interacted with.
    exclude_seen : bool
        Leave out items the user interacted with.

    Returns
    -------
    list of RecommendedItem
        At most ``k`` items; padded with popular items when the model has fewer to offer.
    """
    if k <= 0:
        raise ConfigError(f"the number of results must be positive, got {k}")
    known_history = [int(i) for i in model.items.indices(list(history), missing="ignore") if i >= 0]
    seen = set(known_history) if exclude_seen else set()
    items: list[RecommendedItem] = []
    if user_id in model.users:
        rec = model.recipe.recommend(
            np.array([model.users.index(user_id)], dtype=np.int32), k, exclude_seen=exclude_seen
        )
        reason = "personalized"
    elif known_history:
        rec = model.recipe.recommend_from_history([np.array(known_history, dtype=np.int32)], k,
                                                  exclude_seen=exclude_seen)
        reason = "history"
    else:
        rec = None
        reason = "popular"
    if rec is not None:
        for index, score in zip(rec.ids[0], rec.scores[0], strict=True):
            if index < 0 or not np.isfinite(score) or int(index) in seen:
                continue
            items.append(RecommendedItem(str(model.items.raw(int(index))), float(score), reason))
    if len(items) < k:
        taken = seen | {model.items.index(item.item_id) for item in items}
        items.extend(_popular(model, k - len(items), taken))
    return items[:k]
