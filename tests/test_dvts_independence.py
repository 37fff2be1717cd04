"""DVTS keeps N/M independent subtrees: ttslab's loop against a port of search-and-learn's DVTS.

search-and-learn (huggingface/search-and-learn, src/sal/search/diverse_verifier_tree_search.py) runs DVTS as
N/M beams that never look at each other: every iteration each live beam samples M continuations, the PRM scores
them, the beam keeps its argmax (agg_strategy="last": the newest step's score), and it stops on EOS or once its
text holds "boxed{". The port below is written from that description for this test (not copied), with the
study's own quirks set aside, each named where it is set aside:
  - its last iteration samples to EOS instead of one step, and it returns M texts per beam (the kept prefix
    plus each of the last M samples) instead of the one kept path;
  - it keeps every sample; here, as in ttslab (README "Semantics"), a sample cut at the token limit, a blank
    one, or one that repeats an earlier sample *of the same beam* is dropped, and a beam left with none ends
    with no solution;
  - it has no total-token limit; here a path ends once its tokens reach max_tokens.
Both sides are driven by the same scripted policy (a step is a function of the prompt and of the request's
index among the round's requests with that prompt) and the same scripted PRM (tests/fakes.py), over hundreds
of random scenarios in which first steps and later steps repeat often, across subtrees and within them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from analysis_fixtures import write_run
from fakes import FakePRM

from ttslab import study
from ttslab.config import MethodSpec
from ttslab.engines.base import Completion, TokenUsage
from ttslab.errors import InputError
from ttslab.problems import Problem
from ttslab.prompts import build_prompt
from ttslab.rewards.base import ScoreRequest
from ttslab.search.loop import make_task, run_tasks

FAMILY = "qwen2.5"
PROBLEM = Problem("p1", "What is 1+1?", "2")


@dataclass(frozen=True)
class Scenario:
    seed: int
    n: int
    m: int
    max_steps: int
    max_tokens: int
    vocab: int  # distinct step texts per depth: small, so repeats are frequent
    p_eos: float
    p_boxed: float
    p_cut: float
    p_blank: float

    @classmethod
    def draw(cls, seed: int) -> Scenario:
        r = random.Random(seed)
        m = r.choice([2, 4])
        n = m * r.choice([1, 2, 4]) if m == 4 else m * r.choice([1, 2, 4, 8])
        return cls(seed, n, m, r.randint(1, 5), r.randint(15, 90), r.randint(1, 4),
                   r.choice([0.0, 0.05, 0.15]), r.choice([0.0, 0.1, 0.25]), r.choice([0.0, 0.1, 0.3]),
                   r.choice([0.0, 0.05, 0.2]))

    def step(self, prompt: str, k: int) -> tuple[str, str, int]:
        """(text, finish, tokens) of the k-th sample of this prompt in a round: a pure function."""
        h = hashlib.sha256(f"{self.seed}|{prompt}|{k}".encode()).digest()
        r = random.Random(h)
        depth = prompt.count("STEP")
        choice = r.randrange(self.vocab)
        score = random.Random(f"{self.seed}|{depth}|{choice}").random()  # same text, same score
        text = f"STEP d{depth} v{choice} s={score:.6f}"
        tokens = r.randint(1, 20)
        u = r.random()
        if u < self.p_blank:
            return " \n\n", "step", 1
        u -= self.p_blank
        if u < self.p_cut:
            return text, "length", tokens
        u -= self.p_cut
        if u < self.p_eos:
            return text, "eos", tokens
        u -= self.p_eos
        if u < self.p_boxed:
            return text + " \\boxed{2}\n\n", "step", tokens
        return text + "\n\n", "step", tokens


class ScenarioEngine:
    """The Engine protocol, answering each request with the scenario's step for (prompt, k)."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.calls: list[int] = []

    def generate(self, requests):
        self.calls.append(len(requests))
        k: Counter[str] = Counter()
        out = []
        for r in requests:
            text, finish, tokens = self.scenario.step(r.prompt, k[r.prompt])
            k[r.prompt] += 1
            out.append(Completion(text, finish, TokenUsage(len(r.prompt), 0, tokens)))
        return out

    def tokenize(self, text):
        return [ord(c) for c in text]

    def close(self):
        pass


