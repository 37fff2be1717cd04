"""Figure functions, one per figure family of the study; each returns a matplotlib Figure.

Inputs are the tidy frames of ttslab.analysis (curves in percent with ci_low/ci_high) or of
ttslab.analysis.reference. Two palettes, each colour with one meaning everywhere (figures, notebooks,
paper_figures/): PALETTE for strategies and curve kinds, QUANTITY_PALETTE for quantities (FLOPs kinds,
problem counts). Figures made from runs carry a caption line naming the policy, the verifier, the
number of problems and the engine, read from the records (`run_caption`). Every figure is laid out with
matplotlib's constrained layout, legends outside the data area; `layout_problems` reports text that runs
off the canvas or overlaps other text (tests run it on every figure `ttslab figures` makes).
"""

from __future__ import annotations

import math
import sys
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # scripts and `ttslab figures` write files; notebooks keep their inline backend

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ttslab.analysis import reference
from ttslab.search.strategies import method_label, method_names, search_methods

_cb = sns.color_palette("colorblind", 10)
# Strategies and curve kinds: one colour each, shared by every figure and notebook.
PALETTE = {
    "best_of_n": _cb[0],
    "beam_search": _cb[1],
    "dvts": _cb[2],
    "majority": _cb[3],
    "compute_optimal": _cb[4],
    "router": _cb[6],
    "pass@k": _cb[7],
    "cot": (0.33, 0.33, 0.33),
}
# Quantities, in colours no strategy uses. Figure 1's bars are the same two things as two curve kinds
# (the study's compute-optimal TTS and CoT), so they keep those colours: one colour, one meaning.
QUANTITY_PALETTE = {
    "pre-training": _cb[5],
    "inference": _cb[8],
    "problems": "#5b7083",
    "TTS": PALETTE["compute_optimal"],
    "CoT": PALETTE["cot"],
}
LABELS = {
    **{name: method_label(name) for name in method_names()},  # the method registry names its methods
    "majority": "Majority",
    "pass@k": "Pass@k",
    "compute_optimal": "Compute-optimal",
    "router": "Router",
}
STRATEGIES = search_methods()  # from the method registry
MARKERS = {"best_of_n": "o", "beam_search": "s", "dvts": "^", "majority": "D", "pass@k": "v", "cot": "P"}
FLAG_FILL = "#fde2c8"  # flagged cells of the study's tables (the paper's own inconsistencies)
FEW_PROBLEMS = 2  # difficulty bins with at most this many problems are greyed, not read as results
BUDGET_LABEL = "Budget N\n(Best-of-N: N solutions; beam search, DVTS: N generations per step)"
# Column headers of the tables drawn as figures and styled in notebooks.
HEADERS = {
    "group": "Group",
    "policy_model": "Policy",
    "policy": "Policy",
    "prm": "Verifier",
    "setting": "Setting",
    "dataset": "Dataset",
    "problems": "Problems",
    "cot": "CoT",
    "majority": "Majority",
    "compute_optimal_tts": "Compute-optimal TTS",
    "compute_optimal_in_sample": "Compute-optimal (in-sample)",
    "compute_optimal_cv": "Compute-optimal (cross-validated)",
    "cv_budget": "Cross-validated at budget N",
    "compute_optimal_cv_nested": "Compute-optimal (cross-validated, budget chosen in the folds)",
    "efficiency_gain_cv": "Efficiency gain (cross-validated curve)",
    "performance_gain_printed": "Performance gain",
    "performance_gain_pct": "Performance gain (%)",
    "performance_gain_in_sample_pct": "Performance gain, in-sample (%)",
    "performance_gain_cv_pct": "Performance gain, cross-validated (%)",
    "efficiency_gain_printed": "Efficiency gain",
    "efficiency_gain": "Efficiency gain",
    "pretraining_flops": "Pre-training FLOPs",
    "pretraining_flops_recomputed": "6·N·D recomputed",
    "inference_flops": "Inference FLOPs",
    "total_flops": "Total FLOPs",
    "MATH-500": "MATH-500",
    "AIME24": "AIME24",
    "Avg.": "Avg.",
}
RULE_LABELS = {"majority": "Majority", "pass@k": "Pass@k"}


def rule_label(rule: str) -> str:
    """The study's name of a selection rule: 'prm_last_vote' -> 'PRM-Last-Vote'."""
    if rule in RULE_LABELS:
        return RULE_LABELS[rule]
    return "-".join(p.upper() if p == "prm" else p.capitalize() for p in rule.split("_"))


def _style() -> None:
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# --------------------------------------------------------------------------- captions from records


def run_caption(records: Iterable[dict[str, Any]], dataset: str | None = None) -> str:
    """One line naming what a figure from runs was made of, read from the records:
    policy, verifier (PRM), number of problems, dataset and engine."""
    recs = list(records)
    if not recs:
        raise ValueError("run_caption: no records")
    policies = sorted({str(r.get("policy")) for r in recs})
    prms = sorted({str(r["prm"]) for r in recs if r.get("prm")})
    datasets = sorted({str(r.get("source") or "dataset") for r in recs})
    engines = sorted({str(r.get("engine")) for r in recs if r.get("engine")})
    problems = len({str(r["problem_id"]) for r in recs})
    parts = [
        f"policy {', '.join(policies)}",
        f"verifier {', '.join(prms)}" if prms else "no verifier",
        f"{_plural(problems, 'problem')} of {dataset or ', '.join(datasets)}",
    ]
    if engines:
        parts.append(f"engine {', '.join(engines)}")
    return "Run: " + " · ".join(parts)


