"""Console entry point `ttslab`.

    ttslab run [hydra overrides]        run an experiment (no overrides: experiment=quickstart)
    ttslab run -m key=a,b ...           a Hydra multirun sweep (basic launcher, or hydra/launcher=slurm)
    ttslab figures [RUN_DIR ...]        rebuild paper_figures/ from runs and the study's published numbers
    ttslab merge OUT_DIR SHARD_DIR ...  combine shard run directories (shard=i/k) into one run
    ttslab summary RUN_DIR              print a run's results table
"""

from __future__ import annotations

import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def _hydra_run(argv: list[str]) -> int:
    import hydra
    from omegaconf import DictConfig

    if not (CONF_DIR / "config.yaml").exists():
        print(f"ttslab: the Hydra configs were not found at {CONF_DIR}; install ttslab from its repository "
              'with pip install -e ".[cpu]"', file=sys.stderr)
        return 2
    overrides = [a for a in argv if not a.startswith("-")]
    if not overrides and not any(a in ("--help", "-h", "--cfg", "--info") for a in argv):
        argv = ["experiment=quickstart"] + argv

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def main(cfg: DictConfig) -> None:
        from ttslab.runner import run
        from ttslab.summary import format_summary

        run_dir = run(cfg)
        print(format_summary(run_dir))

    sys.argv = ["ttslab run"] + argv
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        return _hydra_run(rest)
    if cmd == "figures":
        from ttslab.figures import main as figures_main

        return figures_main(rest)
    if cmd == "merge":
        from ttslab.results import merge_runs

        if len(rest) < 2:
            print("usage: ttslab merge OUT_DIR SHARD_DIR [SHARD_DIR ...]", file=sys.stderr)
            return 2
        n = merge_runs(rest[1:], rest[0])
        from ttslab.summary import write_summary

        write_summary(Path(rest[0]))
        print(f"merged {len(rest) - 1} shard(s) into {rest[0]}: {n} records")
        return 0
    if cmd == "summary":
        from ttslab.summary import format_summary

        for d in rest:
            print(format_summary(Path(d)))
        return 0
    print(f"ttslab: unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
