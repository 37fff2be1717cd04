"""The shipped CPU study run (ttslab/data/study_run/) and the helpers of ttslab.study."""

import copy
import json

import pytest
from analysis_fixtures import study_records, write_run

from ttslab import study
from ttslab.analysis import curves
from ttslab.errors import InputError


def test_the_study_run_ships_finished_runs():
    dirs = study.study_run_dirs()
    assert {d.name for d in dirs} >= {"bundled", "math500"}
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
    assert total < 5_000_000


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
        assert set(study.best_rule_curves(table)["method"]) == {"cot", "best_of_n", "beam_search", "dvts"}
