"""Engines: where a recipe trains when it is not this process.

A :class:`~recsmith.recipes.options.FitEngine` computes a recipe's learned state elsewhere (Apache Spark:
:class:`recsmith.engines.spark.SparkEngine`) and ``Recipe.fit`` sets it, so the model, its artifact and its
serving are those of a local fit. Heavy dependencies (pyspark) load only when an engine is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from recsmith.errors import ConfigError

if TYPE_CHECKING:
    from recsmith.engines.spark import SparkEngine

ENGINES = ("local", "spark")
"""Engine names ``recsmith train --engine`` takes: ``local`` trains in this process."""


def make_engine(name: str, recipe: str, *, master: str | None = None,
                conf: Mapping[str, str] | None = None) -> SparkEngine | None:
    """The engine called ``name`` for training ``recipe``, checked before any work; None for ``local``.

    Parameters
    ----------
    name : str
        ``local`` or ``spark``.
    recipe : str
        The recipe's registry name (``als``): an engine that cannot train it is refused here.
    master : str, optional
        Spark's master URL (``local[2]``, ``spark://host:7077``, ``yarn``; default ``local[2]``).
    conf : mapping, optional
        Extra Spark settings (``spark.executor.memory``, ``spark.checkpoint.dir``, ...).

    Returns
    -------
    SparkEngine or None
        A :class:`~recsmith.recipes.options.FitEngine` to pass as ``FitOptions(engine=...)`` (its session starts
        on first use; ``close()`` stops it), or None to train here.

    Raises
    ------
    ConfigError
        For an unknown engine, a recipe the engine cannot train, Spark options without ``spark``, or a missing
        ``spark`` extra (the message says ``pip install 'recsmith[spark]'``).
    """
    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}; use one of {', '.join(ENGINES)}")
    if name == "local":
        if master is not None or conf:
            raise ConfigError("a Spark master or Spark settings (--spark-master, --spark-conf) were given for the "
                              "local engine; add --engine spark to train on Spark")
        return None
    from recsmith.engines.spark import SparkEngine, check_recipe

    check_recipe(recipe)
    return SparkEngine(master or "local[2]", conf=conf)


__all__ = ["ENGINES", "make_engine"]
