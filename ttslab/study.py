"""The CPU-scale study run shipped with ttslab, and the small helpers the reading-group notebooks use.

`study_run_dirs()` lists the shipped run directories (ttslab/data/study_run/<dataset>/, made by
`ttslab run experiment=cpu_study ...`, see ttslab/data/study_run/README.md). Every other function
takes records (or the tidy frames of ttslab.analysis) and returns a DataFrame or a matplotlib Figure,
so notebooks 02-06 hold no analysis logic of their own. Numbers from the study's paper come from
ttslab.analysis.reference; numbers from runs come from records. Every frame says which is which in
an `origin` column where both can appear.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ttslab.analysis import compare, curves, flops, methods, optimal, reference, rules
from ttslab.results import RECORDS, SUMMARY, Run

STUDY_RUN = Path(__file__).resolve().parent / "data" / "study_run"
STUDY = "study (Liu et al. 2025, published)"
OURS = "this package's CPU run"


# --------------------------------------------------------------------------- run directories, records


def study_run_dirs() -> list[Path]:
    """The shipped study run directories (ttslab/data/study_run/<dataset>/), sorted by name.

    Only finished runs count: `ttslab run` writes summary.json when a run ends.
    """
    if not STUDY_RUN.is_dir():
        return []
    return sorted(p for p in STUDY_RUN.iterdir() if (p / RECORDS).is_file() and (p / SUMMARY).is_file())


def resolve_run_dirs(run_dirs: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> list[Path]:
    """`None` -> the shipped study run; a path or a list of paths -> those run directories."""
    if run_dirs is None:
        dirs = study_run_dirs()
        if not dirs:
            raise FileNotFoundError(
                f"no shipped study run under {STUDY_RUN}; reinstall ttslab or pass run directories"
            )
        return dirs
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    dirs = [Path(d) for d in run_dirs]
    for d in dirs:
        if not (d / RECORDS).is_file():
            raise FileNotFoundError(f"{d}: no {RECORDS}; expected a run directory written by `ttslab run`")
    return dirs


def load_records(run_dirs=None) -> list[dict[str, Any]]:
    """All records of the given run directories (default: the shipped study run)."""
    return [r for d in resolve_run_dirs(run_dirs) for r in Run.load(d).records]


PREFIX_FIELDS = ("text", "key", "correct", "step_scores", "subtree")


def check_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Check a run directory's records for the invariants the analysis relies on; raise InputError if not.

    - no two records share a record key (problem, method, budget, prm, seed);
    - every Best-of-N record at N below the largest of its (problem, policy, prm, seed) holds the first
      N samples of that largest record (same text, answer key, correctness, step scores), in order:
      the runner writes Best-of-N at every budget from one set of samples, and a resume that
      regenerates only some budgets (in another batch shape, hence other samples) breaks this;
    - Best-of-N candidates carry their sample index 0..N-1 in `subtree`;
    - every DVTS record holds N/M independent subtrees (`dvts_subtree_problems`): M first steps each, no node
      under another subtree's node, one solution per subtree unless that subtree truly ended early (all M
      children of its last kept step dropped: cut at the token limit, blank, or repeating a sibling of its
      own subtree), and no step dropped as a repeat of another subtree's step (the per-parent duplicate
      lookup that made subtrees dedup each other's first steps at the shared root, issue #20).
    Returns counts of what was checked, with why each DVTS subtree without a solution ended early.
    """
    from ttslab.errors import InputError
    from ttslab.results import read_records, record_key

    path = Path(run_dir)
    records = read_records(path)
    if not records:
        raise InputError(f"{path}: no records in {RECORDS}")
    problems: list[str] = []
    seen: set[tuple] = set()
    groups: dict[tuple, list[dict[str, Any]]] = {}
    dvts, ended_early = 0, {}
    for n, r in enumerate(records, 1):
        k = record_key(r)
        if k in seen:
            problems.append(f"record {n}: duplicate record key {k}")
        seen.add(k)
        if r["method"] == "best_of_n":
            groups.setdefault((str(r["problem_id"]), r.get("policy"), r.get("prm"), r.get("seed", 0)), []).append(r)
            if [c.get("subtree") for c in r["candidates"]] != list(range(len(r["candidates"]))):
                problems.append(f"record {n} ({r['problem_id']}, best_of_n, N={r['budget']}): "
                                "candidates do not carry their sample index 0..N-1 in 'subtree'")
        elif r["method"] == "dvts":
            dvts += 1
            for why in dvts_subtree_problems(r, ended_early):
                problems.append(f"record {n} ({r['problem_id']}, dvts, N={r['budget']}): {why}")
    prefixes = 0
    for (pid, _, _, _), recs in sorted(groups.items(), key=lambda kv: kv[0][0]):
        top = max(recs, key=lambda r: int(r["budget"]))
        for r in recs:
            if r is top:
                continue
            n = len(r["candidates"])
            same = n <= len(top["candidates"]) and all(
                all(c.get(f) == t.get(f) for f in PREFIX_FIELDS)
                for c, t in zip(r["candidates"], top["candidates"][:n])
            )
            if not same:
                problems.append(f"{pid}: best_of_n N={r['budget']} is not the first {n} samples of its "
                                f"N={top['budget']} record")
            prefixes += 1
    if problems:
        raise InputError(f"{path / RECORDS}: {len(problems)} inconsistencies: " + "; ".join(problems[:10])
                         + ("; ..." if len(problems) > 10 else ""))
    return {"records": len(records), "best_of_n_groups": len(groups), "prefix_records_checked": prefixes,
            "dvts_records_checked": dvts, "dvts_subtrees_ended_early": dict(sorted(ended_early.items()))}


