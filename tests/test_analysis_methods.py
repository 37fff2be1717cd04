"""A method registered from outside the package goes through summary, figures and the router without a
KeyError: every consumer reads the strategy class (ttslab.analysis.methods, ttslab.plots.style), never a
table keyed by the built-in names (issue #23, item 3)."""

import copy

import matplotlib.pyplot as plt
import pytest

from ttslab import plots, study
from ttslab.analysis import methods, router, rules
from ttslab.figures import _run_figures
from ttslab.summary import summary_table

OUTSIDE = "outside_strategy:Subtrees"


def _records_with_an_outside_method():
    """The shipped MATH-500 run's records with its DVTS records relabelled as the outside strategy's."""
    recs, _ = study.on_every_problem(study.records_by_dataset(study.load_records())["math500"])
    out = []
    for r in recs:
        r = copy.deepcopy(r)
        if r["method"] == "dvts":
            r["method"] = OUTSIDE
            r["settings"] = {**r["settings"], "name": OUTSIDE}
        out.append(r)
    return out


def test_the_registry_is_read_for_an_outside_strategy():
    assert methods.strategy_of(OUTSIDE).__name__ == "Subtrees"
    assert methods.is_search(OUTSIDE) and not methods.is_sampling(OUTSIDE) and not methods.is_baseline(OUTSIDE)
    assert methods.label(OUTSIDE) == "Subtrees (outside)"
    assert rules.report_rule(OUTSIDE) == "majority"  # no config file: the schema's default
    assert plots.color_of(OUTSIDE) in plots.style.SPARE_COLORS and plots.marker_of(OUTSIDE) in plots.style.SPARE_MARKERS
    assert plots.color_of(OUTSIDE) == plots.color_of(OUTSIDE)  # the same on every call


@pytest.mark.model  # integration tier: every figure is drawn (as tests/test_figures.py)
def test_an_outside_method_goes_through_summary_figures_and_the_router():
    recs = _records_with_an_outside_method()
    table = summary_table(recs)
    assert OUTSIDE in set(table.iloc[:, 0].astype(str)) or OUTSIDE in table.to_string()
    made = list(_run_figures(recs, "test"))
    stems = [e.stem for e, _ in made]
    assert any(s.startswith("fig4_") for s in stems) and any(s.startswith("adaptive_compute_") for s in stems)
    fig4 = next(f for e, f in made if e.stem.startswith("fig4_") and "subset" not in e.stem)
    labels = [t.get_text() for t in fig4.legends[0].get_texts()]
    assert any(t.startswith("Subtrees (outside) (Majority") for t in labels), labels
    for _, f in made:
        plt.close(f)
    res = router.evaluate(recs, orders=16, n_boot=200)
    assert (OUTSIDE, 4, "majority") in router.router_data(recs, orders=4).actions
    assert OUTSIDE in set(res.fixed["method"]) and len(res.verdicts) == 2
