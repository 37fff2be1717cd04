"""The shipped CPU study run (ttslab/data/study_run/) and the helpers of ttslab.study."""

import copy
import json

import numpy as np
import pytest
from analysis_fixtures import study_records, write_run

from ttslab import study
from ttslab.analysis import curves
from ttslab.errors import InputError


def test_the_study_run_ships_finished_runs():
    dirs = study.study_run_dirs()
    assert {d.name for d in dirs} >= {"bundled", "math500_levels"}
    for d in dirs:
        assert (d / "records.jsonl").is_file() and (d / "config.yaml").is_file() and (d / "summary.json").is_file()


def test_the_study_run_is_small_and_holds_no_problem_texts():
    total = 0
    for d in study.study_run_dirs():
        total += sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
        for line in (d / "records.jsonl").read_text().splitlines():
            rec = json.loads(line)
            assert not {"question", "problem", "solution"} & set(rec), "records keep ids, not problem texts"
            assert rec["problem_id"] and "gold" in rec
    # MATH-500 at 40 problems x 10 records (+ search at N=16 on 10) is ~6.5 MB at ~15 kB a record
    # (Best-of-N records repeat the first N samples: what every reader of a record expects); bundled ~1.1 MB
    assert total < 10_000_000


@pytest.mark.parametrize("run_dir", study.study_run_dirs(), ids=lambda d: d.name)
def test_every_shipped_run_is_consistent(run_dir):
    # Best-of-N at N <= 8 is the first N samples of the N=16 record; sample indices; no duplicate keys
    counts = study.check_run(run_dir)
    assert counts["prefix_records_checked"] >= 4 * counts["best_of_n_groups"]


def test_check_run_fails_when_a_best_of_n_record_is_not_a_prefix(tmp_path):
    recs = study_records(n_problems=3, bon_prefixes=True)
    assert study.check_run(write_run(tmp_path / "ok", recs))["prefix_records_checked"] == 3 * 4
    bad = copy.deepcopy(recs)
    n4 = next(r for r in bad if r["problem_id"] == "p001" and r["method"] == "best_of_n" and r["budget"] == 4)
    n4["candidates"][2]["text"] += " (regenerated in another batch shape)"
    with pytest.raises(InputError, match="p001: best_of_n N=4 is not the first 4 samples"):
        study.check_run(write_run(tmp_path / "bad", bad))
    unindexed = copy.deepcopy(recs)
    for c in unindexed[3]["candidates"]:  # Best-of-N N=4
        c["subtree"] = 0
    with pytest.raises(InputError, match="sample index"):
        study.check_run(write_run(tmp_path / "unindexed", unindexed))


def test_resolve_run_dirs_names_a_missing_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no records.jsonl"):
        study.resolve_run_dirs([tmp_path])


def test_every_strategy_of_the_study_run_has_a_curve():
    for ds, recs in study.records_by_dataset(study.load_records()).items():
        table = curves.accuracy_curves(recs, n_boot=200)
        assert {"cot", "best_of_n", "beam_search", "dvts"} <= set(table["method"]), ds
        assert set(study.reported_curves(table)["method"]) == {"cot", "best_of_n", "beam_search", "dvts"}


def _shaped(n_problems: int, subset: int, mid_piece: int = 0) -> list[dict]:
    """Records shaped like the shipped MATH-500 run: CoT, Best-of-N 1..16, beam/DVTS N=4 on every problem,
    beam/DVTS N=16 on the first `subset`; the last `mid_piece` problems have CoT and Best-of-N only."""
    recs = study_records(n_problems=n_problems, beam_budgets=(4,), dvts_n=4, bon_prefixes=True)
    out = []
    for r in recs:
        k = int(r["problem_id"][1:])
        if r["method"] in ("beam_search", "dvts") and k >= n_problems - mid_piece:
            continue
        out.append(r)
        if r["method"] in ("beam_search", "dvts") and k < subset:
            big = copy.deepcopy(r)
            big["budget"] = 16
            out.append(big)
    return out


