"""Final-answer selection: scoring (PRM-Min/Last/Avg/Prod) x voting (Majority, PRM-Max, PRM-Vote).

The study (§4.1 and Table 2; its code's `vote_utils.py`) reports `majority_vote, prm_{min,last,avg}_{max,vote}`;
we add PRM-Prod. Every rule is computed from the same stored candidates, so analysis never re-runs generation.

Conventions (written down because the public code leaves them implicit):
- candidates without an extracted answer (key None) take part in no vote;
- a candidate without step scores scores -1.0 (as the study's code does for an empty reward list);
- ties go to the answer seen first among the candidates (stable and reproducible).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

SCORINGS: dict[str, Callable[[Sequence[float]], float]] = {
    "prm_min": min,
    "prm_last": lambda s: s[-1],
    "prm_avg": lambda s: sum(s) / len(s),
    "prm_prod": lambda s: math.prod(s),
}
VOTINGS = ("max", "vote")
# All rule names, majority first; majority needs no PRM.
RULES: tuple[str, ...] = ("majority",) + tuple(f"{s}_{v}" for s in SCORINGS for v in VOTINGS)


def aggregate(step_scores: Sequence[float] | None, scoring: str) -> float:
    """One trajectory score from its per-step scores."""
    if not step_scores:
        return -1.0
    return float(SCORINGS[scoring](step_scores))


def majority(keys: Sequence[str | None]) -> int | None:
    """Index of a candidate holding the most frequent answer key (first seen wins ties)."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k is None:
            continue
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, i)
    if not counts:
        return None
    best = max(counts, key=lambda k: (counts[k], -first[k]))
    return first[best]


def prm_max(keys: Sequence[str | None], scores: Sequence[float]) -> int | None:
    """Index of the highest-scored candidate that has an answer (first wins ties)."""
    valid = [i for i, k in enumerate(keys) if k is not None]
    if not valid:
        return None
    return max(valid, key=lambda i: (scores[i], -i))


def prm_vote(keys: Sequence[str | None], scores: Sequence[float]) -> int | None:
    """Index of a candidate of the answer whose summed scores are highest (first seen wins ties)."""
    totals: dict[str, float] = {}
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k is None:
            continue
        totals[k] = totals.get(k, 0.0) + scores[i]
        first.setdefault(k, i)
    if not totals:
        return None
    best = max(totals, key=lambda k: (totals[k], -first[k]))
    return first[best]


def select(rule: str, keys: Sequence[str | None], step_scores: Sequence[Sequence[float] | None]) -> int | None:
    """Index of the candidate a rule picks, or None when no candidate has an answer."""
    if rule == "majority":
        return majority(keys)
    scoring, voting = rule.rsplit("_", 1)
    if scoring not in SCORINGS or voting not in VOTINGS:
        raise ValueError(f"unknown selection rule {rule!r}; expected one of {', '.join(RULES)}")
    scores = [aggregate(s, scoring) for s in step_scores]
    return prm_max(keys, scores) if voting == "max" else prm_vote(keys, scores)


def select_all(
    keys: Sequence[str | None],
    correct: Sequence[bool],
    answers: Sequence[str | None],
    step_scores: Sequence[Sequence[float] | None],
    with_prm: bool = True,
) -> dict[str, dict]:
    """Every rule's answer and correctness, plus the oracle (pass@N: any candidate correct).

    Without a PRM (`with_prm=False`) only majority voting and the oracle are defined.
    """
    out: dict[str, dict] = {}
    for rule in RULES if with_prm else ("majority",):
        i = select(rule, keys, step_scores)
        out[rule] = {"answer": None if i is None else answers[i], "correct": bool(i is not None and correct[i])}
    out["oracle"] = {"answer": None, "correct": bool(any(correct))}
    return out
