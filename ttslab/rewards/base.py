"""The reward-model protocol: per-step scores in [0, 1] for partial solutions.

A solution is a list of step texts (as the policy wrote them, delimiter included; adapters strip what
their format needs). The number of scores returned for a solution always equals its number of steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

from ttslab.engines.base import TokenUsage


@dataclass(frozen=True)
class ScoreRequest:
    question: str
    steps: tuple[str, ...]
    # Requests of one problem share a key, so a multi-server engine keeps them on one server.
    affinity: str = ""


@dataclass
class StepScores:
    scores: list[float]  # one per step, each in [0, 1]
    usage: TokenUsage = field(default_factory=TokenUsage)  # PRM tokens spent on this request


@runtime_checkable
class RewardModel(Protocol):
    name: str

    def score_last(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        """Score only the newest step of each request (`scores` has one element).

        Earlier steps were scored by earlier calls; implementations keep their KV prefix so only the
        newest step (plus the format's suffix) is evaluated. Used inside beam search and DVTS.
        """
        ...

    def score_all(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        """Score every step of each request (`len(scores) == len(steps)`). Used for Best-of-N."""
        ...

    def close(self) -> None: ...
