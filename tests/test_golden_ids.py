"""Golden token ids: what ttslab sends equals what each study reference feeds, with the real tokenizers.

tests/golden/token_ids.json holds the ids the references compute (tests/golden/make_golden_ids.py: Math-Shepherd's
`tokenizer.encode(text)`, RLHFlow's and Llama-3.1's `apply_chat_template` with Llama-3.1's template, Qwen's with
the GGUF's template, Skywork's `prepare_input`). Here ttslab's own code builds the same inputs, and the ids are
taken as an SGLang server's `/tokenize` gives them to ttslab (`add_special_tokens=False`: special-token text
parsed, nothing added), or as the classifier PRM's own encoder does. Tokenizers: tests/real_tokenizers.py.

The Mistral and Llama-3.1 tokenizers come from PyPI packages (mistral-common, llama-models) and build in
seconds: those tests are fast. The Qwen vocabulary is read from the embedded GGUF: those are `model` tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import real_tokenizers as rt

GOLDEN = json.loads((Path(__file__).parent / "golden" / "token_ids.json").read_text())
QUESTION, STEPS = GOLDEN["question"], tuple(GOLDEN["steps"])


def real(name: str):
    try:
        return rt.tokenizer(name)
    except ImportError as err:
        pytest.skip(f"the real {name} tokenizer needs a package that is missing: {err}")


class ServerTokenizer:
    """The `Engine.tokenize` an SGLang server gives ttslab: its tokenizer, `add_special_tokens=False`."""

    def __init__(self, tok):
        self.tok = tok

    def tokenize(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])


def logprob_prm(name: str, tok):
    from ttslab.config import compose
    from ttslab.rewards import build_reward_model

    return build_reward_model(compose([f"prm={name}"]).prm, lambda spec: ServerTokenizer(tok))


# ----------------------------------------------------------------------------------------- Math-Shepherd


def test_golden_math_shepherd_ids_are_the_sentencepiece_encoding_with_its_bos():
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(rt.mistral_model_file()))
    g = GOLDEN["math_shepherd"]
    assert g["ids"] == [1] + sp.encode(g["text_without_bos"])  # the reference's tokenizer.encode(text)
    assert g["labels"] == [648, 387] and g["step_tag_id"] == 12902  # the model card's numbers


def test_math_shepherd_gets_exactly_one_bos_and_the_reference_ids():
    tok = real("mistral")
    g = GOLDEN["math_shepherd"]
    prm = logprob_prm("math-shepherd-mistral-7b", tok)
    engine = ServerTokenizer(tok)
    assert (prm.good_id, prm.bad_id) == tuple(g["labels"]) == (648, 387)
    full = engine.tokenize(prm.prompt(QUESTION, STEPS))
    assert full == g["ids"]
    assert full[0] == 1 and full.count(1) == 1  # one <s>, first (the old prompt had none)
    tags = [i for i, t in enumerate(full) if t == g["step_tag_id"]]
    assert len(tags) == len(STEPS)
    # The prompt for steps[:k] ends at the k-th tag: the label is read where the reference reads it.
    for k in range(1, len(STEPS) + 1):
        assert engine.tokenize(prm.prompt(QUESTION, STEPS[:k])) == g["ids"][: tags[k - 1] + 1]


def test_the_bos_text_tokenizes_like_the_bos_the_tokenizer_adds():
    # Why writing "<s>" in the text and adding nothing equals the reference's encode(text): the legacy
    # sentencepiece tokenizer gives the text after <s> its "▁" prefix as it does at the start of a text.
    tok = real("mistral")
    text = GOLDEN["math_shepherd"]["text_without_bos"]
    assert tok("<s>" + text, add_special_tokens=False)["input_ids"] == tok(text)["input_ids"]
    assert tok(text, add_special_tokens=False)["input_ids"][0] != 1  # the defect: no BOS reached the model


# ----------------------------------------------------------------------------------------------- RLHFlow


@pytest.mark.parametrize("name", ["rlhflow-8b-deepseek-data", "rlhflow-8b-mistral-data"])
def test_rlhflow_prompts_are_the_rendered_llama31_template_up_to_each_label(name):
    tok = real("llama31")
    g = GOLDEN["rlhflow"]
    prm = logprob_prm(name, tok)
    engine = ServerTokenizer(tok)
    assert (prm.good_id, prm.bad_id) == (g["plus_id"], g["minus_id"]) == (10, 12)
    assert len(g["label_positions"]) == len(STEPS)
    for k in range(1, len(STEPS) + 1):
        ids = engine.tokenize(prm.prompt(QUESTION, STEPS[:k]))
        assert ids == g["ids"][: g["label_positions"][k - 1]]  # what the study's model sees before label k
        assert ids.count(128000) == 1 and ids[0] == 128000  # one <|begin_of_text|>: the template's own


def test_rlhflow_system_preamble_is_the_templates():
    tok = real("llama31")
    preamble = tok.decode(GOLDEN["rlhflow"]["ids"][:GOLDEN["rlhflow"]["ids"].index(128009) + 1])
    assert preamble == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>")


# ---------------------------------------------------------------------------------------------- policies


def test_llama3_policy_prompt_is_the_rendered_template_with_one_bos():
    from ttslab.prompts import build_prompt

    tok = real("llama31")
    ids = ServerTokenizer(tok).tokenize(build_prompt("llama3", QUESTION))
    assert ids == GOLDEN["llama3_policy"]["ids"]
    assert ids.count(128000) == 1
    # /generate with `text` would add a second one: the path ttslab does not take.
    assert tok(build_prompt("llama3", QUESTION))["input_ids"][:2] == [128000, 128000]


@pytest.mark.model
def test_qwen_policy_prompt_is_the_rendered_template_without_bos():
    from ttslab.prompts import build_prompt

    tok = real("qwen25")
    ids = ServerTokenizer(tok).tokenize(build_prompt("qwen2.5", QUESTION))
    assert ids == GOLDEN["qwen_policy"]["ids"] and ids[0] == 151644  # <|im_start|>: Qwen2.5 has no BOS


@pytest.mark.model
def test_r1_distill_policy_prompt_has_one_bos():
    from ttslab.prompts import build_prompt

    tok = real("r1_distill")
    ids = ServerTokenizer(tok).tokenize(build_prompt("deepseek_r1_distill", QUESTION))
    assert ids == GOLDEN["r1_policy"]["ids"]
    assert ids.count(151646) == 1 and ids[0] == 151646 and ids[1] == 151644  # <｜begin▁of▁sentence｜><｜User｜>
    assert ids[-3:] == [151645, 151648, 198]  # <｜Assistant｜><think>\n


# ------------------------------------------------------------------------------------ classifier PRMs


@pytest.mark.model
@pytest.mark.torch  # the classifier PRM's module imports torch: CI's torch tier runs it
def test_qwen_math_prm_ids_and_step_tag_positions():
    pytest.importorskip("torch", reason="the classifier PRM needs torch (CI's torch tier installs it)")
    from ttslab.rewards.classifier import ClassifierPRM

    tok = real("qwen_math_prm")
    g = GOLDEN["qwen_math_prm"]
    ids, positions = ClassifierPRM(None, tok, "qwen_math_prm").encode(QUESTION, STEPS)
    assert ids == g["ids"] and g["step_tag_id"] == 151651
    assert positions == [i for i, t in enumerate(g["ids"]) if t == 151651] and len(positions) == len(STEPS)


@pytest.mark.model
@pytest.mark.torch  # the classifier PRM's module imports torch: CI's torch tier runs it
def test_skywork_ids_and_score_positions():
    pytest.importorskip("torch", reason="the classifier PRM needs torch (CI's torch tier installs it)")
    from ttslab.rewards.classifier import ClassifierPRM

    tok = real("qwen25")
    g = GOLDEN["skywork"]
    ids, positions = ClassifierPRM(None, tok, "skywork", format_options={"bos_token": g["bos"]}).encode(QUESTION, STEPS)
    assert ids == g["ids"] and positions == g["score_positions"]
    assert all(ids[p] == g["newline_id"] == 198 for p in positions) and ids.count(tok.convert_tokens_to_ids(g["bos"])) == 1
