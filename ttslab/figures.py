"""`ttslab figures [RUN_DIR ...]`: rebuild paper_figures/ (PNG + PDF + README.md) from the study's
published numbers and, when run directories are given, from their records.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ttslab import plots
from ttslab.analysis import curves, difficulty, flops, optimal, reference
from ttslab.results import Run


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
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def _reference_figures(out: Path) -> list[_Entry]:
    t4 = reference.table4()
    t4_recomputed = t4.assign(
        pretraining_flops_recomputed=[
            flops.pretraining_flops(*flops.PRETRAINING[m][:2]) for m in t4["policy_model"]
        ]
    )
    t5 = reference.table5()[
        [
            "policy_model",
            "cot",
            "majority",
            "compute_optimal_tts",
            "performance_gain_printed",
            "efficiency_gain_printed",
            "flag",
        ]
    ]
    wide = lambda t: t.pivot_table(
        index=["group", "policy_model"],
        columns="dataset",
        values="accuracy",
        aggfunc="first",
        sort=False,
    )[["MATH-500", "AIME24", "Avg."]].reset_index()
    entries = [
        (_Entry("fig1_small_vs_large", "Figure 1", "study's published numbers"), plots.figure1_bars()),
        (
            _Entry(
                "fig6_prm_ability_fit",
                "Figure 6 (fitted curve only)",
                "study's published numbers",
                "fit from secondary sources; per-PRM points were not published",
            ),
            plots.prm_ability_fit(),
        ),
        (
            _Entry("table3_small_vs_frontier", "Table 3", "study's published numbers"),
            plots.table_figure(
                wide(reference.table3()), "Table 3 (study): small policies with TTS vs frontier LLMs (CoT)"
            ),
        ),
        (
            _Entry(
                "table4_flops",
                "Table 4 (bars, log scale)",
                "study's published numbers",
                "pre-training column also recomputed as 6·N·D",
            ),
            plots.flops_bars(t4),
        ),
        (
            _Entry("table4_flops_table", "Table 4", "study's published numbers"),
            plots.table_figure(
                t4_recomputed.drop(columns=["block"]), "Table 4 (study) with 6·N·D recomputed", 1.9
            ),
        ),
        (
            _Entry("table5_compute_optimal", "Table 5", "study's published numbers"),
            plots.table_figure(t5, "Table 5 (study): CoT vs majority vs compute-optimal TTS, MATH-500", 1.9),
        ),
        (
            _Entry("table6_long_cot", "Table 6", "study's published numbers"),
            plots.table_figure(
                wide(reference.table6()), "Table 6 (study): compute-optimal TTS vs long-CoT methods", 2.2
            ),
        ),
    ]
    for entry, fig in entries:
        entry.files = _save(fig, out, entry.stem)
    return [e for e, _ in entries]


def _run_figures(records: list[dict], out: Path, note: str) -> list[_Entry]:
    made: list[_Entry] = []
    for dataset in sorted({str(r.get("source") or "dataset") for r in records}):
        recs = [r for r in records if str(r.get("source") or "dataset") == dataset]
        tag = dataset.replace("/", "_").replace(" ", "_")
        per_problem = curves.per_problem_accuracy(recs)
        table = curves.curve_table(per_problem)
        if (table["prm"] != "").any():
            e = _Entry(f"fig4_accuracy_vs_budget_{tag}", "Figures 4/5/7 (accuracy vs budget)", "runs", note)
            e.files = _save(
                plots.accuracy_vs_budget(table, title=f"Accuracy vs budget on {dataset} (95% CI)"),
                out,
                e.stem,
            )
            made.append(e)
        for policy in sorted({r.get("policy") for r in recs if r["method"] in difficulty.SAMPLE_METHODS}):
            pass1 = difficulty.pass_at_1(recs, policy=policy)
            safe = str(policy).replace("/", "_")
            e = _Entry(f"fig3_pass1_hist_{tag}_{safe}", "Figure 3 (Pass@1 histogram)", "runs", note)
            e.files = _save(
                plots.pass1_histogram(difficulty.pass1_histogram(pass1), f"Pass@1 of {policy} on {dataset}"),
                out,
                e.stem,
            )
            made.append(e)
            mine = per_problem.loc[:, per_problem.columns.get_level_values("policy") == policy]
            mine = mine.loc[mine.index.intersection(pass1.index)]
            if (mine.columns.get_level_values("prm") != "").any():
                by_bin = difficulty.curves_by_difficulty(mine, difficulty.difficulty_bins(pass1))
                e = _Entry(
                    f"fig8_by_difficulty_{tag}_{safe}", "Figures 8/9 (per difficulty bin)", "runs", note
                )
                e.files = _save(
                    plots.accuracy_by_difficulty(by_bin, title=f"{policy} on {dataset} by difficulty"),
                    out,
                    e.stem,
                )
                made.append(e)
        rows = _measured_table5(table, per_problem)
        if rows is not None:
            e = _Entry(
                f"table5_measured_{tag}",
                "Table 5 (measured)",
                "runs",
                note + "; compute-optimal in-sample, efficiency gain interpolated in log2 budget",
            )
            e.files = _save(plots.table_figure(rows, f"Table 5 from runs on {dataset}", 1.9), out, e.stem)
            made.append(e)
        fl = flops.inference_summary(recs)
        fl = fl.assign(policy_model=fl["policy"] + " " + fl["method"] + " N=" + fl["budget"].astype(str))
        e = _Entry(
            f"inference_flops_{tag}",
            "Table 4 inference column (measured)",
            "runs",
            note + "; per-problem mean, with prefix reuse",
        )
        e.files = _save(
            plots.flops_bars(
                fl.rename(columns={"per_problem_total_flops_reuse": "inference_flops"}),
                f"Measured inference FLOPs per problem on {dataset}",
            ),
            out,
            e.stem,
        )
        made.append(e)
    return made


def _measured_table5(table: pd.DataFrame, per_problem: pd.DataFrame) -> pd.DataFrame | None:
    cot = table[table["method"] == "cot"]
    if cot.empty:
        return None
    opt = (
        optimal.compute_optimal_curve(per_problem, folds=min(5, len(per_problem)))
        if len(per_problem) >= 2
        else None
    )
    if opt is None:
        return None
    rows = []
    for (policy, prm), o in opt.groupby(["policy", "prm"]):
        c = cot[cot["policy"] == policy]
        maj = table[
            (table["policy"] == policy)
            & (table["prm"] == prm)
            & (table["method"] == "best_of_n")
            & (table["rule"] == "majority")
        ]
        if c.empty or maj.empty:
            continue
        row = optimal.table5_row(
            f"{policy} / {prm}",
            float(c["accuracy"].iloc[0]),
            maj.set_index("budget")["accuracy"],
            o.set_index("budget")["accuracy_in_sample"],
        )
        row["compute_optimal_cv"] = float(o["accuracy_cv"].max())
        rows.append(row)
    return pd.DataFrame(rows) if rows else None


def _readme(out: Path, entries: list[_Entry], run_dirs: list[str]) -> Path:
    cmd = "ttslab figures " + " ".join(run_dirs) + (f" --out {out}" if out.name != "paper_figures" else "")
    lines = [
        "# paper_figures",
        "",
        "Regenerated by `" + cmd.strip() + "` (ttslab.figures.build_figures). Do not edit by hand.",
        "",
        "| file | study figure/table | built from | runs | notes |",
        "|---|---|---|---|---|",
    ]
    runs = ", ".join(f"`{d}`" for d in run_dirs) or "none"
    for e in entries:
        files = " ".join(f"[{p.suffix[1:]}]({p.name})" for p in e.files)
        lines.append(
            f"| `{e.stem}` {files} | {e.study_item} | {e.origin} | "
            f"{runs if e.origin == 'runs' else '-'} | {e.note} |"
        )
    lines += [
        "",
        (
            "Rebuilt from the study's published numbers (ttslab/analysis/reference_data, flagged cells shaded): "
            "Figure 1, Figure 6's fitted curve, Tables 3-6."
        ),
        "",
    ]
    if not run_dirs:
        lines += [
            (
                "Needs runs (`ttslab run ...`, then `ttslab figures RUN_DIR ...`): Figure 3 (Pass@1 histogram), "
                "Figures 4/5/7 (accuracy vs budget per policy x PRM), Figures 8/9 (per difficulty bin), "
                "Figure 6's per-PRM points, measured Table 5 and the measured inference FLOPs of Table 4. "
                "The study published no data for these."
            ),
            "",
        ]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def build_figures(run_dirs: list[str], out_dir: str = "paper_figures") -> list[Path]:
    """Write every figure the reference data and the given runs allow; returns the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = _reference_figures(out)
    if run_dirs:
        runs = [Run.load(d) for d in run_dirs]
        records = [r for run in runs for r in run.records]
        if not records:
            raise ValueError(f"build_figures: the run directories {run_dirs} hold no records")
        problems = len({str(r["problem_id"]) for r in records})
        budgets = sorted({int(r["budget"]) for r in records})
        note = f"{len(records)} records, {problems} problems, budgets {budgets}"
        entries += _run_figures(records, out, note)
    readme = _readme(out, entries, list(run_dirs))
    return [p for e in entries for p in e.files] + [readme]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ttslab figures", description=__doc__)
    parser.add_argument(
        "run_dirs", nargs="*", metavar="RUN_DIR", help="run directories written by `ttslab run`"
    )
    parser.add_argument("--out", default="paper_figures", help="output directory (default: paper_figures)")
    parser.add_argument("--reference-only", action="store_true",
                        help="only the figures the study's published numbers allow (no runs)")
    args = parser.parse_args(argv)
    run_dirs = args.run_dirs
    if not run_dirs and not args.reference_only:
        from ttslab.study import study_run_dirs

        # the CPU-scale study run shipped with ttslab; relative paths keep paper_figures/README.md portable
        run_dirs = [os.path.relpath(d) for d in study_run_dirs()]
    paths = build_figures(run_dirs, args.out)
    print(f"wrote {len(paths)} files to {args.out}/ (see {args.out}/README.md)")
    return 0
