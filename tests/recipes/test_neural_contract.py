"""The contract suite for the PyTorch recipes (fm, neumf, two-tower), small and fast enough for CI."""

import pytest

from recsmith.testing import RecipeContract

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

FAST = {"epochs": 4, "factors": 16, "batch_size": 1024, "lr": 0.01, "val_fraction": 0.1, "patience": 0}


class TestFMContract(RecipeContract):
    recipe_name = "fm"
    params = FAST
    min_ndcg = 0.25


class TestNeuMFContract(RecipeContract):
    recipe_name = "neumf"
    params = FAST | {"mlp_layers": [32, 16]}
    min_ndcg = 0.25


class TestTwoTowerContract(RecipeContract):
    recipe_name = "two-tower"
    params = FAST
    min_ndcg = 0.25