def _table_caption(table: pd.DataFrame) -> str:
    """A caption from a curve table when no records were given (policy, verifier, problems)."""
    prms = sorted({p for p in table["prm"] if p})
    n = int(table["n_problems"].max()) if len(table) else 0
    return (
        f"Run: policy {', '.join(sorted(set(table['policy'])))} · "
        + (f"verifier {', '.join(prms)}" if prms else "no verifier")
        + f" · {_plural(n, 'problem')}"
    )


def _titles(fig: plt.Figure, title: str, caption: str | None) -> None:
    """Title and caption lines above the panels, wrapped to the figure's width."""
    chars = max(40, int(fig.get_figwidth() * 72 / (10.5 * 0.56)))
    lines = [w for part in [title, *(caption.split("\n") if caption else [])] for w in textwrap.wrap(part, chars)]
    fig.suptitle("\n".join(lines), fontsize=10.5)


def _legend_outside(fig, axes, loc: str = "outside right center", **kw) -> None:
    handles: dict = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc=loc, frameon=False, fontsize=8.5, **kw)


def _wrap_label(text: str, width: int = 16) -> str:
    return textwrap.fill(text, width, break_on_hyphens=True, break_long_words=False)


# --------------------------------------------------------------------------- curves (Figures 4/5/7, 8/9)


def _errorbar(ax, x, d: pd.DataFrame, color, label: str, marker: str, ls: str = "-", alpha: float = 1.0):
    acc = d["accuracy"].to_numpy(dtype=float)
    lo = np.nan_to_num(acc - d["ci_low"].to_numpy(dtype=float))
    hi = np.nan_to_num(d["ci_high"].to_numpy(dtype=float) - acc)
    ax.errorbar(x, acc, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], ls=ls, marker=marker, ms=4.5, lw=1.4,
                elinewidth=1.0, capsize=2.5, color=color, label=label, alpha=alpha)


def _cot_line(ax, row: pd.Series, x_interval: float, alpha: float = 1.0) -> None:
    """CoT as a horizontal line, its 95% interval drawn once at the left edge (a band would cover the panel)."""
    ax.axhline(row["accuracy"], color=PALETTE["cot"], lw=1.1, ls="-.", alpha=alpha)
    _errorbar(ax, [x_interval], pd.DataFrame([row]), PALETTE["cot"], "CoT (one greedy answer; 95% CI at left)",
              MARKERS["cot"], "-.", alpha)


def _curve_series(d: pd.DataFrame, rule: str, rule_in_label: bool = True) -> list[tuple[str, str, Any, str, str, pd.DataFrame]]:
    """(kind, label, colour, marker, linestyle, rows) of every curve of one panel, in drawing order."""
    out = []
    for method in STRATEGIES:
        m = d[d["method"] == method]
        if m.empty:
            continue
        r = _best_rule(m) if rule == "best" else rule
        if rule == "best" and not rule_in_label:
            label = f"{LABELS[method]} (each panel's best rule)"
        else:
            label = f"{LABELS[method]} ({'best rule: ' if rule == 'best' else ''}{rule_label(r)})"
        out.append((method, label, PALETTE[method], MARKERS[method], "-", m[m["rule"] == r]))
    bon = d[d["method"] == "best_of_n"]
    for extra, ls in (("majority", "--"), ("pass@k", ":")):
        e = bon[bon["rule"] == extra]
        if not e.empty:
            label = LABELS[extra] + (" (Best-of-N samples)" if extra == "majority" else " (any sample right)")
            out.append((extra, label, PALETTE[extra], MARKERS[extra], ls, e))
    return [s for s in out if not s[5].empty]


def _curve_panel(ax, d: pd.DataFrame, cot: pd.DataFrame, rule: str, alpha: float = 1.0,
                 rule_in_label: bool = True) -> None:
    """Strategies (with `rule`, or each one's best rule), majority, pass@k and CoT on one axis.

    Every point has its 95% interval. Curves are dodged a little along x so no curve or interval hides
    another; a curve equal to one drawn before it says so in its label ("= Majority").
    """
    series = _curve_series(d, rule, rule_in_label)
    drawn: list[tuple[str, pd.Series]] = []
    k = len(series)
    for i, (kind, label, color, marker, ls, rows) in enumerate(series):
        rows = rows.sort_values("budget")
        values = rows.set_index("budget")["accuracy"]
        same = [lab for lab, v in drawn if v.index.equals(values.index) and np.allclose(v, values, atol=1e-9)]
        if same:
            label += " = " + " = ".join(s.split(" (")[0] for s in same)
        drawn.append((label, values))
        x = rows["budget"].to_numpy(dtype=float) * 2 ** (0.07 * (i - (k - 1) / 2))
        _errorbar(ax, x, rows, color, label, marker, ls, alpha)
    budgets = sorted({int(b) for b in d["budget"]})
    if not cot.empty:
        _cot_line(ax, cot.iloc[0], budgets[0] / 1.2 if budgets else 1.0, alpha)
    ax.set_xscale("log", base=2)
    if budgets:
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.set_xlim(budgets[0] / 1.35, budgets[-1] * 1.35)
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_ylim(-4, 104)
    ax.set_yticks(range(0, 101, 20))


def _best_rule(d: pd.DataFrame) -> str:
    rules = d[~d["rule"].isin(["pass@k"])]
    return rules.groupby("rule")["accuracy"].mean().idxmax()


