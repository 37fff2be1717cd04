"""The one expand -> generate -> score -> select loop, advancing all tasks of a run together.

A task is one (problem, method, budget). Each round every live task asks its strategy what to expand;
all expansions of all tasks go to the engine as one batch (children of a parent adjacent, so they share
the prefix), all new steps go to the PRM as one batch, then each strategy selects. A task is finished
when its strategy has nothing left to expand; `on_done(task)` is called at once so its record can be
written before the rest of the run completes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ttslab.engines.base import Engine, GenerationRequest, SamplingParams, TokenUsage
from ttslab.problems import Problem
from ttslab.prompts import build_prompt
from ttslab.rewards.base import RewardModel, ScoreRequest
from ttslab.search.strategies import Strategy
from ttslab.search.tree import Node, Tree

if TYPE_CHECKING:
    from ttslab.config import MethodSpec


@dataclass
class Task:
    problem: Problem
    spec: MethodSpec
    strategy: Strategy
    tree: Tree = field(default_factory=Tree)
    active: list[Node] = field(default_factory=list)
    finished: list[Node] = field(default_factory=list)
    round: int = 0
    done: bool = False
    prm_usage: TokenUsage = field(default_factory=TokenUsage)
    # Best-of-N / CoT: the full solutions' per-step scores and steps, keyed by node id
    solution_steps: dict[int, list[str]] = field(default_factory=dict)
    solution_scores: dict[int, list[float] | None] = field(default_factory=dict)
    solution_prm_usage: dict[int, TokenUsage] = field(default_factory=dict)

    @property
    def budget(self) -> int:
        return self.spec.budget

    def candidates(self) -> list[tuple[list[str], list[float] | None, Node]]:
        """(steps, step scores, last node) of each final solution, in a stable order."""
        out = []
        for node in sorted(self.finished, key=lambda n: (n.subtree, n.id)):
            if node.id in self.solution_steps:
                out.append((self.solution_steps[node.id], self.solution_scores.get(node.id), node))
            else:
                path = self.tree.path(node)
                scores = [n.score for n in path]
                out.append(([n.text for n in path], None if None in scores else scores, node))
        return out


def split_steps(text: str, delimiter: str) -> list[str]:
    """A full solution as steps, each keeping its trailing delimiter (empty pieces dropped)."""
    parts = re.split(f"(?<={re.escape(delimiter)})", text)
    return [p for p in parts if p.strip()]


def derive_seed(*parts) -> int:
    """A reproducible 31-bit seed per sample: same run settings => same samples."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def make_task(problem: Problem, spec: MethodSpec) -> Task:
    return Task(problem, spec, spec.strategy(spec.beam_width))


def _classify(task: Task, child: Node, siblings_seen: set[str]) -> None:
    """Mark a new step valid/terminal following the study's rules."""
    spec = task.spec
    if not task.strategy.stepwise:
        child.terminal = True
        return
    key = child.text.strip()
    if child.finish == "length" or not key or key in siblings_seen:
        child.valid = False  # cut at the step/total limit, empty, or a duplicate of a sibling
        return
    siblings_seen.add(key)
    if child.finish == "eos":
        child.terminal = True
    elif "\\boxed" in child.text:
        child.terminal, child.finish = True, "answer"
    elif child.depth >= spec.max_steps:
        child.terminal, child.finish = True, "max_steps"
    elif child.path_tokens >= spec.max_tokens:
        child.terminal, child.finish = True, "max_tokens"


