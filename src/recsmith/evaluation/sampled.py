"""Sampled-negative ranking, only to reproduce papers that report it (NCF, many sequential-model papers).

Each held-out (user, item) pair is one case: the item is ranked against ``n_negatives`` items the user never
interacted with (neither in train nor in test), drawn uniformly or in proportion to training popularity,
and the case scores ``hit_rate@k``, ``ndcg@k`` and ``mrr@k`` with its single relevant item, and ``auc``
(the share of its negatives ranked below it). Sampled metrics are not full-catalogue metrics and rank
recipes differently (Krichene and Rendle, "On Sampled Metrics for Item Recommendation", KDD 2020), so every
key this module returns starts with ``sampled_`` and the result says how it was made under ``"protocol"``.

Ties between the relevant item and its negatives (common for popularity scores) are averaged over: each
metric is its expected value under a uniformly random tie-break (for ``auc``, a tie counts one half), so a
constant scorer gets ``auc`` 0.5 and ``hit_rate@k`` ``k / (n_negatives + 1)``, whatever order the recipe
happens to return tied items in.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.metrics import canonical_metric, popularity_shares
from recsmith.recipes.base import Recipe, batch_size

SAMPLINGS = ("uniform", "popularity")
SAMPLED_METRICS = ("hit_rate", "ndcg", "mrr", "auc")
CASE_CHUNK = 16_384
"""Cases ranked per call of ``recipe.recommend`` (their candidate lists, ``int64[CASE_CHUNK, n + 1]``)."""


def _check_names(names: list[str] | tuple[str, ...], k: int | None) -> list[tuple[str, str, int]]:
    """``(output key, base, cut)`` for each name; ``auc`` has cut 0."""
    if isinstance(names, str):
        names = [names]
    if k is not None and (isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0):
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    allowed = "hit_rate@K, ndcg@K, mrr@K, auc"
    parsed = []
    for name in names:
        base, sep, cut = canonical_metric(str(name)).partition("@")
        if base == "auc" and not sep:
            parsed.append(("sampled_auc", "auc", 0))
            continue
        if base not in SAMPLED_METRICS or base == "auc":
            raise ConfigError(f"unknown sampled metric {name!r}; use one of {allowed}")
        if not sep:
            if k is None:
                raise ConfigError(f"sampled metric {name!r} needs a cut-off: write {name}@10 or pass k")
            cut = str(int(k))
        try:
            value = int(cut)
        except ValueError:
            raise ConfigError(f"sampled metric {name!r}: the cut-off after '@' must be an integer") from None
        if value <= 0:
            raise ConfigError(f"sampled metric {name!r}: k must be positive, got {value}")
        parsed.append((f"sampled_{base}@{value}", base, value))
    if not parsed:
        raise ConfigError(f"no metrics asked for; use some of {allowed}")
    return parsed


def sample_negatives(seen: sp.csr_matrix, users: np.ndarray, n_negatives: int, *,
                     weights: np.ndarray | None = None, seed: int | np.random.Generator = 0) -> np.ndarray:
    """For each case, ``n_negatives`` distinct items its user never interacted with.

    Sampling is without replacement, uniform or in proportion to ``weights`` (successive sampling, as
    ``numpy.random.Generator.choice(replace=False, p=...)``), done for a block of cases at once with the
    Gumbel-top-k trick: the ``n_negatives`` largest ``log(w_i) + Gumbel noise`` among the user's unseen items.

    Parameters
    ----------
    seen : scipy.sparse.csr_matrix
        Users × items; any stored entry is an item the user interacted with.
    users : numpy.ndarray
        ``int[n_cases]`` the user of each case (repeats allowed).
    n_negatives : int
        Negatives per case.
    weights : numpy.ndarray, optional
        ``float[n_items]`` non-negative sampling weights (items of weight 0 are never drawn); uniform if None.
    seed : int or numpy.random.Generator
        Seed (or generator) of the draw.

    Returns
    -------
    numpy.ndarray
        ``int32[n_cases, n_negatives]`` item indices, distinct within a row, in no particular order.

    Raises
    ------
    DataError
        If some user has fewer than ``n_negatives`` items to draw from, or ``weights`` is malformed.
    ConfigError
        If ``n_negatives`` is not a positive integer.
    """
    if isinstance(n_negatives, bool) or not isinstance(n_negatives, int | np.integer) or n_negatives <= 0:
        raise ConfigError(f"n_negatives must be a positive integer (e.g. 100), got {n_negatives!r}")
    n_negatives = int(n_negatives)
    seen = sp.csr_matrix(seen)
    n_users, n_items = seen.shape
    users = np.asarray(users, dtype=np.int64).ravel()
    if len(users) and (users.min() < 0 or users.max() >= n_users):
        raise DataError(f"case users must be in 0..{n_users - 1}")
    if weights is None:
        log_weights = np.zeros(n_items, dtype=np.float64)
    else:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (n_items,) or not np.isfinite(weights).all() or (weights < 0).any():
            raise DataError(f"sampling weights must be {n_items} finite non-negative numbers, one per item")
        with np.errstate(divide="ignore"):
            log_weights = np.log(weights)
    drawable = np.isfinite(log_weights)
    seen_bool = sp.csr_matrix((np.ones(seen.nnz, dtype=np.float64), seen.indices, seen.indptr), shape=seen.shape)
    available = int(drawable.sum()) - np.asarray(seen_bool @ drawable.astype(np.float64)).ravel().astype(np.int64)
    short = available[users] < n_negatives if len(users) else np.zeros(0, dtype=bool)
    if short.any():
        fewest = int(available[users].min())
        raise DataError(f"n_negatives={n_negatives} is more than some users can get: {int(short.sum())} cases have "
                        f"as few as {fewest} never-interacted items to sample from; use n_negatives <= {fewest}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    out = np.empty((len(users), n_negatives), dtype=np.int32)
    step = batch_size(n_items)
    for start in range(0, len(users), step):
        stop = min(start + step, len(users))
        keys = rng.gumbel(size=(stop - start, n_items)) + log_weights
        block = seen[users[start:stop]]
        rows = np.repeat(np.arange(stop - start), np.diff(block.indptr))
        keys[rows, block.indices] = -np.inf
        if n_negatives < n_items:
            keys = np.argpartition(-keys, n_negatives - 1, axis=1)[:, :n_negatives]
        else:
            keys = np.tile(np.arange(n_items), (stop - start, 1))
        out[start:stop] = keys
    return out


def _expected(lowest: np.ndarray, highest: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Mean of ``gains[r - 1]`` for ``r`` from ``lowest`` to ``highest`` (1-based ranks, both included)."""
    cumulative = np.concatenate([[0.0], np.cumsum(gains)])
    return (cumulative[highest] - cumulative[lowest - 1]) / (highest - lowest + 1)


