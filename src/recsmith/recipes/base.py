"""The recipe contract: ``fit`` on :class:`Interactions`, ``recommend`` in dense ids, batch first.

Subclasses implement ``_fit`` (learn state from the training matrix) and ``_scores`` (dense scores for a
batch of user histories); top-k selection, exclusions, candidates, padding, fold-in and artifacts live here
once.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, Self

import numpy as np
import pydantic
import scipy.sparse as sp

from recsmith import __version__
from recsmith.atomic import atomic_folder
from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError, NotFittedError

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


EpochCallback = Callable[[int, "Recipe"], None]
"""``callback(epochs_done, recipe)``, called by iterative recipes after each training epoch."""


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

    Indices outside ``0..n_items-1`` (such as -1 padding) are ignored.
    """
    if values is None:
        return None
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
    """An algorithm with typed hyperparameters, trained on :class:`Interactions`.

    Parameters
    ----------
    params : RecipeParams or dict, optional
        The recipe's params model, or a dict of its fields.
    **kwargs
        Params by name (override ``params``).
    """

    name: ClassVar[str]
    Params: ClassVar[type[RecipeParams]]
    supports_similar_items: ClassVar[bool] = False
    supports_epoch_callback: ClassVar[bool] = False

    epoch_callback: EpochCallback | None = None
    """Iterative recipes (``supports_epoch_callback``) call this during ``fit`` after each epoch with the
    number of epochs done and the recipe, whose learned state is then the current one (so ``recommend`` and
    ``score`` work); for tuning and early stopping. It may raise to stop training: the exception leaves
    ``fit``, and the recipe must be fitted again. Unset (the default), training is unchanged. Never saved
    or cloned."""

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
                if error["type"] == "extra_forbidden":
                    allowed = ", ".join(cls.Params.model_fields)
                    problems.append(f"unknown param {name!r} (params of {cls.name}: {allowed})")
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
    def fit(self, interactions: Interactions) -> Self:
        """Learn from the interactions; returns ``self``."""
        if not isinstance(interactions, Interactions):
            raise DataError(f"fit needs an Interactions object, got {type(interactions).__name__}; "
                            "wrap a matrix with Interactions.from_csr(X)")
        self.train_matrix_ = interactions.matrix.astype(np.float32).tocsr()
        self._fit(interactions)
        return self

    @abstractmethod
    def _fit(self, interactions: Interactions) -> None:
        """Learn the recipe's state from the training data."""

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

    def _rank(self, histories: sp.csr_matrix, users: np.ndarray | None, k: int, exclude_seen: bool,
              candidates: ItemLists | None, exclude: ItemLists | None) -> Recommendations:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        n = histories.shape[0]
        cand = _per_row(candidates, n, histories.shape[1], "candidates")
        excl = _per_row(exclude, n, histories.shape[1], "exclude")
        ids = np.full((n, k), -1, dtype=np.int32)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        step = batch_size(histories.shape[1])
        for start in range(0, n, step):
            stop = min(start + step, n)
            block = histories[start:stop]
            raw = self._scores(block, None if users is None else users[start:stop])
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

    def _item_indices(self, items: np.ndarray | Sequence[int]) -> np.ndarray:
        """``items`` as int64 dense indices, checked against the fitted catalogue."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).ravel()
        if len(items) and (items.min() < 0 or items.max() >= self.n_items):
            raise DataError(f"item indices must be in 0..{self.n_items - 1}")
        return items

    def similar_items(self, items: np.ndarray | Sequence[int], k: int = 10) -> Recommendations:
        """The ``k`` items most similar to each given item (never the item itself)."""
        raise ConfigError(f"recipe {self.name} has no item similarity; use one of: "
                          + ", ".join(_similarity_recipes()))

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
    def load(cls, path: str | Path, *, mmap: bool = False) -> Recipe:
        """Read a recipe saved with :meth:`save` (the class comes from ``meta.json``; no pickle).

        Parameters
        ----------
        path : str or Path
            The folder :meth:`save` wrote.
        mmap : bool
            Memory-map the arrays read-only instead of reading them into memory: loading is instant and
            processes serving the same artifact share its pages. (Artifacts of older versions, one
            ``arrays.npz``, are read into memory.)
        """
        from recsmith.recipes.registry import recipe_class

        folder = Path(path)
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{folder} is not a saved recipe (meta.json unreadable: {exc})") from exc
        if not isinstance(meta, dict) or "recipe" not in meta or "params" not in meta:
            raise DataError(f"{folder / 'meta.json'} lacks the 'recipe' and 'params' keys; it was not written by "
                            "Recipe.save")
        klass = recipe_class(meta["recipe"])
        if cls is not Recipe and not issubclass(klass, cls):
            raise DataError(f"{folder} holds a {meta['recipe']} recipe, not {cls.name}")
        recipe = klass(meta["params"])
        if (folder / "arrays").is_dir():
            arrays = {file.stem: np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
                      for file in sorted((folder / "arrays").glob("*.npy"))}
        else:  # written before arrays were saved one per file
            with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
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


def _similarity_recipes() -> list[str]:
    from recsmith.recipes.registry import available, recipe_class

    return [name for name in available() if recipe_class(name).supports_similar_items]