def run_tasks(
    tasks: Sequence[Task],
    engine: Engine,
    prm: RewardModel | None,
    family: str,
    seed: int = 0,
    on_done: Callable[[Task], None] = lambda t: None,
) -> None:
    """Advance all tasks together until each is finished (see the module docstring).

    `prm` is None when the run has no PRM (config validation refuses that for searches that need one).
    """
    live = list(tasks)
    while live:
        requests: list[GenerationRequest] = []
        owners: list[tuple[Task, Node, int]] = []
        for t in live:
            expansions = t.strategy.expansions(t)
            if not expansions:
                t.done = True
                continue
            for node, n_children, subtree in expansions:
                prompt = build_prompt(family, t.problem.question, t.tree.steps(node))
                spec = t.spec
                if t.strategy.stepwise:
                    limit = min(spec.max_step_tokens, spec.max_tokens - node.path_tokens)
                    stop: tuple[str, ...] = (spec.step_delimiter,)
                else:
                    limit, stop = spec.max_tokens, ()
                for k in range(n_children):
                    s = derive_seed(seed, t.problem.id, spec.name, spec.budget, node.id, subtree, k)
                    params = SamplingParams(spec.temperature, spec.top_p, spec.top_k, max(1, limit), stop, s)
                    requests.append(GenerationRequest(prompt, params, affinity=t.problem.id))
                    # whole-solution samples are numbered (Best-of-N subsampling); search keeps its subtree
                    owners.append((t, node, subtree if t.strategy.stepwise else k))
        for t in [t for t in live if t.done]:
            on_done(t)
        live = [t for t in live if not t.done]
        if not requests:
            break
        completions = engine.generate(requests)
        children: dict[int, list[Node]] = {}
        # siblings = children of one parent in one subtree: DVTS's N/M subtrees all start at the root,
        # and one subtree's first steps must not be dropped as duplicates of another's
        seen: dict[tuple[int, int, int], set[str]] = {}
        for (t, parent, subtree), req, c in zip(owners, requests, completions):
            child = t.tree.add(parent, c.text, c.finish, c.usage, subtree)
            if getattr(c, "max_new_tokens_sent", None) is not None:  # the record keeps what was asked and sent
                child.clamp = {"asked": req.params.max_tokens, "sent": c.max_new_tokens_sent}
            observe = getattr(t.strategy, "observe", None)  # a strategy that reads the completion itself
            if observe is not None:  # (DeepConf: the token log-probabilities, which nodes do not keep)
                observe(t, child, c)
            _classify(t, child, seen.setdefault((id(t), parent.id, subtree), set()))
            if not t.strategy.stepwise:  # a whole solution: its steps, for the PRM and the record
                t.solution_steps[child.id] = split_steps(c.text, t.spec.step_delimiter)
            children.setdefault(id(t), []).append(child)
        if prm is not None:
            _score(live, children, prm)
        for t in live:
            t.strategy.select(t, children.get(id(t), []))
            t.round += 1


def _score(live: list[Task], children: dict[int, list[Node]], prm: RewardModel) -> None:
    """Stepwise tasks: the newest step of each valid child. Whole solutions: every step."""
    newest: list[tuple[Task, Node]] = []
    whole: list[tuple[Task, Node, list[str]]] = []
    for t in live:
        for c in children.get(id(t), []):
            if not c.valid:
                continue
            if t.strategy.stepwise:
                newest.append((t, c))
            elif t.strategy.uses_prm:  # CoT is a single greedy answer: nothing to vote on
                whole.append((t, c, t.solution_steps[c.id]))
    if newest:
        reqs = [ScoreRequest(t.problem.question, tuple(t.tree.steps(c)), t.problem.id) for t, c in newest]
        for (t, c), s in zip(newest, prm.score_last(reqs)):
            c.score = s.scores[-1]
            t.prm_usage = t.prm_usage + s.usage
    if whole:
        reqs = [ScoreRequest(t.problem.question, tuple(steps), t.problem.id) for t, _, steps in whole if steps]
        scored = iter(prm.score_all(reqs))
        for t, c, steps in whole:
            if not steps:
                t.solution_scores[c.id] = None
                continue
            s = next(scored)
            t.solution_scores[c.id] = s.scores
            t.solution_prm_usage[c.id] = s.usage
            t.prm_usage = t.prm_usage + s.usage
