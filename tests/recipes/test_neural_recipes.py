"""The PyTorch recipes beyond the contract: numpy serving matches torch, features, cold items, int8, the loop."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsmith.data.training import FeatureTable, TrainingData
from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import ConfigError, DataError
from recsmith.recipes import create, load_recipe
from recsmith.recipes.features import FeatureEncoder, padded_bags
from recsmith.recipes.options import FitOptions

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

FAST = {"epochs": 6, "factors": 16, "batch_size": 128, "patience": 0}


def genre_data(seed: int = 0, n_users: int = 80, n_items: int = 60) -> TrainingData:
    """Two kinds of users and two genres: users of kind A mostly like Action items, kind B Drama."""
    rng = np.random.default_rng(seed)
    genre = np.where(np.arange(n_items) % 2 == 0, "Action", "Drama")
    kind = np.where(np.arange(n_users) % 2 == 0, "A", "B")
    rows = []
    for u in range(n_users):
        liked = "Action" if kind[u] == "A" else "Drama"
        for i in range(n_items):
            p = 0.35 if genre[i] == liked else 0.03
            if rng.random() < p:
                rating = rng.choice([4, 5]) if genre[i] == liked else rng.choice([1, 2, 3])
                rows.append((f"u{u}", f"i{i}", float(rating)))
    events = pd.DataFrame(rows, columns=["user", "item", "rating"])
    items = pd.DataFrame({"item": [f"i{i}" for i in range(n_items)],
                          "GENRES": [f"{g}|Classic" if i % 5 == 0 else g for i, g in enumerate(genre)]})
    users = pd.DataFrame({"user": [f"u{u}" for u in range(n_users)], "KIND": kind,
                          "AGE": rng.integers(18, 70, n_users).astype(float)})
    return TrainingData.from_frame(events, user="user", item="item", value="rating", items=items, users=users)


@pytest.mark.parametrize(("name", "params"), [
    ("fm", {}), ("fm", {"objective": "binary"}), ("fm", {"objective": "regression"}),
    ("neumf", {"mlp_layers": [16, 8], "use_item_features": True, "use_user_features": True}),
    ("two-tower", {}),
])
def test_numpy_forward_matches_torch(name: str, params: dict, tmp_path: Path) -> None:
    data = genre_data()
    recipe = create(name, **(FAST | params)).fit(data)
    users = np.arange(data.n_users)
    dense = recipe._scores(data.interactions.matrix[users], users)
    pair_users = np.repeat(users, data.n_items)
    pair_items = np.tile(np.arange(data.n_items), data.n_users)
    expected = recipe.torch_logits(pair_users, pair_items)
    np.testing.assert_allclose(dense.ravel(), expected, atol=1e-5, rtol=1e-5)
    loaded = load_recipe(recipe.save(tmp_path / name))
    np.testing.assert_allclose(loaded._scores(data.interactions.matrix[users], users), dense, atol=1e-6)


def test_fm_binary_scores_are_probabilities_and_learn_the_label() -> None:
    data = genre_data()
    recipe = create("fm", **(FAST | {"objective": "binary", "epochs": 15})).fit(data)
    assert recipe.score_is_probability
    matrix = data.interactions.matrix.tocsr().tocoo()  # the stored entries in CSR order, as .values
    scores = recipe.score(matrix.row, matrix.col)
    assert ((scores >= 0) & (scores <= 1)).all()
    liked = scores[data.interactions.values >= 4].mean()
    disliked = scores[data.interactions.values < 4].mean()
    assert liked > disliked + 0.2, (liked, disliked)


def test_fm_binary_needs_values_and_a_valid_rule() -> None:
    implicit = TrainingData.from_frame(pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"]}), user="user",
                                       item="item")
    with pytest.raises(DataError, match="EVENT_VALUE"):
        create("fm", objective="binary").fit(implicit)
    with pytest.raises(ConfigError, match="label rule"):
        create("fm", label="RATING > 4")


def test_feature_encoder_averages_multi_valued_and_standardises_numbers() -> None:
    data = genre_data()
    encoder = FeatureEncoder.fit(data.item_features)
    design = encoder.encode(data.item_features, data.n_items).toarray()
    columns = [f"{f}={c}" for f, c in zip(encoder.fields, encoder.categories, strict=True)]
    assert columns == ["GENRES=Action", "GENRES=Classic", "GENRES=Drama"]
    i0 = data.item_vocab.index("i0")  # Action|Classic
    np.testing.assert_allclose(design[i0], [0.5, 0.5, 0.0])
    users = FeatureEncoder.fit(data.user_features).encode(data.user_features, data.n_users).toarray()
    age = users[:, -1]
    assert abs(age.mean()) < 1e-6 and abs(age.std() - 1) < 1e-5
    # a table of new items: unknown categories count for nothing
    new = FeatureTable.from_records({"n1": {"GENRES": "Western|Action"}}, Vocabulary(["n1"]))
    np.testing.assert_allclose(encoder.encode(new, 1).toarray(), [[1.0, 0.0, 0.0]])
    cols, vals = padded_bags(encoder.encode(data.item_features, data.n_items))
    assert cols.shape == (data.n_items, 2) and (cols[vals == 0] == encoder.n_columns).all()


@pytest.mark.parametrize("name", ["two-tower", "fm"])
def test_new_items_are_scored_from_their_features(name: str) -> None:
    data = genre_data()
    recipe = create(name, **(FAST | {"epochs": 12})).fit(data)
    new = FeatureTable.from_records({"new-action": {"GENRES": "Action"}, "new-drama": {"GENRES": "Drama"}},
                                    Vocabulary(["new-action", "new-drama"]))
    kind_a = np.arange(0, data.n_users, 2)
    kind_a = np.asarray([data.user_vocab.index(f"u{u}") for u in kind_a])
    scores = recipe.score_new_items(data.interactions.matrix[kind_a], kind_a, new)
    assert scores.shape == (len(kind_a), 2)
    assert (scores[:, 0] > scores[:, 1]).mean() > 0.9  # Action fans get the new Action item first
    folded = recipe.score_new_items(data.interactions.matrix[kind_a], None, new)  # as strangers, from history
    assert (folded[:, 0] > folded[:, 1]).mean() > 0.8


def test_fm_without_item_features_refuses_new_items() -> None:
    data = genre_data()
    recipe = create("fm", **(FAST | {"use_item_features": False, "epochs": 1})).fit(data)
    with pytest.raises(ConfigError, match="without item features"):
        recipe.score_new_items(data.interactions.matrix[:1], np.array([0]), data.item_features)
    with pytest.raises(ConfigError, match="cold_start_items"):
        create("neumf", epochs=1).fit(data).score_new_items(data.interactions.matrix[:1], None, data.item_features)


def test_int8_quantisation_shrinks_the_artifact_and_keeps_the_ranking(tmp_path: Path) -> None:
    data = genre_data(n_users=120, n_items=100)
    plain = create("two-tower", **(FAST | {"epochs": 3})).fit(data)
    small = create("two-tower", **(FAST | {"epochs": 3, "quantize": True})).fit(data)

    def vectors_size(path: Path) -> int:
        return sum(f.stat().st_size for f in path.glob("arrays/state_*vectors.npy"))

    assert vectors_size(small.save(tmp_path / "small")) < 0.4 * vectors_size(plain.save(tmp_path / "plain"))
    assert (tmp_path / "small" / "arrays" / "state_int8_item_vectors.npy").is_file()
    users = np.arange(data.n_users)
    a, b = plain.recommend(users, k=10).ids, small.recommend(users, k=10).ids
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)])
    assert overlap > 0.8
    loaded = load_recipe(tmp_path / "small")
    np.testing.assert_array_equal(loaded.recommend(users, k=10).ids, b)


def test_early_stopping_keeps_the_best_epoch_and_ends_the_progress() -> None:
    data = genre_data()
    steps: list[tuple[int, int]] = []
    recipe = create("fm", **(FAST | {"epochs": 60, "patience": 2, "lr": 0.05, "reg": 0.0})).fit(
        data, FitOptions(progress=lambda done, total: steps.append((done, total))))
    trained = [h for h in recipe.history_ if "loss" in h]
    assert len(trained) < 60 and steps[-1] == (60, 60)
    best = min(trained, key=lambda h: h["val_loss"])
    assert recipe.best_epoch_ == best["epoch"] and set(trained[0]) >= {"loss", "val_loss", "lr", "seconds"}


def test_ctrl_c_after_an_epoch_keeps_the_best_epoch() -> None:
    data = genre_data()

    def interrupt(epoch: int, recipe: object) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    recipe = create("fm", **(FAST | {"epochs": 10})).fit(data, FitOptions(epoch_callback=interrupt))
    assert recipe.history_[-1] == {"epoch": 3, "interrupted": True}
    assert recipe.best_epoch_ in (1, 2)
    assert recipe.recommend(np.arange(3), k=5).ids.shape == (3, 5)

    def at_once(epoch: int, recipe: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # before any epoch ends there is nothing to keep
        create("fm", **(FAST | {"epochs": 10})).fit(data, FitOptions(progress=lambda d, t: at_once(d, None)
                                                                       if d == 0 else None))


def test_serving_needs_no_torch_and_training_says_how_to_install_it(tmp_path: Path) -> None:
    data = genre_data()
    create("two-tower", **(FAST | {"epochs": 2})).fit(data).save(tmp_path / "model")
    script = f"""
