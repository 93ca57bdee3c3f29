import numpy as np
import pytest
import scipy.sparse as sp

from recsmith.errors import ConfigError, DataError
from recsmith.evaluation.analysis import (
    history_lengths,
    interaction_deciles,
    item_counts,
    item_popularity_deciles,
    metric_curve,
    per_segment,
    popularity_deciles,
    report_entry,
    user_segments,
)
from recsmith.evaluation.metrics import compute_metrics

# user 0: relevant {1, 3}; recommended [1, 2, 3] -> hits at ranks 1 and 3
# user 1: relevant {0};    recommended [2, 0, -1] -> hit at rank 2
REC = np.array([[1, 2, 3], [2, 0, -1]], dtype=np.int32)
TRUTH = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0]], dtype=np.float32))


def rows_of_length(lengths: list[int], n_items: int = 12) -> sp.csr_matrix:
    """A training matrix whose row ``u`` holds ``lengths[u]`` interactions."""
    dense = np.zeros((len(lengths), n_items), dtype=np.float32)
    for user, length in enumerate(lengths):
        dense[user, :length] = 1.0
    return sp.csr_matrix(dense)


def items_with_counts(counts: list[int]) -> sp.csr_matrix:
    """A training matrix whose column ``i`` holds ``counts[i]`` interactions."""
    dense = np.zeros((max(counts), len(counts)), dtype=np.float32)
    for item, count in enumerate(counts):
        dense[:count, item] = 1.0
    return sp.csr_matrix(dense)


# ------------------------------------------------------------------------------------------------ metric_curve
def test_metric_curve_hand_computed() -> None:
    assert metric_curve(REC, TRUTH, "hit_rate", ks=(1, 2, 3)) == {1: 0.5, 2: 1.0, 3: 1.0}
    assert metric_curve(REC, TRUTH, "precision", ks=(1, 2, 3)) == pytest.approx({1: 0.5, 2: 0.5, 3: 0.5})
    # user 0 has 2 relevant items (a hit at rank 1 and 3), user 1 one (a hit at rank 2)
    assert metric_curve(REC, TRUTH, "recall", ks=(1, 2, 3)) == pytest.approx({1: 0.25, 2: 0.75, 3: 1.0})
    # capped: divided by min(k, |truth|), so user 0's one hit in the top 1 counts in full
    assert metric_curve(REC, TRUTH, "recall-capped", ks=(1, 2, 3)) == pytest.approx({1: 0.5, 2: 0.75, 3: 1.0})
    assert metric_curve(REC, TRUTH, "ndcg", ks=(1,)) == {1: 0.5}


def test_metric_curve_matches_compute_metrics_and_sorts_cut_offs() -> None:
    curve = metric_curve(REC, TRUTH, "ndcg", ks=[3, 1, 3, 2])
    assert list(curve) == [1, 2, 3]
    expected = compute_metrics(REC, TRUTH, ["ndcg@1", "ndcg@2", "ndcg@3"])
    assert curve == {1: expected["ndcg@1"], 2: expected["ndcg@2"], 3: expected["ndcg@3"]}


def test_metric_curve_default_cut_offs_need_twenty_columns() -> None:
    wide = np.full((2, 20), -1, dtype=np.int32)
    wide[:, :3] = REC
    assert list(metric_curve(wide, TRUTH)) == [1, 5, 10, 20]
    with pytest.raises(ConfigError, match="only 3 recommendations"):
        metric_curve(REC, TRUTH)  # default ks go to 20


