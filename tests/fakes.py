"""A scripted engine and PRM on the real protocols, so the search rules are tested in milliseconds.

The engine answers each request with a step written by a script: `script(depth, seed, k)` returns
(text, finish, tokens); the depth is the number of "STEP" markers already in the prompt. Each default
step carries its own PRM score ("s=0.42"), which the fake PRM reads back, so a test knows exactly
which candidate PRM-Last must keep.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from ttslab.engines.base import Completion, GenerationRequest, TokenScores, TokenUsage
from ttslab.rewards.base import ScoreRequest, StepScores

Script = Callable[[int, int, int], tuple[str, str, int]]


def random_steps(depth: int, seed: int, k: int) -> tuple[str, str, int]:
    """A distinct step per sample, with a score drawn from the sample's seed; never terminal."""
    score = random.Random(seed).random()
    return f"STEP {depth} seed={seed} s={score:.6f}\n\n", "step", 10


class FakeEngine:
    def __init__(self, script: Script = random_steps):
        self.script = script
        self.calls: list[list[GenerationRequest]] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.calls.append(list(requests))
        out = []
        seen: dict[str, int] = {}
        for r in requests:
            k = seen[r.prompt] = seen.get(r.prompt, -1) + 1  # index among equal prompts (siblings)
            depth = r.prompt.count("STEP")
            text, finish, tokens = self.script(depth, r.params.seed, k)
            out.append(Completion(text, finish, TokenUsage(len(r.prompt), 0, tokens)))
        return out

    def next_token_logprobs(self, prompts, token_ids, affinity=None) -> list[TokenScores]:
        raise NotImplementedError("the fake PRM scores text directly")

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def close(self) -> None:
        pass


def step_score(step: str) -> float:
    m = re.search(r"s=([0-9.]+)", step)
    return float(m.group(1)) if m else 0.5


class FakePRM:
    name = "fake-prm"

    def __init__(self):
        self.last_calls: list[ScoreRequest] = []
        self.all_calls: list[ScoreRequest] = []

    def score_last(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        self.last_calls += requests
        return [StepScores([step_score(r.steps[-1])], TokenUsage(len(r.steps[-1]), 0, 0)) for r in requests]

    def score_all(self, requests: Sequence[ScoreRequest]) -> list[StepScores]:
        self.all_calls += requests
        return [StepScores([step_score(s) for s in r.steps], TokenUsage(sum(map(len, r.steps)), 0, 0))
                for r in requests]

    def close(self) -> None:
        pass


from ttslab.search.strategies import Strategy


class KeepFirst(Strategy):
    """A strategy from outside ttslab: like beam search, but keeps the first N/M valid children (no PRM)."""

    label = "Keep-first"
    stepwise = True

    def expansions(self, task):
        if task.round == 0:
            return [(task.tree.root, task.budget, 0)]
        return [(node, self.m, node.subtree) for node in task.active]

    def select(self, task, children):
        task.active = []
        for c in [c for c in children if c.valid][: task.budget // self.m - len(task.finished)]:
            c.selected = True
            (task.finished if c.terminal else task.active).append(c)
