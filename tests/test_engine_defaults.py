"""One source for the CPU engine's settings: the engine's constructor defaults are the config schema's."""

import dataclasses
import inspect

from ttslab.config import LlamaCppEngineConfig
from ttslab.engines.llamacpp import LlamaCppEngine


def test_the_engine_constructor_defaults_are_the_schemas():
    schema = {f.name: f.default for f in dataclasses.fields(LlamaCppEngineConfig) if f.name != "name"}
    params = inspect.signature(LlamaCppEngine.__init__).parameters
    defaults = {k: p.default for k, p in params.items() if k not in ("self", "model")}
    assert defaults == schema  # the same keys and values (n_ctx_per_sequence was 4096 here, 3072 there)


def test_build_engine_passes_every_schema_setting(monkeypatch):
    from omegaconf import OmegaConf

    from ttslab import engines
    from ttslab.engines import llamacpp

    seen = {}
    monkeypatch.setattr(llamacpp.LlamaCppEngine, "__init__", lambda self, model, **kw: seen.update(kw, model=model))
    cfg = OmegaConf.structured(LlamaCppEngineConfig(max_sequences=5))
    engines.build_engine(cfg, {"name": "p", "model": "embedded:x"}, "policy", ".")
    expected = {k: v for k, v in dataclasses.asdict(LlamaCppEngineConfig(max_sequences=5)).items() if k != "name"}
    assert seen == {**expected, "model": "embedded:x"}
