"""Splitting interactions into train and test, seeded: the evaluation protocols.

Five protocols, named as in DESIGN.md:

- ``random``: each user's pairs, a random fraction held out (:func:`split_random`);
- ``ratings-per-user``: each user's pairs, a random ``n`` held out (:func:`split_ratings_per_user`; with
  ``n=10``, ml-100k's ``ua``/``ub`` protocol, whose ``ua.test`` holds exactly 10 ratings per user);
- ``leave-last``: each user's last ``n`` pairs by time held out (:func:`split_leave_last`);
- ``temporal``: one global time cut, everything after it held out (:func:`split_temporal`);
- ``users``: held-out users, absent from training, each with an input part of their history (folded in at
  ranking time) and a target part (:func:`split_users`; Liang et al. 2018, the protocol of the EASE,
  Mult-VAE and iALS papers);
- ``cold-items``: held-out items, with all of their interactions: training sees their metadata only (their
  columns stay in the vocabulary, empty), and each test user's interactions with them are ranked among the
  held-out items alone (:func:`split_cold_items`; Personalize's cold-start evaluation, the protocol of the
  two-tower and DropoutNet papers).

:func:`make_split` picks one by name, validates its options and returns a :class:`Split` that also says
how many users were left out of the evaluation and why; :meth:`Split.validation` carves a validation split
for tuning out of the training part only, so the test part is never touched. Only positive pairs are ever
held out; negative feedback stays in training.

Protocol names are spelt with a hyphen, like recipe names (``leave-last``, ``item-knn``) and the command line's
options; ``leave_last`` is accepted everywhere a protocol is taken (:func:`protocol_name`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError, SplitTooSmallError
from recsmith.recipes.registry import canonical_name

logger = logging.getLogger(__name__)

PROTOCOLS = ("random", "leave-last", "temporal", "users", "cold-items", "ratings-per-user")
OPTIONS: dict[str, dict[str, Any]] = {
    "random": {"test_fraction": 0.2, "seed": 42, "min_interactions": 2},
    "leave-last": {"n": 1, "min_interactions": 2},
    "temporal": {"at": None, "fraction": None},
    "users": {"test_users": 0.2, "input_fraction": 0.8, "seed": 42, "min_interactions": 2},
    "cold-items": {"fraction": 0.1, "seed": 42},
    "ratings-per-user": {"n": 10, "seed": 42, "min_interactions": 2},
}
"""Each protocol's options and their defaults."""


def protocol_name(protocol: str) -> str:
    """The canonical name of a protocol given in either spelling: ``leave_last`` -> ``leave-last``.

    Raises
    ------
    ConfigError
        For an unknown protocol (the message lists the available ones).
    """
    name = canonical_name(protocol)
    if name not in OPTIONS:
        raise ConfigError(f"unknown protocol {protocol!r}; available: {', '.join(PROTOCOLS)}")
    return name


