"""Shared fixtures: the real embedded model (loaded once per session), ../shared data, skip policy.

Tests that need something a user's clone may lack (../shared/data, torch) skip with a printed reason;
CI sets TTSLAB_REQUIRE_ALL=1, which turns every such skip into a failure (except, until CI's stage for
them, those of the tiers named in TTSLAB_LATER_TIERS).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

# No test has hub access: without this, huggingface_hub retries for ~20 s before it says so.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
REQUIRE_ALL = os.environ.get("TTSLAB_REQUIRE_ALL") == "1"
# Tiers that a later stage of .ci/run installs and runs (e.g. "torch": README command 2 runs without torch,
# as a user's would, then CI installs the CPU torch and runs `pytest -m torch` with nothing deferred):
# skips of tests marked with a deferred tier's name do not fail before that stage.
LATER_TIERS = {t.strip() for t in os.environ.get("TTSLAB_LATER_TIERS", "").split(",") if t.strip()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    deferred = LATER_TIERS & {m.name for m in item.iter_markers()}
    if REQUIRE_ALL and rep.skipped and not hasattr(rep, "wasxfail") and not deferred:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped, but TTSLAB_REQUIRE_ALL=1 forbids skips: {reason}"


def _module_tiers(path: Path) -> set[str]:
    """The marker names a test module gives all its tests (`pytestmark = pytest.mark.x` or a list of them),
    read from its source: a module that skips while importing never hands pytest its markers."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets):
            for sub in ast.walk(node.value):
                if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute) and sub.value.attr == "mark":
                    names.add(sub.attr)
    return names


def pytest_ignore_collect(collection_path, config):
    """A module whose module-level markers the -m expression excludes is not imported at all: pytest would
    import it only to deselect every test (test_rewards_classifier.py imports torch and transformers, ~7 s
    of the fast suite). Per-test markers only add names, which cannot turn `not model` true again."""
    markexpr = config.getoption("markexpr", "")
    if not markexpr or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    tiers = _module_tiers(collection_path)
    if not tiers:
        return None
    from _pytest.mark.expression import Expression

    return True if not Expression.compile(markexpr).evaluate(lambda name, **kw: name in tiers) else None


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter files it under "skipped"
def pytest_collectreport(report):
    """A whole module skipped at import (importorskip at its top) is a skip too: REQUIRE_ALL fails it."""
    if (REQUIRE_ALL and report.skipped and report.nodeid.endswith(".py")
            and not LATER_TIERS & _module_tiers(REPO / report.nodeid)):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{report.nodeid} skipped, but TTSLAB_REQUIRE_ALL=1 forbids skips: {reason}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "math500.jsonl").exists():
        pytest.skip(f"{SHARED_DATA} not found: the real MATH-500/AIME24 files live beside the repository in CI")
    return SHARED_DATA


@pytest.fixture(scope="session")
def engine():
    """The embedded Qwen2.5-Coder-0.5B through the real llama.cpp engine (one load for the session)."""
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed (pip install -e ".[cpu]")')
    from ttslab.engines.llamacpp import LlamaCppEngine

    eng = LlamaCppEngine("embedded:qwen2.5-coder-0.5b", max_sequences=16, n_ctx_per_sequence=2048)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def judge(engine):
    """The CPU judge PRM from conf/prm/cpu_judge.yaml on its own engine (shared weights)."""
    from omegaconf import OmegaConf

    from ttslab.engines.llamacpp import LlamaCppEngine
    from ttslab.rewards import build_reward_model

    engines = []

    def factory(spec):
        engines.append(LlamaCppEngine(spec, max_sequences=16, n_ctx_per_sequence=2048))
        return engines[-1]

    prm = build_reward_model(OmegaConf.load(REPO / "conf" / "prm" / "cpu_judge.yaml"), factory)
    yield prm
    for e in engines:
        e.close()
