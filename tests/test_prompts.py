"""Chat formats per policy family, pinned to the study's strings (reference/paper.md §1.8)."""

import pytest

from ttslab.prompts import FAMILIES, build_prompt, check_bos


def test_qwen_system_prompt_and_open_assistant_turn():
    assert build_prompt("qwen2.5", "What is 1+1?") == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_llama3_uses_the_study_system_prompt_and_ends_with_a_blank_line():
    text = build_prompt("llama3", "What is 1+1?")
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    assert "Solve the following math problem efficiently and clearly:" in text
    assert "Therefore, the final answer is: $\\boxed{answer}$. I hope it is correct." in text
    assert text.endswith("<|start_header_id|>user<|end_header_id|>\n\nWhat is 1+1?<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_r1_distill_has_no_system_turn_and_a_user_suffix():
    text = build_prompt("deepseek_r1_distill", "What is 1+1?")
    assert "system" not in text
    assert "What is 1+1?\nPlease reason step by step, and put your final answer within \\boxed{}." in text


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_steps_extend_the_prompt(family):
    base = build_prompt(family, "Q")
    steps = ["Step one.\n\n", "Step two.\n\n"]
    assert build_prompt(family, "Q", steps[:1]) == base + steps[0]
    assert build_prompt(family, "Q", steps) == base + "".join(steps)


def test_unknown_family_names_the_key():
    with pytest.raises(ValueError, match="policy.family='mistral'"):
        build_prompt("mistral", "Q")


def test_every_policy_config_states_the_bos_its_family_writes():
    # conf/policy/*.yaml `bos_token` (the tokenizer's fact) against the family's template: composing refuses a
    # mismatch; each prompt starts with that BOS once (engines add none), or with none for Qwen2.5.
    import glob
    import os

    from omegaconf import OmegaConf

    conf = os.path.join(os.path.dirname(__file__), "..", "conf", "policy")
    seen = set()
    for path in sorted(glob.glob(os.path.join(conf, "*.yaml"))):
        cfg = OmegaConf.load(path)
        check_bos(cfg.family, cfg.bos_token, cfg.name)
        text = build_prompt(cfg.family, "Q")
        if cfg.bos_token:
            assert text.startswith(cfg.bos_token) and text.count(cfg.bos_token) == 1, path
        else:
            assert not text.startswith(("<s>", "<|begin_of_text|>", "<｜begin▁of▁sentence｜>", "<|endoftext|>")), path
        seen.add((cfg.family, cfg.bos_token))
    assert seen == {("qwen2.5", None), ("llama3", "<|begin_of_text|>"),
                    ("deepseek_r1_distill", "<｜begin▁of▁sentence｜>")}


def test_a_bos_that_the_family_does_not_write_is_refused():
    from ttslab.config import compose, validate
    from ttslab.errors import ConfigError

    with pytest.raises(ValueError, match="policy.bos_token=None.*'llama3' writes '<\\|begin_of_text\\|>'"):
        check_bos("llama3", None, "x")
    with pytest.raises(ConfigError, match="policy.bos_token='<s>'"):
        validate(compose(["policy.bos_token='<s>'"]))
