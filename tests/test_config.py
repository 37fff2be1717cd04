"""Every config file composes against its typed schema; the schemas catch what YAML alone would not."""

from __future__ import annotations

from importlib.resources import files

import pytest
import yaml

from ttslab.config import CONFIG_MODULE, SCHEMAS, compose
from ttslab.errors import ConfigError

CONF = files(CONFIG_MODULE)
SCHEMA_GROUPS = {group for group, _ in SCHEMAS}
OPTIONS = [(g.name, f.name[:-5]) for g in CONF.iterdir() if g.is_dir() and g.name in SCHEMA_GROUPS | {"experiment"}
           for f in g.iterdir() if f.name.endswith(".yaml")]


@pytest.mark.parametrize("group, option", sorted(OPTIONS), ids=lambda x: str(x))
def test_every_option_of_every_group_composes(group, option):
    cfg = compose([f"{group}={option}"])
    assert cfg.run_dir and cfg.dataset.name


@pytest.mark.parametrize("group, option", sorted(o for o in OPTIONS if o[0] in SCHEMA_GROUPS), ids=lambda x: str(x))
def test_every_group_file_starts_from_its_schema(group, option):
    data = yaml.safe_load((CONF / group / f"{option}.yaml").read_text())
    bases = {name for g, name in SCHEMAS if g == group}
    assert set(data.get("defaults") or []) & bases, f"conf/{group}/{option}.yaml: add `defaults: [<base_{group}>, _self_]`"


@pytest.mark.parametrize("override, message", [
    ("policy.temprature=0.5", "Could not override 'policy.temprature'"),
    ("method.max_steps=many", "method.max_steps=many"),
    ("engine.n_batch=1.5", "engine.n_batch=1.5"),
])
def test_the_schema_rejects_unknown_keys_and_wrong_types(override, message):
    with pytest.raises(ConfigError) as e:
        compose([override])
    assert message in str(e.value)


def test_an_unknown_key_in_a_config_file_is_refused(tmp_path, monkeypatch):
    """A YAML group file is merged into its schema: a misspelt key fails composition, naming it."""
    from omegaconf import OmegaConf

    from ttslab.config import PolicyConfig

    with pytest.raises(Exception, match="temprature"):
        OmegaConf.merge(OmegaConf.structured(PolicyConfig), {"name": "x", "temprature": 0.5})


# ---------------------------------------------------------------- what a command line means beside a preset
STUDY = {"cot": (8192, 2048, 40), "best_of_n": (8192, 2048, 40), "beam_search": (8192, 2048, 40),
         "dvts": (8192, 2048, 40)}  # conf/method/: max_tokens, max_step_tokens, max_steps (the study's)


def _limits(cfg):
    from ttslab.config import validate

    return {g[0].name: (g[0].max_tokens, g[0].max_step_tokens, g[0].max_steps) for g in validate(cfg)}


@pytest.mark.parametrize("method", sorted(STUDY))
def test_a_gpu_run_without_a_preset_takes_the_studys_limits_not_the_quickstarts(method):
    # issue 19 (8): the quickstart's CPU limits (384 / 192 / 10) and name carried over to every GPU run
    cfg = compose(["engine=sglang", "policy=llama-3.1-8b-instruct", "prm=rlhflow-8b-deepseek-data",
                   f"method={method}", "dataset=math500"])
    assert _limits(cfg) == {method: STUDY[method]}
    assert not cfg.run_name.startswith("quickstart") and cfg.plan is None
    assert cfg.run_name == f"math500-llama-3.1-8b-instruct-rlhflow-8b-deepseek-data-{method}"


def test_a_gpu_run_keeps_what_a_preset_or_an_override_names():
    # the R1-distilled policy's own limit (conf/policy) and command-line limits win over the method file's
    r1 = compose(["engine=sglang", "policy=deepseek-r1-distill-qwen-1.5b", "prm=none", "method=cot"])
    assert _limits(r1) == {"cot": (32768, 2048, 40)}
    short = compose(["engine=sglang", "policy=llama-3.1-8b-instruct", "prm=rlhflow-8b-deepseek-data",
                     "method=beam_search", "method.max_step_tokens=512"])
    assert _limits(short) == {"beam_search": (8192, 512, 40)}
    named = compose(["experiment=quickstart", "engine=sglang", "policy=qwen2.5-0.5b-instruct",
                     "prm=rlhflow-8b-deepseek-data"])  # the user asked for the quickstart on a GPU: its limits
    assert _limits(named)["beam_search"] == (384, 192, 10) and named.run_name.startswith("quickstart")
    cpu = compose(["method=dvts"])  # on the CPU default, a method alone keeps the quickstart's limits (README)
    assert _limits(cpu) == {"dvts": (384, 192, 10)}


