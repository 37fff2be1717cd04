"""Write tests/golden/token_ids.json: the exact token ids each study reference feeds, from the real tokenizers.

    python tests/golden/make_golden_ids.py      # under the model lock: it reads the embedded GGUF's vocabulary

Run once; the JSON is test data (tests/test_golden_ids.py compares what ttslab sends against it). The ids
are computed the way each reference computes them, never through ttslab's format functions:

* Math-Shepherd (compute-optimal-tts `infer_fns._math_shepherd_infer_fn`, search-and-learn
  `reward_models.MathShepherd`, the model card): `tokenizer.encode(text)` of "{q} {s1} ки\\n{s2} ки", i.e.
  Mistral v0.1's sentencepiece ids with its BOS (1) first; labels `encode("+ -")[1:]`, tag `encode("ки")[-1]`.
* RLHFlow (compute-optimal-tts `_rlhflow_*_infer_fn`): `apply_chat_template(conversation)` of user turns (the
  first prefixed by the question) and assistant turns "+", with Llama-3.1-8B-Instruct's chat template
  (tests/golden/llama31_chat_template.jinja, the template of its tokenizer_config.json); the score of step k
  is read right before its assistant label, so the ids up to that label are what a step-k prompt is.
* Qwen2.5-Math-PRM (`_qwen_infer_fn`, the model card): `apply_chat_template` of system/user/assistant with
  the steps joined by "<extra_0>", with the embedded GGUF's Qwen2.5 chat template.
* Skywork (Skywork's `prepare_input`): `encode(bos + q + "\\n")` then each step's `encode(step) + [id("\\n")]`.
* Policies: Qwen2.5 and Llama-3.1 prompts by their chat templates (`add_generation_prompt=True`);
  R1-Distill by its template's structure (BOS, `<｜User｜>`, `<｜Assistant｜><think>\\n`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests import real_tokenizers as rt

# Steps as a policy writes them: "\n\n" ends each but the last; one has an inner newline, LaTeX, a leading space.
QUESTION = "What is $2+3\\cdot 4$? Give the answer in \\boxed{}."
STEPS = [
    "First, multiply: $3\\cdot 4 = 12$.\n\n",
    " Then add: $2 + 12 = 14$.\nNo other operation is left.\n\n",
    "The answer is $\\boxed{14}$.",
]
LLAMA3_SYSTEM_SHORT = None  # the policy test uses ttslab.prompts.LLAMA3_SYSTEM (the study's system prompt)


def clean(step: str) -> str:
    return step.strip()


def math_shepherd() -> dict:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(rt.mistral_model_file()))
    text = f"{QUESTION} " + "\n".join(clean(s) + " ки" for s in STEPS)
    ids = [sp.bos_id()] + sp.encode(text)  # tokenizer.encode(text): the BOS, then the text
    return {"text_without_bos": text, "ids": ids, "bos_id": sp.bos_id(),
            "labels": sp.encode("+ -"), "step_tag_id": sp.encode("ки")[-1]}


def render(tok, messages, template=None, generation_prompt=False) -> list[int]:
    out = tok.apply_chat_template(messages, chat_template=template, tokenize=True,
                                  add_generation_prompt=generation_prompt)
    return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)


def rlhflow(template: str) -> dict:
    tok = rt.tokenizer("llama31")
    conversation = []
    for i, step in enumerate(STEPS):
        conversation.append({"role": "user", "content": f"{QUESTION} {clean(step)}" if i == 0 else clean(step)})
        conversation.append({"role": "assistant", "content": "+"})
    ids = render(tok, conversation, template)
    plus = tok.encode("+", add_special_tokens=False)
    assert len(plus) == 1
    # The label position of step k: the k-th assistant "+" (each right after "<|end_header_id|>\n\n").
    header = tok.convert_tokens_to_ids("<|end_header_id|>")
    label_positions = [i + 2 for i, t in enumerate(ids[:-2]) if t == header and ids[i + 2] == plus[0]
                       and ids[i - 1] == tok.encode("assistant", add_special_tokens=False)[0]]
    return {"ids": ids, "label_positions": label_positions, "plus_id": plus[0],
            "minus_id": tok.encode("-", add_special_tokens=False)[0],
            "bos_id": tok.convert_tokens_to_ids("<|begin_of_text|>")}


def llama3_policy(template: str) -> dict:
    from ttslab.prompts import LLAMA3_SYSTEM

    tok = rt.tokenizer("llama31")
    msgs = [{"role": "system", "content": LLAMA3_SYSTEM}, {"role": "user", "content": QUESTION}]
    return {"ids": render(tok, msgs, template, generation_prompt=True)}


def qwen() -> dict:
    from ttslab.prompts import QWEN_SYSTEM
    from ttslab.rewards.formats import QWEN_PRM_SYSTEM

    tok = rt.tokenizer("qwen25")
    prm_tok = rt.tokenizer("qwen_math_prm")
    prm_msgs = [{"role": "system", "content": QWEN_PRM_SYSTEM}, {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": "<extra_0>".join(clean(s) for s in STEPS) + "<extra_0>"}]
    policy_msgs = [{"role": "system", "content": QWEN_SYSTEM}, {"role": "user", "content": QUESTION}]
    bos = tok.bos_token
    newline = tok.encode("\n", add_special_tokens=False)[-1]
    sky = tok.encode(bos + QUESTION + "\n", add_special_tokens=True)
    positions = []
    for step in STEPS:
        sky += tok.encode(clean(step).replace("\n", " "), add_special_tokens=True) + [newline]
        positions.append(len(sky) - 1)
    return {
        "qwen_math_prm": {"ids": render(prm_tok, prm_msgs), "step_tag_id": prm_tok.convert_tokens_to_ids("<extra_0>")},
        "skywork": {"bos": bos, "ids": sky, "score_positions": positions, "newline_id": newline},
        "qwen_policy": {"ids": render(tok, policy_msgs, generation_prompt=True)},
    }


def r1_policy() -> dict:
    from ttslab.prompts import R1_SUFFIX

    tok = rt.tokenizer("r1_distill")
    # The template's structure: bos, "<｜User｜>" + content, then the generation prompt "<｜Assistant｜><think>\n";
    # encoded as a reference server does with text (special tokens added: the tokenizer prepends its BOS).
    text = "<｜User｜>" + QUESTION + R1_SUFFIX + "<｜Assistant｜><think>\n"
    return {"ids": tok.encode(text, add_special_tokens=True), "bos_id": 151646}


def main() -> None:
    template = (HERE / "llama31_chat_template.jinja").read_text()
    q = qwen()
    data = {
        "_source": "tests/golden/make_golden_ids.py (see its docstring for each reference); tokenizers: "
                   "tests/real_tokenizers.py",
        "question": QUESTION,
        "steps": STEPS,
        "math_shepherd": math_shepherd(),
        "rlhflow": rlhflow(template),
        "llama3_policy": llama3_policy(template),
        "r1_policy": r1_policy(),
        **q,
    }
    (HERE / "token_ids.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print("wrote", HERE / "token_ids.json")


if __name__ == "__main__":
    main()
