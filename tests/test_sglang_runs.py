"""`ttslab run` end to end over SGLang's wire format: same records as in-process, failure and resume,
Hydra multirun with the basic launcher, and the SLURM launcher config composing without a cluster.

The SGLang servers are the wire-format double backed by the real CPU engine (one for the policy, one
for the PRM, as the in-process run has two engines); `ttslab run` itself runs as a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sglang_double import SGLangDouble
from ttslab.config import register_schemas
from ttslab.results import read_records

REPO = Path(__file__).resolve().parents[1]
MODEL = "embedded:qwen2.5-coder-0.5b"
SMALL_CPU = ["engine.max_sequences=8", "engine.n_ctx_per_sequence=1024", "engine.n_threads=2"]
TINY = [
    "dataset.limit=1",
    "progress=false",
    "prm=cpu_judge",  # a PRM SGLang serves (the default may be an in-process-only scorer)
    (
        "plan=[{name:best_of_n,budgets:[2],max_tokens:48},"
        "{name:beam_search,budgets:[4],beam_width:2,max_tokens:64,max_step_tokens:24,max_steps:2}]"
    ),
]


def ttslab(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "ttslab.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def sglang_overrides(policy_url: str, prm_url: str) -> list[str]:
    return ["engine=sglang", f"engine.policy.urls=['{policy_url}']", f"engine.prm.urls=['{prm_url}']",
            "engine.retries=1", "engine.backoff_s=0.05"]


def _engine():
    from ttslab.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(MODEL, n_threads=2, max_sequences=8, n_ctx_per_sequence=1024)


@pytest.fixture(scope="module")
def servers():
    pytest.importorskip("llama_cpp")
    policy, prm = _engine(), _engine()
    hf_id = "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    with SGLangDouble(policy, model_path=hf_id) as dp, SGLangDouble(prm, model_path=hf_id) as dr:
        yield dp, dr
    policy.close()
    prm.close()


def _signature(records):
    return sorted(
        (r["method"], r["budget"], [(c["text"], c["answer"], c["finish"]) for c in r["candidates"]])
        for r in records
    )


@pytest.mark.model
def test_records_over_http_match_in_process(servers, tmp_path):
    dp, dr = servers
    local = ttslab("run", *TINY, *SMALL_CPU, f"run_dir={tmp_path / 'cpu'}")
    assert local.returncode == 0, local.stderr[-3000:]
    remote = ttslab("run", *TINY, *sglang_overrides(dp.url, dr.url), f"run_dir={tmp_path / 'gpu'}")
    assert remote.returncode == 0, remote.stderr[-3000:]
    a, b = read_records(tmp_path / "cpu"), read_records(tmp_path / "gpu")
    assert {r["method"] for r in a} == {"best_of_n", "beam_search"}
    assert {r["engine"] for r in b} == {"sglang"}
    assert _signature(a) == _signature(b)
    # the children of one node went out together, with the delimiter kept and distinct seeds
    step_bodies = [body for body in dp.bodies if body["sampling_params"][0].get("stop")]
    assert step_bodies and all(sp["no_stop_trim"] for body in step_bodies for sp in body["sampling_params"])
    assert any(len({sp["sampling_seed"] for sp in body["sampling_params"]}) > 1 for body in step_bodies)
    assert any(body.get("token_ids_logprob") for body in dr.bodies)  # the judge PRM scored over HTTP


@pytest.mark.model
def test_server_killed_mid_run_keeps_records_and_rerun_resumes(servers, tmp_path):
    dp, dr = servers
    # beam search takes a second round whether the methods run one after another or advance together
    plan = ["dataset.limit=2", "progress=false", "prm=cpu_judge",
            ("plan=[{name:cot,max_tokens:32},"
             "{name:beam_search,budgets:[2],beam_width:2,max_tokens:192,max_step_tokens:96,max_steps:2}]")]
    run_dir = f"run_dir={tmp_path / 'run'}"
    with SGLangDouble(dp.engine, die_after=1) as dying:  # answers the first batch (CoT's), then dies
        first = ttslab("run", *plan, *sglang_overrides(dying.url, dr.url), run_dir)
    assert first.returncode != 0
    # (beam search's second step is a new prompt: /tokenize is what meets the dead server first)
    assert re.search(rf"SGLang server {re.escape(dying.url)} failed on /(generate|tokenize) after 2 attempts",
                     first.stderr), first.stderr[-2000:]
    kept = read_records(tmp_path / "run")
    assert sorted(r["method"] for r in kept) == ["cot", "cot"]
    second = ttslab("run", *plan, *sglang_overrides(dp.url, dr.url), run_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    done = read_records(tmp_path / "run")
    assert sorted(r["method"] for r in done) == ["beam_search", "beam_search", "cot", "cot"]
    assert [r for r in done if r["method"] == "cot"] == kept  # finished work was not redone


@pytest.mark.model
def test_multirun_basic_launcher_runs_a_2x2_sweep(tmp_path):
    pytest.importorskip("llama_cpp")
    res = ttslab("run", "-m", "dataset.limit=1", "progress=false", "prm=none", "method=cot",
                 "method.max_tokens=8,12", "seed=0,1", *SMALL_CPU,
                 f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=${hydra.job.num}",
                 "run_dir=${hydra:runtime.output_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and (p / "records.jsonl").exists())
    assert len(runs) == 4
    got = set()
    for run in runs:
        (rec,) = read_records(run)
        got.add((rec["seed"], rec["usage"]["policy"]["completion_tokens"] <= 12))
        assert json.loads((run / "summary.json").read_text())["records"] == 1
    assert got == {(0, True), (1, True)}


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                    reason="hydra-submitit-launcher is not installed (pip install hydra-submitit-launcher)")
@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_slurm_launcher_composes_without_a_cluster():
    # Hydra refuses --cfg together with -m, so the sweep's composition is printed in run mode.
    common = ["experiment=fig4_math500", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "shard=1/4"]
    res = ttslab("run", *common, "--cfg", "hydra", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in res.stdout
    assert "partition: gpu" in res.stdout and "gpus_per_node: 1" in res.stdout
    job = ttslab("run", *common, "--cfg", "job", timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]
    assert "name: sglang" in job.stdout and "llama-3.1-8b-instruct" in job.stdout and "shard: 1/4" in job.stdout

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    register_schemas()  # the schemas the group files extend (ttslab.config)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=common, return_hydra_config=True)
        launcher = instantiate(cfg.hydra.launcher)  # the plugin class and every field it takes
    assert type(launcher).__name__ == "SlurmLauncher"


def test_every_study_experiment_composes():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    presets = ["fig4_math500", "fig5_aime24", "fig7_qwen_sizes", "fig8_llama_difficulty", "gpu_smoke",
               "table3_cot_baselines", "table3_small_tts"]  # the GPU study presets
    register_schemas()  # the schemas the group files extend (ttslab.config)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for name in presets:
            cfg = compose("config", overrides=[f"experiment={name}"], return_hydra_config=True)
            assert cfg.engine.name == "sglang", name
            assert cfg.plan, name
            sweep = cfg.hydra.sweeper.params or {}
            for group, values in sweep.items():  # every swept option has a config file
                for v in str(values).split(","):
                    assert (REPO / "conf" / group / f"{v}.yaml").exists(), (name, group, v)
            OmegaConf.to_container(cfg, resolve=False)
        fig4 = compose("config", overrides=["experiment=fig4_math500"], return_hydra_config=True)
        assert len(str(fig4.hydra.sweeper.params.prm).split(",")) == 7
        assert [p.budgets for p in fig4.plan if p.name != "cot"] == [[4, 16, 64, 256]] * 3


STUDY_POLICIES = {
    "llama-3.2-1b-instruct": ("llama3", 9e12), "llama-3.2-3b-instruct": ("llama3", 9e12),
    "llama-3.1-8b-instruct": ("llama3", 15e12), "llama-3.1-70b-instruct": ("llama3", 15e12),
    "llama-3.1-405b-instruct": ("llama3", 15e12),
    **{f"qwen2.5-{s}-instruct": ("qwen2.5", 18e12) for s in ("0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b")},
    "qwen2.5-math-7b-instruct": ("qwen2.5", 18e12),
    "deepseek-r1-distill-qwen-1.5b": ("deepseek_r1_distill", 18e12),
    "deepseek-r1-distill-qwen-7b": ("deepseek_r1_distill", 18e12),
}


def test_study_policy_configs():
    from omegaconf import OmegaConf

    from ttslab.prompts import FAMILIES

    keys = set(OmegaConf.load(REPO / "conf" / "policy" / "qwen2.5-coder-0.5b-cpu.yaml"))
    for name, (family, tokens) in STUDY_POLICIES.items():
        cfg = OmegaConf.load(REPO / "conf" / "policy" / f"{name}.yaml")
        assert set(cfg) == keys | {"kv_layout", "weight_bytes"}, name  # + what `ttslab plan` sizes memory from
        assert cfg.kv_layout.layers > 0 and cfg.kv_layout.kv_heads > 0 and cfg.weight_bytes in (1, 2)
        assert cfg.name == name and cfg.family == family and cfg.family in FAMILIES
        assert cfg.pretrain_tokens == tokens and cfg.params > 1e8 and cfg.context_length >= 4096
        assert cfg.sglang.tp_size >= 1 and cfg.sglang.mem_fraction_static is None  # sized by the plan (gpu_memory.py)
        assert cfg.sglang.params >= cfg.params * 0.97  # the exact count the plan sizes weights from
        if family == "deepseek_r1_distill":
            assert dict(cfg.sampling) == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768}
    # Table 4's pre-training FLOPs reproduce exactly from the configs (6 N D, nominal N)
    def flops(n):
        c = OmegaConf.load(REPO / "conf" / "policy" / f"{n}.yaml")
        return 6 * c.params * c.pretrain_tokens
    assert flops("llama-3.2-3b-instruct") == pytest.approx(1.62e23)
    assert flops("llama-3.1-405b-instruct") == pytest.approx(3.645e25)
    assert flops("deepseek-r1-distill-qwen-7b") == pytest.approx(7.56e23)


def _documented_run_commands(section: str = "") -> list[str]:
    """Every `ttslab run` command of the README (or of the part after `section`)."""
    text = (REPO / "README.md").read_text()
    text = text.split(section, 1)[-1] if section else text
    blocks = text.split("```bash")[1:]
    commands = []
    for block in blocks:
        lines = block.split("```")[0].replace("\\\n", " ").splitlines()
        commands += [ln.split("  #")[0].strip() for ln in lines if ln.strip().startswith("ttslab run")]
    return commands


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_every_documented_gpu_command_composes():
    import shlex

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    commands = _documented_run_commands()
    gpu_commands = set(_documented_run_commands(section="## Running on GPUs"))
    assert len(commands) >= 12 and len(gpu_commands) >= 8
    register_schemas()  # the schemas the group files extend (ttslab.config)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for cmd in commands:
            words = shlex.split(cmd.replace("$HOME", "/home/user"))[2:]
            overrides = [w for w in words if w not in ("-m", "--cfg", "hydra", "job")]
            if "-m" in words:  # a sweep: compose its first point
                overrides = [w.split(",")[0] if "," in w and "[" not in w else w for w in overrides]
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
            assert cfg.engine.name == "sglang" or cmd not in gpu_commands, cmd
            for section in ("engine", "policy", "prm", "dataset", "method"):
                OmegaConf.to_container(cfg[section], resolve=True)


@pytest.mark.model
def test_documented_shard_and_merge_workflow(tmp_path):
    pytest.importorskip("llama_cpp")
    res = ttslab("run", "-m", "dataset.limit=3", "progress=false", "prm=none", "method=cot", "method.max_tokens=4",
                 *SMALL_CPU, "shard=0/2,1/2", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                 f"run_dir={tmp_path}/shard-${{hydra:job.num}}")
    assert res.returncode == 0, res.stderr[-3000:]
    shards = sorted(tmp_path.glob("shard-*"))
    assert [len(read_records(s)) for s in shards] == [2, 1]
    merged = ttslab("merge", str(tmp_path / "merged"), *map(str, shards))
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert len(read_records(tmp_path / "merged")) == 3


# ----- issue 19 (2, 8): a GPU run's token limits, the model's context, and the clamp kept in the record ------

def test_an_r1_distill_cot_request_asks_for_its_32768_tokens_not_the_tokenizers_16384(tmp_path):
    # DeepSeek-R1-Distill: /tokenize's max_model_len is the tokenizer's model_max_length (16384), the model's
    # context is /v1/models' max_model_len (131072); the study gives R1 policies 32768 new tokens.
    from ttslab.config import compose
    from ttslab.runner import run

    hf_id = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    with SGLangDouble(None, model_path=hf_id, context_length=131072, model_max_length=16384) as d:
        cfg = compose(["engine=sglang", "policy=deepseek-r1-distill-qwen-1.5b", "prm=none", "method=cot",
                       "dataset.limit=1", "progress=false", f"engine.policy.urls=['{d.url}']", "engine.retries=0",
                       f"run_dir={tmp_path / 'r1'}"])
        with pytest.raises(Exception, match="HTTP 503"):  # no model behind the double: the request is the point
            run(cfg)
    (body,) = d.bodies
    assert body["sampling_params"][0]["max_new_tokens"] == 32768  # the old client sent 16384 - prompt
    assert body["sampling_params"][0]["temperature"] == 0.0


@pytest.mark.model
def test_a_gpu_run_without_a_preset_uses_the_studys_limits_and_records_each_clamp(servers, tmp_path):
    from ttslab.config import compose
    from ttslab.problems import load_problems
    from ttslab.prompts import build_prompt

    dp, dr = servers
    cfg = compose(["engine=sglang", "dataset.limit=1"])
    (problem,) = load_problems(cfg.dataset.path, cfg.dataset.format, cfg.dataset.split, 1, source=cfg.dataset.name)
    prompt_tokens = len(dp.engine.tokenize(build_prompt(cfg.policy.family, problem.question)))
    with SGLangDouble(dp.engine, model_path=dp.model_path, context_length=prompt_tokens + 24) as small:
        res = ttslab("run", "engine=sglang", "dataset.limit=1", "progress=false", "prm=none", "method=best_of_n",
                     "method.budget=2", *sglang_overrides(small.url, dr.url)[1:], f"run_dir={tmp_path / 'bon'}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "best_of_n    N=2  T=0.7 top_p=1  8192 new tokens per solution" in res.stdout  # not the quickstart's 384
    (rec,) = read_records(tmp_path / "bon")
    assert rec["settings"]["max_tokens"] == 8192
    assert [sp["max_new_tokens"] for b in small.bodies for sp in b["sampling_params"]] == [24, 24]
    assert [c["clamped"] for c in rec["candidates"]] == [[{"step": 1, "asked": 8192, "sent": 24}]] * 2
    assert all(c["usage"]["completion_tokens"] <= 24 for c in rec["candidates"])
