"""Figure functions, one per figure family of the study; each returns a matplotlib Figure.

Inputs are the tidy frames of ttslab.analysis (curves in percent with ci_low/ci_high) or of
ttslab.analysis.reference. Colours are fixed per strategy (PALETTE) so every figure and notebook
agrees; legends sit outside the data area.
"""

from __future__ import annotations

import math
import sys

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # scripts and `ttslab figures` write files; notebooks keep their inline backend

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ttslab.analysis import reference

_colors = sns.color_palette("colorblind", 8)
# One colour per curve kind, shared by every figure (import it in notebooks).
PALETTE = {
    "best_of_n": _colors[0],
    "beam_search": _colors[1],
    "dvts": _colors[2],
    "majority": _colors[3],
    "pass@k": _colors[7],
    "cot": (0.3, 0.3, 0.3),
    "compute_optimal": _colors[4],
    "TTS": _colors[0],
    "CoT": _colors[7],
}
LABELS = {
    "best_of_n": "Best-of-N",
    "beam_search": "Beam search",
    "dvts": "DVTS",
    "majority": "Majority",
    "pass@k": "Pass@k",
    "cot": "CoT",
    "compute_optimal": "Compute-optimal",
}
STRATEGIES = ("best_of_n", "beam_search", "dvts")


def _style() -> None:
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)


