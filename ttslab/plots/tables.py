"""Tables drawn as figures (`table_figure`, for paper_figures/) and styled for notebooks (`styled_table`):
readable headers, one decimal (3 significant digits for FLOPs), flagged cells shaded and numbered."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from ttslab.plots.style import FLAG_FILL, HEADERS, _style, _wrap_label


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
