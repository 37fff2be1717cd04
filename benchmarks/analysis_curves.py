"""Benchmark: every curve for 500 problems x 256 candidates with 1,000 bootstrap resamples (goal: <= 10 s).

Synthetic records in the results.py schema: one Best-of-N record (N = 256), one DVTS record
(N = 1024, M = 4: 256 subtrees) and beam-search records at N = 4 ... 1024 (1 ... 256 final beams) per
problem. That is 3 strategies x 4 scorings x {max, vote} + majority = 9 distinct rules (the 4 x 3 grid
of the study, majority being the same for every scoring) x 9 budgets, plus pass@k.
Correctness is decided once per distinct (problem, answer key), never per candidate.

    PYTHONPATH=. python benchmarks/analysis_curves.py
"""

from __future__ import annotations

import time

import numpy as np

from ttslab.analysis.curves import curve_table, per_problem_accuracy

GOAL_S = 10.0
PROBLEMS, CANDIDATES, M = 500, 256, 4
BUDGETS = [2**i for i in range(9)]  # Best-of-N: 1 ... 256


def synthetic_records(seed: int = 0) -> tuple[list[dict], int, int]:
    rng = np.random.default_rng(seed)
    records, graded_pairs, n_candidates = [], 0, 0
    for p in range(PROBLEMS):
        skill = rng.beta(1.2, 1.0)
        grades: dict[str, bool] = {}

        def candidates(
            n: int, lift: float, subtrees: bool, skill: float, grades: dict[str, bool]
        ) -> list[dict]:
            nonlocal graded_pairs
            ok = rng.random(n) < min(1.0, skill + lift)
            wrong = rng.integers(0, 12, n)
            none = rng.random(n) < 0.05
            steps = rng.integers(2, 9, n)
            out = []
            for i in range(n):
                key = None if none[i] else ("gold" if ok[i] else f"w{wrong[i]}")
                if key is not None and key not in grades:
                    grades[key] = key == "gold"  # the one equivalence check for this (problem, key)
                    graded_pairs += 1
                good = key is not None and grades[key]
                scores = np.clip(rng.normal(0.7 if good else 0.5, 0.15, steps[i]), 0, 1).round(4).tolist()
                out.append(
                    {
                        "text": "",
                        "steps": [],
                        "step_scores": scores,
                        "answer": key,
                        "key": key,
                        "correct": good,
                        "finish": "eos",
                        "subtree": i if subtrees else None,
                        "usage": {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0},
                    }
                )
            return out

        base = {
            "problem_id": f"p{p}",
            "policy": "synthetic",
            "prm": "synthetic-prm",
            "seed": 0,
            "beam_width": M,
        }
        records.append(
            {
                **base,
                "method": "best_of_n",
                "budget": CANDIDATES,
                "candidates": candidates(CANDIDATES, 0.0, True, skill, grades),
            }
        )
        records.append(
            {
                **base,
                "method": "dvts",
                "budget": CANDIDATES * M,
                "candidates": candidates(CANDIDATES, 0.05, True, skill, grades),
            }
        )
        for b in BUDGETS:
            records.append(
                {
                    **base,
                    "method": "beam_search",
                    "budget": b * M,
                    "candidates": candidates(b, 0.08, False, skill, grades),
                }
            )
        n_candidates += CANDIDATES * 2 + sum(BUDGETS)
    return records, graded_pairs, n_candidates


def main() -> None:
    records, graded, n_cand = synthetic_records()
    print(
        f"synthetic: {PROBLEMS} problems, {n_cand:,} candidates, {graded:,} distinct (problem, key) pairs graded"
    )
    t0 = time.perf_counter()
    wide = per_problem_accuracy(records, seed=0)  # exact up to EXACT_CAP subsets, 200 random ones beyond
    t1 = time.perf_counter()
    table = curve_table(wide, n_boot=1000, seed=0)
    t2 = time.perf_counter()
    per_strategy = table.groupby("method").size().to_dict()
    print(f"columns: {wide.shape[1]} (points per strategy: {per_strategy})")
    print(f"per-problem accuracy (packing + subsampled selection): {t1 - t0:.2f} s")
    print(f"bootstrap CIs (1,000 resamples, every point): {t2 - t1:.2f} s")
    print(f"TOTAL wall time: {t2 - t0:.2f} s  = {(t2 - t0) / GOAL_S:.2f} x the {GOAL_S:.0f} s goal")


if __name__ == "__main__":
    main()
