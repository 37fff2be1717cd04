"""`ttslab figures [RUN_DIR ...]`: rebuild paper_figures/ (PNG + PDF + README.md) from the study's
published numbers and from runs (no arguments: the CPU study run shipped with ttslab).

`figure_entries` yields every figure as (entry, Figure) before anything is written, so tests can check
each one (`ttslab.plots.layout_problems`); `build_figures` writes them.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ttslab import plots, study
from ttslab.analysis import curves, difficulty, flops, optimal, reference


@dataclass
class _Entry:
    stem: str
    study_item: str
    origin: str  # "study's published numbers" or "runs"
    note: str = ""
    files: list[Path] = field(default_factory=list)


def _save(fig: plt.Figure, out: Path, stem: str) -> list[Path]:
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for p in paths:
        fig.savefig(p, dpi=150)  # constrained layout fits everything in the canvas (checked: layout_problems)
    plt.close(fig)
    return paths


def _wide(long: pd.DataFrame) -> tuple[pd.DataFrame, dict[tuple[int, str], str]]:
    """Table 3/6 (one row per cell) -> one row per model with MATH-500 / AIME24 / Avg. columns, and the
    flags of the cells they came from."""
    keys = ["group", "policy_model"]
    wide = long.pivot_table(index=keys, columns="dataset", values="accuracy", aggfunc="first", sort=False)
    wide = wide[[c for c in ("MATH-500", "AIME24", "Avg.") if c in wide.columns]].reset_index()
    row_of = {tuple(r): i for i, r in enumerate(wide[keys].itertuples(index=False))}
    flags = {(row_of[(r.group, r.policy_model)], r.dataset): r.flag for r in long.itertuples() if r.flag}
    return wide, flags


def _column_flags(df: pd.DataFrame, column: str) -> dict[tuple[int, str], str]:
    """Row flags of a reference table placed on the one column they are about."""
    return {(i, column): f for i, f in enumerate(df["flag"].tolist()) if f}


def reference_table(name: str) -> tuple[pd.DataFrame, str, dict[tuple[int, str], str]]:
    """The study's Table 3, 4, 5 or 6 as printed, ready for `plots.table_figure` / `plots.styled_table`:
    (table with one row per model, title, {(row, column): flag} of the cells the paper contradicts or
    leaves without context)."""
    if name in ("table3", "table6"):
        df, flags = _wide(reference.load(name))
        what = ("small policies with compute-optimal TTS vs frontier LLMs with CoT" if name == "table3"
                else "compute-optimal TTS vs long-CoT methods")
        return df, f"Table {name[-1]} (the study's published numbers): {what}, accuracy (%)", flags
    if name == "table4":
        t4 = reference.table4()
        t4 = t4.assign(pretraining_flops_recomputed=[flops.pretraining_flops(*flops.PRETRAINING[m][:2])
                                                     for m in t4["policy_model"]])
        t4 = t4[["policy_model", "setting", "pretraining_flops", "pretraining_flops_recomputed", "inference_flops",
                 "total_flops", "flag"]]
        return (t4, "Table 4 (the study's published numbers) with pre-training recomputed as 6·N·D",
                _column_flags(t4, "inference_flops"))
    if name == "table5":
        t5 = reference.table5()[["policy_model", "cot", "majority", "compute_optimal_tts", "performance_gain_printed",
                                 "efficiency_gain_printed", "flag"]]
        title = "Table 5 (the study's published numbers): CoT vs majority vs compute-optimal TTS on MATH-500, accuracy (%)"
        return t5, title, _column_flags(t5, "compute_optimal_tts")
    raise KeyError(f"reference_table: {name!r}; expected table3, table4, table5 or table6")


def _reference_figures() -> Iterator[tuple[_Entry, plt.Figure]]:
    src = "study's published numbers"
    yield _Entry("fig1_small_vs_large", "Figure 1", src, "flagged bar outlined and starred"), plots.figure1_bars()
    yield (_Entry("fig6_prm_ability_fit", "Figure 6 (fitted curve only)", src,
                  "fit from secondary sources; per-PRM points were not published"), plots.prm_ability_fit())
    yield (_Entry("table3_small_vs_frontier", "Table 3", src, "flagged cells shaded"),
           plots.table_figure(*reference_table("table3")))
    yield (_Entry("table4_flops", "Table 4 (bars, log scale)", src), plots.flops_bars(reference.table4()))
    yield (_Entry("table4_flops_table", "Table 4", src, "pre-training recomputed as 6·N·D; flagged cells shaded"),
           plots.table_figure(*reference_table("table4"),
                              note="6·N·D: nominal parameters × public pre-training tokens (3B/9T, 405B/15T, "
                                   "7B/18T, 671B/14.8T)."))
    yield (_Entry("table5_compute_optimal", "Table 5", src, "flagged cells shaded"),
           plots.table_figure(*reference_table("table5")))
    yield (_Entry("table6_long_cot", "Table 6", src, "flagged cells shaded"), plots.table_figure(*reference_table("table6")))


def _interpolation() -> str:
    """How measured Efficiency Gains interpolate (read from ttslab.analysis.optimal, not assumed)."""
    scale = inspect.signature(optimal.table5_row).parameters["scale"].default
    return {"log2": "interpolated in log2 budget (the authors interpolate linearly in budget)",
            "linear": "interpolated linearly in budget, as the authors define it"}.get(scale, f"scale {scale}")


def _run_figures(records: list[dict], note: str) -> Iterator[tuple[_Entry, plt.Figure]]:
    for dataset, everything in study.records_by_dataset(records).items():
        tag = dataset.replace("/", "_").replace(" ", "_")
        # strategies are compared on the same problems: budgets run on a subset get their own figure
        recs, aside = study.on_every_problem(everything)
        ds_note = note + (f"; set aside (not on every problem): {'; '.join(aside)}" if aside else "")
        caption = plots.run_caption(recs, dataset)
        per_problem = curves.per_problem_accuracy(recs)
        table = curves.curve_table(per_problem)
        if (table["prm"] != "").any():
            yield (_Entry(f"fig4_accuracy_vs_budget_{tag}", "Figures 4/5/7 (accuracy vs budget)", "runs", ds_note),
                   plots.accuracy_vs_budget(table, title=f"Accuracy vs budget on {dataset} (95% CI)", caption=caption))
        subset = study.on_the_subset(everything)
        if subset:
            n_sub = len({str(r["problem_id"]) for r in subset})
            yield (_Entry(f"fig4_accuracy_vs_budget_{tag}_subset", "Figures 4/5/7 (accuracy vs budget), on the "
                          "problems of the budgets run on a subset", "runs", f"{note}; {n_sub} problems"),
                   plots.accuracy_vs_budget(curves.curve_table(curves.per_problem_accuracy(subset)),
                                            title=f"Accuracy vs budget on the {n_sub}-problem subset of {dataset} "
                                                  "(95% CI)", caption=plots.run_caption(subset, dataset)))
        bins_all = None
        for policy in sorted({r.get("policy") for r in recs if r["method"] in difficulty.SAMPLE_METHODS}):
            pass1 = difficulty.pass_at_1(recs, policy=policy)
            safe = str(policy).replace("/", "_")
            mine_recs = [r for r in recs if r.get("policy") == policy]
            cap = plots.run_caption(mine_recs, dataset)
            yield (_Entry(f"fig3_pass1_hist_{tag}_{safe}", "Figure 3 (Pass@1 histogram)", "runs", ds_note),
                   plots.pass1_histogram(difficulty.pass1_histogram(pass1), f"Pass@1 of the policy on {dataset}",
                                         caption=cap))
            mine = per_problem.loc[:, per_problem.columns.get_level_values("policy") == policy]
            mine = mine.loc[mine.index.intersection(pass1.index)]
            bins = difficulty.difficulty_bins(pass1)
            bins_all = bins if bins_all is None else bins_all
            if (mine.columns.get_level_values("prm") != "").any():
                by_bin = difficulty.curves_by_difficulty(mine, bins)
                yield (_Entry(f"fig8_by_difficulty_{tag}_{safe}", "Figures 8/9 (per difficulty bin)", "runs", ds_note),
                       plots.accuracy_by_difficulty(by_bin, title=f"Accuracy by difficulty on {dataset} "
                                                                  "(the study's absolute Pass@1 bins, 95% CI)",
                                                    caption=cap))
        if (table["method"] == "cot").any() and (table["prm"] != "").any() and len(per_problem) >= 2:
            rows = study.measured_table5(recs, {dataset: bins_all} if bins_all is not None else None)
            if len(rows):
                notes = sorted(set(rows["note"])) if "note" in rows.columns else []
                shown = rows.drop(columns=[c for c in ("origin", "dataset", "note") if c in rows.columns])
                if len(shown) == 1:  # one (policy, verifier): a quantity per line reads better than a wide row
                    shown = pd.DataFrame({"Quantity": [plots.HEADERS.get(c, c.replace("_", " ")) for c in shown.columns],
                                          "Value": [plots.cell_text(v) for v in shown.iloc[0]]})
                text = ("Compute-optimal: " + "; ".join(notes) + ". " if notes else "") + (
                    f"Efficiency gain: budget at majority's maximum / budget where the in-sample curve reaches "
                    f"it, {_interpolation()}; '>' = already reached at the smallest budget.")
                yield (_Entry(f"table5_measured_{tag}", "Table 5 (measured)", "runs",
                              ds_note + "; efficiency gain " + _interpolation()),
                       plots.table_figure(shown, f"Table 5 from runs on {dataset}: CoT vs majority vs "
                                                 f"compute-optimal TTS, accuracy (%). {caption}", note=text))
            curve, how = study.compute_optimal(per_problem, bins_all)
            for (policy, prm), c in curve.groupby(["policy", "prm"]):
                mine = table[(table["policy"] == policy) & ((table["prm"] == prm) | (table["method"] == "cot"))]
                yield (_Entry(f"compute_optimal_{tag}", "Table 5's compute-optimal curve (measured)", "runs",
                              ds_note + f"; {how}"),
                       plots.compute_optimal(c, mine, f"Compute-optimal vs majority vs CoT on {dataset} ({how})",
                                             caption=caption))
                break  # one (policy, PRM) per file; the shipped run has one
        yield (_Entry(f"inference_flops_{tag}", "Table 4 inference (measured): accuracy vs FLOPs", "runs",
                      ds_note + "; mean per problem, prefix reuse counted"),
               plots.accuracy_vs_flops(study.accuracy_vs_flops(recs),
                                       title=f"Accuracy vs inference FLOPs per problem on {dataset} (95% CI)",
                                       caption=caption))
        if not study.adaptive_compute_unusable(recs):
            adaptive, _ = study.adaptive_compute(recs)
            yield (_Entry(f"adaptive_compute_{tag}", "none (extension): compute-optimal TTS without gold answers",
                          "runs", ds_note + "; leave-one-out cross-validation, 95% bootstrap CI over problems"),
                   plots.plot_adaptive_compute(adaptive, title=f"Accuracy vs compute on {dataset}: fixed strategies, "
                                               "oracle-bin compute-optimal, router without gold answers (95% CI)",
                                               caption=caption))


def figure_entries(run_dirs: list[str]) -> Iterator[tuple[_Entry, plt.Figure]]:
    """Every figure `ttslab figures` makes from the study's numbers and the given runs, in order."""
    yield from _reference_figures()
    if run_dirs:
        records = study.load_records(run_dirs)
        if not records:
            raise ValueError(f"build_figures: the run directories {run_dirs} hold no records")
        problems = len({str(r["problem_id"]) for r in records})
        budgets = sorted({int(r["budget"]) for r in records})
        yield from _run_figures(records, f"{len(records)} records, {problems} problems, budgets {budgets}")


