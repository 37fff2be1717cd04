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

import numpy as np
import pandas as pd

from ttslab.analysis.compare import paired_difference, proportion_interval
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


def _replay(keys, correct, tokens, window: int, b: int) -> tuple[int, int, bool, int, bool]:
    """ESC and Best-of-N majority at budget b on samples in this order: (n, ESC tokens, ESC right, BoN tokens, BoN right)."""
    n = early_stop_length(keys, window, b)
    esc, bon = majority(keys[:n]), majority(keys[:b])
    return (n, int(sum(tokens[:n])), bool(esc is not None and correct[esc]), int(sum(tokens[:b])),
            bool(bon is not None and correct[bon]))


def early_stopping_table(
    records: Iterable[dict[str, Any]], window: int = 4, budgets: Sequence[int] | None = None,
    method: str = "best_of_n", orders: int = 0, seed: int = 0,
) -> pd.DataFrame:
    """One row per (problem, budget): ESC with windows of `window` vs majority of the same `budget` samples.

    budgets: default, the powers of two up to each problem's largest stored budget (larger ones are skipped:
    they would need samples that were never drawn).
    orders: 0 replays the samples in their stored order (one exact run of ESC: values 0/1); k > 0 averages
    both methods over k random orderings of each problem's stored samples (seeded; the same orderings for
    both, so the pair stays matched): per-problem expected values, as the curves' Best-of-N estimator is an
    expectation over subsets of the samples.
    Columns: samples / completion_tokens / correct of ESC; bon_samples / bon_completion_tokens /
    bon_correct of Best-of-N majority at the same budget, on the same samples.
    """
    if window < 1:
        raise ValueError(f"window={window}: expected an integer >= 1")
    rng = np.random.default_rng(seed)
    rows = []
    for r in _largest_records(records, method):
        cands = sorted(r["candidates"], key=lambda c: c["subtree"])
        if not cands:
            continue
        keys = [c["key"] for c in cands]
        correct = [bool(c["correct"]) for c in cands]
        tokens = [int(c["usage"]["completion_tokens"]) for c in cands]
        perms = [np.arange(len(cands))] if orders <= 0 else [rng.permutation(len(cands)) for _ in range(orders)]
        for b in budgets or [2**i for i in range(int(math.log2(len(cands))) + 1)]:
            if b > len(cands):
                continue
            runs = np.array([_replay([keys[i] for i in p], [correct[i] for i in p], [tokens[i] for i in p], window, b)
                             for p in perms], dtype=float)
            n, esc_tok, esc_ok, bon_tok, bon_ok = runs.mean(axis=0)
            one = orders <= 0
            rows.append({
                "policy": r.get("policy"), "seed": r.get("seed"), "problem_id": r["problem_id"],
                "level": r.get("level"), "budget": b, "window": window, "orders": max(orders, 0),
                "samples": n, "completion_tokens": esc_tok, "correct": bool(esc_ok) if one else esc_ok,
                "bon_samples": b, "bon_completion_tokens": bon_tok, "bon_correct": bool(bon_ok) if one else bon_ok,
            })
    return pd.DataFrame(rows)


def early_stopping_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per budget: both accuracies (Wilson intervals over problems), ESC - BoN paired over problems
    (`ttslab.analysis.compare.paired_difference`: bootstrap interval, sign-flip p, verdict), mean samples
    and completion tokens of each, and the share of Best-of-N's tokens ESC spends."""
    rows = []
    for b, g in table.groupby("budget", sort=True):
        n = len(g)
        esc, bon = g["correct"].astype(float), g["bon_correct"].astype(float)
        d = paired_difference(esc.to_numpy(), bon.to_numpy(), "ESC", "Best-of-N majority")
        rows.append({
            "budget": int(b), "n_problems": n,
            "esc_accuracy": esc.mean(), **dict(zip(("esc_low", "esc_high"), proportion_interval(esc.mean(), n))),
            "bon_accuracy": bon.mean(), **dict(zip(("bon_low", "bon_high"), proportion_interval(bon.mean(), n))),
            "difference": d.diff / 100, "difference_low": d.low / 100, "difference_high": d.high / 100,
            "p_value": d.p_value, "problems_differ": d.differ, "verdict": d.as_dict()["verdict"],
            "esc_samples": float(g["samples"].mean()), "bon_samples": float(g["bon_samples"].mean()),
            "esc_tokens": float(g["completion_tokens"].mean()), "bon_tokens": float(g["bon_completion_tokens"].mean()),
            "token_share": float(g["completion_tokens"].sum() / max(1, g["bon_completion_tokens"].sum())),
        })
    return pd.DataFrame(rows)
