"""Test-time methods that came after the study, on the study's loop, records and estimators.

Each is one strategy of the shared expand -> generate -> score -> select loop (ttslab/search/loop.py),
registered like the study's (ttslab/search/strategies.py), declaring its facts as class attributes:

  particle_filter  Puri et al. 2025 (arXiv 2502.01618): N particles, one step each per round, weighted by
                   softmax(PRM-Last / temperature), resampled (multinomial, seeded). Budget N = particles =
                   generations per depth, as beam search's N.
  rebase           Wu et al. 2024, "Inference Scaling Laws" (arXiv 2408.00724): reward-balanced expansion;
                   the width left at a depth (N minus the solutions already finished) is allotted across all
                   of the depth's unfinished nodes by softmax(PRM-Last / temperature).
  early_stopping   Li et al. 2024, "Escape Sky-high Cost" (arXiv 2401.10480): whole samples in windows of w;
                   stop at the first window whose answers all agree, or at N samples; majority over all drawn.
                   Its record at a smaller budget is the first samples of the largest (`nested_budgets`).
  deepconf         Fu et al. 2025, "Deep Think with Confidence" (arXiv 2508.15260): no PRM; a trace's
                   confidence is its lowest sliding-window mean of token confidences; offline keeps the
                   top eta% of N traces, online lets `warmup` traces set the threshold and stops a later trace
                   as soon as (at a step boundary) its confidence falls below it.

Method-specific settings are `method.options` (each class's `option_defaults`, checked by `check_options`);
they are part of a record's `settings`, so resume never mixes records made with other options.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from typing import Any, ClassVar

import numpy as np

from ttslab.engines.base import Completion
from ttslab.errors import ConfigError, RunFailed
from ttslab.grading import extract_answer, normalize
from ttslab.search.strategies import Strategy, register
from ttslab.search.tree import Node


def _seed(*parts) -> int:
    from ttslab.search.loop import derive_seed  # (the loop imports the registry, which imports this module)

    return derive_seed(*parts)


def softmax(scores: list[float], temperature: float) -> np.ndarray:
    """exp(s / T) normalised, computed stably."""
    x = np.asarray(scores, dtype=np.float64) / temperature
    w = np.exp(x - x.max())
    return w / w.sum()


def allot(total: int, weights: np.ndarray) -> list[int]:
    """`total` children split in proportion to `weights`, whole numbers summing to `total` exactly.

    Largest remainders (ties to the earlier node): REBASE's paper rounds each share, which can miss the
    total by a few; here the width at a depth is the budget left, exactly.
    """
    quota = weights * total
    counts = np.floor(quota).astype(int)
    rest = total - int(counts.sum())
    order = sorted(range(len(quota)), key=lambda i: (-(quota[i] - counts[i]), i))
    for i in order[:rest]:
        counts[i] += 1
    return [int(c) for c in counts]


class OptionsStrategy(Strategy):
    """A strategy with settings of its own under `method.options` (checked when the config is validated)."""

    option_defaults: ClassVar[dict[str, Any]] = {}
    # key -> (check, what is expected), for the one-line error
    option_checks: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {}

    @classmethod
    def check_options(cls, options: dict[str, Any] | None, where: str) -> tuple[tuple[str, Any], ...]:
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.option_defaults))
        if unknown:
            raise ConfigError(f"{where}.options: unknown keys {unknown}; {cls.name} takes {sorted(cls.option_defaults)}")
        merged = {**cls.option_defaults, **options}
        for key, (ok, expected) in cls.option_checks.items():
            try:
                good = ok(merged[key])
            except ConfigError as e:  # a check that explains itself
                raise ConfigError(f"{where}.{e}") from None
            except (TypeError, ValueError):
                good = False
            if not good:
                raise ConfigError(f"{where}.options.{key}={merged[key]!r}: expected {expected}")
        return tuple(sorted(merged.items()))

    def opts(self, task) -> dict[str, Any]:
        return {**self.option_defaults, **dict(getattr(task.spec, "options", ()) or ())}


def _positive(v) -> bool:
    return not isinstance(v, bool) and float(v) > 0


def _int_at_least_1(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _lineage(children: list[Node]) -> None:
    """First-step nodes number their lineage (node.subtree), which descendants inherit."""
    for i, c in enumerate(children):
        c.subtree = i


# ---------------------------------------------------------------------------------- particle filtering
@register("particle_filter")
class ParticleFilter(OptionsStrategy):
    """N particles; each unfinished one advances one step; all N are weighted and resampled each round.

    Weights: softmax(PRM-Last / temperature) over the whole population, finished particles included with
    their last step's score (so a finished solution survives only while it stays competitive). Resampling:
    N multinomial draws, seeded by the problem, budget, round and the round's step texts (so the run seed
    reaches it through the samples). A resampled particle is a reference to its node: k copies of one
    node become k children of it next round. The final population's distinct finished paths are the
    candidates; the tree keeps every particle's ancestry (`parent`), `subtree` names its first step.
    """

    label = "Particle filtering"
    color, marker = "#cf1c90", "D"
    stepwise = needs_prm = uses_prm = True
    option_defaults: ClassVar[dict[str, Any]] = {"softmax_temperature": 1.0}
    option_checks: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {"softmax_temperature": (_positive, "a number > 0 (weights: softmax of PRM-Last / it)")}

    def __init__(self, beam_width: int = 1):
        super().__init__(beam_width)
        self.population: list[Node] = []

    def expansions(self, task):
        if task.round == 0:
            return [(task.tree.root, task.budget, 0)]
        counts: dict[int, int] = {}
        for p in self.population:
            if not p.terminal:
                counts[p.id] = counts.get(p.id, 0) + 1
        return [(task.tree.nodes[i], k, task.tree.nodes[i].subtree) for i, k in counts.items()]

    def select(self, task, children):
        if task.round == 0:
            _lineage(children)
        # unfinished particles were each extended by one child; a child cut off or duplicated dies
        population = [p for p in self.population if p.terminal] + [c for c in children if c.valid]
        if not population:
            self.population, task.active, task.finished = [], [], []
            return
        w = softmax([p.score for p in population], self.opts(task)["softmax_temperature"])
        rng = np.random.default_rng(_seed("particle_filter", task.problem.id, task.budget, task.round,
                                          *(c.text for c in children)))
        drawn = rng.choice(len(population), size=task.budget, replace=True, p=w)
        self.population = [population[i] for i in drawn]
        distinct = list({p.id: p for p in self.population}.values())
        for p in distinct:
            p.selected = True
        task.active = [p for p in distinct if not p.terminal]
        task.finished = [p for p in distinct if p.terminal]


# ---------------------------------------------------------------------------------- REBASE
@register("rebase")
class Rebase(OptionsStrategy):
    """Reward-balanced expansion: no node is pruned by rank; widths follow softmax(PRM-Last / T).

    Round 0 samples N first steps. Every later depth: the width W = N - (solutions finished so far) is
    split over all valid unfinished nodes of the newest depth in proportion to softmax(score / T)
    (largest remainders, so exactly W); a node allotted 0 is not expanded. A terminal node is a finished
    solution (at most N come out); the search ends when W reaches 0 or nothing is left to expand.
    """

    label = "REBASE"
    color, marker = "#008695", "v"
    stepwise = needs_prm = uses_prm = True
    option_defaults: ClassVar[dict[str, Any]] = {"softmax_temperature": 0.1}
    option_checks: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {"softmax_temperature": (_positive, "a number > 0 (widths: softmax of PRM-Last / it)")}

    def __init__(self, beam_width: int = 1):
        super().__init__(beam_width)
        self.width: dict[int, int] = {}

    def expansions(self, task):
        if task.round == 0:
            return [(task.tree.root, task.budget, 0)]
        return [(n, self.width[n.id], n.subtree) for n in task.active]

    def select(self, task, children):
        if task.round == 0:
            _lineage(children)
        valid = [c for c in children if c.valid]
        for c in valid:
            if c.terminal:
                c.selected = True
                task.finished.append(c)
        frontier = [c for c in valid if not c.terminal]
        left = task.budget - len(task.finished)
        task.active, self.width = [], {}
        if left <= 0 or not frontier:
            return
        counts = allot(left, softmax([c.score for c in frontier], self.opts(task)["softmax_temperature"]))
        for c, k in zip(frontier, counts):
            if k:
                c.selected = True
                self.width[c.id] = k
                task.active.append(c)


# ---------------------------------------------------------------------------------- early-stopping SC
def answer_key(text: str) -> str | None:
    """The live voting key of a sample: its extracted answer's string normal form (no Math-Verify merge)."""
    a = extract_answer(text)
    return normalize(a) if a else None


