"""The recipe contract: ``fit`` on :class:`TrainingData`, ``recommend`` in dense ids, batch first.

Subclasses implement ``_fit`` (learn state from the training data, under the run's :class:`FitOptions`) and
``_scores`` (dense scores for a batch of user histories), and declare their capabilities once, as
:class:`RecipeTags`; top-k selection, exclusions, candidates, padding, fold-in, queries, pair scores and
artifacts live here once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, Self

import numpy as np
import pydantic
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsmith import __version__
from recsmith.atomic import atomic_folder
from recsmith.data.interactions import Interactions
from recsmith.data.training import FeatureTable, TrainingData
from recsmith.errors import ConfigError, DataError, NotFittedError
from recsmith.recipes.options import EpochCallback, FitOptions
from recsmith.recipes.query import HistoryQuery, query_rows
from recsmith.recipes.tags import RecipeTags

__all__ = ["EpochCallback", "FitOptions", "HistoryQuery", "ItemSets", "Recipe", "RecipeParams", "RecipeTags",
           "Recommendations", "SetScorer", "top_k"]

BATCH_USERS = 1024
SCORE_BLOCK_CELLS = 1 << 25  # at most 32M dense float32 scores (128 MB) per batch of users


def batch_size(n_items: int) -> int:
    """Users per scoring batch: :data:`BATCH_USERS`, fewer for big catalogues so a block stays bounded."""
    return max(1, min(BATCH_USERS, SCORE_BLOCK_CELLS // max(n_items, 1)))

ItemLists = np.ndarray | Sequence[np.ndarray] | Sequence[Sequence[int]]


class Recommendations(NamedTuple):
    """Top-k results for a batch of users (or items), or the top users of item sets
    (:meth:`Recipe.top_users`).

    Attributes
    ----------
    ids : numpy.ndarray
        ``int32[n, k]`` dense item indices (user indices for :meth:`Recipe.top_users`), best first, padded
        with -1.
    scores : numpy.ndarray
        ``float32[n, k]`` their scores, padded with ``-inf``.
    """

    ids: np.ndarray
    scores: np.ndarray


class FloatRange(pydantic.BaseModel):
    """A search-space dimension: a float in ``[low, high]``, sampled on a log scale when ``log``."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    kind: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False

    @pydantic.model_validator(mode="after")
    def _check(self) -> Self:
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"float range needs low < high (and low > 0 on a log scale), got {self}")
        return self


class IntRange(pydantic.BaseModel):
    """A search-space dimension: an integer in ``[low, high]`` (every ``step``), on a log scale when ``log``."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    kind: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False
    step: int = pydantic.Field(default=1, ge=1)

    @pydantic.model_validator(mode="after")
    def _check(self) -> Self:
        if not self.low < self.high or (self.log and (self.low <= 0 or self.step != 1)):
            raise ValueError(f"int range needs low < high (and low > 0, step 1 on a log scale), got {self}")
        return self


class Choice(pydantic.BaseModel):
    """A search-space dimension: one of a few values."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    kind: Literal["categorical"] = "categorical"
    choices: tuple[str | int | float | bool, ...] = pydantic.Field(min_length=2)


SearchDimension = FloatRange | IntRange | Choice
"""One dimension of a recipe's hyperparameter search space (JSON-ready with ``model_dump()``)."""


class RecipeParams(pydantic.BaseModel):
    """Base of every recipe's params: frozen, unknown names rejected.

    ``search_space`` declares, for tuning (``recsmith tune``), the range of each param worth searching;
    recipes without one cannot be tuned.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    search_space: ClassVar[dict[str, SearchDimension]] = {}


FIT_OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(FitOptions))
"""Names that are fit options, not params (``device``, ``num_threads``, ...)."""


def _as_csr_rows(histories: sp.spmatrix | ItemLists, n_items: int) -> sp.csr_matrix:
    """Histories (a sparse matrix, or one array of item indices per user) as a binary-weight CSR."""
    if sp.issparse(histories):
        csr = sp.csr_matrix(histories, dtype=np.float32)
        if csr.shape[1] != n_items:
            raise DataError(f"histories have {csr.shape[1]} columns, the model knows {n_items} items")
        return csr
    lists = [np.asarray(h, dtype=np.int64).ravel() for h in histories]
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum([len(h) for h in lists], out=indptr[1:])
    indices = np.concatenate(lists) if lists else np.empty(0, dtype=np.int64)
    if len(indices) and (indices.min() < 0 or indices.max() >= n_items):
        raise DataError(f"history item indices must be in 0..{n_items - 1}")
    csr = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(lists), n_items))
    csr.sum_duplicates()
    csr.data[:] = 1.0
    return csr


def _per_row(values: ItemLists | None, n_rows: int, n_items: int, what: str) -> np.ndarray | sp.csr_matrix | None:
    """``exclude``/``candidates`` as one index array for everyone, or an ``n_rows × n_items`` boolean CSR.

    Indices outside ``0..n_items-1`` (such as -1 padding) are ignored. A sparse ``n_rows × n_items`` matrix is
    taken as the mask (its stored entries).
    """
    if values is None:
        return None
    if sp.issparse(values):
        if values.shape != (n_rows, n_items):
            raise ConfigError(f"{what} mask has shape {values.shape}, expected {(n_rows, n_items)}")
        mask = sp.csr_matrix(values, dtype=bool)
        mask.sum_duplicates()
        return mask
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype != object:
        shared = values.astype(np.int64)
        return shared[(shared >= 0) & (shared < n_items)]
    if isinstance(values, np.ndarray) and values.ndim == 2:
        lists = list(values)
    else:
        lists = list(values)
        if lists and all(np.ndim(v) == 0 for v in lists):
            shared = np.asarray(lists, dtype=np.int64)
            return shared[(shared >= 0) & (shared < n_items)]
    if len(lists) != n_rows:
        raise ConfigError(f"{what} has {len(lists)} lists for {n_rows} users; give one list for everyone, "
                          "or one per user")
    arrays = [np.asarray(v, dtype=np.int64).ravel() for v in lists]
    lengths = np.fromiter((len(v) for v in arrays), dtype=np.int64, count=len(arrays))
    cols = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)
    rows = np.repeat(np.arange(len(arrays), dtype=np.int64), lengths)
    valid = (cols >= 0) & (cols < n_items)
    mask = sp.csr_matrix((np.ones(int(valid.sum()), dtype=bool), (rows[valid], cols[valid])),
                         shape=(n_rows, n_items))
    mask.sum_duplicates()
    return mask


def _checked_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _rows_of(mask: np.ndarray | sp.csr_matrix | None, rows: np.ndarray) -> np.ndarray | sp.csr_matrix | None:
    """The rows of a per-row mask from :func:`_per_row` (a shared index array stays as it is)."""
    return mask[rows] if sp.issparse(mask) else mask


@functools.cache
def _takes_options(fit: Callable[..., None]) -> bool:
    """Whether a ``_fit`` takes ``(data, options)``, or only the matrix (recipes written before FitOptions)."""
    try:
        parameters = list(inspect.signature(fit).parameters.values())
    except (TypeError, ValueError):
        return True
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return True
    positional = [p for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                       inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3  # self, data, options


TOP_K_GROUP = 128
"""Columns per group in :func:`top_k`'s first pass over a wide block."""


