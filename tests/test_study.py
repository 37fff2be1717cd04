"""The shipped CPU study run (ttslab/data/study_run/) and the helpers of ttslab.study."""

import json

import pytest

from ttslab import study
from ttslab.analysis import curves


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


def test_best_of_n_candidates_carry_their_sample_index():
    for rec in study.load_records():
        if rec["method"] == "best_of_n":
            assert [c["subtree"] for c in rec["candidates"]] == list(range(len(rec["candidates"])))


def test_legacy_best_of_n_records_get_the_index_from_their_position():
    rec = {"method": "best_of_n", "candidates": [{"subtree": 0}, {"subtree": 0}, {"subtree": 0}]}
    assert [c["subtree"] for c in study._with_sample_index(rec)["candidates"]] == [0, 1, 2]
    dvts = {"method": "dvts", "candidates": [{"subtree": 0}, {"subtree": 1}]}
    assert study._with_sample_index(dvts) is dvts


def test_resolve_run_dirs_names_a_missing_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no records.jsonl"):
        study.resolve_run_dirs([tmp_path])


def test_every_strategy_of_the_study_run_has_a_curve():
    for ds, recs in study.records_by_dataset(study.load_records()).items():
        table = curves.accuracy_curves(recs, n_boot=200)
        assert {"cot", "best_of_n", "beam_search", "dvts"} <= set(table["method"]), ds
        assert set(study.best_rule_curves(table)["method"]) == {"cot", "best_of_n", "beam_search", "dvts"}
