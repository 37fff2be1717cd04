"""ttslab.provenance.collect: real git, real package metadata, real machine facts; never fails outside a checkout."""

import json
import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

import ttslab
from ttslab import provenance

REPO = Path(__file__).resolve().parent.parent


def test_collect_in_this_checkout():
    p = provenance.collect({"llama.cpp": "b1234", "sglang": None})
    json.dumps(p)  # goes into summary.json as is
    assert p["ttslab"]["version"] == ttslab.__version__
    if shutil.which("git") and (REPO / ".git").exists():
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout.strip()
        assert p["ttslab"]["commit"] == head and len(head) == 40
        assert isinstance(p["ttslab"]["dirty"], bool)
    assert p["engines"] == {"llama.cpp": "b1234", "sglang": None}
    assert set(provenance.PACKAGES) == set(p["packages"])
    for dist in ("hydra-core", "datasets", "math-verify"):  # core dependencies: always installed
        assert p["packages"][dist] == metadata.version(dist)
    m = p["machine"]
    assert m["cores"] == os.cpu_count() and 1 <= m["usable_cores"] <= m["cores"]
    assert m["ram_gib"] > 0.1 and m["platform"] and m["python"]
    if Path("/proc/cpuinfo").exists():
        assert m["cpu_model"]


def test_missing_packages_are_none(monkeypatch):
    monkeypatch.setattr(provenance, "PACKAGES", ("hydra-core", "no-such-distribution-ttslab"))
    assert provenance.collect()["packages"] == {"hydra-core": metadata.version("hydra-core"),
                                                "no-such-distribution-ttslab": None}


def test_outside_a_checkout(tmp_path, monkeypatch):
    # an installed copy (no .git above it): no commit, no failure
    pkg = tmp_path / "site-packages" / "ttslab"
    pkg.mkdir(parents=True)
    monkeypatch.setattr(provenance, "PACKAGE_DIR", pkg)
    assert provenance.collect()["ttslab"] == {"version": ttslab.__version__, "commit": None, "dirty": None}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to build a foreign repository")
def test_inside_someone_elses_repository(tmp_path, monkeypatch):
    # ttslab vendored or pip-installed into another project's git work tree: that commit is not ttslab's
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    pkg = tmp_path / "vendor" / "ttslab"
    pkg.mkdir(parents=True)
    monkeypatch.setattr(provenance, "PACKAGE_DIR", pkg)
    assert provenance.git_state()["commit"] is None


def test_without_git_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "")
    p = provenance.collect()
    assert p["ttslab"]["commit"] is None and p["machine"]["cores"] == os.cpu_count()