def _grid(n: int, ncols: int = 4, size: tuple[float, float] = (3.6, 3.0)):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols + 1.8, size[1] * nrows + 0.6), squeeze=False
    )
    axes = list(axes.flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _legend_outside(fig, axes) -> None:
    handles: dict = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(
            list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False
        )


def figure1_bars(data: pd.DataFrame | None = None) -> plt.Figure:
    """Figure 1: small policies with compute-optimal TTS (hatched) vs large ones with CoT (plain)."""
    _style()
    data = reference.figure1() if data is None else data
    panels = sorted(data["panel"].unique())
    fig, axes = _grid(len(panels), ncols=3, size=(4.2, 3.4))
    for ax, panel in zip(axes, panels):
        d = data[data["panel"] == panel]
        x = np.arange(len(d))
        bars = ax.bar(
            x,
            d["accuracy"],
            color=[PALETTE[s] for s in d["setting"]],
            edgecolor="black",
            hatch=None,
            label=None,
        )
        for bar, setting, v in zip(bars, d["setting"], d["accuracy"]):
            if setting == "TTS":
                bar.set_hatch("//")
            ax.annotate(
                f"{v:.1f}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=8
            )
        ax.set_xticks(
            x, [f"{m}\n({s})" for m, s in zip(d["policy_model"], d["size_label"])], fontsize=7, rotation=15
        )
        lo = 65 if d["dataset"].iloc[0] == "MATH-500" else 0  # the study's axis ranges
        ax.set_ylim(lo, 100 if lo else 90)
        ax.set_title(f"({panel}) {d['dataset'].iloc[0]}")
        ax.set_ylabel("Accuracy (%)")
    handles = [
        plt.Rectangle((0, 0), 1, 1, facecolor=PALETTE["TTS"], hatch="//", edgecolor="black"),
        plt.Rectangle((0, 0), 1, 1, facecolor=PALETTE["CoT"], edgecolor="black"),
    ]
    fig.legend(
        handles,
        ["Small policy, compute-optimal TTS", "Large policy, CoT"],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
    )
    fig.suptitle("Figure 1 (study's published values): small LLMs with TTS vs large LLMs with CoT")
    fig.tight_layout()
    return fig


def pass1_histogram(hist: pd.DataFrame, title: str = "Figure 3: Pass@1 distribution") -> plt.Figure:
    """Figure 3: share of problems per Pass@1 bin (from ttslab.analysis.difficulty.pass1_histogram)."""
    _style()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    sns.barplot(data=hist, x="bin", y="percent", color=PALETTE["best_of_n"], ax=ax)
    for i, (p, c) in enumerate(zip(hist["percent"], hist["count"])):
        ax.annotate(f"{p:.1f}% ({c})", (i, p), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("Pass@1 (fraction of correct samples)")
    ax.set_ylabel("Problems (%)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _best_rule(d: pd.DataFrame) -> str:
    rules = d[~d["rule"].isin(["pass@k"])]
    return rules.groupby("rule")["accuracy"].mean().idxmax()


def _plot_curve(ax, d: pd.DataFrame, color, label: str, style: str = "-") -> None:
    d = d.sort_values("budget")
    ax.plot(d["budget"], d["accuracy"], style, marker="o", ms=3, color=color, label=label)
    ax.fill_between(d["budget"], d["ci_low"], d["ci_high"], color=color, alpha=0.15, linewidth=0)


def _curve_panel(ax, d: pd.DataFrame, cot: pd.DataFrame, rule: str) -> None:
    """Strategies (with `rule`, or each one's best rule), majority, pass@k and the CoT line on one axis."""
    for method in STRATEGIES:
        m = d[d["method"] == method]
        if m.empty:
            continue
        r = _best_rule(m) if rule == "best" else rule
        _plot_curve(
            ax,
            m[m["rule"] == r],
            PALETTE[method],
            f"{LABELS[method]}" + (" (best rule)" if rule == "best" else ""),
        )
    bon = d[d["method"] == "best_of_n"]
    for extra, style in (("majority", "--"), ("pass@k", ":")):
        e = bon[bon["rule"] == extra]
        if not e.empty:
            _plot_curve(ax, e, PALETTE[extra], LABELS[extra], style)
    if not cot.empty:
        ax.axhline(cot["accuracy"].mean(), color=PALETTE["cot"], lw=1, ls="-.", label="CoT")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("Budget N (generations per step)")
    ax.set_ylabel("Accuracy (%)")


def accuracy_vs_budget(
    curves: pd.DataFrame, rule: str = "best", title: str = "Accuracy vs budget"
) -> plt.Figure:
    """Figures 4/5/7: one panel per (policy, PRM); BoN / beam / DVTS, majority, pass@k, CoT, 95% CI bands.

    rule: a selection rule name (e.g. 'prm_min_vote') or 'best' (each strategy's best rule per panel).
    """
    _style()
    tts = curves[curves["method"] != "cot"]
    panels = sorted({(p, q) for p, q in zip(tts["policy"], tts["prm"]) if q})
    if not panels:
        raise ValueError("accuracy_vs_budget: no PRM-scored curves in the table")
    fig, axes = _grid(len(panels))
    for ax, (policy, prm) in zip(axes, panels):
        d = tts[(tts["policy"] == policy) & (tts["prm"] == prm)]
        cot = curves[(curves["method"] == "cot") & (curves["policy"] == policy)]
        _curve_panel(ax, d, cot, rule)
        ax.set_title(f"{policy}\nPRM: {prm}", fontsize=9)
    _legend_outside(fig, axes)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def accuracy_by_difficulty(
    curves: pd.DataFrame, rule: str = "best", title: str = "Accuracy by difficulty"
) -> plt.Figure:
    """Figures 8/9: rows = (policy, PRM), columns = difficulty bins (output of curves_by_difficulty)."""
    _style()
    bins = [b for b in ("easy", "medium", "hard") if b in set(curves["difficulty"])] or sorted(
        curves["difficulty"].unique()
    )
    tts = curves[curves["method"] != "cot"]
    rows = sorted({(p, q) for p, q in zip(tts["policy"], tts["prm"]) if q})
    fig, axes = plt.subplots(
        len(rows), len(bins), figsize=(3.6 * len(bins) + 1.8, 3.0 * len(rows) + 0.6), squeeze=False
    )
    for i, (policy, prm) in enumerate(rows):
        for j, b in enumerate(bins):
            ax = axes[i, j]
            d = tts[(tts["policy"] == policy) & (tts["prm"] == prm) & (tts["difficulty"] == b)]
            cot = curves[
                (curves["method"] == "cot") & (curves["policy"] == policy) & (curves["difficulty"] == b)
            ]
            _curve_panel(ax, d, cot, rule)
            n = int(d["n_problems"].max()) if len(d) else 0
            ax.set_title(f"{policy} / {prm}\n{b} ({n} problems)", fontsize=9)
    _legend_outside(fig, list(axes.flat))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def prm_ability_fit(points: pd.DataFrame | None = None) -> plt.Figure:
    """Figure 6: TTS accuracy vs PRM process-supervision ability, with the study's fit Y = a ln X + b.

    points: optional measured (prm, ability, accuracy, params) rows; the study's per-PRM points were
    not published, so without them only the fitted curve is drawn.
    """
    _style()
    slope, intercept = reference.figure6_fit()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    x = np.linspace(20, 90, 200)
    ax.plot(
        x,
        slope * np.log(x) + intercept,
        color=PALETTE["compute_optimal"],
        label=f"study fit: Y = {slope} ln X + {intercept}",
    )
    if points is not None and not points.empty:
        sns.scatterplot(
            data=points, x="ability", y="accuracy", size="params", hue="prm", ax=ax, sizes=(40, 400)
        )
    else:
        ax.text(
            0.5,
            0.08,
            "per-PRM points not published by the study",
            transform=ax.transAxes,
            ha="center",
            fontsize=9,
            style="italic",
        )
    ax.set_xlabel("PRM process-supervision ability (ProcessBench score)")
    ax.set_ylabel("TTS accuracy on MATH (%)")
    ax.set_title("Figure 6: PRM ability vs TTS performance (fit: secondary source)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def table_figure(df: pd.DataFrame, title: str, col_width: float = 1.6) -> plt.Figure:
    """A table rendered as a figure (Tables 3-6); flagged rows are shaded, flags listed below."""
    _style()
    shown = df.drop(columns=[c for c in ("source", "flag") if c in df.columns])
    cells = shown.map(
        lambda v: (
            f"{v:.3g}"
            if isinstance(v, float) and abs(v) >= 1e6
            else (f"{v:.1f}" if isinstance(v, float) else str(v))
        )
    )
    fig, ax = plt.subplots(figsize=(max(6.0, col_width * len(shown.columns)), 0.45 * (len(shown) + 2) + 0.8))
    ax.axis("off")
    table = ax.table(
        cellText=cells.to_numpy(), colLabels=list(shown.columns), loc="upper center", cellLoc="center"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.3)
    notes = []
    if "flag" in df.columns:
        for i, flag in enumerate(df["flag"].tolist()):
            if flag:
                for j in range(len(shown.columns)):
                    table[i + 1, j].set_facecolor("#fde2c8")
                notes.append(f"row {i + 1}: {flag}")
    if notes:
        fig.text(
            0.01,
            0.01,
            "Flagged (paper inconsistency or missing context):\n" + "\n".join(dict.fromkeys(notes)),
            fontsize=7,
            va="bottom",
        )
    ax.set_title(title)
    return fig


def flops_bars(table: pd.DataFrame, title: str = "Table 4: FLOPs, small (TTS) vs large (CoT)") -> plt.Figure:
    """Table 4 as grouped bars on a log scale: pre-training, inference and total FLOPs per model."""
    _style()
    cols = [c for c in ("pretraining_flops", "inference_flops", "total_flops") if c in table.columns]
    long = table.melt(id_vars=["policy_model"], value_vars=cols, var_name="kind", value_name="flops")
    long["kind"] = long["kind"].str.replace("_flops", "").str.replace("pretraining", "pre-training")
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    sns.barplot(data=long, x="policy_model", y="flops", hue="kind", ax=ax, palette="colorblind")
    ax.set_yscale("log")
    ax.set_xlabel("")
    ax.set_ylabel("FLOPs (log scale)")
    ax.tick_params(axis="x", labelrotation=15)
    ax.set_title(title)
    sns.move_legend(ax, "center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title=None)
    fig.tight_layout()
    return fig


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
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(9, height))
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
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_yticks([])
    ax.invert_yaxis()
    budget = record.get("budget")
    ax.set_title(title or f"{LABELS.get(record['method'], record['method'])}, N={budget}, "
                 f"M={record.get('beam_width')}: problem {record['problem_id']}")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color="#2ca02c", label="selected by PRM"),
               Line2D([], [], marker="o", ls="", color="#d62728", label="rejected by PRM"),
               Line2D([], [], marker="x", ls="", color="0.7", label="dropped (cut / duplicate)"),
               Line2D([], [], marker="s", ls="", color="0.3", label="path ends (answer / EOS)")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
