"""Fit recipes on a train split and measure them on the test split."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from recsmith.data.interactions import Interactions
from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.metrics import (
    compute_metrics,
    full_names,
    parse_metric,
    per_user_metrics,
    popularity_shares,
)
from recsmith.recipes.base import Recipe, Recommendations, batch_size, top_k
from recsmith.recipes.options import FitOptions

DEFAULT_METRICS = ("precision@10", "recall@10", "ndcg@10", "coverage@10")
COLD_ITEMS_METRICS = ("ndcg@10", "recall@20")
"""The default metrics of the ``cold-items`` protocol."""


def evaluate_recipes(
    recipes: Mapping[str, Recipe],
    train: Interactions | TrainingData,
    test: Interactions,
    *,
    k: int = 10,
    metrics: list[str] | tuple[str, ...] | None = None,
    progress: Callable[[str, str], None] | None = None,
    test_input: Interactions | None = None,
    depth: int | None = None,
    details: bool = False,
    fit_options: FitOptions | None = None,
    cold_items: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Fit each recipe on ``train``, rank the full catalogue for every test user, measure.

    Parameters
    ----------
    recipes : mapping of name to Recipe
        Unfitted recipes (they are fitted in place).
    train : Interactions or TrainingData
        What the recipes fit on: a split's train matrix, or it with the group's feature tables
        (``TrainingData.with_interactions(split.train)``), which feature-aware recipes read.
    test : Interactions
        The held-out pairs, sharing the vocabularies of ``train``.
    k : int
        Cut-off of the default metrics and of metric names given without one.
    metrics : list of str, optional
        Metric names like ``"ndcg@10"``, or bare names (``"ndcg"``) cut at ``k``; default: precision,
        recall, ndcg, coverage at ``k``.
    progress : callable, optional
        Called with (recipe name, stage) for stage "fit" and "rank".
    test_input : Interactions, optional
        For held-out users (the ``users`` protocol): their input histories, folded in with
        ``recommend_from_history`` instead of looking the users up in the model.
    depth : int, optional
        How many items to rank per user (default: the largest metric cut-off); at least that.
    details : bool
        Also keep, under ``"per_user"``, each user's value of every metric (``float64[n]``, users in
        ``evaluated`` order), under ``"rec_ids"`` the ranked ids (``int32[n, depth]``), and under
        ``"evaluated"`` the dense user indices; for confidence intervals, paired tests and reports.
    fit_options : FitOptions, optional
        How each recipe is fitted (device, threads, progress callbacks); default ``FitOptions()``.
    cold_items : array of int, optional
        For the ``cold-items`` protocol: the held-out items (their training columns empty). Each test user's
        ranking is then of these items only, all of them, scored as items the recipe never saw:
        ``recipe.score_new_items(train rows, users, item_features.take(cold_items))``, what serving calls for
        items put after training. ``train`` must then be :class:`TrainingData` with item features, and every
        recipe must have ``tags.cold_start_items``; coverage is of the held-out items.

    Returns
    -------
    list of dict
        One row per recipe: ``recipe``, each metric, ``fit_seconds``, ``rank_seconds``, ``users``.
    """
    names = full_names(list(metrics), k) if metrics else full_names([m.split("@")[0] for m in DEFAULT_METRICS], k)
    depth = max([parse_metric(name)[1] for name in names] + [depth or 0])
    data = train if isinstance(train, TrainingData) else None
    train = train.interactions if isinstance(train, TrainingData) else train
    cold_table = None
    if cold_items is not None:
        cold_items = np.asarray(cold_items, dtype=np.int64)
        check_cold_recipes(recipes)
        if data is None or not len(data.item_features):
            raise DataError("the cold-items protocol ranks the held-out items from their features, and the items "
                            "have none; import an items dataset with metadata (e.g. GENRES) into the dataset group")
        cold_table = data.item_features.take(cold_items)
    for part, data_part in (("test", test), ("test_input", test_input)):
        if data_part is not None and train.matrix.shape != data_part.matrix.shape:
            raise DataError(f"train {train.matrix.shape} and {part} {data_part.matrix.shape} must share the "
                            "vocabularies; "
                            "split one Interactions with recsmith.evaluation.split")
    users = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
    if len(users) == 0:
        raise DataError("the test split holds no users to evaluate")
    truth = test.matrix[users]
    popularity = popularity_shares(train.matrix)  # for novelty
    rows = []
    for name, recipe in recipes.items():
        if progress:
            progress(name, "fit")
        started = time.perf_counter()
        recipe.fit(data if data is not None else train, fit_options)
        fit_seconds = time.perf_counter() - started
        if progress:
            progress(name, "rank")
        started = time.perf_counter()
        if cold_table is not None and cold_items is not None:
            recs = rank_new_items(recipe, train.matrix, users, cold_items, cold_table, depth)
        elif test_input is None:
            recs = recipe.recommend(users, depth, exclude_seen=True)
        else:
            recs = recipe.recommend_from_history(test_input.matrix[users], depth, exclude_seen=True)
        rank_seconds = time.perf_counter() - started
        row: dict[str, Any] = {"recipe": name}
        row.update(compute_metrics(recs.ids, truth, names, item_popularity=popularity,
                                   n_items=train.n_items if cold_items is None else len(cold_items)))
        row.update({"fit_seconds": round(fit_seconds, 4), "rank_seconds": round(rank_seconds, 4),
                    "users": int(len(users))})
        if details:
            row.update({"per_user": per_user_metrics(recs.ids, truth, names, item_popularity=popularity),
                        "rec_ids": recs.ids,
                        "evaluated": users})
        rows.append(row)
    return rows


