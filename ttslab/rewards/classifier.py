"""Classifier-head PRMs, run in-process with transformers: Qwen2.5-Math-PRM and Skywork-o1-Open-PRM.

Neither can be served by SGLang (no per-step pooling there). Both checkpoints are a Qwen2 decoder plus
a small head, published with remote code or an external wrapper; the two modules below load the same
weights with a transformers `Qwen2Model` backbone and our own head:

* `TwoClassStepHead` — Qwen2.5-Math-PRM: `model.*` + `score = Linear(h, h), ReLU, Linear(h, 2)`;
  score = softmax(logits)[1] at each `<extra_0>` tag.
* `ValueStepHead` — Skywork-o1-Open-PRM: `model.*` (+ an unused `lm_head`) + `v_head.summary = Linear(h, 1)`;
  score = sigmoid(value) at the "\\n" token ending each step.

This module imports torch and transformers at the top: `ttslab.rewards.build_reward_model` imports it
only for `type: classifier` configs.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2Model, Qwen2PreTrainedModel

from ttslab.engines.base import TokenUsage
from ttslab.rewards.base import ScoreRequest, StepScores
from ttslab.rewards.formats import (
    QWEN_PRM_STEP_TAG,
    QWEN_PRM_SYSTEM,
    SKYWORK_STEP_SEPARATOR,
    qwen_math_prm,
    skywork_segments,
)


class TwoClassStepHead(Qwen2PreTrainedModel):
    """Qwen2 backbone + 2-label MLP head on every position (Qwen2.5-Math-PRM's weight layout)."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__(config)
        self.model = Qwen2Model(config)
        self.score = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size), nn.ReLU(), nn.Linear(config.hidden_size, 2)
        )
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """P(step correct) at every position: softmax over the two labels, index 1."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.score(hidden).float()
        return logits.softmax(dim=-1)[..., 1]


class ValueHead(nn.Module):
    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)


class ValueStepHead(Qwen2PreTrainedModel):
    """Qwen2 backbone + scalar value head on every position (Skywork-o1-Open-PRM's weight layout)."""

    # The checkpoint also holds the causal-LM head, which a PRM never reads.
    _keys_to_ignore_on_load_unexpected = [r"^lm_head\."]

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__(config)
        self.model = Qwen2Model(config)
        self.v_head = ValueHead(config.hidden_size)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """P(step correct) at every position: sigmoid of the value head."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        value = self.v_head.summary(hidden.to(self.v_head.summary.weight.dtype)).squeeze(-1)
        return torch.sigmoid(value.float())


HEADS: dict[str, type[Qwen2PreTrainedModel]] = {"two_class": TwoClassStepHead, "value": ValueStepHead}


def load_head_model(
    hf_id: str, head: str, dtype: str = "auto", device: str = "cpu", device_map: Any = None
) -> Qwen2PreTrainedModel:
    """Load `hf_id` into our head class; fail loudly if any backbone or head weight is missing.

    `device_map` ("auto", or accelerate's explicit maps) places the layers across the visible GPUs, using
    the memory each has free (a 72B PRM needs ~145 GB in bf16: more than one GPU); `device` is then unused.
    """
    if head not in HEADS:
        raise ValueError(f"prm.head={head!r} is not known; expected one of {sorted(HEADS)}")
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "output_loading_info": True}
    if device_map is not None and str(device).startswith("cuda"):
        kwargs["device_map"] = device_map
    model, info = HEADS[head].from_pretrained(hf_id, **kwargs)
    if info.get("missing_keys"):
        raise RuntimeError(
            f"{hf_id}: weights missing for {sorted(info['missing_keys'])[:8]}: this checkpoint does not have "
            f"the layout of prm.head={head!r}"
        )
    if "device_map" not in kwargs:
        model = model.to(device)
    return model.eval()


class ClassifierPRM:
    """Per-step scores from a head model at step-end positions. Formats: "qwen_math_prm", "skywork".

    Args:
        model: a `TwoClassStepHead`/`ValueStepHead` (or any module mapping (input_ids, attention_mask) to a
            per-position probability).
        tokenizer: the PRM's transformers tokenizer.
        format: "qwen_math_prm" (score at `step_tag` tokens) or "skywork" (score at the "\\n" after each step).
        name: the PRM's name.
        batch_size: sequences per forward pass.
        format_options: "system"/"step_tag" for qwen_math_prm; "bos_token" for skywork (default: the
            tokenizer's bos token).
    """

    FORMATS = ("qwen_math_prm", "skywork")

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        format: str,
        name: str = "",
        batch_size: int = 8,
        format_options: Mapping[str, Any] | None = None,
    ) -> None:
        if format not in self.FORMATS:
            raise ValueError(f"prm.format={format!r} is not a classifier format; expected one of {self.FORMATS}")
        if batch_size < 1:
            raise ValueError(f"prm.batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer, self.format = model, tokenizer, format
        self.name = name or format
        self.batch_size = batch_size
        options = dict(format_options or {})
        if format == "qwen_math_prm":
            self.system = options.pop("system", QWEN_PRM_SYSTEM)
            self.step_tag = options.pop("step_tag", QWEN_PRM_STEP_TAG)
            self.step_tag_id = self._single_id(self.step_tag, "format_options.step_tag")
        else:
            separator = options.pop("step_tag", SKYWORK_STEP_SEPARATOR)
            if separator != SKYWORK_STEP_SEPARATOR:
                raise ValueError(f"prm.step_tag for format 'skywork' must be '\\n', got {separator!r}")
            bos = options.pop("bos_token", None) or getattr(tokenizer, "bos_token", None)
            if not bos:
                raise ValueError("prm.format_options.bos_token is needed: the Skywork tokenizer has no bos_token")
            self.bos = bos
            self.newline_id = self._single_id(SKYWORK_STEP_SEPARATOR, "step separator")
        if options:
            raise ValueError(f"prm.format_options has keys {sorted(options)} that format {format!r} does not take")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "ClassifierPRM":
        from transformers import AutoTokenizer

        model = load_head_model(
            cfg["hf_id"],
            cfg["head"],
            dtype=cfg.get("dtype", "auto"),
            device=cfg.get("device", "cpu"),
            device_map=cfg.get("device_map"),
        )
        tokenizer = AutoTokenizer.from_pretrained(cfg["hf_id"])
        return cls(
            model,
            tokenizer,
            cfg["format"],
            name=cfg.get("name", ""),
            batch_size=int(cfg.get("batch_size", 8)),
            format_options=cfg.get("format_options") or {},
        )

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _single_id(self, text: str, what: str) -> int:
        ids = self._ids(text)
        if len(ids) != 1:
            raise ValueError(f"prm {what}={text!r} must be one token of the PRM tokenizer, got {ids}")
        return ids[0]

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        """(input ids, the position of each step's score) — exactly one position per step."""
        if self.format == "qwen_math_prm":
            ids = self._ids(qwen_math_prm(question, steps, system=self.system, step_tag=self.step_tag))
            positions = [i for i, t in enumerate(ids) if t == self.step_tag_id]
        else:
            # Each step tokenized on its own, then the "\n" token whose position holds the score.
            prompt, texts = skywork_segments(question, steps, self.bos)
            ids = self._ids(prompt)
            positions = []
            for text in texts:
                ids += self._ids(text) + [self.newline_id]
                positions.append(len(ids) - 1)
        if len(positions) != len(steps):
            raise ValueError(f"{self.name}: found {len(positions)} score positions for {len(steps)} steps")
        return ids, positions

    @torch.no_grad()
    def _score(self, requests: Sequence[ScoreRequest]) -> list[tuple[list[float], int]]:
        encoded = [self.encode(r.question, r.steps) for r in requests]
        device = next(self.model.parameters()).device
        out: list[tuple[list[float], int]] = []
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start : start + self.batch_size]
            width = max(len(ids) for ids, _ in chunk)
            # Right padding: causal attention keeps real positions unaffected by the pads after them.
            input_ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (ids, _) in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                mask[row, : len(ids)] = 1
            probs = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).cpu()
            for row, (ids, positions) in enumerate(chunk):
                out.append(([float(probs[row, p]) for p in positions], len(ids)))
        return out

    def score_all(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        return [
            StepScores(scores=scores, usage=TokenUsage(prompt_tokens=n_tokens))
            for scores, n_tokens in self._score(requests)
        ]

    def score_last(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        # No KV reuse across calls here: the whole prefix is re-run (usage says so: cached_tokens = 0).
        return [
            StepScores(scores=scores[-1:], usage=TokenUsage(prompt_tokens=n_tokens))
            for scores, n_tokens in self._score(requests)
        ]

    def close(self) -> None:
        self.model = None
