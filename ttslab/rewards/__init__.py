"""Process reward models: per-step scores in [0, 1], chosen by a conf/prm/*.yaml file (never by model name).

`type` in the config picks the adapter:

* `logprob` / `judge` → `LogprobPRM` through an `Engine` (Math-Shepherd, RLHFlow, the CPU judge):
  P(good_token) renormalised over {good_token, bad_token} right after the formatted prompt.
* `classifier` → `classifier.ClassifierPRM` with transformers in-process (Qwen2.5-Math-PRM, Skywork).
* `none` → no PRM.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ttslab.engines.base import Engine
from ttslab.rewards.base import RewardModel, ScoreRequest, StepScores
from ttslab.rewards.logprob import LogprobPRM

PRM_TYPES = ("logprob", "judge", "classifier", "none")

__all__ = ["PRM_TYPES", "LogprobPRM", "RewardModel", "ScoreRequest", "StepScores", "build_reward_model"]


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
    if kind not in PRM_TYPES:
        raise ValueError(f"prm.type={kind!r} is not known; expected one of {list(PRM_TYPES)}")
    if kind == "none":
        return None
    # The top-level `step_tag` is part of the format (Math-Shepherd " ки", Qwen "<extra_0>", Skywork "\n").
    options = dict(cfg.get("format_options") or {})
    if cfg.get("step_tag") is not None:
        options.setdefault("step_tag", cfg["step_tag"])
    cfg["format_options"] = options
    if kind in ("logprob", "judge"):
        _require(cfg, "name", "format", "model", "good_token", "bad_token")
        if engine_factory is None:
            raise ValueError(f"prm {cfg['name']!r} (type {kind}) needs an engine_factory to create its engine")
        return LogprobPRM(
            engine_factory(cfg["model"]),
            format=cfg["format"],
            good_token=cfg["good_token"],
            bad_token=cfg["bad_token"],
            name=cfg["name"],
            format_options=options,
        )
    _require(cfg, "name", "format", "hf_id", "head")
    try:
        from ttslab.rewards.classifier import ClassifierPRM
    except ImportError as err:
        raise ImportError(
            f"prm {cfg['name']!r} is a classifier-head PRM run with transformers in-process; "
            f'install the GPU extra (pip install -e ".[gpu]") and a torch build: {err}'
        ) from err
    return ClassifierPRM.from_config(cfg)
