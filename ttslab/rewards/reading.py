"""The policy reading its own steps: teacher-forced token log-probabilities and step-end hidden states.

The confidence and probe PRMs score a step by reading it through a language model (normally the policy
itself) with the policy's chat prompt: the text is the prompt, then the steps as written. Each step is
tokenized on its own and the pieces concatenated, so the tokens of steps[:k] are a prefix of the tokens of
steps[:k+1] and an engine that keeps KV prefixes (llama.cpp) evaluates only the newest step (plus one
re-read token) per `score_last` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from ttslab.engines.base import TokenUsage
from ttslab.prompts import build_prompt
from ttslab.rewards.base import ScoreRequest, StepScores


@dataclass
class StepReading:
    """One solution (or its newest step) as read by the model."""

    logprobs: list[np.ndarray]  # per step read: log-probability of each of its tokens
    hidden: np.ndarray  # (steps read, n_embd): last-layer hidden state at each step's last token
    usage: TokenUsage


def step_tokens(engine, family: str, request: ScoreRequest) -> tuple[list[int], list[int]]:
    """Tokens of prompt + steps, and the end offset of each step (the prompt ends at offset `ends[-1]` of
    zero steps, returned as the first element)."""
    tokens = engine.tokenize(build_prompt(family, request.question))
    ends = [len(tokens)]
    for step in request.steps:
        tokens += engine.tokenize(step)
        ends.append(len(tokens))
    return tokens, ends


def read_steps(engine, family: str, requests: Sequence[ScoreRequest], last_only: bool) -> list[StepReading]:
    """Teacher-force each request's steps through `engine` (an engine with `teacher_force`, e.g.
    `LlamaCppEngine`): every step, or only the newest one."""
    if not hasattr(engine, "teacher_force"):
        raise TypeError(
            f"{type(engine).__name__} cannot teacher-force token sequences; the confidence and probe PRMs need "
            "the in-process llama.cpp engine (engine=llamacpp)"
        )
    sequences, starts, hidden_at, bounds = [], [], [], []
    for r in requests:
        if not r.steps:
            raise ValueError("a score request needs at least one step")
        tokens, ends = step_tokens(engine, family, r)
        first = len(ends) - 2 if last_only else 0  # index into ends of the first step read
        sequences.append(tokens)
        starts.append(ends[first])
        # an empty step (no tokens) takes the hidden state of the token before it
        hidden_at.append([max(e - 1, ends[first] - 1) for e in ends[first + 1 :]])
        bounds.append(ends[first:])
    out = []
    for forced, start, b in zip(engine.teacher_force(sequences, starts, hidden_at), starts, bounds):
        pieces = [forced.logprobs[lo - start : hi - start] for lo, hi in pairwise(b)]
        out.append(StepReading(pieces, forced.hidden, forced.usage))
    return out


class ReadingPRM:
    """The RewardModel protocol for scorers that read steps through a model: `_score` scores the newest
    step (`last_only`) or every step of each request; the engine belongs to whoever built it."""

    def _score(self, requests: Sequence[ScoreRequest], last_only: bool) -> list[StepScores]:
        raise NotImplementedError

    def score_last(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        return self._score(requests, last_only=True)

    def score_all(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        return self._score(requests, last_only=False)

    def close(self) -> None:
        pass  # the engine belongs to whoever built it