def ttslab_dvts(sc: Scenario):
    engine, prm = ScenarioEngine(sc), FakePRM()
    task = make_task(PROBLEM, MethodSpec("dvts", sc.n, beam_width=sc.m, max_steps=sc.max_steps,
                                         max_tokens=sc.max_tokens, max_step_tokens=sc.max_tokens))
    run_tasks([task], engine, prm, FAMILY)
    sols = sorted((node.subtree, tuple(steps), node.finish) for steps, _, node in task.candidates())
    return task, sols, engine.calls


@dataclass
class Beam:
    index: int
    steps: list[str] = field(default_factory=list)
    tokens: int = 0
    pruned: bool = False
    finish: str | None = None


def search_and_learn_dvts(sc: Scenario):
    """search-and-learn's DVTS loop (quirks set aside: see the module docstring)."""
    prm = FakePRM()
    beams = [Beam(i) for i in range(sc.n // sc.m)]  # config.n_beams = n // beam_width
    calls = []
    for _ in range(sc.max_steps):  # config.num_iterations
        gen_beams = [b for b in beams if not b.pruned]
        if not gen_beams:
            break
        k: Counter[str] = Counter()
        samples = []
        for b in gen_beams:  # generate_k_steps: beam_width samples per live beam, beams in order
            prompt = build_prompt(FAMILY, PROBLEM.question, b.steps)
            samples.append([sc.step(prompt, k[prompt] + j) for j in range(sc.m)])
            k[prompt] += sc.m
        calls.append(sum(map(len, samples)))
        for b, outs in zip(gen_beams, samples):
            kept, seen = [], set()  # set aside: drop cut, blank, and repeats of this beam's own samples
            for text, finish, tokens in outs:
                key = text.strip()
                if finish == "length" or not key or key in seen:
                    continue
                seen.add(key)
                kept.append((text, finish, tokens))
            if not kept:  # set aside: nothing left to keep, the beam ends without a solution
                b.pruned = True
                continue
            scores = [s.scores[-1] for s in prm.score_last(
                [ScoreRequest(PROBLEM.question, (*b.steps, t), PROBLEM.id) for t, _, _ in kept])]
            best = max(range(len(kept)), key=lambda i: (scores[i], -i))  # np.argmax: first of ties
            text, finish, tokens = kept[best]
            b.steps.append(text)
            b.tokens += tokens
            if finish == "eos":
                b.pruned, b.finish = True, "eos"
            elif "\\boxed" in text:  # search-and-learn: "boxed{" in the beam's text
                b.pruned, b.finish = True, "answer"
            elif len(b.steps) >= sc.max_steps:  # the last iteration
                b.pruned, b.finish = True, "max_steps"
            elif b.tokens >= sc.max_tokens:  # set aside: ttslab's total-token limit
                b.pruned, b.finish = True, "max_tokens"
    return sorted((b.index, tuple(b.steps), b.finish) for b in beams if b.finish), calls


def check_independent_subtrees(task, sc: Scenario) -> None:
    """The tree holds N/M subtrees that never mix: M first steps each from the root, every later node under
    a node of its own subtree, M children per kept node, at most one kept per subtree and depth, and one
    solution per subtree unless all M children of its kept node were dropped."""
    nodes = task.tree.nodes
    subtrees = sc.n // sc.m
    first = [c for c in nodes[1:] if c.depth == 1]
    assert Counter(c.subtree for c in first) == {s: sc.m for s in range(subtrees)}
    for c in nodes[1:]:
        parent = nodes[c.parent]
        assert parent.id == 0 or parent.subtree == c.subtree
        assert parent.selected and not parent.terminal
    per_depth = Counter((c.subtree, c.depth) for c in nodes[1:] if c.selected)
    assert max(per_depth.values(), default=1) == 1
    children = Counter(c.parent for c in nodes[1:] if c.depth > 1)
    assert set(children.values()) <= {sc.m}
    solutions = Counter(node.subtree for _, _, node in task.candidates())
    assert max(solutions.values(), default=1) == 1
    for s in set(range(subtrees)) - set(solutions):  # ended early: its last M children were all dropped
        last = max(c.depth for c in nodes[1:] if c.subtree == s)
        assert not any(c.valid for c in nodes[1:] if c.subtree == s and c.depth == last)


@pytest.mark.parametrize("seed", range(400))
def test_dvts_equals_search_and_learns_dvts_and_keeps_independent_subtrees(seed):
    sc = Scenario.draw(seed)
    task, ours, our_calls = ttslab_dvts(sc)
    theirs, their_calls = search_and_learn_dvts(sc)
    assert ours == theirs, sc
    assert our_calls == their_calls, sc  # the same generations per round
    check_independent_subtrees(task, sc)


def test_the_scenarios_exercise_repeats_across_subtrees_and_subtrees_that_end_early():
    """The random scenarios are not vacuous: first steps repeat across subtrees in many of them (the case
    the per-parent lookup got wrong), and some subtrees end with all M children dropped."""
    repeats = ended = 0
    for seed in range(400):
        sc = Scenario.draw(seed)
        task, sols, _ = ttslab_dvts(sc)
        first = [c for c in task.tree.nodes[1:] if c.depth == 1 and c.finish != "length" and c.text.strip()]
        owners: dict[str, set[int]] = {}
        for c in first:
            owners.setdefault(c.text.strip(), set()).add(c.subtree)
        repeats += any(len(s) > 1 for s in owners.values())
        ended += len(sols) < sc.n // sc.m
    assert repeats >= 100 and ended >= 20, (repeats, ended)


# --------------------------------------------------------------------------- check_run on stored DVTS trees

BEFORE_FIX = Path(__file__).parent / "dvts_record_before_fix.json"


def record_of(task, template: dict) -> dict:
    """A DVTS record holding the loop's tree and solutions (the other fields from a real record)."""
    rec = copy.deepcopy(template)
    rec.update(problem_id=task.problem.id, budget=task.budget, beam_width=task.spec.beam_width,
               tree=task.tree.as_records(),
               candidates=[{**template["candidates"][0], "subtree": node.subtree} for _, _, node in task.candidates()])
    return rec


def test_check_run_names_a_dvts_record_made_with_the_per_parent_duplicate_lookup(tmp_path):
    """bundled-45 at N=4 as the shipped run stored it before the fix: subtree 1's two first steps were
    dropped as repeats of subtree 0's, and it died; check_run says so, and says what to do."""
    old = json.loads(BEFORE_FIX.read_text())
    with pytest.raises(InputError, match=r"bundled-45, dvts, N=4\): node 3 of subtree 1, node 4 of subtree 1 "
                                         r"dropped as a repeat of another subtree's step .*regenerate"):
        study.check_run(write_run(tmp_path / "old", [old]))


def test_check_run_passes_independent_subtrees_and_says_why_a_subtree_ended_early(tmp_path):
    old = json.loads(BEFORE_FIX.read_text())
    sc = next(s for s in map(Scenario.draw, range(400)) if s.p_cut >= 0.3 and s.n // s.m >= 2)
    records = []
    for seed in range(sc.seed, sc.seed + 2000):
        task, sols, _ = ttslab_dvts(Scenario.draw(seed))
        if len(sols) < task.budget // task.spec.beam_width and task.tree.nodes[-1].finish == "length":
            records.append(record_of(task, old))
            break
    fine = record_of(ttslab_dvts(Scenario.draw(0))[0], old) | {"problem_id": "fine"}
    counts = study.check_run(write_run(tmp_path / "ok", [*records, fine]))
    assert counts["dvts_records_checked"] == 2
    assert sum(counts["dvts_subtrees_ended_early"].values()) >= 1
    assert all(k.startswith("all ") and "children dropped: " in k for k in counts["dvts_subtrees_ended_early"])
    # a subtree with no solution although its last step was kept and valid: not ended early
    lost = copy.deepcopy(fine)
    lost["candidates"] = lost["candidates"][:-1]
    with pytest.raises(InputError, match=r"subtree \d+ has no solution but did not end early"):
        study.check_run(write_run(tmp_path / "lost", [lost]))
    # a node under another subtree's node: subtrees mixed
    mixed = copy.deepcopy(fine)
    deep = [x for x in mixed["tree"] if x["depth"] == 2]
    if deep and fine["budget"] // fine["beam_width"] > 1:
        deep[0]["subtree"] = (deep[0]["subtree"] + 1) % (fine["budget"] // fine["beam_width"])
        with pytest.raises(InputError, match="not under its own subtree"):
            study.check_run(write_run(tmp_path / "mixed", [mixed]))


@pytest.mark.parametrize("run_dir", study.study_run_dirs(), ids=lambda d: d.name)
def test_every_shipped_dvts_record_holds_n_over_m_independent_subtrees(run_dir):
    counts = study.check_run(run_dir)
    assert counts["dvts_records_checked"] >= 10
