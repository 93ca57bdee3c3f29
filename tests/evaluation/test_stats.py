import math

import numpy as np
import pytest
import scipy.stats

from recsmith.errors import ConfigError, DataError
from recsmith.evaluation import stats
from recsmith.evaluation.stats import bootstrap_ci, paired_test, summarise


def test_bootstrap_of_two_values_hand_computed() -> None:
    # resample means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: a 95 % interval spans 0..1,
    # a 40 % interval (quantiles 0.3 and 0.7) is the middle value only
    assert bootstrap_ci([0.0, 1.0], confidence=0.95, n_resamples=2000) == (0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], confidence=0.4, n_resamples=2000) == (0.5, 0.5)
    means = stats.bootstrap_means([0.0, 1.0], n_resamples=4000, seed=3)
    assert set(np.unique(means)) == {0.0, 0.5, 1.0}
    assert np.mean(means == 0.5) == pytest.approx(0.5, abs=0.03)


def test_bootstrap_constant_values_give_a_point() -> None:
    assert bootstrap_ci(np.full(50, 0.25)) == (0.25, 0.25)


def test_bootstrap_width_matches_normal_theory() -> None:
    values = np.random.default_rng(7).exponential(size=4000)
    low, high = bootstrap_ci(values, confidence=0.95, n_resamples=2000, seed=1)
    half_width = 1.959964 * values.std(ddof=1) / math.sqrt(len(values))
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
    narrow = bootstrap_ci(values, confidence=0.5, n_resamples=2000, seed=1)
    assert low < narrow[0] < narrow[1] < high


def test_bootstrap_is_seeded_and_chunking_does_not_change_it(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(0).random(1001)
    whole = bootstrap_ci(values, n_resamples=300, seed=5)
    assert bootstrap_ci(values, n_resamples=300, seed=5) == whole
    assert bootstrap_ci(values, n_resamples=300, seed=6) != whole
    monkeypatch.setattr(stats, "BOOTSTRAP_CHUNK_CELLS", 7 * 1001 + 3)  # chunks of 7 resamples, the last of 6
    assert bootstrap_ci(values, n_resamples=300, seed=5) == whole


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"confidence": 1.0}, ConfigError, "strictly between 0 and 1"),
    ({"confidence": 0}, ConfigError, "strictly between 0 and 1"),
    ({"n_resamples": 0}, ConfigError, "n_resamples must be a positive integer"),
    ({"n_resamples": 10.5}, ConfigError, "n_resamples must be a positive integer"),
])
def test_bootstrap_bad_options(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        bootstrap_ci([1.0, 2.0], **kwargs)


@pytest.mark.parametrize(("values", "message"), [
    ([], "empty"),
    ([1.0, np.nan], "1 NaN or infinite values .first at position 1"),
    ([[1.0, 2.0]], "1-D"),
])
def test_bootstrap_bad_values(values: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        bootstrap_ci(values)


def test_paired_t_test_hand_computed() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([0.0, 0.0, 1.0, 1.0])
    # differences 1, 2, 2, 3: mean 2, sample sd sqrt(2/3), t = 2 / (sd / 2) with 3 degrees of freedom
    t = 2.0 / (math.sqrt(2 / 3) / 2)
    result = paired_test(a, b, method="t")
    assert result["method"] == "t" and result["n"] == 4
    assert result["mean_difference"] == pytest.approx(2.0)
    assert result["statistic"] == pytest.approx(t)
    assert result["p_value"] == pytest.approx(2 * scipy.stats.t.sf(t, df=3))
    swapped = paired_test(b, a)
    assert swapped["statistic"] == pytest.approx(-t) and swapped["p_value"] == pytest.approx(result["p_value"])


def test_paired_wilcoxon_hand_computed() -> None:
    # differences 1, 2, 3, 4, -0.5: ranks of |d| are 2, 3, 4, 5, 1, so W+ = 14 and W- = 1; the exact
    # null puts 2 of 32 sign patterns at W <= 1, two-sided p = 4 / 32
    a = np.array([1.0, 2.0, 3.0, 4.0, 0.0])
    b = np.array([0.0, 0.0, 0.0, 0.0, 0.5])
    result = paired_test(a, b, method="wilcoxon")
    assert result["statistic"] == pytest.approx(1.0)
    assert result["p_value"] == pytest.approx(4 / 32)
    assert result["mean_difference"] == pytest.approx(9.5 / 5)


@pytest.mark.parametrize("method", ["t", "wilcoxon"])
def test_identical_inputs_are_not_significant(method: str) -> None:
    values = np.array([0.1, 0.5, 0.5, 0.9])
    result = paired_test(values, values.copy(), method=method)
    assert result == {"method": method, "n": 4, "mean_difference": 0.0, "statistic": 0.0, "p_value": 1.0}


def test_constant_nonzero_difference_is_maximally_significant_for_t() -> None:
    result = paired_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert result["statistic"] == math.inf and result["p_value"] == 0.0


def test_paired_test_errors() -> None:
    with pytest.raises(DataError, match="a has 3, b has 2"):
        paired_test([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ConfigError, match="'ttest'; use one of: t, wilcoxon"):
        paired_test([1.0, 2.0], [1.0, 3.0], method="ttest")
    with pytest.raises(DataError, match="NaN"):
        paired_test([1.0, np.nan], [1.0, 3.0])
    with pytest.raises(DataError, match="at least 2 pairs"):
        paired_test([1.0], [2.0])


def test_summarise_gives_mean_and_interval_per_metric() -> None:
    rng = np.random.default_rng(2)
    per_user = {"ndcg@10": rng.random(300), "recall@10": np.full(300, 0.5)}
    summary = summarise(per_user, confidence=0.9, n_resamples=500, seed=4)
    assert list(summary) == ["ndcg@10", "recall@10"]
    ndcg = summary["ndcg@10"]
    assert ndcg["mean"] == pytest.approx(per_user["ndcg@10"].mean())
    assert (ndcg["ci_low"], ndcg["ci_high"]) == bootstrap_ci(per_user["ndcg@10"], confidence=0.9, n_resamples=500,
                                                            seed=4)
    assert ndcg["ci_low"] < ndcg["mean"] < ndcg["ci_high"]
    assert summary["recall@10"] == {"mean": 0.5, "ci_low": 0.5, "ci_high": 0.5}
    assert summarise(per_user, confidence=0.9, n_resamples=500, seed=4) == summary
    with pytest.raises(DataError, match="metric 'map@10' is empty"):
        summarise({"map@10": np.array([])}, confidence=0.9, n_resamples=10, seed=0)
