"""The `ttslab` command: one entry point, a subcommand per job, errors a person can act on.

A user-facing error (ttslab.errors: a bad config value, file, record, run directory) prints one line on
stderr and exits 2 (a run that started but could not finish: 1); `TTSLAB_TRACEBACK=1` shows the
traceback as well. `ttslab run` is a Hydra app: overrides, `--cfg job`, `-m` sweeps, launchers and
shell completion (`eval "$(ttslab -sc install=bash)"`) are Hydra's.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path

PROG = "ttslab"
SUBCOMMANDS: dict[str, str] = {
    "run": "run an experiment: Hydra overrides of conf/ (no override: the quickstart); --help lists them",
    "plan": "GPU memory and time plan of an experiment before launching it: ttslab plan <overrides> gpus=1xH100-80",
    "summary": "print the results table of run directories",
    "merge": "combine shard run directories (shard=i/k) into one run",
    "figures": "rebuild paper_figures/ from runs and the study's published numbers",
    "export": "write a run's records as Parquet for use elsewhere",
    "site": "build the companion site (README, executed notebooks, paper_figures) as static files",
}
# Hydra's own flags: with any of these, `ttslab run` hands the command line to Hydra unchanged
_RUN_FOOTER = """Common overrides:
  experiment=<preset>             quickstart (default), cpu_study, gpu_smoke, fig4_math500, ..., none
  dataset=bundled|math500|aime24  dataset.path=<file.jsonl or hub id>  dataset.limit=N  'dataset.levels=[1,2]'
  method=cot|best_of_n|beam_search|dvts  method.budget=N  'method.budgets=[4,16]'  method.beam_width=M
                                  (a method given here runs alone, instead of the preset's plan)
  policy=<option>  prm=<option>|none  engine=llamacpp|sglang  run_dir=<dir>  seed=N  progress=false

  ttslab run [overrides] --cfg job    print the composed config and run nothing
  ttslab run -m key=a,b ...           a sweep (Hydra multirun; hydra/launcher=slurm for a cluster)
  ttslab run --hydra-help             Hydra's own flags
Errors are one line; TTSLAB_TRACEBACK=1 shows the full traceback."""
HYDRA_FLAGS = ("-m", "--multirun", "--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i",
               "-sc", "--shell-completion", "--resolve", "-p", "--package")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ttslab")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _fail(err: BaseException) -> int:
    from ttslab.errors import TTSLabError

    if os.environ.get("TTSLAB_TRACEBACK") == "1":
        raise err
    print(f"{PROG}: error: {err}", file=sys.stderr)
    return err.exit_code if isinstance(err, TTSLabError) else 1


_OS_FIXES = {
    errno.ENOSPC: "the disk is full: free space and run again (finished records are kept)",
    errno.EDQUOT: "the disk quota is exceeded: free space and run again (finished records are kept)",
    errno.EROFS: "the file system is read-only: choose a writable location",
    errno.EACCES: "permission denied: choose a location you can write, or fix its permissions",
    errno.EPERM: "not permitted: choose a location you can write, or fix its permissions",
    errno.ENOENT: "no such file or directory: check the path",
    errno.ENOTDIR: "a part of the path is a file, not a directory: check the path",
    errno.EISDIR: "it is a directory: expected a file",
    errno.ELOOP: "it is a symbolic link (or a loop of them): ttslab never writes through links",
}


def engine_error(err: BaseException) -> bool:
    """An engine's own error (llama.cpp could not load, an SGLang server died...): the user acts on it."""
    return isinstance(err, RuntimeError) and type(err).__module__.startswith("ttslab.engines")


def os_error_line(err: OSError) -> str:
    """An OSError as one line naming the file and what to do (no traceback: it is the machine's state)."""
    where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f) or "a file"
    fix = _OS_FIXES.get(err.errno or -1, "check the path and the disk, then run again")
    return f"{where}: {err.strerror or err} ({fix})"


