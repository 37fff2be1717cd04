"""Process reward models: per-step scores in [0, 1], chosen by a conf/prm/*.yaml file (never by model name).

`type` in the config picks the builder in `BUILDERS` (the one registry; `PRM_TYPES` is its keys):

* `logprob` / `judge` → `LogprobPRM` through an `Engine` (Math-Shepherd, RLHFlow, the CPU judge):
  P(good_token) renormalised over {good_token, bad_token} right after the formatted prompt.
* `classifier` → `classifier.ClassifierPRM` with transformers in-process (Qwen2.5-Math-PRM, Skywork).
* `confidence` → `confidence.ConfidencePRM`: the reading model's (normally the policy's) own token
  log-probabilities per step (mean / lowest window / tail), teacher-forced with KV reuse.
* `probe` → `probe.ProbePRM`: a trained logistic head on the reading model's hidden state at each
  step's end (a shipped .npz file).
* `none` → no PRM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ttslab.engines.base import Engine
from ttslab.rewards.base import RewardModel, ScoreRequest, StepScores
from ttslab.rewards.logprob import LogprobPRM

__all__ = ["BUILDERS", "ENGINE_PRM_TYPES", "IN_PROCESS_PRM_TYPES", "PRM_TYPES", "LogprobPRM", "RewardModel", "ScoreRequest", "StepScores", "build_reward_model"]


def _plain(cfg: Any) -> dict[str, Any]:
    """An omegaconf node or a mapping as a plain dict."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:
        pass
    if not isinstance(cfg, Mapping):
        raise TypeError(f"prm config must be a mapping, got {type(cfg).__name__}")
    return dict(cfg)


def _require(cfg: Mapping[str, Any], *keys: str) -> None:
    missing = [k for k in keys if cfg.get(k) in (None, "")]
    if missing:
        raise ValueError(
            f"prm config {cfg.get('name', '?')!r} of type {cfg.get('type')!r} needs keys {missing}"
        )


def _normalise(cfg: dict[str, Any]) -> dict[str, Any]:
    # The top-level `step_tag` is part of the format (Math-Shepherd " ки", Qwen "<extra_0>", Skywork "\n").
    options = dict(cfg.get("format_options") or {})
    if cfg.get("step_tag") is not None:
        options.setdefault("step_tag", cfg["step_tag"])
    return {**cfg, "format_options": options}


def _engine(cfg: Mapping[str, Any], engine_factory: Callable[[str], Engine] | None) -> Engine:
    if engine_factory is None:
        raise ValueError(f"prm {cfg['name']!r} (type {cfg['type']}) needs an engine_factory to create its engine")
    return engine_factory(cfg["model"])


def _build_logprob(cfg: dict[str, Any], engine_factory) -> RewardModel:
    _require(cfg, "name", "format", "model", "good_token", "bad_token")
    cfg = _normalise(cfg)
    return LogprobPRM(
        _engine(cfg, engine_factory),
        format=cfg["format"],
        good_token=cfg["good_token"],
        bad_token=cfg["bad_token"],
        name=cfg["name"],
        format_options=cfg["format_options"],
        bos_token=cfg.get("bos_token"),
    )


def _build_classifier(cfg: dict[str, Any], engine_factory) -> RewardModel:
    _require(cfg, "name", "format", "hf_id", "head")
    cfg = _normalise(cfg)
    try:
        from ttslab.rewards.classifier import ClassifierPRM
    except ImportError as err:
        raise ImportError(
            f"prm {cfg['name']!r} is a classifier-head PRM run with transformers in-process; "
            f'install the GPU extra (pip install -e ".[gpu]") and a torch build: {err}'
        ) from err
    return ClassifierPRM.from_config(cfg)


def _options(cfg: Mapping[str, Any], allowed: set[str]) -> dict[str, Any]:
    options = dict(cfg.get("options") or {})
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"prm {cfg['name']!r}: prm.options has keys {unknown}; allowed: {sorted(allowed)}")
    if not options.get("family"):
        raise ValueError(f"prm {cfg['name']!r} (type {cfg['type']}) needs prm.options.family: the prompt family of "
                         "the policy whose steps it reads (e.g. qwen2.5)")
    return options


def _build_confidence(cfg: dict[str, Any], engine_factory) -> RewardModel:
    from ttslab.rewards.confidence import ConfidencePRM

    _require(cfg, "name", "model")
    o = _options(cfg, {"family", "statistic", "window", "tail"})
    return ConfidencePRM(_engine(cfg, engine_factory), o["family"], o.get("statistic", "mean"),
                         int(o.get("window", 16)), int(o.get("tail", 16)), name=cfg["name"])


def _build_probe(cfg: dict[str, Any], engine_factory) -> RewardModel:
    from ttslab.rewards.probe import ProbeHead, ProbePRM, head_path

    _require(cfg, "name", "model")
    o = _options(cfg, {"family", "head"})
    if not o.get("head"):
        raise ValueError(f"prm {cfg['name']!r} (type probe) needs prm.options.head: package:<file> or a path")
    head = ProbeHead.load(head_path(o["head"]))
    trained_on = head.meta.get("model")
    if trained_on and trained_on != cfg["model"]:
        raise ValueError(f"prm {cfg['name']!r}: the probe head {o['head']!r} was trained on hidden states of "
                         f"{trained_on!r}, but prm.model is {cfg['model']!r}")
    return ProbePRM(_engine(cfg, engine_factory), o["family"], head, name=cfg["name"])


# type -> builder(cfg, engine_factory); `None` type builds no PRM.
BUILDERS: dict[str, Callable[[dict[str, Any], Any], RewardModel | None]] = {
    "logprob": _build_logprob,
    "judge": _build_logprob,
    "classifier": _build_classifier,
    "confidence": _build_confidence,
    "probe": _build_probe,
    "none": lambda cfg, engine_factory: None,
}
PRM_TYPES = tuple(BUILDERS)
# types whose `model` is a model spec the run's engine serves (a GGUF file on engine=llamacpp): checked
# and hashed before anything loads; classifier PRMs load with transformers instead
ENGINE_PRM_TYPES = frozenset({"logprob", "judge", "confidence", "probe"})
# types that read the model in-process (token log-probabilities, hidden states): the CPU engine only
IN_PROCESS_PRM_TYPES = frozenset({"confidence", "probe"})


def build_reward_model(
    prm_cfg: Any, engine_factory: Callable[[str], Engine] | None = None
) -> RewardModel | None:
    """The reward model a PRM config describes, or None for `type: none`.

    `engine_factory(model_spec)` creates (or returns a shared) engine for `prm_cfg.model`; it is only
    called for engine-backed types. The engine stays owned by the factory's caller: closing the PRM
    does not close it.
    """
    cfg = _plain(prm_cfg)
    kind = cfg.get("type")
    if kind not in BUILDERS:
        raise ValueError(f"prm.type={kind!r} is not known; expected one of {list(PRM_TYPES)}")
    return BUILDERS[kind](cfg, engine_factory)