@pytest.mark.parametrize(("base", "ks", "message"), [
    ("ndcg", (1, 4), "up to 4"),
    ("ndcg@10", (1,), "without cut-off"),
    ("nonsense", (1,), "without cut-off"),
    ("ndcg", (), "empty"),
    ("ndcg", (0, 1), "positive integer"),
    ("ndcg", (1.5,), "positive integer"),
    ("ndcg", (True,), "positive integer"),
])
def test_metric_curve_rejects_bad_arguments(base: str, ks: tuple, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        metric_curve(REC, TRUTH, base, ks)


# ------------------------------------------------------------------------------------------------ segments
def test_history_lengths_ignore_explicit_zeros() -> None:
    matrix = sp.csr_matrix((np.array([1.0, 0.0, 2.0, -1.0]), np.array([0, 1, 2, 0]), np.array([0, 3, 3, 4])),
                           shape=(3, 3))
    assert history_lengths(matrix).tolist() == [2, 0, 1]  # a negative weight is still an interaction
    assert item_counts(matrix).tolist() == [2, 0, 1]


def test_user_segments_split_distinct_lengths_into_equal_terciles() -> None:
    train = rows_of_length([5, 1, 6, 3, 2, 4])
    # evaluated in a shuffled order: lengths 4, 1, 6, 2, 5, 3
    segments = user_segments(train, np.array([5, 1, 2, 4, 0, 3]))
    assert segments.tolist() == ["medium", "light", "heavy", "light", "heavy", "medium"]


def test_user_segments_keep_ties_together() -> None:
    # lengths 1, 2, 2, 2, 9: the three 2s share average rank 3 -> position 2.5/5 = 0.5 -> all medium
    train = rows_of_length([1, 2, 2, 2, 9])
    assert user_segments(train, np.arange(5)).tolist() == ["light", "medium", "medium", "medium", "heavy"]
    # lengths 1, 1, 5: the 1s share rank 1.5 -> position 1/3 exactly -> medium (below 1/3 is light)
    assert user_segments(rows_of_length([1, 1, 5]), np.arange(3)).tolist() == ["medium", "medium", "heavy"]


def test_user_segments_on_tiny_inputs() -> None:
    train = rows_of_length([3, 1, 3, 8])
    assert user_segments(train, np.array([1])).tolist() == ["medium"]
    assert user_segments(train, np.array([0, 2])).tolist() == ["medium", "medium"]  # all tied
    assert user_segments(train, np.array([3, 1])).tolist() == ["heavy", "light"]
    assert user_segments(train, np.array([1, 0, 3])).tolist() == ["light", "medium", "heavy"]
    assert user_segments(train, np.array([], dtype=np.int64)).tolist() == []


def test_user_segments_use_only_the_evaluated_users() -> None:
    train = rows_of_length([1, 2, 3, 10, 11, 12])
    # among users 3, 4, 5 alone, 10 is the light one
    assert user_segments(train, np.array([3, 4, 5])).tolist() == ["light", "medium", "heavy"]


def test_user_segments_reject_bad_users() -> None:
    train = rows_of_length([1, 2])
    with pytest.raises(DataError, match="outside 0..1"):
        user_segments(train, np.array([0, 2]))
    with pytest.raises(DataError, match="1-D"):
        user_segments(train, np.array([[0, 1]]))
    with pytest.raises(DataError, match="1-D"):
        user_segments(train, np.array([0.5]))


def test_per_segment_means_and_counts() -> None:
    values = np.array([0.0, 1.0, 0.5, 0.25])
    segments = np.array(["heavy", "light", "heavy", "medium"])
    assert per_segment(values, segments) == {
        "light": {"mean": 1.0, "count": 1},
        "medium": {"mean": 0.25, "count": 1},
        "heavy": {"mean": 0.25, "count": 2},
    }


def test_per_segment_omits_empty_segments_and_sorts_other_labels_last() -> None:
    result = per_segment(np.array([1.0, 3.0, 2.0]), np.array(["zeta", "heavy", "alpha"]))
    assert list(result) == ["heavy", "alpha", "zeta"]
    assert result["heavy"] == {"mean": 3.0, "count": 1}


def test_per_segment_rejects_mismatched_lengths() -> None:
    with pytest.raises(DataError, match="same length"):
        per_segment(np.array([1.0, 2.0]), np.array(["light"]))


# ------------------------------------------------------------------------------------------------ popularity
# item i has COUNTS[i] training interactions: distinct counts 0..9, so item i is in decile COUNTS[i] + 1
COUNTS = [5, 0, 9, 1, 2, 3, 4, 6, 7, 8]


def test_item_popularity_deciles_with_distinct_counts() -> None:
    train = items_with_counts(COUNTS)
    assert item_popularity_deciles(train).tolist() == [c + 1 for c in COUNTS]


def test_item_popularity_deciles_break_ties_by_item_index() -> None:
    # counts 0, 0, 1, 1: ranks 1..4 (ties by index) -> positions 1/8, 3/8, 5/8, 7/8 -> deciles 2, 4, 7, 9
    dense = np.array([[0, 0, 1, 1]], dtype=np.float32)
    assert item_popularity_deciles(sp.csr_matrix(dense)).tolist() == [2, 4, 7, 9]
    with pytest.raises(DataError, match="no items"):
        item_popularity_deciles(sp.csr_matrix((2, 0)))


def test_popularity_deciles_are_all_populated_when_most_counts_tie() -> None:
    """A long tail: 500 cold items, 400 seen once, 100 popular ones. Kept together, the ties filled deciles 3 and 8
    and left seven empty; by rank every decile holds a tenth of the catalogue."""
    counts = np.array([0] * 500 + [1] * 400 + list(range(2, 102)))
    shuffled = counts[np.random.default_rng(0).permutation(len(counts))]  # ties spread over the item indices
    train = items_with_counts(shuffled.tolist())
    deciles = item_popularity_deciles(train)
    assert np.bincount(deciles, minlength=11)[1:].tolist() == [100] * 10
    assert set(deciles[shuffled == 0].tolist()) == {1, 2, 3, 4, 5}
    assert set(deciles[shuffled == 1].tolist()) == {6, 7, 8, 9}
    assert set(deciles[shuffled >= 2].tolist()) == {10}
    np.testing.assert_array_equal(item_popularity_deciles(train.copy()), deciles)  # deterministic
    every = np.arange(len(counts), dtype=np.int32).reshape(100, 10)  # each item recommended once
    np.testing.assert_allclose(popularity_deciles(every, train, k=10), [0.1] * 10)
    shares = interaction_deciles(train)
    np.testing.assert_allclose(shares[:9], [0] * 5 + [100 / 5550] * 4)  # 400 + (2 + ... + 101) interactions


def test_popularity_deciles_hand_computed() -> None:
    train = items_with_counts(COUNTS)
    recs = np.array([[2, 0, -1, 4], [2, 1, 3, 4]], dtype=np.int32)
    # top 3 without padding: items 2, 0, 2, 1, 3 -> deciles 10, 6, 10, 1, 2
    shares = popularity_deciles(recs, train, k=3)
    np.testing.assert_allclose(shares, [0.2, 0.2, 0, 0, 0, 0.2, 0, 0, 0, 0.4])
    assert shares.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(popularity_deciles(recs, train, k=1), [0] * 9 + [1.0])


def test_popularity_deciles_accept_interactions_and_handle_empty_recommendations() -> None:
    from recsmith.data.interactions import Interactions

    data = Interactions.from_csr(items_with_counts(COUNTS))
    np.testing.assert_array_equal(popularity_deciles(np.full((2, 3), -1), data, k=3), np.zeros(10))


def test_popularity_deciles_reject_bad_arguments() -> None:
    train = items_with_counts(COUNTS)
    with pytest.raises(ConfigError, match="only 3"):
        popularity_deciles(REC, train, k=4)
    with pytest.raises(ConfigError, match="positive integer"):
        popularity_deciles(REC, train, k=0)
    with pytest.raises(DataError, match="outside the training catalogue"):
        popularity_deciles(np.array([[10]]), train, k=1)


def test_interaction_deciles_share_of_training_interactions() -> None:
    shares = interaction_deciles(items_with_counts(COUNTS))
    np.testing.assert_allclose(shares, np.arange(10) / 45)  # decile d holds the item seen d - 1 times, of 45
    with pytest.raises(DataError, match="no interactions"):
        interaction_deciles(sp.csr_matrix((3, 4)))


# ------------------------------------------------------------------------------------------------ report_entry
def test_report_entry_builds_every_piece() -> None:
    train = rows_of_length([1, 2, 3, 4, 5, 6], n_items=10)
    test = sp.csr_matrix(np.eye(6, 10, k=6, dtype=np.float32) + np.eye(6, 10, k=4, dtype=np.float32))
    users = np.array([0, 1, 2, 3, 4, 5])
    rec_ids = np.tile(np.array([6, 7, 8, 9, 5], dtype=np.int32), (6, 1))
    truth = test[users]
    per_user = {"ndcg@3": np.linspace(0, 1, 6)}
    row = {"recipe": "demo", "ndcg@3": 0.5, "coverage@3": 0.3, "fit_seconds": 0.25, "rank_seconds": 0.1,
           "users": 6, "per_user": per_user, "rec_ids": rec_ids, "evaluated": users}
    entry = report_entry(row, train, test, curve_metrics=("ndcg",), ks=(1, 2, 3, 50),
                         intervals={"ndcg@3": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}})
    assert entry["recipe"] == "demo"
    assert entry["metrics"] == {"ndcg@3": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}, "coverage@3": 0.3}
    assert entry["fit_seconds"] == 0.25
    assert entry["curve"] == {"ndcg": metric_curve(rec_ids, truth, "ndcg", (1, 2, 3))}  # 50 > depth 5: dropped
    assert entry["segment_metric"] == "ndcg@3"
    assert entry["segments"] == {
        "light": {"mean": pytest.approx(0.1), "count": 2, "min_history": 1, "max_history": 2},
        "medium": {"mean": pytest.approx(0.5), "count": 2, "min_history": 3, "max_history": 4},
        "heavy": {"mean": pytest.approx(0.9), "count": 2, "min_history": 5, "max_history": 6},
    }
    assert entry["decile_k"] == 3
    np.testing.assert_allclose(entry["popularity_deciles"], popularity_deciles(rec_ids, train, 3))


def test_report_entry_needs_details() -> None:
    with pytest.raises(DataError, match="details=True"):
        report_entry({"recipe": "x", "ndcg@10": 0.1}, rows_of_length([1]), rows_of_length([1]))
