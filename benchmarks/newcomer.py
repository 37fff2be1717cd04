"""A newcomer's first twenty minutes, timed: README command 1 (install, then the quickstart) and README
command 2 (install, then the fast suite), from a clean clone in a temporary directory, in a fresh venv.

    flock /tmp/ttslab-model.lock python benchmarks/newcomer.py [--keep DIR] [--cache]

The commands are read from the README's first code block, so the numbers are those of the commands a reader
pastes. pip's cache is off unless --cache (a newcomer has none): downloads count. The install of command 1 is
also split into the llama.cpp build (the same pip command for llama-cpp-python alone, timed first in a venv
of its own) and the rest (downloads and installs). The quickstart's per-method lines ("(cot: 17 s)") give
when each method's rows reached the screen. Prints a Markdown table with the CPU it ran on; the README's time
claims are copied from it.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The first ```bash block of the README: one command per line, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.DOTALL).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def cpu_name() -> str:
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or "unknown CPU"
    name = re.search(r"Model name:\s*(.+)", info)
    flags = re.search(r"Flags:\s*(.+)", info)
    isa = ""
    if flags:
        f = flags.group(1).split()
        isa = "AVX-512" if "avx512f" in f else "AVX2 only" if "avx2" in f else "no AVX2"
    return f"{name.group(1).strip() if name else 'unknown CPU'}, {os.cpu_count()} cores, {isa}"


def timed(command: str, cwd: Path, env: dict[str, str], log: Path) -> tuple[float, str]:
    """Run one shell command (the venv's bin first on PATH); returns (seconds, output). Fails loudly."""
    start = time.perf_counter()
    res = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    log.write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        sys.exit(f"newcomer: `{command}` failed (exit {res.returncode}) after {elapsed:.0f} s; log: {log}")
    return elapsed, res.stdout + res.stderr


def venv_env(venv: Path, cache: bool) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    env.pop("TTSLAB_REQUIRE_ALL", None)  # a newcomer's clone: missing optional parts skip
    if not cache:
        env["PIP_NO_CACHE_DIR"] = "1"
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", help="work in this directory and keep it (default: a temporary one, removed)")
    ap.add_argument("--cache", action="store_true", help="let pip use its cache (default: off, as on a new machine)")
    args = ap.parse_args(argv)
    cmd1, cmd2 = readme_commands()[:2]
    install1, run1 = cmd1.split(" && ")
    install2, tests2 = cmd2.split(" && ")
    tmp = tempfile.TemporaryDirectory(prefix="ttslab-newcomer-") if not args.keep else None
    work = Path(args.keep or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    clone = work / "ttslab"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO}", str(clone)], check=True)
    rows = []

    # the llama.cpp build alone: README command 1's environment, llama-cpp-python's pin, nothing else
    pin = next(line.strip().strip('",') for line in (clone / "pyproject.toml").read_text().splitlines()
               if "llama-cpp-python==" in line)
    prefix = install1.split("pip install")[0]  # e.g. CMAKE_ARGS="..."
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv-build")], check=True)
    env = venv_env(work / "venv-build", args.cache)
    build, _ = timed(f"{prefix}pip wheel -q --no-deps -w {work / 'wheels'} {shlex.quote(pin)}", clone, env,
                     work / "build.log")

    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    env = venv_env(work / "venv", args.cache)
    t_install1, _ = timed(install1, clone, env, work / "install1.log")
    rows += [("README command 1, install part", t_install1),
             ("  of which the llama.cpp build (measured alone)", build),
             ("  of which downloads and installs (the rest)", max(0.0, t_install1 - build))]
    t_run, out = timed(run1, clone, env, work / "quickstart.log")
    rows.append(("`ttslab run` (the quickstart)", t_run))
    for name, secs in re.findall(r"^\((\w+): (\d+) s\)$", out, re.MULTILINE):
        rows.append((f"  {name}'s rows on screen after", float(secs)))
    t_install2, _ = timed(install2, clone, env, work / "install2.log")
    rows.append(("README command 2, install part (after command 1)", t_install2))
    t_fast, out = timed(tests2 + ' -m "not model" -q', clone, env, work / "fast_suite.log")
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    rows.append((f"fast suite `pytest -m \"not model\"` ({summary.strip('= ')})", t_fast))

    print(f"\nMeasured by benchmarks/newcomer.py on {cpu_name()}, {time.strftime('%Y-%m-%d')}, pip cache "
          f"{'on' if args.cache else 'off'}, from a clean clone of {REPO.name} at "
          f"{subprocess.run(['git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, check=False).stdout.strip()}:\n")
    print("| step | seconds |\n|---|---|")
    for step, secs in rows:
        print(f"| {step} | {secs:.0f} |")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