def window_agrees(keys: list[str | None]) -> bool:
    """ESC's stopping test: every answer of the window is the same (a sample without an answer never agrees)."""
    return bool(keys) and keys[0] is not None and all(k == keys[0] for k in keys)


def early_stop_length(keys: list[str | None], window: int, budget: int) -> int:
    """How many of these ordered samples ESC draws at `budget`: windows of `window` until one agrees."""
    drawn = 0
    while drawn < min(budget, len(keys)):
        take = min(window, budget - drawn)
        win = keys[drawn: drawn + take]
        drawn += len(win)
        if window_agrees(win):
            break
    return drawn


@register("early_stopping")
class EarlyStoppingSC(OptionsStrategy):
    """Self-consistency sampled in windows of w whole solutions, stopped at the first unanimous window.

    Budget N = the most samples drawn. The answer is the majority over every sample drawn. The stopping
    rule reads only earlier samples, so the run at a smaller budget is the first samples of the largest
    (`nested_budgets`): records of every budget come from one generation at the largest.
    """

    label = "Early-stopping SC"
    color, marker = "#f97b72", "X"
    nested_budgets = True  # (not subsample_unit: the samples' order is the method; a subset is not a run)
    option_defaults: ClassVar[dict[str, Any]] = {"window": 4}
    option_checks: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {"window": (_int_at_least_1, "an integer >= 1 (samples per window)")}

    def __init__(self, beam_width: int = 1):
        super().__init__(beam_width)
        self.keys: list[str | None] = []
        self.stopped = False

    def expansions(self, task):
        drawn = len(task.finished)
        if self.stopped or drawn >= task.budget:
            return []
        # the round number goes into the sample seeds (the loop derives them from node, subtree, index)
        return [(task.tree.root, min(self.opts(task)["window"], task.budget - drawn), task.round)]

    def select(self, task, children):
        window = []
        for c in children:
            c.selected = c.terminal = True
            c.subtree = len(task.finished)  # the sample's place in the order
            task.finished.append(c)
            window.append(answer_key(c.text))
        self.keys += window
        self.stopped = window_agrees(window)