def top_k(scores: np.ndarray, k: int) -> Recommendations:
    """The ``k`` best columns of each row, best first, ties broken by the lower column index (so the first
    ``n`` of a top-``k`` are the top-``n`` for any ``k >= n``); non-finite scores are never chosen; padded
    with -1 / ``-inf``.

    A wide block (many more columns than ``k``) is cut first: the ``k``-th largest of the maxima of groups of
    :data:`TOP_K_GROUP` columns is a score at least ``k`` columns reach, so only the columns at or above it (ties
    included) can be chosen, and the exact selection runs on those. The answer is the same as without the cut
    (rows the cut cannot serve, such as rows with fewer than ``k`` finite scores, take the exact path whole)."""
    scores = np.asarray(scores)
    n, m = scores.shape
    take = min(k, m)
    groups = m // TOP_K_GROUP
    if n and take and groups >= 4 * take:
        return _top_k_cut(scores, k, groups)
    return _top_k_exact(scores, k)


def _top_k_cut(scores: np.ndarray, k: int, groups: int) -> Recommendations:
    """:func:`top_k` of a wide block through the group-maxima cut."""
    n, m = scores.shape
    width = groups * TOP_K_GROUP
    maxima = scores[:, :width].reshape(n, groups, TOP_K_GROUP).max(axis=2)
    if width < m:
        maxima = np.concatenate([maxima, scores[:, width:].max(axis=1, keepdims=True)], axis=1)
    threshold = np.partition(maxima, maxima.shape[1] - k, axis=1)[:, maxima.shape[1] - k]
    keep = scores >= threshold[:, None]  # NaN thresholds keep nothing: those rows take the exact path
    counts = np.count_nonzero(keep, axis=1)
    exact = ~np.isfinite(threshold) | (counts < k)
    keep[exact] = False
    counts[exact] = 0
    rows, cols = np.nonzero(keep)  # row-major: each row's columns ascending
    width = int(counts.max()) if len(counts) else 0
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    slot = np.arange(len(rows), dtype=np.int64) - starts[rows]
    narrowed = np.full((n, max(width, 1)), -np.inf, dtype=scores.dtype)
    columns = np.zeros((n, max(width, 1)), dtype=np.int64)
    narrowed[rows, slot] = scores[rows, cols]
    columns[rows, slot] = cols
    picked = _top_k_exact(narrowed, k)
    ids = np.where(picked.ids >= 0, np.take_along_axis(columns, np.maximum(picked.ids, 0), axis=1), -1)
    out = Recommendations(ids.astype(np.int32), picked.scores)
    if exact.any():
        whole = _top_k_exact(scores[exact], k)
        out.ids[exact], out.scores[exact] = whole.ids, whole.scores
    return out


