"""The one training loop of the PyTorch recipes (``fm``, ``neumf``, ``two-tower``), and what they share.

:class:`TorchRecipe` trains a recipe's ``torch.nn.Module`` in mini-batches and keeps, once training ends, only
plain numpy arrays: serving (and ``save``/``load``) never imports torch, and the artifact is ``.npy`` + JSON.
The loop, written once:

- seeded (``seed`` param: numpy and torch);
- ``SparseAdam`` for the embedding tables (sparse gradients: only the rows of a batch move) and ``Adam`` for
  the dense weights; L2 regularisation on the rows a batch touches (``reg``);
- a validation slice carved from the training examples (``val_fraction``, seeded); early stopping after
  ``patience`` epochs without a better validation loss, keeping the best epoch; ``ReduceLROnPlateau`` on the
  validation loss (``lr_patience``, ``lr_factor``);
- ``history_``: one dict per epoch (``epoch``, ``loss``, ``val_loss``, ``lr``, ``seconds``), appended before
  :attr:`FitOptions.epoch_callback` runs, so progress bars show the losses;
- Ctrl-C (``KeyboardInterrupt``) after the first epoch stops training and keeps the best epoch so far.

torch is an optional dependency (``pip install "recsmith[torch]"``): it is imported when a model is trained.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError, NotFittedError
from recsmith.recipes.base import Recipe, RecipeParams
from recsmith.recipes.options import FitOptions
from recsmith.recipes.tags import RecipeTags

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "recsmith[torch]" (on a CPU-only host: pip install torch==2.13.0)'
SPARSE_ROWS = 50_000
"""Embedding rows from which SparseAdam beats Adam here (``benchmarks/neural.py --sparse``)."""
TORCH_TAGS = RecipeTags(iterative=True, devices=("cpu", "cuda"), deterministic=False)


def require_torch(recipe: str) -> Any:
    """The ``torch`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import torch
    except ImportError as exc:  # torch absent, or put out of reach (sys.modules["torch"] = None)
        raise ConfigError(f"recipe {recipe} trains with PyTorch, which is not installed: {INSTALL_HINT}") from exc
    return torch


class TorchParams(RecipeParams):
    """Params every PyTorch recipe shares (the training loop's)."""

    epochs: int = Field(default=20, ge=1)
    """Most passes over the training examples (early stopping may end sooner)."""

    batch_size: int = Field(default=1024, ge=1)
    """Examples per step."""

    lr: float = Field(default=0.01, gt=0.0)
    """Initial learning rate (Adam and SparseAdam)."""

    reg: float = Field(default=1e-5, ge=0.0)
    """L2 penalty on the embedding rows of each batch."""

    val_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of the training examples held out for the validation loss (0: none, so no early stopping)."""

    patience: int = Field(default=3, ge=0)
    """Epochs without a better validation loss before training stops and the best epoch is kept (0: never stop
    early, keep the last epoch)."""

    lr_patience: int = Field(default=1, ge=0)
    """Epochs without a better validation loss before the learning rate is cut (ReduceLROnPlateau)."""

    lr_factor: float = Field(default=0.5, gt=0.0, lt=1.0)
    """What the learning rate is multiplied by on a plateau."""

    sparse: bool | None = None
    """Sparse gradients for the embedding tables, with SparseAdam; false: Adam for every weight. None (the
    default): sparse when the tables have at least :data:`SPARSE_ROWS` rows, where it measures faster."""

    quantize: bool = False
    """Keep the served embedding tables as int8 with one float32 scale per row (4× smaller artifacts; scores
    change slightly: see the README's measurements)."""

    seed: int = 0
    """Seed of the initial weights, the validation slice and the negative samples."""


Batch = dict[str, np.ndarray]


class TorchRecipe(Recipe):
    """Base of the PyTorch recipes: the training loop, numpy state, int8 quantisation.

    Subclasses implement:

    - :meth:`_prepare` (numpy): read the training data, return the training examples, one array per field,
      all of one length;
    - :meth:`_module` (torch): the ``nn.Module`` to train;
    - :meth:`_batch` (numpy): the arrays of one batch from a slice of the examples (e.g. with sampled
      negatives), given the random generator;
    - :meth:`_loss` (torch): the batch loss (the loop adds the L2 penalty the module reports);
    - :meth:`_export` (torch -> numpy): set the recipe's numpy state from the module;
    - :meth:`_set_arrays` (numpy): the scoring attributes from saved (dequantised) state arrays;
    - :meth:`_torch_pairs` (torch): pair scores of the module, which the numpy forward must reproduce;
    - ``_scores`` (numpy) from :class:`~recsmith.recipes.base.Recipe`.
    """

    Params: ClassVar[type[TorchParams]] = TorchParams
    tags = TORCH_TAGS
    quantized_arrays: ClassVar[tuple[str, ...]] = ()
    """State arrays stored as int8 when ``quantize`` is set."""

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.history_: list[dict[str, Any]] = []
        self.arrays_: dict[str, np.ndarray] = {}

    @classmethod
    def cuda_available(cls) -> bool:
        try:
            import torch
        except ImportError:
            return False
        return bool(torch.cuda.is_available())

    def fit(self, data: Any, options: FitOptions | None = None) -> TorchRecipe:
        require_torch(self.name)  # before any work: the message says how to install it
        return super().fit(data, options)

    def _sparse(self, rows: int) -> bool:
        """Whether embedding tables of ``rows`` rows in all get sparse gradients (the ``sparse`` param)."""
        return bool(self.params.sparse) if self.params.sparse is not None else rows >= SPARSE_ROWS

    # ------------------------------------------------------------------------------------ hooks
    @abstractmethod
    def _prepare(self, data: TrainingData, rng: np.random.Generator) -> Batch:
        """The training examples (numpy arrays of one length)."""

    @abstractmethod
    def _module(self, torch: Any) -> Any:
        """The ``nn.Module`` to train (built from what :meth:`_prepare` learned)."""

    @abstractmethod
    def _batch(self, examples: Batch, rng: np.random.Generator) -> Batch:
        """The arrays of one step for a slice of the examples."""

    @abstractmethod
    def _loss(self, module: Any, batch: dict[str, Any], torch: Any) -> tuple[Any, Any]:
        """``(loss, l2)`` of a batch of tensors: the mean loss and the squared norm of the rows it used."""

    @abstractmethod
    def _export(self, module: Any, torch: Any) -> None:
        """Set the numpy state (``arrays_`` and attributes) from the trained module."""

    # ------------------------------------------------------------------------------------ the loop
    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        torch = require_torch(self.name)
        p = self.params
        rng = np.random.default_rng(p.seed)
        torch.manual_seed(p.seed)
        device = torch.device(options.device)
        threads = torch.get_num_threads()
        if options.num_threads:
            torch.set_num_threads(options.num_threads)
        try:
            self._train(torch, device, data, options, rng)
        finally:
            torch.set_num_threads(threads)

    def _train(self, torch: Any, device: Any, data: TrainingData, options: FitOptions,
               rng: np.random.Generator) -> None:
        """Prepare the examples, build the module, run :meth:`_loop`, keep the best epoch as numpy state."""
        examples = self._prepare(data, rng)
        module = self._module(torch).to(device)
        self._loop(torch, device, module, examples, options, rng, self.params.epochs)
        self._finish(module, torch)

    def _finish(self, module: Any, torch: Any) -> None:
        """Export the trained module's numpy state (int8 tables when ``quantize``); the module stays as
        ``module_`` until the recipe is saved or dropped (never saved: the artifact is the numpy state)."""
        module.eval()
        self.module_ = module
        self._export(module, torch)
        if self.arrays_ and self.params.quantize:
            self.arrays_ = quantized(self.arrays_, self.quantized_arrays)
            self._restore(dict(self.arrays_))

    def _loop(self, torch: Any, device: Any, module: Any, examples: Batch, options: FitOptions,
              rng: np.random.Generator, epochs: int) -> None:
        """Train ``module`` for at most ``epochs`` epochs (see the module docstring), leaving it at its best
        epoch; ``history_`` and ``best_epoch_`` record how it went."""
        p = self.params
        examples, validation = self._split_examples(examples, rng)
        train_rows = np.arange(len(next(iter(examples.values()))))
        val_rows = np.arange(len(next(iter(validation.values()))))
        sparse_params = [w for m in module.modules() if isinstance(m, torch.nn.Embedding) and m.sparse
                         for w in m.parameters()]
        sparse_ids = {id(w) for w in sparse_params}
        dense_params = [w for w in module.parameters() if id(w) not in sparse_ids]
        optimizers = []
        if sparse_params:
            optimizers.append(torch.optim.SparseAdam(sparse_params, lr=p.lr))
        if dense_params:
            optimizers.append(torch.optim.Adam(dense_params, lr=p.lr))
        schedulers = [torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=p.lr_factor, patience=p.lr_patience)
                      for opt in optimizers]
        val_rng = np.random.default_rng(p.seed + 1)
        val_batches = [self._batch(_take(validation, val_rows[start:start + p.batch_size]), val_rng)
                       for start in range(0, len(val_rows), p.batch_size)]
        self.history_ = []
        best: tuple[float, int, dict[str, Any]] | None = None
        stale = 0
        try:
            for epoch in range(1, epochs + 1):
                started = time.perf_counter()
                module.train()
                total, count = 0.0, 0
                shuffled = rng.permutation(train_rows)
                for batch in self._batches(examples, shuffled, rng):
                    tensors = _tensors(batch, torch, device)
                    loss, l2 = self._loss(module, tensors, torch)
                    for opt in optimizers:
                        opt.zero_grad(set_to_none=True)
                    (loss + p.reg * l2).backward()
                    for opt in optimizers:
                        opt.step()
                    size = len(next(iter(batch.values())))
                    total += float(loss.detach()) * size
                    count += size
                train_loss = total / max(count, 1)
                val_loss = self._evaluate(module, val_batches, torch, device) if val_batches else None
                watched = val_loss if val_loss is not None else train_loss
                if val_batches:
                    for scheduler in schedulers:
                        scheduler.step(watched)
                if best is None or watched < best[0] - 1e-7:
                    best = (watched, epoch, {k: v.detach().clone() for k, v in module.state_dict().items()})
                    stale = 0
                else:
                    stale += 1
                self.history_.append({"epoch": epoch, "loss": round(train_loss, 6),
                                      "val_loss": None if val_loss is None else round(val_loss, 6),
                                      "lr": float(optimizers[0].param_groups[0]["lr"]),
                                      "seconds": round(time.perf_counter() - started, 4)})
                if options.epoch_callback is not None:
                    self._export(module, torch)
                self._epoch_done(options, epoch)
                if val_batches and p.patience and stale >= p.patience:
                    logger.info("%s: no better validation loss for %d epochs; keeping epoch %d", self.name, stale,
                                best[1])
                    break
        except KeyboardInterrupt:
            if best is None:
                raise
            logger.warning("%s: interrupted during epoch %d; keeping epoch %d (validation loss %.5f)", self.name,
                           len(self.history_) + 1, best[1], best[0])
            self.history_.append({"epoch": len(self.history_) + 1, "interrupted": True})
        assert best is not None
        interrupted = bool(self.history_) and "interrupted" in self.history_[-1]
        if (val_batches and p.patience) or interrupted:  # early stopping (or Ctrl-C) keeps the best epoch
            module.load_state_dict(best[2])
            self.best_epoch_ = best[1]
        else:  # patience 0: the last epoch
            self.best_epoch_ = len(self.history_)
        done = len([h for h in self.history_ if "loss" in h])
        if options.progress is not None and done < epochs:
            options.progress(epochs, epochs)  # stopped early: the bar ends

    def _split_examples(self, examples: Batch, rng: np.random.Generator) -> tuple[Batch, Batch]:
        """``(training, validation)`` examples: a seeded ``val_fraction`` of the examples held out (all of them
        train when that leaves none). Sequence recipes override it to hold out each chosen user's last step
        instead of the whole user."""
        n = len(next(iter(examples.values())))
        order = rng.permutation(n)
        n_val = int(round(n * self.params.val_fraction)) if n > 1 else 0
        val_rows, train_rows = order[:n_val], order[n_val:]
        if not len(train_rows):
            train_rows = order
        return _take(examples, train_rows), _take(examples, val_rows)

    def _batches(self, examples: Batch, rows: np.ndarray, rng: np.random.Generator) -> Iterator[Batch]:
        """The training batches of one epoch, from the examples at ``rows`` (shuffled), in that order."""
        size = self.params.batch_size
        for start in range(0, len(rows), size):
            yield self._batch(_take(examples, rows[start:start + size]), rng)

    def _evaluate(self, module: Any, batches: list[Batch], torch: Any, device: Any) -> float:
        module.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in batches:
                loss, _ = self._loss(module, _tensors(batch, torch, device), torch)
                size = len(next(iter(batch.values())))
                total += float(loss) * size
                count += size
        return total / max(count, 1)

    def torch_logits(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The trained torch module's scores of (training user, item) pairs, on the CPU: what the numpy
        forward of ``_scores`` must reproduce (to 1e-5; tested). Only right after ``fit``.

        Raises
        ------
        NotFittedError
            When the recipe was loaded from an artifact (it holds no torch module) or never fitted.
        """
        module = getattr(self, "module_", None)
        if module is None:
            raise NotFittedError(f"recipe {self.name} has no torch module (loaded from an artifact, or not fitted)")
        torch = require_torch(self.name)
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        module = module.to("cpu").eval()
        with torch.no_grad():
            return np.asarray(self._torch_pairs(module, users, items, torch), dtype=np.float32)

    @abstractmethod
    def _torch_pairs(self, module: Any, users: np.ndarray, items: np.ndarray, torch: Any) -> Any:
        """Torch scores of pairs (see :meth:`torch_logits`)."""

    # ------------------------------------------------------------------------------------ state
    def _state(self) -> dict[str, np.ndarray]:
        return dict(self.arrays_)

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays_ = dict(arrays)
        for name in list(arrays):
            if name.startswith("int8_"):
                base = name.removeprefix("int8_")
                arrays[base] = (np.asarray(arrays[name], dtype=np.float32)
                                * np.asarray(arrays[f"scale_{base}"], dtype=np.float32)[:, None])
        self._set_arrays(arrays)

    @abstractmethod
    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Set the attributes scoring reads from the (dequantised) state arrays."""


def quantized(arrays: dict[str, np.ndarray], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``arrays`` with each of ``names`` stored as ``int8_<name>`` (symmetric, per row) and ``scale_<name>``
    (``float32``: the row's largest absolute value / 127)."""
    out = dict(arrays)
    for name in names:
        if name not in out:
            continue
        matrix = np.asarray(out.pop(name), dtype=np.float32)
        scale = np.abs(matrix).max(axis=1) / 127.0 if matrix.size else np.zeros(len(matrix), dtype=np.float32)
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        out[f"int8_{name}"] = np.clip(np.rint(matrix / scale[:, None]), -127, 127).astype(np.int8)
        out[f"scale_{name}"] = scale
    return out


def _take(examples: Batch, rows: np.ndarray) -> Batch:
    return {key: value[rows] for key, value in examples.items()}


def _tensors(batch: Batch, torch: Any, device: Any) -> dict[str, Any]:
    return {key: torch.from_numpy(np.ascontiguousarray(value)).to(device) for key, value in batch.items()}


# ------------------------------------------------------------------------------ shared numpy pieces
def positive_pairs(data: TrainingData) -> tuple[np.ndarray, np.ndarray]:
    """``(users, items)`` of the matrix's positive entries (weight > 0), as int64."""
    matrix = data.interactions.matrix.tocsr()
    users = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    keep = matrix.data > 0
    return users[keep], matrix.indices.astype(np.int64)[keep]


class NegativeSampler:
    """Uniform negative items for users, resampled (a few times) where they hit one of the user's positives."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int) -> None:
        self.n_items = int(n_items)
        self.keys = np.unique(users.astype(np.int64) * self.n_items + items.astype(np.int64))

    def sample(self, users: np.ndarray, per_user: int, rng: np.random.Generator) -> np.ndarray:
        """``int64[len(users), per_user]`` items that are (almost always) not the users' positives."""
        users = np.repeat(users.astype(np.int64), per_user)
        items = rng.integers(0, self.n_items, len(users))
        for _ in range(5):
            hit = self._positive(users, items)
            if not hit.any():
                break
            items[hit] = rng.integers(0, self.n_items, int(hit.sum()))
        return items.reshape(-1, per_user)

    def _positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        where = np.searchsorted(self.keys, keys)
        where = np.minimum(where, len(self.keys) - 1)
        return self.keys[where] == keys if len(self.keys) else np.zeros(len(keys), dtype=bool)


def neighbour_fold_in(histories: sp.csr_matrix, train: sp.csr_matrix, vectors: np.ndarray) -> np.ndarray:
    """Vectors of users the model never saw: the mean of the training users' vectors, weighted by how many of
    the new user's items they share (a user with no overlap gets the mean user)."""
    positive = sp.csr_matrix(histories, dtype=np.float32, copy=True)
    positive.data = (positive.data > 0).astype(np.float32)
    binary = sp.csr_matrix(train, dtype=np.float32, copy=True)
    binary.data = (binary.data > 0).astype(np.float32)
    overlap = sp.csr_matrix(positive @ binary.T)  # sparse: a batch of strangers never densifies all users
    totals = np.asarray(overlap.sum(axis=1), dtype=np.float32)
    mean = vectors.mean(axis=0, keepdims=True) if len(vectors) else np.zeros((1, vectors.shape[1]), np.float32)
    folded = np.where(totals > 0, np.asarray(overlap @ vectors) / np.maximum(totals, 1e-12), mean)
    return folded.astype(np.float32)