# ---------------------------------------------------------------------------------- DeepConf
def group_confidences(token_conf: list[float] | np.ndarray, window: int) -> np.ndarray:
    """Means of every full window of `window` consecutive token confidences (one mean of all if shorter)."""
    c = np.asarray(token_conf, dtype=np.float64)
    if len(c) == 0:
        return np.array([])
    if len(c) < window:
        return np.array([c.mean()])
    s = np.concatenate([[0.0], np.cumsum(c)])
    return (s[window:] - s[:-window]) / window


def lowest_group_confidence(token_conf, window: int) -> float:
    """DeepConf's trace confidence: the lowest sliding-window mean (NaN for a trace without tokens)."""
    g = group_confidences(token_conf, window)
    return float(g.min()) if len(g) else float("nan")


def confidence_threshold(confidences: list[float], eta: float) -> float:
    """The confidence that keeps the top eta% of traces: the (100 - eta)th percentile (numpy's linear)."""
    return float(np.percentile(np.asarray(confidences, dtype=np.float64), 100.0 - eta))


def weighted_majority(keys: list[str | None], weights: list[float]) -> int | None:
    """Index of a trace of the answer with the largest summed confidence (first seen wins ties)."""
    total: dict[str, float] = {}
    first: dict[str, int] = {}
    for i, (k, w) in enumerate(zip(keys, weights)):
        if k is None:
            continue
        total[k] = total.get(k, 0.0) + float(w)
        first.setdefault(k, i)
    if not total:
        return None
    return first[max(total, key=lambda k: (total[k], -first[k]))]


