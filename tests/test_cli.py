"""The `ttslab` command as a person meets it: help, version, completion, and bad input as one line + exit 2."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ttslab.cli import COMMANDS, main

REPO = Path(__file__).resolve().parent.parent


def cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# A classifier PRM's dependencies are checked before its GPU placement: without torch (the dev extra brings
# transformers only) the fig7 preset stops there, with the message naming what this environment lacks.
_MISSING = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
_CLASSIFIER_DEPS_MISSING = (f"{' and '.join(_MISSING)} {'is' if len(_MISSING) == 1 else 'are'} not installed"
                            if _MISSING else "")

BAD_INPUTS = [
    (["run", "method=best_of_n", "method.budget=0"], "method.budget=0: expected an integer >= 1"),
    (["run", "method=beam_search", "method.beam_width=0"], "method.beam_width=0: expected an integer >= 1"),
    (["run", "method=beam_search", "method.budget=6"], "use budget 4 or 8"),
    (["run", "method=foo"], "options in 'method': beam_search best_of_n cot deepconf dvts early_stopping"),
    (["run", "dataset.limit=abc"], "dataset.limit=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    (["run", "dataset.limit=0"], "dataset.limit=0: expected a positive integer"),
    (["run", "bogus=1"], "Could not override 'bogus'"),
    (["run", "prm.type=oracle"], "prm.type='oracle' is not known"),
    (["run", "method=dvts", "prm=none"], "dvts need a PRM"),
    (["run", "shard=3/2"], "shard='3/2': expected i/k"),
    (["run", "policy=llama-3.1-8b-instruct"], "cannot run on engine=llamacpp"),
    (["run", "--frobnicate"], "unknown option '--frobnicate'"),
    (["run", "method.temperature=-1"], "method.temperature=-1.0: expected a number in [0, 10]"),
    (["run", "dataset.path=/nonexistent/problems.jsonl"], "/nonexistent/problems.jsonl"),
    (["run", "run_dir=/proc/ttslab-run"], "is not a writable directory"),
    (["run", "experiment=fig7_qwen_sizes", "dataset=bundled", "dataset.limit=3", "engine.gpu.type=A100-40",
      "engine.gpu.count=1"],
     _CLASSIFIER_DEPS_MISSING or "PRM qwen2.5-math-prm-72b (133.2 GiB of bf16 weights"),
    (["run", "engine=sglang", "policy=qwen2.5-0.5b-instruct", "prm=cpu_confidence"], "needs engine=llamacpp"),
    (["summary"], "the following arguments are required: RUN_DIR"),
    (["summary", "/nonexistent/run"], "/nonexistent/run"),
    (["merge", "out-only"], "the following arguments are required: SHARD_DIR"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_naming_the_key_and_exit_2(capsys, tmp_path, argv, message):
    code, out, err = cli(capsys, *argv)
    assert code == 2, err
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ttslab") and message in lines[0], err


def test_an_unknown_command_is_one_line_and_exit_2(capsys):
    code, _, err = cli(capsys, "frobnicate")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unknown command 'frobnicate'" in err


def test_a_bad_input_as_a_real_process_prints_no_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "ttslab.cli", "run", "method=beam_search", "method.budget=6"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_version_and_help(capsys):
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.startswith("ttslab 0.")
    code, out, _ = cli(capsys, "--help")
    assert code == 0 and all(c in out for c in COMMANDS) and "ttslab run" in out and "powered by Hydra" not in out


def test_run_help_is_ttslabs_not_hydras(capsys):
    code, out, _ = cli(capsys, "run", "--help")
    assert code == 0
    assert "usage: ttslab run [KEY=VALUE ...]" in out and "powered by Hydra" not in out
    from ttslab.search.strategies import method_names

    # every method of the registry (the study's four and the ones after it), from conf/method/
    assert f"method: {', '.join(sorted(method_names()))}" in out and "Common overrides" in out
    assert "base_" not in out  # the schemas are not options


@pytest.mark.parametrize("cmd", ["summary", "merge"])
def test_every_subcommand_has_its_own_help(capsys, cmd):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0 and f"ttslab {cmd}" in capsys.readouterr().out


def test_cfg_job_shows_the_quickstart_as_the_default_composition(capsys):
    code, out, _ = cli(capsys, "run", "progress=false", "--cfg", "job")
    assert code == 0 and "run_name: quickstart" in out and "progress: false" in out and "- name: cot" in out


def test_a_method_on_the_command_line_runs_alone(capsys):
    code, out, _ = cli(capsys, "run", "method=dvts", "--cfg", "job")
    assert code == 0 and "plan: null" in out and "name: dvts" in out


def test_shell_completion_installs_and_completes_subcommands_and_overrides(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(Path(sys.executable).parent / "ttslab")])
    code, out, _ = cli(capsys, "-sc", "install=bash")
    assert code == 0 and "-sc query=bash" in out and out.rstrip().endswith("ttslab")
    monkeypatch.setenv("COMP_LINE", "ttslab su")
    code, out, _ = cli(capsys, "-sc", "query=bash")
    assert code == 0 and out.split() == ["summary"]
    monkeypatch.setenv("COMP_LINE", "ttslab run meth")
    code, out, _ = cli(capsys, "-sc", "query=bash")
    assert code == 0 and "method=" in out.split() and "method." in out.split()


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_an_installed_wheel_composes_every_preset_from_any_directory(tmp_path):
    """`pip install .` (not editable): conf/ ships inside the package as ttslab.conf."""
    wheels = tmp_path / "wheels"
    # as a user's pip builds it: in an isolated build environment with pyproject's build requirements (a bare
    # venv's setuptools 65 without `wheel` cannot build it in place)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("ttslab-*.whl")
    assert "ttslab/conf/experiment/gpu_smoke.yaml" in zipfile.ZipFile(wheel).namelist()
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    for args in (["--cfg", "job"], ["experiment=gpu_smoke", "--cfg", "job"]):
        res = subprocess.run([sys.executable, "-c", "import sys, ttslab.cli; print(ttslab.cli.__file__, file=sys.stderr);"
                              "sys.argv[0] = 'ttslab'; sys.exit(ttslab.cli.main())", "run", *args],
                             capture_output=True, text=True, cwd=outside, env=env, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        assert str(site) in res.stderr  # the installed copy, not the checkout
        assert "run_name:" in res.stdout


def test_an_override_changes_one_thing_of_the_quickstart(capsys):
    code, out, _ = cli(capsys, "run", "dataset=math500", "dataset.limit=20", "--cfg", "job")
    assert code == 0 and "ids: null" in out and "HuggingFaceH4/MATH-500" in out and "- name: dvts" in out
    code, out, _ = cli(capsys, "run", "run_dir=runs/x", "--cfg", "job")
    assert code == 0 and "run_dir: runs/x" in out and "- bundled-22" in out and "- name: beam_search" in out


def test_a_bad_override_with_cfg_is_one_line_too(capsys):
    code, _, err = cli(capsys, "run", "method=foo", "--cfg", "job")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Could not find 'method/foo'" in err
