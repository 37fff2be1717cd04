"""A search tree as the study's Figure 2 draws it (`draw_search_tree`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.lines import Line2D

from ttslab.plots.style import label_of


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
    ax.set_title(title or f"{label_of(record['method'])}, N={budget}, "
                 f"M={record.get('beam_width')}: problem {record['problem_id']}")
    handles = [Line2D([], [], marker="o", ls="", color="#2ca02c", label="selected by PRM"),
               Line2D([], [], marker="o", ls="", color="#d62728", label="rejected by PRM"),
               Line2D([], [], marker="x", ls="", color="0.7", label="dropped (cut / duplicate)"),
               Line2D([], [], marker="s", ls="", color="0.3", label="path ends (answer / EOS)")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    return fig
