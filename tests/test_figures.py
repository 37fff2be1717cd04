"""`ttslab figures` and the figure functions: files written, and the defects a reader would see.

The layout check (`plots.layout_problems`: text outside the canvas or overlapping other text, from the
renderer's extents) runs on every figure `ttslab figures` makes from the shipped run.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from analysis_fixtures import study_records, write_run
from matplotlib.container import ErrorbarContainer

from ttslab import plots, study
from ttslab.analysis import reference
from ttslab.figures import build_figures, figure_entries

# integration tier: every figure is drawn (see pyproject's markers)
pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def shipped_figures():
    """(stem, Figure) of everything `ttslab figures` (no arguments) makes, built once for the module."""
    dirs = [str(d) for d in study.study_run_dirs()]
    assert dirs, "the shipped study run is missing"
    made = [(e.stem, fig) for e, fig in figure_entries(dirs)]
    yield made
    for _, fig in made:
        plt.close(fig)


def _by_prefix(made, prefix):
    found = [fig for stem, fig in made if stem.startswith(prefix)]
    assert found, prefix
    return found


def _check_outputs(paths: list[Path]) -> set[str]:
    assert paths and all(p.exists() and p.stat().st_size > 1000 for p in paths if p.suffix in (".png", ".pdf"))
    pngs = {p.stem for p in paths if p.suffix == ".png"}
    assert pngs == {p.stem for p in paths if p.suffix == ".pdf"}  # every figure in both formats
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths if p.suffix == ".png")
    assert all(p.read_bytes()[:4] == b"%PDF" for p in paths if p.suffix == ".pdf")
    return pngs


def test_no_text_outside_the_canvas_or_overlapping(shipped_figures):
    problems = {stem: plots.layout_problems(fig) for stem, fig in shipped_figures}
    assert len(shipped_figures) >= 15
    assert not {s: p for s, p in problems.items() if p}


def test_the_layout_check_sees_overlap_and_overflow():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_xticks([1, 1.01], ["a long tick label", "another long label"])
    fig.text(0.9, 0.5, "runs off the right edge of the canvas")
    problems = plots.layout_problems(fig)
    plt.close(fig)
    assert any(p.startswith("overlap") for p in problems)
    assert any(p.startswith("outside the canvas") for p in problems)


def test_run_figures_name_policy_verifier_and_problem_count(shipped_figures):
    records = study.load_records(None)
    policy = records[0]["policy"]
    prms = {r["prm"] for r in records if r.get("prm")}  # one verifier per shipped dataset
    for stem, fig in shipped_figures:
        if stem.startswith(("fig3", "fig4", "fig8", "inference_flops", "compute_optimal")):
            title = fig.get_suptitle().replace("\n", " ")
            joined = fig.get_suptitle().replace("\n", "")  # a long name may wrap at its hyphen
            assert policy in title and any(p in title or p in joined for p in prms) and " problems of " in title, (
                stem, title)


def test_every_measured_point_has_an_interval_and_the_budget_label_fits_best_of_n(shipped_figures):
    for fig in _by_prefix(shipped_figures, "fig4"):
        ax = fig.axes[0]
        lines = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        # strategies, majority, pass@k and CoT: each drawn with error bars
        assert len(lines) >= 5
        assert "Best-of-N: N solutions" in ax.get_xlabel()


def test_a_curve_equal_to_another_says_so():
    budgets = [1, 2, 4]
    rows = []
    for rule, acc in (("majority", [50, 60, 70]), ("prm_min_max", [40, 45, 50]), ("pass@k", [55, 75, 90])):
        for b, a in zip(budgets, acc):
            rows.append(("p", "v", "best_of_n", rule, b, a, a - 5, a + 5, 10))
    t = pd.DataFrame(rows, columns=["policy", "prm", "method", "rule", "budget", "accuracy", "ci_low", "ci_high",
                                    "n_problems"])
    fig = plots.accuracy_vs_budget(t, rule="envelope", caption="Run: test")
    labels = fig.legends[0].get_texts()
    plt.close(fig)
    texts = [t.get_text() for t in labels]
    # the envelope over rules says what it is; here it equals majority, and majority's curve says so
    assert "Best-of-N (optimistic maximum over 2 rules)" in texts
    assert any(t.startswith("Majority") and t.endswith("= Best-of-N") for t in texts), texts
    fig = plots.accuracy_vs_budget(t, caption="Run: test")  # the reported rule: majority, drawn once
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close(fig)
    assert "Best-of-N (Majority, its reported rule)" in texts and not any(t.startswith("Majority") for t in texts)


def test_difficulty_panels_share_y_and_grey_small_bins(shipped_figures):
    for fig in _by_prefix(shipped_figures, "fig8"):
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert len({ax.get_ylim() for ax in axes}) == 1
        for ax in axes:
            assert " 1 problems" not in ax.get_title() and ": 1 problems" not in ax.get_title()
            n = int(ax.get_title().split(": ")[-1].split()[0])
            grey = ax.get_facecolor()[:3] != (1.0, 1.0, 1.0)
            assert grey == (n <= plots.FEW_PROBLEMS), ax.get_title()
            if grey:
                assert any("too few" in t.get_text() or "no problems" in t.get_text() for t in ax.texts)


def test_inference_flops_figure_shows_accuracy_in_strategy_colours(shipped_figures):
    for fig in _by_prefix(shipped_figures, "inference_flops"):
        ax = fig.axes[0]
        assert ax.get_ylabel() == "Accuracy (%)"
        colours = {tuple(np.round(plots.matplotlib.colors.to_rgb(c.lines[0].get_color()), 3)) for c in ax.containers}
        assert len(colours) >= 3


def test_palettes_give_each_colour_one_meaning():
    to_rgb = plots.matplotlib.colors.to_rgb
    strategy = {k: tuple(np.round(to_rgb(v), 4)) for k, v in plots.PALETTE.items()}
    assert len(set(strategy.values())) == len(strategy)
    for kind in ("pre-training", "inference", "problems"):
        assert tuple(np.round(to_rgb(plots.QUANTITY_PALETTE[kind]), 4)) not in strategy.values()
    # Figure 1's bars are compute-optimal TTS and CoT: the same meaning, the same colours as the curves
    assert plots.QUANTITY_PALETTE["TTS"] == plots.PALETTE["compute_optimal"]
    assert plots.QUANTITY_PALETTE["CoT"] == plots.PALETTE["cot"]
    # strategies draw with the colour and marker their class declares; one without gets a spare one
    from ttslab.search.strategies import STRATEGIES

    for name, cls in STRATEGIES.items():
        assert plots.color_of(name) == cls.color and plots.marker_of(name) == cls.marker
    assert plots.color_of("nowhere.module:Missing") in plots.style.SPARE_COLORS


def _shaded_cells(fig) -> int:
    fill = plots.matplotlib.colors.to_rgba(plots.FLAG_FILL)
    return sum(1 for p in fig.axes[0].patches if tuple(p.get_facecolor()) == fill)


def test_tables_have_readable_headers_and_shade_exactly_the_flagged_cells(shipped_figures):
    made = dict(shipped_figures)
    flagged = {"table3_small_vs_frontier": (reference.table3()["flag"] != "").sum(),
               "table6_long_cot": (reference.table6()["flag"] != "").sum(),
               "table5_compute_optimal": (reference.table5()["flag"] != "").sum()}
    for stem, n in flagged.items():
        fig = made[stem]
        assert n >= 1 and _shaded_cells(fig) == n, stem
        texts = [t.get_text() for t in fig.axes[0].texts]
        assert "Policy" in texts and "policy_model" not in texts
        assert any(t.startswith("¹ ") for t in "\n".join(texts).split("\n"))


def test_figure1_marks_its_flagged_bar(shipped_figures):
    fig = dict(shipped_figures)["fig1_small_vs_large"]
    assert "Table 3 gives 75.6" in fig.get_supxlabel()
    assert any(t.get_text().endswith("*") for ax in fig.axes for t in ax.texts)


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_reference_only_figures(tmp_path):
    out = tmp_path / "paper_figures"
    paths = build_figures([], out_dir=str(out), check_layout=False)  # layout: tested above
    stems = _check_outputs(paths)
    assert {"fig1_small_vs_large", "fig6_prm_ability_fit", "table3_small_vs_frontier", "table4_flops",
            "table5_compute_optimal", "table6_long_cot"} <= stems
    readme = (out / "README.md").read_text()
    assert "Needs runs" in readme and "Figure 1" in readme and "study's published numbers" in readme
    for stem in stems:
        assert stem in readme


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_figures_from_a_tiny_run(tmp_path):
    run = write_run(tmp_path / "run", study_records(n_problems=6))
    out = tmp_path / "figs"
    stems = _check_outputs(build_figures([str(run)], str(out), check_layout=False))
    for prefix in ("fig4_accuracy_vs_budget", "fig3_pass1_hist", "fig8_by_difficulty", "table5_measured",
                   "inference_flops"):
        assert any(s.startswith(prefix) for s in stems), prefix
    readme = (out / "README.md").read_text()
    assert str(run) in readme and "6 problems" in readme and "Needs runs" not in readme



def test_notebook_only_figures_have_a_clean_layout():
    """The figures notebooks draw beyond `ttslab figures`: notebook 06's comparison and notebook 01's trees."""
    records = study.load_records(None)
    side = study.ours_vs_study(records)
    tree = next(r for r in records if r["method"] == "beam_search" and r.get("tree"))
    for fig in (plots.ours_vs_study(side, title="study vs ours", caption=plots.run_caption(records)),
                plots.draw_search_tree(tree)):
        assert plots.layout_problems(fig) == []
        plt.close(fig)