def accuracy_vs_budget(
    curves: pd.DataFrame, rule: str = "best", title: str = "Accuracy vs budget", caption: str | None = None
) -> plt.Figure:
    """Figures 4/5/7: one panel per (policy, PRM); BoN / beam / DVTS, majority, pass@k, CoT, 95% CIs.

    rule: a selection rule name (e.g. 'prm_min_vote') or 'best' (each strategy's best rule per panel).
    caption: what the curves were made of (`run_caption(records)`); default: read from the table.
    """
    _style()
    tts = curves[curves["method"] != "cot"]
    panels = sorted({(p, q) for p, q in zip(tts["policy"], tts["prm"]) if q})
    if not panels:
        raise ValueError("accuracy_vs_budget: no PRM-scored curves in the table")
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols + 3.2, 3.4 * nrows + 1.2), squeeze=False,
                             sharey=True, layout="constrained")
    axes = list(axes.flat)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, (policy, prm) in zip(axes, panels):
        d = tts[(tts["policy"] == policy) & (tts["prm"] == prm)]
        cot = curves[(curves["method"] == "cot") & (curves["policy"] == policy)]
        _curve_panel(ax, d, cot, rule, rule_in_label=len(panels) == 1)
        n = int(d["n_problems"].max())
        ax.set_title(f"{policy}\nverifier: {prm}\n{_plural(n, 'problem')}", fontsize=8.5)
        ax.set_xlabel(BUDGET_LABEL, fontsize=8.5)
        ax.set_ylabel("Accuracy (%)")
    _legend_outside(fig, axes)
    _titles(fig, title, caption or _table_caption(curves))
    return fig


def accuracy_by_difficulty(
    curves: pd.DataFrame, rule: str = "best", title: str = "Accuracy by difficulty", caption: str | None = None
) -> plt.Figure:
    """Figures 8/9: rows = (policy, PRM), columns = difficulty bins (output of curves_by_difficulty).

    Panels share their y axis (0-100%). A bin with at most FEW_PROBLEMS problems is greyed and labelled
    as too small to compare strategies; an empty bin of the study's three says so.
    """
    _style()
    present = list(dict.fromkeys(curves["difficulty"].astype(str)))
    if set(present) & {"easy", "medium", "hard"}:
        bins = ["easy", "medium", "hard"]
    else:
        bins = sorted(present)
    tts = curves[curves["method"] != "cot"]
    rows = sorted({(p, q) for p, q in zip(tts["policy"], tts["prm"]) if q})
    fig, axes = plt.subplots(len(rows), len(bins), figsize=(3.9 * len(bins) + 3.2, 3.4 * len(rows) + 1.2),
                             squeeze=False, sharey=True, layout="constrained")
    for i, (policy, prm) in enumerate(rows):
        for j, b in enumerate(bins):
            ax = axes[i, j]
            d = tts[(tts["policy"] == policy) & (tts["prm"] == prm) & (tts["difficulty"].astype(str) == b)]
            cot = curves[(curves["method"] == "cot") & (curves["policy"] == policy)
                         & (curves["difficulty"].astype(str) == b)]
            n = int(d["n_problems"].max()) if len(d) else 0
            few = n <= FEW_PROBLEMS
            if len(d):
                _curve_panel(ax, d, cot, rule, alpha=0.35 if few else 1.0, rule_in_label=False)
            else:
                ax.set_ylim(-4, 104)
                ax.set_xticks([])
            if few:
                ax.set_facecolor("0.92")
                msg = "no problems in this bin" if n == 0 else f"only {_plural(n, 'problem')}:\ntoo few to compare"
                ax.text(0.5, 0.5, msg, transform=ax.transAxes, ha="center", va="center", fontsize=9,
                        color="0.25", bbox={"boxstyle": "round", "fc": "white", "ec": "0.6", "alpha": 0.9})
            head = f"{policy} · {prm}\n" if len(rows) > 1 else ""
            ax.set_title(f"{head}{b}: {_plural(n, 'problem')}", fontsize=9.5)
            ax.set_xlabel("Budget N", fontsize=8.5)
            if j == 0:
                ax.set_ylabel("Accuracy (%)")
    _legend_outside(fig, list(axes.flat))
    cap = caption or _table_caption(curves)
    _titles(fig, title, cap + f"\nBest-of-N: N solutions; beam search, DVTS: N generations per step. "
                               f"Grey panels: at most {FEW_PROBLEMS} problems.")
    return fig


