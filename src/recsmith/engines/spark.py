"""Train on Apache Spark: ``als`` with ``pyspark.ml.recommendation.ALS`` (``pip install 'recsmith[spark]'``).

The engine trains what the local recipe trains and hands back the same learned arrays, so a Spark-trained
``als`` is an ordinary :class:`~recsmith.recipes.factorization.ALS`: the same artifact, served by campaigns,
``recsmith recommend`` and batch jobs unchanged.

What goes to Spark is the training matrix the local fit gets (:attr:`TrainingData.interactions.matrix`: the
dataset group's events weighted by the solution's event weights and decay, deletions applied), as
``(user, item, rating)`` rows keyed by recsmith's dense vocabulary indices (Spark's ALS takes int ids). It
travels as a Parquet file in a staging folder when the master is local (``local[N]``) and through the driver
(``createDataFrame``) otherwise. The driver builds that matrix anyway: the artifact keeps it (serving excludes
what a user has seen), the vocabularies come from it, and the offline metrics split it.

How :class:`~recsmith.recipes.factorization.ALSParams` map onto Spark's ALS (``implicitPrefs=True``):

=============  ==========================================================================================
``factors``    ``rank``
``epochs``     ``maxIter`` (one sweep over users and items each)
``alpha``      ``alpha``, with each weight ``w`` given as the rating ``sign(w)·(|w| - 1/alpha)``: Spark's
               confidence ``1 + alpha·|r|`` is then ``alpha·|w|``, the confidence the local fit (the
               ``implicit`` library) gives it. Where ``alpha·|w| <= 1`` Spark cannot express that confidence
               (below an unobserved pair's): a positive weight becomes a tiny positive rating (preference 1,
               confidence about 1), a negative one a rating of 0 (the pair counts as unobserved).
``reg``        ``regParam = reg / sqrt(mean positives per user × mean positives per item)``: Spark scales
               each row's L2 penalty by its number of positive ratings (ALS-WR, Zhou et al. 2008), ``implicit``
               does not; this keeps the mean penalty the same, not each row's.
``seed``       ``seed`` (another random generator: the same seed gives other initial factors than locally)
=============  ==========================================================================================

No Spark equivalent: ``implicit``'s conjugate-gradient solve (three CG steps per row and sweep; Spark solves
each row exactly by Cholesky), ``FitOptions.num_threads`` (Spark's cores come from the master: ``local[N]``,
the cluster's executors), ``FitOptions.device`` (CPU only) and per-epoch callbacks (Spark reports no epochs:
tuning's pruning needs the local engine). Spark-only settings chosen here: ``numUserBlocks`` and
``numItemBlocks`` = the session's default parallelism, ``checkpointInterval`` = 10 sweeps with a checkpoint
directory always set (without one, long ALS lineages end in ``StackOverflowError``), ``nonnegative=False``.
Users or items that Spark returns no factors for (no rows in its input) or NaN factors get zero vectors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError
from recsmith.recipes.options import FitOptions
from recsmith.recipes.registry import recipe_name

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'recsmith[spark]'"
SUPPORTED = ("als",)
"""Recipes the Spark engine trains."""
CHECKPOINT_INTERVAL = 10
"""ALS sweeps between checkpoints (Spark's ``checkpointInterval``)."""
TINY_RATING = 1e-6
"""The rating of a positive weight whose confidence Spark cannot express (see the module's table)."""

_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""
"""The JVM's log4j2 settings until ``setLogLevel`` (so the session's start prints no INFO or WARN lines)."""
PANDAS_WARNING = "PySpark does not yet fully support pandas"
"""pyspark 4.x's FutureWarning about pandas 3, raised on import and on conversions; recsmith converts through
Arrow and silences it."""


def import_pyspark() -> Any:
    """``pyspark``, imported on first use.

    Raises
    ------
    ConfigError
        When pyspark is not installed, saying how to install it.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)
            import pyspark
            import pyspark.ml.recommendation  # noqa: F401 (the ALS this engine fits)
            import pyspark.sql  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"the Spark engine needs pyspark, which is not installed here ({exc}); install the "
                          f"spark extra: {INSTALL_HINT} (and Java 17 or newer), or train with --engine local"
                          ) from None
    return pyspark


def check_recipe(recipe: str | type) -> str:
    """The registry name of ``recipe`` (a name or a recipe class) when the Spark engine trains it.

    Raises
    ------
    ConfigError
        For a recipe it does not train (the message lists those it does), or a missing ``spark`` extra.
    """
    name = recipe if isinstance(recipe, str) else str(getattr(recipe, "name", recipe))
    name = recipe_name(name)
    if name not in SUPPORTED:
        raise ConfigError(f"recipe {name} cannot train on the Spark engine; it trains {', '.join(SUPPORTED)} "
                          f"(train {name} with --engine local, the default)")
    import_pyspark()
    return name


def is_local_master(master: str) -> bool:
    """Whether ``master`` runs Spark inside this machine (``local``, ``local[N]``, ``local[*]``)."""
    return master == "local" or master.startswith("local[")


def check_checkpoint_dir(master: str, checkpoint_dir: str | None) -> None:
    """Refuse a cluster master without a checkpoint directory (a local one gets a temporary folder).

    Raises
    ------
    ConfigError
        Naming the setting to pass.
    """
    if not is_local_master(master) and not checkpoint_dir:
        raise ConfigError(f"Spark master {master!r} needs a checkpoint directory every executor can reach (ALS "
                          "checkpoints its lineage there): pass --spark-conf spark.checkpoint.dir=hdfs://... "
                          "(or s3a://..., a shared folder)")


def default_driver_memory() -> str:
    """A quarter of this machine's memory, between 1 and 16 GiB (``spark.driver.memory``: in local mode the
    driver's JVM holds the executors' work too)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "2g"
    gib = int(min(max(total / 4 / 2**30, 1), 16))
    return f"{gib}g"


