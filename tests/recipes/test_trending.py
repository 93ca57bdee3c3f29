import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.data.interactions import Interactions
from recsmith.errors import DataError
from recsmith.recipes import create
from recsmith.testing import RecipeContract

HOUR = 3600


class TestTrendingContract(RecipeContract):
    recipe_name = "trending"
    min_ndcg = 0.02


def test_growing_item_beats_a_bigger_steady_one() -> None:
    now = 1_000 * HOUR
    users = [f"u{i}" for i in range(20)]
    rows = []
    rows += [(u, "steady", now - 30 * HOUR) for u in users[:8]]  # 8 users the day before
    rows += [(u, "steady", now - 2 * HOUR) for u in users[8:16]]  # and 8 today: no growth
    rows += [(u, "rising", now - HOUR) for u in users[:6]]  # 0 before, 6 today
    rows += [(u, "fading", now - 40 * HOUR) for u in users[:10]]  # 10 before, 0 today
    data = Interactions.from_arrays(np.array([r[0] for r in rows], dtype=object),
                                    np.array([r[1] for r in rows], dtype=object),
                                    timestamps=np.array([r[2] for r in rows]))
    recipe = create("trending", window_hours=24).fit(data)
    ranked = data.item_vocab.raws(recipe.recommend_from_history([[]], k=3).ids[0])
    assert ranked == ["rising", "steady", "fading"]


def test_needs_timestamps() -> None:
    with pytest.raises(DataError, match="timestamps"):
        create("trending").fit(Interactions.from_csr(sp.eye(3, format="csr")))


def test_event_weights_count() -> None:
    """Two purchases (weight 5) this window outweigh four views (weight 1); a disliked item sinks."""
    now = 1_000 * HOUR
    rows = [(f"u{i}", "viewed", "view") for i in range(4)] + [(f"u{i}", "bought", "purchase") for i in range(2)]
    rows += [(f"u{i}", "hated", "dislike") for i in range(3)] + [("u9", "quiet", "view")]
    data = Interactions.from_arrays(np.array([r[0] for r in rows], dtype=object),
                                    np.array([r[1] for r in rows], dtype=object),
                                    timestamps=np.full(len(rows), now - HOUR),
                                    event_types=np.array([r[2] for r in rows], dtype=object),
                                    event_weights={"view": 1.0, "purchase": 5.0, "dislike": -2.0})
    recipe = create("trending", window_hours=24).fit(data)
    ranked = data.item_vocab.raws(recipe.recommend_from_history([[]], k=4).ids[0])
    assert ranked == ["bought", "viewed", "quiet", "hated"]
