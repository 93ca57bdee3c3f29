"""``recsmith train|tune|evaluate --device`` and the epoch bar of ``train`` (issue 15): cuda on a machine without a
GPU is a clear error before any work, auto trains on the CPU, each epoch shows the recipe's last ``history_`` entry,
Ctrl-C still fails the version, and a torch recipe without torch says how to install it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.data.training import TrainingData
from recsmith.errors import ConfigError
from recsmith.jobs.training import train_solution_version
from recsmith.recipes import available, registry
from recsmith.recipes.base import Recipe, RecipeParams
from recsmith.recipes.options import FitOptions
from recsmith.recipes.tags import RecipeTags
from recsmith.settings import Settings
from recsmith.store.store import Store

TORCH_RECIPES = ("fm", "neumf", "two-tower")


class EpochsParams(RecipeParams):
    """Params of :class:`EpochsRecipe`."""

    epochs: int = 3
    interrupt_at: int = 0  # raise KeyboardInterrupt after this epoch (0: never), as Ctrl-C would


class EpochsRecipe(Recipe):
    """An iterative popularity recipe that can train on cuda and keeps a torch-style ``history_``."""

    name = "wire-epochs"
    Params = EpochsParams
    tags = RecipeTags(iterative=True, devices=("cpu", "cuda"))
    devices_seen: ClassVar[list[str]] = []

    @classmethod
    def cuda_available(cls) -> bool:
        return False  # this machine has no GPU, as the CI machine

    def _fit(self, data: TrainingData, options: FitOptions) -> None:
        type(self).devices_seen.append(options.device)
        counts = np.asarray((data.interactions.matrix > 0).sum(axis=0)).ravel().astype(np.float32)
        self.history_: list[dict[str, float]] = []
        for epoch in range(1, self.params.epochs + 1):
            self.popularity_ = counts * epoch
            self.history_.append({"epoch": epoch, "loss": 1.0 / epoch, "val_loss": 2.0 / epoch, "lr": 0.01,
                                  "seconds": 0.001})
            self._epoch_done(options, epoch)
            if epoch == self.params.interrupt_at:
                raise KeyboardInterrupt

    def _scores(self, histories: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (histories.shape[0], len(self.popularity_)))

    def _state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity_}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity_ = arrays["popularity"]


@pytest.fixture
def epochs_recipe(monkeypatch: pytest.MonkeyPatch) -> type[EpochsRecipe]:
    monkeypatch.setitem(registry._CLASSES, EpochsRecipe.name, EpochsRecipe)
    EpochsRecipe.devices_seen.clear()
    return EpochsRecipe


@pytest.fixture
def db_url(tmp_path: Path) -> str:  # SQLite only: the store is not what these tests are about
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def shop(cli, tmp_path: Path):
    """A small dataset group 'shop': 40 users, 30 items, 8 interactions each."""
    rng = np.random.default_rng(0)
    lines = ["USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE"]
    for user in range(40):
        for item in rng.choice(30, size=8, replace=False):
            lines.append(f"u{user},i{item},{1_000_000 + user * 100 + int(item)},{int(rng.integers(1, 6))}")
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    result = cli("import", "interactions", path, "-g", "shop")
    assert result.exit_code == 0, result.output
    return cli


def message(result) -> str:
    return " ".join(result.stderr.split())


def versions(cli) -> list[dict]:
    return json.loads(cli("solution-versions", "list", "--json").stdout)


def test_cuda_without_a_gpu_is_a_clear_error_before_any_work(shop, epochs_recipe) -> None:
    result = shop("train", "-g", "shop", "--recipe", "wire-epochs", "--device", "cuda")
    assert result.exit_code == 1
    text = message(result)
    assert "no CUDA device is usable on this machine" in text
    assert "use --device cpu, or --device auto to take a GPU only where there is one" in text
    assert "Traceback" not in result.output and "FitOptions" not in text
    assert epochs_recipe.devices_seen == [] and versions(shop) == []


def test_cuda_for_a_cpu_only_recipe_names_its_devices(shop) -> None:
    result = shop("train", "-g", "shop", "--recipe", "als", "--device", "cuda")
    assert result.exit_code == 1
    assert "recipe als trains on the CPU only" in message(result)
    assert "--device auto" in message(result)


def test_unknown_device(shop) -> None:
    result = shop("train", "-g", "shop", "--recipe", "als", "--device", "gpu")
    assert result.exit_code == 1
    assert "device must be 'cpu', 'cuda' or 'auto', got 'gpu'" in message(result)


def test_auto_trains_both_fits_on_the_cpu_and_shows_the_last_epoch(shop, epochs_recipe) -> None:
    result = shop("train", "-g", "shop", "--recipe", "wire-epochs", "--device", "auto", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "ACTIVE"
    assert epochs_recipe.devices_seen == ["cpu", "cpu"]  # the offline metrics' fit, then the final one
    text = message(result)
    assert "epochs (fitting)" in text
    assert "epoch 3/3 loss 0.3333 val_loss 0.6667 lr 0.01 0.0 s" in text


def test_epoch_bar_of_a_recipe_without_history_shows_the_count(shop) -> None:
    result = shop("train", "-g", "shop", "--recipe", "svd", "--param", "epochs=4", "--no-metrics")
    assert result.exit_code == 0, result.output
    assert "epoch 4/4" in result.stderr and "loss" not in result.stderr
    result = shop("train", "-g", "shop", "--recipe", "popularity", "--no-metrics")  # not iterative: no epochs
    assert result.exit_code == 0, result.output
    assert "epoch" not in result.stderr


def test_ctrl_c_during_the_epochs_fails_the_version(shop, epochs_recipe) -> None:
    result = shop("train", "-g", "shop", "--recipe", "wire-epochs", "--param", "interrupt_at=2", "--no-metrics")
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    [version] = versions(shop)
    assert version["status"] == "CREATE_FAILED"


def test_train_solution_version_takes_fit_options(shop, epochs_recipe) -> None:
    store = Store.from_settings(Settings())
    try:
        with pytest.raises(ConfigError, match="no CUDA device is usable"):
            train_solution_version(store, Settings(), "shop", "wire-epochs", fit_options=FitOptions(device="cuda"))
        assert store.list_solution_versions() == []  # refused before a version was created
        seen: list[tuple[int, int]] = []
        options = FitOptions(device="auto", progress=lambda done, total: seen.append((done, total)))
        version = train_solution_version(store, Settings(), "shop", "wire-epochs", {"epochs": 2},
                                         with_metrics=False, fit_options=options)
    finally:
        store.close()
    assert version["status"] == "ACTIVE"
    assert seen == [(0, 2), (1, 2), (2, 2)]


def test_tune_and_evaluate_take_the_device(shop) -> None:
    result = shop("tune", "-g", "shop", "--recipe", "als", "--trials", "1", "--device", "cuda")
    assert result.exit_code == 1
    assert "recipe als trains on the CPU only" in message(result)
    result = shop("evaluate", "-g", "shop", "--recipes", "popularity,item-knn", "--device", "cuda")
    assert result.exit_code == 1
    assert "recipe popularity trains on the CPU only" in message(result)
    result = shop("evaluate", "-g", "shop", "--recipes", "popularity,item-knn", "--device", "auto", "--json")
    assert result.exit_code == 0, result.output
    assert {row["recipe"] for row in json.loads(result.stdout)["results"]} == {"popularity", "item-knn"}


@pytest.mark.parametrize("recipe", TORCH_RECIPES)
def test_torch_recipe_without_torch_says_how_to_install_it(shop, tmp_path: Path, recipe: str) -> None:
    if recipe not in available():
        pytest.skip(f"the {recipe} recipe is not on this branch yet")
    shim = ("import sys; sys.modules['torch'] = None  # torch made unimportable\n"
            "from recsmith.cli.main import main\n"
            f"sys.argv = ['recsmith', 'train', '-g', 'shop', '--recipe', {recipe!r}, '--no-metrics']\n"
            "main()\n")
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2] / "src"),
                                                                  os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-c", shim], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'pip install "recsmith[torch]"' in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