@contextlib.contextmanager
def spark_session(master: str = "local[2]", *, app_name: str = "recsmith", driver_memory: str | None = None,
                  checkpoint_dir: str | None = None, conf: Mapping[str, str] | None = None,
                  log_level: str = "ERROR") -> Iterator[SparkSession]:
    """A Spark session set up for recsmith, stopped when the block ends.

    Sets ``SPARK_LOCAL_IP=127.0.0.1`` for a local master when it is unset (pyspark 4 otherwise binds a
    non-loopback address), a checkpoint directory (a temporary folder, removed at the end, for a local master),
    ``spark.driver.memory`` (:func:`default_driver_memory` unless given), no web UI or console progress bars,
    and quiet logs (``log_level``, from the JVM's first line on). A session already running in this process
    is used as it is (its master and settings stay, a checkpoint directory is set if it has none) and left
    running.

    Parameters
    ----------
    master : str
        ``local[2]``, ``local[*]``, ``spark://host:7077``, ``yarn``, ...
    app_name : str
        The application's name.
    driver_memory : str, optional
        ``spark.driver.memory`` (``4g``).
    checkpoint_dir : str, optional
        Where ALS checkpoints its lineage. Needed for a cluster master (a folder every executor reaches, such as
        ``hdfs://…``); also taken from ``conf["spark.checkpoint.dir"]``.
    conf : mapping, optional
        Other Spark settings.
    log_level : str
        The JVM's log level (``ERROR``, ``WARN``, ``INFO``).

    Yields
    ------
    pyspark.sql.SparkSession

    Raises
    ------
    ConfigError
        Without pyspark, or for a cluster master without a checkpoint directory.
    """
    import_pyspark()
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    conf = dict(conf or {})
    checkpoint_dir = checkpoint_dir or conf.pop("spark.checkpoint.dir", None)
    running = SparkContext._active_spark_context  # type: ignore[attr-defined]
    if running is not None:
        logger.info("using the Spark session already running (master %s; its settings are kept)", running.master)
        if not running.getCheckpointDir():  # it outlives this block: a folder of its own, not removed here
            running.setCheckpointDir(checkpoint_dir or tempfile.mkdtemp(prefix="recsmith-spark-checkpoints-"))
        yield SparkSession.builder.getOrCreate()
        return
    check_checkpoint_dir(master, checkpoint_dir)
    if is_local_master(master):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with _scratch_folder("recsmith-spark-") as scratch:
        (scratch / "log4j2.properties").write_text(_LOG4J.replace("= error", f"= {log_level.lower()}"))
        settings = {
            "spark.driver.memory": driver_memory or default_driver_memory(),
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.cleaner.referenceTracking.cleanCheckpoints": "true",
            "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{scratch / 'log4j2.properties'}",
        }
        if is_local_master(master):
            settings["spark.local.dir"] = str(scratch / "local")
            settings["spark.sql.shuffle.partitions"] = "8"
        settings.update(conf)
        builder = SparkSession.builder.master(master).appName(app_name)
        for key, value in settings.items():
            builder = builder.config(key, str(value))
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)
            session = builder.getOrCreate()
        try:
            session.sparkContext.setLogLevel(log_level)
            session.sparkContext.setCheckpointDir(checkpoint_dir or str(scratch / "checkpoints"))
            logger.info("Spark %s session on %s started in %.1f s", session.version, master,
                        time.perf_counter() - started)
            yield session
        finally:
            session.stop()