def test_the_run_header_prints_every_methods_limits(tmp_path):
    from ttslab.runner import preflight, run_header

    cfg = compose(["engine=sglang", "policy=llama-3.1-8b-instruct", "prm=rlhflow-8b-deepseek-data",
                   "method=beam_search", "engine.policy.urls=[http://127.0.0.1:9]",
                   "engine.prm.urls=[http://127.0.0.1:9]", f"run_dir={tmp_path / 'r'}"])
    header = run_header(preflight(cfg))
    assert "beam_search  N=16 M=4  T=0.7 top_p=1  2048 new tokens per step, 8192 in all, at most 40 steps" in header
    quick = run_header(preflight(compose([f"run_dir={tmp_path / 'q'}"])))
    assert "cot          N=1  T=0 top_p=1  384 new tokens per solution" in quick
    assert "best_of_n    N=1,2,4  T=0.7 top_p=1  384 new tokens per solution" in quick


@pytest.mark.parametrize("overrides, message", [
    # issue 21 (7): these ran the quickstart's four methods with M=2, the overrides silently dropped
    (["experiment=quickstart", "method=dvts", "method.beam_width=3"],
     ("experiment=quickstart runs its plan (cot, best_of_n, beam_search, dvts), which these method overrides would "
      "not change; set the plan's items instead (e.g. plan.3.beam_width=3, or the whole plan=[...])")),
    (["experiment=quickstart", "method.budget=-1"], "method.budget=-1: expected an integer >= 1"),
    (["experiment=quickstart", "method.budget=8"], "(e.g. plan.<i>.budgets=[8], or the whole plan=[...])"),
    (["experiment=fig4_math500", "method.max_tokens=4096"], "experiment=fig4_math500 runs its plan"),
    (["plan=[{name: cot}, {name: best_of_n, budgets: [4]}]", "method.max_tokens=96"], "sets the plan"),
    (["experiment=quickstart", "plan.3.beam_width=4", "method.beam_width=3"], "runs its plan"),
    (["method=cot", "method.budget=-1"], "method.budget=-1: expected an integer >= 1"),  # CoT's fixed budget
    (["method.budget=-1"], "method.budget=-1: expected an integer >= 1"),
    (["method.budgets=[]"], "method.budgets=[]: expected a list of integers"),
    (["experiment=quickstart", "plan.3.beam_width=3"], "plan[3].budget=4 is not a multiple of plan[3].beam_width=3"),
])
def test_method_overrides_beside_a_plan_are_refused_never_ignored(overrides, message):
    from ttslab.config import validate

    with pytest.raises(ConfigError) as e:
        validate(compose(overrides))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_plan_item_takes_the_override_the_refusal_points_to():
    cfg = compose(["experiment=quickstart", "plan.3.beam_width=4"])
    dvts = [g for g in __import__("ttslab.config", fromlist=["validate"]).validate(cfg) if g[0].name == "dvts"]
    assert [(s.budget, s.beam_width) for s in dvts[0]] == [(4, 4)]
    alone = compose(["experiment=none", "method=dvts", "method.beam_width=2", "method.budget=4"])
    assert _limits(alone) == {"dvts": STUDY["dvts"]} and alone.method.beam_width == 2


@pytest.mark.parametrize("command", ["run", "plan"])
def test_the_cli_refuses_ignored_method_overrides_in_one_line(capsys, command):
    from ttslab.cli import main

    argv = [command, "experiment=gpu_smoke", "method=beam_search", "method.beam_width=2", "gpus=1xH100"][
        : 5 if command == "plan" else 4]
    code = main(argv)
    out = capsys.readouterr()
    said = (out.err if command == "run" else out.out + out.err).strip()  # `ttslab plan` reports on stdout
    assert code == 2 and "plan.2.beam_width=2" in said and len(said.splitlines()) == 1
    for sweep in (["-m"], ["--cfg", "job"]):  # the Hydra path says the same
        if command == "run":
            assert main([command, *sweep, *argv[1:]]) == 2
            assert "plan.2.beam_width=2" in capsys.readouterr().err


def test_the_router_is_refused_before_anything_starts():
    from ttslab.config import validate

    cfg = compose(["experiment=gpu_smoke", "engine.policy.urls=[http://127.0.0.1:30000]",
                   "engine.policy.router=true"])
    with pytest.raises(ConfigError, match=r"engine.policy.router=true is not supported: sgl-model-gateway has no "
                                          r"/tokenize route .* use one server per GPU instead"):
        validate(cfg)
