"""A trained probe PRM: a logistic head on the reading model's hidden state at the end of each step.

Features of a step: the last layer's hidden state (after the final norm) at the step's last token, plus
the step's three confidence statistics (`confidence.step_statistics`: mean, lowest window, tail of its
token log-probabilities), standardised with the training set's mean and scale. Score = sigmoid(w . x + b).

The head is a small .npz file (`ProbeHead.save` / `load`) made by `benchmarks/verifier_train.py` from
this package's own runs: outcome labels (each step of a solution labelled with whether the final answer
is correct per Math-Verify) on problems disjoint from the evaluation problems. The file records the model
it was trained on; a head only makes sense on that model's hidden states, so loading it for another
model is an error. Reading a step costs ~its own tokens (teacher forcing with KV reuse, `reading`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ttslab.rewards.base import ScoreRequest, StepScores
from ttslab.rewards.confidence import STATISTICS, step_statistics
from ttslab.rewards.reading import ReadingPRM, StepReading, read_steps


def step_features(reading: StepReading, window: int, tail: int) -> np.ndarray:
    """(steps, n_embd + 3): hidden state at each step's end, then its confidence statistics."""
    stats = np.array([[step_statistics(lp, window, tail)[s] for s in STATISTICS] for lp in reading.logprobs])
    stats = np.nan_to_num(stats.reshape(len(reading.logprobs), len(STATISTICS)), nan=0.0)
    return np.hstack([np.asarray(reading.hidden, dtype=np.float64), stats])


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


@dataclass
class ProbeHead:
    """Standardise, then a logistic layer. `meta` records how it was made (model, data, seed, command)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    window: int = 16
    tail: int = 16
    meta: dict[str, Any] = field(default_factory=dict)

    def logits(self, features: np.ndarray) -> np.ndarray:
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return x @ self.weights + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        return sigmoid(self.logits(features))

    def save(self, path: str | Path) -> None:
        meta = {k: np.array(str(v)) for k, v in self.meta.items()}
        np.savez_compressed(path, mean=self.mean.astype(np.float32), scale=self.scale.astype(np.float32),
                            weights=self.weights.astype(np.float32), bias=np.float64(self.bias),
                            window=np.int64(self.window), tail=np.int64(self.tail),
                            meta_keys=np.array(list(meta)), **{f"meta_{k}": v for k, v in meta.items()})

    @classmethod
    def load(cls, path: str | Path) -> ProbeHead:
        with np.load(path, allow_pickle=False) as z:
            meta = {str(k): str(z[f"meta_{k}"]) for k in z["meta_keys"]}
            return cls(z["mean"].astype(np.float64), z["scale"].astype(np.float64),
                       z["weights"].astype(np.float64), float(z["bias"]), int(z["window"]), int(z["tail"]), meta)


def head_path(spec: str) -> Path:
    """A head file: `package:<name>` for one shipped in ttslab/data/probe_prm/, else a file path."""
    if spec.startswith("package:"):
        path = Path(str(resources.files("ttslab") / "data" / "probe_prm" / spec.split(":", 1)[1]))
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"prm.options.head={spec!r}: no probe head file at {path}")
    return path


class ProbePRM(ReadingPRM):
    """Step score = the probe head's probability that the solution through this step ends correct.

    Args:
        engine: an engine with `teacher_force` serving the model the head was trained on.
        family: prompt family of the policy whose text is read.
        head: a `ProbeHead`.
    """

    def __init__(self, engine, family: str, head: ProbeHead, name: str = "") -> None:
        self.engine, self.family, self.head = engine, family, head
        self.name = name or "probe"

    def _score(self, requests: Sequence[ScoreRequest], last_only: bool) -> list[StepScores]:
        out = []
        for reading in read_steps(self.engine, self.family, requests, last_only):
            x = step_features(reading, self.head.window, self.head.tail)
            if x.shape[1] != self.head.weights.shape[0]:
                raise ValueError(f"probe head {self.name!r} takes {self.head.weights.shape[0]} features, but the "
                                 f"reading model gives {x.shape[1]}: the head was trained on another model")
            p = self.head.predict(x)
            out.append(StepScores([float(v) for v in p], reading.usage))
        return out