def check_cold_recipes(recipes: Mapping[str, Recipe]) -> None:
    """Refuse recipes that cannot score items they never saw (``tags.cold_start_items`` false): on the
    ``cold-items`` protocol their results would mean nothing.

    Raises
    ------
    ConfigError
        Naming the refused recipes and the registered ones that can.
    """
    refused = [label for label, recipe in recipes.items() if not recipe.tags.cold_start_items]
    if refused:
        raise ConfigError(f"the cold-items protocol ranks items the recipes never saw, and {', '.join(refused)} "
                          f"cannot score those (tags.cold_start_items is false); recipes that can: "
                          f"{', '.join(cold_start_recipes())}")


def cold_start_recipes() -> list[str]:
    """The registered recipes whose tags have ``cold_start_items`` (those whose module imports here)."""
    from recsmith.recipes.registry import available, recipe_class

    names = []
    for name in available():
        try:
            if recipe_class(name).tags.cold_start_items:
                names.append(name)
        except (ConfigError, ImportError):  # a recipe whose dependencies are not installed
            continue
    return names


def rank_new_items(recipe: Recipe, histories: Any, users: np.ndarray, items: np.ndarray, features: Any,
                   k: int) -> Recommendations:
    """Rank ``items`` (dense indices) for ``users`` as items the recipe never saw: their scores from
    ``recipe.score_new_items(histories[users], users, features)`` (``features``: one row per item of ``items``),
    top ``k`` in the ids of ``items``, padded with -1 / ``-inf``.
    """
    ids = np.full((len(users), k), -1, dtype=np.int32)
    scores = np.full((len(users), k), -np.inf, dtype=np.float32)
    step = batch_size(len(items))
    for start in range(0, len(users), step):
        block = users[start:start + step]
        raw = recipe.score_new_items(histories[block], block, features)
        result = top_k(np.asarray(raw, dtype=np.float32), k)
        ids[start:start + step] = np.where(result.ids >= 0, items[np.maximum(result.ids, 0)], -1)
        scores[start:start + step] = result.scores
    return Recommendations(ids, scores)