def deepconf_offline(keys: list[str | None], confidences: list[float], eta: float) -> tuple[list[int], int | None]:
    """DeepConf offline: (indices kept: confidence >= the top-eta% threshold, index of the weighted vote)."""
    ok = [i for i, c in enumerate(confidences) if not math.isnan(c)]
    if not ok:
        return [], None
    s = confidence_threshold([confidences[i] for i in ok], eta)
    kept = [i for i in ok if confidences[i] >= s]
    pick = weighted_majority([keys[i] for i in kept], [confidences[i] for i in kept])
    return kept, None if pick is None else kept[pick]


CONFIDENCE_MEASURES = ("top_k", "sampled_token")
_TOP_LOGPROBS = "top_logprobs"  # the Completion field DeepConf's own measure needs (no engine has it yet)


def token_confidences(c: Completion, measure: str, k: int) -> list[float]:
    """Per generated token, a confidence (higher = surer).

    top_k          DeepConf's C_i = -(1/k) sum_{j<=k} log P_i(j) over the k most likely tokens at position i:
                   needs per-position top-k log-probabilities (`Completion.top_logprobs`, absent so far).
    sampled_token  a stand-in, not the paper's measure: P_i(sampled token) from `Completion.token_logprobs`
                   (temperature-1 full-vocabulary softmax), the only per-token signal the CPU engine returns.
    """
    if measure == "top_k":
        rows = getattr(c, _TOP_LOGPROBS, None)
        if rows is None or (c.token_ids and len(rows) != len(c.token_ids)):
            raise RunFailed("DeepConf confidence=top_k needs the top-k log-probabilities of every generated "
                              "position (Completion.top_logprobs); this engine returned none")
        return [-float(np.mean(sorted(r, reverse=True)[:k])) for r in rows]
    if not c.token_logprobs and (c.token_ids or c.usage.completion_tokens):
        raise RunFailed("DeepConf confidence=sampled_token needs Completion.token_logprobs (the sampled "
                          "tokens' log-probabilities); this engine returned none (the SGLang client requests "
                          "no logprobs of generated tokens; the llama.cpp engine returns them)")
    return [math.exp(lp) for lp in c.token_logprobs]


def _check_measure(v) -> bool:
    if v not in CONFIDENCE_MEASURES:
        return False
    if v == "top_k" and _TOP_LOGPROBS not in {f.name for f in fields(Completion)}:
        raise ConfigError(
            "options.confidence='top_k' (DeepConf's token confidence: minus the mean log-probability of "
            "the top-k tokens at each position) needs per-position top-k log-probabilities, which no ttslab "
            "engine returns (Completion has only token_logprobs, the sampled token's log-probability, filled by "
            "the llama.cpp engine): set method.options.confidence=sampled_token, a stand-in that is not the "
            "paper's measure")
    return True