def pass1_histogram(hist: pd.DataFrame, title: str = "Figure 3: Pass@1 distribution",
                    caption: str | None = None) -> plt.Figure:
    """Figure 3: share of problems per Pass@1 bin (from ttslab.analysis.difficulty.pass1_histogram)."""
    _style()
    fig, ax = plt.subplots(figsize=(6.4, 3.9), layout="constrained")
    x = np.arange(len(hist))
    ax.bar(x, hist["percent"], color=QUANTITY_PALETTE["problems"], edgecolor="black", lw=0.6)
    for i, (p, c) in enumerate(zip(hist["percent"], hist["count"])):
        ax.annotate(f"{p:.0f}% ({c})", (i, p), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_xticks(x, hist["bin"])
    ax.set_ylim(0, max(10.0, float(hist["percent"].max()) * 1.2))
    ax.set_xlabel("Pass@1 (fraction of the policy's samples that are right)")
    ax.set_ylabel("Problems (%)")
    _titles(fig, title, caption)
    return fig


# --------------------------------------------------------------------------- the study's numbers


def figure1_bars(data: pd.DataFrame | None = None) -> plt.Figure:
    """Figure 1: small policies with compute-optimal TTS (hatched) vs large ones with CoT (plain).

    A flagged value (the paper gives another number elsewhere) is outlined and starred, with the flag
    printed below the panels.
    """
    _style()
    data = reference.figure1() if data is None else data
    panels = sorted(data["panel"].unique())
    ncols = 3
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(13.5, 3.9 * nrows + 1.2), squeeze=False, layout="constrained")
    axes = list(axes.flat)
    notes: list[str] = []
    for ax, panel in zip(axes, panels):
        d = data[data["panel"] == panel].reset_index(drop=True)
        x = np.arange(len(d))
        colors = [QUANTITY_PALETTE[s] for s in d["setting"]]
        bars = ax.bar(x, d["accuracy"], color=colors, edgecolor="black", lw=0.8, width=0.7)
        for bar, (_, row) in zip(bars, d.iterrows()):
            mark = ""
            if row["setting"] == "TTS":
                bar.set_hatch("//")
            if row.get("flag"):
                notes.append(f"({panel}) {row['policy_model']} {row['accuracy']:.1f}: {row['flag']}")
                mark = "*" * len(notes)
                bar.set_edgecolor("#c0392b")
                bar.set_linewidth(2.0)
            ax.annotate(f"{row['accuracy']:.1f}{mark}", (bar.get_x() + bar.get_width() / 2, row["accuracy"]),
                        ha="center", va="bottom", fontsize=8.5, xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(x, [f"{_wrap_label(m, 13)}\n({s})" for m, s in zip(d["policy_model"], d["size_label"])],
                      fontsize=7.5)
        lo = 65 if d["dataset"].iloc[0] == "MATH-500" else 0  # the study's axis ranges
        ax.set_ylim(lo, 103 if lo else 95)
        ax.set_title(f"({panel}) {d['dataset'].iloc[0]}", fontsize=10)
        ax.set_ylabel("Accuracy (%)")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles = [Patch(facecolor=QUANTITY_PALETTE["TTS"], hatch="//", edgecolor="black"),
               Patch(facecolor=QUANTITY_PALETTE["CoT"], edgecolor="black")]
    labels = ["Small policy, compute-optimal TTS", "Large policy, CoT"]
    if notes:
        handles.append(Patch(facecolor="white", edgecolor="#c0392b", lw=2.0))
        labels.append("Flagged: the paper prints\nanother value elsewhere (*)")
    fig.legend(handles, labels, loc="outside right center", frameon=False, fontsize=8.5)
    fig.suptitle("Figure 1 (the study's published values): small LLMs with TTS vs large LLMs with CoT",
                 fontsize=11)
    if notes:
        fig.supxlabel("\n".join("*" * (i + 1) + " " + n for i, n in enumerate(notes)), fontsize=8)
    return fig


def prm_ability_fit(points: pd.DataFrame | None = None) -> plt.Figure:
    """Figure 6: TTS accuracy vs PRM process-supervision ability, with the study's fit Y = a ln X + b.

    points: optional measured (prm, ability, accuracy, params) rows; the study's per-PRM points were
    not published, so without them only the fitted curve is drawn.
    """
    _style()
    slope, intercept = reference.figure6_fit()
    fig, ax = plt.subplots(figsize=(7.6, 4.0), layout="constrained")
    x = np.linspace(20, 90, 200)
    ax.plot(x, slope * np.log(x) + intercept, color="black", lw=1.5,
            label=f"study's fit: Y = {slope} ln X + {intercept}\n(secondary source; log base not stated)")
    if points is not None and not points.empty:
        sns.scatterplot(data=points, x="ability", y="accuracy", size="params", hue="prm", ax=ax, sizes=(40, 400))
    else:
        ax.text(0.5, 0.08, "per-PRM points not published by the study", transform=ax.transAxes, ha="center",
                fontsize=9, style="italic")
    ax.set_xlabel("PRM process-supervision ability (ProcessBench score)")
    ax.set_ylabel("TTS accuracy on MATH (%)")
    ax.set_title("Figure 6 (the study's fitted curve): PRM ability vs TTS performance", fontsize=10.5)
    fig.legend(loc="outside right center", frameon=False, fontsize=8.5)
    return fig


def flops_bars(table: pd.DataFrame, title: str = "Table 4 (the study's published numbers): FLOPs") -> plt.Figure:
    """Table 4 as bars on a log scale: pre-training and inference FLOPs per model (quantity colours)."""
    _style()
    kinds = [("pretraining_flops", "pre-training"), ("inference_flops", "inference")]
    kinds = [(c, k) for c, k in kinds if c in table.columns]
    fig, ax = plt.subplots(figsize=(8.8, 4.4), layout="constrained")
    x = np.arange(len(table))
    w = 0.8 / len(kinds)
    for i, (col, kind) in enumerate(kinds):
        v = table[col].to_numpy(dtype=float)
        bars = ax.bar(x + (i - (len(kinds) - 1) / 2) * w, v, w, color=QUANTITY_PALETTE[kind], edgecolor="black",
                      lw=0.6, label=f"{kind} FLOPs")
        for b, val in zip(bars, v):
            ax.annotate(f"{val:.2g}", (b.get_x() + b.get_width() / 2, val), ha="center", va="bottom", fontsize=7.5,
                        xytext=(0, 2), textcoords="offset points")
    setting = table["setting"] if "setting" in table.columns else [""] * len(table)
    ax.set_xticks(x, [_wrap_label(m, 18) + (f"\n({s})" if s else "") for m, s in zip(table["policy_model"], setting)])
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(base=10, numticks=6))
    top = float(np.nanmax(table[[c for c, _ in kinds]].to_numpy(dtype=float)))
    ax.set_ylim(top / 1e10, top * 30)
    ax.set_ylabel("FLOPs (log scale)")
    ax.set_title(title, fontsize=10.5)
    fig.legend(loc="outside right center", frameon=False, fontsize=8.5)
    return fig


# --------------------------------------------------------------------------- FLOPs and compute-optimal (runs)


