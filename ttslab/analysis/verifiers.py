"""What the verifier contributes to Best-of-N (notebook 08; the study's Figure 6 at CPU scale).

Three pieces, each from stored data only:

1. **Every CPU verifier on the same candidates.** The shipped run's Best-of-N samples (16 per problem)
   carry the run's own verifier's step scores; `benchmarks/verifier_rescore.py` re-scores the same
   candidates with the other CPU verifiers into `<run_dir>/rescored/<config>.jsonl`. `verifier_records`
   swaps a verifier's scores into copies of the records, so the selection rules and the estimator of
   `ttslab.analysis.curves` run unchanged, and `verifier_table` reports, per verifier, its within-problem
   AUC and the accuracy of PRM-Max / PRM-Vote next to majority, with paired differences over problems
   (`ttslab.analysis.compare`). The scoring is fixed before the data: PRM-Last (`SCORING`), the score the
   search itself ranks by (DESIGN: "Inside search, candidates are ranked by ... PRM-Last").
2. **A simulation** (`simulate`), labelled as such wherever it is shown: synthetic verifiers that know the
   gold label and add noise, calibrated to a target within-problem AUC (binormal: score = d * correct +
   N(0, 1) with d = sqrt(2) * Phi^-1(AUC)), applied to the same stored candidates; the measured AUC of
   each draw is what is plotted, so real and synthetic verifiers share one x-axis.
3. **The study's numbers** (Figure 6's fit, Table 1, §4.4's length bias), from
   `ttslab.analysis.reference`, labelled as the study's.

Problems whose 16 candidates are all right or all wrong carry no (correct, wrong) pair, and on them every
rule gives the same answer at every budget whatever the scores; a verifier that was re-scored only on the
problems with both (`--mixed-only`) is given a constant score elsewhere (`NEUTRAL`), which changes nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ttslab.analysis import compare, curves, reference
from ttslab.results import read_records

SCORING = "prm_last"  # fixed before the data: the search's own ranking score
RULES = ("majority", f"{SCORING}_max", f"{SCORING}_vote")
BUDGETS = (4, 16)
RESCORED = "rescored"
NEUTRAL = 0.5  # the score of every step of a problem a verifier did not need to read (see the docstring)
RULE_LABELS = {"majority": "Majority", f"{SCORING}_max": "PRM-Last-Max", f"{SCORING}_vote": "PRM-Last-Vote",
               curves.PASS_AT_K: "Pass@N"}
SIMULATION = "SIMULATION (synthetic verifiers: gold labels + calibrated noise)"


# --------------------------------------------------------------------------- stored candidates and scores


def best_of_n_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The largest Best-of-N record of each problem (the 16 samples every smaller budget is drawn from)."""
    top: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["method"] == "best_of_n" and int(r["budget"]) > int(top.get(str(r["problem_id"]), {}).get("budget", 0)):
            top[str(r["problem_id"])] = r
    return [top[p] for p in sorted(top)]


def mixed_problems(records: Sequence[dict[str, Any]]) -> list[str]:
    """Problems whose candidates are some right, some wrong: the only ones a verifier can change."""
    return [str(r["problem_id"]) for r in records
            if 0 < sum(bool(c["correct"]) for c in r["candidates"]) < len(r["candidates"])]


def read_rescored(run_dir: str | Path) -> dict[str, dict[str, list[list[float]]]]:
    """{verifier (its PRM name): {problem id: step scores per candidate}} from `<run_dir>/rescored/*.jsonl`."""
    out: dict[str, dict[str, list[list[float]]]] = {}
    folder = Path(run_dir) / RESCORED
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            try:
                row = json.loads(line)
                out.setdefault(str(row.get("prm") or path.stem), {})[str(row["problem_id"])] = row["step_scores"]
            except (json.JSONDecodeError, KeyError) as e:
                raise ValueError(f"{path}:{n}: not a rescored line ({e}); expected problem_id and step_scores") from None
    return out


