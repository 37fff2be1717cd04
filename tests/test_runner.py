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
    # (TINY's method.* limits would change none of the plan's items: refused beside a plan, ttslab.config)
    res = ttslab("run", *[o for o in TINY if not o.startswith("method.")], plan, f"run_dir={run_dir}")
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
    prov = summary["provenance"]  # what made the run: version and commit, packages, engine, machine
    assert prov["ttslab"]["version"] and prov["packages"]["llama-cpp-python"] and prov["engines"]["engine"] == "llamacpp"
    assert prov["machine"]["cores"] >= 1
    assert all(r["settings"]["max_tokens"] in (96, 256) for r in records) and all("grading" in r for r in records)
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
        ("method=beam_search method.budget=6", "is not a multiple of method.beam_width=4"),
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


# ---------------------------------------------------------------- preflight, no model needed
def _plan_files(tmp_path, *overrides):
    from ttslab.config import compose
    from ttslab.runner import RunPlan, _write_run_files, preflight

    cfg = compose([f"run_dir={tmp_path / 'r'}", "progress=false", *overrides])
    plan = preflight(cfg)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    _write_run_files(plan)
    return plan, RunPlan


def test_identity_covers_model_files_and_refuses_a_rerun_naming_the_keys(tmp_path):
    from ttslab.config import check_identity
    from ttslab.errors import ConfigError

    plan, _ = _plan_files(tmp_path)
    ident = json.loads((plan.run_dir / "identity.json").read_text())
    assert ident["policy.model_sha256"] and ident["prm.model_sha256"] and ident["policy.family"] == "qwen2.5"
    other = {**ident, "policy.model_sha256": "0" * 64, "seed": 7}
    with pytest.raises(ConfigError, match=r"policy.model_sha256: '1d96.*seed: 0 there, 7 now"):
        check_identity(plan.run_dir, other)


def test_records_made_with_other_method_settings_are_not_reused(tmp_path):
    from ttslab.config import check_record_settings, compose, method_specs
    from ttslab.errors import ConfigError

    specs = method_specs(compose(["method=best_of_n", "method.budget=4"]))
    rec = {"method": "best_of_n", "budget": 4, "settings": {**specs[0][0].settings(), "temperature": 1.0}}
    with pytest.raises(ConfigError, match=r"made with temperature=1.0, this run has temperature=0.7"):
        check_record_settings([rec], specs, tmp_path)
    check_record_settings([{**rec, "settings": specs[0][0].settings()}], specs, tmp_path)  # same: reused


def test_secrets_of_the_server_environment_are_never_written(tmp_path):
    plan, _ = _plan_files(tmp_path, "+engine.launch.env.HF_TOKEN=hf_secret_value")
    for name in ("config.yaml", "identity.json", "invocations.jsonl"):
        assert "hf_secret_value" not in (plan.run_dir / name).read_text()
    assert "HF_TOKEN" in (plan.run_dir / "config.yaml").read_text()  # the key is kept: it was set


def test_a_classifier_prm_without_torch_is_refused_before_loading_anything(tmp_path, monkeypatch):
    import importlib.util

    from ttslab.config import compose
    from ttslab.errors import ConfigError
    from ttslab.runner import preflight

    real = importlib.util.find_spec
    # the message names what is missing in this environment: the dev extra brings transformers, not torch
    missing = " and ".join(["torch"] * (real("torch") is None) + ["transformers"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    cfg = compose(["prm=qwen2.5-math-prm-7b", "method=best_of_n", f"run_dir={tmp_path / 'r'}"])
    with pytest.raises(ConfigError, match=f"classifier PRM.*{missing} (is|are) not installed"):
        preflight(cfg)


def test_a_classifier_prm_is_never_resolved_as_a_gguf_file(tmp_path, monkeypatch):
    from ttslab import runner
    from ttslab.config import compose
    from ttslab.runner import preflight

    # whether torch is installed is the test above's subject; here only the model spec matters
    monkeypatch.setattr(runner, "_check_dependencies", lambda cfg, use_prm: None)
    plan = preflight(compose(["prm=qwen2.5-math-prm-7b", "method=best_of_n", f"run_dir={tmp_path / 'r'}"]))
    assert plan.use_prm and "prm.model_sha256" in plan.identity and plan.identity["prm.model_sha256"] is None


def test_a_run_that_fails_before_any_record_leaves_no_directory_behind(tmp_path, monkeypatch):
    from ttslab import runner
    from ttslab.config import compose
    from ttslab.errors import RunFailed

    def broken(plan):
        assert (plan.run_dir / ".lock").exists() or plan.run_dir.exists()
        raise RunFailed("the engine could not start")

    monkeypatch.setattr(runner, "_build_engines", broken)
    plan = runner.preflight(compose(["method=best_of_n", f"run_dir={tmp_path / 'r'}"]))
    with pytest.raises(RunFailed):
        runner.execute(plan)
    assert not (tmp_path / "r").exists()
