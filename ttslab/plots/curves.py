"""Accuracy curves of runs: accuracy vs budget (Figures 4/5/7), per difficulty bin (Figures 8/9), and the
Pass@1 histogram (Figure 3).

Inputs are the tidy curve tables of ttslab.analysis (percent, with ci_low/ci_high). Each strategy is drawn
with the selection rule it reports (`ttslab.analysis.rules`, fixed in conf/method/ before any data);
`rule="envelope"` draws the optimistic maximum over rules instead, labelled so; any rule name draws that rule.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import ticker

from ttslab.analysis import methods, rules
from ttslab.plots.style import (
    BUDGET_LABEL,
    FEW_PROBLEMS,
    QUANTITY_PALETTE,
    _legend_outside,
    _plural,
    _style,
    _table_caption,
    _titles,
    color_of,
    label_of,
    marker_of,
    rule_label,
)

REPORTED = "reported"  # each strategy's configured rule
ENVELOPE = "envelope"  # the optimistic maximum over rules, labelled as such

def _errorbar(ax, x, d: pd.DataFrame, color, label: str, marker: str, ls: str = "-", alpha: float = 1.0):
    acc = d["accuracy"].to_numpy(dtype=float)
    lo = np.nan_to_num(acc - d["ci_low"].to_numpy(dtype=float))
    hi = np.nan_to_num(d["ci_high"].to_numpy(dtype=float) - acc)
    ax.errorbar(x, acc, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], ls=ls, marker=marker, ms=4.5, lw=1.4,
                elinewidth=1.0, capsize=2.5, color=color, label=label, alpha=alpha)


def _cot_line(ax, row: pd.Series, x_interval: float, alpha: float = 1.0) -> None:
    """The one-answer baseline (CoT) as a horizontal line, its 95% interval drawn once at the left edge (a band
    would cover the panel)."""
    method = str(row["method"])
    ax.axhline(row["accuracy"], color=color_of(method), lw=1.1, ls="-.", alpha=alpha)
    _errorbar(ax, [x_interval], pd.DataFrame([row]), color_of(method),
              f"{label_of(method)} (one greedy answer; 95% CI at left)", marker_of(method), "-.", alpha)


def _drawn(d: pd.DataFrame, method: str, rule: str) -> tuple[pd.DataFrame, str]:
    """(rows, what the label says of the rule) of one strategy's curve under `rule`."""
    m = d[d["method"] == method]
    if rule == ENVELOPE:
        env = rules.envelope(m)
        return env, env["rule"].iloc[0] if len(env) else ""
    r = rules.rule_of(method, str(m["prm"].iloc[0])) if rule == REPORTED else rule
    return m[m["rule"] == r], rule_label(r) + (", its reported rule" if rule == REPORTED else "")


def _curve_series(d: pd.DataFrame, rule: str) -> list[tuple[str, str, Any, str, str, pd.DataFrame]]:
    """(kind, label, colour, marker, linestyle, rows) of every curve of one panel, in drawing order."""
    out = []
    drawn_rule: dict[str, str] = {}
    for method in methods.ordered(m for m in d["method"] if not methods.is_baseline(m)):
        rows, said = _drawn(d, method, rule)
        drawn_rule[method] = str(rows["rule"].iloc[0]) if len(rows) else ""
        out.append((method, f"{label_of(method)} ({said})", color_of(method), marker_of(method), "-", rows))
    for method in methods.ordered(m for m in d["method"] if methods.is_sampling(m)):
        pool = d[d["method"] == method]
        for extra, ls in (("majority", "--"), ("pass@k", ":")):
            e = pool[pool["rule"] == extra]
            if e.empty or drawn_rule.get(method) == extra:  # the strategy's own curve already is it
                continue
            label = label_of(extra) + (f" ({label_of(method)} samples)" if extra == "majority" else " (any sample right)")
            out.append((extra, label, color_of(extra), marker_of(extra), ls, e))
    return [s for s in out if not s[5].empty]


def _curve_panel(ax, d: pd.DataFrame, cot: pd.DataFrame, rule: str, alpha: float = 1.0) -> None:
    """Strategies (each with its reported rule, `rule`, or the envelope), majority, pass@k and CoT on one axis.

    Every point has its 95% interval. Curves are dodged a little along x so no curve or interval hides
    another; a curve equal to one drawn before it says so in its label ("= Majority").
    """
    series = _curve_series(d, rule)
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


def accuracy_vs_budget(
    curves: pd.DataFrame, rule: str = REPORTED, title: str = "Accuracy vs budget", caption: str | None = None
) -> plt.Figure:
    """Figures 4/5/7: one panel per (policy, PRM); BoN / beam / DVTS, majority, pass@k, CoT, 95% CIs.

    rule: "reported" (each strategy's configured rule, ttslab.analysis.rules), "envelope" (the optimistic
    maximum over rules, labelled so) or a selection rule name (e.g. 'prm_min_vote') for every strategy.
    caption: what the curves were made of (`run_caption(records)`); default: read from the table.
    """
    _style()
    tts = curves[~curves["method"].map(methods.is_baseline)]
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
        cot = curves[curves["method"].map(methods.is_baseline) & (curves["policy"] == policy)]
        _curve_panel(ax, d, cot, rule)
        n = int(d["n_problems"].max())
        ax.set_title(f"{policy}\nverifier: {prm}\n{_plural(n, 'problem')}", fontsize=8.5)
        ax.set_xlabel(BUDGET_LABEL, fontsize=8.5)
        ax.set_ylabel("Accuracy (%)")
    _legend_outside(fig, axes)
    _titles(fig, title, caption or _table_caption(curves))
    return fig


def accuracy_by_difficulty(
    curves: pd.DataFrame, rule: str = REPORTED, title: str = "Accuracy by difficulty", caption: str | None = None
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
    tts = curves[~curves["method"].map(methods.is_baseline)]
    rows = sorted({(p, q) for p, q in zip(tts["policy"], tts["prm"]) if q})
    fig, axes = plt.subplots(len(rows), len(bins), figsize=(3.9 * len(bins) + 3.2, 3.4 * len(rows) + 1.2),
                             squeeze=False, sharey=True, layout="constrained")
    for i, (policy, prm) in enumerate(rows):
        for j, b in enumerate(bins):
            ax = axes[i, j]
            d = tts[(tts["policy"] == policy) & (tts["prm"] == prm) & (tts["difficulty"].astype(str) == b)]
            cot = curves[curves["method"].map(methods.is_baseline) & (curves["policy"] == policy)
                         & (curves["difficulty"].astype(str) == b)]
            n = int(d["n_problems"].max()) if len(d) else 0
            few = n <= FEW_PROBLEMS
            if len(d):
                _curve_panel(ax, d, cot, rule, alpha=0.35 if few else 1.0)
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
