"""The lazy registry: importing recsmith, its CLI or its recipes package imports no recipe module (and never
torch); a recipe's module is imported when the recipe is first asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.errors import ConfigError, DataError
from recsmith.recipes import (
    FitOptions,
    Recipe,
    RecipeParams,
    available,
    create,
    load_recipe,
    recipe_class,
    register,
    register_path,
)
from recsmith.recipes.registry import BUILTIN
from recsmith.testing import synthetic_interactions

RECIPE_MODULES = sorted({path.partition(":")[0] for path in BUILTIN.values()})


def modules_after(code: str) -> set[str]:
    """The modules imported after running ``code`` in a fresh interpreter."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_import_recsmith_and_its_cli_never_imports_torch_or_a_recipe() -> None:
    subprocess.run([sys.executable, "-c", "import recsmith, recsmith.cli.main, sys; assert 'torch' not in sys.modules"],
                   check=True)
    loaded = modules_after("import recsmith, recsmith.cli.main, recsmith.recipes\n"
                           "from recsmith.recipes import available, recipe_class\navailable()")
    assert "torch" not in loaded
    assert not loaded & set(RECIPE_MODULES), loaded & set(RECIPE_MODULES)
    assert "implicit" not in loaded


def test_recsmith_help_never_imports_torch_or_a_recipe() -> None:
    loaded = modules_after("import sys\nsys.argv = ['recsmith', '--help']\nfrom recsmith.cli.main import main\n"
                           "try:\n    main()\nexcept SystemExit:\n    pass")
    assert "torch" not in loaded and not loaded & set(RECIPE_MODULES)


def test_a_recipe_module_is_imported_when_first_asked_for() -> None:
    loaded = modules_after("from recsmith.recipes import create\ncreate('ease')")
    assert "recsmith.recipes.ease" in loaded
    assert not loaded & (set(RECIPE_MODULES) - {"recsmith.recipes.ease"})
    assert "torch" not in loaded


def test_every_builtin_recipe_resolves_to_its_class() -> None:
    assert set(BUILTIN) <= set(available())
    for name in BUILTIN:
        klass = recipe_class(name)
        assert issubclass(klass, Recipe) and klass.name == name


def test_unknown_and_broken_entries_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown recipe 'nope'; available recipes: als"):
        recipe_class("nope")
    with pytest.raises(ConfigError, match="module:Class"):
        register_path("broken", "no-colon-here")
    register_path("wrong-class", "recsmith.recipes.ease:EASE")  # EASE is named "ease"
    try:
        with pytest.raises(ConfigError, match="not a Recipe class named 'wrong-class'"):
            recipe_class("wrong-class")
    finally:
        from recsmith.recipes import registry

        registry._PATHS.pop("wrong-class", None)


class Constant(Recipe):
    """Every item scores its index (a recipe defined outside the package, written before FitOptions)."""

    name = "test-constant"
    Params = RecipeParams

    def _fit(self, interactions: Interactions) -> None:  # the one-argument form of older recipes
        assert isinstance(interactions, Interactions)
        self.order_ = np.arange(interactions.n_items, dtype=np.float32)

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return np.broadcast_to(self.order_, (histories.shape[0], len(self.order_)))

    def _state(self) -> dict[str, np.ndarray]:
        return {"order": self.order_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.order_ = arrays["order"]


def test_registered_classes_and_older_recipes_work(tmp_path: Path) -> None:
    from recsmith.recipes import registry

    register(Constant)
    try:
        model = create("test-constant").fit(synthetic_interactions(), FitOptions(num_threads=1))
        assert model.recommend([0], k=3, exclude_seen=False).ids.tolist() == [[39, 38, 37]]
        loaded = Recipe.load(model.save(tmp_path / "constant"))
        assert isinstance(loaded, Constant) and Constant.load(tmp_path / "constant").order_.shape == (40,)
        assert isinstance(load_recipe(tmp_path / "constant"), Constant)
    finally:
        registry._CLASSES.pop("test-constant", None)


def test_load_checks_the_class_and_reads_older_params(tmp_path: Path) -> None:
    model = create("als", factors=4, epochs=2).fit(synthetic_interactions())
    path = model.save(tmp_path / "als")
    with pytest.raises(DataError, match="holds a als recipe, not ease"):
        recipe_class("ease").load(path)
    meta = json.loads((path / "meta.json").read_text())
    meta["params"]["num_threads"] = 4  # artifacts of older versions saved the threads as a param
    (path / "meta.json").write_text(json.dumps(meta))
    assert load_recipe(path).get_params() == model.get_params()


def test_fit_options_are_not_params() -> None:
    with pytest.raises(ConfigError, match=r"num_threads is a fit option, not a param.*FitOptions\(num_threads"):
        create("als", num_threads=2)
    with pytest.raises(ConfigError, match="device must be"):
        FitOptions(device="tpu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="num_threads must be"):
        FitOptions(num_threads=-1)
    with pytest.raises(ConfigError, match="options must be a FitOptions"):
        create("popularity").fit(synthetic_interactions(), {"device": "cpu"})  # type: ignore[arg-type]


def test_recipe_names_take_either_spelling() -> None:
    """One spelling rule for every lookup: ``item_knn`` is ``item-knn`` (the registered, canonical name)."""
    from recsmith.recipes.registry import canonical_name, recipe_name

    assert recipe_class("item_knn") is recipe_class("item-knn") is recipe_class(" item-knn ")
    assert create("user_knn", neighbors=5).name == "user-knn"
    assert recipe_name("item_knn") == "item-knn" and recipe_name("svdpp") == "svdpp"
    assert canonical_name("hit-rate@10", "_") == "hit_rate@10"
    assert not any("_" in name for name in BUILTIN)  # the built-in names are canonical
    with pytest.raises(ConfigError, match="unknown recipe 'item_kmm'; available recipes: als"):
        recipe_name("item_kmm")
    register_path("test_underscored", "recsmith.recipes.ease:EASE")  # registered under test-underscored
    from recsmith.recipes import registry

    try:
        assert "test-underscored" in available() and "test_underscored" not in available()
        with pytest.raises(ConfigError, match="not a Recipe class named 'test-underscored'"):
            recipe_class("test_underscored")
    finally:
        registry._PATHS.pop("test-underscored", None)
