"""The policy's own confidence as a PRM: statistics of its tokens' log-probabilities per step.

Confidence-based voting (e.g. DeepConf, Fu et al. 2025) weights or filters samples by how sure the model
was of the tokens it wrote: the mean token log-probability, the lowest mean over a sliding window of
tokens (one shaky stretch), or the mean over the last tokens (where the answer is written). Here each
statistic is computed per step and mapped to a score in [0, 1] as exp(statistic), a geometric-mean token
probability, so every selection rule (PRM-Min/Last/Avg x Max/Vote) and the search strategies use it
unchanged.

The log-probabilities come from teacher-forcing the step through the reading model (normally the policy
itself: `options.family` is its prompt family) with KV reuse, so a new step costs ~its own tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ttslab.rewards.base import ScoreRequest, StepScores
from ttslab.rewards.reading import ReadingPRM, read_steps

STATISTICS = ("mean", "lowest_window", "tail")


def step_statistics(logprobs: np.ndarray, window: int = 16, tail: int = 16) -> dict[str, float]:
    """Mean log-probability, lowest sliding-window mean and tail mean of one step's tokens.

    A step shorter than the window has one window (itself). An empty step has no evidence: NaN.
    """
    lp = np.asarray(logprobs, dtype=np.float64)
    if lp.size == 0:
        return {s: float("nan") for s in STATISTICS}
    w = min(window, lp.size)
    sums = np.convolve(lp, np.ones(w), mode="valid")  # every window of w consecutive tokens
    return {
        "mean": float(lp.mean()),
        "lowest_window": float(sums.min() / w),
        "tail": float(lp[-min(tail, lp.size) :].mean()),
    }


def confidence_score(value: float) -> float:
    """exp(mean log-probability): a geometric-mean token probability in [0, 1]; no evidence scores 0.5."""
    return 0.5 if np.isnan(value) else float(np.exp(min(value, 0.0)))


class ConfidencePRM(ReadingPRM):
    """Step score = exp(statistic of the step's token log-probabilities) under the reading model.

    Args:
        engine: an engine with `teacher_force` (the in-process llama.cpp engine).
        family: prompt family of the policy whose text is read (`ttslab.prompts.FAMILIES`).
        statistic: one of `STATISTICS`.
        window, tail: token counts of the sliding window and of the tail.
    """

    def __init__(self, engine, family: str, statistic: str = "mean", window: int = 16, tail: int = 16,
                 name: str = "") -> None:
        if statistic not in STATISTICS:
            raise ValueError(f"prm.options.statistic={statistic!r}; expected one of {', '.join(STATISTICS)}")
        if window < 1 or tail < 1:
            raise ValueError(f"prm.options.window={window} and tail={tail} must be >= 1")
        self.engine, self.family, self.statistic = engine, family, statistic
        self.window, self.tail = window, tail
        self.name = name or f"confidence-{statistic}"

    def _score(self, requests: Sequence[ScoreRequest], last_only: bool) -> list[StepScores]:
        out = []
        for reading in read_steps(self.engine, self.family, requests, last_only):
            stats = [step_statistics(lp, self.window, self.tail)[self.statistic] for lp in reading.logprobs]
            out.append(StepScores([confidence_score(v) for v in stats], reading.usage))
        return out