@register("deepconf")
class DeepConf(OptionsStrategy):
    """Traces generated step by step; confidence from the policy's own token probabilities, no PRM.

    offline  N traces to the end; keep those with lowest group confidence >= the (100-eta)th percentile;
             the candidates are the kept traces (majority over them is the unweighted vote;
             `deepconf_vote(record)` gives the paper's confidence-weighted one from the record).
    online   `warmup` traces to the end set the threshold s (their (100-eta)th percentile); then the other
             N - warmup traces run, and one whose lowest full-window confidence falls below s is stopped at
             the end of that step (finish "low_confidence": never a candidate). The paper checks every
             token; checking at step ends keeps the same traces and spends the rest of that step.
             Candidates: every finished trace (warm-up ones included) with confidence >= s.
    Each node's `score` is its path's lowest group confidence so far, so records hold what selection read.
    """

    label = "DeepConf"
    color, marker = "#8c564b", "*"
    stepwise = True
    option_defaults: ClassVar[dict[str, Any]] = {"mode": "online", "eta": 10.0, "window": 2048, "warmup": 16, "top_k": 20,
                       "confidence": "top_k"}
    option_checks: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {
        "mode": (lambda v: v in ("offline", "online"), "offline or online"),
        "eta": (lambda v: not isinstance(v, bool) and 0 < float(v) <= 100, "a percentage in (0, 100] of traces to keep"),
        "window": (_int_at_least_1, "an integer >= 1 (tokens per sliding window)"),
        "warmup": (_int_at_least_1, "an integer >= 1 (traces that set the online threshold)"),
        "top_k": (_int_at_least_1, "an integer >= 1 (tokens per position in DeepConf's confidence)"),
        "confidence": (_check_measure, f"one of {', '.join(CONFIDENCE_MEASURES)}"),
    }

    def __init__(self, beam_width: int = 1):
        super().__init__(beam_width)
        self.tokens: dict[int, list[float]] = {}  # node id -> token confidences of its path
        self.threshold: float | None = None
        self.launched = 0  # traces started
        self.done: list[Node] = []  # traces that ended (answer, EOS, limits), kept or not

    def observe(self, task, child: Node, completion: Completion) -> None:
        """Called by the loop with each new step's completion: the step's token confidences."""
        o = self.opts(task)
        mine = token_confidences(completion, o["confidence"], o["top_k"])
        self.tokens[child.id] = self.tokens.get(child.parent, []) + mine

    def _start(self, task, n: int):
        first = self.launched
        self.launched += n
        return [(task.tree.root, 1, s) for s in range(first, first + n)]

    def expansions(self, task):
        o = self.opts(task)
        if task.round == 0:
            n = task.budget if o["mode"] == "offline" else min(o["warmup"], task.budget)
            return self._start(task, n)
        out = [(n, 1, n.subtree) for n in task.active]
        if not task.active and self.launched < task.budget and o["mode"] == "online":
            self._set_threshold(task)
            out = self._start(task, task.budget - self.launched)
        return out

    def _set_threshold(self, task) -> None:
        confs = [n.score for n in self.done if not math.isnan(n.score)]
        self.threshold = confidence_threshold(confs, self.opts(task)["eta"]) if confs else math.inf
        self._keep(task)

    def _keep(self, task) -> None:
        task.finished = [n for n in self.done if n.score >= self.threshold]  # (NaN never passes)

    def select(self, task, children):
        o = self.opts(task)
        task.active = []
        for c in children:
            if not c.valid:
                continue
            c.score = lowest_group_confidence(self.tokens.get(c.id, []), o["window"])
            full = len(self.tokens.get(c.id, [])) >= o["window"]
            if self.threshold is not None and full and c.score < self.threshold and not c.terminal:
                c.terminal, c.finish = True, "low_confidence"  # stopped early: never a candidate
                continue
            c.selected = True
            if c.terminal:
                self.done.append(c)
            else:
                task.active.append(c)
        if task.active:
            return
        if o["mode"] == "offline" or self.launched >= task.budget:  # every trace has ended
            if self.threshold is None:  # offline (or online with N <= warmup): filter all N at the end
                self._set_threshold(task)
            else:
                self._keep(task)


def deepconf_vote(record: dict[str, Any]) -> dict[str, Any]:
    """The confidence-weighted majority over a DeepConf record's kept traces (candidates' last step score)."""
    cands = record["candidates"]
    keys = [c["key"] for c in cands]
    weights = [(c["step_scores"] or [0.0])[-1] for c in cands]
    i = weighted_majority(keys, weights)
    return {"answer": None if i is None else cands[i]["answer"], "correct": bool(i is not None and cands[i]["correct"])}

