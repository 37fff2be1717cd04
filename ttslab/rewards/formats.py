"""Exact PRM input texts, built from (question, steps). Pure functions, no model needed.

Steps arrive as the policy wrote them (the "\\n\\n" delimiter included); every format strips the
surrounding whitespace of a step and puts its own separator back, as the study's code does
(reference/paper.md §1.4).

The BOS token is a fact of the PRM's tokenizer, stated in its config (`bos_token:`): a format that takes
`bos` writes that text first, and engines tokenize with nothing added (special-token text parsed), so the
model sees exactly one BOS where the reference's `tokenizer.encode(text)` adds one (Math-Shepherd's `<s>`)
and never a second one where the text already carries it (RLHFlow's `<|begin_of_text|>`). `bos` has no
default: each caller decides, from the config, never by one rule for all.

Two kinds of format live here:

* **label formats** (Math-Shepherd, RLHFlow, the CPU judge) return the text that ends *right before the
  label token* of the last step. The prompt for steps[:k+1] always extends the prompt for steps[:k], so a
  prefix-caching engine evaluates only the new step plus the format's suffix.
* **classifier formats** (Qwen2.5-Math-PRM, Skywork) return the whole input; the classifier reads one
  score per step at tag positions.
"""

from __future__ import annotations

from typing import Callable, Sequence

# ---------------------------------------------------------------------------------------------- shared


def clean_step(step: str) -> str:
    """A step without the surrounding whitespace (the policy's "\\n\\n" delimiter included)."""
    return step.strip()


def _require_steps(steps: Sequence[str], fmt: str) -> None:
    if isinstance(steps, str):
        raise TypeError(f"{fmt}: steps must be a sequence of step strings, got one str")
    if len(steps) == 0:
        raise ValueError(f"{fmt}: at least one step is needed to build a prompt ending at a step label")


# ------------------------------------------------------------------------------------- Math-Shepherd

MATH_SHEPHERD_STEP_TAG = " ки"


def math_shepherd(question: str, steps: Sequence[str], step_tag: str = MATH_SHEPHERD_STEP_TAG, *, bos: str) -> str:
    """`{bos}{question} {step1} ки\\n{step2} ки\\n...{stepK} ки`; the label (+/-) follows the last tag.

    `bos`: "<s>" for the Mistral tokenizer. Both references feed `tokenizer.encode(text)`, which adds it
    (the model card's `encode("+ -")[1:]` strips exactly that BOS to get the label ids 648/387).
    """
    _require_steps(steps, "math_shepherd")
    body = "\n".join(clean_step(s) + step_tag for s in steps)
    return f"{bos}{question} {body}"


# -------------------------------------------------------------------------------------------- RLHFlow

LLAMA31_BOS = "<|begin_of_text|>"
# Llama-3.1's chat template always emits this system block (fixed date, so the text is stable).
LLAMA31_SYSTEM_PREAMBLE = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"


def _llama31_turn(role: str, content: str) -> str:
    # The Llama-3.1 template trims message content (but not its own system block, written verbatim below).
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n{content.strip()}<|eot_id|>"


def rlhflow(
    question: str,
    steps: Sequence[str],
    good_token: str = "+",
    system_preamble: str = LLAMA31_SYSTEM_PREAMBLE,
    *,
    bos: str,
) -> str:
    """Llama-3.1 chat: user = step (the first prefixed by `question + " "`), assistant = "+".

    `bos`: "<|begin_of_text|>", which the chat template writes itself (the study's
    `apply_chat_template(conversation)` tokenizes with nothing added: one BOS).

    The text ends with the assistant header of the last step: the label (+/-) is the next token. Earlier
    assistant turns hold `good_token`, as in RLHFlow's training data and the study's code.
    """
    _require_steps(steps, "rlhflow")
    text = bos
    if system_preamble is not None:
        text += f"<|start_header_id|>system<|end_header_id|>\n\n{system_preamble}<|eot_id|>"
    for index, step in enumerate(steps):
        user = f"{question} {clean_step(step)}" if index == 0 else clean_step(step)
        text += _llama31_turn("user", user)
        if index < len(steps) - 1:
            text += _llama31_turn("assistant", good_token)
    return text + "<|start_header_id|>assistant<|end_header_id|>\n\n"


# ------------------------------------------------------------------------------------------ CPU judge

