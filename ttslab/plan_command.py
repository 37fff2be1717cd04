"""`ttslab plan`: the GPU plan (ttslab/plan.py) of every sweep point of an experiment, or the README's table."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

from ttslab.engines.gpu_memory import ALIASES, GPU_TYPES, GPUType, parse_gpus
from ttslab.errors import ConfigError
from ttslab.plan import GPUPlan, build_plan

CONF = Path(__file__).resolve().parent.parent / "conf"


def experiment_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def sweep_points(overrides: Sequence[str]) -> list[list[str]]:
    """The override lists of every point of the experiment's Hydra sweep (one point if none); an unknown
    experiment is a ConfigError naming the known ones."""
    from omegaconf import OmegaConf

    exp = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), None)
    params: dict[str, str] = {}
    if exp:
        path = CONF / "experiment" / f"{exp}.yaml"
        if not path.is_file():
            raise ConfigError(f"experiment={exp!r} is unknown: choose one of {', '.join(experiment_names())}")
        swept = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params")
        params = {str(k): str(v) for k, v in (swept or {}).items()}
    given = {o.split("=", 1)[0] for o in overrides if "=" in o}
    axes = [[f"{k}={v}" for v in vals.split(",")] for k, vals in params.items() if k not in given]
    return [list(overrides) + list(point) for point in itertools.product(*axes)]


def plan_points(overrides: Sequence[str], gpu_sets: Sequence[tuple[GPUType, int]]) -> dict[tuple[str, int], tuple[list[GPUPlan], list[str]]]:
    """For each GPU set, the plans of every sweep point that fits and the errors of those that do not
    (each point composed once; a point that does not compose raises)."""
    from ttslab.config import compose

    out: dict[tuple[str, int], tuple[list[GPUPlan], list[str]]] = {(g.name, n): ([], []) for g, n in gpu_sets}
    for point in sweep_points(overrides):
        label = " ".join(p for p in point if p not in overrides)
        cfg = compose(list(point))  # a bad override is the user's to fix, not a point that does not fit
        for g, n in gpu_sets:
            try:
                out[(g.name, n)][0].append(build_plan(cfg, g, n))
            except ConfigError as e:
                out[(g.name, n)][1].append(f"{label}: {e}" if label else str(e))
    return out


def plan_preset(overrides: Sequence[str], gpus: str) -> tuple[list[GPUPlan], list[str]]:
    """Plans of every sweep point that fits, and the errors of those that do not."""
    gpu, count = parse_gpus(gpus)
    return plan_points(overrides, [(gpu, count)])[(gpu.name, count)]


PRESETS = ("gpu_smoke", "fig4_math500", "fig5_aime24", "fig7_qwen_sizes", "fig8_llama_difficulty",
           "table3_small_tts", "table3_cot_baselines")
TABLE_GPUS = ("1xH100", "1xH200", "8xH100")


def readme_table(presets: Sequence[str] = PRESETS, gpus: Sequence[str] = TABLE_GPUS) -> str:
    """Markdown: per preset and GPU set, the sweep points that fit and the GPU-hours ceiling of those."""
    head = "| preset | points | " + " | ".join(gpus) + " |\n|---|---|" + "---|" * len(gpus)
    rows = [head]
    sets = [parse_gpus(g) for g in gpus]
    for preset in presets:
        results = plan_points([f"experiment={preset}"], sets)
        cells, n_points = [], 0
        for g, n in sets:
            plans, errors = results[(g.name, n)]
            n_points = len(plans) + len(errors)
            hours = sum(p.gpu_hours for p in plans)
            h = f"{hours:.2f}" if hours < 1 else f"{hours:.1f}" if hours < 10 else f"{hours:,.0f}"
            cells.append(f"{len(plans)}/{n_points} fit, ≤{h} GPU-h" if plans else f"0/{n_points} fit")
        rows.append(f"| {preset} | {n_points} | " + " | ".join(cells) + " |")
    return "\n".join(rows)



USAGE = """usage: ttslab plan [overrides ...] gpus=<count>x<type>
       ttslab plan --readme-table
Prints, per sweep point of the experiment, each server's weights, the memory it keeps outside SGLang's
static pool (runtime reserve, attention buffers), its KV cache, concurrent sequences and exact launch
flags, and a ceiling of tokens and GPU-hours. GPU types: """ + ", ".join(GPU_TYPES) + """ (aliases """ + \
    ", ".join(f"{a}={t}" for a, t in ALIASES.items()) + """).
Exit status 2 when a point cannot fit."""


def main(argv: list[str]) -> int:
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv == ["--readme-table"]:
        print(readme_table())
        return 0
    gpus = [a for a in argv if a.startswith("gpus=")]
    overrides = [a for a in argv if not a.startswith("gpus=")]
    if len(gpus) != 1:
        print(f"ttslab plan: give the GPUs once, e.g. gpus=1xH100-80\n{USAGE}", file=sys.stderr)
        return 2
    try:
        plans, errors = plan_preset(overrides, gpus[0].split("=", 1)[1])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in plans:
        print(p.render())
    for e in errors:
        print(f"does not fit: {e}")
    if plans:
        total = sum(p.gpu_hours for p in plans)
        print(f"total over {len(plans)} point{'s' if len(plans) > 1 else ''} that fit: at most {total:,.1f} GPU-hours")
    return 2 if errors else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
