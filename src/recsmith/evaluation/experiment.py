"""An offline experiment: which recipes (with which params) to compare, on which split, by which metrics.

Built from CLI options or read from a TOML file::

    protocol = "users"           # random | leave-last | temporal | users | cold-items | ratings-per-user
    k = 10
    metrics = ["ndcg@10", "recall@20", "coverage@10"]
    confidence = 0.95

    [split]                      # the protocol's options (see recsmith.evaluation.split.OPTIONS)
    test_users = 0.2
    seed = 42

    [[recipes]]
    recipe = "ease"
    params = { reg = 500.0 }

    [[recipes]]
    name = "item-knn-50"         # a label, when one recipe appears twice
    recipe = "item-knn"
    params = { neighbors = 50 }

or, to measure how recipes' pair scores classify held-out ratings (``evaluate --task binary``)::

    task = "binary"              # ranking (the default) | binary
    label = "EVENT_VALUE >= 4"   # the positive label (recsmith.data.labels)
    threshold = 0.5              # accuracy, precision, recall and F1 at this probability
    # protocol defaults to "ratings-per-user" (10 held-out ratings per user, ml-100k's ua split)

:meth:`Experiment.check` validates everything (recipe names, params, metric names, protocol and options)
before any data is read or any model trained. Either spelling of a name is accepted: recipes and the protocol
are kept canonically spelt (``item_knn`` -> ``item-knn``, ``leave_last`` -> ``leave-last``), and
:meth:`Experiment.metric_names` spells the metrics so (``hit-rate@10`` -> ``hit_rate@10``); see
:func:`recsmith.recipes.registry.canonical_name`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pydantic
from pydantic import Field, field_validator, model_validator

from recsmith.errors import ConfigError
from recsmith.evaluation.metrics import full_names
from recsmith.evaluation.split import OPTIONS, PROTOCOLS
from recsmith.recipes import Recipe, available, create
from recsmith.recipes.registry import canonical_name


def read_toml(path: str | Path) -> dict[str, Any]:
    """The content of a TOML file; a ConfigError names the file when it is unreadable or invalid."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the experiment file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


class RecipeEntry(pydantic.BaseModel):
    """One contender: a recipe, its params and the label it is reported under."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    recipe: str
    """Registry name of the recipe."""

    params: dict[str, Any] = Field(default_factory=dict)
    """The recipe's params (unknown names are an error)."""

    name: str | None = None
    """Label in the results (default: the recipe name)."""

    @field_validator("recipe", mode="before")
    @classmethod
    def _spell_recipe(cls, value: Any) -> Any:
        return canonical_name(value) if canonical_name(value) in available() else value  # unknown: as given

    @property
    def label(self) -> str:
        """The name results are reported under."""
        return self.name or self.recipe


