"""Chat formatting per policy family, as the study does it (reference/paper.md §1.8).

The family comes from the policy's config file (`family:`), never from its name. A prompt is the chat
template applied to [system?, user, assistant-so-far] with the assistant turn left open, so the policy
continues it step by step; steps are separated by the delimiter "\\n\\n".

The BOS: each family's template writes its tokenizer's BOS text itself, as the chat templates do
(`{{ bos_token }}` first), and engines tokenize with nothing added, so the model sees it exactly once. The
policy's config states that BOS (`bos_token:`, the tokenizer's fact); `check_bos` refuses a config whose
family would write another one (or one where the tokenizer has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

LLAMA3_SYSTEM = """Solve the following math problem efficiently and clearly:

- For simple problems (2 steps or fewer):
Provide a concise solution with minimal explanation.

- For complex problems (3 steps or more):
Use this step-by-step format:

## Step 1: [Concise description]
[Brief explanation and calculations]

## Step 2: [Concise description]
[Brief explanation and calculations]

...

Regardless of the approach, always conclude with:

Therefore, the final answer is: $\\boxed{answer}$. I hope it is correct.

Where [answer] is just the final number or expression that solves the problem."""

R1_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."


LLAMA3_BOS = "<|begin_of_text|>"
R1_BOS = "<｜begin▁of▁sentence｜>"


def _chatml(system: str | None, user: str) -> str:
    # Qwen2.5's template: the system turn is always present; Qwen2.5's tokenizer has no BOS.
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def _llama3(system: str | None, user: str) -> str:
    # Llama-3.1/3.2 Instruct template as rendered by their tokenizer_config (default date string).
    return (
        f"{LLAMA3_BOS}<|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
        f"{system}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def _r1_distill(system: str | None, user: str) -> str:
    # DeepSeek-R1-Distill: no system turn; the template opens the assistant turn with "<think>\n".
    return f"{R1_BOS}<｜User｜>{user}<｜Assistant｜><think>\n"


@dataclass(frozen=True)
class Family:
    template: Callable[[str | None, str], str]
    system: str | None
    user_suffix: str = ""
    bos: str | None = None  # the BOS text the template writes first (None: the tokenizer has none)


FAMILIES: dict[str, Family] = {
    "qwen2.5": Family(_chatml, QWEN_SYSTEM),
    "llama3": Family(_llama3, LLAMA3_SYSTEM, bos=LLAMA3_BOS),
    "deepseek_r1_distill": Family(_r1_distill, None, R1_SUFFIX, bos=R1_BOS),
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"policy.family={name!r} is not a known prompt family; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def check_bos(family_name: str, bos_token: str | None, policy: str = "?") -> None:
    """Refuse a policy whose tokenizer's BOS (`policy.bos_token`) is not the one its family's template writes."""
    fam = family(family_name)
    if (bos_token or None) != fam.bos:
        raise ValueError(
            f"policy {policy!r}: policy.bos_token={bos_token!r}, but its family {family_name!r} writes "
            f"{fam.bos!r} as the BOS: set policy.bos_token to its tokenizer's BOS text, or choose the family "
            "whose chat template matches that tokenizer"
        )


def build_prompt(family_name: str, question: str, steps: list[str] | tuple[str, ...] = ()) -> str:
    """The policy's input: chat prompt for `question` with the assistant turn holding `steps` so far.

    Steps are raw policy outputs (delimiter included), so prompt(steps[:k+1]) extends prompt(steps[:k])
    and an engine with prefix caching evaluates only the new step.
    """
    fam = family(family_name)
    return fam.template(fam.system, question + fam.user_suffix) + "".join(steps)
