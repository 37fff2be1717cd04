"""Hostile or careless inputs (issue 21): nothing lost, nothing leaked, nothing mixed.

Each writer of ttslab meets a planted symlink (the victim keeps its bytes), output commands meet paths
they did not make, secrets meet every file a sweep writes, identities are compared whole in run and
merge, and records the results table cannot read are refused before any model loads. No model runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ttslab.errors import ConfigError, InputError
from ttslab.records import is_secret, redacted
from ttslab.results import RECORDS, RecordWriter, check_records, lock_run_dir, merge_runs, read_records

VICTIM_BYTES = b"precious bytes, not ttslab's\n"
USAGE = {"prompt_tokens": 10, "cached_tokens": 0, "completion_tokens": 5}
IDENTITY = {"policy.name": "p", "seed": 0, "prm.name": "none"}


def record(pid="p1", method="best_of_n", budget=4, correct=True, **extra):
    return {"problem_id": pid, "method": method, "budget": budget, "prm": None, "seed": 0,
            "candidates": [{"text": "x", "steps": ["x"], "answer": "1", "key": "1", "correct": correct}],
            "selections": {"majority": {"answer": "1", "correct": correct},
                           "oracle": {"answer": "1", "correct": correct}},
            "usage": {"policy": dict(USAGE), "prm": dict(USAGE)}, **extra}


def run_dir(path: Path, records=(), identity=IDENTITY) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if identity is not None:
        (path / "identity.json").write_text(json.dumps(identity))
    (path / RECORDS).write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def victim(tmp_path):
    v = tmp_path / "victim.txt"
    v.write_bytes(VICTIM_BYTES)
    yield v
    assert v.read_bytes() == VICTIM_BYTES, "a ttslab writer followed a planted symlink"


def plant(link: Path, target: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


# ------------------------------------------------------------------------------- symlink-safe writers
def test_the_lock_is_never_opened_through_a_symlink(tmp_path, victim):
    run = run_dir(tmp_path / "run", [record()])
    plant(run / ".lock", victim)
    with pytest.raises(InputError, match=r"\.lock is a symbolic link"), lock_run_dir(run):
        pass


def test_records_are_never_appended_through_a_symlink(tmp_path, victim):
    run = tmp_path / "run"
    plant(run / RECORDS, victim)
    with pytest.raises(InputError, match="symbolic link"):
        RecordWriter(run)


def test_merge_never_writes_through_links_of_its_output(tmp_path, victim):
    shard = run_dir(tmp_path / "shard", [record()])
    for name in (".lock", "summary.json", RECORDS, "identity.json", "config.yaml"):
        out = tmp_path / f"out-{name}"
        plant(out / name, victim)
        with pytest.raises(InputError, match=f"{name} is a symbolic link"):
            merge_runs([shard], out)


def test_summary_json_is_replaced_never_followed(tmp_path, victim):
    from ttslab.summary import write_summary

    run = run_dir(tmp_path / "run", [record()])
    plant(run / "summary.json", victim)
    with pytest.raises(InputError, match="summary.json is a symbolic link"):
        write_summary(run)


def test_config_identity_and_invocations_never_follow_links(tmp_path, victim):
    from ttslab.writes import append_line, write_atomic

    for name in ("config.yaml", "identity.json"):
        plant(tmp_path / name, victim)
        with pytest.raises(InputError, match="symbolic link"):
            write_atomic(tmp_path / name, "x")
    plant(tmp_path / "invocations.jsonl", victim)
    with pytest.raises(InputError, match="symbolic link"):
        append_line(tmp_path / "invocations.jsonl", "{}")


def test_export_never_writes_through_a_link(tmp_path, victim):
    from ttslab.export import export_run

    run = run_dir(tmp_path / "run", [record()])
    out = plant(tmp_path / "out.parquet", victim)
    with pytest.raises(InputError, match="symbolic link"):
        export_run(run, out, force=True)


def test_figures_never_write_through_a_link(tmp_path, victim):
    from ttslab.figures import build_figures

    out = tmp_path / "figs"
    plant(out / "README.md", victim)
    with pytest.raises(InputError, match="link"):
        build_figures([], str(out), check_layout=False, force=True)


def test_site_staging_never_writes_through_a_link(tmp_path, victim):
    from ttslab.site import stage

    repo = tmp_path / "repo"
    (repo / "paper_figures").mkdir(parents=True)
    (repo / "README.md").write_text("# ttslab\n")
    src = tmp_path / "site" / "src"
    plant(src / "index.md", victim)
    with pytest.raises(InputError):
        stage(src, {}, repo)


# ---------------------------------------------------------------- output commands keep what they did not make
def test_site_removes_only_files_of_its_own_manifest(tmp_path):
    from ttslab.site import MANIFEST, stage

    repo = tmp_path / "repo"
    (repo / "paper_figures").mkdir(parents=True)
    (repo / "paper_figures" / "fig1.png").write_bytes(b"png")
    (repo / "README.md").write_text("# ttslab\n")
    src = tmp_path / "project" / "src"
    code = src / "mypkg" / "__init__.py"  # a project's src/ layout: --out at the project root
    code.parent.mkdir(parents=True)
    code.write_text("x = 1\n")
    stage(src, {}, repo)
    assert code.read_text() == "x = 1\n" and (src / "paper_figures" / "fig1.png").exists()
    assert "paper_figures/fig1.png" in json.loads((src / MANIFEST).read_text())
    (repo / "paper_figures" / "fig1.png").unlink()
    stage(src, {}, repo)  # a figure gone from the repo goes from the site: it was in the manifest
    assert not (src / "paper_figures" / "fig1.png").exists()
    assert code.read_text() == "x = 1\n"


def test_site_refuses_to_overwrite_a_file_it_did_not_write(tmp_path):
    from ttslab.site import stage

    repo = tmp_path / "repo"
    (repo / "paper_figures").mkdir(parents=True)
    (repo / "README.md").write_text("# ttslab\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text("my own sphinx config\n")
    with pytest.raises(InputError, match="not written by `ttslab site`"):
        stage(src, {}, repo)
    assert (src / "conf.py").read_text() == "my own sphinx config\n"


def test_export_refuses_a_run_directory_and_foreign_files(tmp_path):
    from ttslab.export import export_run

    run = run_dir(tmp_path / "run", [record()])
    before = (run / RECORDS).read_bytes()
    for out in (run / RECORDS, run / "x.parquet"):
        with pytest.raises(InputError, match="inside the run directory"):
            export_run(run, out)
    assert (run / RECORDS).read_bytes() == before
    mine = tmp_path / "notes.parquet"
    mine.write_text("my notes")
    with pytest.raises(InputError, match="was not written by ttslab export.*--force"):
        export_run(run, mine)
    assert mine.read_text() == "my notes"
    out = export_run(run, tmp_path / "r.parquet")
    export_run(run, out)  # its own file: replaced
    export_run(run, mine, force=True)
    with pytest.raises(InputError, match="is a directory"):
        export_run(run, tmp_path)


def test_figures_refuse_a_foreign_readme_and_a_run_directory(tmp_path):
    from ttslab.figures import build_figures

    out = tmp_path / "docs"
    out.mkdir()
    (out / "README.md").write_text("# my project\n")
    with pytest.raises(InputError, match="not written by ttslab figures.*--force"):
        build_figures([], str(out), check_layout=False)
    assert (out / "README.md").read_text() == "# my project\n"
    run = run_dir(tmp_path / "run", [record()])
    with pytest.raises(InputError, match="inside the run directory"):
        build_figures([], str(run / "figs"), check_layout=False)
    missing = tmp_path / "new-out"
    with pytest.raises(InputError, match="does not exist"):
        build_figures([str(tmp_path / "typo")], str(missing), check_layout=False)
    assert not missing.exists()  # nothing created before the runs were found


# ------------------------------------------------------------------------------------------ secrets
def test_one_rule_for_every_secret_in_every_form():
    cfg = {"engine": {"launch": {"env": {"HF_TOKEN": "hf_X"}}, "policy": {"api_key": "sk_X", "url": "u"}},
           "prm": {"good_token": "Yes", "options": {"hf_token": "hf_Y"}},
           "method": {"max_tokens": 8}, "other": {"env": "HF_TOKEN=hf_Z", "headers": ["Authorization: t"]}}
    out = json.dumps(redacted(cfg))
    assert not any(s in out for s in ("hf_X", "sk_X", "hf_Y", "hf_Z", "Authorization: t"))
    assert '"HF_TOKEN"' in out and '"Yes"' in out and '"u"' in out and ": 8" in out
    assert is_secret("engine.launch.env") and is_secret("+engine.launch.env.HF_TOKEN")
    assert not any(is_secret(k) for k in ("prm.good_token", "prm.bad_token", "method.max_tokens",
                                          "policy.pretrain_tokens"))


def test_a_sweep_writes_no_secret_anywhere(tmp_path):
    """`ttslab run -m` with a planted token and API key: every file Hydra and ttslab write, and the output."""
    secrets = ("hf_PLANTED_TOKEN_1234", "sk_PLANTED_KEY_5678", "hf_STRING_FORM_0000")
    env = {**os.environ, "TTSLAB_TRACEBACK": "0"}
    # prm=none with beam_search fails in validate, before any model loads: after Hydra wrote its files
    cmd = [sys.executable, "-m", "ttslab.cli", "run", "-m", "engine=sglang", "method=beam_search", "prm=none",
           "method.budget=4,8", f"+engine.launch.env.HF_TOKEN={secrets[0]}",
           f"+engine.policy.api_key={secrets[1]}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
           f"run_dir={tmp_path / 'runs'}/${{hydra:job.num}}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False)
    assert "need a PRM" in proc.stderr, proc.stderr[-2000:]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "multirun.yaml" for p in written) and any(p.parent.name == ".hydra" for p in written)
    for s in secrets:
        assert s not in proc.stdout + proc.stderr
        for p in written:
            assert s not in p.read_text(errors="replace"), f"{s} leaked into {p}"
        assert not any(s in str(p) for p in tmp_path.rglob("*"))
    # a secret swept is refused (it would name directories)
    proc = subprocess.run([*cmd[:6], f"+engine.launch.env.HF_TOKEN={secrets[0]},{secrets[2]}"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False)
    assert proc.returncode == 2 and "cannot be swept" in proc.stderr


def test_config_and_invocations_hold_no_secret(tmp_path):
    from omegaconf import OmegaConf

    from ttslab.config import compose
    from ttslab.records import redacted as red

    cfg = compose(["engine=sglang", "+engine.launch.env.HF_TOKEN=hf_X", "engine.policy.api_key=sk_X"])
    text = OmegaConf.to_yaml(OmegaConf.create(red(cfg)))
    assert "hf_X" not in text and "sk_X" not in text and "HF_TOKEN" in text


# ------------------------------------------------------------------------------------ identities
def test_merge_refuses_shards_of_different_experiments_and_foreign_outputs(tmp_path):
    a = run_dir(tmp_path / "a", [record("p1")])
    b = run_dir(tmp_path / "b", [record("p2")], identity={**IDENTITY, "prm.name": "cpu-judge"})
    with pytest.raises(ConfigError, match="different experiments.*prm.name"):
        merge_runs([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-made
    other = run_dir(tmp_path / "other", [record("p9")], identity={**IDENTITY, "seed": 1})
    with pytest.raises(ConfigError, match="another experiment.*seed"):
        merge_runs([a], other)
    assert [r["problem_id"] for r in read_records(other)] == ["p9"]
    bare = run_dir(tmp_path / "bare", [record("p1")], identity=None)
    with pytest.raises(InputError, match="no identity.json"):
        merge_runs([bare], tmp_path / "out2")
    assert merge_runs([a], tmp_path / "deep" / "new") == 1


def test_a_failed_merge_leaves_no_half_made_output(tmp_path, monkeypatch):
    from ttslab import results

    a = run_dir(tmp_path / "a", [record("p1")])

    def boom(self, rec):
        raise OSError(28, "No space left on device", str(self.path))

    monkeypatch.setattr(results.RecordWriter, "write", boom)
    with pytest.raises(OSError):
        merge_runs([a], tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists()


def _identity_cfg(*overrides):
    from ttslab.config import compose, validate
    from ttslab.records import run_identity

    cfg = compose(list(overrides))
    return run_identity(cfg, validate(cfg), {"policy": "h", "prm": "h2"})


def test_identity_compared_whole_prm_and_seed_included(tmp_path):
    from ttslab.records import check_identity

    cot = _identity_cfg("method=cot", "prm=none")
    assert cot["prm.name"] == "none" and cot["seed"] == 0
    run = run_dir(tmp_path / "run", [record()], identity=cot)
    with pytest.raises(ConfigError, match="prm.name"):
        check_identity(run, _identity_cfg("method=dvts", "method.beam_width=2", "prm=cpu_judge"))
    with pytest.raises(ConfigError, match="seed"):
        check_identity(run, _identity_cfg("method=cot", "prm=none", "seed=3"))
    partial = {k: v for k, v in cot.items() if k != "seed"}  # an identity that lacks a key accepts nothing new
    (run / "identity.json").write_text(json.dumps(partial))
    with pytest.raises(ConfigError, match="seed"):
        check_identity(run, cot)
    (run / "identity.json").unlink()
    with pytest.raises(InputError, match="holds records but no identity.json"):
        check_identity(run, cot)
    (run / "identity.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="identity.json: holds a JSON list"):
        check_identity(run, cot)


def test_a_logprob_prms_bos_is_part_of_the_identity(tmp_path):
    """Math-Shepherd scored with its <s> must never resume a directory scored without it (issue 19.1)."""
    from ttslab.records import check_identity

    shepherd = _identity_cfg("engine=sglang", "method=best_of_n", "prm=math-shepherd-mistral-7b",
                             "policy=llama-3.1-8b-instruct")
    assert shepherd["prm.bos_token"] == "<s>"
    before_the_fix = {k: v for k, v in shepherd.items() if k != "prm.bos_token"}
    run = run_dir(tmp_path / "run", [record()], identity=before_the_fix)
    with pytest.raises(ConfigError, match="prm.bos_token"):
        check_identity(run, shepherd)
    cpu = _identity_cfg("method=cot")  # a PRM without a BOS keeps the identity it had (shipped runs resume)
    assert "prm.bos_token" not in cpu


# ------------------------------------------------------------------------------------------ records
def test_summaries_count_each_record_once_and_refuse_budget_zero(tmp_path):
    from ttslab.summary import summary_table

    recs = [record("p1", method="cot", budget=1, correct=True), record("p2", method="cot", budget=1, correct=False)]
    dup = {**record("p1", method="cot", budget=1, correct=False), "candidates": []}
    run = run_dir(tmp_path / "run", [*recs, dup, recs[0]])
    table = summary_table(read_records(run))
    assert table["problems"].tolist() == [2] and table["pass@N"].tolist() == [50.0]
    bad = run_dir(tmp_path / "bad", [record(budget=0)])
    with pytest.raises(InputError, match=r"records.jsonl:1: budget 0"):
        read_records(bad)


def test_preflight_refuses_records_the_summary_cannot_read(tmp_path):
    no_usage = {k: v for k, v in record().items() if k != "usage"}
    run = run_dir(tmp_path / "run", [record("p0"), no_usage])
    with pytest.raises(InputError, match=r"records.jsonl:2: .*usage.policy.completion_tokens"):
        check_records(run)
    no_oracle = {**record(), "selections": {"majority": {"answer": "1", "correct": True}}}
    run = run_dir(tmp_path / "run2", [no_oracle])
    with pytest.raises(InputError, match=r"records.jsonl:1: .*selections.oracle"):
        check_records(run)


def test_a_fifo_named_records_jsonl_is_refused_not_waited_on(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / RECORDS)
    for call in (check_records, read_records, RecordWriter):
        with pytest.raises(InputError, match="FIFO"):
            call(run)


def test_run_dirs_that_are_not_a_runs_own(tmp_path):
    from ttslab.results import check_run_dir_contents
    from ttslab.runner import _checked_run_dir

    for value in ("", "  ", "/", "~"):
        with pytest.raises(ConfigError, match="run_dir"):
            _checked_run_dir(value)
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "setup.py").write_text("")
    with pytest.raises(InputError, match="not a ttslab run's"):
        check_run_dir_contents(project)
    check_run_dir_contents(run_dir(tmp_path / "ok", [record()]))


def test_method_budgets_empty_and_absurd_budgets_are_refused():
    from ttslab.config import compose, validate

    for overrides, needle in ((["method=best_of_n", "method.budgets=[]"], r"budgets=\[\]"),
                              (["method=best_of_n", f"method.budget={10**30}"], "budget"),
                              (["engine.max_sequences=0"], "engine.max_sequences=0"),
                              (["engine.n_ctx_per_sequence=8"], "engine.n_ctx_per_sequence=8"),
                              (["engine.n_threads=-3"], "engine.n_threads=-3")):
        with pytest.raises(ConfigError, match=needle):
            validate(compose(overrides))


def test_nan_gold_is_refused():
    from ttslab.records import bad_gold

    assert bad_gold("nan") and bad_gold(" inf ") and bad_gold(float("nan")) and bad_gold("")
    assert not bad_gold("3") and not bad_gold("\\infty")


def test_cli_errors_are_one_line(tmp_path):
    """A damaged summary.json, an OSError: one line, exit 2, no traceback."""
    run = run_dir(tmp_path / "run", [record()])
    (run / "summary.json").write_text("[1, 2")
    proc = subprocess.run([sys.executable, "-m", "ttslab.cli", "summary", str(run)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "summary.json" in proc.stderr


def test_a_failed_run_removes_the_empty_parents_it_created(tmp_path, monkeypatch):
    from ttslab import runner
    from ttslab.config import compose

    pytest.importorskip("llama_cpp", reason="preflight of engine=llamacpp needs llama-cpp-python (the cpu extra)")
    deep = tmp_path / "a" / "b" / "run"
    plan = runner.preflight(compose([f"run_dir={deep}", "method=cot", "progress=false"]))

    def fail(plan):
        raise RuntimeError("engine failed to start")

    monkeypatch.setattr(runner, "_build_engines", fail)
    with pytest.raises(RuntimeError):
        runner.execute(plan)
    assert not (tmp_path / "a").exists()


def test_an_engine_error_is_one_line_exit_1(tmp_path):
    """A model llama.cpp cannot load: the engine's error as one line, no traceback."""
    proc = subprocess.run([sys.executable, "-c", ("import sys; from ttslab.cli import main\n"
                           "from ttslab.engines.llamacpp import EngineError\n"
                           "import ttslab.cli as c\n"
                           "def boom(argv): raise EngineError('llama.cpp could not load the model file /m.gguf')\n"
                           "c.COMMANDS['summary'] = boom\n"
                           "sys.exit(main(['summary', 'x']))")], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("ttslab: error: llama.cpp could not load the model file /m.gguf")


def test_a_secret_in_a_config_file_is_redacted_in_hydras_copies(tmp_path):
    """Set in a preset (not on the command line): Hydra saves it, the callback rewrites its copies redacted."""
    extra = tmp_path / "extra" / "experiment"
    extra.mkdir(parents=True)
    (extra / "leaky.yaml").write_text("# @package _global_\ndefaults:\n  - quickstart\n"
                                      "engine:\n  launch:\n    env:\n      HF_TOKEN: hf_FROM_YAML_777\n")
    proc = subprocess.run([sys.executable, "-m", "ttslab.cli", "run", "-m", f"hydra.searchpath=[file://{extra.parent}]",
                           "experiment=leaky", "engine=sglang", "method=beam_search", "prm=none", "method.budget=4",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}", f"run_dir={tmp_path / 'runs'}/${{hydra:job.num}}"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
                          env={**os.environ, "TTSLAB_TRACEBACK": "0"})
    assert "need a PRM" in proc.stderr, proc.stderr[-2000:]
    written = [p for p in (tmp_path / "sweep").rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"multirun.yaml", "config.yaml", "hydra.yaml", "overrides.yaml"}
    for p in written:
        assert "hf_FROM_YAML_777" not in p.read_text(), p
    assert "HF_TOKEN: <not saved>" in (tmp_path / "sweep" / "multirun.yaml").read_text()


def test_cfg_job_prints_secrets_redacted(capsys):
    from ttslab.cli import main

    assert main(["run", "engine=sglang", "+engine.launch.env.HF_TOKEN=hf_PRINTED_1", "engine.policy.api_key=sk_PRINTED_2",
                 "--cfg", "job"]) == 0
    out = capsys.readouterr().out
    assert "hf_PRINTED_1" not in out and "sk_PRINTED_2" not in out and "HF_TOKEN: <not saved>" in out


def test_export_refusal_is_one_line_with_one_prefix(tmp_path, capsys):
    from ttslab.cli import main

    run = run_dir(tmp_path / "run", [record()])
    assert main(["export", str(run), "--out", str(run / RECORDS)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ttslab export: --out") and err.count("ttslab export:") == 1


def test_a_site_built_before_the_manifest_is_rebuilt_in_place(tmp_path):
    """A build folder of an earlier ttslab (its exact conf.py, no manifest) is taken as the site's own."""
    from ttslab.site import MANIFEST, SPHINX_CONFIG, stage

    repo = tmp_path / "repo"
    (repo / "paper_figures").mkdir(parents=True)
    (repo / "README.md").write_text("# ttslab\n")
    src = tmp_path / "src"
    (src / "notebooks").mkdir(parents=True)
    (src / "conf.py").write_text("".join(f"{k} = {v!r}\n" for k, v in SPHINX_CONFIG.items()))
    (src / "index.md").write_text("old front page\n")
    (src / "notebooks" / "99_gone.ipynb").write_text("{}")
    stage(src, {}, repo)
    assert (src / MANIFEST).exists() and not (src / "notebooks" / "99_gone.ipynb").exists()
    assert (src / "index.md").read_text() != "old front page\n"
