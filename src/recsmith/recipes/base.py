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

__all__ = ["EpochCallback", "FitOptions", "HistoryQuery", "Recipe", "RecipeParams", "RecipeTags", "Recommendations",
           "top_k"]

BATCH_USERS = 1024
SCORE_BLOCK_CELLS = 1 << 25  # at most 32M dense float32 scores (128 MB) per batch of users


def batch_size(n_items: int) -> int:
    """Users per scoring batch: :data:`BATCH_USERS`, fewer for big catalogues so a block stays bounded."""
    return max(1, min(BATCH_USERS, SCORE_BLOCK_CELLS // max(n_items, 1)))

ItemLists = np.ndarray | Sequence[np.ndarray] | Sequence[Sequence[int]]


class Recommendations(NamedTuple):
    """Top-k results for a batch of users (or items).

    Attributes
    ----------
    ids : numpy.ndarray
        ``int32[n, k]`` dense item indices, best first, padded with -1.
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


def top_k(scores: np.ndarray, k: int) -> Recommendations:
    """The ``k`` best columns of each row, best first, ties broken by the lower column index (so the first
    ``n`` of a top-``k`` are the top-``n`` for any ``k >= n``); non-finite scores are never chosen; padded
    with -1 / ``-inf``."""
    scores = np.asarray(scores)
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