def stored_scores(records: Sequence[dict[str, Any]]) -> dict[str, list[list[float]]]:
    """The run's own verifier's step scores, in the shape of `read_rescored`'s values."""
    return {str(r["problem_id"]): [list(c.get("step_scores") or []) for c in r["candidates"]] for r in records}


def verifier_records(records: Sequence[dict[str, Any]], scores: Mapping[str, list[list[float]]],
                     name: str) -> list[dict[str, Any]]:
    """Copies of `records` with `name`'s step scores (problems it did not read: `NEUTRAL` per step)."""
    out = []
    for r in records:
        rec = copy.deepcopy(r)
        rec["prm"] = name
        given = scores.get(str(r["problem_id"]))
        if given is not None and len(given) != len(rec["candidates"]):
            raise ValueError(f"verifier {name}, {r['problem_id']}: {len(given)} scored candidates; "
                             f"the record has {len(rec['candidates'])}")
        for i, c in enumerate(rec["candidates"]):
            n_steps = max(1, len(c.get("steps") or []))
            c["step_scores"] = [float(v) for v in given[i]] if given is not None else [NEUTRAL] * n_steps
        out.append(rec)
    return out


# --------------------------------------------------------------------------- within-problem AUC


def solution_scores(records: Sequence[dict[str, Any]], scoring: str = SCORING) -> np.ndarray:
    """One score per candidate (records' order, candidates' order) by `scoring` of its step scores."""
    from ttslab.search.selection import aggregate

    return np.array([aggregate(c.get("step_scores"), scoring) for r in records for c in r["candidates"]])


