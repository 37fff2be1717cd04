"""Golden formats: the exact PRM input text for a fixed question and steps, for every PRM type."""

import functools
import glob
import os

import pytest
from omegaconf import OmegaConf

from ttslab.rewards import build_reward_model, formats

QUESTION = "What is 2+3?"
# As the policy writes them: the "\n\n" delimiter ends every step but the last.
STEPS = ("First, 2+3=5.\n\n", "So the answer is\n\\boxed{5}.")
CONF = os.path.join(os.path.dirname(__file__), "..", "conf", "prm")


def test_math_shepherd_golden():
    assert formats.math_shepherd(QUESTION, STEPS, bos="<s>") == (
        "<s>What is 2+3? First, 2+3=5. ки\nSo the answer is\n\\boxed{5}. ки"
    )


def test_formats_that_start_with_a_bos_need_it_said():
    # The BOS is the tokenizer's fact (prm.bos_token), never a default of the format: an unset one is an error.
    with pytest.raises(TypeError, match="bos"):
        formats.math_shepherd(QUESTION, STEPS)
    with pytest.raises(TypeError, match="bos"):
        formats.rlhflow(QUESTION, STEPS)


def test_rlhflow_golden():
    expected = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+3? First, 2+3=5.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n+<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nSo the answer is\n\\boxed{5}.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert formats.rlhflow(QUESTION, STEPS, bos="<|begin_of_text|>") == expected


