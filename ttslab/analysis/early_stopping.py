"""Early-stopping self-consistency (Li et al. 2024, arXiv 2401.10480) replayed on stored Best-of-N samples.

ESC draws whole samples in windows of w and stops at the first window whose answers all agree (or at the
budget N); its answer is the majority of everything drawn. Best-of-N's samples are independent and stored
in the order they were numbered, so running ESC on them *is* a run of ESC: accuracy and cost at every
budget up to the largest stored follow exactly, with no model time. Both methods read the same samples
and the same voting keys (the largest record's, Math-Verify-merged), so the comparison is paired by
problem; ties of the vote go to the answer seen first, as `ttslab.search.selection.majority`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
from scipy.stats import binomtest

from ttslab.search.after_study import early_stop_length
from ttslab.search.selection import majority


def _largest_records(records: Iterable[dict[str, Any]], method: str) -> list[dict[str, Any]]:
    """Per (policy, prm, seed, problem): the record of `method` with the largest budget."""
    best: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r.get("method") != method:
            continue
        key = (r.get("policy"), r.get("prm"), r.get("seed"), r["problem_id"])
        if key not in best or r["budget"] > best[key]["budget"]:
            best[key] = r
    return list(best.values())


def _tokens(cands: Sequence[dict[str, Any]]) -> int:
    return int(sum(c["usage"]["completion_tokens"] for c in cands))


def early_stopping_table(
    records: Iterable[dict[str, Any]], window: int = 4, budgets: Sequence[int] | None = None,
    method: str = "best_of_n",
) -> pd.DataFrame:
    """One row per (problem, budget): ESC with windows of `window` vs majority of the first `budget` samples.

    budgets: default, the powers of two up to each problem's largest stored budget (larger ones are skipped:
    they would need samples that were never drawn).
    Columns: samples / completion_tokens / correct of ESC; bon_samples / bon_completion_tokens /
    bon_correct of Best-of-N majority at the same budget, on the same samples.
    """
    if window < 1:
        raise ValueError(f"window={window}: expected an integer >= 1")
    rows = []
    for r in _largest_records(records, method):
        cands = sorted(r["candidates"], key=lambda c: c["subtree"])
        keys = [c["key"] for c in cands]
        if not cands:
            continue
        wanted = budgets or [2**i for i in range(int(math.log2(len(cands))) + 1)]
        for b in wanted:
            if b > len(cands):
                continue
            n = early_stop_length(keys, window, b)
            esc, bon = majority(keys[:n]), majority(keys[:b])
            rows.append({
                "policy": r.get("policy"), "seed": r.get("seed"), "problem_id": r["problem_id"],
                "level": r.get("level"), "budget": b, "window": window,
                "samples": n, "completion_tokens": _tokens(cands[:n]),
                "correct": bool(esc is not None and cands[esc]["correct"]),
                "bon_samples": b, "bon_completion_tokens": _tokens(cands[:b]),
                "bon_correct": bool(bon is not None and cands[bon]["correct"]),
            })
    return pd.DataFrame(rows)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (never [0, 0] at 0/n)."""
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def paired_difference_interval(x: Sequence[bool], y: Sequence[bool], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of x - y over paired binary outcomes with Newcombe's (1998, method 10) score interval.

    Built from the two Wilson intervals and the (continuity-corrected) correlation of the pairs, so it is
    not degenerate when every pair agrees (where a bootstrap of the differences gives [0, 0]).
    """
    n = len(x)
    a = sum(1 for i, j in zip(x, y) if i and j)
    b = sum(1 for i, j in zip(x, y) if i and not j)
    c = sum(1 for i, j in zip(x, y) if j and not i)
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, confidence)
    l2, u2 = wilson(a + c, n, confidence)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    # Newcombe's continuity correction of the correlation (without it, perfectly concordant pairs can
    # give a zero-width interval)
    num = max(a * d - b * c - n / 2, 0.0) if a * d > b * c else a * d - b * c
    phi = num / math.sqrt(den) if den else 0.0
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    eps = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    theta = p1 - p2
    return theta, max(-1.0, theta - delta), min(1.0, theta + eps)


def early_stopping_summary(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per budget: accuracies (Wilson intervals), the paired difference ESC - BoN (Newcombe), mean samples
    and completion tokens of each, and the share of Best-of-N's tokens ESC spends."""
    rows = []
    for b, g in table.groupby("budget", sort=True):
        n = len(g)
        k_esc, k_bon = int(g["correct"].sum()), int(g["bon_correct"].sum())
        diff, lo, hi = paired_difference_interval(list(g["correct"]), list(g["bon_correct"]), confidence)
        rows.append({
            "budget": int(b), "n_problems": n,
            "esc_accuracy": k_esc / n, "esc_low": wilson(k_esc, n, confidence)[0], "esc_high": wilson(k_esc, n, confidence)[1],
            "bon_accuracy": k_bon / n, "bon_low": wilson(k_bon, n, confidence)[0], "bon_high": wilson(k_bon, n, confidence)[1],
            "difference": diff, "difference_low": lo, "difference_high": hi,
            "esc_samples": float(g["samples"].mean()), "bon_samples": float(g["bon_samples"].mean()),
            "esc_tokens": float(g["completion_tokens"].mean()), "bon_tokens": float(g["bon_completion_tokens"].mean()),
            "token_share": float(g["completion_tokens"].sum() / max(1, g["bon_completion_tokens"].sum())),
        })
    return pd.DataFrame(rows)