def sampled_metrics(recipe: Recipe, train: Interactions, test: Interactions, names: list[str] | tuple[str, ...], *,
                    n_negatives: int = 100, sampling: str = "uniform", seed: int = 0, k: int | None = None
                    ) -> dict[str, float | int | str]:
    """Sampled-negative ranking metrics of a fitted recipe (for reproducing papers only).

    Parameters
    ----------
    recipe : Recipe
        Fitted on ``train``.
    train, test : Interactions
        A split sharing vocabularies; every stored test entry with a positive weight is one case.
    names : list of str
        Some of ``hit_rate@K``, ``ndcg@K``, ``mrr@K`` (bare names take ``k``) and ``auc``.
    n_negatives : int
        Negatives ranked against each held-out item.
    sampling : {"uniform", "popularity"}
        Draw negatives uniformly among the user's never-interacted items, or in proportion to their share
        of training users (items nobody trained on are then never drawn).
    seed : int
        Seed of the negative sampling; the same seed gives the same negatives and metrics.
    k : int, optional
        Cut-off for names given without one.

    Returns
    -------
    dict
        ``"sampled_<name>@K"`` and ``"sampled_auc"`` (means over cases), ``"cases"`` (held-out pairs ranked)
        and ``"protocol"`` (e.g. ``"sampled: 100 uniform negatives"``).

    Raises
    ------
    ConfigError
        On an unknown metric or sampling, a bad ``k`` or ``n_negatives``.
    DataError
        If train and test do not share a shape, the test holds no positive pairs, or some user has fewer
        than ``n_negatives`` never-interacted items to draw from.
    """
    parsed = _check_names(names, k)
    if sampling not in SAMPLINGS:
        raise ConfigError(f"unknown sampling {sampling!r}; use one of: {', '.join(SAMPLINGS)}")
    if isinstance(n_negatives, bool) or not isinstance(n_negatives, int | np.integer) or n_negatives <= 0:
        raise ConfigError(f"n_negatives must be a positive integer (e.g. 100), got {n_negatives!r}")
    n_negatives = int(n_negatives)
    if train.matrix.shape != test.matrix.shape:
        raise DataError(f"train {train.matrix.shape} and test {test.matrix.shape} must share the vocabularies; "
                        "split one Interactions with recsmith.evaluation.split")
    held_out = test.matrix.tocoo()
    positive = held_out.data > 0
    users = held_out.row[positive].astype(np.int64)
    items = held_out.col[positive].astype(np.int64)
    if len(users) == 0:
        raise DataError("the test split holds no positive pairs to rank")
    seen = (abs(train.matrix) + abs(test.matrix)).tocsr()
    seen.eliminate_zeros()
    weights = popularity_shares(train.matrix) if sampling == "popularity" else None
    negatives = sample_negatives(seen, users, n_negatives, weights=weights, seed=seed)

    width = n_negatives + 1
    greater = np.empty(len(users), dtype=np.int64)
    ties = np.empty(len(users), dtype=np.int64)
    for start in range(0, len(users), CASE_CHUNK):
        stop = min(start + CASE_CHUNK, len(users))
        candidates = np.concatenate([items[start:stop, None], negatives[start:stop]], axis=1)
        recs = recipe.recommend(users[start:stop], width, exclude_seen=False, candidates=candidates)
        scores = recs.scores.astype(np.float64)
        is_positive = recs.ids == items[start:stop, None]
        found = is_positive.any(axis=1)
        # candidates the recipe could not score (-inf, NaN) come back as -1 padding: they rank last
        positive_score = np.where(found, np.where(is_positive, scores, 0.0).sum(axis=1), -np.inf)[:, None]
        negative = (recs.ids >= 0) & ~is_positive
        missing = n_negatives - negative.sum(axis=1)
        greater[start:stop] = (negative & (scores > positive_score)).sum(axis=1)
        ties[start:stop] = (negative & (scores == positive_score)).sum(axis=1) + np.where(found, 0, missing)
    lowest = greater + 1
    highest = greater + ties + 1
    out: dict[str, float | int | str] = {}
    ranks = np.arange(1, width + 1, dtype=np.float64)
    for key, base, cut in parsed:
        if base == "auc":
            value = (n_negatives - greater - ties + 0.5 * ties) / n_negatives
        else:
            within = ranks <= cut
            if base == "hit_rate":
                gains = within.astype(np.float64)
            elif base == "ndcg":
                gains = np.where(within, 1.0 / np.log2(ranks + 1.0), 0.0)
            else:  # mrr
                gains = np.where(within, 1.0 / ranks, 0.0)
            value = _expected(lowest, highest, gains)
        out[key] = float(np.mean(value))
    out["cases"] = int(len(users))
    out["protocol"] = f"sampled: {n_negatives} {sampling} negatives"
    return out