def within_problem_auc(problem_ids: Sequence[str], correct: np.ndarray, scores: np.ndarray,
                       n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """AUC over every (correct, wrong) pair of candidates of the same problem (a tie counts half), pooled
    over problems, with a 95% percentile-bootstrap interval over the problems that hold a pair."""
    problem_ids = np.asarray(problem_ids)
    correct, scores = np.asarray(correct, dtype=bool), np.asarray(scores, dtype=float)
    wins, pairs = [], []
    for pid in dict.fromkeys(problem_ids.tolist()):
        m = problem_ids == pid
        good, bad = scores[m & correct], scores[m & ~correct]
        if len(good) and len(bad):
            diff = good[:, None] - bad[None, :]
            wins.append(float((diff > 0).sum() + 0.5 * (diff == 0).sum()))
            pairs.append(diff.size)
    if not wins:
        return {"auc": np.nan, "auc_low": np.nan, "auc_high": np.nan, "problems_with_pairs": 0}
    w, n = np.array(wins), np.array(pairs, dtype=float)
    draw = np.random.default_rng(seed).integers(0, len(w), size=(n_boot, len(w)))
    boot = w[draw].sum(axis=1) / n[draw].sum(axis=1)
    return {"auc": float(w.sum() / n.sum()), "auc_low": float(np.percentile(boot, 2.5)),
            "auc_high": float(np.percentile(boot, 97.5)), "problems_with_pairs": len(w)}


def records_auc(records: Sequence[dict[str, Any]], scoring: str = SCORING, **kw) -> dict[str, float]:
    pids = [str(r["problem_id"]) for r in records for _ in r["candidates"]]
    correct = np.array([bool(c["correct"]) for r in records for c in r["candidates"]])
    return within_problem_auc(pids, correct, solution_scores(records, scoring), **kw)


# --------------------------------------------------------------------------- accuracy per verifier


def rule_columns(records: Sequence[dict[str, Any]], budgets: Sequence[int] = BUDGETS) -> dict[tuple[str, int], pd.Series]:
    """{(rule, N): per-problem expected correctness} of Best-of-N under this verifier's scores, plus
    ("pass@k", N), by the package's estimator (ttslab.analysis.curves)."""
    wide = curves.per_problem_accuracy(records, budgets=list(budgets))
    out = {}
    for col in wide.columns:
        if col[2] == "best_of_n" and col[3] in (*RULES, curves.PASS_AT_K) and col[4] in budgets:
            out[(col[3], int(col[4]))] = wide[col]
    return out


def verifier_table(records: Sequence[dict[str, Any]], verifiers: Mapping[str, Mapping[str, list[list[float]]]],
                   budgets: Sequence[int] = BUDGETS) -> pd.DataFrame:
    """One row per (verifier, N, rule): within-problem AUC of the verifier, accuracy with a Wilson interval
    (`compare.accuracy_interval`), and the paired difference to majority over the same problems."""
    rows = []
    for name, scores in verifiers.items():
        recs = verifier_records(records, scores, name)
        auc = records_auc(recs)
        cols = rule_columns(recs, budgets)
        for n in budgets:
            for rule in (*RULES, curves.PASS_AT_K):
                acc, low, high = compare.accuracy_interval(cols[(rule, n)])
                row = {"verifier": name, "budget": n, "rule": rule, "accuracy": acc, "ci_low": low, "ci_high": high,
                       "problems": int(cols[(rule, n)].notna().sum()), "read": len(scores), **auc}
                if rule != "majority":
                    d = compare.paired_difference(cols[(rule, n)], cols[("majority", n)], RULE_LABELS[rule], "Majority")
                    row.update(diff_vs_majority=d.diff, diff_low=d.low, diff_high=d.high, p_value=d.p_value, verdict=d.verdict())
                rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the simulation


def separation_for_auc(auc: float) -> float:
    """d with P(d + e1 > e2) = auc for e1, e2 ~ N(0, 1) independent: the binormal model's AUC = Phi(d / sqrt 2)."""
    if not 0.0 < auc < 1.0:
        raise ValueError(f"target AUC {auc}; expected strictly between 0 and 1")
    return float(np.sqrt(2.0) * stats.norm.ppf(auc))


def synthetic_scores(correct: np.ndarray, auc: float, rng: np.random.Generator) -> np.ndarray:
    """Scores in (0, 1) of a synthetic verifier: the gold label shifted by d, plus unit Gaussian noise,
    through a logistic (so PRM-Vote sums positive scores as it does a PRM's)."""
    d = separation_for_auc(auc)
    z = d * np.asarray(correct, dtype=float) - d / 2 + rng.standard_normal(np.shape(correct))
    return 1.0 / (1.0 + np.exp(-z))


def simulate(records: Sequence[dict[str, Any]], aucs: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.97),
             draws: int = 8, budgets: Sequence[int] = BUDGETS, seed: int = 0) -> pd.DataFrame:
    """SIMULATION. For each target AUC and draw: synthetic scores on the stored candidates (one score per
    candidate, so PRM-Last/Min/Avg coincide), the measured within-problem AUC, and the expected accuracy of
    majority / PRM-Max / PRM-Vote / pass@N at each budget (the exact expectation over every size-N subset
    of each problem's samples, as `curves` computes it). Long frame: target_auc, draw, auc, budget, rule,
    accuracy (percent)."""
    arrays = curves.candidate_arrays(list(records))
    n_units = int(arrays.units.max())
    if (arrays.units != n_units).any():
        raise ValueError("simulate: every record needs the same number of candidates")
    rows_idx = np.arange(len(arrays.problem_ids))
    pids = np.repeat(arrays.problem_ids, n_units)
    subsets = {n: curves.unit_subsets(n_units, n, curves.EXACT_CAP, 200, np.random.default_rng(seed))[0]
               for n in budgets}
    n_correct = arrays.correct.sum(axis=1)
    passes = {n: float(curves.pass_at_k(n_units, n_correct, n).mean() * 100) for n in budgets}
    rng = np.random.default_rng(seed)
    out = []
    for target in aucs:
        for draw in range(draws):
            s = synthetic_scores(arrays.correct, target, rng)
            measured = within_problem_auc(pids, arrays.correct.ravel(), s.ravel(), n_boot=1)["auc"]
            arr = copy.copy(arrays)
            arr.scores = {**arrays.scores, SCORING: s}
            for n in budgets:
                acc = curves.expected_correct(arr, rows_idx, subsets[n], RULES)
                for rule in RULES:
                    out.append((target, draw, measured, n, rule, float(acc[rule].mean() * 100)))
                out.append((target, draw, measured, n, curves.PASS_AT_K, passes[n]))
    return pd.DataFrame(out, columns=["target_auc", "draw", "auc", "budget", "rule", "accuracy"])