def _readme(out: Path, entries: list[_Entry], run_dirs: list[str], command: str) -> Path:
    lines = [
        "# paper_figures",
        "",
        "Regenerated by `" + command + "` (ttslab.figures.build_figures). Do not edit by hand.",
        "",
        ("Figures made from runs say so in their title and name the policy, the verifier, the number of problems "
        "and the engine (read from the records). Colours: one per strategy across every figure and notebook "
        "(`ttslab.plots.PALETTE`), others for quantities (`QUANTITY_PALETTE`). Tables are drawn as figures with "
        "readable headers; flagged cells (the paper's own inconsistencies, values kept as printed) are shaded and "
        "numbered, the flags printed below. Notebooks show the same tables as styled HTML (`plots.styled_table`)."),
        "",
        "| file | study figure/table | built from | runs | notes |",
        "|---|---|---|---|---|",
    ]
    runs = ", ".join(f"`{d}`" for d in run_dirs) or "none"
    for e in entries:
        files = " ".join(f"[{p.suffix[1:]}]({p.name})" for p in e.files)
        lines.append(f"| `{e.stem}` {files} | {e.study_item} | {e.origin} | "
                     f"{runs if e.origin == 'runs' else '-'} | {e.note} |")
    lines += ["", ("Rebuilt from the study's published numbers (ttslab/analysis/reference_data): Figure 1, Figure 6's "
              "fitted curve, Tables 3-6."), ""]
    if not run_dirs:
        lines += [
            ("Needs runs (`ttslab run ...`, then `ttslab figures RUN_DIR ...`): Figure 3 (Pass@1 histogram), "
            "Figures 4/5/7 (accuracy vs budget per policy x PRM), Figures 8/9 (per difficulty bin), "
            "Figure 6's per-PRM points, measured Table 5 and the measured inference FLOPs of Table 4. "
            "The study published no data for these."),
            "",
        ]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def build_figures(run_dirs: list[str], out_dir: str = "paper_figures", command: str | None = None,
                  check_layout: bool = True) -> list[Path]:
    """Write every figure the reference data and the given runs allow; returns the written paths.

    check_layout: warn about text that runs off the canvas or overlaps other text (the figure is still written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for entry, fig in figure_entries(list(run_dirs)):
        for problem in plots.layout_problems(fig) if check_layout else ():
            print(f"warning: {entry.stem}: {problem}", file=sys.stderr)
        entry.files = _save(fig, out, entry.stem)
        entries.append(entry)
    if command is None:
        command = "ttslab figures " + " ".join(map(str, run_dirs))
        command += f" --out {out}" if out.name != "paper_figures" else ""
    readme = _readme(out, entries, [str(d) for d in run_dirs], command.strip())
    return [p for e in entries for p in e.files] + [readme]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ttslab figures", description=__doc__)
    parser.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run directories written by `ttslab run`")
    parser.add_argument("--out", default="paper_figures", help="output directory (default: paper_figures)")
    parser.add_argument("--reference-only", action="store_true",
                        help="only the figures the study's published numbers allow (no runs)")
    args = parser.parse_args(argv)
    run_dirs = args.run_dirs
    command = None
    if not run_dirs and not args.reference_only:
        # the CPU-scale study run shipped with ttslab; relative paths keep paper_figures/README.md portable
        run_dirs = [os.path.relpath(d) for d in study.study_run_dirs()]
        command = "ttslab figures" + (f" --out {args.out}" if Path(args.out).name != "paper_figures" else "")
    elif args.reference_only:
        run_dirs = []
        command = "ttslab figures --reference-only"
    paths = build_figures(run_dirs, args.out, command)
    print(f"wrote {len(paths)} files to {args.out}/ (see {args.out}/README.md)")
    return 0
