"""Figure functions, one per figure family of the study; each returns a matplotlib Figure.

One module per idea: `style` (palettes, names, captions; strategies draw with the colour, marker and name
their class declares), `curves` (accuracy vs budget, per difficulty bin, Pass@1 histogram), `compute` (FLOPs,
compute-optimal, router), `reference` (the study's published numbers), `tables` (tables as figures and
styled tables), `trees` (search trees), `layout` (the check that no text runs off the canvas or over other
text; tests run it on every figure `ttslab figures` makes). Inputs are the tidy frames of ttslab.analysis
(curves in percent with ci_low/ci_high) or of ttslab.analysis.reference. Figures made from runs carry a
caption line naming the policy, the verifier, the number of problems and the engine (`run_caption`). Every
figure is laid out with matplotlib's constrained layout, legends outside the data area.
"""

import matplotlib  # noqa: F401  (`plots.matplotlib`: the backend chosen in style)

from ttslab.plots.compute import accuracy_vs_flops, compute_optimal, plot_adaptive_compute
from ttslab.plots.curves import (
                                ENVELOPE,
                                REPORTED,
                                accuracy_by_difficulty,
                                accuracy_vs_budget,
                                pass1_histogram,
)
from ttslab.plots.layout import layout_problems
from ttslab.plots.reference import figure1_bars, flops_bars, ours_vs_study, prm_ability_fit
from ttslab.plots.style import (
                                BUDGET_LABEL,
                                FEW_PROBLEMS,
                                FLAG_FILL,
                                HEADERS,
                                LABELS,
                                MARKERS,
                                PALETTE,
                                QUANTITY_PALETTE,
                                RULE_LABELS,
                                color_of,
                                label_of,
                                marker_of,
                                rule_label,
                                run_caption,
)
from ttslab.plots.tables import cell_text, styled_table, table_figure
from ttslab.plots.trees import draw_search_tree

__all__ = [
    "BUDGET_LABEL", "ENVELOPE", "FEW_PROBLEMS", "FLAG_FILL", "HEADERS", "LABELS", "MARKERS", "PALETTE",
    "QUANTITY_PALETTE", "REPORTED", "RULE_LABELS", "accuracy_by_difficulty", "accuracy_vs_budget",
    "accuracy_vs_flops", "cell_text", "color_of", "compute_optimal", "draw_search_tree", "figure1_bars",
    "flops_bars", "label_of", "layout_problems", "marker_of", "ours_vs_study", "pass1_histogram",
    "plot_adaptive_compute", "prm_ability_fit", "rule_label", "run_caption", "styled_table", "table_figure",
]
