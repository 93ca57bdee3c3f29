"""Fit recipes on a train split and measure them on the test split."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from recsmith.data.interactions import Interactions
from recsmith.errors import DataError
from recsmith.evaluation.metrics import (
    compute_metrics,
    full_names,
    parse_metric,
    per_user_metrics,
    popularity_shares,
)
from recsmith.recipes.base import Recipe
from recsmith.recipes.options import FitOptions

DEFAULT_METRICS = ("precision@10", "recall@10", "ndcg@10", "coverage@10")


def evaluate_recipes(
    recipes: Mapping[str, Recipe],
    train: Interactions,
    test: Interactions,
    *,
    k: int = 10,
    metrics: list[str] | tuple[str, ...] | None = None,
    progress: Callable[[str, str], None] | None = None,
    test_input: Interactions | None = None,
    depth: int | None = None,
    details: bool = False,
    fit_options: FitOptions | None = None,
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

    Returns
    -------
    list of dict
        One row per recipe: ``recipe``, each metric, ``fit_seconds``, ``rank_seconds``, ``users``.
    """
    names = full_names(list(metrics), k) if metrics else full_names([m.split("@")[0] for m in DEFAULT_METRICS], k)
    depth = max([parse_metric(name)[1] for name in names] + [depth or 0])
    for part, data in (("test", test), ("test_input", test_input)):
        if data is not None and train.matrix.shape != data.matrix.shape:
            raise DataError(f"train {train.matrix.shape} and {part} {data.matrix.shape} must share the vocabularies; "
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
        recipe.fit(train, fit_options)
        fit_seconds = time.perf_counter() - started
        if progress:
            progress(name, "rank")
        started = time.perf_counter()
        if test_input is None:
            recs = recipe.recommend(users, depth, exclude_seen=True)
        else:
            recs = recipe.recommend_from_history(test_input.matrix[users], depth, exclude_seen=True)
        rank_seconds = time.perf_counter() - started
        row: dict[str, Any] = {"recipe": name}
        row.update(compute_metrics(recs.ids, truth, names, n_items=train.n_items, item_popularity=popularity))
        row.update({"fit_seconds": round(fit_seconds, 4), "rank_seconds": round(rank_seconds, 4),
                    "users": int(len(users))})
        if details:
            row.update({"per_user": per_user_metrics(recs.ids, truth, names, item_popularity=popularity),
                        "rec_ids": recs.ids,
                        "evaluated": users})
        rows.append(row)
    return rows
