"""Difficulty: Pass@1 from samples, the study's absolute bins, quantile bins, Figure 3 data."""

import pandas as pd
import pytest
from analysis_fixtures import study_records

from ttslab.analysis import curves, difficulty


def test_pass_at_1_is_fraction_of_correct_sampled_candidates():
    recs = study_records(n_problems=4)
    p1 = difficulty.pass_at_1(recs)
    for pid in p1.index:
        cands = [
            c
            for r in recs
            if r["problem_id"] == pid and r["method"] in ("best_of_n", "cot")
            for c in r["candidates"]
        ]
        assert p1[pid] == pytest.approx(sum(c["correct"] for c in cands) / len(cands))


def test_pass_at_1_counts_each_sample_once_despite_prefix_records():
    # a run stores Best-of-N at N = 1, 2, 4, 8, 16 as prefixes of the same 16 samples: sample 0 is in
    # five records. Pass@1 must read the 16 samples + CoT once each (17), not the 32 pooled entries.
    recs = study_records(n_problems=6, bon_prefixes=True)
    p1 = difficulty.pass_at_1(recs)
    for pid in p1.index:
        bon16 = next(r for r in recs if r["problem_id"] == pid and r["method"] == "best_of_n" and r["budget"] == 16)
        cot = next(r for r in recs if r["problem_id"] == pid and r["method"] == "cot")
        cands = bon16["candidates"] + cot["candidates"]
        assert len(cands) == 17
        assert p1[pid] == pytest.approx(sum(c["correct"] for c in cands) / 17)


def test_absolute_bins_edges_follow_the_study():
    p1 = pd.Series({"a": 0.0, "b": 0.099, "c": 0.1, "d": 0.499, "e": 0.5, "f": 1.0})
    bins = difficulty.difficulty_bins(p1)
    assert bins.astype(str).tolist() == ["hard", "hard", "medium", "medium", "easy", "easy"]
    with pytest.raises(ValueError, match="scheme"):
        difficulty.difficulty_bins(p1, scheme="deciles")


def test_quantile_bins_are_equal_sized_and_ordered():
    p1 = pd.Series({f"p{i}": v for i, v in enumerate([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.0, 0.6, 0.4])})
    bins = difficulty.difficulty_bins(p1, scheme="quantile", quantiles=5)
    assert bins.value_counts().tolist() == [2] * 5
    assert bins["p7"] == "q1" and bins["p0"] == "q5"


def test_histogram_has_five_bins_and_counts_one_in_the_last():
    hist = difficulty.pass1_histogram(pd.Series([0.0, 0.19, 0.2, 0.85, 1.0]))
    assert hist["count"].tolist() == [2, 1, 0, 0, 2] and hist["percent"].sum() == pytest.approx(100)


def test_several_policies_need_a_choice():
    recs = study_records(n_problems=2)
    recs[0] = dict(recs[0], policy="other")
    with pytest.raises(ValueError, match="policy="):
        difficulty.pass_at_1(recs)


def test_curves_by_difficulty_splits_problems():
    recs = study_records(n_problems=12)
    bins = difficulty.difficulty_bins(difficulty.pass_at_1(recs))
    table = difficulty.curves_by_difficulty(curves.per_problem_accuracy(recs), bins, n_boot=50)
    counts = table.groupby("difficulty", observed=True)["n_problems"].max()
    assert counts.sum() == 12 and set(counts.index) <= {"easy", "medium", "hard"}