class RedactHydraOutputs:
    """Hydra callback (conf/config.yaml hydra.callbacks): rewrite the config copies Hydra has just saved
    (.hydra/config.yaml, hydra.yaml, overrides.yaml, the sweep's multirun.yaml) with every secret redacted
    (ttslab.records.redacted), before the job starts. Secrets given on the command line never reach Hydra
    at all (`_split_secrets`); this covers those set in a config file."""

    def on_job_start(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf, open_dict

        from ttslab.records import redact_override, redacted
        from ttslab.writes import write_atomic

        def save(data, path: Path) -> None:
            if path.is_file():
                write_atomic(path, OmegaConf.to_yaml(OmegaConf.create(data)))

        hc = config.hydra
        if hc.output_subdir is not None:
            sub = Path(hc.runtime.output_dir) / str(hc.output_subdir)
            task = OmegaConf.to_container(config, resolve=False)
            task.pop("hydra", None)
            save(redacted(task), sub / "config.yaml")
            save({"hydra": redacted(OmegaConf.to_container(hc, resolve=False), "hydra")}, sub / "hydra.yaml")
            save([redact_override(o) for o in hc.overrides.task], sub / "overrides.yaml")
        multirun = Path(str(OmegaConf.select(config, "hydra.sweep.dir", default="") or "")) / "multirun.yaml"
        if "MULTIRUN" in str(hc.mode) and multirun.is_file():
            data = OmegaConf.load(multirun)
            with open_dict(data):
                save(redacted(OmegaConf.to_container(data, resolve=False)), multirun)

    def __getattr__(self, name):  # Hydra calls every on_* hook; the others have nothing to do
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)


def _split_secrets(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(overrides Hydra may see, secret overrides kept from it): Hydra writes its overrides into
    .hydra/, multirun.yaml, sweep directory names and its log lines, so secrets never reach it."""
    from ttslab.errors import ConfigError
    from ttslab.records import is_secret

    public, secret = [], []
    for o in overrides:
        key, eq, _ = o.partition("=")
        if eq and is_secret(key):
            from hydra.core.override_parser.overrides_parser import OverridesParser

            try:
                sweep = OverridesParser.create().parse_override(o).is_sweep_override()
            except Exception:  # noqa: BLE001 - Hydra's parser raises its own types; compose reports them
                sweep = False
            if sweep:
                raise ConfigError(f"{key}: a secret cannot be swept (it would name sweep directories); give one value")
            secret.append(o)
        else:
            public.append(o)
    return public, secret


def _with_secrets(cfg, secrets: list[str]):
    """The job's config with the secret overrides applied (as Hydra would have)."""
    if not secrets:
        return cfg
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict

    with open_dict(cfg):
        for o in OverridesParser.create().parse_overrides(secrets):
            if o.is_delete():
                OmegaConf.update(cfg, o.key_or_group, None, force_add=True)
            else:
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True, force_add=True)
    return cfg


def _printing_job_config(flags: list[str]) -> bool:
    """`--cfg job` (or `-c job`, `--cfg=job`) alone: print the job's config and run nothing."""
    values = [flags[i + 1] for i, f in enumerate(flags[:-1]) if f in ("--cfg", "-c")]
    values += [f.split("=", 1)[1] for f in flags if f.startswith("--cfg=")]
    others = set(flags) - {"--cfg", "-c", "--resolve", *values} - {f for f in flags if f.startswith("--cfg=")}
    return values == ["job"] and not others


