"""The run summary (summary.json, `ttslab summary`) uses the one estimator of ttslab.analysis.curves."""

import json

import numpy as np
import pytest
from analysis_fixtures import study_records, write_run

from ttslab.analysis import curves
from ttslab.search.selection import RULES
from ttslab.summary import CI_COLUMN, format_summary, summary_table, write_summary


def test_summary_best_of_n_is_the_curves_estimator_and_equals_pass_at_1_at_one():
    recs = study_records(n_problems=8, bon_prefixes=True)
    table = summary_table(recs, n_boot=200).set_index(["method", "N"])
    bon = [r for r in recs if r["method"] == "best_of_n"]
    wide = curves.per_problem_accuracy(bon)
    pol, prm = bon[0]["policy"], bon[0]["prm"]
    for n in (1, 2, 4, 8, 16):
        for rule in RULES:
            want = 100 * wide[(pol, prm, "best_of_n", rule, n)].mean()
            assert table.loc[("best_of_n", n), rule] == pytest.approx(want, abs=0.051), (n, rule)
        assert table.loc[("best_of_n", n), "pass@N"] == pytest.approx(
            100 * wide[(pol, prm, "best_of_n", curves.PASS_AT_K, n)].mean(), abs=0.051)
    # N = 1: one sample, every rule picks it: Best-of-N@1 == pass@1 (the first-N summary broke this)
    row = table.loc[("best_of_n", 1)]
    assert all(row[rule] == row["pass@N"] for rule in RULES)
    # beam search is read from its records
    for b in (4, 8, 16):
        mine = [r for r in recs if r["method"] == "beam_search" and r["budget"] == b]
        assert table.loc[("beam_search", b), "majority"] == pytest.approx(
            100 * np.mean([r["selections"]["majority"]["correct"] for r in mine]), abs=0.051)


def test_summary_says_how_many_problems_and_gives_intervals(tmp_path):
    run = write_run(tmp_path / "run", study_records(n_problems=5, bon_prefixes=True))
    summary = write_summary(run)
    assert all(row["problems"] == 5 for row in summary["table"])
    assert all(row[CI_COLUMN].startswith("[") for row in summary["table"])
    cells = {(c["method"], c["N"]): c for c in summary["ci95"]}
    lo, hi = cells[("best_of_n", 4)]["majority"]
    assert lo <= next(r["majority"] for r in summary["table"] if (r["method"], r["N"]) == ("best_of_n", 4)) <= hi
    text = format_summary(run)
    assert "problems" in text and "95%" in text and "expectation over all size-N subsets" in text
    assert json.loads((run / "summary.json").read_text())["records"] == len(study_records(n_problems=5, bon_prefixes=True))


def test_summary_of_an_unfinished_run_counts_the_problems_behind_each_row():
    # a run stopped while writing: one problem has Best-of-N up to N=8 only. No crash; N=16 has 4 problems.
    recs = [r for r in study_records(n_problems=5, bon_prefixes=True)
            if not (r["problem_id"] == "p002" and r["method"] == "best_of_n" and r["budget"] == 16)]
    table = summary_table(recs, n_boot=100).set_index(["method", "N"])
    assert table.loc[("best_of_n", 16), "problems"] == 4 and table.loc[("best_of_n", 8), "problems"] == 5


def test_no_rule_reads_above_pass_at_n_on_the_shipped_run():
    """pass@N comes from the same units as the rules: DVTS@4 read its pass@N off the N=4 records while its
    rules drew 2 of the 8 subtrees of the N=16 records on the subset (PRM-Last-Max 17.6 > pass@N 17.5)."""
    from ttslab.results import read_records
    from ttslab.study import study_run_dirs
    from ttslab.summary import summary_table

    for run in study_run_dirs():
        table = summary_table(read_records(run), n_boot=10)
        rules = [c for c in table.columns if c == "majority" or c.startswith("prm_")]
        for _, row in table.iterrows():
            values = [float(row[c]) for c in rules if row[c] not in ("-", None) and row[c] == row[c]]
            assert max(values) <= float(row["pass@N"]) + 1e-9, (run.name, row["method"], row["N"])
