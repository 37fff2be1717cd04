"""Engine construction from config: `engine.name` picks the backend (llamacpp on CPU, sglang on GPU)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from ttslab.engines.base import Completion, Engine, GenerationRequest, SamplingParams, TokenScores, TokenUsage

__all__ = ["Completion", "Engine", "GenerationRequest", "SamplingParams", "TokenScores", "TokenUsage", "build_engine"]

ENGINES = ("llamacpp", "sglang")


def build_engine(engine_cfg: Any, model_cfg: Any, role: str, run_dir: str | Path) -> Engine:
    """The engine serving `model_cfg` (a policy or PRM config) in `role` ("policy" or "prm")."""
    name = engine_cfg["name"]
    if name == "llamacpp":
        from ttslab.config import LlamaCppEngineConfig
        from ttslab.engines.llamacpp import LlamaCppEngine

        spec = model_cfg.get("model")
        if not spec:
            raise ValueError(
                f"{role} {model_cfg.get('name')!r} has no GGUF model spec (`model: null` in its config), so it "
                "cannot run on engine=llamacpp; use engine=sglang or set model: to a .gguf path / embedded:<name>"
            )
        # the schema's fields, with its defaults for keys a hand-made config leaves out (one source: config.py)
        settings = {f.name: engine_cfg.get(f.name, f.default) for f in fields(LlamaCppEngineConfig) if f.name != "name"}
        return LlamaCppEngine(spec, **settings)
    if name == "sglang":
        from ttslab.engines.sglang import SGLangEngine

        return SGLangEngine.from_config(engine_cfg, model_cfg, role, run_dir)
    raise ValueError(f"engine.name={name!r} is unknown; expected one of {', '.join(ENGINES)}")
