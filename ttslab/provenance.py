"""Provenance of a run: which ttslab (version, git commit), which packages, which engines, which machine.

`collect()` never raises: anything it cannot find is recorded as None, so a run never fails for want of
its provenance (outside a git checkout, without git, on an OS without /proc).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
# distributions whose versions change results or speed (None: not installed)
PACKAGES = ("llama-cpp-python", "math-verify", "torch", "transformers", "hydra-core", "omegaconf", "datasets",
            "numpy", "pandas")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(package_dir: Path | None = None) -> dict[str, Any]:
    """Commit of the ttslab checkout this package was imported from; None when installed from a wheel.

    Only a work tree whose top level holds this very package counts (ttslab installed into some other
    project's repository has no commit of its own).
    """
    package_dir = Path(package_dir or PACKAGE_DIR)
    top = _git(["rev-parse", "--show-toplevel"], package_dir)
    if top is None or not package_dir.is_dir() or Path(top).resolve() != package_dir.parent.resolve():
        return {"commit": None, "dirty": None}
    commit = _git(["rev-parse", "HEAD"], package_dir)
    status = _git(["status", "--porcelain", "--untracked-files=no"], package_dir)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], check=False,
                                 capture_output=True, text=True, timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or None


def _ram_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _usable_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def machine() -> dict[str, Any]:
    ram = _ram_bytes()
    return {
        "platform": platform.platform(),
        "arch": platform.machine(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "ram_gib": None if ram is None else round(ram / 2**30, 1),
        "python": platform.python_version(),
    }


def collect(engines: dict | None = None) -> dict[str, Any]:
    """Everything a summary.json needs to say what produced a run.

    `engines`: versions of what the package cannot see by itself, e.g. {"sglang": "0.5.3"} read from a
    server's /get_server_info, or {"llama.cpp": "<build>"}; stored as given.
    """
    out: dict[str, Any] = {}
    for key, fn in (("ttslab", lambda: {"version": _ttslab_version(), **git_state()}),
                    ("packages", lambda: {d: _version(d) for d in PACKAGES}),
                    ("machine", machine)):
        try:
            out[key] = fn()
        except Exception as e:  # noqa: BLE001 (provenance must never fail a run)
            out[key] = {"error": f"{type(e).__name__}: {e}"}
    out["engines"] = dict(engines or {})
    return out


def _ttslab_version() -> str:
    from ttslab import __version__

    return __version__