def dvts_subtree_problems(record: dict[str, Any], ended_early: dict[str, int] | None = None) -> list[str]:
    """What breaks "N/M independent subtrees" in one DVTS record's stored tree (empty: nothing).

    `ended_early` (if given) counts, by reason, the subtrees that truly ended early without a solution."""
    budget, m = int(record["budget"]), int(record.get("beam_width") or 1)
    tree = record.get("tree")
    if not tree:  # a record written without its tree (e.g. a hand-made fixture): only the solutions are checked
        solved = [int(c.get("subtree", 0)) for c in record["candidates"]]
        ok = len(set(solved)) == len(solved) and set(solved) <= set(range(budget // m))
        return [] if ok else [f"solutions from subtrees {solved}; expected at most one from each of 0..{budget // m - 1}"]
    nodes = {int(x["id"]): x for x in tree}
    out: list[str] = []
    subtrees = budget // m
    first = [x for x in tree if x["parent"] == 0]
    per_subtree = {s: sum(1 for x in first if x["subtree"] == s) for s in range(subtrees)}
    if sorted({x["subtree"] for x in first}) != list(range(subtrees)) or set(per_subtree.values()) != {m}:
        out.append(f"first steps per subtree {per_subtree}; expected {m} in each of {subtrees} subtrees")
    siblings: dict[tuple[int, int], set[str]] = {}
    cross: list[dict[str, Any]] = []  # dropped, though no earlier sibling of its own subtree wrote it
    for x in sorted(tree[1:], key=lambda x: int(x["id"])):
        parent = nodes.get(x["parent"])
        if parent is None or (parent["parent"] is not None and parent["subtree"] != x["subtree"]):
            out.append(f"node {x['id']} (subtree {x['subtree']}) is not under its own subtree")
            continue
        key, seen = x["text"].strip(), siblings.setdefault((x["parent"], x["subtree"]), set())
        if x["valid"]:
            seen.add(key)
        elif x["finish"] != "length" and key and key not in seen:
            cross.append(x)
    if cross:
        where = ", ".join(f"node {x['id']} of subtree {x['subtree']}" for x in cross)
        out.append(f"{where} dropped as a repeat of another subtree's step (duplicates looked up per parent, "
                   "not per (parent, subtree)): regenerate the record")
    solved = [int(c["subtree"]) for c in record["candidates"]]
    if len(set(solved)) != len(solved) or not set(solved) <= set(range(subtrees)):
        out.append(f"solutions from subtrees {solved}; expected at most one from each of 0..{subtrees - 1}")
    for s in sorted(set(range(subtrees)) - set(solved)):
        mine = [x for x in tree[1:] if x["subtree"] == s]
        if not mine:
            continue
        last = max(x["depth"] for x in mine)
        dropped = [x for x in mine if x["depth"] == last]
        if any(x in cross for x in dropped):
            continue  # ended by the cross-subtree lookup: reported above
        if any(x["valid"] for x in dropped):
            out.append(f"subtree {s} has no solution but did not end early (a valid step at its depth {last})")
        elif ended_early is not None:
            why = {"cut at the token limit" if x["finish"] == "length" else "blank" if not x["text"].strip()
                   else "repeating a sibling" for x in dropped}
            reason = f"all {m} children dropped: " + " or ".join(sorted(why))
            ended_early[reason] = ended_early.get(reason, 0) + 1
    return out


def records_by_dataset(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by their `source` (dataset name), sorted by name."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(str(r.get("source") or "dataset"), []).append(r)
    return dict(sorted(out.items()))


def _run_key(r: dict[str, Any]) -> tuple[str, str, int]:
    """(policy, method, N): one run of a strategy at a budget."""
    return str(r.get("policy")), r["method"], int(r["budget"])


def on_every_problem(records: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(records, set aside): what strategies can be compared on, the same problems for every run.

    The problems with Best-of-N records; the (policy, method, N) runs held by at least half of them; then only
    the problems that hold every one of those runs. Set aside (named in the returned list): budgets run on a
    subset of the problems (e.g. search at N = 16 on 10 of 40) and problems a run in progress has not finished.
    Without Best-of-N records everything is kept.
    """
    records = list(records)
    runs: dict[tuple[str, str, int], set[str]] = {}
    for r in records:
        runs.setdefault(_run_key(r), set()).add(str(r["problem_id"]))
    bon = set().union(*[p for (_, m, _), p in runs.items() if methods.is_sampling(m)])
    if not bon:
        return records, []
    common = {k for k, p in runs.items() if 2 * len(p & bon) >= len(bon)}
    problems = {q for q in bon if all(q in runs[k] for k in common)}
    several = len({k[0] for k in runs}) > 1
    aside = [f"{pol + ' ' if several else ''}{m} N={n} (on {len(p & bon)} of {len(bon)} problems)"
             for (pol, m, n), p in sorted(runs.items(), key=str) if (pol, m, n) not in common]
    unfinished = len(set().union(*runs.values())) - len(problems)
    if unfinished:
        aside.insert(0, f"{unfinished} problem{'s' * (unfinished > 1)} without every run yet")
    kept = [r for r in records if _run_key(r) in common and str(r["problem_id"]) in problems]
    return kept, aside


def on_the_subset(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of the problems that hold a run `on_every_problem` sets aside (e.g. the N = 16 search
    subset), compared among themselves; [] when nothing was set aside for being on a subset."""
    records = list(records)
    kept, _ = on_every_problem(records)
    runs = {_run_key(r) for r in kept}
    subset = {str(r["problem_id"]) for r in records if _run_key(r) not in runs}
    if not subset:
        return []
    sub, _ = on_every_problem([r for r in records if str(r["problem_id"]) in subset])
    # only problems still being run (no run of their own): nothing to compare there
    return sub if any(_run_key(r) not in runs for r in sub) else []


def run_overview(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per dataset: problems, levels, policy, PRM, methods and budgets, records."""
    rows = []
    for ds, recs in records_by_dataset(records).items():
        levels = pd.Series([r.get("level") for r in {str(r["problem_id"]): r for r in recs}.values()])
        budgets = {}
        for r in recs:
            budgets.setdefault(r["method"], set()).add(int(r["budget"]))
        rows.append(
            {
                "origin": OURS,
                "dataset": ds,
                "problems": recs and len({str(r["problem_id"]) for r in recs}),
                "problems per level": ", ".join(
                    f"L{int(k)}: {v}" for k, v in levels.dropna().value_counts().sort_index().items()
                ),
                "policy": ", ".join(sorted({str(r.get("policy")) for r in recs})),
                "prm": ", ".join(sorted({str(r.get("prm")) for r in recs if r.get("prm")})),
                "methods (budgets N)": "; ".join(
                    f"{m} {sorted(budgets[m])}" for m in methods.ordered(budgets)
                ),
                "records": len(recs),
            }
        )
    return pd.DataFrame(rows)


def _method_rank(method: str) -> int:
    return methods.ordered([method, *methods.method_names()]).index(method)


# --------------------------------------------------------------------------- curves and rules (nb 02)


def reported_curves(table: pd.DataFrame) -> pd.DataFrame:
    """Per (policy, prm, method): the curve of the rule the method reports (conf/method/<name>.yaml
    `report_rule`, fixed before any data; ttslab.analysis.rules). Input: a curve table."""
    return rules.reported(table)


def reported_column(per_problem: pd.DataFrame, method: str, budget: int, policy: str | None = None) -> pd.Series:
    """One strategy's per-problem expected correctness at budget N with its reported rule (the input of
    `compare.paired_difference`)."""
    cols = [c for c in per_problem.columns if c[2] == method and int(c[4]) == int(budget)
            and c[3] == rules.rule_of(method, c[1]) and (policy is None or c[0] == policy)]
    if len(cols) != 1:
        raise ValueError(f"reported_column: {len(cols)} columns for {method} N={budget}"
                         + ("" if policy else "; pass policy=..."))
    return per_problem[cols[0]].dropna()


def compare_strategies(per_problem: pd.DataFrame, pairs, policy: str | None = None, **kw) -> pd.DataFrame:
    """Paired differences over problems (`compare.paired_difference`) for each ((method, N), (method, N))
    pair, each strategy with its reported rule; one row per pair."""
    rows = []
    for (ma, ba), (mb, bb) in pairs:
        a, b = reported_column(per_problem, ma, ba, policy), reported_column(per_problem, mb, bb, policy)
        d = compare.paired_difference(a, b, f"{methods.label(ma)}@{ba}", f"{methods.label(mb)}@{bb}", **kw)
        rows.append({**d.as_dict(), "sentence": d.verdict()})
    return pd.DataFrame(rows)


def rules_table(table: pd.DataFrame) -> pd.DataFrame:
    """Table 2 style: accuracy (%) of every selection rule (rows) per method at its largest budget (columns)."""
    t = table[(table["rule"] != curves.PASS_AT_K) & ~table["method"].map(methods.is_baseline)]
    top = t.groupby(["policy", "prm", "method"])["budget"].transform("max")
    t = t[t["budget"] == top]
    wide = t.pivot_table(index="rule", columns=["method", "budget"], values="accuracy", aggfunc="first")
    wide.columns = [f"{m} N={b}" for m, b in wide.columns]
    order = ["majority"] + [r for r in wide.index if r != "majority"]
    return wide.loc[[r for r in order if r in wide.index]].round(1)


def table2_study() -> pd.DataFrame:
    """The study's Table 2 (accuracy per voting rule, MATH-500) with rules as rows."""
    t = reference.table2()
    return t.pivot_table(index="rule", columns="prm", values="accuracy", aggfunc="first").round(1)


# --------------------------------------------------------------------------- difficulty (nb 03)


def level_vs_difficulty(records: Iterable[dict[str, Any]], bins: pd.Series) -> pd.DataFrame:
    """Crosstab of the dataset's own level (1-5) against the Pass@1 difficulty bin, in problems."""
    level = {str(r["problem_id"]): r.get("level") for r in records}
    lv = pd.Series({p: level.get(p) for p in bins.index}, name="level")
    return pd.crosstab(lv, bins.rename("difficulty"), dropna=False)


def winners_by_difficulty(per_problem: pd.DataFrame, bins: pd.Series, **kw) -> pd.DataFrame:
    """Which strategy leads where: per (difficulty, budget) with at least two TTS strategies, each one's
    accuracy with its reported rule, the leader, and the leader minus the runner-up paired over the bin's
    problems (`compare.paired_difference`). `winner` names the leader only where the comparison is decided
    (`PairedDifference.decided`: interval excludes 0 and sign-flip p < 5%), else "not told apart"."""
    rows = []
    tts = [c for c in per_problem.columns if not methods.is_baseline(c[2]) and c[3] == rules.rule_of(c[2], c[1])]
    for (policy, prm), _ in pd.Series(index=pd.MultiIndex.from_tuples([c[:2] for c in tts])).groupby(level=[0, 1]):
        for label in (bins.cat.categories if hasattr(bins, "cat") else sorted(bins.unique())):
            ids = [p for p in per_problem.index if bins.get(p) == label]
            if not ids:
                continue
            for budget in sorted({int(c[4]) for c in tts if c[:2] == (policy, prm)}):
                cols = {c[2]: per_problem.loc[ids, c].dropna() for c in tts
                        if c[:2] == (policy, prm) and int(c[4]) == budget and per_problem.loc[ids, c].notna().any()}
                if len(cols) < 2:
                    continue
                acc = {m: 100.0 * v.mean() for m, v in cols.items()}
                lead, second = sorted(cols, key=lambda m: (-acc[m], _method_rank(m)))[:2]
                d = compare.paired_difference(cols[lead], cols[second], methods.label(lead), methods.label(second), **kw)
                rows.append({"policy": policy, "prm": prm, "difficulty": label, "budget": budget, "problems": len(ids),
                             **{methods.label(m): round(acc[m], 1) for m in methods.ordered(cols)},
                             "leader": methods.label(lead) if acc[lead] > acc[second] else "tie",
                             "lead over runner-up [95% CI]": f"{d.diff:+.1f} [{d.low:+.1f}, {d.high:+.1f}]",
                             "winner": methods.label(lead) if d.decided else "not told apart"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- FLOPs (nb 04)


def inference_table(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per (dataset, method, N): mean policy and PRM tokens and inference FLOPs per problem, with and without
    prefix reuse, and how much reuse saves."""
    parts = []
    for ds, recs in records_by_dataset(records).items():
        per = flops.inference_flops(recs).fillna({"prm": ""})
        g = per.groupby(["method", "budget"], sort=False)
        t = g[[c for c in per.columns if c.endswith("_reuse")]].mean()
        t["problems"] = g.size()
        t = t.reset_index().assign(dataset=ds)
        parts.append(t)
    out = pd.concat(parts, ignore_index=True)
    out["reuse_saves_pct"] = 100.0 * (1 - out["total_flops_reuse"] / out["total_flops_no_reuse"])
    out = out.sort_values(["dataset", "method", "budget"], key=lambda s: s.map(_method_rank) if s.name == "method" else s)
    cols = ["dataset", "method", "budget", "problems", "policy_tokens_reuse", "policy_tokens_no_reuse",
            "prm_tokens_reuse", "prm_tokens_no_reuse", "policy_flops_reuse", "prm_flops_reuse",
            "total_flops_reuse", "total_flops_no_reuse", "reuse_saves_pct"]
    return out[cols].reset_index(drop=True)


def accuracy_vs_flops(records: Iterable[dict[str, Any]], reuse: bool = True) -> pd.DataFrame:
    """FLOPs-matched view: per (dataset, method, N) the accuracy with the method's reported rule (with CI) and the mean inference
    FLOPs per problem (policy + PRM; with or without prefix reuse)."""
    mode = "reuse" if reuse else "no_reuse"
    parts = []
    for ds, recs in records_by_dataset(records).items():
        table = reported_curves(curves.accuracy_curves(recs))  # CoT appears with its only rule, majority
        fl = flops.inference_flops(recs)
        # Best-of-N/DVTS points at N below the record's budget are subsamples of the largest record:
        # their cost is that record's cost per unit times N (the first N samples).
        per_budget = fl.groupby(["method", "budget"])[f"total_flops_{mode}"].mean()
        rows = []
        for _, r in table.iterrows():
            m, b = r["method"], int(r["budget"])
            if (m, b) in per_budget.index:
                f = per_budget[(m, b)]
            else:
                top = max(bb for mm, bb in per_budget.index if mm == m)
                f = per_budget[(m, top)] * b / top
            rows.append({**r.to_dict(), "flops_per_problem": f})
        parts.append(pd.DataFrame(rows).assign(dataset=ds))
    out = pd.concat(parts, ignore_index=True)
    return out[["dataset", "method", "rule", "budget", "accuracy", "ci_low", "ci_high", "n_problems",
                "flops_per_problem"]]


def small_vs_large_ours(
    records: Iterable[dict[str, Any]],
    method: str | None = None,
    budget: int | None = None,
    large: str = "Qwen2.5-72B-Inst.",
    small: str = "Qwen2.5-0.5B-Inst.",
    problems: int = 500,
) -> pd.DataFrame:
    """Table 4 for this package: the small policy with TTS (inference FLOPs measured in our run, scaled to
    `problems` problems) vs a large model with CoT (2 · params · our CoT tokens per problem, same scale).

    The small model's pre-training figure is `small`'s from flops.PRETRAINING (for the coder model of the
    CPU run this is the Qwen2.5-0.5B base figure: an approximation, said in the notebook).
    """
    recs = list(records)
    fl = flops.inference_flops(recs)
    if method is None:  # the sampling strategy (Best-of-N), read from the method registry
        method = next(iter(m for m in methods.ordered(fl["method"]) if methods.is_sampling(m)), "")
    tts = fl[fl["method"] == method]
    if tts.empty:
        raise ValueError(f"small_vs_large_ours: no {method} records")
    budget = int(tts["budget"].max()) if budget is None else budget
    tts_flops = float(tts[tts["budget"] == budget]["total_flops_reuse"].mean()) * problems
    cot_tokens = float(fl[fl["method"].map(methods.is_baseline)]["policy_tokens_reuse"].mean())
    large_flops = 2.0 * flops.PRETRAINING[large][0] * cot_tokens * problems
    out = flops.small_vs_large(small, tts_flops, large, large_flops)
    out["setting"] = [f"TTS: {method} N={budget} (measured)", "CoT (our CoT token count x its params)"]
    return out


# --------------------------------------------------------------------------- compute-optimal (nb 05)


def compute_optimal(per_problem: pd.DataFrame, bins: pd.Series | None = None, folds: int = 5, seed: int = 0):
    """`optimal.compute_optimal_curve` with the largest fold count (<= `folds`) for which every difficulty
    bin has training problems in every fold. Folds are not stratified by bin, so with few problems per
    bin this may need fewer folds; if no fold count works (a bin with a single problem), the
    configuration is chosen over all problems (bins=None). Returns (curve, note saying which)."""
    note = "configuration chosen per difficulty bin"
    for use_bins in ([bins, None] if bins is not None else [None]):
        for k in range(max(2, min(folds, len(per_problem))), 1, -1):
            try:
                curve = optimal.compute_optimal_curve(per_problem, use_bins, folds=k, seed=seed)
            except ValueError:
                continue
            if use_bins is None:
                note = ("one configuration for all problems" if bins is None else
                        "difficulty bins too small to cross-validate: one configuration for all problems")
            return curve.assign(folds=k), f"{note}; {k}-fold cross-validation"
        note = ""
    raise ValueError(f"compute_optimal: cannot cross-validate {len(per_problem)} problems")


def measured_table5(records: Iterable[dict[str, Any]], bins_by_dataset: dict[str, pd.Series] | None = None) -> pd.DataFrame:
    """Table 5 rows from runs, one per (dataset, policy, prm), on the runs every problem has
    (`on_every_problem`); see `table5_from_per_problem`."""
    parts = []
    for ds, recs in records_by_dataset(records).items():
        per_problem = curves.per_problem_accuracy(on_every_problem(recs)[0])
        parts.append(table5_from_per_problem(per_problem, (bins_by_dataset or {}).get(ds)).assign(dataset=ds))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return out[["origin", "dataset", *[c for c in out.columns if c not in ("origin", "dataset")]]] if len(out) else out


def table5_from_per_problem(per_problem: pd.DataFrame, bins: pd.Series | None = None) -> pd.DataFrame:
    """Table 5 columns from a per-problem table: CoT, majority (its best budget), and compute-optimal TTS
    three ways: in-sample (max over budgets of the curve chosen and scored on the same problems: the
    optimistic kind), cross-validated at the largest budget (fixed before looking), and cross-validated
    with the budget chosen inside the folds (`optimal.nested_cv_accuracy`). Performance Gain of each;
    Efficiency Gain from the in-sample and the cross-validated curves (log2 interpolation, see
    ttslab.analysis.optimal). The study does not state how its compute-optimal cells were chosen
    (fact sheet §5.1, §7)."""
    table = curves.curve_table(per_problem)
    curve, note = compute_optimal(per_problem, bins)
    k = int(curve["folds"].iloc[0])
    nested_bins = bins if note.startswith("configuration chosen per difficulty bin") else None
    nested = optimal.nested_cv_accuracy(per_problem, nested_bins, folds=k).set_index(["policy", "prm"])
    rows = []
    for (policy, prm), o in curve.groupby(["policy", "prm"]):
        cot = table[table["method"].map(methods.is_baseline) & (table["policy"] == policy)]
        maj = table[(table["policy"] == policy) & (table["prm"] == prm) & table["method"].map(methods.is_sampling)
                    & (table["rule"] == "majority")]
        if cot.empty or maj.empty:
            continue
        c = float(cot["accuracy"].iloc[0])
        o = o.set_index("budget").sort_index()
        row = optimal.table5_row(policy, c, maj.set_index("budget")["accuracy"], o["accuracy_in_sample"])
        top = int(o.index.max())
        cv = float(o.loc[top, "accuracy_cv"])
        nest = nested.loc[(policy, prm)]
        rows.append({
            "origin": OURS, "policy_model": policy, "prm": prm,
            "problems": len(per_problem), "cot": c, "majority": row["majority"],
            "compute_optimal_in_sample": row["compute_optimal_tts"],
            "cv_budget": top, "compute_optimal_cv": cv,
            "compute_optimal_cv_nested": float(nest["accuracy_cv_nested"]),
            "performance_gain_in_sample_pct": row["performance_gain_pct"] if c > 0 else np.nan,
            "performance_gain_cv_pct": optimal.performance_gain(c, cv) if c > 0 else np.nan,
            "efficiency_gain": row["efficiency_gain_printed"],
            "efficiency_gain_cv": str(optimal.efficiency_gain(maj.set_index("budget")["accuracy"], o["accuracy_cv"])),
            "note": note,
        })
    return pd.DataFrame(rows).round(1)


# --------------------------------------------------------------------------- adaptive compute (nb 07)


def adaptive_compute(records: Iterable[dict[str, Any]], probe: int = 4, **kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`ttslab.analysis.router.policy_table` on one dataset's records: accuracy vs compute for fixed
    strategies, the oracle-bin compute-optimal choice and the router (no gold answers), with 95% CIs.
    Returns (table, router_rows). Routes among the runs every problem has (`on_every_problem`)."""
    from ttslab.analysis import router

    return router.policy_table(on_every_problem(records)[0], probe=probe, **kw)


def router_result(records: Iterable[dict[str, Any]], probe: int = 4, **kw):
    """`ttslab.analysis.router.evaluate` on the runs every problem has: the policy table, the sweep, the
    reported router (lambda chosen inside the folds) and its paired differences with CoT and the most
    accurate fixed strategy at no more compute."""
    from ttslab.analysis import router

    return router.evaluate(on_every_problem(records)[0], probe=probe, **kw)


def adaptive_compute_unusable(records: Iterable[dict[str, Any]], probe: int = 4) -> str:
    """Why `adaptive_compute` cannot run on these records ("" if it can); see router.unusable."""
    from ttslab.analysis import router

    return router.unusable(on_every_problem(records)[0], probe)


def adaptive_compute_table(table: pd.DataFrame) -> pd.DataFrame:
    """The policy table formatted for reading: accuracy [95% CI], tokens and FLOPs per problem [95% CI]."""
    def ci(c, digits):
        return [f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if digits >= 0 else
                f"{v:.3g} [{lo:.3g}, {hi:.3g}]" for v, lo, hi in zip(table[c], table[f"{c}_low"], table[f"{c}_high"])]
    return pd.DataFrame({"kind": table["kind"], "policy": table["policy"], "problems": table["problems"],
                         "accuracy % [95% CI]": ci("accuracy", 1), "tokens/problem [95% CI]": ci("tokens", 0),
                         "FLOPs/problem [95% CI]": ci("flops", -1)})


def probe_signals_table(records: Iterable[dict[str, Any]], probe: int = 4, orders: int = 128) -> pd.DataFrame:
    """Per problem: the router's test-time signals of the probe (mean over sample orders), next to the
    gold-answer Pass@1 and difficulty bin the study's oracle recipe uses (shown for reading; the router
    never sees them)."""
    from ttslab.analysis import difficulty, router

    recs = list(records)
    data = router.router_data(recs, probe=probe, orders=orders)
    out = pd.DataFrame(data.features.mean(axis=1), index=data.problems, columns=list(router.SIGNALS))
    pass1 = difficulty.pass_at_1(recs)
    out["gold Pass@1 (oracle)"] = pass1.reindex(out.index)
    out["bin (oracle)"] = difficulty.difficulty_bins(pass1).reindex(out.index).astype(str)
    level = {str(r["problem_id"]): r.get("level") for r in recs}
    out.insert(0, "level", [level.get(p) for p in out.index])
    out.index.name = "problem_id"
    return out.round(3)


def adaptive_compute_summary(result) -> str:
    """What a `router_result` allows one to say: the reported router (lambda chosen inside the folds) with
    its interval, its paired differences with CoT and with the most accurate fixed strategy at no more
    compute, and the sweep's best point named for what it is (chosen on the problems it is scored on)."""
    from ttslab.analysis import router

    t = result.table
    rep_ = t[t["kind"] == router.REPORTED].iloc[0]
    sweep = t[t["kind"] == "router (no gold)"].sort_values("accuracy", ascending=False)
    lines = [(f"{int(rep_['problems'])} problems. The reported router ({rep_['policy']}): {rep_['accuracy']:.1f}% "
              f"[{rep_['accuracy_low']:.1f}, {rep_['accuracy_high']:.1f}] at {rep_['flops']:.3g} FLOPs/problem.")]
    lines += [f"Against {v['against']}: {v['sentence']}." for _, v in result.verdicts.iterrows()]
    if len(sweep):
        top = sweep.iloc[0]
        lines.append(f"The sweep's highest point ({top['policy']}: {top['accuracy']:.1f}%) is the optimistic maximum "
                     f"over {len(sweep)} lambda values, picked on the problems it is scored on: not a result.")
    return "\n".join(lines)


def router_choices(router_rows: pd.DataFrame, lam: float | None = None) -> pd.DataFrame:
    """What the router chose per problem (fitted without that problem): the lambda, the stump (signal,
    threshold, action below / at or above) and the action it took most often over sample orders.
    lam: one lambda of the sweep; None: every row (e.g. the reported router's, `router_result(...).nested`)."""
    r = router_rows if lam is None else router_rows[np.isclose(router_rows["lambda"], lam)]
    return r[["problem_id", "lambda", "signal", "threshold", "low", "high", "action", "action_share",
              "accuracy"]].round(3)


# --------------------------------------------------------------------------- small beats large (nb 06)


def ours_vs_study(
    records: Iterable[dict[str, Any]],
    study_policy: str = "Qwen2.5-0.5B-Inst.",
    bins_by_dataset: dict[str, pd.Series] | None = None,
) -> pd.DataFrame:
    """The study's Table 5 row for a small policy next to this package's run(s): CoT, majority,
    compute-optimal TTS (ours: in-sample and cross-validated, chosen per bin when bins are given)."""
    s = reference.table5().set_index("policy_model").loc[study_policy]
    rows = [{"origin": STUDY, "dataset": "MATH-500 (all 500)", "policy_model": study_policy,
             "prm": "not stated in Table 5", "problems": 500, "cot": s["cot"], "majority": s["majority"],
             "compute_optimal_tts": s["compute_optimal_tts"], "compute_optimal_cv": np.nan}]
    for _, r in measured_table5(records, bins_by_dataset).iterrows():
        rows.append({"origin": OURS, "dataset": r["dataset"], "policy_model": r["policy_model"], "prm": r["prm"],
                     "problems": r["problems"], "cot": r["cot"], "majority": r["majority"],
                     "compute_optimal_tts": r["compute_optimal_in_sample"], "compute_optimal_cv": r["compute_optimal_cv"]})
    return pd.DataFrame(rows)


def fmt(value: float) -> str:
    """Number format for notebook tables: 3 significant digits for FLOPs-sized numbers, else one decimal."""
    if np.isnan(value):
        return "NaN"
    return f"{value:.3g}" if abs(value) >= 1e5 else f"{value:.1f}"


# --------------------------------------------------------------------------- comparisons (nb 02, 03, 05, README)


def _groups(per_problem: pd.DataFrame) -> list[tuple[str, str]]:
    """(policy, prm) pairs of a per-problem table's TTS columns."""
    return sorted({(c[0], c[1]) for c in per_problem.columns if c[1] != curves.NO_PRM})


def _budgets(per_problem: pd.DataFrame, policy: str, method: str) -> list[int]:
    return sorted({int(c[4]) for c in per_problem.columns if c[0] == policy and c[2] == method})


def same_budget_comparisons(per_problem: pd.DataFrame, **kw) -> pd.DataFrame:
    """The comparisons a scaling-curve figure invites, each paired over problems with the reported rules:
    every search strategy against the sampling strategy (Best-of-N) at the same budget N, and every TTS
    strategy at its largest budget against the one-answer baseline (CoT). One row per pair with `sentence`."""
    rows = []
    for policy, _ in _groups(per_problem):
        present = methods.ordered({c[2] for c in per_problem.columns if c[0] == policy})
        sampler = next((m for m in present if methods.is_sampling(m)), None)
        base = next((m for m in present if methods.is_baseline(m)), None)
        pairs = []
        for m in (m for m in present if methods.is_search(m)):
            for b in _budgets(per_problem, policy, m):
                if sampler and b in _budgets(per_problem, policy, sampler):
                    pairs.append(((m, b), (sampler, b)))
        for m in (m for m in present if not methods.is_baseline(m)):
            if base:
                pairs.append(((m, max(_budgets(per_problem, policy, m))), (base, 1)))
        rows.append(compare_strategies(per_problem, pairs, policy=policy, **kw).assign(policy=policy))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def rules_vs_reported(per_problem: pd.DataFrame, **kw) -> pd.DataFrame:
    """Table 2 read honestly: at each TTS strategy's largest budget, every other selection rule minus the
    strategy's reported rule, paired over problems (all rules shown: nothing is chosen here)."""
    rows = []
    for policy, prm in _groups(per_problem):
        for m in methods.ordered({c[2] for c in per_problem.columns if c[:2] == (policy, prm)}):
            if methods.is_baseline(m):
                continue
            b = max(_budgets(per_problem, policy, m))
            mine = rules.rule_of(m, prm)
            ref = per_problem[(policy, prm, m, mine, b)]
            for rule in [c[3] for c in per_problem.columns if c[:3] == (policy, prm, m) and int(c[4]) == b]:
                if rule in (mine, curves.PASS_AT_K):
                    continue
                d = compare.paired_difference(per_problem[(policy, prm, m, rule, b)], ref, rule, mine, **kw)
                rows.append({"policy": policy, "prm": prm, "strategy": f"{methods.label(m)}@{b}",
                             "rule": rule, "reported rule": mine, **d.as_dict()})
    return pd.DataFrame(rows)


def compute_optimal_comparisons(per_problem: pd.DataFrame, bins: pd.Series | None = None, folds: int = 5,
                                seeds: Sequence[int] = tuple(range(20)), **kw) -> tuple[pd.DataFrame, dict]:
    """Compute-optimal TTS at the largest budget, cross-validated (`study.compute_optimal`'s fold count),
    paired over problems against majority voting at the same N and against CoT; and the spread of the
    cross-validated accuracy over `seeds` fold seeds (one seed's folds are one draw of many).
    Returns (rows with `sentence`, {(policy, prm): compare.SeedSpread})."""
    curve, note = compute_optimal(per_problem, bins, folds=folds)
    k = int(curve["folds"].iloc[0])
    use_bins = bins if note.startswith("configuration chosen per difficulty bin") else None
    _, held = optimal.cross_validated_scores(per_problem, use_bins, folds=k)
    rows, spread = [], {}
    for policy, prm in _groups(per_problem):
        top = max(int(c[2]) for c in held.columns if c[:2] == (policy, prm))
        cv = held[(policy, prm, top)]
        others = [(f"majority@{top}", per_problem.get((policy, prm, c[2], "majority", top)))
                  for c in per_problem.columns if c[:2] == (policy, prm) and methods.is_sampling(c[2])][:1]
        others += [("CoT", per_problem[c]) for c in per_problem.columns
                   if c[0] == policy and methods.is_baseline(c[2])][:1]
        for name, col in others:
            if col is None:
                continue
            d = compare.paired_difference(cv, col.dropna(), f"compute-optimal@{top} (cross-validated)", name, **kw)
            rows.append({"policy": policy, "prm": prm, **d.as_dict(), "sentence": d.verdict(), "note": note})

        def at_seed(s, policy=policy, prm=prm, top=top):
            try:  # another seed's folds may leave a small bin without training problems: that seed is skipped
                held_s = optimal.cross_validated_scores(per_problem, use_bins, folds=k, seed=s)[1]
            except ValueError:
                return float("nan")
            return 100.0 * held_s[(policy, prm, top)].mean()

        spread[(policy, prm)] = compare.over_seeds(at_seed, seeds)
    return pd.DataFrame(rows), spread


def headline_comparisons(records=None, seeds: Sequence[int] = tuple(range(20))) -> pd.DataFrame:
    """Every comparison the shipped run's README states, paired over problems through ttslab.analysis:
    per dataset, the same-budget and against-CoT comparisons (`same_budget_comparisons`) on the problems
    every run has, the same on the subset of budgets run on a subset, compute-optimal (cross-validated)
    against majority and CoT with its spread over fold seeds, and the reported router against CoT and the
    best fixed strategy at no more compute. One row per comparison: `dataset`, `on`, `sentence`."""
    from ttslab.analysis import difficulty

    parts = []
    for ds, everything in records_by_dataset(load_records() if records is None else records).items():
        recs, _ = on_every_problem(everything)
        per_problem = curves.per_problem_accuracy(recs)
        on = f"{per_problem.shape[0]} problems"
        parts.append(same_budget_comparisons(per_problem).assign(dataset=ds, on=on))
        sub = on_the_subset(everything)
        if sub:
            pp = curves.per_problem_accuracy(sub)
            parts.append(same_budget_comparisons(pp).assign(dataset=ds, on=f"the {pp.shape[0]}-problem subset"))
        bins = difficulty.difficulty_bins(difficulty.pass_at_1(recs))
        co, spread = compute_optimal_comparisons(per_problem, bins, seeds=seeds)
        for (policy, prm), sp in spread.items():
            co = pd.concat([co, pd.DataFrame([{"policy": policy, "prm": prm, "sentence":
                            f"compute-optimal at the largest budget, cross-validated: {sp}"}])], ignore_index=True)
        parts.append(co.assign(dataset=ds, on=on))
        if not adaptive_compute_unusable(everything):
            res = router_result(everything)
            parts.append(res.verdicts.assign(dataset=ds, on=on))
    out = pd.concat(parts, ignore_index=True)
    return out[["dataset", "on", "sentence", *[c for c in out.columns if c not in ("dataset", "on", "sentence")]]]
