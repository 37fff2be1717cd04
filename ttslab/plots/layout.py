"""The layout check every figure of `ttslab figures` passes: no text off the canvas, no text over text."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt


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
