"""`ttslab plan`: print the GPU plan (ttslab/plan.py) of an experiment's sweep points, or the README's table."""

from __future__ import annotations

import sys

from ttslab.engines.gpu_memory import ALIASES, GPU_TYPES
from ttslab.errors import ConfigError
from ttslab.plan import plan_preset, readme_table

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