def accuracy_vs_flops(table: pd.DataFrame, title: str = "Accuracy vs inference FLOPs per problem",
                      caption: str | None = None) -> plt.Figure:
    """One panel per dataset: each strategy's best-rule accuracy (95% CI) against its mean inference FLOPs
    per problem (input: `ttslab.study.accuracy_vs_flops`). Points at the same x spent the same compute."""
    _style()
    datasets = sorted(table["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.0 * len(datasets) + 3.0, 4.4), squeeze=False,
                             sharey=True, layout="constrained")
    offsets = {"best_of_n": (-4, 8), "beam_search": (5, -12), "dvts": (-5, -13)}
    for ax, ds in zip(axes[0], datasets):
        d = table[table["dataset"] == ds]
        for m in method_names():
            g = d[d["method"] == m].sort_values("budget")
            if g.empty:
                continue
            rules = sorted(set(g["rule"]))
            label = LABELS[m] + (" (one greedy answer)" if m == "cot" else f" ({', '.join(rule_label(r) for r in rules)})")
            _errorbar(ax, g["flops_per_problem"].to_numpy(dtype=float), g, PALETTE[m], label, MARKERS[m],
                      "-" if len(g) > 1 else "none")
            for _, r in g.iterrows() if m != "cot" else ():
                ax.annotate(f"N={int(r['budget'])}", (r["flops_per_problem"], r["accuracy"]), fontsize=6.5,
                            xytext=offsets[m], textcoords="offset points", color=PALETTE[m],
                            ha="right" if offsets[m][0] < 0 else "left")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, numticks=5))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        lo, hi = d["flops_per_problem"].min(), d["flops_per_problem"].max()
        ax.set_xlim(lo / 2.5, hi * 2.5)
        ax.set_ylim(-4, 104)
        ax.set_xlabel("Inference FLOPs per problem\n(policy + verifier, log scale)", fontsize=9)
        ax.set_ylabel("Accuracy (%)")
        ax.set_title(f"{ds}: {_plural(int(d['n_problems'].max()), 'problem')}", fontsize=10)
    _legend_outside(fig, axes[0])
    _titles(fig, title, caption)
    return fig


def compute_optimal(curve: pd.DataFrame, table: pd.DataFrame, title: str, caption: str | None = None) -> plt.Figure:
    """Compute-optimal accuracy (in-sample and cross-validated) vs budget, with majority voting and CoT.

    curve: `optimal.compute_optimal_curve` output (one policy/PRM); table: the curve table (majority, CoT).
    Intervals are drawn where the frames carry them (`<column>_ci_low/_ci_high`, ci_low/ci_high).
    The legend sits below the axes, so it never narrows them.
    """
    _style()
    fig, ax = plt.subplots(figsize=(7.2, 5.0), layout="constrained")
    c = curve.sort_values("budget")
    for i, (col, ls, marker, label) in enumerate((
        ("accuracy_in_sample", "-", "o", "Compute-optimal, in-sample (chosen and scored on the same problems)"),
        ("accuracy_cv", "--", "s", "Compute-optimal, cross-validated (chosen on other problems)"),
    )):
        x = c["budget"].to_numpy(dtype=float) * 2 ** (0.06 * (i - 1))
        if f"{col}_ci_low" in c.columns:
            rows = pd.DataFrame({"accuracy": c[col], "ci_low": c[f"{col}_ci_low"], "ci_high": c[f"{col}_ci_high"]})
            _errorbar(ax, x, rows, PALETTE["compute_optimal"], label, marker, ls)
        else:
            ax.plot(x, c[col], ls=ls, marker=marker, ms=4.5, color=PALETTE["compute_optimal"],
                    label=label + "; no interval")
    maj = table[(table["method"] == "best_of_n") & (table["rule"] == "majority")].sort_values("budget")
    if not maj.empty:
        _errorbar(ax, maj["budget"].to_numpy(dtype=float) * 2 ** 0.06, maj, PALETTE["majority"],
                  "Majority (Best-of-N samples), 95% CI", MARKERS["majority"], "--")
    cot = table[table["method"] == "cot"]
    budgets = sorted({int(b) for b in c["budget"]} | {int(b) for b in maj["budget"]})
    if not cot.empty:
        _cot_line(ax, cot.iloc[0], budgets[0] / 1.2)
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xlim(budgets[0] / 1.35, budgets[-1] * 1.35)
    ax.set_ylim(-4, 104)
    ax.set_xlabel(BUDGET_LABEL, fontsize=9)
    ax.set_ylabel("Accuracy (%)")
    fig.legend(loc="outside lower center", ncols=1, frameon=False, fontsize=8.5)
    _titles(fig, title, caption)
    return fig