@contextlib.contextmanager
def _scratch_folder(prefix: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class SparkEngine:
    """Trains recipes on Apache Spark (:data:`SUPPORTED`: ``als``); a :class:`~recsmith.recipes.options.FitEngine`.

    Pass it as ``FitOptions(engine=...)`` to ``recipe.fit``, ``evaluate_recipes`` or a training job. The session
    starts at the first fit (or ``start()`` / ``with engine:``) and is stopped by ``close()`` (or the end of the
    ``with`` block), unless it was given.

    Parameters
    ----------
    master : str
        Spark's master URL (default ``local[2]``).
    conf : mapping, optional
        Spark settings (``spark.driver.memory``, ``spark.checkpoint.dir``, ``spark.executor.memory``, ...).
    session : pyspark.sql.SparkSession, optional
        A running session to use (then kept running).
    checkpoint_interval : int
        ALS sweeps between checkpoints.

    Examples
    --------
    >>> from recsmith.recipes import FitOptions, create  # doctest: +SKIP
    >>> with SparkEngine("local[2]") as engine:  # doctest: +SKIP
    ...     model = create("als", factors=64).fit(data, FitOptions(engine=engine))
    """

    name = "spark"

    def __init__(self, master: str = "local[2]", *, conf: Mapping[str, str] | None = None,
                 session: SparkSession | None = None, checkpoint_interval: int = CHECKPOINT_INTERVAL) -> None:
        if not isinstance(master, str) or not master.strip():
            raise ConfigError(f"a Spark master URL is local[N], spark://HOST:PORT, yarn, ...; got {master!r}")
        self.master = master.strip()
        self.conf = dict(conf or {})
        if session is None:
            check_checkpoint_dir(self.master, self.conf.get("spark.checkpoint.dir"))
        self.checkpoint_interval = int(checkpoint_interval)
        self._session = session
        self._stack: contextlib.ExitStack | None = None

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> SparkSession:
        """The session (started on the first call)."""
        if self._session is None:
            stack = contextlib.ExitStack()
            self._session = stack.enter_context(spark_session(self.master, conf=self.conf))
            self._stack = stack
        return self._session

    def close(self) -> None:
        """Stop the session if this engine started it."""
        if self._stack is not None:
            stack, self._stack, self._session = self._stack, None, None
            stack.close()

    def __enter__(self) -> SparkEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------- FitEngine
    def check(self, recipe: type, options: FitOptions) -> None:
        """Refuse what this engine cannot do (a recipe other than :data:`SUPPORTED`, a CUDA device, per-epoch
        callbacks) with a :class:`~recsmith.errors.ConfigError`."""
        check_recipe(recipe)
        if options.device != "cpu":
            raise ConfigError(f"the Spark engine trains on the cluster's CPUs; device {options.device!r} does not "
                              "apply to it (leave --device at cpu)")
        if options.epoch_callback is not None:
            raise ConfigError("the Spark engine reports no epochs, so it cannot call an epoch callback (tuning "
                              "prunes trials by epoch); use the local engine for that")

    def learned_state(self, recipe: Any, data: TrainingData, options: FitOptions) -> dict[str, np.ndarray]:
        """The learned arrays of ``recipe`` fitted on Spark (``user_factors``/``item_factors`` for ``als``)."""
        name = check_recipe(type(recipe))
        session = self.start()
        if name == "als":
            return fit_als(session, recipe.params, data.interactions.matrix,
                           checkpoint_interval=self.checkpoint_interval)
        raise ConfigError(f"recipe {name} cannot train on the Spark engine")  # pragma: no cover (SUPPORTED)

    def describe(self) -> dict[str, Any]:
        """``{"name": "spark", "master": ..., "spark_version": ...}`` (the running session's when started)."""
        if self._session is not None:
            return {"name": self.name, "master": self._session.sparkContext.master,
                    "spark_version": self._session.version}
        return {"name": self.name, "master": self.master, "spark_version": import_pyspark().__version__}


# ------------------------------------------------------------------------------------------------ ALS
def spark_ratings(weights: np.ndarray, alpha: float) -> np.ndarray:
    """Spark ratings giving the confidences the local ``als`` gives ``weights`` (see the module's table):
    ``sign(w)·(|w| - 1/alpha)``, a positive weight kept positive (at least :data:`TINY_RATING`), a negative one
    at most 0."""
    weights = np.asarray(weights, dtype=np.float64)
    magnitude = np.abs(weights) - 1.0 / alpha
    ratings = np.sign(weights) * np.maximum(magnitude, 0.0)
    ratings[(weights > 0) & (ratings < TINY_RATING)] = TINY_RATING
    return ratings.astype(np.float32)


def spark_reg(reg: float, positives: sp.csr_matrix) -> float:
    """Spark's ``regParam`` for ``reg``: ``reg`` over the geometric mean of the mean number of positive ratings
    per user and per item (Spark multiplies each row's penalty by its count; see the module's table)."""
    n_positive = int(positives.nnz)
    if n_positive == 0:
        return float(reg)
    users = int(np.count_nonzero(np.diff(positives.indptr)))
    items = int(np.count_nonzero(np.bincount(positives.indices, minlength=positives.shape[1])))
    return float(reg) / float(np.sqrt((n_positive / users) * (n_positive / items)))


def als_settings(params: Any, matrix: sp.csr_matrix) -> dict[str, Any]:
    """The ``pyspark.ml.recommendation.ALS`` params for recsmith's :class:`ALSParams` on ``matrix`` (without
    the column names and blocks)."""
    matrix = sp.csr_matrix(matrix)
    positives = matrix.copy()
    positives.data = (spark_ratings(matrix.data, params.alpha) > 0).astype(np.float32)
    positives.eliminate_zeros()
    return {"rank": int(params.factors), "maxIter": int(params.epochs), "regParam": spark_reg(params.reg, positives),
            "alpha": float(params.alpha), "seed": int(params.seed), "implicitPrefs": True, "nonnegative": False}


def ratings_frame(session: SparkSession, matrix: sp.csr_matrix, alpha: float, staging: Path | None) -> DataFrame:
    """``matrix`` as a Spark DataFrame of ``(user int, item int, rating float)`` (explicit zeros left out):
    written as Parquet into ``staging`` and read by Spark when a folder is given, else sent through the
    driver."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    coo = sp.csr_matrix(matrix).tocoo()
    keep = coo.data != 0
    table = pa.table({"user": pa.array(coo.row[keep].astype(np.int32)),
                      "item": pa.array(coo.col[keep].astype(np.int32)),
                      "rating": pa.array(spark_ratings(coo.data[keep], alpha))})
    if staging is not None:
        path = staging / "ratings.parquet"
        pq.write_table(table, path)
        return session.read.parquet(str(path))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)
        return session.createDataFrame(table.to_pandas())


def factor_array(frame: DataFrame, n: int, rank: int, what: str) -> np.ndarray:
    """Spark's ``userFactors``/``itemFactors`` (``id``, ``features``) as ``float32[n, rank]`` in dense-id order:
    rows Spark has no factors for, and NaN or infinite rows, are zero vectors."""
    ids, values = _collect_factors(frame)
    out = np.zeros((n, rank), dtype=np.float32)
    if len(ids):
        if ids.min() < 0 or ids.max() >= n:
            raise ConfigError(f"Spark returned {what} ids outside 0..{n - 1}; the input was not keyed by recsmith's "
                              "dense indices")
        out[ids] = values
    bad = ~np.isfinite(out).all(axis=1)
    missing = n - len(ids)
    if missing:  # rows without ratings (items seen only in a held-out slice, users whose events weigh 0)
        logger.info("Spark ALS has no factors for %d %s (no ratings): zero vectors", missing, what)
    if bad.any():
        logger.warning("Spark ALS gave %d %s NaN or infinite factors: zero vectors", int(bad.sum()), what)
        out[bad] = 0.0
    return out


def _collect_factors(frame: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(ids int64[n], values float32[n, rank])`` of a factors DataFrame, through Arrow."""
    if hasattr(frame, "toArrow"):  # pyspark >= 4.0
        table = frame.select("id", "features").toArrow()
        ids = table.column("id").to_numpy().astype(np.int64)
        features = table.column("features").combine_chunks()
        flat = features.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        return ids, flat.reshape(len(ids), -1) if len(ids) else np.empty((0, 0), dtype=np.float32)
    with warnings.catch_warnings():  # pragma: no cover (pyspark 3.5)
        warnings.filterwarnings("ignore", message=PANDAS_WARNING, category=FutureWarning)
        pandas = frame.select("id", "features").toPandas()
    ids = pandas["id"].to_numpy().astype(np.int64)  # pragma: no cover
    values = np.stack(pandas["features"].to_numpy()).astype(np.float32) if len(ids) else np.empty((0, 0))
    return ids, values  # pragma: no cover


def fit_als(session: SparkSession, params: Any, matrix: sp.csr_matrix, *,
            checkpoint_interval: int = CHECKPOINT_INTERVAL) -> dict[str, np.ndarray]:
    """Fit ``pyspark.ml``'s implicit ALS on ``matrix`` (users × items weights) with recsmith's ``als`` params.

    Parameters
    ----------
    session : pyspark.sql.SparkSession
        Where to fit (a checkpoint directory set, as :func:`spark_session` does).
    params : ALSParams
        ``factors``, ``reg``, ``alpha``, ``epochs``, ``seed`` (mapped as the module's table says).
    matrix : scipy.sparse.csr_matrix
        The weighted training matrix, rows and columns in recsmith's dense-id order.
    checkpoint_interval : int
        Sweeps between checkpoints.

    Returns
    -------
    dict
        ``user_factors`` ``float32[n_users, factors]`` and ``item_factors`` ``float32[n_items, factors]``.
    """
    from pyspark.ml.recommendation import ALS

    matrix = sp.csr_matrix(matrix)
    settings = als_settings(params, matrix)
    if not session.sparkContext.getCheckpointDir():
        raise ConfigError("the Spark session has no checkpoint directory; long ALS runs overflow the stack "
                          "without one: start it with recsmith.engines.spark.spark_session")
    blocks = max(1, int(session.sparkContext.defaultParallelism))
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        staging = None
        if is_local_master(session.sparkContext.master):
            staging = stack.enter_context(_scratch_folder("recsmith-spark-ratings-"))
        ratings = ratings_frame(session, matrix, params.alpha, staging).cache()
        try:
            als = ALS(userCol="user", itemCol="item", ratingCol="rating", numUserBlocks=blocks, numItemBlocks=blocks,
                      checkpointInterval=checkpoint_interval, coldStartStrategy="drop", **settings)
            model = als.fit(ratings)
            users = factor_array(model.userFactors, matrix.shape[0], settings["rank"], "users")
            items = factor_array(model.itemFactors, matrix.shape[1], settings["rank"], "items")
        finally:
            ratings.unpersist()
    logger.info("Spark ALS (rank %d, %d sweeps, regParam %.4g) on %d ratings: %.1f s", settings["rank"],
                settings["maxIter"], settings["regParam"], matrix.nnz, time.perf_counter() - started)
    return {"user_factors": users, "item_factors": items}


__all__ = ["INSTALL_HINT", "SUPPORTED", "SparkEngine", "als_settings", "check_recipe", "fit_als", "import_pyspark",
           "spark_ratings", "spark_reg", "spark_session"]
