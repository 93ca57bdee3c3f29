"""K-fold cross-validation of rating recipes, with folds identical to Surprise's ``KFold``.

Surprise's protocol (``KFold(n_splits=5, random_state=0, shuffle=True)``) shuffles the indices of the raw
ratings, in the order they were read, with ``numpy.random.RandomState(random_state)`` and cuts them into
``n_splits`` consecutive folds, the first ``n % n_splits`` of them one rating longer. :func:`kfold_indices`
does exactly that, so that our recipes and Surprise's algorithms can be measured on the very same folds
(``benchmarks/reproduce_surprise.py`` checks it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.metrics import rating_metrics
from recsmith.recipes.base import Recipe


def kfold_indices(n_rows: int, n_splits: int = 5, *, shuffle: bool = True, seed: int = 0) -> list[np.ndarray]:
    """The test row indices of each fold, as Surprise's ``KFold(n_splits, random_state=seed, shuffle)``.

    Parameters
    ----------
    n_rows : int
        Number of ratings, in the order they were read.
    n_splits : int
        Number of folds, 2..n_rows.
    shuffle : bool
        Shuffle before cutting (Surprise's default).
    seed : int
        Seed of the legacy ``numpy.random.RandomState`` Surprise uses (deliberately not a ``Generator``:
        the point is to draw the same permutation).

    Returns
    -------
    list of numpy.ndarray
        ``n_splits`` disjoint ``int64`` arrays covering ``0..n_rows-1``.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer) or not 2 <= n_splits <= n_rows:
        raise ConfigError(f"folds must be an integer from 2 to the number of ratings ({n_rows}), got {n_splits!r}")
    indices = np.arange(n_rows)
    if shuffle:
        np.random.RandomState(seed).shuffle(indices)  # Surprise's legacy RNG, on purpose
    folds, stop = [], 0
    for fold in range(n_splits):
        start = stop
        stop += n_rows // n_splits + (1 if fold < n_rows % n_splits else 0)
        folds.append(indices[start:stop])
    return folds


def check_cross_validation(recipes: Mapping[str, Recipe], n_splits: int) -> None:
    """Check what a cross-validation can check without data, before any fold is fitted.

    Parameters
    ----------
    recipes : mapping of label to Recipe
        The contenders; every one must predict ratings (``tags.predicts_ratings``: ``svd``, ``svdpp``).
    n_splits : int
        Number of folds, an integer of at least 2 (its upper bound, the number of ratings, is checked by
        :func:`kfold_indices`).

    Raises
    ------
    ConfigError
        Naming every recipe that does not predict ratings, or the bad number of folds.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer) or n_splits < 2:
        raise ConfigError(f"folds must be an integer of at least 2, got {n_splits!r}")
    ranking = [label if label == recipe.name else f"{label} ({recipe.name})" for label, recipe in recipes.items()
               if not recipe.tags.predicts_ratings]
    if ranking:
        raise ConfigError(f"cross-validating ratings needs recipes that predict them (tags.predicts_ratings); "
                          f"{', '.join(ranking)} {'does' if len(ranking) == 1 else 'do'} not: use svd or svdpp, "
                          "or a ranking protocol for the others")


def cross_validate_ratings(
    recipe: Recipe,
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    *,
    n_splits: int = 5,
    seed: int = 0,
    shuffle: bool = True,
    rating_scale: tuple[float, float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Fit a rating recipe on each fold's training ratings and measure RMSE and MAE on its test ratings.

    Parameters
    ----------
    recipe : Recipe
        A recipe that predicts ratings with ``score(users, items)`` (``svd``, ``svdpp``); it is cloned per
        fold, so it stays unfitted.
    users, items, ratings : numpy.ndarray
        One raw user id, item id and rating per row, in the order read (the order the folds are drawn in).
    n_splits, seed, shuffle
        As :func:`kfold_indices`.
    rating_scale : (float, float), optional
        Predictions are clipped to it, as Surprise clips; default: the ratings' min and max.
    progress : callable, optional
        Called with each fold's number after it is measured.

    Returns
    -------
    dict
        ``rmse``, ``mae`` (means over folds), ``rmse_std``, ``mae_std``, ``fit_seconds`` (mean) and
        ``folds`` (one dict per fold).
    """
    check_cross_validation({recipe.name: recipe}, n_splits)
    users = np.asarray(users, dtype=object)
    items = np.asarray(items, dtype=object)
    ratings = np.asarray(ratings, dtype=np.float64)
    if not len(users) == len(items) == len(ratings):
        raise DataError(f"users, items and ratings need one value per rating: {len(users)}, {len(items)}, "
                        f"{len(ratings)}")
    if not np.isfinite(ratings).all():
        raise DataError("the ratings hold a missing or infinite value; cross-validation needs every rating")
    low, high = rating_scale if rating_scale is not None else (float(ratings.min()), float(ratings.max()))
    folds = []
    for number, test in enumerate(kfold_indices(len(ratings), n_splits, shuffle=shuffle, seed=seed), start=1):
        train = np.ones(len(ratings), dtype=bool)
        train[test] = False
        data = Interactions.from_arrays(users[train], items[train], event_values=ratings[train])
        model = recipe.clone()
        started = time.perf_counter()
        model.fit(data)
        fit_seconds = time.perf_counter() - started
        predicted = model.score(data.user_vocab.indices(users[test], missing="ignore"),
                                data.item_vocab.indices(items[test], missing="ignore"))
        folds.append({"fold": number, **rating_metrics(np.clip(predicted, low, high), ratings[test]),
                      "fit_seconds": round(fit_seconds, 4), "test_ratings": int(len(test))})
        if progress:
            progress(number)
    out: dict[str, Any] = {}
    for name in ("rmse", "mae"):
        values = np.array([fold[name] for fold in folds])
        out[name], out[f"{name}_std"] = float(values.mean()), float(values.std())
    out["fit_seconds"] = float(np.mean([fold["fit_seconds"] for fold in folds]))
    out["folds"] = folds
    return out