def ours_vs_study(table: pd.DataFrame, title: str = "CoT vs majority vs compute-optimal TTS",
                  caption: str | None = None) -> plt.Figure:
    """Grouped bars per row of `ttslab.study.ours_vs_study`: CoT, majority, compute-optimal TTS."""
    _style()
    kinds = [("cot", "CoT", PALETTE["cot"], None, 1.0), ("majority", "Majority (Best-of-N)", PALETTE["majority"], None, 1.0),
             ("compute_optimal_tts", "Compute-optimal TTS (in-sample)", PALETTE["compute_optimal"], "//", 1.0),
             ("compute_optimal_cv", "Compute-optimal TTS (cross-validated)", PALETTE["compute_optimal"], "..", 0.55)]
    fig, ax = plt.subplots(figsize=(2.6 * len(table) + 4.0, 4.6), layout="constrained")
    x = np.arange(len(table))
    w = 0.2
    for i, (col, label, color, hatch, alpha) in enumerate(kinds):
        v = table[col].to_numpy(dtype=float)
        bars = ax.bar(x + (i - 1.5) * w, np.nan_to_num(v), w, color=color, hatch=hatch, edgecolor="black",
                      label=label, alpha=alpha, lw=0.6)
        for b, val in zip(bars, v):
            if not np.isnan(val):
                ax.annotate(f"{val:.0f}", (b.get_x() + b.get_width() / 2, val), ha="center", va="bottom",
                            fontsize=7.5, xytext=(0, 1), textcoords="offset points")
            else:
                ax.annotate("n/a", (b.get_x() + b.get_width() / 2, 0), ha="center", va="bottom", fontsize=6.5,
                            rotation=90, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, [f"{o.split(' (')[0]}\n{_wrap_label(str(p), 20)}\n{d} ({int(n)} problems)" for o, p, d, n in
                      zip(table["origin"], table["policy_model"], table["dataset"], table["problems"])], fontsize=8)
    ax.set_ylabel("Accuracy (%)")
    ax.set_ylim(0, 108)
    fig.legend(loc="outside right center", frameon=False, fontsize=8.5)
    _titles(fig, title, caption)
    return fig


# --------------------------------------------------------------------------- tables


def cell_text(v: Any) -> str:
    """A table cell as printed: one decimal, 3 significant digits for FLOPs-sized numbers, '–' for NaN."""
    if isinstance(v, float | np.floating):
        if np.isnan(v):
            return "–"
        return f"{v:.3g}" if abs(v) >= 1e5 else f"{v:.1f}"
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    return str(v)


def _superscript(i: int) -> str:
    return str(i).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def _flag_cells(df: pd.DataFrame, flags: Mapping[tuple[int, str], str] | None) -> dict[tuple[int, str], str]:
    """Cell flags: given ones, else a row's `flag` marks every cell of that row."""
    if flags is not None:
        return dict(flags)
    out: dict[tuple[int, str], str] = {}
    if "flag" in df.columns:
        for i, f in enumerate(df["flag"].tolist()):
            if f:
                for c in df.columns:
                    if c not in ("flag", "source"):
                        out[(i, c)] = f
    return out


def table_figure(
    df: pd.DataFrame,
    title: str,
    flags: Mapping[tuple[int, str], str] | None = None,
    headers: Mapping[str, str] | None = None,
    note: str | None = None,
    fontsize: float = 8.5,
) -> plt.Figure:
    """A table drawn as a figure sized to its content: readable headers, flagged cells shaded and
    numbered, the flags printed below.

    flags: {(row position, column): text}; default: a row's `flag` column shades that whole row.
    headers: column -> header (default HEADERS, else the column name with spaces).
    A column that repeats the previous row's value (e.g. a group) prints it only where it changes.
    """
    _style()
    cells_flags = _flag_cells(df, flags)
    shown = df.drop(columns=[c for c in ("source", "flag") if c in df.columns]).reset_index(drop=True)
    names = {**HEADERS, **(headers or {})}
    head = [_wrap_label(names.get(c, str(c).replace("_", " ")), 16) for c in shown.columns]
    text = shown.map(cell_text)
    first_text_col = shown.columns[0]
    if not pd.api.types.is_numeric_dtype(shown[first_text_col]) and len(shown.columns) > 2:  # a group column: print on change
        col = text[first_text_col]
        text[first_text_col] = [v if i == 0 or v != col.iloc[i - 1] else "" for i, v in enumerate(col)]
    marks: dict[str, int] = {}
    for (i, c), f in sorted(cells_flags.items(), key=lambda kv: (kv[0][0], list(shown.columns).index(kv[0][1]))):
        if c in shown.columns:
            n = marks.setdefault(f, len(marks) + 1)
            text.at[i, c] = f"{text.at[i, c]} {_superscript(n)}"

    fig = plt.figure(dpi=100)
    renderer = fig.canvas.get_renderer()

    def width(s: str, bold: bool = False) -> float:  # points
        t = fig.text(0, 0, s, fontsize=fontsize, fontweight="bold" if bold else "normal")
        w = t.get_window_extent(renderer).width * 72.0 / fig.dpi
        t.remove()
        return w

    pad = 7.0
    colw = [max([width(h, True) for h in head[j].split("\n")] + [width(s) for s in text.iloc[:, j]]) + 2 * pad
            for j in range(len(shown.columns))]
    row_h = fontsize * 1.85
    head_h = fontsize * 1.35 * max(h.count("\n") + 1 for h in head) + 8
    table_w = sum(colw)
    margin = 10.0
    total_w = table_w + 2 * margin
    chars = max(40, int(total_w / (fontsize * 0.56)))
    title_lines = textwrap.wrap(title, max(30, int(total_w / (11 * 0.6))))
    foot = [f"{_superscript(n)} {f}" for f, n in marks.items()]
    if marks:
        foot.insert(0, "Shaded: flagged cells (the paper's own inconsistency or missing context); values as printed.")
    if note:
        foot.append(note)
    foot_lines = [w for line in foot for w in textwrap.wrap(line, chars)]
    title_h = 11 * 1.4 * len(title_lines) + 8
    foot_h = (fontsize * 1.35 * len(foot_lines) + 8) if foot_lines else 0
    total_h = margin + title_h + head_h + row_h * len(shown) + foot_h + margin
    fig.set_size_inches(total_w / 72.0, total_h / 72.0)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, total_w)
    ax.set_ylim(total_h, 0)
    ax.axis("off")
    ax.text(total_w / 2, margin, "\n".join(title_lines), ha="center", va="top", fontsize=11)
    top = margin + title_h
    xs = np.concatenate([[margin], margin + np.cumsum(colw)])
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) for c in shown.columns]
    ax.add_patch(Rectangle((margin, top), table_w, head_h, color="#e6e6e6", lw=0))
    for j, h in enumerate(head):
        ax.text(xs[j] + colw[j] / 2, top + head_h / 2, h, ha="center", va="center", fontsize=fontsize,
                fontweight="bold", linespacing=1.15)
    y = top + head_h
    for i in range(len(shown)):
        if i % 2:
            ax.add_patch(Rectangle((margin, y), table_w, row_h, color="#f6f6f6", lw=0))
        if i and text.iloc[i, 0] and not numeric[0]:
            ax.plot([margin, margin + table_w], [y, y], color="0.6", lw=0.6)
        for j, c in enumerate(shown.columns):
            if (i, c) in cells_flags:
                ax.add_patch(Rectangle((xs[j], y), colw[j], row_h, color=FLAG_FILL, lw=0))
            if numeric[j]:
                ax.text(xs[j + 1] - pad, y + row_h / 2, text.iat[i, j], ha="right", va="center", fontsize=fontsize)
            else:
                ax.text(xs[j] + pad, y + row_h / 2, text.iat[i, j], ha="left", va="center", fontsize=fontsize)
        y += row_h
    for yy, lw in ((top, 1.2), (top + head_h, 0.8), (y, 1.2)):
        ax.plot([margin, margin + table_w], [yy, yy], color="black", lw=lw)
    if foot_lines:
        ax.text(margin, y + 6, "\n".join(foot_lines), ha="left", va="top", fontsize=fontsize - 0.5, linespacing=1.25)
    return fig


