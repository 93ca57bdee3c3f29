"""How a recipe trains, kept apart from what it is: ``recipe.fit(data, FitOptions(device="cpu", num_threads=4))``.

Params (:class:`~recsmith.recipes.base.RecipeParams`) describe the model and are saved with it; options
describe one training run (where it runs, how many threads, who is told of its progress) and are never
saved, so a model trained on a GPU, or on 64 threads, loads and serves on a small CPU-only host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from recsmith.errors import ConfigError

Device = Literal["cpu", "cuda", "auto"]

EpochCallback = Callable[[int, Any], None]
"""``callback(epochs_done, recipe)``: iterative recipes call it during ``fit`` after each epoch, with the
recipe's learned state set to that epoch's (``recommend`` and ``score`` work). It may raise to stop training:
the exception leaves ``fit``, and the recipe must be fitted again."""

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``: steps of training done out of ``total``. Iterative recipes count epochs
(``(0, epochs)`` first, then ``(e, epochs)`` after each); the others report ``(0, 1)`` then ``(1, 1)``."""


@runtime_checkable
class FitEngine(Protocol):
    """Where a recipe's learning runs when it is not this process: another engine computes the learned state,
    and ``Recipe.fit`` sets it as ``Recipe.load`` does (through the recipe's ``_restore``), so the fitted recipe,
    its artifact and its serving are those of a local fit. :class:`recsmith.engines.spark.SparkEngine` is one
    (``pyspark.ml``'s ALS for ``als``); recipes never import an engine.
    """

    name: str
    """The engine's name (``"spark"``), recorded with the models it trains."""

    def check(self, recipe: type, options: FitOptions) -> None:
        """Raise :class:`~recsmith.errors.ConfigError` when this engine cannot train ``recipe`` (a recipe class)
        under ``options`` (called before any work)."""

    def learned_state(self, recipe: Any, data: Any, options: FitOptions) -> dict[str, Any]:
        """The learned arrays of ``recipe`` (unfitted, with its params) trained on ``data`` (a
        :class:`~recsmith.data.training.TrainingData`), keyed as the recipe's ``_state`` saves them."""

    def describe(self) -> dict[str, Any]:
        """What to record about the engine with a model it trained (JSON-ready: name, master, version)."""


@dataclass(frozen=True)
class FitOptions:
    """Where and how one ``fit`` runs; never saved with the model.

    Parameters
    ----------
    device : {"cpu", "cuda", "auto"}
        ``cpu`` (the default) trains on the CPU. ``cuda`` trains on a GPU, and ``fit`` raises
        :class:`~recsmith.errors.ConfigError` when the recipe cannot (its ``tags.devices`` lack ``cuda``) or
        no CUDA device is usable: an explicit request is never silently downgraded. ``auto`` takes the GPU
        when the recipe can use one and one is there, the CPU otherwise.
    num_threads : int
        Threads for training: ``implicit``'s own threads (als, bpr, item-knn's neighbour search) and the BLAS
        thread pools (through threadpoolctl) for the others. 0 (the default): the recipe's default, which is
        every core except for ``bpr``, whose lock-free SGD is reproducible only on one thread.
    progress : callable, optional
        ``progress(done, total)`` (see :data:`ProgressCallback`).
    epoch_callback : callable, optional
        ``callback(epochs_done, recipe)`` after each epoch of an iterative recipe (see
        :data:`EpochCallback`); for tuning and early stopping. Recipes that are not iterative never call it.
    engine : FitEngine, optional
        Train on another engine (:class:`recsmith.engines.spark.SparkEngine`) instead of in this process; the
        fitted recipe is the same kind of object either way. None (the default): train here.

    Raises
    ------
    ConfigError
        For an unknown device or a negative thread count.

    Examples
    --------
    >>> FitOptions(device="cpu", num_threads=2)
    FitOptions(device='cpu', num_threads=2, progress=None, epoch_callback=None, engine=None)
    """

    device: Device = "cpu"
    num_threads: int = 0
    progress: ProgressCallback | None = None
    epoch_callback: EpochCallback | None = None
    engine: FitEngine | None = None

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"device must be 'cpu', 'cuda' or 'auto', got {self.device!r}")
        if isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int) or self.num_threads < 0:
            raise ConfigError(f"num_threads must be a whole number >= 0 (0: the recipe's default), "
                              f"got {self.num_threads!r}")
        if self.engine is not None and not isinstance(self.engine, FitEngine):
            raise ConfigError(f"engine must be a FitEngine (such as recsmith.engines.spark.SparkEngine), "
                              f"got {type(self.engine).__name__}")

    def resolve_device(self, recipe: Any) -> str:
        """The device ``recipe`` (a :class:`~recsmith.recipes.base.Recipe` or its class) trains on under these
        options: ``"cpu"`` or ``"cuda"``, never ``"auto"``.

        Raises
        ------
        ConfigError
            ``device="cuda"`` for a recipe that trains on the CPU only, or where no CUDA device is usable.
        """
        klass = recipe if isinstance(recipe, type) else type(recipe)
        if self.device == "cpu":
            return "cpu"
        can = "cuda" in klass.tags.devices
        if self.device == "auto":
            return "cuda" if can and klass.cuda_available() else "cpu"
        if not can:
            raise ConfigError(f"recipe {klass.name} trains on the CPU only (its tags.devices are "
                              f"{klass.tags.devices}); use FitOptions(device='cpu') or device='auto'")
        if not klass.cuda_available():
            raise ConfigError(f"device='cuda' was asked for recipe {klass.name}, but no CUDA device is usable on "
                              "this machine (no GPU, no driver, or a CPU-only build of the library it trains "
                              "with); use device='cpu', or device='auto' to take a GPU only where there is one")
        return "cuda"
