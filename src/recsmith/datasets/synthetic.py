"""Reproducible synthetic interaction logs with power-law popularity, for scale tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsmith.errors import ConfigError

YEAR_SECONDS = 365 * 86_400


def synthetic_frame(
    n_users: int = 100_000,
    n_items: int = 20_000,
    n_interactions: int = 5_000_000,
    *,
    item_exponent: float = 1.0,
    user_sigma: float = 1.0,
    purchase_share: float = 0.2,
    seed: int = 0,
    start: int = 1_700_000_000,
) -> pd.DataFrame:
    """A synthetic interactions log in the import's canonical columns.

    Item popularity follows a power law (the item of popularity rank ``r`` is drawn with probability
    proportional to ``r^-item_exponent``); user activity is log-normal; each user leans toward one of 20
    item "tastes" so that collaborative filtering has structure to find. The same arguments give the same
    frame.

    Parameters
    ----------
    n_users, n_items, n_interactions : int
        Sizes.
    item_exponent : float
        Power-law exponent of item popularity.
    user_sigma : float
        Spread of the log-normal user activity.
    purchase_share : float
        Share of events typed ``purchase``; the rest are ``view``.
    seed : int
        Random seed.
    start : int
        Epoch second of the first event; events span one year.

    Returns
    -------
    pandas.DataFrame
        ``USER_ID``, ``ITEM_ID`` (str), ``TIMESTAMP`` (int64), ``EVENT_TYPE`` (str), ``EVENT_VALUE`` (NaN).
    """
    if min(n_users, n_items, n_interactions) <= 0:
        raise ConfigError("users, items and interactions must all be positive")
    if not 0 <= purchase_share <= 1:
        raise ConfigError(f"purchase_share must be between 0 and 1, got {purchase_share}")
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, user_sigma, n_users)
    users = rng.choice(n_users, size=n_interactions, p=activity / activity.sum())
    tastes = 20
    user_taste = rng.integers(0, tastes, n_users)
    item_weight = np.arange(1, n_items + 1, dtype=np.float64) ** -item_exponent
    item_taste = rng.permutation(n_items) % tastes
    # half of the events follow global popularity, half stay within the user's taste
    global_items = rng.choice(n_items, size=n_interactions, p=item_weight / item_weight.sum())
    order = np.argsort(item_taste, kind="stable")
    bounds = np.searchsorted(item_taste[order], np.arange(tastes + 1))
    taste_of_event = user_taste[users]
    position = rng.random(n_interactions)
    lo, hi = bounds[taste_of_event], bounds[taste_of_event + 1]
    local_items = order[lo + np.minimum((position**2 * (hi - lo)).astype(np.int64), hi - lo - 1)]
    items = np.where(rng.random(n_interactions) < 0.5, global_items, local_items)
    stamps = start + np.sort(rng.integers(0, YEAR_SECONDS, n_interactions))
    kinds = np.where(rng.random(n_interactions) < purchase_share, "purchase", "view")
    return pd.DataFrame({
        "USER_ID": pd.Series(users).map("u{}".format), "ITEM_ID": pd.Series(items).map("i{}".format),
        "TIMESTAMP": stamps.astype(np.int64), "EVENT_TYPE": kinds, "EVENT_VALUE": np.nan,
    })
