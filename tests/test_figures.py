"""`ttslab figures`: reference-only and on a tiny real run directory; files written and non-empty."""

from pathlib import Path

from analysis_fixtures import study_records, write_run

from ttslab.figures import build_figures, main


def _check_outputs(paths: list[Path]) -> set[str]:
    assert paths and all(
        p.exists() and p.stat().st_size > 1000 for p in paths if p.suffix in (".png", ".pdf")
    )
    pngs = {p.stem for p in paths if p.suffix == ".png"}
    assert pngs == {p.stem for p in paths if p.suffix == ".pdf"}  # every figure in both formats
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths if p.suffix == ".png")
    assert all(p.read_bytes()[:4] == b"%PDF" for p in paths if p.suffix == ".pdf")
    return pngs


def test_reference_only_figures(tmp_path):
    out = tmp_path / "paper_figures"
    paths = build_figures([], out_dir=str(out))
    stems = _check_outputs(paths)
    assert {
        "fig1_small_vs_large",
        "fig6_prm_ability_fit",
        "table3_small_vs_frontier",
        "table4_flops",
        "table5_compute_optimal",
        "table6_long_cot",
    } <= stems
    readme = (out / "README.md").read_text()
    assert "Needs runs" in readme and "Figure 1" in readme and "study's published numbers" in readme
    for stem in stems:
        assert stem in readme


def test_figures_from_a_tiny_run(tmp_path):
    run = write_run(tmp_path / "run", study_records(n_problems=10))
    out = tmp_path / "figs"
    assert main([str(run), "--out", str(out)]) == 0
    stems = _check_outputs(sorted(out.glob("*.png")) + sorted(out.glob("*.pdf")))
    for prefix in (
        "fig4_accuracy_vs_budget",
        "fig3_pass1_hist",
        "fig8_by_difficulty",
        "table5_measured",
        "inference_flops",
    ):
        assert any(s.startswith(prefix) for s in stems), prefix
    readme = (out / "README.md").read_text()
    assert str(run) in readme and "10 problems" in readme and "Needs runs" not in readme
