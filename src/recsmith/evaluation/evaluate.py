"""Fit recipes on a train split and measure them on the test split."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from recsmith.data.interactions import Interactions
from recsmith.errors import DataError
from recsmith.evaluation.metrics import compute_metrics, full_names, parse_metric
from recsmith.recipes.base import Recipe

DEFAULT_METRICS = ("precision@10", "recall@10", "ndcg@10", "coverage@10")


def evaluate_recipes(
    recipes: Mapping[str, Recipe],
    train: Interactions,
    test: Interactions,
    *,
    k: int = 10,
    metrics: list[str] | tuple[str, ...] | None = None,
    progress: Callable[[str, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Fit each recipe on ``train``, rank the full catalogue for every test user, measure.

    Parameters
    ----------
    recipes : mapping of name to Recipe
        Unfitted recipes (they are fitted in place).
    train, test : Interactions
        A split sharing vocabularies.
    k : int
        Cut-off of the default metrics and of metric names given without one.
    metrics : list of str, optional
        Metric names like ``"ndcg@10"``, or bare names (``"ndcg"``) cut at ``k``; default: precision,
        recall, ndcg, coverage at ``k``.
    progress : callable, optional
        Called with (recipe name, stage) for stage "fit" and "rank".

    Returns
    -------
    list of dict
        One row per recipe: ``recipe``, each metric, ``fit_seconds``, ``rank_seconds``, ``users``.
    """
    names = full_names(list(metrics), k) if metrics else full_names([m.split("@")[0] for m in DEFAULT_METRICS], k)
    depth = max(parse_metric(name)[1] for name in names)
    if train.matrix.shape != test.matrix.shape:
        raise DataError(f"train {train.matrix.shape} and test {test.matrix.shape} must share the vocabularies; "
                        "split one Interactions with recsmith.evaluation.split")
    users = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
    if len(users) == 0:
        raise DataError("the test split holds no users to evaluate")
    truth = test.matrix[users]
    rows = []
    for name, recipe in recipes.items():
        if progress:
            progress(name, "fit")
        started = time.perf_counter()
        recipe.fit(train)
        fit_seconds = time.perf_counter() - started
        if progress:
            progress(name, "rank")
        started = time.perf_counter()
        recs = recipe.recommend(users, depth, exclude_seen=True)
        rank_seconds = time.perf_counter() - started
        row: dict[str, Any] = {"recipe": name}
        row.update(compute_metrics(recs.ids, truth, names, n_items=train.n_items))
        row.update({"fit_seconds": round(fit_seconds, 4), "rank_seconds": round(rank_seconds, 4),
                    "users": int(len(users))})
        rows.append(row)
    return rows
