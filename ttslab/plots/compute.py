"""Compute figures of runs: accuracy vs inference FLOPs (Table 4, measured), the compute-optimal curve
(Table 5, measured) and the router's accuracy vs compute (notebook 07)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import ticker

from ttslab.analysis import methods
from ttslab.plots.curves import _cot_line, _errorbar
from ttslab.plots.style import (
    BUDGET_LABEL,
    PALETTE,
    _legend_outside,
    _plural,
    _style,
    _titles,
    color_of,
    label_of,
    marker_of,
    rule_label,
)

_OFFSETS = [(-4, 8), (5, -12), (-5, -13), (5, 8), (-6, 10)]  # N= labels, one offset per strategy in drawing order


def accuracy_vs_flops(table: pd.DataFrame, title: str = "Accuracy vs inference FLOPs per problem",
                      caption: str | None = None) -> plt.Figure:
    """One panel per dataset: each strategy's accuracy with its reported rule (95% CI) against its mean inference FLOPs
    per problem (input: `ttslab.study.accuracy_vs_flops`). Points at the same x spent the same compute."""
    _style()
    datasets = sorted(table["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.0 * len(datasets) + 3.0, 4.4), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, ds in zip(axes[0], datasets):
        d = table[table["dataset"] == ds]
        tts = [m for m in methods.ordered(d["method"]) if not methods.is_baseline(m)]
        for m in methods.ordered(d["method"]):
            g = d[d["method"] == m].sort_values("budget")
            base = methods.is_baseline(m)
            rules = sorted(set(g["rule"]))
            label = label_of(m) + (" (one greedy answer)" if base else f" ({', '.join(rule_label(r) for r in rules)})")
            _errorbar(ax, g["flops_per_problem"].to_numpy(dtype=float), g, color_of(m), label, marker_of(m),
                      "-" if len(g) > 1 else "none")
            off = _OFFSETS[tts.index(m) % len(_OFFSETS)] if not base else (0, 0)
            for _, r in g.iterrows() if not base else ():
                ax.annotate(f"N={int(r['budget'])}", (r["flops_per_problem"], r["accuracy"]), fontsize=6.5,
                            xytext=off, textcoords="offset points", color=color_of(m),
                            ha="right" if off[0] < 0 else "left")
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
    maj = table[table["method"].map(methods.is_sampling) & (table["rule"] == "majority")].sort_values("budget")
    if not maj.empty:
        _errorbar(ax, maj["budget"].to_numpy(dtype=float) * 2 ** 0.06, maj, PALETTE["majority"],
                  f"Majority ({label_of(str(maj['method'].iloc[0]))} samples), 95% CI", marker_of("majority"), "--")
    cot = table[table["method"].map(methods.is_baseline)]
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
    for m in methods.ordered(fixed["method"]):
        d = fixed[fixed["method"] == m]
        ns = ", ".join(str(int(b)) for b in sorted(d["budget"]))
        draw(d, color_of(m), f"{label_of(m)}, fixed (N = {ns})", marker_of(m), "-")
    oracle = table[table["method"] == "compute_optimal"]
    if len(oracle):
        draw(oracle, PALETTE["compute_optimal"], "Compute-optimal per gold Pass@1 bin (the study's; oracle), "
             "cross-validated, N = " + ", ".join(str(int(b)) for b in sorted(oracle["budget"])), "*", "--")
    routed = table[table["method"] == "router"]
    if len(routed):
        draw(routed, PALETTE["router"], "Router sweep, no gold answers (cross-validated; one point per lambda; "
             "its best point is an optimistic maximum)", "x", ":")
    reported = table[table["method"] == "router_nested"]
    if len(reported):
        draw(reported, PALETTE["router"], "Reported router: lambda chosen inside each training fold", "X", "-")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylim(-4, 104)
    ax.set_xlabel(f"{unit} (policy + verifier, prefix reuse counted; log scale)", fontsize=9)
    ax.set_ylabel("Accuracy (%)")
    fig.legend(loc="outside lower center", ncols=1, frameon=False, fontsize=8.5)
    _titles(fig, title, caption)
    return fig
