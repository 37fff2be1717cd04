"""A run's results table: summary.json and the table `ttslab run` / `ttslab summary` print, from records only.

Accuracies use ttslab's one estimator (see `ttslab.analysis.curves`): Best-of-N and DVTS at budget N are
the exact expectation, per problem, over all size-N subsets of that problem's largest-N samples
(subtrees for DVTS); pass@N is the closed form 1 - C(K-c, N)/C(K, N); beam search and CoT are read from
their records. At N = 1 every Best-of-N rule equals pass@1. Each row also says how many problems its
numbers average over and gives a 95% bootstrap interval over problems (majority rule; summary.json holds
one interval per cell): with a handful of problems, one problem moves a number by 100/problems points.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ttslab.errors import InputError
from ttslab.records import summary_problem
from ttslab.results import SUMMARY, read_records, record_key
from ttslab.search.strategies import method_names
from ttslab.writes import read_regular, write_atomic

CI_COLUMN = "majority 95% CI"


def _cells(records: list[dict[str, Any]], n_boot: int):
    """Tidy accuracy table (curve_table) for the (method, budget) pairs that have records."""
    import pandas as pd

    from ttslab.analysis import curves

    parts = []
    for method in sorted({r["method"] for r in records}):
        recs = [r for r in records if r["method"] == method]
        budgets = sorted({int(r["budget"]) for r in recs})
        wide = curves.per_problem_accuracy(recs, budgets=budgets)
        parts.append(curves.curve_table(wide, n_boot=n_boot))
    return pd.concat(parts, ignore_index=True)


def _checked(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (problem, method, budget, PRM, seed) once (the first wins); a record the table cannot read is an
    InputError naming it, not a KeyError deep in pandas."""
    seen: set[tuple] = set()
    out = []
    for r in records:
        try:
            key = record_key(r)
        except (KeyError, TypeError, ValueError):
            raise InputError(f"record {str(r)[:80]!r}: not a ttslab record (needs problem_id, method, budget)") from None
        problem = summary_problem(r)
        if problem:
            raise InputError(f"record of problem {r.get('problem_id')!r}, {r.get('method')} N={r.get('budget')}: "
                             f"{problem}; the results table cannot count it")
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def summary_table(records: list[dict[str, Any]], n_boot: int = 1000, with_intervals: bool = False):
    """Accuracy (%) per method x budget for every selection rule, pass@N, problem count, a 95% interval,
    tokens per problem. with_intervals: also return {(method, N): {rule: [low, high]}} for every cell."""
    import numpy as np
    import pandas as pd

    from ttslab.analysis.curves import PASS_AT_K

    if not records:
        return (pd.DataFrame(), {}) if with_intervals else pd.DataFrame()
    records = _checked(records)
    cells = _cells(records, n_boot)
    oracle = pd.DataFrame(
        [(r["method"], int(r["budget"]), str(r["problem_id"]), 100.0 * bool(r["selections"]["oracle"]["correct"]))
         for r in records], columns=["method", "N", "problem", "pass@N"],
    ).groupby(["method", "N", "problem"])["pass@N"].mean().groupby(["method", "N"]).mean()
    usage = pd.DataFrame(
        [(r["method"], int(r["budget"]), r["usage"]["policy"]["completion_tokens"],
          r["usage"]["prm"]["prompt_tokens"] - r["usage"]["prm"]["cached_tokens"]) for r in records],
        columns=["method", "N", "tokens/problem", "prm tokens/problem"],
    ).groupby(["method", "N"]).mean()
    rows, intervals = [], {}
    for (method, n), g in cells.groupby(["method", "budget"], sort=False):
        acc = {r.rule: r.accuracy for r in g.itertuples() if r.rule != PASS_AT_K}
        pass_n = g.loc[g["rule"] == PASS_AT_K, "accuracy"]
        maj = g[g["rule"] == "majority"].iloc[0] if (g["rule"] == "majority").any() else None
        rows.append({
            "method": method, "N": int(n), "problems": int(g["n_problems"].max()), **acc,
            "pass@N": float(pass_n.iloc[0]) if len(pass_n) else float(oracle[(method, int(n))]),
            CI_COLUMN: "-" if maj is None or np.isnan(maj.ci_low) else f"[{maj.ci_low:.0f}, {maj.ci_high:.0f}]",
            **usage.loc[(method, int(n))].to_dict(),
        })
        intervals[(method, int(n))] = {
            r.rule: [round(float(r.ci_low), 1), round(float(r.ci_high), 1)] for r in g.itertuples()
        }
    df = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(method_names())}
    df = df.sort_values(["method", "N"], key=lambda s: s.map(lambda m: order.get(m, len(order))) if s.name == "method" else s)
    rules = [c for c in df.columns if c not in ("method", "N", "problems", "pass@N", CI_COLUMN, "tokens/problem",
                                                 "prm tokens/problem")]
    from ttslab.search.selection import RULES

    rules = [r for r in RULES if r in rules] + [r for r in rules if r not in RULES]
    cols = ["method", "N", "problems"] + rules + ["pass@N", CI_COLUMN, "tokens/problem", "prm tokens/problem"]
    table = df[cols].round(1).reset_index(drop=True)
    return (table, intervals) if with_intervals else table


def write_summary(run_dir: Path, timings: dict[str, float] | None = None,
                  provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json from records.jsonl, plus this invocation's wall times per method and its provenance
    (ttslab.provenance.collect: version and commit, packages, engines and servers, machine)."""
    records = read_records(run_dir)
    table, intervals = summary_table(records, with_intervals=True)
    summary = {"run_dir": str(run_dir), "records": len(records),
               "estimator": "Best-of-N/DVTS at N: exact expectation over all size-N subsets of each problem's "
                            "samples (ttslab.analysis.curves); intervals: 95% percentile bootstrap over problems",
               "table": json.loads(table.to_json(orient="records")) if len(table) else [],
               "ci95": [{"method": m, "N": n, **cis} for (m, n), cis in intervals.items()],
               "wall_time_s": {k: round(v, 1) for k, v in (timings or {}).items()},
               "provenance": provenance}
    write_atomic(Path(run_dir) / SUMMARY, json.dumps(summary, indent=2))
    return summary


def read_summary(run_dir: Path) -> dict[str, Any]:
    """A run's summary.json ({} when there is none); damaged or not an object: an InputError naming it."""
    path = Path(run_dir) / SUMMARY
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        data = json.loads(read_regular(path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not the JSON ttslab wrote ({e}); delete it: `ttslab merge` or a rerun "
                         "writes it again from records.jsonl") from None
    if not isinstance(data, dict) or not isinstance(data.get("wall_time_s", {}), dict):
        raise InputError(f"{path}: not the summary ttslab writes (an object with wall_time_s); delete it: a "
                         "rerun writes it again from records.jsonl")
    return data


def format_summary(run_dir: Path) -> str:
    table = summary_table(read_records(run_dir))
    walls = read_summary(run_dir).get("wall_time_s", {})
    lines = ["Accuracy (%) by method and budget N; one column per selection rule (scoring_voting).",
             ("Best-of-N/DVTS: exact expectation over all size-N subsets of each problem's samples. "
              "'problems': how many problems each number averages over; "
              f"'{CI_COLUMN}': 95% bootstrap interval over problems."),
             table.to_string(index=False, na_rep="-") if len(table) else "(no records)"]
    if walls:
        lines.append("wall time this invocation: " + ", ".join(
            f"{k} {v:.0f} s" if isinstance(v, (int, float)) else f"{k} {v!r}" for k, v in walls.items()))
    lines.append(f"run directory: {run_dir}")
    return "\n".join(lines)