def simulation_curve(sim: pd.DataFrame) -> pd.DataFrame:
    """Mean (and spread) over draws of the simulation, per target AUC, budget and rule."""
    g = sim.groupby(["target_auc", "budget", "rule"])
    return g.agg(auc=("auc", "mean"), accuracy=("accuracy", "mean"), acc_min=("accuracy", "min"),
                 acc_max=("accuracy", "max")).reset_index()


# --------------------------------------------------------------------------- the study's numbers


def study_figure6_fit(x: np.ndarray | None = None) -> pd.DataFrame:
    """The study's Figure 6 fit Y = a ln(X) + b (X: the PRM's ProcessBench score, Y: TTS accuracy on MATH,
    both in percent), as the reference data give it, over X in [10, 80]; `note` says where it comes from."""
    ref = reference.load("figure6_fit").set_index("quantity")
    a, b = float(ref.loc["slope", "value"]), float(ref.loc["intercept", "value"])
    x = np.linspace(10, 80, 50) if x is None else np.asarray(x, dtype=float)
    note = f"{ref.loc['slope', 'source']}; {ref.loc['slope', 'flag']}"
    return pd.DataFrame({"processbench": x, "tts_accuracy": a * np.log(x) + b, "slope": a, "intercept": b,
                         "note": note})


def study_length_bias() -> pd.DataFrame:
    """The study's Table 1 (token statistics of the two RLHFlow PRMs' training data) with the Deepseek /
    Mistral ratio per statistic: §4.4 reads PRM-Deepseek's longer training responses as the cause of its
    "nearly 2x" inference tokens at equal accuracy (the study's numbers; ttslab measured none of this)."""
    t = reference.table1().pivot(index="statistic", columns="dataset", values="value")
    t["deepseek_over_mistral"] = t["Deepseek-PRM-Data"] / t["Mistral-PRM-Data"]
    return t.reset_index()


# --------------------------------------------------------------------------- this run's length bias


def length_correlation(records: Sequence[dict[str, Any]], scoring: str = SCORING, n_boot: int = 2000,
                       seed: int = 0) -> dict[str, float]:
    """Mean over problems of the within-problem Spearman correlation between a candidate's score and its
    length (generated tokens), with a 95% bootstrap interval over problems: a verifier that favours long
    (or short) solutions, the CPU-scale analogue of §4.4's length bias. Problems whose scores or lengths
    are all equal carry no correlation and are left out."""
    from ttslab.search.selection import aggregate

    rhos = []
    for r in records:
        score = [aggregate(c.get("step_scores"), scoring) for c in r["candidates"]]
        length = [(c.get("usage") or {}).get("completion_tokens", len(c.get("text", ""))) for c in r["candidates"]]
        if np.ptp(score) > 0 and np.ptp(length) > 0:
            rhos.append(stats.spearmanr(score, length).statistic)
    if not rhos:
        return {"rho": np.nan, "rho_low": np.nan, "rho_high": np.nan, "problems": 0}
    v = np.array(rhos)
    boot = v[np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    return {"rho": float(v.mean()), "rho_low": float(np.percentile(boot, 2.5)),
            "rho_high": float(np.percentile(boot, 97.5)), "problems": len(v)}


def run_verifiers(run_dir: str | Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[list[float]]]]]:
    """(the run's largest Best-of-N records, {verifier: scores}): the run's own verifier (named by its PRM
    name as stored in the records) and every re-scored one beside the run that has read every problem with
    both outcomes (`incomplete_verifiers` names the others: a re-scoring still in progress)."""
    records = best_of_n_records(read_records(run_dir))
    if not records:
        raise ValueError(f"{run_dir}: no Best-of-N records")
    own = str(records[0].get("prm"))
    mixed = set(mixed_problems(records))
    done = {k: v for k, v in read_rescored(run_dir).items() if mixed <= set(v)}
    return records, {own: stored_scores(records), **done}