@dataclass(frozen=True)
class Split:
    """A train/test split made by one protocol.

    Attributes
    ----------
    protocol : str
        One of :data:`PROTOCOLS`.
    options : dict
        The protocol's options, defaults filled in.
    train : Interactions
        What recipes fit on.
    test : Interactions
        The held-out pairs (the relevant items); same vocabularies as ``train``.
    test_input : Interactions or None
        For ``users`` only: each held-out user's input history, folded in at ranking time; None for the
        protocols whose test users are training users.
    skipped_users : int
        Users with interactions who are not evaluated (too little history for the protocol, or, for
        ``temporal``, no history before the cut).
    cut : int or None
        For ``temporal``: the time cut in epoch seconds (pairs after it are held out).
    cold_items : numpy.ndarray or None
        For ``cold-items``: the held-out items' dense indices, sorted (the candidates every test user's ranking
        is made of); None for the other protocols.
    """

    protocol: str
    options: dict[str, Any]
    train: Interactions
    test: Interactions
    test_input: Interactions | None = None
    skipped_users: int = 0
    cut: int | None = None
    cold_items: np.ndarray | None = None

    @property
    def evaluated_users(self) -> np.ndarray:
        """Dense indices of the users with held-out pairs."""
        return np.flatnonzero(np.diff(self.test.matrix.indptr) > 0)

    def describe(self) -> dict[str, Any]:
        """The protocol, its options and the user counts, JSON-ready (for reports and stored metrics)."""
        return {"protocol": self.protocol, **{key: _jsonable(value) for key, value in self.options.items()},
                "evaluated_users": int(len(self.evaluated_users)), "skipped_users": int(self.skipped_users),
                "train_pairs": int(self.train.nnz), "test_pairs": int(self.test.nnz),
                **({} if self.cut is None else {"cut": self.cut}),
                **({} if self.cold_items is None else {"cold_items": int(len(self.cold_items))})}

    def validation(self, seed: int | None = None) -> Split:
        """The same protocol applied to the training part only: a validation split for tuning and early
        stopping that never sees the test pairs (nor, for ``users``, the held-out users)."""
        options = dict(self.options)
        if seed is not None and "seed" in options:
            options["seed"] = seed
        if self.protocol == "temporal":  # a cut at a date would leave nothing after it: cut by the same share
            options = {"at": None, "fraction": self.test.nnz / (self.train.nnz + self.test.nnz)}
        return make_split(self.train, self.protocol, **options)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def make_split(interactions: Interactions, protocol: str = "random", **options: Any) -> Split:
    """Split ``interactions`` by the protocol named ``protocol``.

    Parameters
    ----------
    interactions : Interactions
        All the data.
    protocol : str
        One of ``random``, ``leave-last`` (or ``leave_last``), ``temporal``, ``users``, ``cold-items``,
        ``ratings-per-user``.
    **options
        The protocol's options (see :data:`OPTIONS` and each ``split_*`` function); unknown ones are an error.

    Returns
    -------
    Split

    Raises
    ------
    ConfigError
        On an unknown protocol or option, or a bad option value.
    DataError
        When the data is too small for the protocol (no test pairs would be left).
    """
    protocol = protocol_name(protocol)
    unknown = sorted(set(options) - set(OPTIONS[protocol]))
    if unknown:
        raise ConfigError(f"protocol {protocol} has no option {unknown[0]!r}; its options: "
                          f"{', '.join(OPTIONS[protocol])}")
    filled = OPTIONS[protocol] | options
    if protocol == "random":
        train, test, skipped = _random(interactions, **filled)
        return Split(protocol, filled, train, test, None, skipped)
    if protocol == "leave-last":
        train, test, skipped = _leave_last(interactions, **filled)
        return Split(protocol, filled, train, test, None, skipped)
    if protocol == "ratings-per-user":
        train, test, skipped = _ratings_per_user(interactions, **filled)
        return Split(protocol, filled, train, test, None, skipped)
    if protocol == "temporal":
        train, test, skipped, cut = _temporal(interactions, **filled)
        return Split(protocol, filled, train, test, None, skipped, cut)
    if protocol == "cold-items":
        train, test, cold = _cold_items(interactions, **filled)
        return Split(protocol, filled, train, test, None, 0, None, cold)
    train, test_input, test, skipped = _users(interactions, **filled)
    return Split(protocol, filled, train, test, test_input, skipped)


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
    train, test, _ = _random(interactions, test_fraction, seed, min_interactions)
    return train, test


def _random(interactions: Interactions, test_fraction: float, seed: int, min_interactions: int
            ) -> tuple[Interactions, Interactions, int]:
    _check_fraction("test_fraction", test_fraction)
    _check_min_interactions(min_interactions)
    matrix = interactions.matrix
    if matrix.nnz == 0:
        raise DataError("cannot split: there are no interactions")
    rows, positive, rank, n_positive = _random_ranks(interactions, seed)
    n_test = np.minimum(np.floor(n_positive * test_fraction + 0.5).astype(np.int64), n_positive - 1)
    n_test[n_positive < min_interactions] = 0
    test_mask = (rank < n_test[rows]) & positive
    return _finish(interactions, test_mask, _count_skipped(n_positive, n_test > 0), f"test_fraction={test_fraction}")