# Picked among three wordings by benchmarks/prm_cost.py (hand-made correct/wrong step pairs): asking to
# check the arithmetic separated the pairs best for the 1.5B judge (10/12 vs 8/12 and 9/12).
JUDGE_SYSTEM = (
    "You check math solutions. For each step, decide if its arithmetic and reasoning are correct. "
    "Answer only Yes or No."
)
JUDGE_FIRST_USER = (
    "Problem: {question}\n\nStep {index}: {step}\n\nCheck the arithmetic. Is step {index} correct? Answer Yes or No."
)
JUDGE_NEXT_USER = "Step {index}: {step}\n\nCheck the arithmetic. Is step {index} correct? Answer Yes or No."


def _chatml_turn(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def judge(
    question: str,
    steps: Sequence[str],
    good_token: str = "Yes",
    system: str = JUDGE_SYSTEM,
    first_user: str = JUDGE_FIRST_USER,
    next_user: str = JUDGE_NEXT_USER,
) -> str:
    """ChatML multi-turn judge: each user turn shows one step, earlier assistant turns say `good_token`.

    A new step appends one user turn (≈ the step's tokens + ~15 template tokens) to the previous prompt,
    so the KV of everything before it is reused. The text ends with the assistant header: the label
    (Yes/No) is the next token.
    """
    _require_steps(steps, "judge")
    text = _chatml_turn("system", system)
    for index, step in enumerate(steps, start=1):
        template = first_user if index == 1 else next_user
        text += _chatml_turn("user", template.format(question=question, index=index, step=clean_step(step)))
        if index < len(steps):
            text += _chatml_turn("assistant", good_token)
    return text + "<|im_start|>assistant\n"


# ------------------------------------------------------------------------------- Qwen2.5-Math-PRM

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_PRM_STEP_TAG = "<extra_0>"


def qwen_math_prm(
    question: str, steps: Sequence[str], system: str = QWEN_PRM_SYSTEM, step_tag: str = QWEN_PRM_STEP_TAG
) -> str:
    """Qwen chat (system, user = question, assistant = each step followed by `<extra_0>`).

    This is `apply_chat_template(..., add_generation_prompt=False)` of the model card's messages.
    """
    _require_steps(steps, "qwen_math_prm")
    for index, step in enumerate(steps):
        if step_tag in step:
            raise ValueError(f"qwen_math_prm: step {index} contains the step tag {step_tag!r}")
    answer = "".join(clean_step(s) + step_tag for s in steps)
    return _chatml_turn("system", system) + _chatml_turn("user", question) + _chatml_turn("assistant", answer)


# ------------------------------------------------------------------------------------------- Skywork

SKYWORK_STEP_SEPARATOR = "\n"


def skywork_step(step: str) -> str:
    """Skywork scores "\\n"-separated steps: newlines inside a step become spaces (the study's code)."""
    return clean_step(step).replace("\n", " ")


def skywork_segments(question: str, steps: Sequence[str], bos: str) -> tuple[str, list[str]]:
    """(prompt, step texts): the model input is tokens(prompt) + Σ (tokens(step) + ["\\n"]).

    Steps are tokenized one by one and each is followed by the "\\n" token, whose position carries the
    step's score (Skywork's `prepare_input`).
    """
    _require_steps(steps, "skywork")
    return f"{bos}{question}\n", [skywork_step(s) for s in steps]


def skywork(question: str, steps: Sequence[str], bos: str) -> str:
    """The whole Skywork input as text: `bos + question + "\\n" + steps joined by "\\n" + "\\n"`."""
    prompt, texts = skywork_segments(question, steps, bos)
    return prompt + "".join(t + SKYWORK_STEP_SEPARATOR for t in texts)


# ---------------------------------------------------------------------------------------- registries

# Formats whose text ends right before a label token (used by rewards.logprob.LogprobPRM).
LABEL_FORMATS: dict[str, Callable[..., str]] = {
    "math_shepherd": math_shepherd,
    "rlhflow": rlhflow,
    "judge": judge,
}
# Formats read by a classifier head (used by rewards.classifier).
CLASSIFIER_FORMATS: dict[str, Callable[..., str]] = {
    "qwen_math_prm": qwen_math_prm,
    "skywork": skywork,
}


def label_format(name: str) -> Callable[..., str]:
    try:
        return LABEL_FORMATS[name]
    except KeyError:
        raise ValueError(
            f"prm.format={name!r} is not a label format; expected one of {sorted(LABEL_FORMATS)}"
        ) from None