def incomplete_verifiers(run_dir: str | Path) -> dict[str, tuple[int, int]]:
    """{verifier: (problems with both outcomes read, of how many)} for re-scorings not finished yet: left out
    of every comparison (a constant score stands in only where it changes nothing, see the docstring)."""
    mixed = set(mixed_problems(best_of_n_records(read_records(run_dir))))
    return {k: (len(mixed & set(v)), len(mixed)) for k, v in read_rescored(run_dir).items() if not mixed <= set(v)}


# --------------------------------------------------------------------------- what a reader is told


def summary_lines(table: pd.DataFrame) -> list[str]:
    """One markdown sentence per (verifier, N): its AUC, and PRM-Last-Max / -Vote against majority as paired
    differences over the same problems (`compare.PairedDifference.verdict`)."""
    lines = []
    for (name, n), t in table.groupby(["verifier", "budget"], sort=False):
        first = t.iloc[0]
        said = "; ".join(t.loc[t["rule"] == rule, "verdict"].iloc[0] for rule in RULES[1:])
        lines.append(f"- **{name}**, N = {n} (within-problem AUC {first['auc']:.2f} [{first['auc_low']:.2f}, "
                     f"{first['auc_high']:.2f}] on {int(first['problems_with_pairs'])} problems with both outcomes): "
                     f"{said}.")
    return lines


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """verifier x (N, rule) accuracy '12.5 [5.9, 24.7]' strings, with the AUC: the notebook's one table."""
    t = table.assign(cell=[f"{a:.1f} [{lo:.1f}, {hi:.1f}]" for a, lo, hi in
                           zip(table["accuracy"], table["ci_low"], table["ci_high"])],
                     rule=table["rule"].map(RULE_LABELS))
    wide = t.pivot(index="verifier", columns=["budget", "rule"], values="cell")
    auc = table.drop_duplicates("verifier").set_index("verifier")
    wide.insert(0, ("", "AUC (PRM-Last)"), [f"{auc.loc[v, 'auc']:.2f} [{auc.loc[v, 'auc_low']:.2f}, "
                                            f"{auc.loc[v, 'auc_high']:.2f}]" for v in wide.index])
    return wide.loc[list(dict.fromkeys(table["verifier"]))]


def auc_needed(curve: pd.DataFrame, rule: str, budget: int, above: float) -> float:
    """SIMULATION: the measured AUC at which the mean simulated accuracy of `rule` first reaches `above`
    (linear interpolation between simulated points; NaN if it never does)."""
    s = curve[(curve["rule"] == rule) & (curve["budget"] == budget)].sort_values("auc")
    x, y = s["auc"].to_numpy(), s["accuracy"].to_numpy()
    hit = np.nonzero(y >= above)[0]
    if not len(hit):
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(x[0])
    return float(x[i - 1] + (above - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))


