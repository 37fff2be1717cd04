"""Hand-made records in the exact schema of ttslab.results (schema 1), for analysis and figure tests.

Candidates are realistic: step texts split on the study's "\n\n" delimiter, PRM step scores that are
higher for correct solutions, some candidates without an answer, token usage, DVTS subtree indices.
Correctness is decided once per distinct (problem, answer key), as the real grader does upstream.
Selections are computed with ttslab.search.selection, exactly as a run writes them.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

from ttslab.results import RecordWriter
from ttslab.search.selection import select_all

POLICY, POLICY_PARAMS = "Qwen2.5-0.5B-Instruct", 494_000_000
PRM, PRM_PARAMS = "Skywork-PRM-1.5B", 1_540_000_000
BEAM_WIDTH = 4


def make_candidate(
    rng: random.Random, gold_key: str, p_correct: float, subtree: int | None, graded: dict[str, bool]
) -> dict[str, Any]:
    """One final solution; `graded` caches correctness per distinct answer key of the problem."""
    if rng.random() < p_correct:
        key = gold_key
    elif rng.random() < 0.1:
        key = None  # no extractable answer (e.g. cut at the token limit)
    else:
        key = str(rng.choice([7, 12, 15, 24, 30]))
    if key is not None and key not in graded:
        graded[key] = key == gold_key  # one equivalence check per distinct (problem, key)
    good = bool(key is not None and graded[key])
    n_steps = rng.randint(2, 5)
    scores = [
        round(min(1.0, max(0.0, (0.72 if good else 0.5) + rng.gauss(0, 0.15))), 4) for _ in range(n_steps)
    ]
    steps = [f"## Step {i + 1}: work on the problem\n\n" for i in range(n_steps - 1)]
    steps.append(
        "Therefore, the final answer is: $\\boxed{" + (key or "?") + "}$." if key else "I am not sure."
    )
    completion = 40 * n_steps + rng.randint(0, 30)
    return {
        "text": "".join(steps),
        "steps": steps,
        "step_scores": scores,
        "answer": None if key is None else f"\\boxed{{{key}}}",
        "key": key,
        "correct": good,
        "finish": "eos" if key else "length",
        "subtree": subtree,
        "usage": {"prompt_tokens": 60, "cached_tokens": 40, "completion_tokens": completion},
    }


def make_record(
    problem_id: str,
    method: str,
    budget: int,
    candidates: list[dict],
    *,
    gold: str,
    level: int = 3,
    policy: str = POLICY,
    policy_params: int = POLICY_PARAMS,
    prm: str | None = PRM,
    prm_params: int | None = PRM_PARAMS,
    seed: int = 0,
) -> dict[str, Any]:
    """A full record around given candidates, with selections from ttslab.search.selection."""
    policy_completion = sum(c["usage"]["completion_tokens"] for c in candidates)
    selections = select_all(
        [c["key"] for c in candidates],
        [c["correct"] for c in candidates],
        [c["answer"] for c in candidates],
        [c["step_scores"] if prm else None for c in candidates],
        with_prm=bool(prm),
    )
    return {
        "problem_id": problem_id,
        "source": "fixture",
        "level": level,
        "subject": "Algebra",
        "gold": gold,
        "policy": policy,
        "policy_params": policy_params,
        "prm": prm,
        "prm_params": prm_params,
        "engine": "fixture",
        "method": method,
        "budget": budget,
        "beam_width": BEAM_WIDTH if method in ("beam_search", "dvts") else None,
        "seed": seed,
        "candidates": candidates,
        "selections": selections,
        "usage": {
            "policy": {
                "prompt_tokens": 60 * len(candidates) * 3,
                "cached_tokens": 40 * len(candidates) * 3,
                "completion_tokens": policy_completion,
            },
            "prm": (
                {
                    "prompt_tokens": policy_completion + 60 * len(candidates),
                    "cached_tokens": 0,
                    "completion_tokens": 0,
                }
                if prm
                else {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0}
            ),
        },
        "tree": None,
        "wall_time_s": 0.01 * len(candidates),
    }


def problem_set(n_problems: int, seed: int = 0) -> list[tuple[str, str, float]]:
    """(problem_id, gold key, probability a sample is correct), spread over easy, medium and hard."""
    rng = random.Random(seed)
    return [
        (f"p{i:03d}", str(100 + i), rng.choice([0.02, 0.05, 0.2, 0.35, 0.6, 0.9])) for i in range(n_problems)
    ]


def study_records(
    n_problems: int = 12,
    bon_n: int = 16,
    beam_budgets: tuple[int, ...] = (4, 8, 16),
    dvts_n: int = 16,
    seed: int = 0,
    bon_prefixes: bool = False,
) -> list[dict[str, Any]]:
    """CoT + one Best-of-N record (bon_n) + beam search per budget + one DVTS record (dvts_n) per problem.

    bon_prefixes: also write Best-of-N at N = 1, 2, 4, ... < bon_n as the first N of the same samples,
    as `ttslab run` does.
    """
    rng = random.Random(seed)
    out = []
    for pid, gold, p in problem_set(n_problems, seed):
        graded: dict[str, bool] = {}
        cot = [make_candidate(rng, gold, p, None, graded)]
        out.append(make_record(pid, "cot", 1, cot, gold=gold, prm=None, prm_params=None))
        bon = [make_candidate(rng, gold, p, i, graded) for i in range(bon_n)]
        n = 1
        while bon_prefixes and n < bon_n:
            out.append(make_record(pid, "best_of_n", n, copy.deepcopy(bon[:n]), gold=gold))
            n *= 2
        out.append(make_record(pid, "best_of_n", bon_n, bon, gold=gold))
        for b in beam_budgets:  # search lifts accuracy a little over sampling
            beams = [
                make_candidate(rng, gold, min(1.0, p + 0.1), None, graded) for _ in range(b // BEAM_WIDTH)
            ]
            out.append(make_record(pid, "beam_search", b, beams, gold=gold))
        dvts = [make_candidate(rng, gold, min(1.0, p + 0.05), j, graded) for j in range(dvts_n // BEAM_WIDTH)]
        out.append(make_record(pid, "dvts", dvts_n, dvts, gold=gold))
    return out


def write_run(run_dir: str | Path, records: list[dict[str, Any]]) -> Path:
    """A run directory as `ttslab run` leaves it: config.yaml + records.jsonl (via RecordWriter)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(
        f"policy:\n  name: {POLICY}\nprm:\n  name: {PRM}\ndataset:\n  name: fixture\n"
    )
    with RecordWriter(run_dir) as w:
        for r in records:
            w.write(r)
    return run_dir
