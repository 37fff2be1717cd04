"""FLOPs: pre-training 6·N·D and inference 2·params·tokens from measured records (§2.4, Table 4).

Inference counts policy and PRM separately. Prompt tokens are counted two ways: as evaluated with
prefix reuse (prompt - cached: what a radix/prefix cache actually computes) and without reuse (every
prompt token recomputed). Completion tokens are always computed. Parameter counts come from the
record fields `policy_params` and `prm_params`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

# (parameters, pre-training tokens, source). The four Table 4 rows reproduce the printed values
# exactly with nominal sizes (fact sheet §2.4); the rest are the families' published nominal figures.
PRETRAINING = {
    "Llama-3.2-1B-Inst.": (1e9, 9e12, "Llama 3.2 model card: 1B, up to 9T tokens"),
    "Llama-3.2-3B-Inst.": (3e9, 9e12, "Table 4 reproduction (6 x 3B x 9T = 1.62e23)"),
    "Llama-3.1-8B-Inst.": (8e9, 15e12, "Llama 3.1 model card: 8B, 15T+ tokens"),
    "Llama-3.1-70B-Inst.": (70e9, 15e12, "Llama 3.1 model card: 70B, 15T+ tokens"),
    "Llama-3.1-405B-Inst.": (405e9, 15e12, "Table 4 reproduction (6 x 405B x 15T = 3.65e25)"),
    "Qwen2.5-0.5B-Inst.": (0.5e9, 18e12, "Qwen2.5 report: 18T tokens"),
    "Qwen2.5-1.5B-Inst.": (1.5e9, 18e12, "Qwen2.5 report: 18T tokens"),
    "Qwen2.5-3B-Inst.": (3e9, 18e12, "Qwen2.5 report: 18T tokens"),
    "Qwen2.5-7B-Inst.": (7e9, 18e12, "Qwen2.5 report: 18T tokens"),
    "Qwen2.5-14B-Inst.": (14e9, 18e12, "Qwen2.5 report: 18T tokens"),
    "Qwen2.5-32B-Inst.": (32e9, 18e12, "Qwen2.5 report: 18T tokens"),
    "Qwen2.5-72B-Inst.": (72e9, 18e12, "Qwen2.5 report: 18T tokens"),
    "DeepSeek-R1-Distill-1.5B": (1.5e9, 18e12, "Qwen2.5 base tokens, as Table 4 does for the 7B distill"),
    "DeepSeek-R1-Distill-7B": (7e9, 18e12, "Table 4 reproduction (6 x 7B x 18T = 7.56e23)"),
    "DeepSeek-R1": (671e9, 14.8e12, "Table 4 reproduction (6 x 671B total params x 14.8T = 5.96e25)"),
}


def pretraining_flops(params: float, tokens: float) -> float:
    """C = 6·N·D (forward + backward over every training token)."""
    if params <= 0 or tokens <= 0:
        raise ValueError(f"pretraining_flops: params and tokens must be positive, got {params}, {tokens}")
    return 6.0 * params * tokens


def _usage(rec: dict[str, Any], who: str) -> dict[str, int]:
    try:
        u = rec["usage"][who]
        return {k: int(u[k]) for k in ("prompt_tokens", "cached_tokens", "completion_tokens")}
    except (KeyError, TypeError) as e:
        raise ValueError(
            f"record problem_id={rec.get('problem_id')!r} method={rec.get('method')!r}: "
            f"usage.{who} must hold prompt_tokens, cached_tokens, completion_tokens ({e!r})"
        ) from e


def inference_flops(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per-record inference FLOPs, 2·params·tokens, for policy and PRM, with and without prefix reuse."""
    rows = []
    for r in records:
        row = {k: r.get(k) for k in ("problem_id", "policy", "prm", "method", "budget", "seed")}
        for who, params_field in (("policy", "policy_params"), ("prm", "prm_params")):
            u = _usage(r, who)
            params = r.get(params_field)
            used = u["prompt_tokens"] + u["completion_tokens"] > 0
            if used and not isinstance(params, (int, float)):
                raise ValueError(
                    f"record problem_id={r.get('problem_id')!r}: field {params_field!r} must be a "
                    f"parameter count when usage.{who} is non-zero, got {params!r}"
                )
            params = float(params or 0)
            row[f"{who}_tokens_reuse"] = u["prompt_tokens"] - u["cached_tokens"] + u["completion_tokens"]
            row[f"{who}_tokens_no_reuse"] = u["prompt_tokens"] + u["completion_tokens"]
            row[f"{who}_flops_reuse"] = 2.0 * params * row[f"{who}_tokens_reuse"]
            row[f"{who}_flops_no_reuse"] = 2.0 * params * row[f"{who}_tokens_no_reuse"]
        for mode in ("reuse", "no_reuse"):
            row[f"total_flops_{mode}"] = row[f"policy_flops_{mode}"] + row[f"prm_flops_{mode}"]
        rows.append(row)
    return pd.DataFrame(rows)


def inference_summary(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Total and per-problem mean inference FLOPs per (policy, prm, method, budget)."""
    df = inference_flops(records)
    flops_cols = [c for c in df.columns if "flops" in c]
    keys = ["policy", "prm", "method", "budget"]
    g = df.fillna({"prm": ""}).groupby(keys, sort=True)
    total = g[flops_cols].sum().add_prefix("sum_")
    mean = g[flops_cols].mean().add_prefix("per_problem_")
    return total.join(mean).join(g.size().rename("records")).reset_index()


def small_vs_large(small: str, small_inference: float, large: str, large_inference: float) -> pd.DataFrame:
    """Table 4's comparison: pre-training (from PRETRAINING) + given inference FLOPs, and the ratio."""
    for name in (small, large):
        if name not in PRETRAINING:
            raise KeyError(
                f"small_vs_large: no pre-training figures for {name!r}; known: {', '.join(PRETRAINING)}"
            )
    rows = []
    for name, inference, setting in ((small, small_inference, "TTS"), (large, large_inference, "CoT")):
        pre = pretraining_flops(*PRETRAINING[name][:2])
        rows.append(
            {
                "policy_model": name,
                "setting": setting,
                "pretraining_flops": pre,
                "inference_flops": inference,
                "total_flops": pre + inference,
            }
        )
    df = pd.DataFrame(rows)
    df["total_vs_small"] = df["total_flops"] / df["total_flops"].iloc[0]
    return df