def styled_table(
    df: pd.DataFrame,
    flags: Mapping[tuple[int, str], str] | None = None,
    headers: Mapping[str, str] | None = None,
    caption: str | None = None,
):
    """The same table as `table_figure`, as a pandas Styler for notebooks and the site: readable headers,
    one decimal (3 significant digits for FLOPs), flagged cells shaded and numbered, flags in the caption."""
    cells_flags = _flag_cells(df, flags)
    shown = df.drop(columns=[c for c in ("source", "flag") if c in df.columns]).reset_index(drop=True)
    text = shown.map(cell_text)
    marks: dict[str, int] = {}
    for (i, c), f in sorted(cells_flags.items(), key=lambda kv: kv[0][0]):
        if c in shown.columns:
            n = marks.setdefault(f, len(marks) + 1)
            text.at[i, c] = f"{text.at[i, c]} {_superscript(n)}"
    css = pd.DataFrame("", index=text.index, columns=text.columns)
    for (i, c) in cells_flags:
        if c in css.columns:
            css.at[i, c] = f"background-color: {FLAG_FILL}"
    names = {**HEADERS, **(headers or {})}
    parts = [caption] if caption else []
    if marks:
        parts.append("Shaded: flagged cells (the paper's own inconsistency or missing context), values as printed. "
                     + " ".join(f"{_superscript(n)} {f}." for f, n in marks.items()))
    styler = (text.style.apply(lambda _: css, axis=None).hide(axis="index")
              .relabel_index([names.get(c, str(c).replace("_", " ")) for c in text.columns], axis="columns"))
    styler = styler.set_table_styles([{"selector": "td", "props": "text-align: right; padding: 2px 8px;"},
                                      {"selector": "th", "props": "text-align: center; padding: 2px 8px;"},
                                      {"selector": "caption", "props": "caption-side: bottom; text-align: left;"
                                                                         " font-size: 85%;"}])
    if parts:
        styler = styler.set_caption(" ".join(parts))
    return styler


# --------------------------------------------------------------------------- search trees (Figure 2)


