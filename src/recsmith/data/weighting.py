"""How an event becomes a weight: its type's weight times a half-life decay. Training and serving share it.

Training sums the weights of a (user, item) pair's events into the matrix; serving adds the weights of the
events a user sent since training to their training row in the same way, so a live ``dislike`` (a negative
weight) pushes down what the same event pushes down in training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400.0


def type_weights(event_types: Any, event_weights: Mapping[str, float] | None, n: int) -> np.ndarray:
    """``float64[n]``: each event's type weight (types not in ``event_weights`` weigh 1; None types too)."""
    if not event_weights or event_types is None:
        return np.ones(n, dtype=np.float64)
    mapped = pd.Series(np.asarray(event_types, dtype=object)).map(
        {str(key): float(value) for key, value in event_weights.items()})
    return mapped.fillna(1.0).to_numpy(dtype=np.float64)


def decay(stamps: np.ndarray, half_life_days: float | None, reference_time: float | None) -> np.ndarray | float:
    """The half-life factor of events at ``stamps`` (epoch seconds) seen from ``reference_time``: 1 for an event
    at or after it, 0.5 one half-life before it; 1 when there is no half-life or no reference.

    Training's reference is its newest event; serving passes the same (stored with the model), so an event
    sent after training weighs its full type weight.
    """
    if half_life_days is None or reference_time is None:
        return 1.0
    age_days = np.maximum(float(reference_time) - np.asarray(stamps, dtype=np.float64), 0.0) / SECONDS_PER_DAY
    return np.power(0.5, age_days / half_life_days)


def event_weights_of(event_types: Any, stamps: np.ndarray | None, *, event_weights: Mapping[str, float] | None,
                     half_life_days: float | None, reference_time: float | None, n: int) -> np.ndarray:
    """``float64[n]``: the weight of each event, type weight times decay (see :func:`type_weights`, :func:`decay`)."""
    weight = type_weights(event_types, event_weights, n)
    if half_life_days is not None and stamps is not None and reference_time is not None:
        weight = weight * decay(stamps, half_life_days, reference_time)
    return weight
