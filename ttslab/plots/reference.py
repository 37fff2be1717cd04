"""Figures of the study's published numbers: Figure 1 (small vs large), Figure 6 (PRM ability fit), Table 4
(FLOPs bars), and this package's Table 5 rows next to the study's (`ours_vs_study`)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.patches import Patch

from ttslab.analysis import reference
from ttslab.plots.style import PALETTE, QUANTITY_PALETTE, _style, _titles, _wrap_label


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


def ours_vs_study(table: pd.DataFrame, title: str = "CoT vs majority vs compute-optimal TTS",
                  caption: str | None = None) -> plt.Figure:
    """Grouped bars per row of `ttslab.study.ours_vs_study`: CoT, majority, compute-optimal TTS."""
    _style()
    kinds = [("cot", "CoT", QUANTITY_PALETTE["CoT"], None, 1.0), ("majority", "Majority (Best-of-N)", PALETTE["majority"], None, 1.0),
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