def _first_job(overrides: list[str]) -> list[str]:
    """A sweep's overrides with each swept key at its first value: the first job, composed up front so a
    bad key fails as one line before Hydra starts."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for raw, o in zip(overrides, OverridesParser.create().parse_overrides(overrides)):
        if o.is_sweep_override():
            first = next(iter(o.sweep_string_iterator()), None)
            if first is None:
                continue
            out.append(f"{o.get_key_element()}={first}")
        else:
            out.append(raw)
    return out


# ---------------------------------------------------------------- run
def _hydra_main(argv: list[str]) -> int:
    """Hand the command line to Hydra (sweeps, --cfg, --help, completion); errors inside a job: one line."""
    import hydra
    from omegaconf import DictConfig

    from ttslab.config import register_schemas, single_method_overrides
    from ttslab.errors import TTSLabError

    register_schemas()

    flags, overrides = _split_hydra_args(argv)
    public, secrets = _split_secrets(overrides)

    @hydra.main(config_path="pkg://ttslab.conf", config_name="config", version_base="1.3")
    def job(cfg: DictConfig) -> None:
        from ttslab.runner import run
        from ttslab.summary import format_summary

        try:
            print(format_summary(run(_with_secrets(cfg, secrets))))
        except TTSLabError as e:
            raise SystemExit(_fail(e)) from None
        except OSError as e:
            if os.environ.get("TTSLAB_TRACEBACK") == "1":
                raise
            print(f"{PROG}: error: {os_error_line(e)}", file=sys.stderr)
            raise SystemExit(1) from None
        except RuntimeError as e:
            if not engine_error(e) or os.environ.get("TTSLAB_TRACEBACK") == "1":
                raise
            print(f"{PROG}: error: {' '.join(str(e).split())} (finished records are kept; TTSLAB_TRACEBACK=1 "
                  "shows where)", file=sys.stderr)
            raise SystemExit(1) from None

    if _printing_job_config(flags):  # Hydra would print the config as composed: print it redacted
        from omegaconf import OmegaConf

        from ttslab.config import compose
        from ttslab.records import redacted

        resolve = "--resolve" in flags
        print(OmegaConf.to_yaml(OmegaConf.create(redacted(compose(overrides), resolve=resolve))), end="")
        return 0
    if not set(flags) & {"-sc", "--shell-completion", "--hydra-help"}:
        from ttslab.config import compose

        # a bad override fails here as one line, before Hydra's own report (a sweep: its first job)
        try:
            first = _first_job(overrides) if set(flags) & {"-m", "--multirun"} else overrides
        except Exception:  # noqa: BLE001 - Hydra's override grammar errors: compose reports them as one line
            first = overrides
        try:
            compose(first)
        except TTSLabError as e:  # Hydra's messages quote overrides: never a secret value
            msg = str(e)
            for s in secrets:
                value = s.partition("=")[2]
                if value:
                    msg = msg.replace(value, "<not saved>")
            raise type(e)(msg) from None
    sys.argv = [sys.argv[0], *single_method_overrides(public), *flags]  # argparse: positionals first
    try:
        job()
    except SystemExit as e:
        return int(e.code or 0)
    except (ValueError, LookupError) as e:  # Hydra's own usage errors (e.g. -m with --cfg)
        from ttslab.config import one_line
        from ttslab.errors import ConfigError

        raise ConfigError(f"ttslab run: {one_line(e)}") from e
    return 0


def run_help() -> str:
    """`ttslab run --help`: the config groups and their options (the schemas are not options)."""
    from importlib.resources import files

    from ttslab.config import CONFIG_MODULE

    conf = files(CONFIG_MODULE)
    groups = sorted(p.name for p in conf.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__"))
    lines = ["usage: ttslab run [KEY=VALUE ...] [--cfg job] [-m]", "",
             "Run an experiment. With no override: the quickstart (conf/experiment/quickstart.yaml).", "",
             "Config groups (choose one with group=option):"]
    for g in groups:
        opts = sorted(p.name[:-5] for p in (conf / g).iterdir() if p.name.endswith(".yaml"))
        lines.append(f"  {g}: {', '.join(opts)}")
    return "\n".join(lines + ["", _RUN_FOOTER])


_VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "-sc", "--shell-completion", "--config-path", "-cp",
                "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun")


def _split_hydra_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Hydra's flags (with their values) and the overrides, to hand them over overrides first."""
    flags, overrides, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a in _VALUE_FLAGS and i + 1 < len(argv):
            flags += [a, argv[i + 1]]
            i += 2
            continue
        (flags if a.startswith("-") else overrides).append(a)
        i += 1
    return flags, overrides


def cmd_run(argv: list[str]) -> int:
    if any(a in ("--help", "-h") for a in argv):
        print(run_help())
        return 0
    if any(a in HYDRA_FLAGS or a.startswith(("--cfg=", "--package=")) for a in argv):
        return _hydra_main(argv)
    bad = [a for a in argv if a.startswith("-")]
    if bad:
        raise _usage_error(f"ttslab run: unknown option {bad[0]!r}; overrides are KEY=VALUE (see ttslab run --help)")
    from ttslab.config import compose
    from ttslab.runner import run
    from ttslab.summary import format_summary

    print(format_summary(run(compose(argv))))
    return 0


# ---------------------------------------------------------------- the small subcommands
def _usage_error(message: str):
    from ttslab.errors import ConfigError

    return ConfigError(message)


def _parser(name: str, description: str) -> argparse.ArgumentParser:
    class Parser(argparse.ArgumentParser):
        def error(self, message: str):  # usage errors: one line, exit 2, like every other bad input
            raise _usage_error(f"{self.prog}: {message} (see {self.prog} --help)")

    return Parser(prog=f"{PROG} {name}", description=description)