def _random_ranks(interactions: Interactions, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random order of each user's pairs, positive ones first: each pair's user, whether it is
    positive, its rank within its user, and each user's count of positive pairs (what ``random`` and
    ``ratings-per-user`` hold out the first of)."""
    matrix = interactions.matrix
    rng = np.random.default_rng(seed)
    rows = _rows(interactions)
    positive = matrix.data > 0
    shuffle = rng.random(matrix.nnz)
    shuffle[~positive] = 2.0  # non-positive pairs sort last and are never held out
    order = np.lexsort((shuffle, rows))
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[order] = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], np.diff(matrix.indptr))
    n_positive = np.bincount(rows[positive], minlength=matrix.shape[0])
    return rows, positive, rank, n_positive


def split_ratings_per_user(interactions: Interactions, n: int = 10, seed: int = 42, min_interactions: int = 2
                           ) -> tuple[Interactions, Interactions]:
    """Hold out ``n`` random positive pairs of each user (the ``ratings-per-user`` protocol).

    With ``n=10`` this is MovieLens 100K's ``ua``/``ub`` protocol (``ua.test`` holds exactly 10 ratings per
    user, drawn from each user's ratings), the default of ``recsmith evaluate --task binary``.

    Parameters
    ----------
    interactions : Interactions
        All data.
    n : int
        Pairs held out per user.
    seed : int
        Seed of the draw (the same shuffle as the ``random`` protocol's); the same seed gives the same split.
    min_interactions : int
        Users with fewer than ``max(min_interactions, n + 1)`` positive pairs keep them all in train and are
        not evaluated (at least one pair always stays in train); how many is logged.

    Returns
    -------
    (Interactions, Interactions)
        Train and test, sharing the vocabularies.
    """
    train, test, _ = _ratings_per_user(interactions, n, seed, min_interactions)
    return train, test


def _ratings_per_user(interactions: Interactions, n: int, seed: int, min_interactions: int
                      ) -> tuple[Interactions, Interactions, int]:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"ratings-per-user needs n >= 1 (pairs held out per user), got {n!r}")
    _check_min_interactions(min_interactions)
    if interactions.nnz == 0:
        raise DataError("cannot split: there are no interactions")
    rows, positive, rank, n_positive = _random_ranks(interactions, seed)
    eligible = n_positive >= max(min_interactions, n + 1)
    test_mask = positive & (rank < n) & eligible[rows]
    return _finish(interactions, test_mask, _count_skipped(n_positive, eligible), f"ratings-per-user n={n}")


def holdout_split(interactions: Interactions, *, sequential: bool, fraction: float, seed: int
                  ) -> tuple[Interactions, Interactions, str]:
    """The split a solution version's offline metrics and tuning measure on, with its description: each user's
    last pair for sequential recipes (what they are built to predict: ``leave-last``), else a seeded random
    ``fraction`` of each user's pairs (``random``). Data without timestamps has no last pair: ``random``.

    Returns
    -------
    (Interactions, Interactions, str)
        Train, test, and the protocol as the metrics record it (``"leave-last n=1"``, ``"random ..."``).
    """
    if sequential and interactions.timestamps is not None:
        train, test = split_leave_last(interactions, n=1)
        return train, test, "leave-last n=1"
    train, test = split_random(interactions, test_fraction=fraction, seed=seed)
    return train, test, f"random test_fraction={fraction} seed={seed}"


def split_leave_last(interactions: Interactions, n: int = 1, min_interactions: int = 2
                     ) -> tuple[Interactions, Interactions]:
    """Hold out each user's last ``n`` positive pairs by time (the ``leave-last`` protocol).

    Parameters
    ----------
    interactions : Interactions
        All data, with timestamps (a pair's time is its latest event's).
    n : int
        Pairs held out per user; ties in time are broken by item index, so the split is deterministic.
    min_interactions : int
        Users with fewer than ``max(min_interactions, n + 1)`` positive pairs keep them all in train and are
        not evaluated (at least one pair always stays in train).

    Returns
    -------
    (Interactions, Interactions)
        Train and test, sharing the vocabularies.
    """
    train, test, _ = _leave_last(interactions, n, min_interactions)
    return train, test


def _leave_last(interactions: Interactions, n: int, min_interactions: int) -> tuple[Interactions, Interactions, int]:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"leave-last needs n >= 1 (pairs held out per user), got {n!r}")
    _check_min_interactions(min_interactions)
    stamps = _require_timestamps(interactions, "leave-last")
    matrix = interactions.matrix
    rows = _rows(interactions)
    positive = matrix.data > 0
    # newest first within each user: sort by (user, positive first, -time, -item); rank within the user
    order = np.lexsort((-matrix.indices.astype(np.int64), -stamps, ~positive, rows))
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[order] = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], np.diff(matrix.indptr))
    n_positive = np.bincount(rows[positive], minlength=interactions.n_users)
    eligible = n_positive >= max(min_interactions, n + 1)
    test_mask = positive & (rank < n) & eligible[rows]
    skipped = _count_skipped(n_positive, eligible)
    return _finish(interactions, test_mask, skipped, f"leave-last n={n}")


def split_temporal(interactions: Interactions, *, at: datetime | int | float | str | None = None,
                   fraction: float | None = None) -> tuple[Interactions, Interactions]:
    """Hold out every positive pair after one global time cut (the ``temporal`` protocol).

    Give exactly one of ``at`` (the cut: a datetime, an ISO date string or epoch seconds; pairs strictly
    later are held out) or ``fraction`` (the cut is chosen so that this share of the pairs, the latest, is
    held out). A pair's time is its latest event's. Held-out pairs of users with no training history
    before the cut are dropped (those users cannot be scored from history), and counted.

    Returns
    -------
    (Interactions, Interactions)
        Train and test, sharing the vocabularies.
    """
    train, test, _, _ = _temporal(interactions, at, fraction)
    return train, test


def _temporal(interactions: Interactions, at: datetime | int | float | str | None, fraction: float | None
              ) -> tuple[Interactions, Interactions, int, int]:
    if (at is None) == (fraction is None):
        raise ConfigError("the temporal protocol needs exactly one of 'at' (a date or epoch seconds) or "
                          f"'fraction' (share of the latest pairs held out); got at={at!r}, fraction={fraction!r}")
    stamps = _require_timestamps(interactions, "temporal")
    if fraction is not None:
        _check_fraction("fraction", fraction)
        cut = int(np.quantile(stamps, 1.0 - fraction, method="lower"))
    else:
        cut = _epoch_seconds(at)
    rows = _rows(interactions)
    positive = interactions.matrix.data > 0
    after = positive & (stamps > cut)
    has_train = np.bincount(rows[~after], minlength=interactions.n_users) > 0
    test_mask = after & has_train[rows]
    skipped = int(len(np.unique(rows[after & ~has_train[rows]])))
    if skipped:
        logger.info("%d users have interactions only after the cut; they are not evaluated", skipped)
    train = interactions.with_entries(~after)
    if not test_mask.any():
        raise DataError(f"the temporal cut at {cut} left no test interactions of users seen before it; "
                        "move the cut earlier or use another protocol")
    return train, interactions.with_entries(test_mask), skipped, cut


def split_users(interactions: Interactions, *, test_users: float | int = 0.2, input_fraction: float = 0.8,
                seed: int = 42, min_interactions: int = 2) -> tuple[Interactions, Interactions, Interactions]:
    """Hold out whole users (the ``users`` protocol of Liang et al. 2018).

    A random set of users is removed from training; each one's positive pairs are split at random into an
    input part (``input_fraction``, folded in at ranking time with ``recommend_from_history``) and a target
    part (the relevant items).

    Parameters
    ----------
    test_users : float or int
        Share of the eligible users held out (a float in (0, 1)), or how many (an int >= 1).
    input_fraction : float
        Share of each held-out user's positive pairs given as input (at least one pair goes each way).
    seed : int
        Seed of the choice of users and of each user's input/target split.
    min_interactions : int
        Users with fewer positive pairs (at least 2) are never held out; they stay in training.

    Returns
    -------
    (Interactions, Interactions, Interactions)
        Train (the held-out users' rows empty), the held-out users' input, and their targets; all share
        the vocabularies.
    """
    train, test_input, test, _ = _users(interactions, test_users, input_fraction, seed, min_interactions)
    return train, test_input, test


def _users(interactions: Interactions, test_users: float | int, input_fraction: float, seed: int,
           min_interactions: int) -> tuple[Interactions, Interactions, Interactions, int]:
    _check_fraction("input_fraction", input_fraction)
    _check_min_interactions(min_interactions)
    rows = _rows(interactions)
    positive = interactions.matrix.data > 0
    n_positive = np.bincount(rows[positive], minlength=interactions.n_users)
    eligible = np.flatnonzero(n_positive >= max(min_interactions, 2))
    if isinstance(test_users, bool) or not isinstance(test_users, int | float | np.integer | np.floating):
        raise ConfigError(f"test_users must be a share in (0, 1) or a count >= 1, got {test_users!r}")
    if isinstance(test_users, float | np.floating):
        _check_fraction("test_users", float(test_users))
        count = int(np.floor(len(eligible) * test_users + 0.5))
    else:
        count = int(test_users)
        if count < 1:
            raise ConfigError(f"test_users must be a share in (0, 1) or a count >= 1, got {test_users!r}")
    if count < 1 or count >= len(eligible):
        raise DataError(f"the users protocol needs at least 2 users with {max(min_interactions, 2)}+ positive "
                        f"interactions to hold {test_users!r} of them out and keep the rest for training; "
                        f"{len(eligible)} are eligible")
    rng = np.random.default_rng(seed)
    held = np.zeros(interactions.n_users, dtype=bool)
    held[rng.choice(eligible, size=count, replace=False)] = True
    held_entry = held[rows] & positive
    # within each held-out user, a random order; the first round((1 - input_fraction) · n) pairs are targets
    order = np.lexsort((rng.random(interactions.nnz), ~held_entry, rows))
    rank = np.empty(interactions.nnz, dtype=np.int64)
    rank[order] = np.arange(interactions.nnz) - np.repeat(interactions.matrix.indptr[:-1],
                                                          np.diff(interactions.matrix.indptr))
    n_target = np.clip(np.floor(n_positive * (1.0 - input_fraction) + 0.5).astype(np.int64), 1, n_positive - 1)
    target = held_entry & (rank < n_target[rows])
    test_input = interactions.with_entries(held[rows] & ~target)  # the held-out users' other pairs, negatives too
    skipped = int(((n_positive > 0) & (n_positive < max(min_interactions, 2))).sum())
    return interactions.with_entries(~held[rows]), test_input, interactions.with_entries(target), skipped


def split_cold_items(interactions: Interactions, *, fraction: float = 0.1, seed: int = 42
                     ) -> tuple[Interactions, Interactions, np.ndarray]:
    """Hold out a random share of the items with all of their interactions (the ``cold-items`` protocol).

    The held-out items keep their place in the vocabularies (their training columns are empty), so their rows
    of the item feature table stay: training sees their metadata only. The test part holds every positive pair
    of a held-out item; a recipe ranks, for each test user, the held-out items alone, as items it never saw
    (``Recipe.score_new_items``).

    Parameters
    ----------
    interactions : Interactions
        All data.
    fraction : float
        Share of the items that have interactions held out (rounded, at least one, and at least one is kept).
    seed : int
        Seed of the choice of items.

    Returns
    -------
    (Interactions, Interactions, numpy.ndarray)
        Train (the held-out items' columns empty, negatives too), test (their positive pairs), and the held-out
        items' dense indices, sorted.
    """
    return _cold_items(interactions, fraction, seed)


def _cold_items(interactions: Interactions, fraction: float, seed: int
                ) -> tuple[Interactions, Interactions, np.ndarray]:
    _check_fraction("fraction", fraction)
    matrix = interactions.matrix
    if matrix.nnz == 0:
        raise DataError("cannot split: there are no interactions")
    used = np.flatnonzero(np.bincount(matrix.indices, minlength=interactions.n_items) > 0)
    count = int(np.floor(len(used) * fraction + 0.5))
    if len(used) < 2:
        raise SplitTooSmallError(f"the cold-items protocol needs at least 2 items with interactions to hold some "
                                 f"out and train on the rest; {len(used)} have any")
    count = min(max(count, 1), len(used) - 1)
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(used, size=count, replace=False)).astype(np.int64)
    held = np.zeros(interactions.n_items, dtype=bool)
    held[cold] = True
    entry_held = held[matrix.indices]
    test_mask = entry_held & (matrix.data > 0)
    if not test_mask.any():
        raise SplitTooSmallError(f"the held-out items (fraction={fraction}) have no positive interactions; the "
                                 "dataset is too small for the cold-items protocol")
    return interactions.with_entries(~entry_held), interactions.with_entries(test_mask), cold


# ------------------------------------------------------------------------------------------ helpers
def _rows(interactions: Interactions) -> np.ndarray:
    """The user index of every stored pair."""
    return np.repeat(np.arange(interactions.n_users), np.diff(interactions.matrix.indptr))


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not 0.0 < value < 1.0:
        raise ConfigError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")


def _check_min_interactions(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"min_interactions must be a positive integer, got {value!r}")


def _require_timestamps(interactions: Interactions, protocol: str) -> np.ndarray:
    if interactions.timestamps is None:
        raise DataError(f"the {protocol} protocol orders interactions by time, and these have no timestamps; "
                        "import a TIMESTAMP column or use the random protocol")
    return interactions.timestamps


def _epoch_seconds(at: datetime | int | float | str) -> int:
    """A cut given as datetime, ISO string or epoch seconds, in epoch seconds (naive datetimes are UTC)."""
    if isinstance(at, bool):
        raise ConfigError(f"the temporal cut 'at' must be a date or epoch seconds, got {at!r}")
    if isinstance(at, int | float | np.integer | np.floating):
        return int(at)
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            raise ConfigError(f"the temporal cut 'at' must be an ISO date like 2024-01-31 (or epoch seconds), "
                              f"got {at!r}") from None
    if isinstance(at, datetime):
        from datetime import UTC

        return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())
    raise ConfigError(f"the temporal cut 'at' must be a date or epoch seconds, got {at!r}")


def _count_skipped(n_positive: np.ndarray, eligible: np.ndarray) -> int:
    skipped = int(((n_positive > 0) & ~eligible).sum())
    if skipped:
        logger.info("%d users have too few interactions to hold any out; they stay in train only", skipped)
    return skipped


def _finish(interactions: Interactions, test_mask: np.ndarray, skipped: int, what: str
            ) -> tuple[Interactions, Interactions, int]:
    if not test_mask.any():
        raise SplitTooSmallError(f"the split ({what}) left no test interactions; the dataset is too small for this "
                                 "protocol")
    return interactions.with_entries(~test_mask), interactions.with_entries(test_mask), skipped
