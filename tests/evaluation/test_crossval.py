import numpy as np
import pandas as pd
import pytest

from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.crossval import cross_validate_ratings, kfold_indices
from recsmith.recipes import create


def test_folds_are_surprises_folds() -> None:
    surprise = pytest.importorskip("surprise")
    from surprise.model_selection import KFold

    n = 1003  # not a multiple of 5: the first 3 folds are one longer
    frame = pd.DataFrame({"user": np.arange(n) % 37, "item": np.arange(n), "rating": np.arange(n) % 5 + 1})
    data = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5)))
    theirs = [sorted(int(item) for _, item, _ in testset)
              for _, testset in KFold(n_splits=5, random_state=0, shuffle=True).split(data)]
    ours = [sorted(fold.tolist()) for fold in kfold_indices(n, 5, seed=0)]
    assert ours == theirs


def test_folds_partition_the_rows() -> None:
    folds = kfold_indices(12, 5, seed=3)
    assert [len(f) for f in folds] == [3, 3, 2, 2, 2]
    assert sorted(np.concatenate(folds).tolist()) == list(range(12))
    assert [f.tolist() for f in kfold_indices(12, 5, seed=3)] == [f.tolist() for f in folds]
    assert np.concatenate(kfold_indices(12, 3, shuffle=False)).tolist() == list(range(12))
    for bad in (1, 13, 2.5):
        with pytest.raises(ConfigError, match="from 2 to the number of ratings"):
            kfold_indices(12, bad)


def rating_rows(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratings of a biased rank-2 model plus noise (spread about 1.2)."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(0, 0.8, (80, 2)), rng.normal(0, 0.8, (40, 2))
    users, items = np.nonzero(rng.random((80, 40)) < 0.5)
    ratings = 3.0 + np.einsum("ij,ij->i", p[users], q[items]) + rng.normal(0, 0.1, len(users))
    return users.astype(str), items.astype(str), ratings


def test_cross_validation_measures_every_fold() -> None:
    users, items, ratings = rating_rows()
    result = cross_validate_ratings(create("svd", factors=2, reg=0.02, bias_reg=0.1, epochs=20), users, items,
                                    ratings, n_splits=4)
    assert [fold["fold"] for fold in result["folds"]] == [1, 2, 3, 4]
    assert sum(fold["test_ratings"] for fold in result["folds"]) == len(ratings)
    assert result["rmse"] < 0.3 and result["mae"] <= result["rmse"]
    assert result["rmse"] == pytest.approx(np.mean([fold["rmse"] for fold in result["folds"]]))
    clipped = cross_validate_ratings(create("svd"), users, items, ratings, n_splits=3, rating_scale=(3.0, 3.0))
    assert clipped["rmse"] == pytest.approx(np.mean([np.sqrt(np.mean((ratings[f] - 3.0) ** 2))
                                                     for f in kfold_indices(len(ratings), 3)]), rel=1e-6)


def test_cross_validation_refuses_ranking_recipes_and_bad_ratings() -> None:
    users, items, ratings = rating_rows()
    with pytest.raises(ConfigError, match="svd or svdpp"):
        cross_validate_ratings(create("item-knn"), users, items, ratings)
    bad = ratings.copy()
    bad[5] = np.nan
    with pytest.raises(DataError, match="missing"):
        cross_validate_ratings(create("svd"), users, items, bad)
    with pytest.raises(DataError, match="one value per rating"):
        cross_validate_ratings(create("svd"), users[:-1], items, ratings)
