"""Problem difficulty from the policy's own Pass@1, the study's bins, and per-bin curves (§3.2, Fig. 3, 8, 9)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from ttslab.analysis.curves import curve_table
from ttslab.search.strategies import whole_solution_methods

# The study's absolute bins on Pass@1: hard [0, 0.1), medium [0.1, 0.5), easy [0.5, 1].
ABSOLUTE_EDGES = [0.0, 0.1, 0.5, np.inf]
ABSOLUTE_LABELS = ["hard", "medium", "easy"]
SAMPLE_METHODS = whole_solution_methods()  # independent whole solutions of the policy (registry)


def pass_at_1(
    records: Iterable[dict[str, Any]], policy: str | None = None, methods: Sequence[str] = SAMPLE_METHODS
) -> pd.Series:
    """Per-problem Pass@1 of one policy: the fraction of correct samples, each sample counted once.

    A run stores Best-of-N at N = 1, 2, 4, 8, 16 as the first N of the same 16 samples, so only the
    largest-budget record of each (problem, method, seed) is read: with the shipped preset that is 16
    Best-of-N samples + 1 CoT answer = 17 per problem (`ttslab.study.check_run` verifies the prefix
    property the smaller records must have). The study does not say how many samples its Pass@1 uses
    (fact sheet §2.3).

    policy: required when the records hold several policies (difficulty is a property of a policy).
    """
    largest: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r["method"] not in methods:
            continue
        k = (str(r["problem_id"]), r.get("policy"), r["method"], r.get("seed", 0))
        if k not in largest or int(r["budget"]) > int(largest[k]["budget"]):
            largest[k] = r
    rows = [
        (str(r["problem_id"]), r.get("policy"), bool(c["correct"]))
        for r in largest.values()
        for c in r["candidates"]
    ]
    if not rows:
        raise ValueError(f"pass_at_1: no candidates from methods {list(methods)} in the records")
    df = pd.DataFrame(rows, columns=["problem_id", "policy", "correct"])
    policies = sorted(df["policy"].dropna().unique())
    if policy is None and len(policies) > 1:
        raise ValueError(f"pass_at_1: records hold policies {policies}; pass policy=... to choose one")
    if policy is not None:
        if policy not in policies:
            raise ValueError(f"pass_at_1: policy {policy!r} not in records; found {policies}")
        df = df[df["policy"] == policy]
    return df.groupby("problem_id", sort=True)["correct"].mean().rename("pass@1")


def difficulty_bins(pass1: pd.Series, scheme: str = "absolute", quantiles: int = 5) -> pd.Series:
    """Difficulty label per problem: the study's absolute bins, or `quantiles` equal-size bins.

    Quantile labels run q1 (lowest Pass@1, hardest) to qK; ties are split by problem order so the
    bins have equal size (Snell et al.'s scheme, which the study replaced with absolute bins).
    """
    if scheme == "absolute":
        if pass1.min() < 0 or pass1.max() > 1:
            raise ValueError(
                f"difficulty_bins: Pass@1 must lie in [0, 1], got [{pass1.min()}, {pass1.max()}]"
            )
        labels = pd.cut(pass1, ABSOLUTE_EDGES, right=False, labels=ABSOLUTE_LABELS)
    elif scheme == "quantile":
        labels = pd.qcut(
            pass1.rank(method="first"), quantiles, labels=[f"q{i + 1}" for i in range(quantiles)]
        )
    else:
        raise ValueError(f"difficulty_bins: scheme {scheme!r}; expected 'absolute' or 'quantile'")
    return labels.rename("difficulty")


def curves_by_difficulty(
    per_problem: pd.DataFrame, bins: pd.Series, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """`curve_table` restricted to each difficulty bin, stacked with a `difficulty` column."""
    missing = per_problem.index.difference(bins.index)
    if len(missing):
        raise ValueError(
            f"curves_by_difficulty: {len(missing)} problems have no difficulty label, e.g. {missing[0]!r}"
        )
    parts = []
    for label in bins.cat.categories if hasattr(bins, "cat") else sorted(bins.unique()):
        ids = [p for p in per_problem.index if bins[p] == label]
        if ids:
            parts.append(
                curve_table(per_problem, n_boot, confidence, seed, problems=ids).assign(difficulty=label)
            )
    return pd.concat(parts, ignore_index=True)


def pass1_histogram(pass1: pd.Series, n_bins: int = 5) -> pd.DataFrame:
    """Figure 3's data: share of problems per Pass@1 bin of width 1/n_bins (last bin includes 1.0)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts, _ = np.histogram(pass1.to_numpy(dtype=float), bins=edges)
    return pd.DataFrame(
        {
            "bin": [f"{lo:.1f}-{hi:.1f}" for lo, hi in pairwise(edges)],
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": counts,
            "percent": 100.0 * counts / max(1, counts.sum()),
        }
    )


def held_out_split(
    records: Iterable[dict[str, Any]], policy: str | None = None
) -> tuple[pd.Series, list[dict[str, Any]]]:
    """Difficulty from samples the curves never read: (Pass@1 per problem from the second half of each
    problem's sampling-method samples, the records with those samples removed).

    The study's bins (`pass_at_1`) come from the very Best-of-N samples whose accuracy is then plotted per
    bin, so Best-of-N is near 0% on "hard" and near 100% on "easy" by construction. Here the largest
    sampling record of each problem (Best-of-N, K samples) is cut in two: samples K/2..K-1 give the Pass@1
    that bins the problem; the returned records keep samples 0..K/2-1 (a record at budget K/2, the first
    K/2 samples, as a run stores them) and drop the larger budgets, so Best-of-N curves reach N = K/2 and
    never see a sample that binned their problem. CoT is not in the binning samples. Other methods
    generate their own samples and are returned unchanged.
    """
    from ttslab.analysis.methods import is_sampling

    recs = list(records)
    if policy is not None:
        recs = [r for r in recs if r.get("policy") == policy]
    largest: dict[tuple, dict[str, Any]] = {}
    for r in recs:
        if is_sampling(r["method"]):
            k = (str(r["problem_id"]), r.get("policy"), r["method"], r.get("seed", 0))
            if k not in largest or int(r["budget"]) > int(largest[k]["budget"]):
                largest[k] = r
    if not largest:
        raise ValueError("held_out_split: no records of a sampling method (Best-of-N) to split")
    correct: dict[str, list[bool]] = {}
    kept, half_of = [], {}
    for k, r in largest.items():
        cands = r["candidates"]
        half = len(cands) // 2
        if half < 1:
            raise ValueError(f"held_out_split: {k[0]} {k[2]} has {len(cands)} sample(s); need at least 2")
        correct.setdefault(k[0], []).extend(bool(c["correct"]) for c in cands[half:])
        half_of[k] = half
        kept.append({**r, "budget": half, "candidates": cands[:half]})
    for r in recs:
        k = (str(r["problem_id"]), r.get("policy"), r["method"], r.get("seed", 0))
        if k not in half_of:
            kept.append(r)
        elif int(r["budget"]) < half_of[k]:
            kept.append(r)  # smaller budgets are the first samples already
    pass1 = pd.Series({p: float(np.mean(v)) for p, v in sorted(correct.items())}, name="pass@1 (held out)")
    pass1.index.name = "problem_id"
    return pass1, kept
