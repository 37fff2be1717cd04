"""ttslab.analysis.compare on cases with known answers: Wilson intervals, paired differences, sign flips, seeds."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ttslab.analysis import compare, curves


@pytest.mark.parametrize("k, n", [(0, 28), (1, 10), (5, 10), (10, 10), (3, 40), (17, 17)])
def test_wilson_interval_matches_scipy_on_counts(k, n):
    want = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = compare.proportion_interval(k / n, n)
    assert low == pytest.approx(want.low, abs=1e-12) and high == pytest.approx(want.high, abs=1e-12)


def test_zero_of_n_is_never_a_zero_width_interval():
    low, high = compare.proportion_interval(0.0, 28)
    assert low == 0.0 and high == pytest.approx(3.8415 / (28 + 3.8415), rel=1e-3)  # z^2 / (n + z^2): 12.1%
    assert compare.proportion_interval(1.0, 28)[0] < 1.0


def test_curve_table_gives_a_0_of_n_column_the_wilson_interval_not_0_0():
    wide = pd.DataFrame({("p", "", "cot", "majority", 1): [0.0] * 28, ("p", "", "x", "majority", 1): [0.5] * 28})
    wide.columns = pd.MultiIndex.from_tuples(wide.columns, names=curves.COLUMNS)
    t = curves.curve_table(wide).set_index("method")
    assert t.loc["cot", "ci_low"] == 0 and t.loc["cot", "ci_high"] == pytest.approx(12.06, abs=0.01)
    assert t.loc["x", "ci_low"] < 50 < t.loc["x", "ci_high"]  # fractional and flat: Wilson at p = 0.5, n = 28


def test_paired_difference_exact_sign_flip_p_value():
    """Three problems where A is right and B wrong, one where both are wrong: the mean difference is 75 points;
    of the 2^3 sign patterns of the three non-zero differences, two (all + or all -) are as extreme: p = 0.25."""
    d = compare.paired_difference([1, 1, 1, 0], [0, 0, 0, 0], "A", "B")
    assert d.diff == 75.0 and d.mean_a == 75.0 and d.mean_b == 0.0
    assert d.p_value == pytest.approx(0.25) and d.exact
    assert d.problems == 4 and d.differ == 3


def test_paired_difference_aligns_series_on_problems_and_drops_missing():
    a = pd.Series({"p1": 1.0, "p2": 0.0, "p3": 1.0, "p4": np.nan})
    b = pd.Series({"p3": 1.0, "p2": 1.0, "p1": 0.0, "p5": 1.0})
    d = compare.paired_difference(a, b)
    assert d.problems == 3 and d.diff == pytest.approx(0.0) and d.differ == 2


def test_no_difference_on_any_problem_is_not_a_verdict():
    d = compare.paired_difference([1, 0, 1], [1, 0, 1], "A", "B")
    assert (d.diff, d.low, d.high, d.p_value, d.differ) == (0.0, 0.0, 0.0, 1.0, 0)
    assert not d.decided and d.verdict().startswith("this run does not tell A and B apart")


def test_a_clear_paired_difference_is_decided_and_a_noisy_one_is_not():
    rng = np.random.default_rng(0)
    b = rng.random(200) < 0.3
    a = b | (rng.random(200) < 0.3)  # A right wherever B is, and on more problems
    clear = compare.paired_difference(a, b, "A", "B")
    assert clear.decided and clear.low > 0 and clear.p_value < 1e-3 and not clear.exact  # Monte Carlo: p >= 1/(resamples + 1)
    assert clear.verdict().startswith("A is above B")
    noisy = compare.paired_difference([1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 1, 0], "A", "B")
    assert not noisy.decided and noisy.low < 0 < noisy.high


@pytest.mark.model  # slow tier (a coverage simulation: ~9 s); the fast suite stays under a minute
def test_bootstrap_interval_of_a_paired_mean_covers_at_about_the_nominal_rate():
    rng = np.random.default_rng(1)
    hits = 0
    for seed in range(200):
        a, b = rng.random(60) < 0.6, rng.random(60) < 0.5
        d = compare.paired_difference(a, b, n_boot=1000, seed=seed)
        hits += d.low <= 10.0 <= d.high
    assert 0.88 <= hits / 200 <= 0.99


def test_over_seeds_reports_the_spread():
    spread = compare.over_seeds(lambda s: 10.0 + s, seeds=range(12))
    s = spread.summary
    assert (s["seeds"], s["min"], s["max"], s["median"]) == (12, 10.0, 21.0, 15.5)
    assert "range 10.0-21.0" in str(spread)
