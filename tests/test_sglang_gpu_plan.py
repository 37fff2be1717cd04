"""`ttslab plan` (ttslab/gpu_plan.py): GPU memory placement before any launch, issue 10 items 1 and 3.

The numbers are SGLang's memory semantics applied to the configs: `--mem-fraction-static` is a share of the
memory free when a server starts; the policy starts first, the PRM second on what it left.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ttslab.errors import ConfigError
from ttslab.gpu_plan import (
    GPU_TYPES,
    build_plan,
    check_placement,
    launch_fraction,
    main,
    parse_gpus,
    plan_preset,
    planned_fraction,
    readme_table,
)
from ttslab.gpu_plan import _compose as compose_list

REPO = Path(__file__).resolve().parents[1]


def compose(overrides):
    return compose_list(list(overrides))


def plan(*overrides: str, gpus: str = "1xH100"):
    return build_plan(compose(list(overrides)), *parse_gpus(gpus))


def test_gpu_types_and_parsing():
    assert {"A100-40", "A100-80", "H100-80", "H200-141"} <= set(GPU_TYPES)
    assert parse_gpus("8xH100") == (GPU_TYPES["H100-80"], 8)
    assert parse_gpus("1xH200-141") == (GPU_TYPES["H200-141"], 1)
    with pytest.raises(ConfigError, match="gpus='2xB300'"):
        parse_gpus("2xB300")


def test_an_8b_prm_fits_beside_the_policy_on_80_gb():
    # issue 10 (1): gpu_smoke's RLHFlow 8B PRM on one 80 GB GPU next to the policy.
    p = plan("experiment=gpu_smoke")
    policy, prm = p.servers
    assert policy.fraction == 0.55
    # the PRM's share of the GPU (0.35 x 79.6) over what the policy left (79.6 - 43.8 - 4 GiB)
    assert prm.fraction == pytest.approx(0.35 * 79.6 / (79.6 * 0.45 - 4), abs=2e-3)
    assert prm.weights_gib == pytest.approx(8.03e9 * 2 / 1024**3, rel=1e-3)
    assert prm.kv_gib > 10 and prm.seqs_fit >= 4  # budget N=4 in one wave
    assert "--mem-fraction-static 0.874" in " ".join(prm.flags)


def test_the_old_free_memory_share_is_refused_with_numbers():
    # What the preset used to launch: the PRM at 0.35 of the memory free after the policy took 0.55.
    with pytest.raises(ConfigError) as err:
        plan("experiment=gpu_smoke", "engine.prm.mem_fraction_static=0.35")
    msg = str(err.value)
    assert "rlhflow-8b-deepseek-data" in msg and "H100-80" in msg and "15.0 GiB of weights" in msg


def test_launch_fraction_from_measured_memory():
    engine = {"policy": {"gpu_share": 0.55}, "prm": {"gpu_share": 0.35}, "launch": {"runtime_reserve_gib": 4}}
    assert launch_fraction(engine, {}, "policy", (80.0, 79.0)) == pytest.approx(44 / 79, abs=1e-3)
    assert launch_fraction(engine, {}, "prm", (80.0, 32.0)) == pytest.approx(28 / 32, abs=1e-3)
    assert launch_fraction(engine, {}, "prm", None) == pytest.approx(28 / 32, abs=1e-3)  # planned: 80 GB
    alone = {"policy": {"gpu_share": None}}
    assert launch_fraction(alone, {"sglang": {"mem_fraction_static": 0.85}}, "policy") == 0.85
    assert launch_fraction({"prm": {"mem_fraction_static": 0.3, "gpu_share": 0.35}}, {}, "prm") == 0.3
    with pytest.raises(ConfigError, match="engine.prm.gpu_share=0.35"):
        launch_fraction(engine, {"name": "x"}, "prm", (80.0, 3.0))
    assert planned_fraction(0.35, 40.0, 14.0, 4.0) == (round(10 / 14, 3), 10.0)


def test_a_72b_classifier_prm_is_refused_on_one_gpu_and_spread_over_eight():
    # issue 10 (3): Qwen2.5-Math-PRM-72B (~135 GiB in bf16), fig7's default PRM.
    with pytest.raises(ConfigError) as err:
        plan("experiment=fig7_qwen_sizes")
    msg = str(err.value)
    assert "qwen2.5-math-prm-72b" in msg and "1xH100-80" in msg and "135.4 GiB" in msg
    p = plan("experiment=fig7_qwen_sizes", gpus="8xH100")
    (prm,) = [s for s in p.servers if s.role == "prm"]
    assert prm.kind == "transformers" and prm.gpus == "0-7"
    assert any("spreads its layers" in n for n in p.notes)


def test_context_clamp_is_noted_and_tokens_follow_the_limits():
    p = plan("experiment=table3_cot_baselines", "policy=qwen2.5-math-7b-instruct", "dataset=aime24")
    assert any("4096-token context" in n for n in p.notes)
    assert p.problems == 30 and p.prm is None
    assert p.policy_tokens == 30 * (4096 - 512)  # CoT: one sample, clamped to the context
    assert p.servers[0].fraction == 0.85  # no PRM: the policy has the GPU to itself


def test_bon_tokens_count_the_largest_budget_once():
    p = plan("experiment=gpu_smoke", "plan=[{name:best_of_n,budgets:[2,4],max_tokens:100}]")
    assert p.policy_tokens == 10 * 4 * 100 and p.prm_tokens == 10 * 4 * 100


def test_check_placement_uses_engine_gpu_and_skips_what_it_cannot_plan():
    cfg = compose(["experiment=gpu_smoke", "engine.gpu.type=A100-40", "engine.gpu.count=1"])
    with pytest.raises(ConfigError, match="A100-40"):
        check_placement(cfg)
    ok = check_placement(compose(["experiment=gpu_smoke", "engine.gpu.type=H200", "engine.gpu.count=1"]))
    assert ok is not None and ok.gpu.name == "H200-141"
    assert check_placement(compose([])) is None  # engine=llamacpp
    assert check_placement(compose(["experiment=gpu_smoke", "engine.policy.urls=[http://h:1]"])) is None


def test_main_prints_servers_flags_and_hours(capsys):
    assert main(["experiment=gpu_smoke", "gpus=1xH100-80"]) == 0
    out = capsys.readouterr().out
    assert "policy: qwen2.5-0.5b-instruct on GPU 0" in out and "prm: rlhflow-8b-deepseek-data" in out
    assert "launch: sglang.launch_server --model-path Qwen/Qwen2.5-0.5B-Instruct" in out
    assert re.search(r"at most [\d.,]+ GPU-hours \(assumed 3,500 tok/s per H100-80", out)
    assert main(["experiment=fig7_qwen_sizes", "policy=qwen2.5-7b-instruct", "gpus=1xH100"]) == 2
    assert "does not fit" in capsys.readouterr().out
    assert main(["experiment=gpu_smoke"]) == 2  # no gpus=


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_readme_table_rows_are_what_ttslab_plan_prints():
    readme = (REPO / "README.md").read_text()
    for row in readme_table(presets=("gpu_smoke", "table3_cot_baselines")).splitlines()[2:]:
        assert row in readme, row


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_sweep_points_cover_the_preset():
    plans, errors = plan_preset(["experiment=table3_cot_baselines"], "1xH100")
    assert len(plans) + len(errors) == 12  # 2 datasets x 6 policies
    assert any("llama-3.1-405b-instruct" in e and "tp_size=8" in e for e in errors)
