"""A run's own verifier, measured on the step scores the run stored: no model, any run directory.

`verifier_bench.py` re-reads stored candidates with every candidate scorer (model time); this script
reads what a run's PRM already wrote, exactly the scores its selection rules used. On the largest
Best-of-N record of each problem:
  * within-problem AUC of PRM-Last / PRM-Min / PRM-Avg solution scores over every (correct, wrong) pair
    of the same problem (problems whose candidates all agree carry no pair), 95% bootstrap over problems;
  * accuracy of majority, PRM-Max and PRM-Vote at N = 4 and N = 16 (the exact expectation over all
    size-N subsets, `ttslab.analysis.curves`), 95% bootstrap intervals over problems.

    python benchmarks/verifier_stored.py ttslab/data/study_run/math500_levels [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verifier_data import candidates, pooled_auc, solution_scores, within_problem_pairs

from ttslab.analysis.curves import curve_table, per_problem_accuracy
from ttslab.results import read_records

SCORINGS = ("prm_last", "prm_min", "prm_avg")
RULES = ("majority", *(f"{s}_{v}" for s in SCORINGS for v in ("max", "vote")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--out", help="also write the markdown here")
    args = ap.parse_args()
    cands = candidates(args.run_dir)
    best_of_n = [r for r in read_records(args.run_dir) if r["method"] == "best_of_n"]
    prms = {r["prm"] for r in best_of_n}
    pids = [c.problem_id for c in cands]
    correct = np.array([c.correct for c in cands])
    steps = [np.array(c.judge_scores or [np.nan], dtype=float) for c in cands]
    n_problems = len(dict.fromkeys(pids))
    lines = [f"Run `{Path(args.run_dir).name}`, verifier {', '.join(sorted(prms))}: {n_problems} problems, "
             f"{len(cands)} Best-of-N candidates; stored step scores. 95% bootstrap intervals over problems.", ""]
    pairs = {s: within_problem_pairs(pids, correct, solution_scores(steps, s)) for s in SCORINGS}
    lines += ["| within-problem AUC | " + " | ".join(SCORINGS) + " |", "|---|" + "---|" * len(SCORINGS),
              f"| {len(pairs['prm_last'])} problems with both correct and wrong candidates | "
              + " | ".join("{:.2f} [{:.2f}, {:.2f}]".format(*pooled_auc(pairs[s])) for s in SCORINGS) + " |", ""]
    records = [r for r in best_of_n if r["budget"] == 16]
    table = curve_table(per_problem_accuracy(records, budgets=[4, 16]), n_boot=2000)
    table = table[table["rule"].isin(RULES)].set_index(["budget", "rule"])
    lines += ["| accuracy (%) | " + " | ".join(RULES) + " |", "|---|" + "---|" * len(RULES)]
    for n in (4, 16):
        lines.append(f"| Best-of-N, N = {n} | " + " | ".join(
            "{:.1f} [{:.0f}, {:.0f}]".format(*table.loc[(n, r), ["accuracy", "ci_low", "ci_high"]]) for r in RULES) + " |")
    text = "\n".join(lines)
    print(text)
    print(json.dumps({"problems": sorted(dict.fromkeys(pids))}))
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
