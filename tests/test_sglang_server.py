"""The SGLang launcher: command construction, clear launch errors, and the child-process lifecycle.

The lifecycle tests launch the wire-format double as a real child process in place of
`sglang.launch_server` (engine.launch.module), so spawning, /health, logging and shutdown are real.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from pathlib import Path

import pytest

from ttslab.engines import sglang_server
from ttslab.engines.sglang import SGLangEngine, SGLangError
from ttslab.engines.sglang_server import (
    SGLangLaunchError,
    build_launch_command,
    check_gpu_visible,
    launch_for_role,
)

REPO = Path(__file__).resolve().parents[1]

# Argument names of `python -m sglang.launch_server` as documented in SGLang's
# docs/advanced_features/server_arguments.md and deterministic_inference.md (reference/engines.md §1f).
DOCUMENTED_ARGS = {
    "--model-path", "--host", "--port", "--tp-size", "--mem-fraction-static", "--random-seed",
    "--enable-deterministic-inference", "--attention-backend", "--context-length", "--schedule-policy",
    "--enable-metrics", "--enable-cache-report", "--dp-size", "--max-running-requests", "--api-key",
}

POLICY = {"name": "qwen2.5-7b-instruct", "hf_id": "Qwen/Qwen2.5-7B-Instruct",
          "sglang": {"model_path": None, "tp_size": 2, "mem_fraction_static": 0.85, "extra_args": ["--enable-metrics"]}}


def test_launch_command_uses_documented_arguments():
    cmd = build_launch_command(python="/env/bin/python", model_path="Qwen/Qwen2.5-7B-Instruct", port=31234,
                               tp_size=2, mem_fraction_static=0.55, random_seed=0, deterministic=True,
                               attention_backend="triton", schedule_policy="lpm", extra_args=["--enable-metrics"])
    assert cmd[:3] == ["/env/bin/python", "-m", "sglang.launch_server"]
    flags = [a for a in cmd if a.startswith("--")]
    assert set(flags) <= DOCUMENTED_ARGS, set(flags) - DOCUMENTED_ARGS
    pairs = dict(itertools.pairwise(cmd[3:]))
    assert pairs["--model-path"] == "Qwen/Qwen2.5-7B-Instruct"
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "31234"
    assert pairs["--tp-size"] == "2" and pairs["--mem-fraction-static"] == "0.55"
    assert pairs["--random-seed"] == "0" and pairs["--attention-backend"] == "triton"
    assert "--enable-deterministic-inference" in cmd
    assert "--enable-deterministic-inference" not in build_launch_command(
        python="p", model_path="m", port=1, deterministic=False)


def test_launch_command_rejects_bad_memory_fraction():
    with pytest.raises(ValueError, match="mem_fraction_static=1.5"):
        build_launch_command(python="p", model_path="m", port=1, mem_fraction_static=1.5)


@pytest.mark.skipif(importlib.util.find_spec("sglang") is not None, reason="sglang is installed here")
def test_missing_sglang_names_the_install_command(tmp_path):
    engine_cfg = {"launch": {"python": sys.executable}, "policy": {}}
    with pytest.raises(SGLangLaunchError, match=r"(?s)'sglang' is not importable.*uv pip install .*sglang"):
        launch_for_role(engine_cfg, POLICY, "policy", tmp_path)


def test_missing_interpreter_is_a_clear_error(tmp_path):
    engine_cfg = {"launch": {"python": str(tmp_path / "no-such-python")}, "policy": {}}
    with pytest.raises(SGLangLaunchError, match="no such interpreter"):
        launch_for_role(engine_cfg, POLICY, "policy", tmp_path)


def test_no_gpu_is_a_clear_error(monkeypatch):
    with pytest.raises(SGLangLaunchError, match="CUDA_VISIBLE_DEVICES=''"):
        check_gpu_visible("")
    monkeypatch.setattr(sglang_server.shutil, "which", lambda name: None)
    with pytest.raises(SGLangLaunchError, match="nvidia-smi is not on PATH"):
        check_gpu_visible(None)


def _double_launch(**launch) -> dict:
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return {"launch": {"python": sys.executable, "module": "tests.sglang_double", "require_gpu": False,
                       "startup_timeout_s": 60, "env": env, **launch},
            "policy": {"gpus": ["0", "1"], "mem_fraction_static": 0.5}, "connect_timeout_s": 1}


def test_launched_servers_are_healthy_logged_sharded_and_stopped(tmp_path):
    engine = SGLangEngine.from_config(_double_launch(random_seed=3), POLICY, "policy", tmp_path)
    procs = [s.proc for s in engine.servers]
    try:
        assert len(engine.urls) == 2 and all(u.startswith("http://127.0.0.1:") for u in engine.urls)
        assert all(s.running for s in engine.servers)
        logs = sorted((tmp_path / "logs").glob("sglang-policy-*.log"))
        assert [p.name for p in logs] == ["sglang-policy-0.log", "sglang-policy-1.log"]
        text = logs[1].read_text()
        assert "--tp-size 2" in text and "--mem-fraction-static 0.5" in text and "--random-seed 3" in text
        assert "--enable-metrics" in text  # the model's extra_args
        assert engine.servers[1].env["CUDA_VISIBLE_DEVICES"] == "1"
    finally:
        engine.close()
    assert all(p.poll() is not None for p in procs)  # no orphaned server
    assert not engine.servers[0].running


def test_server_that_dies_at_startup_shows_its_log(tmp_path):
    cfg = _double_launch(extra_args=["--exit-code", "3"])
    with pytest.raises(SGLangLaunchError, match=r"exited with code 3(.|\n)*simulated launch failure"):
        launch_for_role(cfg, POLICY, "policy", tmp_path)
    assert not sglang_server._live  # nothing left running


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_connecting_to_a_missing_server_fails_fast(tmp_path):
    cfg = {"policy": {"urls": ["http://127.0.0.1:9"]}, "connect_timeout_s": 0.5}
    with pytest.raises(SGLangError, match=r"http://127\.0\.0\.1:9 is not healthy"):
        SGLangEngine.from_config(cfg, POLICY, "policy", tmp_path)


def test_bad_role_and_gpus_are_named():
    with pytest.raises(ValueError, match="role='judge'"):
        SGLangEngine.from_config({}, POLICY, "judge", ".")
    with pytest.raises(ValueError, match=r"engine.<role>.gpus=\{\}"):
        sglang_server._gpu_groups({"gpus": {}})


# ----- issue 10 (1): the PRM's launch fraction; issue 14 (8): API key per run, port held until bound ----------

PRM = {"name": "rlhflow-8b-deepseek-data", "hf_id": "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", "params": 8.03e9}


def _shared_gpu_launch() -> dict:
    cfg = _double_launch()
    cfg["policy"] = {"gpu_share": 0.55}
    cfg["prm"] = {"gpu_share": 0.35}
    cfg["launch"]["runtime_reserve_gib"] = 4
    return cfg


def test_prm_server_gets_its_share_of_the_memory_the_policy_left(tmp_path, monkeypatch):
    # nvidia-smi after the policy server took 0.55 of an 80 GB GPU: 32 GiB free. The PRM's planned 0.35 of
    # the GPU (28 GiB) is 0.875 of that; the old default launched it at 0.35 of the free memory (11 GiB:
    # less than an 8B PRM's weights).
    monkeypatch.setattr(sglang_server.gpu_memory, "measure_gpus", lambda visible: (80.0, 32.0, None))
    servers = launch_for_role(_shared_gpu_launch(), PRM, "prm", tmp_path)
    try:
        assert "--mem-fraction-static 0.875" in (tmp_path / "logs" / "sglang-prm-0.log").read_text()
    finally:
        for s in servers:
            s.stop()


def test_prm_that_cannot_fit_what_the_policy_left_is_refused_before_launch(tmp_path, monkeypatch):
    from ttslab.errors import ConfigError

    monkeypatch.setattr(sglang_server.gpu_memory, "measure_gpus", lambda visible: (40.0, 5.0, None))
    with pytest.raises(ConfigError, match=r"engine.prm.gpu_share=0.35.*5.0 of 40.0 GiB free"):
        launch_for_role(_shared_gpu_launch(), PRM, "prm", tmp_path)
    assert not (tmp_path / "logs").exists()  # nothing was started


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_launched_servers_require_the_runs_api_key(tmp_path):
    import urllib.error
    import urllib.request

    engine = SGLangEngine.from_config(_double_launch(), POLICY, "policy", tmp_path)
    try:
        key = engine.servers[0].api_key
        assert key and len(key) >= 24 and engine.api_key == key
        other = launch_for_role(_double_launch(), POLICY, "policy", tmp_path / "other")
        assert other[0].api_key != key  # a fresh key per run
        for s in other:
            s.stop()
        assert engine.tokenize("ab") == [97, 98]  # the client sends it
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(engine.urls[0] + "/server_info", timeout=5)
        assert key not in (tmp_path / "logs" / "sglang-policy-0.log").read_text()  # not written to logs
        assert not list((tmp_path / "logs").glob("*.key.yaml"))  # the key file is gone once the server is up
    finally:
        engine.close()


def test_reserved_port_is_not_handed_out_again_but_the_server_can_bind_it():
    import socket

    port, holder = sglang_server.reserve_port()
    try:
        assert all(sglang_server.free_port() != port for _ in range(200))
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and SGLang's check do
        server.bind(("127.0.0.1", port))
        server.listen()
        server.close()
    finally:
        holder.close()


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_server_that_loses_its_port_is_restarted_on_a_fresh_one(tmp_path, monkeypatch):
    import socket

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()  # someone else's server on the port the launcher picked first
    taken = squatter.getsockname()[1]
    real = sglang_server.reserve_port
    picks = []

    def first_taken(host="127.0.0.1"):
        picks.append(taken if not picks else None)
        return (taken, socket.socket()) if picks[-1] else real(host)

    monkeypatch.setattr(sglang_server, "reserve_port", first_taken)
    try:
        servers = launch_for_role(_double_launch(), POLICY, "policy", tmp_path)
        try:
            assert len(picks) == 3 and servers[0].port != taken  # two GPUs, one retry
            assert servers[0].running and "Address already in use" in servers[0].log_tail(200)
        finally:
            for s in servers:
                s.stop()
    finally:
        squatter.close()


def test_per_run_api_keys_survive_the_servers_argparse():
    # a url-safe key starting with "-" made SGLang's (and the double's) argparse fail the launch: 1 key in 64
    import argparse

    from ttslab.engines.sglang_server import new_api_key

    parser = argparse.ArgumentParser()
    parser.add_argument("--api-key")
    keys = {new_api_key() for _ in range(2000)}
    assert len(keys) == 2000
    for key in keys:
        assert parser.parse_args(["--api-key", key]).api_key == key


# ----- issue 19 (6): the API key out of argv; role GPUs are positions in the job's mask; the chosen backend ----


def test_the_api_key_travels_in_a_0600_config_file_not_in_argv(tmp_path, monkeypatch):
    seen = {}
    real_wait = sglang_server.SGLangServer.wait_healthy

    def wait(self):  # look while the server starts: its key file exists, private, and argv holds no key
        path = Path(self.cmd[self.cmd.index("--config") + 1])
        seen.update(mode=path.stat().st_mode & 0o777, text=path.read_text(), argv=list(self.cmd))
        real_wait(self)

    monkeypatch.setattr(sglang_server.SGLangServer, "wait_healthy", wait)
    servers = launch_for_role(_double_launch(), POLICY, "policy", tmp_path)
    try:
        key = servers[0].api_key
        assert seen["mode"] == 0o600 and seen["text"] == f'api-key: "{key}"\n'
        assert "--api-key" not in seen["argv"] and key not in " ".join(seen["argv"])
        assert Path(seen["argv"][seen["argv"].index("--config") + 1]).parent == tmp_path / "logs"
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError, match="401"):  # the server read the key from the file
            urllib.request.urlopen(servers[0].url + "/server_info", timeout=5)
        assert not list((tmp_path / "logs").glob("*.key.yaml"))  # removed once healthy
        log = servers[0].log_path
        assert log.stat().st_mode & 0o777 == 0o600
        with open(log, "a") as f:  # what SGLang 0.5.23 itself prints at start
            f.write(f"server_args={{'api_key': '{key}', 'admin_api_key': None}}\n")
    finally:
        for s in servers:
            s.stop()
    text = log.read_text()
    assert key not in text and "'api_key': '<api key>'" in text and log.stat().st_mode & 0o777 == 0o600


def test_role_gpus_are_positions_in_the_jobs_cuda_visible_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")  # what SLURM gives a job holding GPUs 4 and 5
    servers = launch_for_role(_double_launch(), POLICY, "policy", tmp_path)  # gpus: ["0", "1"]
    try:
        assert [s.env["CUDA_VISIBLE_DEVICES"] for s in servers] == ["4", "5"]
    finally:
        for s in servers:
            s.stop()
    from ttslab.errors import ConfigError

    cfg = _double_launch()
    cfg["policy"]["gpus"] = ["2"]
    with pytest.raises(ConfigError, match="not a position in this job's CUDA_VISIBLE_DEVICES='4,5'"):
        launch_for_role(cfg, POLICY, "policy", tmp_path / "b")


def test_the_launcher_writes_the_backend_chosen_for_the_measured_gpu(tmp_path, monkeypatch):
    # nvidia-smi (faked) says Hopper: attention_backend auto becomes fa3, as `ttslab plan` prints it
    rows = sglang_server.gpu_memory.parse_smi("0, GPU-aa, 81559, 81000, 9.0\n1, GPU-bb, 81559, 81000, 9.0\n")
    monkeypatch.setattr(sglang_server.gpu_memory, "query_gpus", lambda: rows)
    cfg = _double_launch(attention_backend="auto", deterministic=True)
    cfg["policy"] = {"gpus": ["0", "1"], "gpu_share": None}
    model = {**POLICY, "params": 7e9, "context_length": 32768,
             "kv_layout": {"layers": 28, "kv_heads": 4, "head_dim": 128, "heads": 28},
             "sglang": {**POLICY["sglang"], "tp_size": 1, "mem_fraction_static": None}}
    servers = launch_for_role(cfg, model, "policy", tmp_path)
    try:
        text = (tmp_path / "logs" / "sglang-policy-0.log").read_text()
        assert "--attention-backend fa3" in text and "--mem-fraction-static 0.82" in text
        assert rows[0].sm == 90
    finally:
        for s in servers:
            s.stop()


def test_a_mig_mask_needs_an_explicit_fraction_and_then_launches(tmp_path, monkeypatch):
    from ttslab.errors import ConfigError

    rows = sglang_server.gpu_memory.parse_smi("0, GPU-aa, 81559, 81000, 9.0\n")
    monkeypatch.setattr(sglang_server.gpu_memory, "query_gpus", lambda: rows)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-5c0a6c2e-1234-5678-9abc-def012345678")
    cfg = _double_launch()
    cfg["policy"] = {"gpus": None, "gpu_share": 0.4}
    model = {**POLICY, "sglang": {**POLICY["sglang"], "mem_fraction_static": None}}
    with pytest.raises(ConfigError, match="MIG instance"):
        launch_for_role(cfg, model, "policy", tmp_path)
    cfg["policy"] = {"gpus": None, "mem_fraction_static": 0.3}
    servers = launch_for_role(cfg, model, "policy", tmp_path)
    try:
        assert "--mem-fraction-static 0.3" in (tmp_path / "logs" / "sglang-policy-0.log").read_text()
    finally:
        for s in servers:
            s.stop()


def test_the_prm_does_not_take_the_reserve_an_idle_policy_has_not_allocated_yet(tmp_path, monkeypatch):
    # An idle policy server holds its pool but not its activation reserve: nvidia-smi then shows 70 of 80 GiB
    # free. The PRM must start on what the plan left it (80 - 0.4 x 80 - 4), not on the 70 GiB: taking
    # those, both servers would need 106 GiB of 80 at the policy's first long prefill.
    free = iter([80.0, 70.0])
    monkeypatch.setattr(sglang_server.gpu_memory, "measure_gpus", lambda visible: (80.0, next(free), None))
    cfg = _double_launch(runtime_reserve_gib=4, attention_backend=None)
    cfg["policy"] = {"gpus": None, "gpu_share": 0.4}
    cfg["prm"] = {"gpus": None, "gpu_share": None}
    model = {**POLICY, "sglang": {**POLICY["sglang"], "tp_size": 1, "mem_fraction_static": None}}
    policy = launch_for_role(cfg, model, "policy", tmp_path)
    try:
        prm = launch_for_role(cfg, {**PRM, "sglang": {"model_path": PRM["hf_id"]}}, "prm", tmp_path)
        try:
            assert "--mem-fraction-static 0.909" in (tmp_path / "logs" / "sglang-prm-0.log").read_text()  # 40 / 44
        finally:
            for s in prm:
                s.stop()
    finally:
        for s in policy:
            s.stop()
    assert not list((tmp_path / "logs").glob("*.gpus.json"))  # nothing promised once the servers are gone


@pytest.mark.model
@pytest.mark.sglang_real
def test_sglangs_own_argument_parser_reads_the_key_file(tmp_path):
    # SGLang 0.5.23's prepare_server_args merges `--config` YAML (ConfigArgumentMerger) before argparse; a key
    # of digits only must stay a string (the file quotes it)
    import subprocess

    python = os.environ.get("TTSLAB_SGLANG_PYTHON")
    if not python:
        pytest.skip("TTSLAB_SGLANG_PYTHON is not set: run `bash .ci/sglang.sh` and export the variable it prints")
    key = "0123456789" * 4 + "01234567"
    path = sglang_server.write_key_file(tmp_path / "logs" / "sglang-policy-0.key.yaml", key)
    probe = ("import sys; from sglang.srt.server_args import prepare_server_args; "
             "a = prepare_server_args(['--model-path', 'm', '--port', '1', '--config', sys.argv[1]]); "
             "print('KEY', type(a.api_key).__name__, a.api_key)")
    res = subprocess.run([python, "-c", probe, str(path)], capture_output=True, text=True, timeout=600, check=False,
                         env={**os.environ, "PYTHONPATH": str(REPO / "tests" / "sglang_cpu")})
    assert f"KEY str {key}" in res.stdout, res.stderr[-2000:]
