"""Curves: vectorised selection == ttslab.search.selection, pass@k exact, bootstrap coverage."""

import math
import random

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import BEAM_WIDTH, make_candidate, make_record, study_records

from ttslab.analysis import curves
from ttslab.search import selection


def _random_record(rng: random.Random, n: int, method: str = "best_of_n") -> dict:
    graded: dict = {}
    cands = [make_candidate(rng, "1", rng.choice([0.1, 0.4, 0.7]), i, graded) for i in range(n)]
    for c in cands[: n // 3]:  # force ties: identical scores and repeated keys
        c["step_scores"] = [0.5, 0.5]
    if n > 2:
        cands[1]["step_scores"] = []  # no scores -> aggregate -1.0
    budget = n * BEAM_WIDTH if method == "dvts" else n
    return make_record("p", method, budget, cands, gold="1")


@pytest.mark.parametrize("seed", range(25))
def test_vectorised_selection_matches_reference_on_random_subsets(seed):
    rng = random.Random(seed)
    rec = _random_record(rng, rng.randint(1, 12))
    arrays = curves.candidate_arrays([rec])
    n = len(rec["candidates"])
    for size in range(1, n + 1):
        subsets = [sorted(random.Random(seed * 100 + size + k).sample(range(n), size)) for k in range(4)]
        idx = np.array(subsets)[:, None, :]
        got = curves.select_correct(arrays, idx)
        for s, subset in enumerate(subsets):
            cands = [rec["candidates"][i] for i in subset]
            keys = [c["key"] for c in cands]
            for rule in selection.RULES:
                i = selection.select(rule, keys, [c["step_scores"] for c in cands])
                want = i is not None and cands[i]["correct"]
                assert bool(got[rule][s, 0]) == want, (rule, subset)


def test_full_budget_selection_matches_record_selections():
    recs = study_records(n_problems=8)
    for method in ("beam_search", "best_of_n"):
        mine = [r for r in recs if r["method"] == method]
        arrays = curves.candidate_arrays(mine)
        width = arrays.keys.shape[1]
        got = curves.select_correct(arrays, np.broadcast_to(np.arange(width), (1, len(mine), width)))
        for r_i, rec in enumerate(mine):
            if len(rec["candidates"]) < width:
                continue  # padding slots: compared in the per-budget path below
            for rule in selection.RULES:
                assert bool(got[rule][0, r_i]) == rec["selections"][rule]["correct"], (method, rule)


def test_beam_curve_equals_mean_of_record_selections():
    recs = study_records(n_problems=10)
    wide = curves.per_problem_accuracy(recs)
    for b in (4, 8, 16):
        mine = [r for r in recs if r["method"] == "beam_search" and r["budget"] == b]
        for rule in selection.RULES:
            want = np.mean([r["selections"][rule]["correct"] for r in mine])
            col = wide[("Qwen2.5-0.5B-Instruct", "Skywork-PRM-1.5B", "beam_search", rule, b)]
            assert col.mean() == pytest.approx(want)


def _exhaustive(rec, n):
    from itertools import combinations

    exact = {}
    k = len(rec["candidates"])
    for rule in selection.RULES:
        vals = []
        for subset in combinations(range(k), n):
            cands = [rec["candidates"][i] for i in subset]
            i = selection.select(rule, [c["key"] for c in cands], [c["step_scores"] for c in cands])
            vals.append(i is not None and cands[i]["correct"])
        exact[rule] = np.mean(vals)
    return exact


@pytest.mark.parametrize("seed", range(6))
def test_best_of_n_is_the_exact_expectation_over_all_subsets(seed):
    # the estimator enumerates every size-n subset (C(10, n) <= 252): equal to the reference to 1e-12
    rng = random.Random(seed)
    rec = _random_record(rng, 10)
    wide = curves.per_problem_accuracy([rec], budgets=[1, 2, 3, 5, 10])
    for n in (1, 2, 3, 5, 10):
        exact = _exhaustive(rec, n)
        for rule in selection.RULES:
            got = wide[(rec["policy"], rec["prm"], "best_of_n", rule, n)].iloc[0]
            assert got == pytest.approx(exact[rule], abs=1e-12), (n, rule)


def test_beyond_the_enumeration_cap_the_expectation_is_sampled():
    rng = random.Random(3)
    rec = _random_record(rng, 10)
    exact = _exhaustive(rec, 5)  # C(10, 5) = 252 subsets
    wide = curves.per_problem_accuracy([rec], budgets=[5], exact_cap=100, subsets=4000, seed=1)
    for rule in selection.RULES:
        got = wide[(rec["policy"], rec["prm"], "best_of_n", rule, 5)].iloc[0]
        assert got == pytest.approx(exact[rule], abs=0.03), rule


def test_best_of_n_at_one_equals_pass_at_1_for_every_rule():
    # by construction: one sample, every rule picks it. The old 32-random-subset estimate broke this.
    recs = study_records(n_problems=8, bon_prefixes=True)
    wide = curves.per_problem_accuracy(recs)
    pol, prm = recs[0]["policy"], recs[1]["prm"]
    p1 = wide[(pol, prm, "best_of_n", curves.PASS_AT_K, 1)]
    for rule in selection.RULES:
        np.testing.assert_allclose(wide[(pol, prm, "best_of_n", rule, 1)], p1, rtol=0, atol=1e-12)


def test_dvts_subsamples_whole_subtrees_and_budgets_step_by_beam_width():
    rng = random.Random(5)
    rec = _random_record(rng, 8, method="dvts")  # N = 32, M = 4: 8 subtrees
    wide = curves.per_problem_accuracy([rec])
    budgets = sorted(set(wide.columns.get_level_values("budget")))
    assert budgets == [4, 8, 16, 32]
    # at the full budget every subtree is used: equals the record's own selections
    for rule in selection.RULES:
        assert wide[(rec["policy"], rec["prm"], "dvts", rule, 32)].iloc[0] == float(
            rec["selections"][rule]["correct"]
        )
    with pytest.raises(ValueError, match="not a multiple"):
        curves.per_problem_accuracy([rec], budgets=[6])


def test_dvts_duplicate_subtree_is_rejected():
    rng = random.Random(1)
    rec = _random_record(rng, 4, method="dvts")
    rec["candidates"][1]["subtree"] = 0
    with pytest.raises(ValueError, match="subtree"):
        curves.candidate_arrays([rec])


@pytest.mark.parametrize(
    "n,c,k", [(10, 3, 1), (10, 3, 5), (16, 0, 4), (16, 16, 4), (256, 7, 64), (256, 200, 128), (5, 2, 4)]
)
def test_pass_at_k_matches_exact_combinatorics(n, c, k):
    exact = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert float(curves.pass_at_k(n, c, k)) == pytest.approx(exact, rel=1e-10, abs=1e-12)


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError, match="k <= n"):
        curves.pass_at_k(4, 1, 8)


