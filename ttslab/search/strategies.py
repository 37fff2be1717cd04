"""How each method spends a budget N: the strategies differ only in what they expand and what they keep.

Every strategy answers two questions for the shared loop (ttslab/search/loop.py):
  expansions(task) -> [(node, n_children, subtree)]   what to expand this round
  select(task, children)                              which new children survive (marks `selected`,
                                                      moves finished paths to task.finished)
Semantics (reference/paper.md §1.5-1.7): budget N = generations per depth; beam width M.
"""

from __future__ import annotations

from typing import Protocol

from ttslab.search.tree import Node


class Strategy(Protocol):
    stepwise: bool  # True: generate one step at a time and score the newest step (PRM-Last)

    def expansions(self, task) -> list[tuple[Node, int, int]]: ...

    def select(self, task, children: list[Node]) -> None: ...


class CoT:
    """One greedy solution, generated whole."""

    stepwise = False

    def expansions(self, task):
        return [(task.tree.root, 1, 0)] if task.round == 0 else []

    def select(self, task, children):
        for c in children:
            c.selected = c.terminal = True
            task.finished.append(c)


class BestOfN(CoT):
    """N independent full solutions; every one is kept and scored step by step afterwards."""

    def expansions(self, task):
        return [(task.tree.root, task.budget, 0)] if task.round == 0 else []


class BeamSearch:
    """N candidates per depth; keep the N/M best by the newest step's score, expand each into M.

    A kept candidate that is terminal (answer given, EOS, limits) becomes a finished solution and its
    beam is not refilled (as in the study's code), so at most N/M solutions come out.
    """

    stepwise = True

    def __init__(self, beam_width: int):
        self.m = beam_width

    def expansions(self, task):
        if task.round == 0:
            return [(task.tree.root, task.budget, 0)]
        return [(node, self.m, node.subtree) for node in task.active]

    def select(self, task, children):
        keep = task.budget // self.m - len(task.finished)
        ranked = sorted((c for c in children if c.valid), key=lambda c: (-c.score, c.id))
        task.active = []
        for c in ranked[:keep]:
            c.selected = True
            (task.finished if c.terminal else task.active).append(c)


class DVTS:
    """N/M independent subtrees; each expands M candidates per step and keeps its best one."""

    stepwise = True

    def __init__(self, beam_width: int):
        self.m = beam_width

    def expansions(self, task):
        if task.round == 0:
            # the N first steps, M per subtree
            return [(task.tree.root, self.m, s) for s in range(task.budget // self.m)]
        return [(node, self.m, node.subtree) for node in task.active]

    def select(self, task, children):
        by_subtree: dict[int, list[Node]] = {}
        for c in children:
            if c.valid:
                by_subtree.setdefault(c.subtree, []).append(c)
        task.active = []
        for group in by_subtree.values():
            best = min(group, key=lambda c: (-c.score, c.id))
            best.selected = True
            (task.finished if best.terminal else task.active).append(best)


def make_strategy(name: str, beam_width: int) -> Strategy:
    strategies = {"cot": CoT, "best_of_n": BestOfN, "beam_search": BeamSearch, "dvts": DVTS}
    if name not in strategies:
        raise ValueError(f"method.name={name!r} is unknown; expected one of {', '.join(strategies)}")
    cls = strategies[name]
    return cls(beam_width) if cls in (BeamSearch, DVTS) else cls()