class Experiment(pydantic.BaseModel):
    """Recipes to compare on one split, and how to measure them."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    recipes: list[RecipeEntry] = Field(min_length=1)
    """The contenders."""

    protocol: str = "random"
    """Split protocol: random, leave-last (or leave_last), temporal, users, cold-items or ratings-per-user (the
    binary task's default)."""

    split: dict[str, Any] = Field(default_factory=dict)
    """The protocol's options, e.g. ``{"test_fraction": 0.2, "seed": 42}``."""

    k: int = 10
    """Cut-off of the default metrics and of metric names given without one."""

    metrics: list[str] | None = None
    """Metric names (``ndcg@10``, or ``ndcg`` cut at ``k``; ``hit-rate`` is ``hit_rate``); default: precision,
    recall, ndcg, coverage (for ``cold-items``: ndcg@10 and recall@20). :meth:`metric_names` gives them
    canonically spelt, with their cut-offs."""

    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)
    """Level of the bootstrap confidence intervals."""

    bootstrap: int = Field(default=1000, ge=100)
    """Bootstrap resamples per interval."""

    sampled_negatives: int | None = Field(default=None, ge=1)
    """Also rank each held-out item against this many sampled negatives (only to reproduce papers; the
    results are labelled ``sampled_``)."""

    sampling: str = "uniform"
    """How the sampled negatives are drawn: uniform or popularity."""

    task: str = "ranking"
    """``ranking`` (full-catalogue ranking metrics) or ``binary`` (classification of held-out pairs by a label
    rule: AUC, log loss, accuracy, precision, recall, F1; :mod:`recsmith.evaluation.classification`)."""

    label: str | None = None
    """The binary task's label rule (default ``EVENT_VALUE >= 4``); see :meth:`label_rule`."""

    threshold: float | None = None
    """The binary task's decision threshold on the probability (default 0.5)."""

    @model_validator(mode="before")
    @classmethod
    def _binary_protocol(cls, data: Any) -> Any:
        """The binary task's default protocol: 10 held-out ratings per user (ml-100k's ua split)."""
        if isinstance(data, dict) and data.get("task") == "binary" and data.get("protocol") is None:
            return {**data, "protocol": "ratings-per-user"}
        return data

    @field_validator("protocol", mode="before")
    @classmethod
    def _spell_protocol(cls, value: Any) -> Any:
        return canonical_name(value) if canonical_name(value) in OPTIONS else value  # unknown: as given, for check

    @classmethod
    def from_toml(cls, path: str | Path) -> Experiment:
        """Read an experiment file; a ConfigError names the file and what is wrong in it."""
        return cls.parse(read_toml(path), source=str(path))

    @classmethod
    def parse(cls, data: dict[str, Any], source: str = "the experiment") -> Experiment:
        """Build and :meth:`check` an experiment from a dict (the TOML's content)."""
        try:
            experiment = cls(**data)
        except pydantic.ValidationError as exc:
            problems = []
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"]) or "?"
                if error["type"] == "extra_forbidden":
                    allowed = ", ".join(RecipeEntry.model_fields if "recipes" in error["loc"] else cls.model_fields)
                    problems.append(f"unknown key {where!r} (allowed: {allowed})")
                else:
                    problems.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
            raise ConfigError(f"{source}: " + "; ".join(problems)) from None
        experiment.check(source)
        return experiment

    def label_rule(self) -> Any:
        """The binary task's :class:`~recsmith.data.labels.LabelRule` (a ConfigError names a bad rule)."""
        from recsmith.data.labels import parse_label_rule

        return parse_label_rule(self.label if self.label is not None else "EVENT_VALUE >= 4")

    def decision_threshold(self) -> float:
        """The binary task's threshold (default 0.5)."""
        return 0.5 if self.threshold is None else float(self.threshold)

    def _check_task(self, source: str) -> None:
        from recsmith.evaluation.classification import TASKS, check_threshold

        if self.task not in TASKS:
            raise ConfigError(f"{source}: unknown task {self.task!r}; use one of: {', '.join(TASKS)}")
        if self.task == "ranking":
            given = [name for name in ("label", "threshold") if getattr(self, name) is not None]
            if given:
                raise ConfigError(f"{source}: {given[0]} is an option of the binary task; add task = \"binary\" "
                                  "(--task binary)")
            return
        try:
            self.label_rule()
            check_threshold(self.decision_threshold())
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if self.protocol == "users":
            raise ConfigError(f"{source}: the binary task classifies held-out pairs of training users by their "
                              "scores, and the users protocol holds out whole users, whom no recipe can score by "
                              "(user, item); use ratings-per-user (the default), random, leave-last or temporal")
        ranking = [name for name in ("metrics", "sampled_negatives") if getattr(self, name) is not None]
        ranking += ["k"] if "k" in self.model_fields_set else []
        if ranking:
            raise ConfigError(f"{source}: {ranking[0]} is a ranking option; the binary task always reports "
                              "auc, log_loss, accuracy, precision, recall and f1 (drop it, or use task ranking)")

    def metric_names(self) -> list[str]:
        """The metrics to compute, with their cut-offs."""
        from recsmith.evaluation.evaluate import COLD_ITEMS_METRICS, DEFAULT_METRICS

        if not self.metrics and self.protocol == "cold-items":
            return full_names(list(COLD_ITEMS_METRICS), self.k)
        names = self.metrics or [name.split("@")[0] for name in DEFAULT_METRICS]
        return full_names(names, self.k)

    def sampled_names(self) -> list[str]:
        """The sampled-ranking metrics: the experiment's hit_rate, ndcg and mrr, and auc."""
        from recsmith.evaluation.metrics import parse_metric
        from recsmith.evaluation.sampled import SAMPLED_METRICS

        return [name for name in self.metric_names() if parse_metric(name)[0] in SAMPLED_METRICS] + ["auc"]

    def check(self, source: str = "the experiment") -> None:
        """Validate names, params, metrics and protocol options; raise ConfigError before any work."""
        if isinstance(self.k, bool) or self.k <= 0:
            raise ConfigError(f"{source}: k must be a positive integer, got {self.k!r}")
        self._check_task(source)
        self.metric_names()
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"{source}: unknown protocol {self.protocol!r}; available: {', '.join(PROTOCOLS)}")
        unknown = sorted(set(self.split) - set(OPTIONS[self.protocol]))
        if unknown:
            raise ConfigError(f"{source}: protocol {self.protocol} has no option {unknown[0]!r}; its options: "
                              f"{', '.join(OPTIONS[self.protocol])}")
        if self.sampled_negatives is not None:
            from recsmith.evaluation.sampled import SAMPLINGS

            if self.sampling not in SAMPLINGS:
                raise ConfigError(f"{source}: unknown sampling {self.sampling!r}; use one of: {', '.join(SAMPLINGS)}")
            if self.protocol in ("users", "cold-items"):
                raise ConfigError(f"{source}: sampled negatives rank training users' items; use them with the "
                                  f"random, leave-last or temporal protocol, not {self.protocol}")
        labels = [entry.label for entry in self.recipes]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ConfigError(f"{source}: recipe label {repeated[0]!r} appears twice; give each entry a 'name'")
        for number, entry in enumerate(self.recipes):
            try:
                create(entry.recipe, **entry.params)
            except ConfigError as exc:
                raise ConfigError(f"{source}: recipes[{number}]: {exc}") from None
        if self.protocol == "cold-items":
            from recsmith.evaluation.evaluate import check_cold_recipes

            try:
                check_cold_recipes(self.build())
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None

    def build(self) -> dict[str, Recipe]:
        """New, unfitted recipes by label (a ConfigError names an unknown recipe or param)."""
        return {entry.label: create(entry.recipe, **entry.params) for entry in self.recipes}
