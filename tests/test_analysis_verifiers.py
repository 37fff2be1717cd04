"""ttslab.analysis.verifiers: every verifier on the same stored candidates, the simulation, the study's numbers.

On the shipped run's real Best-of-N records (16 samples per MATH-500 problem, Math-Verify correctness); known
answers from scipy (Mann-Whitney U is the AUC) and from the definitions (a perfect verifier's PRM-Max is Pass@N).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ttslab import study
from ttslab.analysis import curves, verifiers

RUN = study.STUDY_RUN / "math500_levels"


@pytest.fixture(scope="module")
def run():
    return verifiers.run_verifiers(RUN)


def test_within_problem_auc_is_mann_whitney_per_problem_pooled_over_problems():
    rng = np.random.default_rng(1)
    pids = ["a"] * 7 + ["b"] * 5 + ["c"] * 4
    correct = np.array([1, 1, 0, 0, 0, 1, 0] + [1, 0, 0, 0, 1] + [1, 1, 1, 1], dtype=bool)  # c: no pair
    scores = np.round(rng.random(len(pids)), 1)  # rounded: ties, which count half
    got = verifiers.within_problem_auc(pids, correct, scores)
    wins = pairs = 0.0
    for p in "ab":
        m = np.array(pids) == p
        u = stats.mannwhitneyu(scores[m & correct], scores[m & ~correct]).statistic
        wins, pairs = wins + u, pairs + (m & correct).sum() * (m & ~correct).sum()
    assert got["auc"] == pytest.approx(wins / pairs)
    assert got["problems_with_pairs"] == 2 and got["auc_low"] <= got["auc"] <= got["auc_high"]


def test_synthetic_verifiers_hit_their_target_auc():
    rng = np.random.default_rng(0)
    correct = rng.random(40_000) < 0.3
    for target in (0.5, 0.63, 0.8, 0.95):
        s = verifiers.synthetic_scores(correct, target, rng)
        assert 0 < s.min() and s.max() < 1
        auc = stats.mannwhitneyu(s[correct], s[~correct]).statistic / (correct.sum() * (~correct).sum())
        assert auc == pytest.approx(target, abs=0.01)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        verifiers.separation_for_auc(1.0)


def test_the_runs_own_scores_give_the_runs_own_curves(run):
    records, scores = run
    own = records[0]["prm"]
    swapped = verifiers.rule_columns(verifiers.verifier_records(records, scores[own], own))
    direct = curves.per_problem_accuracy(records, budgets=[4, 16])
    for (rule, n), col in swapped.items():
        ref = direct[next(c for c in direct.columns if c[2] == "best_of_n" and c[3] == rule and c[4] == n)]
        pd.testing.assert_series_equal(col, ref, check_names=False)


def test_scoring_only_the_problems_with_both_outcomes_changes_no_number(run):
    records, scores = run
    own = records[0]["prm"]
    mixed = set(verifiers.mixed_problems(records))
    assert 0 < len(mixed) < len(records)
    full = verifiers.verifier_table(records, {own: scores[own]})
    part = verifiers.verifier_table(records, {own: {p: s for p, s in scores[own].items() if p in mixed}})
    cols = ["budget", "rule", "accuracy", "ci_low", "ci_high", "auc", "diff_vs_majority"]
    pd.testing.assert_frame_equal(full[cols], part[cols])


def test_a_perfect_verifiers_prm_max_is_pass_at_n_and_majority_needs_none(run):
    records, _ = run
    perfect = {str(r["problem_id"]): [[1.0 if c["correct"] else 0.0] for c in r["candidates"]] for r in records}
    cols = verifiers.rule_columns(verifiers.verifier_records(records, perfect, "oracle"))
    for n in verifiers.BUDGETS:
        np.testing.assert_allclose(cols[("prm_last_max", n)], cols[(curves.PASS_AT_K, n)])
    t = verifiers.verifier_table(records, {"oracle": perfect})
    assert set(t.loc[t.rule == "majority", "accuracy"]) == set(
        verifiers.verifier_table(records, {"x": {}}).loc[lambda d: d.rule == "majority", "accuracy"])


def test_simulation_moves_prm_max_from_chance_toward_pass_at_n(run):
    records, _ = run
    sim = verifiers.simulate(records, aucs=(0.5, 0.97), draws=3)
    curve = verifiers.simulation_curve(sim).set_index(["target_auc", "budget", "rule"])["accuracy"]
    cols = verifiers.rule_columns(records)
    for n in verifiers.BUDGETS:
        assert curve[(0.5, n, "majority")] == pytest.approx(cols[("majority", n)].mean() * 100)
        assert curve[(0.97, n, curves.PASS_AT_K)] == pytest.approx(cols[(curves.PASS_AT_K, n)].mean() * 100)
    # at chance PRM-Max picks a random sample: Pass@1 on average; near-perfect it is close to Pass@N
    pass1 = np.mean([np.mean([c["correct"] for c in r["candidates"]]) for r in records]) * 100
    assert curve[(0.5, 4, "prm_last_max")] == pytest.approx(pass1, abs=3)
    assert curve[(0.97, 16, "prm_last_max")] >= 0.85 * curve[(0.97, 16, curves.PASS_AT_K)]
    assert curve[(0.97, 16, "prm_last_max")] > curve[(0.5, 16, "prm_last_max")] + 20


def test_auc_needed_interpolates_between_simulated_points():
    curve = pd.DataFrame({"rule": "r", "budget": 4, "auc": [0.5, 0.7, 0.9], "accuracy": [10.0, 20.0, 30.0]})
    assert verifiers.auc_needed(curve, "r", 4, 15.0) == pytest.approx(0.6)
    assert verifiers.auc_needed(curve, "r", 4, 5.0) == pytest.approx(0.5)
    assert np.isnan(verifiers.auc_needed(curve, "r", 4, 31.0))


def test_length_correlation_reads_a_verifier_that_prefers_long_solutions(run):
    records, _ = run
    recs = copy.deepcopy(records[:5])
    for r in recs:
        for c in r["candidates"]:
            c["step_scores"] = [c["usage"]["completion_tokens"] / 1000.0]
    got = verifiers.length_correlation(recs)
    assert got["rho"] == pytest.approx(1.0) and got["problems"] == 5


def test_rescored_files_are_read_by_verifier_and_a_bad_line_is_named(tmp_path):
    (tmp_path / "rescored").mkdir()
    good = {"problem_id": "p1", "config": "cpu_judge", "prm": "judge-x", "step_scores": [[0.1, 0.2]]}
    (tmp_path / "rescored" / "cpu_judge.jsonl").write_text(json.dumps(good) + "\n")
    assert verifiers.read_rescored(tmp_path) == {"judge-x": {"p1": [[0.1, 0.2]]}}
    (tmp_path / "rescored" / "cpu_probe.jsonl").write_text('{"problem_id": "p1"}\n')
    with pytest.raises(ValueError, match=r"cpu_probe.jsonl:1: not a rescored line"):
        verifiers.read_rescored(tmp_path)


def test_the_studys_numbers_are_the_studys():
    t = verifiers.study_length_bias().set_index("statistic")
    assert t.loc["Average Token per Response", "deepseek_over_mistral"] == pytest.approx(333.1 / 236.9)
    fit = verifiers.study_figure6_fit([np.e])
    assert fit["tts_accuracy"].iloc[0] == pytest.approx(7.66 + 44.31)
    assert "natural log assumed" in fit["note"].iloc[0]


def test_every_shipped_verifier_read_the_same_candidates(run):
    """The re-scored verifiers beside the run scored every candidate of the problems they read, step by step."""
    records, scores = run
    by_id = {str(r["problem_id"]): r for r in records}
    for name, per_problem in scores.items():
        for pid, steps in per_problem.items():
            cands = by_id[pid]["candidates"]
            assert len(steps) == len(cands), (name, pid)
            assert [len(s) for s in steps] == [len(c["steps"]) for c in cands], (name, pid)


@pytest.mark.model
def test_rescore_scores_every_stored_step_with_the_real_prm_and_resumes(tmp_path, run):
    """benchmarks/verifier_rescore.py on one problem with both outcomes: one line, a score per stored step of
    each candidate, in (0, 1); a second call finds it done and scores nothing."""
    import subprocess
    import sys

    import yaml

    pytest.importorskip("llama_cpp", reason="re-scoring runs the embedded model (extra cpu)")
    cfg = yaml.safe_load((RUN / "config.yaml").read_text())
    data = study.STUDY_RUN.parents[2] / cfg["dataset"]["path"]
    if not data.exists():
        pytest.skip(f"the run's dataset file {cfg['dataset']['path']} is not here (MATH-500 is not shipped)")
    records, _ = run
    mixed = set(verifiers.mixed_problems(records))
    rec = min((r for r in records if r["problem_id"] in mixed), key=lambda r: sum(len(c["steps"]) for c in r["candidates"]))
    target = tmp_path / "run"
    target.mkdir()
    (target / "config.yaml").write_text((RUN / "config.yaml").read_text())
    (target / "records.jsonl").write_text(json.dumps(rec) + "\n")
    script = [sys.executable, str(study.STUDY_RUN.parents[2] / "benchmarks" / "verifier_rescore.py"), str(target),
              "cpu_probe", "--mixed-only"]
    subprocess.run(script, check=True, cwd=study.STUDY_RUN.parents[2], capture_output=True, text=True)
    (scores,) = verifiers.read_rescored(target).values()
    assert list(scores) == [rec["problem_id"]]
    steps = scores[rec["problem_id"]]
    assert [len(s) for s in steps] == [len(c["steps"]) for c in rec["candidates"]]
    assert all(0.0 < v < 1.0 for s in steps for v in s)
    again = subprocess.run(script, check=True, cwd=study.STUDY_RUN.parents[2], capture_output=True, text=True)
    assert "1 problems done, 0 to score" in again.stdout


def test_a_rescoring_in_progress_is_left_out_and_named(tmp_path, run):
    """A verifier that has not read every problem with both outcomes would get a constant score where it changes
    picks: it is left out of the comparison and named as incomplete."""
    import shutil

    records, scores = run
    target = tmp_path / "run"
    target.mkdir()
    shutil.copy(RUN / "records.jsonl", target / "records.jsonl")
    (target / "rescored").mkdir()
    own = records[0]["prm"]
    mixed = verifiers.mixed_problems(records)
    with open(target / "rescored" / "partial.jsonl", "w") as f:
        f.writelines(json.dumps({"problem_id": pid, "prm": "partial", "step_scores": scores[own][pid]}) + "\n" for pid in mixed[:3])
    _, found = verifiers.run_verifiers(target)
    assert list(found) == [own]
    assert verifiers.incomplete_verifiers(target) == {"partial": (3, len(mixed))}
