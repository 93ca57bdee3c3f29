"""Splitting interactions into train and test, seeded."""

from __future__ import annotations

import logging

import numpy as np

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def split_random(
    interactions: Interactions, test_fraction: float = 0.2, seed: int = 42, min_interactions: int = 2
) -> tuple[Interactions, Interactions]:
    """Hold out a random fraction of each user's positive interactions (the ``random`` protocol).

    Parameters
    ----------
    interactions : Interactions
        All data.
    test_fraction : float
        Share of each user's pairs held out (rounded; at least one pair is always left in train).
    seed : int
        Seed of the shuffle; the same seed gives the same split.
    min_interactions : int
        Users with fewer positive pairs keep them all in train (and are not evaluated); how many is logged.

    Returns
    -------
    (Interactions, Interactions)
        Train and test, sharing the vocabularies.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    matrix = interactions.matrix
    if matrix.nnz == 0:
        raise DataError("cannot split: there are no interactions")
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    positive = matrix.data > 0
    shuffle = rng.random(matrix.nnz)
    shuffle[~positive] = 2.0  # non-positive pairs sort last and are never held out
    order = np.lexsort((shuffle, rows))
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[order] = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], np.diff(matrix.indptr))
    n_positive = np.bincount(rows[positive], minlength=matrix.shape[0])
    n_test = np.minimum(np.floor(n_positive * test_fraction + 0.5).astype(np.int64), n_positive - 1)
    n_test[n_positive < min_interactions] = 0
    test_mask = (rank < n_test[rows]) & positive
    skipped = int(((n_positive > 0) & (n_test == 0)).sum())
    if skipped:
        logger.info("%d users have too few interactions to hold any out; they stay in train only", skipped)
    if not test_mask.any():
        raise DataError(f"the split left no test interactions (test_fraction={test_fraction}); "
                        "the dataset is too small for this protocol")
    return interactions.with_entries(~test_mask), interactions.with_entries(test_mask)