def test_pass_at_1_equals_fraction_correct():
    n = np.array([10, 20, 7])
    c = np.array([3, 0, 7])
    np.testing.assert_allclose(curves.pass_at_k(n, c, 1), c / n)


def test_bootstrap_interval_covers_true_mean_at_nominal_rate():
    rng = np.random.default_rng(0)
    true_p, hits, trials = 0.35, 0, 200
    for t in range(trials):
        values = (rng.random(150) < true_p).astype(float)
        wide = pd.DataFrame({("pol", "prm", "best_of_n", "majority", 4): values})
        wide.columns = pd.MultiIndex.from_tuples(wide.columns, names=curves.COLUMNS)
        row = curves.curve_table(wide, n_boot=400, seed=t).iloc[0]
        hits += row["ci_low"] <= true_p * 100 <= row["ci_high"]
    assert 0.90 <= hits / trials <= 0.98


def test_curve_table_columns_and_percent_scale():
    table = curves.accuracy_curves(study_records(n_problems=6), n_boot=50)
    assert {"accuracy", "ci_low", "ci_high", "scoring", "voting", "n_problems"} <= set(table.columns)
    assert table["accuracy"].between(0, 100).all()
    assert (table["ci_low"] <= table["accuracy"] + 1e-9).all() and (
        table["accuracy"] <= table["ci_high"] + 1e-9
    ).all()
    assert set(table["method"]) == {"cot", "best_of_n", "beam_search", "dvts"}
