"""Compute-optimal selection on hand-made per-problem tables; Efficiency Gain on hand-made curves."""

import numpy as np
import pandas as pd
import pytest

from ttslab.analysis import curves, optimal


def _wide(columns: dict[tuple, list[float]]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    df = pd.DataFrame({k: v for k, v in columns.items()}, index=[f"p{i}" for i in range(n)])
    df.columns = pd.MultiIndex.from_tuples(list(columns), names=curves.COLUMNS)
    df.index.name = "problem_id"
    return df


def _hand_made() -> pd.DataFrame:
    # problems p0-p3 are "easy", p4-p7 "hard". At budget 4: DVTS wins on easy, beam on hard.
    return _wide(
        {
            ("pol", "prm", "dvts", "prm_min_vote", 4): [1, 1, 1, 1, 0, 0, 0, 0],
            ("pol", "prm", "beam_search", "prm_last_max", 4): [0, 1, 0, 1, 1, 1, 1, 0],
            ("pol", "prm", "best_of_n", "majority", 4): [1, 0, 1, 0, 0, 0, 0, 0],
            ("pol", "prm", "best_of_n", curves.PASS_AT_K, 4): [
                1,
                1,
                1,
                1,
                1,
                1,
                1,
                1,
            ],  # oracle: never chosen
            ("pol", "", "cot", "majority", 1): [1, 1, 1, 1, 1, 1, 1, 1],  # baseline: never chosen
            ("pol", "prm", "best_of_n", "majority", 1): [1, 0, 0, 0, 0, 0, 0, 0],
        }
    )


def test_best_configuration_per_difficulty_bin():
    wide = _hand_made()
    bins = pd.Series(["easy"] * 4 + ["hard"] * 4, index=wide.index)
    best = optimal.best_configurations(wide, bins).set_index(["difficulty", "budget"])
    assert tuple(best.loc[("easy", 4), ["method", "rule"]]) == ("dvts", "prm_min_vote")
    assert best.loc[("easy", 4), "accuracy"] == 100.0
    assert tuple(best.loc[("hard", 4), ["method", "rule"]]) == ("beam_search", "prm_last_max")
    assert best.loc[("hard", 4), "accuracy"] == 75.0


def test_without_bins_one_configuration_and_oracle_excluded():
    best = optimal.best_configurations(_hand_made()).set_index("budget")
    assert tuple(best.loc[4, ["method", "rule"]]) == ("beam_search", "prm_last_max")  # 5/8 beats dvts 4/8
    assert best.loc[4, "accuracy"] == 62.5
    assert best.loc[1, "method"] == "best_of_n"  # the CoT column is not a TTS candidate


def test_in_sample_vs_cross_validated_curve():
    wide = _hand_made()
    bins = pd.Series(["easy"] * 4 + ["hard"] * 4, index=wide.index)
    curve = optimal.compute_optimal_curve(wide, bins, folds=4, seed=0).set_index("budget")
    assert curve.loc[4, "accuracy_in_sample"] == pytest.approx((4 + 3) / 8 * 100)
    assert curve.loc[4, "accuracy_cv"] <= curve.loc[4, "accuracy_in_sample"] + 1e-9


def test_cross_validation_is_honest_on_pure_noise():
    # 40 equally good (coin-flip) configurations: in-sample picks the luckiest, CV should sit near 50%
    rng = np.random.default_rng(0)
    cols = {
        ("pol", "prm", "best_of_n", f"r{i}", 4): (rng.random(1000) < 0.5).astype(float).tolist()
        for i in range(40)
    }
    curve = optimal.compute_optimal_curve(_wide(cols), folds=5).iloc[0]
    assert curve["accuracy_in_sample"] > 52
    assert abs(curve["accuracy_cv"] - 50) < 5 and curve["accuracy_cv"] < curve["accuracy_in_sample"] - 1


def test_performance_gain():
    assert optimal.performance_gain(26.0, 66.2) == pytest.approx(154.615, abs=1e-3)
    with pytest.raises(ValueError):
        optimal.performance_gain(-1.0, 10.0)
    assert np.isnan(optimal.performance_gain(0.0, 10.0))  # a run whose CoT got nothing right: undefined


MAJ = pd.Series({4: 50.0, 16: 60.0, 64: 70.0, 256: 72.0})


def test_efficiency_gain_log2_interpolation_known_answer():
    tts = pd.Series({4: 65.0, 16: 71.0, 64: 75.0, 256: 80.0})
    eg = optimal.efficiency_gain(MAJ, tts)  # target 72 at N=256; crosses 1/4 of the way from 16 to 64 in log2
    assert eg.matched_budget == pytest.approx(2**4.5)
    assert eg.value == pytest.approx(256 / 2**4.5) and not eg.lower_bound
    assert str(eg) == "11.3×"


def test_efficiency_gain_linear_interpolation_known_answer():
    tts = pd.Series({4: 65.0, 16: 71.0, 64: 75.0, 256: 80.0})
    eg = optimal.efficiency_gain(MAJ, tts, scale="linear")
    assert eg.matched_budget == pytest.approx(28.0) and eg.value == pytest.approx(256 / 28)


def test_efficiency_gain_exact_hit_and_lower_bound_and_not_reached():
    assert optimal.efficiency_gain(MAJ, pd.Series({4: 60.0, 16: 72.0, 64: 90.0})).value == pytest.approx(16.0)
    eg = optimal.efficiency_gain(MAJ, pd.Series({1: 80.0, 4: 85.0}))
    assert eg.lower_bound and eg.value == 256.0 and str(eg) == ">256.0×"
    assert str(optimal.efficiency_gain(MAJ, pd.Series({4: 65.0, 16: 70.0}))) == "not reached"
    # the paper's 0.8x case: TTS reaches the majority maximum only at a larger budget
    late = optimal.efficiency_gain(
        pd.Series({4: 80.0, 16: 87.0, 64: 86.0}), pd.Series({4: 85.0, 16: 86.0, 64: 88.0})
    )
    assert late.value == pytest.approx(16 / 2**5) and late.value < 1


def test_efficiency_gain_uses_first_budget_of_majority_maximum():
    eg = optimal.efficiency_gain(pd.Series({4: 70.0, 16: 72.0, 64: 72.0}), pd.Series({4: 72.0}))
    assert eg.majority_budget == 16 and eg.value == 4.0 and eg.lower_bound


def test_nested_budget_choice_is_honest_on_pure_noise():
    # 12 budgets x 5 coin-flip configurations (true accuracy 50% everywhere), 20 datasets: the max over
    # budgets of the cross-validated curve is lucky (in-sample again); choosing the budget inside the
    # folds is not. Averages over datasets, so the test measures bias, not one draw.
    maxima, nested = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        cols = {
            ("pol", "prm", "best_of_n", f"r{i}", b): (rng.random(300) < 0.5).astype(float).tolist()
            for b in range(1, 13)
            for i in range(5)
        }
        wide = _wide(cols)
        maxima.append(optimal.compute_optimal_curve(wide, folds=5, seed=seed)["accuracy_cv"].max())
        nested.append(optimal.nested_cv_accuracy(wide, folds=5, seed=seed)["accuracy_cv_nested"].iloc[0])
    assert np.mean(maxima) > 53  # sd of one CV point: 2.9 points; the max of 12 sits ~1.6 sd above
    assert abs(np.mean(nested) - 50) < 1.5  # sd of the mean of 20: 0.65 points


def test_measured_table5_reports_cross_validation_at_a_fixed_budget():
    from analysis_fixtures import study_records

    from ttslab import study

    recs = study_records(n_problems=20, beam_budgets=(4, 32), bon_prefixes=True)
    for r in recs:  # the largest budget (beam search N=32) is always wrong: its CV point is 0
        if r["method"] == "beam_search" and r["budget"] == 32:
            for c in r["candidates"]:
                c["correct"] = False
    per_problem = curves.per_problem_accuracy(recs)
    curve, _ = study.compute_optimal(per_problem)
    top = curve[curve["budget"] == 32]["accuracy_cv"].iloc[0]
    assert top == 0 and curve["accuracy_cv"].max() > 20
    row = study.measured_table5(recs).iloc[0]
    assert row["compute_optimal_cv"] == pytest.approx(round(top, 1))
    assert row["cv_budget"] == curve["budget"].max()
    assert "compute_optimal_cv_nested" in row


def test_curve_has_bootstrap_intervals_over_problems():
    rng = np.random.default_rng(1)
    cols = {("pol", "prm", "best_of_n", f"r{i}", 4): (rng.random(400) < 0.5).astype(float).tolist() for i in range(5)}
    cols[("pol", "prm", "best_of_n", "r0", 8)] = [1.0] * 400  # every problem agrees: Wilson's, not zero width
    curve = optimal.compute_optimal_curve(_wide(cols), folds=5).set_index("budget")
    for kind in ("accuracy_in_sample", "accuracy_cv"):
        low, high = curve[f"{kind}_ci_low"], curve[f"{kind}_ci_high"]
        assert (low <= curve[kind]).all() and (curve[kind] <= high).all()
        assert high[8] == 100.0 and low[8] == pytest.approx(100.0 * 400 / (400 + 1.959964**2), abs=1e-3)
        # 400 coin flips: a 95% interval of the mean is about +-4.9 points wide
        assert 3.5 < (high[4] - low[4]) / 2 < 6.5
    assert curve.loc[4, "accuracy_cv_ci_low"] < 50 < curve.loc[4, "accuracy_cv_ci_high"]


def test_a_configuration_run_on_a_subset_of_the_problems_is_never_chosen():
    # beam search at N=16 on 2 of 8 problems, right on both: by its mean over its own problems it would win
    # (100% > 62.5%) and then leave 6 problems unscored
    wide = _hand_made()
    wide[("pol", "prm", "beam_search", "prm_last_max", 16)] = [1, 1] + [np.nan] * 6
    wide[("pol", "prm", "best_of_n", "majority", 16)] = [1, 1, 1, 0, 1, 0, 1, 0]
    best = optimal.best_configurations(wide).set_index("budget")
    assert best.loc[16, "method"] == "best_of_n" and best.loc[16, "accuracy"] == 62.5
    curve = optimal.compute_optimal_curve(wide, folds=4).set_index("budget")
    assert curve.loc[16, "accuracy_in_sample"] == 62.5 and not np.isnan(curve.loc[16, "accuracy_cv"])
    nested = optimal.nested_cv_accuracy(wide, folds=4).iloc[0]
    assert not np.isnan(nested["accuracy_cv_nested"])