def cmd_summary(argv: list[str]) -> int:
    p = _parser("summary", SUBCOMMANDS["summary"])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", type=Path)
    args = p.parse_args(argv)
    from ttslab.errors import InputError
    from ttslab.results import RECORDS
    from ttslab.summary import format_summary

    for d in args.run_dirs:
        if not (d / RECORDS).exists():  # (a FIFO or directory there is named by read_records, never read)
            raise InputError(f"{d}: no {RECORDS} there; expected a run directory written by `ttslab run`")
        print(format_summary(d))
    return 0


def cmd_merge(argv: list[str]) -> int:
    p = _parser("merge", SUBCOMMANDS["merge"])
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path)
    p.add_argument("shard_dirs", nargs="+", metavar="SHARD_DIR", type=Path)
    args = p.parse_args(argv)
    from ttslab.provenance import collect
    from ttslab.results import merge_runs
    from ttslab.summary import write_summary

    n = merge_runs(args.shard_dirs, args.out_dir)
    write_summary(args.out_dir, provenance=collect({"merged_from": [str(d) for d in args.shard_dirs]}))
    print(f"merged {len(args.shard_dirs)} shard(s) into {args.out_dir}: {n} records")
    return 0


def _delegate(module: str, func: str = "main") -> Callable[[list[str]], int]:
    def call(argv: list[str]) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), func)(argv) or 0)

    return call


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": cmd_run,
    "plan": _delegate("ttslab.plan_command"),
    "summary": cmd_summary,
    "merge": cmd_merge,
    "figures": _delegate("ttslab.figures"),
    "export": _delegate("ttslab.export"),
    "site": _delegate("ttslab.site"),
}


def _help() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"usage: {PROG} [--version] [--help] COMMAND [ARGS]", "",
             "ttslab: external test-time scaling (Best-of-N, beam search, DVTS with PRMs) for LLM math reasoning.",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in SUBCOMMANDS.items()]
    lines += ["", "examples:",
              "  ttslab run                                   the quickstart on the embedded CPU model",
              "  ttslab run method=beam_search method.budget=8 dataset.limit=5",
              "  ttslab run dataset=math500 dataset.limit=10 run_dir=runs/math500-10   the quickstart on 10 MATH-500 problems",
              "  ttslab run --cfg job                         print the composed config, run nothing",
              "  ttslab summary runs/quickstart-bundled",
              "", f"`{PROG} COMMAND --help` for each command. Full tracebacks of errors: TTSLAB_TRACEBACK=1."]
    return "\n".join(lines)


def _complete(argv: list[str]) -> int:
    """Hydra's completion script calls `ttslab -sc query=bash` with the whole line in COMP_LINE."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    if argv[1:2] and argv[1].startswith("query=") and (len(words) < 2 or (len(words) == 2 and not line.endswith(" "))):
        prefix = words[1] if len(words) == 2 else ""
        print(" ".join(c for c in COMMANDS if c.startswith(prefix)))
        return 0
    if argv[1:2] and argv[1].startswith("query=") and words[1] != "run":
        return 0  # the other subcommands take paths: the shell's default completion
    if len(words) >= 2:  # Hydra completes `ttslab <overrides>`: drop the subcommand from the line
        os.environ["COMP_LINE"] = line.replace(f" {words[1]}", "", 1)
    return _hydra_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_help())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"{PROG} {_version()}")
        return 0
    if argv[0] in ("-sc", "--shell-completion"):
        return _complete(argv)
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"{PROG}: error: unknown command {cmd!r}; expected one of {', '.join(COMMANDS)} (see {PROG} --help)",
              file=sys.stderr)
        return 2
    try:
        return COMMANDS[cmd](rest)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished records are kept: rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as e:  # the disk, permissions, a read-only file system: the machine's state, not a bug
        if os.environ.get("TTSLAB_TRACEBACK") == "1":
            raise
        print(f"{PROG}: error: {os_error_line(e)}", file=sys.stderr)
        return 1 if cmd == "run" else 2
    except Exception as e:
        from ttslab.errors import TTSLabError

        if isinstance(e, TTSLabError):
            return _fail(e)
        if engine_error(e) and os.environ.get("TTSLAB_TRACEBACK") != "1":
            print(f"{PROG}: error: {' '.join(str(e).split())} (finished records are kept; TTSLAB_TRACEBACK=1 "
                  "shows where)", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
