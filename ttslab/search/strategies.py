"""How each method spends a budget N, and the one registry that says what each method is.

Every strategy answers two questions for the shared loop (ttslab/search/loop.py):
  expansions(task) -> [(node, n_children, subtree)]   what to expand this round
  select(task, children)                              which new children survive (marks `selected`,
                                                      moves finished paths to task.finished)
and declares, as class attributes, what the rest of the package would otherwise guess from its name:

  stepwise        True: one step per round, the newest step scored (PRM-Last); False: whole solutions
  needs_prm       the search cannot run without a PRM (beam search, DVTS)
  uses_prm        a PRM, when given, scores its candidates (Best-of-N: for the PRM voting rules)
  nested_budgets  the samples of a smaller budget are the first samples of the largest (Best-of-N), so
                  one generation at the largest budget serves every budget of a run
  fixed_budget    the budget is always this (CoT: 1)
  greedy          sampling settings of the policy config never change its temperature (CoT)
  width_divides_budget  the budget must be a multiple of the beam width M
  label, color, marker  how figures and tables name and draw it
  subsample_unit  analysis may read a smaller budget off the largest one by subsampling independent units:
                  "sample" (Best-of-N: one generation each) or "subtree" (DVTS: M generations per depth each)
  pass1_samples   its candidates are unselected whole solutions of the policy, so they count in Pass@1 (the
                  difficulty bins): CoT and Best-of-N; not a method that stops or filters by what it drew

Adding a method is one class here (decorated with `@register("name")`) and one YAML file in
conf/method/. A strategy that lives outside ttslab is named by its import path
(`method.name=my_package.module:MyStrategy`).

Semantics (the study, §2.2 and Figure 2; beam width 4 in §4.1): budget N = generations per depth; beam width M.
"""

from __future__ import annotations

import importlib
from typing import ClassVar

from ttslab.errors import ConfigError
from ttslab.search.tree import Node

STRATEGIES: dict[str, type[Strategy]] = {}


def register(name: str):
    """Class decorator: make a strategy available as `method.name=<name>`."""

    def add(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return add


class Strategy:
    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # how figures and tables name it
    color: ClassVar[str | None] = None  # its colour in every figure (None: ttslab.plots picks a spare one)
    marker: ClassVar[str | None] = None  # its matplotlib marker (None: ttslab.plots picks one)
    stepwise: ClassVar[bool] = False
    needs_prm: ClassVar[bool] = False
    uses_prm: ClassVar[bool] = False
    nested_budgets: ClassVar[bool] = False
    fixed_budget: ClassVar[int | None] = None
    greedy: ClassVar[bool] = False
    width_divides_budget: ClassVar[bool] = False
    subsample_unit: ClassVar[str | None] = None
    pass1_samples: ClassVar[bool] = False

    def __init__(self, beam_width: int = 1):
        self.m = beam_width

    def expansions(self, task) -> list[tuple[Node, int, int]]:
        raise NotImplementedError

    def select(self, task, children: list[Node]) -> None:
        raise NotImplementedError


@register("cot")
class CoT(Strategy):
    """One greedy solution, generated whole."""

    label = "CoT"
    color, marker = "#545454", "P"
    fixed_budget = 1
    nested_budgets = True
    greedy = True
    pass1_samples = True

    def expansions(self, task):
        return [(task.tree.root, 1, 0)] if task.round == 0 else []

    def select(self, task, children):
        for c in children:
            c.selected = c.terminal = True
            task.finished.append(c)


@register("best_of_n")
class BestOfN(CoT):
    """N independent full solutions; every one is kept and scored step by step afterwards."""

    label = "Best-of-N"
    color, marker = "#0173b2", "o"  # seaborn's colorblind palette, as the figures' other colours
    uses_prm = True
    fixed_budget = None
    greedy = False
    subsample_unit = "sample"

    def expansions(self, task):
        return [(task.tree.root, task.budget, 0)] if task.round == 0 else []


@register("beam_search")
class BeamSearch(Strategy):
    """N candidates per depth; keep the N/M best by the newest step's score, expand each into M.

    A kept candidate that is terminal (answer given, EOS, limits) becomes a finished solution and its
    beam is not refilled (N/M minus the finished ones are kept, every depth), so at most N/M solutions come
    out. The study's code does the same only when the finished path outranks the live beams: it recomputes
    the number to keep only while walking live nodes (README "Semantics").
    """

    label = "Beam search"
    color, marker = "#de8f05", "s"
    stepwise = needs_prm = uses_prm = width_divides_budget = True

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


@register("dvts")
class DVTS(Strategy):
    """N/M independent subtrees; each expands M candidates per step and keeps its best one.

    Subtrees never see each other: a step is a duplicate only of a sibling in its own subtree (the loop looks
    duplicates up per (parent, subtree); all first steps share the root). A subtree whose M children are all
    dropped ends without a solution (README "Semantics": the study's code samples again instead).
    """

    label = "DVTS"
    color, marker = "#029e73", "^"
    stepwise = needs_prm = uses_prm = width_divides_budget = True
    subsample_unit = "subtree"

    def expansions(self, task):
        if task.round == 0:  # the N first steps, M per subtree
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


def strategy_class(name: str) -> type[Strategy]:
    """The strategy registered as `name`, or imported from `package.module:Class`."""
    if name in STRATEGIES:
        return STRATEGIES[name]
    if ":" in str(name):
        module, _, attr = str(name).partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"method.name={name!r}: cannot import {attr} from {module} ({e})") from None
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise ConfigError(f"method.name={name!r} is not a subclass of ttslab.search.strategies.Strategy")
        return cls
    raise ConfigError(
        f"method.name={name!r} is not a method; expected one of {', '.join(STRATEGIES)} "
        "(or package.module:Class for a strategy of your own)"
    )


def method_names() -> tuple[str, ...]:
    """Registered method names, in registration order (CoT first): the order of tables and legends."""
    return tuple(STRATEGIES)


def search_methods() -> tuple[str, ...]:
    """The test-time scaling methods (every registered method but the greedy baseline)."""
    return tuple(n for n, c in STRATEGIES.items() if not c.greedy)


def whole_solution_methods() -> tuple[str, ...]:
    """Methods whose candidates are unselected whole solutions of the policy (CoT, Best-of-N): Pass@1's samples.

    Read from `pass1_samples`, not from `stepwise`: early-stopping self-consistency draws whole solutions but
    stops on what it drew, so its sample counts depend on the answers and would bias Pass@1.
    """
    return tuple(n for n, c in STRATEGIES.items() if c.pass1_samples)


def subsampled_methods() -> dict[str, str]:
    """Method -> its independent unit ("sample" or "subtree") for methods analysis can subsample."""
    return {n: c.subsample_unit for n, c in STRATEGIES.items() if c.subsample_unit}


def method_label(name: str) -> str:
    """How figures and tables name a method."""
    cls = STRATEGIES.get(name)
    return cls.label if cls is not None and cls.label else name


# the methods that came after the study register themselves (ttslab/search/after_study.py)
from ttslab.search import after_study as _after_study  # noqa: E402,F401
