"""The epoch hook of the iterative recipes (FitOptions.epoch_callback): called every epoch, changes nothing when
unused, stops training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsmith.data.interactions import Interactions
from recsmith.recipes import FitOptions, available, create, recipe_class
from recsmith.testing import synthetic_interactions

TORCH = {"factors": 8, "epochs": 4, "patience": 0, "batch_size": 256}
ITERATIVE = {"als": {"factors": 8, "epochs": 4}, "bpr": {"factors": 8, "epochs": 4},
             "svd": {"factors": 4, "epochs": 4}, "svdpp": {"factors": 4, "epochs": 4},
             "fm": TORCH, "two-tower": TORCH, "neumf": TORCH | {"mlp_layers": [8, 4]},
             "sasrec": TORCH | {"max_len": 10}, "gru4rec": TORCH | {"batch_size": 16}}


def rated() -> Interactions:
    rng = np.random.default_rng(0)
    users, items = np.nonzero(rng.random((40, 25)) < 0.4)
    frame = pd.DataFrame({"user": users, "item": items, "rating": rng.integers(1, 6, len(users)).astype(float)})
    return Interactions.from_frame(frame, user="user", item="item", value="rating")


def test_the_iterative_recipes_support_it() -> None:
    assert {name for name in available() if recipe_class(name).tags.iterative} == set(ITERATIVE)


@pytest.mark.parametrize("recipe", sorted(ITERATIVE))
def test_called_after_every_epoch_with_usable_state(recipe: str) -> None:
    data = rated() if recipe.startswith("svd") else synthetic_interactions()
    plain = create(recipe, **ITERATIVE[recipe]).fit(data)
    seen: list[tuple[int, np.ndarray]] = []
    hooked = create(recipe, **ITERATIVE[recipe])
    hooked.fit(data, FitOptions(
        epoch_callback=lambda epoch, model: seen.append((epoch, model.recommend([0, 1], k=3).ids.copy()))))
    assert [epoch for epoch, _ in seen] == [1, 2, 3, 4]
    assert seen[-1][1].shape == (2, 3)
    np.testing.assert_array_equal(seen[-1][1], hooked.recommend([0, 1], k=3).ids)
    # the hook changes nothing: the same model as without it
    users = np.arange(10)
    np.testing.assert_allclose(hooked.recommend(users, k=5).scores, plain.recommend(users, k=5).scores, rtol=1e-5)
    assert not hasattr(hooked, "epoch_callback")  # an option of one fit, never kept on the recipe


@pytest.mark.parametrize("recipe", sorted(ITERATIVE))
def test_raising_stops_training(recipe: str) -> None:
    data = rated() if recipe.startswith("svd") else synthetic_interactions()
    epochs: list[int] = []

    def stop(epoch: int, model: object) -> None:
        epochs.append(epoch)
        if epoch == 2:
            raise RuntimeError("enough")

    model = create(recipe, **ITERATIVE[recipe])
    with pytest.raises(RuntimeError, match="enough"):
        model.fit(data, FitOptions(epoch_callback=stop))
    assert epochs == [1, 2]