def length_table(records: Sequence[dict[str, Any]], verifiers: Mapping[str, Mapping[str, list[list[float]]]]
                 ) -> pd.DataFrame:
    """Per verifier: the within-problem correlation of its PRM-Last score with the candidate's length
    (`length_correlation`), on the problems it read."""
    rows = []
    for name, scores in verifiers.items():
        recs = [r for r in verifier_records(records, scores, name) if str(r["problem_id"]) in scores]
        rows.append({"verifier": name, **length_correlation(recs)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures



def short_name(verifier: str) -> str:
    """'cpu-judge-qwen2.5-coder-0.5b' -> 'judge' (the figures' labels; the tables keep the full names)."""
    return verifier.removeprefix("cpu-").split("-qwen", 1)[0]


def plot_verifiers(table: pd.DataFrame, title: str = ""):
    """Accuracy of PRM-Last-Max / -Vote per verifier at each budget (95% Wilson intervals), with majority and
    Pass@N (no verifier needed) as lines: one panel per budget, all verifiers on the same problems."""
    import matplotlib.pyplot as plt

    budgets = sorted(table["budget"].unique())
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.2 * len(budgets), 3.8), sharey=True, squeeze=False)
    names = list(dict.fromkeys(table["verifier"]))
    for ax, n in zip(axes[0], budgets):
        t = table[table["budget"] == n]
        for rule, style in ((curves.PASS_AT_K, ":"), ("majority", "--")):
            v = float(t.loc[t["rule"] == rule, "accuracy"].iloc[0])
            ax.axhline(v, color="grey", ls=style, lw=1.2, label=f"{RULE_LABELS[rule]} {v:.1f}%")
        for k, (rule, marker) in enumerate(((f"{SCORING}_max", "o"), (f"{SCORING}_vote", "s"))):
            r = t[t["rule"] == rule].set_index("verifier").loc[names]
            x = np.arange(len(names)) + (k - 0.5) * 0.22
            ax.errorbar(x, r["accuracy"], yerr=[r["accuracy"] - r["ci_low"], r["ci_high"] - r["accuracy"]],
                        fmt=marker, capsize=3, label=RULE_LABELS[rule])
        ax.set_xticks(range(len(names)), [f"{short_name(v)}\nAUC {a:.2f}" for v, a in
                                          t.drop_duplicates("verifier").set_index("verifier").loc[names, "auc"].items()])
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(f"Best-of-N, N = {n}")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title or "Every CPU verifier on the same problems and candidates (95% Wilson intervals)")
    fig.tight_layout()
    return fig


def plot_simulation(curve: pd.DataFrame, real: pd.DataFrame, budgets: Sequence[int] = BUDGETS):
    """SIMULATION panels (one per budget): PRM-Last-Max / -Vote of synthetic verifiers against their measured
    within-problem AUC (line: mean over draws, band: min-max), majority and Pass@N as lines, this run's real
    verifiers as labelled points; last panel: the study's Figure 6 fit on its own axes (the study's numbers)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(budgets) + 1, figsize=(4.6 * (len(budgets) + 1), 3.9))
    colors = {f"{SCORING}_max": "C0", f"{SCORING}_vote": "C1"}
    for ax, n in zip(axes, budgets):
        c = curve[curve["budget"] == n]
        for rule, color in colors.items():
            s = c[c["rule"] == rule].sort_values("auc")
            ax.plot(s["auc"], s["accuracy"], color=color, label=f"simulated {RULE_LABELS[rule]}")
            ax.fill_between(s["auc"], s["acc_min"], s["acc_max"], color=color, alpha=0.15)
            r = real[(real["budget"] == n) & (real["rule"] == rule)]
            ax.errorbar(r["auc"], r["accuracy"], xerr=[r["auc"] - r["auc_low"], r["auc_high"] - r["auc"]],
                        fmt="D", color=color, mec="k", capsize=2, ms=6, ls="none")
            for _, row in r.iterrows():
                ax.annotate(short_name(row["verifier"]), (row["auc"], row["accuracy"]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
        for rule, style in (("majority", "--"), (curves.PASS_AT_K, ":")):
            ax.axhline(float(c.loc[c["rule"] == rule, "accuracy"].iloc[0]), color="grey", ls=style, lw=1.2,
                       label=RULE_LABELS[rule])
        ax.set_xlabel("within-problem AUC (PRM-Last)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"SIMULATION + real verifiers (◆), N = {n}", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    fit = study_figure6_fit()
    ax = axes[-1]
    ax.plot(fit["processbench"], fit["tts_accuracy"], color="k")
    ax.set_xlabel("PRM's ProcessBench score (the study's x-axis)")
    ax.set_ylabel("TTS accuracy on MATH (%)")
    ax.set_title(f"the study's Figure 6 fit: Y = {fit['slope'].iloc[0]:.2f} ln X + {fit['intercept'].iloc[0]:.2f}",
                 fontsize=10)
    fig.suptitle("Verifier quality vs what selection gains: SIMULATION on this run's candidates (left), "
                 "the study's published fit (right)", fontsize=11)
    fig.tight_layout()
    return fig
