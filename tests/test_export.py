"""`ttslab export` on the shipped CPU study runs: every candidate / record arrives in Parquet unchanged."""

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ttslab.errors import InputError
from ttslab.export import export_run, main
from ttslab.results import read_records

STUDY_RUN = Path(__file__).resolve().parent.parent / "ttslab" / "data" / "study_run"
RUNS = sorted(p for p in STUDY_RUN.iterdir() if (p / "records.jsonl").exists())


def test_the_shipped_runs_are_there():
    assert [p.name for p in RUNS] == ["bundled", "math500_levels"]


@pytest.mark.parametrize("run_dir", RUNS, ids=lambda p: p.name)
def test_one_row_per_candidate_with_its_record(run_dir, tmp_path):
    records = read_records(run_dir)
    out = export_run(run_dir, tmp_path / "c.parquet")
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == sum(len(r["candidates"]) for r in records) == len(pd.read_parquet(out))
    # every candidate, field by field, in the order of records.jsonl
    i = 0
    for rec in records:
        for j, cand in enumerate(rec["candidates"]):
            row = rows[i]
            assert (row["problem_id"], row["method"], row["budget"], row["candidate_index"]) == (
                rec["problem_id"], rec["method"], rec["budget"], j)
            for k in ("prm", "policy", "gold", "level", "beam_width", "seed", "policy_params"):
                assert row[k] == rec[k], k
            for k in ("text", "steps", "step_scores", "answer", "key", "correct", "finish", "subtree"):
                assert row[k] == cand[k], k
            assert row["candidate_completion_tokens"] == cand["usage"]["completion_tokens"]
            i += 1


@pytest.mark.parametrize("run_dir", RUNS, ids=lambda p: p.name)
def test_one_row_per_record_keeps_every_rule_and_the_nested_parts(run_dir, tmp_path):
    records = read_records(run_dir)
    rows = pq.read_table(export_run(run_dir, tmp_path / "r.parquet", per="record")).to_pylist()
    assert len(rows) == len(records)
    for rec, row in zip(records, rows):
        assert (row["problem_id"], row["method"], row["budget"]) == (rec["problem_id"], rec["method"], rec["budget"])
        for rule, sel in rec["selections"].items():
            assert (row[f"{rule}_answer"], row[f"{rule}_correct"]) == (sel["answer"], sel["correct"])
        assert row["policy_completion_tokens"] == rec["usage"]["policy"]["completion_tokens"]
        assert row["prm_prompt_tokens"] == rec["usage"]["prm"]["prompt_tokens"]
        assert json.loads(row["candidates_json"]) == rec["candidates"]
        assert json.loads(row["tree_json"] or "null") == rec["tree"]
    # methods without a PRM have no PRM rule: null, not False
    cot = [row for row in rows if row["method"] == "cot"]
    assert cot and all(row["prm_last_max_correct"] is None for row in cot)


def test_datasets_reads_the_export(tmp_path):
    datasets = pytest.importorskip("datasets")
    out = export_run(RUNS[0], tmp_path / "c.parquet")
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert ds.num_rows == pd.read_parquet(out).shape[0]
    assert {"problem_id", "method", "budget", "text", "steps", "step_scores", "correct"} <= set(ds.column_names)


def test_cli_default_path_and_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([str(RUNS[1])]) == 0
    assert (tmp_path / "math500_levels-candidates.parquet").exists()  # named after the run directory
    assert "one per candidate" in capsys.readouterr().out
    assert main([str(tmp_path / "nope")]) == 2
    assert "nope: not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no records.jsonl"):
        export_run(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    first = (RUNS[0] / "records.jsonl").read_text().splitlines()[0]
    (tmp_path / "bad" / "records.jsonl").write_text(first + "\nnot json\n" + first + "\n")
    with pytest.raises(InputError, match="records.jsonl:2"):
        export_run(tmp_path / "bad")
