"""A run's results table: summary.json and the table `ttslab run` / `ttslab summary` print, from records only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ttslab.results import SUMMARY, read_records

METHODS = ("cot", "best_of_n", "beam_search", "dvts")


def summary_table(records: list[dict[str, Any]]):
    """Accuracy (%) per method x budget for every selection rule, pass@N, tokens and wall time."""
    import pandas as pd

    rows = []
    for r in records:
        row = {"method": r["method"], "N": r["budget"], "problems": 1,
               "tokens/problem": r["usage"]["policy"]["completion_tokens"],
               "prm tokens/problem": r["usage"]["prm"]["prompt_tokens"] - r["usage"]["prm"]["cached_tokens"]}
        for rule, sel in r["selections"].items():
            row["pass@N" if rule == "oracle" else rule] = 100.0 * sel["correct"]
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(METHODS)}
    agg = {c: "mean" for c in df.columns if c not in ("method", "N", "problems")}
    agg["problems"] = "sum"
    table = df.groupby(["method", "N"]).agg(agg).reset_index()
    table = table.sort_values(["method", "N"], key=lambda s: s.map(order) if s.name == "method" else s)
    rules = [c for c in df.columns if c not in ("method", "N", "problems", "tokens/problem",
                                                  "prm tokens/problem", "pass@N")]
    cols = ["method", "N", "problems"] + rules + ["pass@N", "tokens/problem", "prm tokens/problem"]
    return table[cols].round(1).reset_index(drop=True)


def write_summary(run_dir: Path, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """summary.json from records.jsonl (plus this invocation's wall times per method)."""
    records = read_records(run_dir)
    table = summary_table(records)
    summary = {"run_dir": str(run_dir), "records": len(records),
               "table": json.loads(table.to_json(orient="records")) if len(table) else [],
               "wall_time_s": {k: round(v, 1) for k, v in (timings or {}).items()}}
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2))
    return summary


def format_summary(run_dir: Path) -> str:
    table = summary_table(read_records(run_dir))
    summary = json.loads((run_dir / SUMMARY).read_text()) if (run_dir / SUMMARY).exists() else {}
    walls = summary.get("wall_time_s", {})
    lines = ["Accuracy (%) by method and budget N; one column per selection rule (scoring_voting):",
             table.to_string(index=False, na_rep="-") if len(table) else "(no records)"]
    if walls:
        lines.append("wall time this invocation: " + ", ".join(f"{k} {v:.0f} s" for k, v in walls.items()))
    lines.append(f"run directory: {run_dir}")
    return "\n".join(lines)