import sys, json
sys.modules["torch"] = None  # torch unimportable, as on a serving host without it
import numpy as np
from recsmith.recipes import create, load_recipe
from recsmith.errors import ConfigError
model = load_recipe({str(tmp_path / 'model')!r}, mmap=True)
ids = model.recommend(np.arange(3), k=4).ids.tolist()
try:
    create("fm").fit(model.train_matrix_)
    message = None
except ConfigError as exc:
    message = str(exc)
print(json.dumps({{"ids": ids, "message": message}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["ids"]) == 3 and all(len(row) == 4 for row in result["ids"])
    assert 'pip install "recsmith[torch]"' in result["message"]


def test_neumf_pretraining_runs_both_towers_first() -> None:
    data = genre_data()
    recipe = create("neumf", **(FAST | {"pretrain": True, "pretrain_epochs": 2, "epochs": 3,
                                        "mlp_layers": [16, 8]})).fit(data)
    assert len(recipe.history_) == 3  # the final stage's epochs (pretraining is not reported)
    users = np.arange(5)
    np.testing.assert_allclose(recipe._scores(data.interactions.matrix[users], users).ravel(),
                               recipe.torch_logits(np.repeat(users, data.n_items),
                                                   np.tile(np.arange(data.n_items), 5)), atol=1e-5)
