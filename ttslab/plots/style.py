"""Colours, markers, names, headers and captions shared by every figure and notebook.

Two palettes, each colour with one meaning everywhere (figures, notebooks, paper_figures/): strategies take the
colour, marker and display name their class declares (ttslab/search/strategies.py: `color`, `marker`,
`label`), curve kinds (majority, pass@k, compute-optimal, router) the colours of PALETTE, quantities (FLOPs
kinds, problem counts) QUANTITY_PALETTE. A strategy without a colour or marker of its own (one registered from
outside the package) gets a spare one, the same on every call (`color_of`, `marker_of`).
"""

from __future__ import annotations

import sys
import textwrap
import zlib
from collections.abc import Iterable
from typing import Any

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # scripts and `ttslab figures` write files; notebooks keep their inline backend

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ttslab.analysis import methods
from ttslab.search.strategies import STRATEGIES as _REGISTRY

_cb = sns.color_palette("colorblind", 10)
# Curve kinds that are not strategies, and the registered strategies' own colours.
PALETTE = {
    **{name: cls.color for name, cls in _REGISTRY.items() if cls.color},
    "majority": _cb[3],
    "compute_optimal": _cb[4],
    "router": _cb[6],
    "pass@k": _cb[7],
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
SPARE_COLORS = [_cb[9], "#7f3c8d", "#11a579", "#e73f74", "#3969ac", "#80ba5a"]  # for strategies without one
SPARE_MARKERS = ["X", "h", "*", "p", "<", ">"]
LABELS = {
    **{name: methods.label(name) for name in _REGISTRY},  # the method registry names its methods
    "majority": "Majority",
    "pass@k": "Pass@k",
    "compute_optimal": "Compute-optimal",
    "router": "Router",
}
MARKERS = {**{name: cls.marker for name, cls in _REGISTRY.items() if cls.marker}, "majority": "D", "pass@k": "v"}
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


def _spare(name: str, pool: list):
    return pool[zlib.crc32(str(name).encode()) % len(pool)]


def color_of(kind: str):
    """The colour of a strategy or curve kind: PALETTE, else its class's `color`, else a spare one."""
    if kind in PALETTE:
        return PALETTE[kind]
    cls = methods.strategy_of(kind)
    return cls.color if cls is not None and cls.color else _spare(kind, SPARE_COLORS)


def marker_of(kind: str) -> str:
    """The marker of a strategy or curve kind: MARKERS, else its class's `marker`, else a spare one."""
    if kind in MARKERS:
        return MARKERS[kind]
    cls = methods.strategy_of(kind)
    return cls.marker if cls is not None and cls.marker else _spare(kind, SPARE_MARKERS)


def label_of(kind: str) -> str:
    """The display name of a strategy or curve kind (LABELS, else the class's label, else the name)."""
    return LABELS.get(kind) or methods.label(kind)