def test_judge_golden():
    expected = (
        "<|im_start|>system\n" + formats.JUDGE_SYSTEM + "<|im_end|>\n"
        "<|im_start|>user\nProblem: What is 2+3?\n\nStep 1: First, 2+3=5.\n\nCheck the arithmetic. Is step 1 correct? Answer Yes or No.<|im_end|>\n"
        "<|im_start|>assistant\nYes<|im_end|>\n"
        "<|im_start|>user\nStep 2: So the answer is\n\\boxed{5}.\n\nCheck the arithmetic. Is step 2 correct? Answer Yes or No.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert formats.judge(QUESTION, STEPS) == expected


def test_qwen_math_prm_golden():
    expected = (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+3?<|im_end|>\n"
        "<|im_start|>assistant\nFirst, 2+3=5.<extra_0>So the answer is\n\\boxed{5}.<extra_0><|im_end|>\n"
    )
    assert formats.qwen_math_prm(QUESTION, STEPS) == expected


def test_skywork_golden():
    # Inner newlines become spaces; each step ends with "\n".
    assert formats.skywork(QUESTION, STEPS, bos="<|endoftext|>") == (
        "<|endoftext|>What is 2+3?\nFirst, 2+3=5.\nSo the answer is \\boxed{5}.\n"
    )
    assert formats.skywork_segments(QUESTION, STEPS, bos="<s>") == (
        "<s>What is 2+3?\n",
        ["First, 2+3=5.", "So the answer is \\boxed{5}."],
    )


@pytest.mark.parametrize("name", sorted(formats.LABEL_FORMATS))
def test_label_prompts_extend_the_previous_step(name):
    """Prompt for steps[:k+1] starts with the prompt for steps[:k]: the engine reuses its KV."""
    build = formats.LABEL_FORMATS[name]
    if name in ("math_shepherd", "rlhflow"):
        build = functools.partial(build, bos="<s>")
    steps = STEPS + ("Check: 5-3=2.\n\n",)
    for k in range(1, len(steps)):
        assert build(QUESTION, steps[: k + 1]).startswith(build(QUESTION, steps[:k]))


def test_qwen_step_tag_inside_a_step_is_an_error():
    with pytest.raises(ValueError, match="step tag"):
        formats.qwen_math_prm(QUESTION, ("a <extra_0> b",))


def test_empty_steps_are_an_error():
    with pytest.raises(ValueError, match="at least one step"):
        formats.judge(QUESTION, ())
    with pytest.raises(TypeError, match="sequence"):
        formats.math_shepherd(QUESTION, "one string", bos="")


def test_unknown_label_format_is_named():
    with pytest.raises(ValueError, match="prm.format='nope'"):
        formats.label_format("nope")


# ------------------------------------------------------------------------------------------- configs

STUDY_PRMS = {
    "math-shepherd-mistral-7b": "peiyi9979/math-shepherd-mistral-7b-prm",
    "rlhflow-8b-mistral-data": "RLHFlow/Llama3.1-8B-PRM-Mistral-Data",
    "rlhflow-8b-deepseek-data": "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data",
    "skywork-prm-1.5b": "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B",
    "skywork-prm-7b": "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-7B",
    "qwen2.5-math-prm-7b": "Qwen/Qwen2.5-Math-PRM-7B",
    "qwen2.5-math-prm-72b": "Qwen/Qwen2.5-Math-PRM-72B",
}


@pytest.mark.parametrize("name,hf_id", sorted(STUDY_PRMS.items()))
def test_study_prm_configs(name, hf_id):
    cfg = OmegaConf.load(os.path.join(CONF, f"{name}.yaml"))
    assert cfg.name == name and cfg.hf_id == hf_id and cfg.model == hf_id
    assert isinstance(cfg.params, float) and cfg.params > 1e9
    assert cfg.type in ("logprob", "classifier")
    if cfg.type == "logprob":
        assert cfg.format in formats.LABEL_FORMATS and (cfg.good_token, cfg.bad_token) == ("+", "-")
    else:
        assert cfg.format in formats.CLASSIFIER_FORMATS and cfg.head in ("two_class", "value")


def test_every_prm_config_has_the_common_keys():
    for path in glob.glob(os.path.join(CONF, "*.yaml")):
        cfg = OmegaConf.load(path)
        from ttslab.rewards import PRM_TYPES

        assert cfg.type in PRM_TYPES, path  # the one registry (other scorers, e.g. confidence, register there)
        if cfg.type in ("logprob", "classifier", "judge"):
            for key in ("name", "format", "hf_id", "params", "model", "good_token", "bad_token", "step_tag"):
                assert key in cfg, f"{path} lacks {key}"


# The BOS each study PRM's input starts with, as its reference feeds it (tests/test_golden_ids.py checks the
# ids with the real tokenizers): Math-Shepherd's references call tokenizer.encode(text) (adds <s>), RLHFlow's
# render the Llama-3.1 chat template (writes <|begin_of_text|>), the Qwen PRMs' have none.
STUDY_PRM_BOS = {
    "math-shepherd-mistral-7b": "<s>",
    "rlhflow-8b-mistral-data": "<|begin_of_text|>",
    "rlhflow-8b-deepseek-data": "<|begin_of_text|>",
    "qwen2.5-math-prm-7b": None,
    "qwen2.5-math-prm-72b": None,
}


class ServerTokenizer:  # an SGLang server's /tokenize for ttslab: the real tokenizer, nothing added
    def __init__(self, tok):
        self.tok = tok

    def tokenize(self, text):
        return list(self.tok(text, add_special_tokens=False)["input_ids"])


def real_tokenizer(name):
    from tests import real_tokenizers

    try:
        return real_tokenizers.tokenizer(name)
    except ImportError as err:
        pytest.skip(f"the real {name} tokenizer needs a package that is missing: {err}")


@pytest.mark.parametrize("name,bos", sorted(STUDY_PRM_BOS.items()))
def test_prm_bos_is_a_config_fact_and_reaches_the_prompt(name, bos):
    from ttslab.config import compose

    cfg = compose([f"prm={name}"]).prm
    assert cfg.bos_token == bos
    if cfg.type != "logprob":
        return
    tok = real_tokenizer("mistral" if name.startswith("math-shepherd") else "llama31")
    prm = build_reward_model(cfg, lambda spec: ServerTokenizer(tok))
    text = prm.prompt(QUESTION, STEPS)
    assert text.startswith(bos) and text.count(bos) == 1  # once: the engine adds nothing
    ids = ServerTokenizer(tok).tokenize(text)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    if name == "math-shepherd-mistral-7b":  # the old prompt started with the question: no BOS at all
        assert text == "<s>What is 2+3? First, 2+3=5. ки\nSo the answer is\n\\boxed{5}. ки"
        assert ids == tok("What is 2+3? First, 2+3=5. ки\nSo the answer is\n\\boxed{5}. ки")["input_ids"]


def test_bos_mistakes_are_refused_at_start():
    from ttslab.rewards import LogprobPRM

    tok = real_tokenizer("mistral")
    with pytest.raises(ValueError, match="prm.bos_token='<s>'.*writes no BOS"):
        LogprobPRM(ServerTokenizer(tok), "judge", "+", "-", bos_token="<s>")
    with pytest.raises(ValueError, match="disagree"):
        LogprobPRM(ServerTokenizer(tok), "rlhflow", "+", "-", format_options={"bos": "</s>"}, bos_token="<s>")
    with pytest.raises(ValueError, match="must be one special token"):
        LogprobPRM(ServerTokenizer(tok), "math_shepherd", "+", "-", bos_token="<|begin_of_text|>")


def test_a_non_legacy_sentencepiece_tokenizer_is_refused(tmp_path):
    # The same Mistral tokenizer loaded as non-legacy drops the "▁" of the first word after <s>: the PRM's
    # inputs would silently differ from the reference's tokenizer.encode(text). It is refused at start.
    import json
    import shutil

    from transformers import AutoTokenizer

    from tests import real_tokenizers
    from ttslab.rewards import LogprobPRM

    real_tokenizer("mistral")
    shutil.copytree(real_tokenizers.cache_dir() / "mistral", tmp_path / "m")
    cfg_path = tmp_path / "m" / "tokenizer_config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "legacy": False,
                                    "tokenizer_class": "LlamaTokenizer"}))
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match='reads text after its BOS.*"legacy": true'):
        LogprobPRM(ServerTokenizer(tok), "math_shepherd", "+", "-", bos_token="<s>")


def test_cpu_judge_config():
    cfg = OmegaConf.load(os.path.join(CONF, "cpu_judge.yaml"))
    assert cfg.type == "judge" and cfg.format == "judge" and cfg.model.startswith("embedded:")
    assert (cfg.good_token, cfg.bad_token) == ("Yes", "No")


def test_build_none_and_bad_type():
    assert build_reward_model(OmegaConf.load(os.path.join(CONF, "none.yaml")), None) is None
    with pytest.raises(ValueError, match="prm.type='magic'"):
        build_reward_model({"name": "x", "type": "magic"}, None)
    with pytest.raises(ValueError, match=r"needs keys \['good_token'"):
        build_reward_model({"name": "x", "type": "judge", "format": "judge", "model": "m"}, lambda spec: None)