def _top_k_exact(scores: np.ndarray, k: int) -> Recommendations:
    """:func:`top_k` by one partition of every row."""
    n, m = scores.shape
    ids = np.full((n, k), -1, dtype=np.int32)
    best = np.full((n, k), -np.inf, dtype=np.float32)
    take = min(k, m)
    if take == 0 or n == 0:
        return Recommendations(ids, best)
    if take < m:  # (argpartition puts NaN last; the kth score is then NaN, no tie counts, and NaN is dropped)
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
        # the chosen set is unique unless items tie with the k-th score across the cut: choose those by index
        ties = np.flatnonzero(np.count_nonzero(scores >= kth[:, None], axis=1) > take)
        if len(ties):
            part = part.copy()
            sub = scores[ties]
            above = sub > kth[ties, None]
            need = take - np.count_nonzero(above, axis=1)
            at = sub == kth[ties, None]
            chosen_mask = above | (at & (np.cumsum(at, axis=1) <= need[:, None]))
            part[ties] = np.nonzero(chosen_mask)[1].reshape(len(ties), take)
        part.sort(axis=1)  # by index, so the stable sort by score below breaks ties by index
    else:
        part = np.tile(np.arange(m), (n, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    chosen = np.take_along_axis(part, order, axis=1)
    chosen_scores = np.take_along_axis(part_scores, order, axis=1)
    valid = np.isfinite(chosen_scores)
    ids[:, :take] = np.where(valid, chosen, -1)
    best[:, :take] = np.where(valid, chosen_scores, -np.inf)
    return Recommendations(ids, best)


ItemSetsLike = np.ndarray | sp.spmatrix | Sequence[int | np.integer | np.ndarray | Sequence[int]]


@dataclasses.dataclass(frozen=True, eq=False)
class ItemSets:
    """The item sets of one :meth:`Recipe.top_users` call, as the recipes' set scorers read them.

    Attributes
    ----------
    membership : scipy.sparse.csc_matrix
        ``float64[n_items, n_sets]``: 1 where the item is in the set (each set's items sorted, no repeats).
    by_item : scipy.sparse.csr_matrix
        The same matrix in CSR, for ``histories @ by_item``.
    sizes : numpy.ndarray
        ``int64[n_sets]``: items per set (0 for an empty set).
    shared : numpy.ndarray
        ``bool[n_items]``: the items of sets of two or more. Only their seen scores must be left out of a sum:
        a user who has seen the item of a one-item set is left out of that set whatever the sum.
    """

    membership: sp.csc_matrix
    by_item: sp.csr_matrix
    sizes: np.ndarray
    shared: np.ndarray

    @property
    def n_sets(self) -> int:
        """How many sets."""
        return len(self.sizes)

    @classmethod
    def parse(cls, item_sets: ItemSetsLike, n_items: int) -> ItemSets:
        """Read :meth:`Recipe.top_users`'s ``item_sets``: an ``n_sets × n_items`` sparse matrix (its stored
        entries), a 1-D array of item indices (one one-item set each), or a sequence whose elements are each
        an item index or an array of them; -1 entries (padding) are skipped, repeats count once.

        Raises
        ------
        DataError
            For an item index outside ``-1..n_items - 1``, or a sparse matrix of another width.
        """
        if sp.issparse(item_sets):
            if item_sets.shape[1] != n_items:
                raise DataError(f"item_sets is a sparse matrix with {item_sets.shape[1]} columns; the model knows "
                                f"{n_items} items")
            coo = sp.coo_matrix(item_sets)
            owners, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
            n_sets = item_sets.shape[0]
        elif isinstance(item_sets, np.ndarray) and item_sets.ndim == 1 and item_sets.dtype != object:
            items = item_sets.astype(np.int64)
            owners = np.arange(len(items), dtype=np.int64)
            n_sets = len(items)
        else:
            arrays = [np.asarray(one, dtype=np.int64).ravel() for one in item_sets]
            lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
            items = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)
            owners = np.repeat(np.arange(len(arrays), dtype=np.int64), lengths)
            n_sets = len(arrays)
        bad = (items < -1) | (items >= n_items)
        if bad.any():
            where = int(np.flatnonzero(bad)[0])
            raise DataError(f"item set {int(owners[where])}: item index {int(items[where])} is outside the model's "
                            f"0..{n_items - 1} (-1 is skipped as padding); map item ids through the model's "
                            "vocabulary first")
        keep = items >= 0
        membership = sp.csc_matrix((np.ones(int(keep.sum())), (items[keep], owners[keep])), shape=(n_items, n_sets))
        membership.sum_duplicates()
        membership.data[:] = 1.0
        sizes = np.diff(membership.indptr).astype(np.int64)
        shared = np.zeros(n_items, dtype=bool)
        shared[membership.indices[np.repeat(sizes >= 2, sizes)]] = True
        return cls(membership, membership.tocsr(), sizes, shared)


class SetScorer(NamedTuple):
    """How a recipe scores blocks of users against item sets (:meth:`Recipe._set_scorer`).

    Attributes
    ----------
    sums : callable
        ``sums(histories, users, seen) -> float64[n, n_sets]``: for a block of training users (their training
        rows and indices), each set's sum of the scores :meth:`Recipe.recommend` ranks by, over the set's items
        that are not stored in ``seen`` (a binary ``n × n_items`` CSR of seen items of shared sets, or None:
        every item counts).
    width : int
        Dense values per user of a block (bounds the users per block, as :func:`batch_size` does).
    """

    sums: Callable[[sp.csr_matrix, np.ndarray, sp.csr_matrix | None], np.ndarray]
    width: int


def set_column_sums(values: np.ndarray, sets: ItemSets) -> np.ndarray:
    """``float64[n, n_sets]``: each row's sum of ``values`` (``n × n_items``) over each set's items.

    The set items' columns are gathered in chunks of at most :data:`SCORE_BLOCK_CELLS` values, however big the
    sets (a set may span chunks: its partial sums add up).
    """
    n = values.shape[0]
    out = np.zeros((n, sets.n_sets))
    indices = sets.membership.indices
    owner = np.repeat(np.arange(sets.n_sets), sets.sizes)
    step = max(1, SCORE_BLOCK_CELLS // max(n, 1))
    for low in range(0, len(indices), step):
        own = owner[low:low + step]
        starts = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
        out[:, own[starts]] += np.add.reduceat(values[:, indices[low:low + step]], starts, axis=1, dtype=np.float64)
    return out


def minus_seen(totals: np.ndarray, seen: sp.csr_matrix | None, sets: ItemSets,
               pair_scores: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """``totals`` (``float64[n, n_sets]``, each set's score sum over all its items) less the scores of the
    ``seen`` pairs: what :attr:`SetScorer.sums` returns for scorers whose set sums are linear.

    ``pair_scores(rows, items)`` gives the scores of (block row, item) pairs, exactly as the recipe ranks them.
    """
    if seen is None or not seen.nnz:
        return totals
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    values = np.asarray(pair_scores(rows, seen.indices), dtype=np.float64)
    seen_scores = sp.csr_matrix((values, seen.indices, seen.indptr), shape=seen.shape)
    return totals - (seen_scores @ sets.by_item).toarray()


def _binary_pattern(rows: sp.csr_matrix, keep: np.ndarray | None = None) -> sp.csr_matrix:
    """The stored entries of ``rows`` as a binary CSR, only those in columns where ``keep`` is true."""
    if keep is None:
        return sp.csr_matrix((np.ones(len(rows.indices)), rows.indices, rows.indptr), shape=rows.shape)
    mask = keep[rows.indices]
    owners = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    indptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(owners[mask], minlength=rows.shape[0]), out=indptr[1:])
    return sp.csr_matrix((np.ones(int(indptr[-1])), rows.indices[mask], indptr), shape=rows.shape)


def _merge_top_users(ids: np.ndarray, best: np.ndarray, block: np.ndarray, users: np.ndarray) -> None:
    """Merge a block's scores (``float32[n_sets, n_block]``, columns for ascending ``users``, all above the
    users already kept) into the running top users of each set (``ids``/``best``, ``n_sets × k``), in place.

    Only scores above a set's current k-th can enter (equal ones lose the tie: their users come later), so
    once the lists fill up a block costs one comparison pass. Candidates follow the kept users, in user order,
    so :func:`top_k`'s ties by column are ties by user index.
    """
    over = block > best[:, -1:]  # -inf while a list is not full: any finite score enters; NaN never does
    rows, cols = np.nonzero(over)  # by set, then ascending user
    if not len(rows):
        return
    active, starts, counts = np.unique(rows, return_index=True, return_counts=True)
    slot = np.repeat(np.arange(len(active)), counts)
    position = np.arange(len(rows)) - starts[slot]
    scores = np.full((len(active), int(counts.max())), -np.inf, dtype=np.float32)
    pool = np.full(scores.shape, -1, dtype=np.int32)
    scores[slot, position] = block[rows, cols]
    pool[slot, position] = users[cols]
    merged = top_k(np.concatenate([best[active], scores], axis=1), ids.shape[1])
    pool = np.concatenate([ids[active], pool], axis=1)
    picked = np.take_along_axis(pool, np.maximum(merged.ids, 0).astype(np.int64), axis=1)
    ids[active] = np.where(merged.ids >= 0, picked, -1)
    best[active] = merged.scores


class Recipe(ABC):
    """An algorithm with typed hyperparameters, trained on :class:`TrainingData`.

    Parameters
    ----------
    params : RecipeParams or dict, optional
        The recipe's params model, or a dict of its fields.
    **kwargs
        Params by name (override ``params``).

    Attributes
    ----------
    name : str
        The registry name (``"item-knn"``).
    Params : type
        The params model.
    tags : RecipeTags
        What the recipe can do, declared once on the class (read them, never ``hasattr``).
    """

    name: ClassVar[str]
    Params: ClassVar[type[RecipeParams]]
    tags: ClassVar[RecipeTags] = RecipeTags()

    def __init__(self, params: RecipeParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        merged = dict(params.model_dump() if isinstance(params, pydantic.BaseModel) else params or {})
        merged.update(kwargs)
        self.params = self._validate(merged)
        self.train_matrix_: sp.csr_matrix | None = None

    @classmethod
    def _validate(cls, values: dict[str, Any]) -> RecipeParams:
        try:
            return cls.Params(**values)
        except pydantic.ValidationError as exc:
            problems = []
            for error in exc.errors():
                name = ".".join(str(p) for p in error["loc"]) or "?"
                if error["type"] == "extra_forbidden" and name in FIT_OPTION_NAMES:
                    problems.append(f"{name} is a fit option, not a param: pass it as "
                                    f"recipe.fit(data, FitOptions({name}=...))")
                elif error["type"] == "extra_forbidden":
                    allowed = ", ".join(cls.Params.model_fields)
                    problems.append(f"unknown param {name!r} (params of {cls.name}: {allowed})")
                elif error["type"] == "value_error":  # a validator's own message says what is wrong with it
                    where = f"param {name}" if error["loc"] else "params"
                    problems.append(f"{where}: {error.get('ctx', {}).get('error', error['msg'])}")
                else:
                    problems.append(f"param {name}={error.get('input')!r}: {error['msg']}")
            raise ConfigError(f"recipe {cls.name}: " + "; ".join(problems)) from None

    # ------------------------------------------------------------------------------------- params
    def get_params(self) -> dict[str, Any]:
        """The params as a dict."""
        return self.params.model_dump()

    def set_params(self, **params: Any) -> Self:
        """Change params (the recipe must be fitted again)."""
        self.params = self._validate(self.get_params() | params)
        return self

    def clone(self) -> Self:
        """An unfitted copy with the same params."""
        return type(self)(self.get_params())

    # ---------------------------------------------------------------------------------------- fit
    def fit(self, data: TrainingData | Interactions, options: FitOptions | None = None) -> Self:
        """Learn from the training data; returns ``self``.

        Parameters
        ----------
        data : TrainingData or Interactions
            What to learn from; a bare :class:`Interactions` matrix is wrapped (no features, and an event log
            of one event per pair).
        options : FitOptions, optional
            Where and how to train (device, threads, callbacks); never saved with the model. Default:
            ``FitOptions()`` (the CPU, the recipe's default threads, no callbacks).

        Raises
        ------
        DataError
            For data of another type, or without the timestamps a recipe that ``needs_timestamps`` needs.
        ConfigError
            For a device the recipe cannot train on here (see :meth:`FitOptions.resolve_device`), or an
            ``options.engine`` that cannot train it.

        Notes
        -----
        With ``options.engine`` set (:class:`~recsmith.recipes.options.FitEngine`), the engine computes the
        learned arrays and they are set as :meth:`load` sets saved ones (``_restore``); the training matrix and
        everything else are set here as for a local fit, so both give the same kind of model and artifact. An
        engine reports progress once, at the end (no per-epoch callbacks).
        """
        data = TrainingData.wrap(data)
        options = options if options is not None else FitOptions()
        if not isinstance(options, FitOptions):
            raise ConfigError(f"options must be a FitOptions, got {type(options).__name__}")
        options = dataclasses.replace(options, device=options.resolve_device(type(self)))
        if options.engine is not None:
            options.engine.check(type(self), options)
        if self.tags.needs_timestamps and data.interactions.timestamps is None:
            raise DataError(f"the {self.name} recipe needs interaction timestamps")
        self.train_matrix_ = data.interactions.matrix.astype(np.float32).tocsr()
        total = int(getattr(self.params, "epochs", 1)) if self.tags.iterative else 1
        if options.progress is not None:
            options.progress(0, total)
        limits = (threadpool_limits(limits=options.num_threads, user_api="blas") if options.num_threads
                  else contextlib.nullcontext())
        with limits:
            if options.engine is not None:
                self._restore(options.engine.learned_state(self, data, options))
            elif _takes_options(type(self)._fit):
                self._fit(data, options)
            else:  # a recipe written before TrainingData: _fit(self, interactions)
                self._fit(data.interactions)  # type: ignore[call-arg]
        if options.progress is not None and (options.engine is not None or not self.tags.iterative):
            options.progress(total, total)
        return self

    @abstractmethod
    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        """Learn the recipe's state from the training data (``options.device`` is ``cpu`` or ``cuda``).

        Iterative recipes call :meth:`_epoch_done` after each epoch.
        """

    def _epoch_done(self, options: FitOptions, epoch: int) -> None:
        """Report an epoch of an iterative recipe: ``options.progress(epoch, epochs)``, then
        ``options.epoch_callback(epoch, self)`` (the learned state must be that epoch's when one is set)."""
        if options.progress is not None:
            options.progress(epoch, int(getattr(self.params, "epochs", epoch)))
        if options.epoch_callback is not None:
            options.epoch_callback(epoch, self)

    @classmethod
    def cuda_available(cls) -> bool:
        """Whether this recipe can train on a CUDA device here (recipes whose ``tags.devices`` hold ``cuda``
        override it; the others never can)."""
        return False

    @abstractmethod
    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        """Dense ``float32[n, n_items]`` scores for a batch of users.

        ``histories`` holds their weighted interactions; ``users`` their training indices, or None for
        users the model never saw.
        """

    def _check_fitted(self) -> sp.csr_matrix:
        if self.train_matrix_ is None:
            raise NotFittedError(f"recipe {self.name} is not fitted; call fit(interactions) or load(path) first")
        return self.train_matrix_

    @property
    def n_items(self) -> int:
        """Items the model knows."""
        return self._check_fitted().shape[1]

    # ---------------------------------------------------------------------------------- recommend
    def recommend(self, users: np.ndarray | Sequence[int], k: int = 10, *, exclude_seen: bool = True,
                  candidates: ItemLists | None = None, exclude: ItemLists | None = None) -> Recommendations:
        """Top ``k`` items for training users (dense indices).

        Parameters
        ----------
        users : array of int
            Dense user indices.
        k : int
            Items per user.
        exclude_seen : bool
            Leave out items the user interacted with in training.
        candidates : array or list of arrays, optional
            Only rank these items (for all users, or one list per user).
        exclude : array or list of arrays, optional
            Never return these items (for all users, or one list per user).

        Returns
        -------
        Recommendations
            ``ids`` ``int32[n, k]`` and ``scores`` ``float32[n, k]``, padded with -1 / ``-inf``.
        """
        matrix = self._check_fitted()
        users = np.asarray(users, dtype=np.int64).ravel()
        if len(users) and (users.min() < 0 or users.max() >= matrix.shape[0]):
            raise DataError(f"user indices must be in 0..{matrix.shape[0] - 1}; "
                            "use recommend_from_history for users the model never saw")
        rows = matrix[users[0]:users[0] + 1] if len(users) == 1 else matrix[users]  # a slice: 4x cheaper for one
        return self._rank(rows, users, k, exclude_seen, candidates, exclude)

    def recommend_from_history(self, histories: sp.spmatrix | ItemLists, k: int = 10, *, exclude_seen: bool = True,
                               candidates: ItemLists | None = None,
                               exclude: ItemLists | None = None) -> Recommendations:
        """Top ``k`` items for users the model never saw, from their item histories (fold-in).

        ``histories`` is a ``n × n_items`` sparse matrix of weights, or one array of item indices per user.
        """
        self._check_fitted()
        return self._rank(_as_csr_rows(histories, self.n_items), None, k, exclude_seen, candidates, exclude)

    def recommend_for_queries(self, queries: Sequence[HistoryQuery], k: int = 10, *, exclude_seen: bool = True,
                              candidates: ItemLists | sp.spmatrix | None = None,
                              exclude: ItemLists | sp.spmatrix | None = None) -> Recommendations:
        """Top ``k`` items for a batch of inference queries (what serving calls).

        Each query's events become one weighted row (an item's weights summed, as training sums a pair's
        events); a query with ``user`` set is scored as that training user (factor models use the learned
        user state), the others are folded in from their rows. Sequential recipes override this to read the
        order of the history.

        Parameters
        ----------
        queries : sequence of HistoryQuery
            One per user.
        k : int
            Items per query.
        exclude_seen : bool
            Leave out the items of each query's history.
        candidates, exclude : array, list of arrays or sparse mask, optional
            As :meth:`recommend` (one list for everyone, or one per query), or an ``n × n_items`` sparse
            mask.

        Returns
        -------
        Recommendations
            ``int32[n, k]`` ids and ``float32[n, k]`` scores, one row per query, padded with -1 / ``-inf``.

        Raises
        ------
        DataError
            For a query item or user outside the model.
        """
        matrix = self._check_fitted()
        queries = list(queries)
        rows = query_rows(queries, self.n_items)
        users = np.fromiter((-1 if q.user is None else int(q.user) for q in queries), dtype=np.int64,
                            count=len(queries))
        if len(users) and users.max() >= matrix.shape[0]:
            raise DataError(f"query user indices must be in 0..{matrix.shape[0] - 1} (None for a user the model "
                            "never saw)")
        known = users >= 0
        if known.all() or not known.any():
            return self._rank(rows, users if known.any() else None, k, exclude_seen, candidates, exclude)
        k, n = _checked_k(k), len(queries)
        cand = _per_row(candidates, n, self.n_items, "candidates")
        excl = _per_row(exclude, n, self.n_items, "exclude")
        ids = np.full((n, k), -1, dtype=np.int32)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        for part, part_users in ((np.flatnonzero(known), users[known]), (np.flatnonzero(~known), None)):
            result = self._rank(rows[part], part_users, k, exclude_seen, _rows_of(cand, part), _rows_of(excl, part))
            ids[part], scores[part] = result.ids, result.scores
        return Recommendations(ids, scores)

    def score(self, users: np.ndarray | Sequence[int], items: np.ndarray | Sequence[int]) -> np.ndarray:
        """Scores of (user, item) pairs of training users: what :meth:`recommend` ranks them by.

        Recipes that predict ratings (``tags.predicts_ratings``: svd, svdpp) override this to predict the
        rating, with a prediction for unknown users or items too; here a pair with a ``-1`` (unknown) user or
        item scores NaN.

        Parameters
        ----------
        users, items : array of int
            Dense indices, one pair per position (the same length).

        Returns
        -------
        numpy.ndarray
            ``float32`` score of each pair (NaN where the user or the item is -1).

        Raises
        ------
        DataError
            For arrays of different lengths, or indices outside the model (below -1 or too large).
        """
        matrix = self._check_fitted()
        users, items = self._pair_indices(users, items)
        out = np.full(len(users), np.nan, dtype=np.float32)
        known = np.flatnonzero((users >= 0) & (items >= 0))
        if not len(known):
            return out
        order = known[np.argsort(users[known], kind="stable")]
        distinct, starts = np.unique(users[order], return_index=True)
        bounds = np.r_[starts, len(order)]
        step = batch_size(matrix.shape[1])
        for first in range(0, len(distinct), step):
            last = min(first + step, len(distinct))
            block_users = distinct[first:last]
            dense = self._scores(matrix[block_users], block_users)
            span = order[bounds[first]:bounds[last]]
            local = np.repeat(np.arange(last - first), np.diff(bounds[first:last + 1]))
            out[span] = np.asarray(dense, dtype=np.float32)[local, items[span]]
        return out

    def top_users(self, item_sets: ItemSetsLike, k: int = 100, *, exclude_seen: bool = True,
                  users: np.ndarray | Sequence[int] | None = None) -> Recommendations:
        """The ``k`` training users most likely to interact with each item set (Personalize's batch segments).

        For a set of one item (Item-Affinity), users are ranked by the score the recipe gives that item for
        them: what :meth:`recommend` ranks by, and :meth:`score` returns. For a set of many items
        (Item-Attribute-Affinity: the items matching an attribute expression), by their mean score over the
        set's items. Ties come out by user index, as :func:`top_k` breaks them. Scoring runs in blocks of
        users, never user by user; recipes whose scores are linear in the items (factor models, item-knn,
        rp3beta, EASE, svd) score a block against every set at once (transpose scoring), the others through
        their dense scores of the block.

        Parameters
        ----------
        item_sets : array, sequence or sparse matrix
            Dense item indices: a 1-D array gives one one-item set per entry (``np.arange(1000)``: 1,000
            sets); a sequence gives one set per element, an item index or an array of them (``[[3, 8, 9],
            [4]]``); an ``n_sets × n_items`` sparse matrix gives its stored entries per row. -1 entries are
            skipped (padding), repeats count once; an empty set gets no users (a row of padding).
        k : int
            Users per set.
        exclude_seen : bool
            Leave out what each user interacted with in training (the stored entries of ``train_matrix_``,
            as :meth:`recommend` does): a user who interacted with a one-item set's item is left out of that
            set; for a set of many items, the mean is taken over the items the user has not interacted with,
            and a user who interacted with all of them is left out. With False, every user is ranked by the
            mean over all of the set's items.
        users : array of int, optional
            Only rank these training users (dense indices; repeats count once). Default: every training user.

        Returns
        -------
        Recommendations
            One row per set: ``ids`` ``int32[n_sets, k]`` dense USER indices, best first, and ``scores``
            ``float32[n_sets, k]`` their (mean) scores, padded with -1 / ``-inf`` when fewer users qualify.

        Raises
        ------
        ConfigError
            For a ``k`` that is not a positive integer, or a recipe whose scores do not depend on the user
            (``tags.top_users`` false: popularity, trending), which cannot rank users.
        DataError
            For an item or user index outside the model.
        NotFittedError
            Before ``fit`` or ``load``.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from recsmith.data.interactions import Interactions
        >>> from recsmith.recipes import create
        >>> seen = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32))
        >>> knn = create("item-knn", weighting="none", shrink=0.0).fit(Interactions.from_csr(seen))
        >>> segments = knn.top_users([1, [0, 1, 2]], k=2)  # item 1 alone; all three items
        >>> segments.ids.tolist()  # user 1 has item 1's neighbour (item 0); user 0 has item 1 already
        [[1, 2], [1, 0]]
        >>> np.round(segments.scores.astype(float), 3).tolist()  # for the three: the mean over the unseen ones
        [[0.707, 0.0], [0.354, 0.0]]
        """
        matrix = self._check_fitted()
        if not self.tags.top_users:
            raise ConfigError(f"recipe {self.name} gives every user the same scores (its tags.top_users is false), "
                              "so it cannot rank users for items; use a personalized recipe for batch segments, "
                              "such as als, item-knn or ease")
        k = _checked_k(k)
        n_users = matrix.shape[0]
        sets = ItemSets.parse(item_sets, matrix.shape[1])
        chosen = None
        if users is not None:
            chosen = np.unique(np.asarray(users, dtype=np.int64).ravel())
            if len(chosen) and (chosen[0] < 0 or chosen[-1] >= n_users):
                bad = chosen[0] if chosen[0] < 0 else chosen[-1]
                raise DataError(f"users: user index {int(bad)} is outside the model's 0..{n_users - 1}; map user "
                                "ids through the model's vocabulary first (top_users ranks training users only)")
        ids = np.full((sets.n_sets, k), -1, dtype=np.int32)
        best = np.full((sets.n_sets, k), -np.inf, dtype=np.float32)
        if not sets.n_sets:
            return Recommendations(ids, best)
        scorer = self._set_scorer(sets)
        total = n_users if chosen is None else len(chosen)
        step = batch_size(scorer.width)
        for start in range(0, total, step):
            stop = min(start + step, total)
            if chosen is None:
                block_users, rows = np.arange(start, stop), matrix[start:stop]
            else:
                block_users = chosen[start:stop]
                rows = matrix[block_users]
            seen = _binary_pattern(rows, sets.shared) if exclude_seen and rows.nnz else None
            sums = np.asarray(scorer.sums(rows, block_users, seen), dtype=np.float64)
            means = np.full(sums.shape, -np.inf)
            np.divide(sums, sets.sizes, out=means, where=sets.sizes > 0)
            if exclude_seen and rows.nnz:  # the mean over the unseen items; none left: the user is left out
                hits = (_binary_pattern(rows) @ sets.by_item).tocoo()
                left = sets.sizes[hits.col] - hits.data
                means[hits.row, hits.col] = np.where(left > 0, sums[hits.row, hits.col] / np.maximum(left, 1),
                                                     -np.inf)
            _merge_top_users(ids, best, np.ascontiguousarray(means.T, dtype=np.float32), block_users)
        return Recommendations(ids, best)

    def _set_scorer(self, sets: ItemSets) -> SetScorer:
        """How :meth:`top_users` scores a block of users against ``sets``. This default is correct for every
        recipe: the block's dense scores (:meth:`_block_scores`, what :meth:`recommend` ranks), seen items
        zeroed, summed over each set's columns. Recipes whose scores are linear in the items override it to
        score the sets directly (factor models: ``U @ (Σ V[set])``; item-knn: ``X @ (S @ membership)``)."""

        def sums(histories: sp.csr_matrix, users: np.ndarray, seen: sp.csr_matrix | None) -> np.ndarray:
            dense = np.array(self._block_scores(histories, users, None), dtype=np.float32, copy=True, order="C")
            if seen is not None and seen.nnz:
                dense[np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr)), seen.indices] = 0.0
            return set_column_sums(dense, sets)

        return SetScorer(sums, width=self.n_items)

    def _block_scores(self, histories: sp.csr_matrix, users: np.ndarray | None,
                      queries: Sequence[HistoryQuery] | None) -> np.ndarray:
        """Scores of one block of :meth:`_rank`: :meth:`_scores` of the weighted rows. Sequential recipes
        (:class:`~recsmith.recipes.sequential.SequentialRecipe`) read the block's ordered ``queries`` instead
        (None when the block came from training users or a matrix)."""
        return self._scores(histories, users)

    def _rank(self, histories: sp.csr_matrix, users: np.ndarray | None, k: int, exclude_seen: bool,
              candidates: ItemLists | None, exclude: ItemLists | None,
              queries: Sequence[HistoryQuery] | None = None) -> Recommendations:
        k = _checked_k(k)
        n = histories.shape[0]
        cand = _per_row(candidates, n, histories.shape[1], "candidates")
        excl = _per_row(exclude, n, histories.shape[1], "exclude")
        ids = np.full((n, k), -1, dtype=np.int32)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        step = batch_size(histories.shape[1])
        for start in range(0, n, step):
            stop = min(start + step, n)
            block = histories[start:stop]
            raw = self._block_scores(block, None if users is None else users[start:stop],
                                     None if queries is None else queries[start:stop])
            # a private, writable, C-ordered float32 block (recipes may return views of their state)
            dense = np.array(raw, dtype=np.float32, copy=True, order="C")
            if exclude_seen and block.nnz:
                rows = np.repeat(np.arange(stop - start), np.diff(block.indptr))
                dense[rows, block.indices] = -np.inf
            self._mask(dense, cand, start, stop, keep=True)
            self._mask(dense, excl, start, stop, keep=False)
            result = top_k(dense, k)
            ids[start:stop], scores[start:stop] = result.ids, result.scores
        return Recommendations(ids, scores)

    @staticmethod
    def _mask(dense: np.ndarray, items: np.ndarray | sp.csr_matrix | None, start: int, stop: int, keep: bool) -> None:
        """Set to ``-inf`` the items not in ``items`` (``keep``) or in ``items`` (not ``keep``), in place."""
        if items is None:
            return
        if isinstance(items, np.ndarray):
            if keep:
                allowed = np.zeros(dense.shape[1], dtype=bool)
                allowed[items] = True
                dense[:, ~allowed] = -np.inf
            else:
                dense[:, items] = -np.inf
            return
        block = items[start:stop]
        rows = np.repeat(np.arange(stop - start), np.diff(block.indptr))
        if keep:
            allowed = np.zeros(dense.shape, dtype=bool)
            allowed[rows, block.indices] = True
            dense[~allowed] = -np.inf
        else:
            dense[rows, block.indices] = -np.inf

    def _pair_indices(self, users: np.ndarray | Sequence[int], items: np.ndarray | Sequence[int]
                      ) -> tuple[np.ndarray, np.ndarray]:
        """``(users, items)`` of :meth:`score` as int64 arrays of one length, checked against the model (-1 is
        allowed: an unknown user or item)."""
        matrix = self._check_fitted()
        users = np.asarray(users, dtype=np.int64).ravel()
        items = np.asarray(items, dtype=np.int64).ravel()
        if len(users) != len(items):
            raise DataError(f"score needs one item per user: {len(users)} users, {len(items)} items")
        for what, array, n in (("user", users, matrix.shape[0]), ("item", items, matrix.shape[1])):
            if len(array) and (array.min() < -1 or array.max() >= n):
                raise DataError(f"{what} indices must be in 0..{n - 1} (-1 for an unknown {what})")
        return users, items

    def _item_indices(self, items: np.ndarray | Sequence[int]) -> np.ndarray:
        """``items`` as int64 dense indices, checked against the fitted catalogue."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).ravel()
        if len(items) and (items.min() < 0 or items.max() >= self.n_items):
            raise DataError(f"item indices must be in 0..{self.n_items - 1}")
        return items

    @property
    def score_is_probability(self) -> bool:
        """Whether :meth:`score` returns the probability of a positive label (a recipe trained on a binary
        label, such as ``fm`` with ``objective="binary"``); classification metrics then use the scores as they
        are, and calibrate other scores first."""
        return False

    def score_new_items(self, histories: sp.csr_matrix, users: np.ndarray | None,
                        features: FeatureTable) -> np.ndarray:
        """Scores of items the model never saw, from their features alone (``tags.cold_start_items``).

        Parameters
        ----------
        histories : scipy.sparse.csr_matrix
            ``n × n_items`` weighted histories of the users to score for (as :meth:`_scores` takes them).
        users : array of int or None
            Their training indices, or None for users the model never saw (folded in from ``histories``).
        features : FeatureTable
            One row per new item, typed by the items schema the model was trained with (categories it never
            saw count for nothing).

        Returns
        -------
        numpy.ndarray
            ``float32[n, len(features rows)]``, on the scale of :meth:`recommend`'s scores, so new items can
            be merged into a ranking of the known ones.

        Raises
        ------
        ConfigError
            For recipes whose tags lack ``cold_start_items``.
        """
        raise ConfigError(f"recipe {self.name} cannot score items it never saw (its tags.cold_start_items is "
                          "false); train two-tower or fm with item features for cold-start items")

    def similar_items(self, items: np.ndarray | Sequence[int], k: int = 10) -> Recommendations:
        """The ``k`` items most similar to each given item (never the item itself).

        Raises
        ------
        ConfigError
            For recipes whose tags lack ``similar_items``.
        """
        raise ConfigError(f"recipe {self.name} has no item similarity (its tags.similar_items is false); train a "
                          "recipe that has it, such as item-knn, rp3beta, als or bpr")

    def explain(self, history: np.ndarray, weights: np.ndarray, items: np.ndarray) -> np.ndarray | None:
        """Which interacted item contributes most to each recommended item's score, for "because you
        interacted with ..." reasons.

        Parameters
        ----------
        history : array of int
            The user's interacted items (dense indices).
        weights : array of float
            Their interaction weights.
        items : array of int
            Recommended items (dense indices).

        Returns
        -------
        numpy.ndarray or None
            ``int64[len(items)]``: for each item, the history item with the largest positive contribution,
            or -1 when none contributes; None when the recipe's scores are not sums over the history
            (factor models, popularity).
        """
        return None

    def reason_kinds(self, items: np.ndarray) -> list[str] | None:
        """Why each recommended item is in the list, for recipes that know better than serving's default
        reasons (``"personalized"``, ``"history"``, ``"because you interacted with ..."``): e.g. trending's
        ``"trending"`` for a riser and ``"popular"`` for its popularity fallback. Serving
        (:func:`recsmith.serving.recommender.score_history`) shows them in every answer, HTTP and CLI alike.

        Parameters
        ----------
        items : array of int
            Recommended items (dense indices).

        Returns
        -------
        list of str or None
            One reason per item; None (the default) keeps serving's reasons.
        """
        return None

    # ---------------------------------------------------------------------------------- artifacts
    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays to save, besides the training matrix (override)."""
        return {}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:  # noqa: B027 (optional hook)
        """Set learned state from saved arrays (override)."""

    def save(self, path: str | Path) -> Path:
        """Write ``arrays/<name>.npy`` + ``meta.json`` to a temp folder beside ``path``, then rename it into place."""
        matrix = self._check_fitted()
        target = Path(path)
        with atomic_folder(target) as tmp:
            arrays = {"train_data": matrix.data, "train_indices": matrix.indices, "train_indptr": matrix.indptr,
                      "train_shape": np.asarray(matrix.shape, dtype=np.int64)}
            arrays.update({f"state_{key}": np.asarray(value) for key, value in self._state().items()})
            for key, value in arrays.items():
                if value.dtype == object:
                    raise DataError(f"recipe {self.name}: array {key!r} holds Python objects and cannot be saved "
                                    "without pickle")
            (tmp / "arrays").mkdir()
            for key, value in arrays.items():  # one .npy per array, so serving can memory-map them
                np.save(tmp / "arrays" / f"{key}.npy", np.ascontiguousarray(value), allow_pickle=False)
            meta = {"recipe": self.name, "params": self.get_params(), "recsmith_version": __version__,
                    "n_users": int(matrix.shape[0]), "n_items": int(matrix.shape[1]),
                    "shapes": {key: list(value.shape) for key, value in arrays.items()}}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        return target

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = False, read: Callable[[Path], bytes] | None = None) -> Recipe:
        """Read a recipe saved with :meth:`save` (no pickle).

        On a concrete class (``EASE.load(path)``) the folder must hold that recipe; on ``Recipe`` or another
        base, the class named in ``meta.json`` comes from the registry
        (:func:`recsmith.recipes.registry.load_recipe` does the same).

        Parameters
        ----------
        path : str or Path
            The folder :meth:`save` wrote.
        mmap : bool
            Memory-map the arrays read-only instead of reading them into memory: loading is instant and
            processes serving the same artifact share its pages. (Artifacts of older versions, one
            ``arrays.npz``, are read into memory.)
        read : callable, optional
            Reads one of the folder's files into memory (``path -> bytes``) instead of opening it: how an
            encrypted artifact is decrypted (:class:`recsmith.recipes.bundle.TrainedModel`). The arrays are then
            parsed from those bytes, never memory-mapped.

        Raises
        ------
        DataError
            When the folder holds no saved recipe, or one of another class.
        """
        folder = Path(path)
        meta = read_saved_meta(folder, read=read)
        if getattr(cls, "name", None) == meta["recipe"] and not inspect.isabstract(cls):
            klass: type[Recipe] = cls
        else:
            if _class_lookup is None:  # the registry installs it when recsmith.recipes is imported
                raise DataError("no recipe registry to find the saved recipe's class in; import recsmith.recipes")
            klass = _class_lookup(meta["recipe"])
            if not issubclass(klass, cls):
                raise DataError(f"{folder} holds a {meta['recipe']} recipe, not {getattr(cls, 'name', cls.__name__)}")
        params = {key: value for key, value in meta["params"].items()
                  if key in klass.Params.model_fields or key not in FIT_OPTION_NAMES}  # older artifacts' num_threads
        recipe = klass(params)
        if (folder / "arrays").is_dir():
            arrays = {file.stem: np.load(io.BytesIO(read(file)) if read else file,
                                         mmap_mode="r" if mmap and not read else None, allow_pickle=False)
                      for file in sorted((folder / "arrays").glob("*.npy"))}
        else:  # written before arrays were saved one per file
            npz_file = folder / "arrays.npz"
            with np.load(io.BytesIO(read(npz_file)) if read else npz_file, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        shape = tuple(int(x) for x in arrays.pop("train_shape"))
        recipe.train_matrix_ = sp.csr_matrix(
            (arrays.pop("train_data"), arrays.pop("train_indices"), arrays.pop("train_indptr")), shape=shape)
        recipe._restore({key.removeprefix("state_"): value for key, value in arrays.items()})
        return recipe


def strongest_contributor(contributions: np.ndarray, history: np.ndarray) -> np.ndarray:
    """For a ``history × items`` matrix of score contributions, each item's largest positive contributor
    (from ``history``), or -1 (see :meth:`Recipe.explain`)."""
    if contributions.size == 0:
        return np.full(contributions.shape[1], -1, dtype=np.int64)
    best = np.argmax(contributions, axis=0)
    positive = contributions[best, np.arange(contributions.shape[1])] > 0
    return np.where(positive, np.asarray(history, dtype=np.int64)[best], -1)


def read_saved_meta(folder: str | Path, *, read: Callable[[Path], bytes] | None = None) -> dict[str, Any]:
    """The ``meta.json`` of a folder written by :meth:`Recipe.save` (read with ``read`` when given, as
    :meth:`Recipe.load` does).

    Raises
    ------
    DataError
        When it is missing, unreadable or lacks the ``recipe`` and ``params`` keys.
    """
    folder = Path(folder)
    try:
        meta = json.loads(read(folder / "meta.json") if read else (folder / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder} is not a saved recipe (meta.json unreadable: {exc})") from exc
    if not isinstance(meta, dict) or "recipe" not in meta or "params" not in meta:
        raise DataError(f"{folder / 'meta.json'} lacks the 'recipe' and 'params' keys; it was not written by "
                        "Recipe.save")
    return meta


_class_lookup: Callable[[str], type[Recipe]] | None = None


def set_class_lookup(lookup: Callable[[str], type[Recipe]]) -> None:
    """Install how :meth:`Recipe.load` finds a saved recipe's class by name (the registry installs its
    ``recipe_class``; this module never imports the registry)."""
    global _class_lookup
    _class_lookup = lookup
