"""`ttslab run` end to end: records, summary, resume after SIGKILL, config errors before generation."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ttslab.results import read_records, record_key
from ttslab.search.selection import RULES

TINY = ["dataset.limit=2", "method.max_tokens=96", "method.max_step_tokens=48", "method.max_steps=3",
        "engine.max_sequences=8", "engine.n_ctx_per_sequence=1024", "progress=false"]


def ttslab(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "ttslab.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.model
def test_plan_run_writes_complete_records_and_a_summary(tmp_path):
    run_dir = tmp_path / "run"
    plan = ("plan=[{name: cot, max_tokens: 96}, {name: best_of_n, budgets: [1, 2], max_tokens: 96}, "
            "{name: beam_search, budgets: [2], beam_width: 2, max_tokens: 256, max_step_tokens: 128, max_steps: 2}]")
    res = ttslab("run", *TINY, plan, f"run_dir={run_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "run directory" in res.stdout and "beam_search" in res.stdout
    records = read_records(run_dir)
    assert sorted((r["method"], r["budget"]) for r in records) == sorted(
        [("cot", 1)] * 2 + [("best_of_n", 1)] * 2 + [("best_of_n", 2)] * 2 + [("beam_search", 2)] * 2)
    for r in records:
        assert r["usage"]["policy"]["completion_tokens"] > 0
        if r["method"] == "cot":
            assert r["prm"] is None and set(r["selections"]) == {"majority", "oracle"}
        else:
            assert r["prm"] and set(r["selections"]) == set(RULES) | {"oracle"}
            scored = r["method"] == "best_of_n" or any(n["valid"] for n in r["tree"][1:])
            assert (r["usage"]["prm"]["prompt_tokens"] > 0) == scored
            for c in r["candidates"]:
                assert len(c["step_scores"]) == len(c["steps"])
        if r["method"] == "best_of_n":
            assert len(r["candidates"]) == r["budget"]
        if r["method"] == "beam_search":
            assert r["tree"] and len(r["candidates"]) <= 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["records"] == len(records)
    table_rows = [line.split() for line in ttslab("summary", str(run_dir)).stdout.splitlines()]
    assert [row[:2] for row in table_rows if row[:1] == ["best_of_n"]] == [["best_of_n", "1"], ["best_of_n", "2"]]


@pytest.mark.model
def test_sigkill_midway_then_rerun_gives_exactly_the_full_set(tmp_path):
    run_dir = tmp_path / "run"
    # all problems of a method advance together, so the kill lands between methods: CoT's records are
    # written, Best-of-N's are not
    args = [sys.executable, "-m", "ttslab.cli", "run", "dataset.limit=3", "prm=none", "progress=false",
            "plan=[{name: cot, max_tokens: 48}, {name: best_of_n, budgets: [4], max_tokens: 400}]",
            f"run_dir={run_dir}"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = run_dir / "records.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and (not records.exists() or records.read_text().count("\n") < 3):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = read_records(run_dir)
    assert 3 <= len(first) < 6, "the kill should land midway"
    res = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    final = read_records(run_dir)
    keys = [record_key(r) for r in final]
    assert len(keys) == len(set(keys)) == 6
    assert {record_key(r) for r in first} <= set(keys)
    # the records written before the kill are kept byte for byte
    assert final[: len(first)] == first


@pytest.mark.parametrize(
    "override, message",
    [
        ("method=foo", "options in 'method'"),
        ("method.budget=0", "method.budget=0: expected an integer >= 1"),
        ("dataset.path=/nonexistent/problems.jsonl", "dataset.path='/nonexistent/problems.jsonl': file not found"),
        ("method=beam_search method.budget=6", "must be a multiple of method.beam_width=4"),
        ("prm.type=oracle", "prm.type='oracle' is not known"),
    ],
)
def test_config_errors_name_the_key_before_any_generation(tmp_path, override, message):
    res = ttslab("run", *override.split(), f"run_dir={tmp_path / 'r'}", "progress=false", timeout=120)
    assert res.returncode != 0
    assert message in res.stderr + res.stdout
    assert not (tmp_path / "r" / "records.jsonl").exists()


def test_model_file_with_a_wrong_hash_is_refused_before_generation(tmp_path):
    fake = tmp_path / "m.gguf"
    fake.write_bytes(b"GGUF-not-really")
    res = ttslab("run", "method=best_of_n", f"policy.model='{fake}#sha256={'0' * 64}'",
                 f"run_dir={tmp_path / 'r'}", timeout=120)
    assert res.returncode != 0 and "refusing to load it" in res.stderr
    assert not (tmp_path / "r" / "records.jsonl").exists()


def test_a_rerun_with_another_policy_into_the_same_directory_is_refused(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("policy: {name: other}\nprm: {name: x}\ndataset: {path: bundled, format: auto}\nseed: 0\n")
    res = ttslab("run", "method=best_of_n", f"run_dir={run_dir}", timeout=120)
    assert res.returncode == 2 and "use another run_dir" in res.stderr and "policy.name" in res.stderr