def draw_search_tree(record: dict, ax=None, title: str | None = None) -> plt.Figure:
    """One problem's search tree (a record's `tree`), drawn as the study's Figure 2 draws it.

    Depth runs left to right; each node is a step with its PRM score. Green: kept by the strategy;
    red: scored and rejected; grey: dropped before scoring (cut at the step limit or a duplicate);
    squares end a path (an answer, EOS or a limit). DVTS subtrees are stacked top to bottom.
    """
    nodes = record.get("tree")
    if not nodes:
        raise ValueError(f"record {record.get('problem_id')!r} ({record.get('method')}) has no search tree; "
                         "only beam_search and dvts records keep one")
    children: dict[int, list[int]] = {}
    for n in nodes[1:]:
        children.setdefault(n["parent"], []).append(n["id"])
    y: dict[int, float] = {}
    next_leaf = [0.0]

    def place(i: int) -> float:  # leaves in depth-first order, parents centred on their children
        kids = children.get(i, [])
        y[i] = next_leaf[0] if not kids else float(np.mean([place(k) for k in kids]))
        if not kids:
            next_leaf[0] += 1.0
        return y[i]

    place(0)
    by_id = {n["id"]: n for n in nodes}
    height = max(3.0, 0.28 * next_leaf[0])
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(9, height), layout="constrained")
    for n in nodes[1:]:
        ax.plot([by_id[n["parent"]]["depth"], n["depth"]], [y[n["parent"]], y[n["id"]]], color="0.8", lw=0.8, zorder=1)
    for n in nodes:
        if n["id"] == 0:
            color, marker = "black", "o"
        elif not n["valid"]:
            color, marker = "0.7", "x"
        else:
            color = "#2ca02c" if n["selected"] else "#d62728"
            marker = "s" if n["terminal"] else "o"
        ax.scatter(n["depth"], y[n["id"]], c=[color], marker=marker, s=36, zorder=2)
        if n["score"] is not None:
            ax.annotate(f"{n['score']:.2f}", (n["depth"], y[n["id"]]), xytext=(4, 2), textcoords="offset points",
                        fontsize=6, color=color)
    ax.set_xlabel("depth (reasoning steps)")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_yticks([])
    ax.invert_yaxis()
    budget = record.get("budget")
    ax.set_title(title or f"{LABELS.get(record['method'], record['method'])}, N={budget}, "
                 f"M={record.get('beam_width')}: problem {record['problem_id']}")
    handles = [Line2D([], [], marker="o", ls="", color="#2ca02c", label="selected by PRM"),
               Line2D([], [], marker="o", ls="", color="#d62728", label="rejected by PRM"),
               Line2D([], [], marker="x", ls="", color="0.7", label="dropped (cut / duplicate)"),
               Line2D([], [], marker="s", ls="", color="0.3", label="path ends (answer / EOS)")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return fig


# --------------------------------------------------------------------------- layout check


def _drawn_texts(fig: plt.Figure) -> list[tuple[str, Any]]:
    """(description, Text) of every non-empty text the figure draws: titles, labels, tick labels of
    ticks in view, legends, annotations and figure-level texts."""
    from matplotlib.text import Text

    out: list[tuple[str, Any]] = []

    def add(where: str, t) -> None:
        if isinstance(t, Text) and t.get_visible() and t.get_text().strip():
            out.append((where, t))

    for t in fig.texts:  # suptitle and supxlabel are among them
        add("figure text", t)
    for leg in fig.legends:
        for t in leg.get_texts():
            add("figure legend", t)
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        where = f"axes {i}"
        for t in (ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label):
            add(f"{where} title/label", t)
        for axis, name in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            if not (ax.axison and axis.get_visible()):
                continue
            for tick in axis._update_ticks():  # only the ticks drawn (in view)
                for lab in (tick.label1, tick.label2):
                    add(f"{where} {name} tick label", lab)
        for t in ax.texts:
            add(f"{where} text", t)
        leg = ax.get_legend()
        if leg is not None:
            for t in leg.get_texts():
                add(f"{where} legend", t)
    return out


def layout_problems(fig: plt.Figure, tolerance: float = 1.0) -> list[str]:
    """Texts that run outside the figure's canvas or overlap another text, as readable messages
    (empty: the layout is clean). Extents come from the renderer after a full draw."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    texts = [(w, t, t.get_window_extent(renderer)) for w, t in _drawn_texts(fig)]
    problems = []
    for where, t, bb in texts:
        if (bb.x0 < canvas.x0 - tolerance or bb.y0 < canvas.y0 - tolerance
                or bb.x1 > canvas.x1 + tolerance or bb.y1 > canvas.y1 + tolerance):
            problems.append(f"outside the canvas: {where} {t.get_text()!r}")
    for a in range(len(texts)):
        for b in range(a + 1, len(texts)):
            (wa, ta, ba), (wb, tb, bb) = texts[a], texts[b]
            w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
            h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
            if w > tolerance and h > tolerance:
                problems.append(f"overlap: {wa} {ta.get_text()!r} and {wb} {tb.get_text()!r}")
    return problems


# --------------------------------------------------------------------------- adaptive compute (notebook 07)


def plot_adaptive_compute(table: pd.DataFrame, title: str = "Accuracy vs compute: fixed strategies, oracle bins, router",
                          caption: str | None = None, cost: str = "flops") -> plt.Figure:
    """Accuracy (95% CI) against mean inference compute per problem (95% CI) for every policy of
    `ttslab.analysis.router.policy_table`: fixed strategies (Best-of-N joined over N), the study's
    oracle-bin compute-optimal choice (joined over N) and the router (joined over lambda, by cost)."""
    _style()
    fig, ax = plt.subplots(figsize=(7.6, 4.8), layout="constrained")
    unit = "Inference FLOPs per problem" if cost == "flops" else "Tokens per problem"

    def draw(d: pd.DataFrame, color, label: str, marker: str, ls: str) -> None:
        d = d.sort_values(cost)
        x = d[cost].to_numpy(dtype=float)
        acc = d["accuracy"].to_numpy(dtype=float)
        ax.errorbar(x, acc, yerr=[np.maximum(acc - d["accuracy_low"], 0), np.maximum(d["accuracy_high"] - acc, 0)],
                    xerr=[np.maximum(x - d[f"{cost}_low"], 0), np.maximum(d[f"{cost}_high"] - x, 0)],
                    ls=ls if len(d) > 1 else "none", marker=marker, ms=5, lw=1.4, elinewidth=0.8, capsize=2,
                    color=color, label=label)

    fixed = table[table["kind"] == "fixed"]
    for m in method_names():
        d = fixed[fixed["method"] == m]
        if len(d):
            ns = ", ".join(str(int(b)) for b in sorted(d["budget"]))
            draw(d, PALETTE[m], f"{LABELS[m]}, fixed (N = {ns})", MARKERS[m], "-")
    oracle = table[table["method"] == "compute_optimal"]
    if len(oracle):
        draw(oracle, PALETTE["compute_optimal"], "Compute-optimal per gold Pass@1 bin (the study's; oracle), "
             "cross-validated, N = " + ", ".join(str(int(b)) for b in sorted(oracle["budget"])), "*", "--")
    routed = table[table["method"] == "router"]
    if len(routed):
        draw(routed, PALETTE["router"], "Router, no gold answers (cross-validated; one point per lambda)", "X", "-")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylim(-4, 104)
    ax.set_xlabel(f"{unit} (policy + verifier, prefix reuse counted; log scale)", fontsize=9)
    ax.set_ylabel("Accuracy (%)")
    fig.legend(loc="outside lower center", ncols=1, frameon=False, fontsize=8.5)
    _titles(fig, title, caption)
    return fig
