"""Hybrid: a weighted blend of other recipes, each user's scores normalised before blending."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, ValidationInfo, field_validator

from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError
from recsmith.recipes.base import Recipe, RecipeParams
from recsmith.recipes.options import FitOptions
from recsmith.recipes.registry import recipe_class


class HybridParams(RecipeParams):
    """Params of :class:`Hybrid`."""

    components: dict[str, float] = Field(default_factory=lambda: {"item-knn": 0.5, "user-knn": 0.5})
    """Recipe name -> blending weight (the default is mixed user- and item-based CF)."""

    component_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Recipe name -> that recipe's params."""

    normalize: Literal["minmax", "zscore"] = "minmax"
    """How each user's scores from one component are scaled before blending."""

    @field_validator("components")
    @classmethod
    def _known_components(cls, components: dict[str, float]) -> dict[str, float]:
        if not components:
            raise ValueError('it must name at least one recipe, e.g. {"ease": 0.7, "rp3beta": 0.3}')
        for name in components:
            if name == "hybrid":
                raise ValueError("a hybrid cannot contain another hybrid")
            recipe_class(name)  # raises ConfigError (a ValueError) naming the known recipes
        return components

    @field_validator("component_params")
    @classmethod
    def _component_params(cls, params: dict[str, dict[str, Any]], info: ValidationInfo) -> dict[str, dict[str, Any]]:
        components = info.data.get("components")
        if components is None:  # components were refused: their error says why
            return params
        unknown = sorted(set(params) - set(components))
        if unknown:
            raise ValueError(f"params given for {', '.join(map(repr, unknown))}, which are not among the components "
                             f"({', '.join(map(repr, components))})")
        for name, values in params.items():
            try:
                recipe_class(name)(values)  # validated here, not when the hybrid fits
            except ConfigError as exc:
                raise ValueError(f"{name}: {str(exc).removeprefix(f'recipe {name}: ')}") from None
        return params


def _normalise(scores: np.ndarray, how: str) -> np.ndarray:
    finite = np.isfinite(scores)
    safe = np.where(finite, scores, np.nan)
    if how == "zscore":
        centre = np.nanmean(safe, axis=1, keepdims=True)
        scale = np.nanstd(safe, axis=1, keepdims=True)
    else:
        centre = np.nanmin(safe, axis=1, keepdims=True)
        scale = np.nanmax(safe, axis=1, keepdims=True) - centre
    scale = np.where(scale > 0, scale, 1.0)
    return np.where(finite, (scores - centre) / scale, 0.0).astype(np.float32)


class Hybrid(Recipe):
    """A weighted blend of fitted recipes (Personalize's mixed user/item CF; Gorse's fusion of recommenders).

    Each component is fitted on the same data; for every user, each component's scores over the catalogue
    are normalised (min-max or z-score) and the weighted sum ranks the items. Fold-in, exclusions and
    artifacts work as for any recipe, since each component supports them.

    References
    ----------
    Burke, "Hybrid Recommender Systems: Survey and Experiments", User Modeling and User-Adapted
    Interaction 12(4), 2002 (weighted hybrids).
    """

    name = "hybrid"
    Params = HybridParams

    def _components(self) -> list[Recipe]:
        return [recipe_class(name)(self.params.component_params.get(name, {})) for name in self.params.components]

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        # the components train where the hybrid does; the hybrid alone reports progress
        quiet = dataclasses.replace(options, progress=None, epoch_callback=None)
        self.components_ = [component.fit(data, quiet) for component in self._components()]

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        total = np.zeros((histories.shape[0], histories.shape[1]), dtype=np.float32)
        for component, weight in zip(self.components_, self.params.components.values(), strict=True):
            scores = np.asarray(component._scores(histories, users), dtype=np.float32)
            total += np.float32(weight) * _normalise(scores, self.params.normalize)
        return total

    def _state(self) -> dict[str, np.ndarray]:
        return {f"c{i}_{key}": value for i, component in enumerate(self.components_)
                for key, value in component._state().items()}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.components_ = self._components()
        for i, component in enumerate(self.components_):
            component.train_matrix_ = self.train_matrix_
            prefix = f"c{i}_"
            component._restore({k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)})