def test_on_every_problem_sets_aside_a_budget_run_on_a_subset_and_unfinished_problems():
    recs = _shaped(12, subset=3)
    kept, aside = study.on_every_problem(recs)
    assert {r["problem_id"] for r in kept} == {r["problem_id"] for r in recs}
    assert all(r["budget"] != 16 or r["method"] == "best_of_n" for r in kept)
    assert any("beam_search N=16 (on 3 of 12 problems)" in a for a in aside)
    sub = study.on_the_subset(recs)
    assert {r["problem_id"] for r in sub} == {"p000", "p001", "p002"}
    assert {(r["method"], r["budget"]) for r in sub} >= {("beam_search", 16), ("dvts", 16), ("beam_search", 4)}

    kept, aside = study.on_every_problem(_shaped(12, subset=0, mid_piece=2))
    assert len({r["problem_id"] for r in kept}) == 10 and aside[0] == "2 problems without every run yet"
    assert study.on_the_subset(_shaped(12, subset=0, mid_piece=2)) == []


def _legend_curves(fig):
    """{legend label: y values} of every curve drawn with error bars on the figure's first panel."""
    from matplotlib.container import ErrorbarContainer

    ax = fig.axes[0]
    return {c.get_label(): list(c.lines[0].get_ydata()) for c in ax.containers if isinstance(c, ErrorbarContainer)}


def test_fig4_draws_each_strategy_with_its_configured_rule_not_its_best():
    """fig4's data as `ttslab figures` builds it from the shipped MATH-500 run: every strategy's curve is
    its configured report rule (conf/method/*.yaml), not the rule that came out best on these problems;
    on this run the two differ (Best-of-N@4: best rule 14.3% vs majority 10.9%), so the test can fail."""
    import matplotlib.pyplot as plt

    from ttslab import plots
    from ttslab.analysis import curves, rules

    assert {m: rules.report_rule(m) for m in ("cot", "best_of_n", "beam_search", "dvts")} == {
        "cot": "majority", "best_of_n": "majority", "beam_search": "prm_last_max", "dvts": "prm_last_max"}
    recs, _ = study.on_every_problem(study.records_by_dataset(study.load_records())["math500"])
    table = curves.curve_table(curves.per_problem_accuracy(recs))
    fig = plots.accuracy_vs_budget(table, caption="Run: test")
    drawn = _legend_curves(fig)
    plt.close(fig)
    envelope = rules.envelope(table)
    differs = 0
    for method in ("best_of_n", "beam_search", "dvts"):
        rule = rules.report_rule(method)
        label = next(lab for lab in drawn if lab.startswith(plots.label_of(method) + " ("))
        assert plots.rule_label(rule) in label and "best" not in label, label
        want = table[(table["method"] == method) & (table["rule"] == rule)].sort_values("budget")["accuracy"]
        assert drawn[label] == pytest.approx(list(want)), method
        best = envelope[envelope["method"] == method].sort_values("budget")["accuracy"]
        differs += not np.allclose(list(best), list(want))
    assert differs >= 1  # the envelope is not what is drawn
    assert study.reported_curves(table).groupby("method")["rule"].nunique().eq(1).all()


def test_an_envelope_over_rules_says_so():
    from ttslab.analysis import curves, rules

    recs, _ = study.on_every_problem(study.records_by_dataset(study.load_records())["math500"])
    env = rules.envelope(curves.curve_table(curves.per_problem_accuracy(recs)))
    assert set(env[env["method"] == "best_of_n"]["rule"]) == {"optimistic maximum over 9 rules"}


def test_winners_by_difficulty_reads_the_reported_rule_and_calls_a_winner_only_when_paired_interval_excludes_0():
    from ttslab.analysis import curves, difficulty

    recs, _ = study.on_every_problem(study.records_by_dataset(study.load_records())["math500"])
    per_problem = curves.per_problem_accuracy(recs)
    bins = difficulty.difficulty_bins(difficulty.pass_at_1(recs))
    w = study.winners_by_difficulty(per_problem, bins)
    assert len(w) and {"Best-of-N", "Beam search", "DVTS", "winner"} <= set(w.columns)
    hard4 = w[(w["difficulty"] == "hard") & (w["budget"] == 4)].iloc[0]
    maj = per_problem.loc[bins[bins == "hard"].index, ("qwen2.5-coder-0.5b-cpu", "cpu-confidence-qwen2.5-coder-0.5b",
                                                        "best_of_n", "majority", 4)]
    assert hard4["Best-of-N"] == pytest.approx(round(100 * maj.mean(), 1))
    for _, r in w.iterrows():
        low = float(r["lead over runner-up [95% CI]"].split("[")[1].split(",")[0])
        if low <= 0:  # an interval holding 0 never names a winner (a winner also needs the sign-flip p < 5%)
            assert r["winner"] == "not told apart"
