"""The budget semantics of the study (§2.2, Figure 2) on a scripted engine and PRM: milliseconds, no model.

Budget N = generations per depth; beam width M. Beam search: N first steps, keep the N/M best by PRM-Last,
expand each into M. DVTS: N/M subtrees that never mix, each keeps its best of M. Duplicate and cut-off
steps are dropped; a path ends on EOS, a step with \\boxed, the step limit or the token limit.
"""

from __future__ import annotations

import pytest
from fakes import FakeEngine, FakePRM, random_steps, step_score

from ttslab.config import MethodSpec
from ttslab.problems import Problem
from ttslab.search.loop import make_task, run_tasks, split_steps
from ttslab.search.strategies import STRATEGIES, strategy_class

PROBLEM = Problem("p1", "What is 1+1?", "2")


def run(spec: MethodSpec, script=random_steps, problems=(PROBLEM,)):
    engine, prm = FakeEngine(script), FakePRM()
    tasks = [make_task(p, spec) for p in problems]
    done = []
    run_tasks(tasks, engine, prm, "qwen2.5", seed=0, on_done=done.append)
    assert done == [t for t in tasks if t in done] and len(done) == len(tasks)  # each reported once
    return tasks, engine, prm


def by_depth(task):
    depths: dict[int, list] = {}
    for n in task.tree.nodes[1:]:
        depths.setdefault(n.depth, []).append(n)
    return depths


def spec(name, budget, m=4, **kw):
    return MethodSpec(name, budget, beam_width=m, **{"max_steps": 3, **kw})


@pytest.mark.parametrize("n, m", [(4, 2), (8, 4), (16, 4), (4, 4)])
def test_beam_search_generates_n_per_depth_and_keeps_the_n_over_m_best_by_prm_last(n, m):
    (task,), engine, _ = run(spec("beam_search", n, m))
    depths = by_depth(task)
    assert sorted(depths) == [1, 2, 3]
    for d, nodes in depths.items():
        assert len(nodes) == n, f"depth {d}: {len(nodes)} generations, budget {n}"
        kept = [c for c in nodes if c.selected]
        assert len(kept) == n // m
        best = sorted(nodes, key=lambda c: -step_score(c.text))[: n // m]
        assert {c.id for c in kept} == {c.id for c in best}  # PRM-Last: the newest step's score
        if d > 1:  # M children per kept parent
            parents = [c.parent for c in nodes]
            assert all(parents.count(p) == m for p in set(parents))
            assert all(task.tree.nodes[p].selected for p in parents)
    assert len(task.candidates()) == n // m  # the step limit ended every beam
    assert all(c.finish == "max_steps" for c in task.finished)
    assert [len(r) for r in engine.calls] == [n, n, n]


def test_beam_search_does_not_refill_a_finished_beam():
    def script(depth, seed, k):  # at depth 2 every candidate answers
        text, finish, tokens = random_steps(depth, seed, k)
        return (text.replace("\n\n", " \\boxed{2}\n\n"), finish, tokens) if depth == 1 else (text, finish, tokens)

    (task,), engine, _ = run(spec("beam_search", 8, 4, max_steps=5), script)
    assert len(task.finished) == 2 and all(c.finish == "answer" for c in task.finished)
    assert [len(r) for r in engine.calls] == [8, 8]


@pytest.mark.parametrize("n, m", [(8, 4), (16, 4), (4, 2)])
def test_dvts_subtrees_never_mix_and_each_keeps_its_best_of_m(n, m):
    (task,), engine, _ = run(spec("dvts", n, m))
    subtrees = n // m
    for d, nodes in by_depth(task).items():
        assert len(nodes) == n
        for s in range(subtrees):
            group = [c for c in nodes if c.subtree == s]
            assert len(group) == m
            kept = [c for c in group if c.selected]
            assert kept == [max(group, key=lambda c: step_score(c.text))]
            if d > 1:  # every node of subtree s descends from subtree s
                assert {task.tree.nodes[c.parent].subtree for c in group} == {s}
    assert sorted(c.subtree for c in task.candidates() for c in [c[2]]) == list(range(subtrees))


def test_dvts_subtrees_do_not_dedup_each_others_first_steps():
    """N=4, M=2: first steps A, B, A, B. Subtree 1 repeats subtree 0's first steps; they are its own
    siblings' duplicates of nothing, so both subtrees live and two solutions come out (one, when
    duplicates were looked up per parent: all N first steps share the root)."""
    def script(depth, seed, k):
        if depth == 0:
            return ("STEP A s=0.6\n\n", "STEP B s=0.4\n\n")[k % 2], "step", 5
        return random_steps(depth, seed, k)

    (task,), engine, _ = run(spec("dvts", 4, 2, max_steps=2), script)
    first = by_depth(task)[1]
    assert [c.valid for c in first] == [True] * 4
    assert [c.text[:6] for c in first if c.selected] == ["STEP A", "STEP A"]  # each subtree keeps its best
    assert sorted(node.subtree for _, _, node in task.candidates()) == [0, 1]
    assert [len(r) for r in engine.calls] == [4, 4]


def test_duplicate_empty_and_cut_off_steps_are_dropped():
    def script(depth, seed, k):
        if k == 0:
            return "same step s=0.9\n\n", "step", 5
        if k == 1:
            return "same step s=0.9\n\n", "step", 5  # a duplicate of its sibling
        if k == 2:
            return "cut off s=0.99", "length", 64  # hit the per-step token limit
        return "  \n\n", "step", 1  # empty

    (task,), _, prm = run(spec("beam_search", 4, 4, max_steps=1), script)
    first = by_depth(task)[1]
    assert [c.valid for c in first] == [True, False, False, False]
    assert [c.id for c in task.finished] == [first[0].id]
    assert len(prm.last_calls) == 1  # dropped candidates are never scored


@pytest.mark.parametrize("finish, text, tokens, kw, expected", [
    ("eos", "the end s=0.5", 5, {}, "eos"),
    ("step", "so \\boxed{2} s=0.5\n\n", 5, {}, "answer"),
    ("step", "STEP more s=0.5\n\n", 5, {"max_steps": 1}, "max_steps"),
    ("step", "STEP long s=0.5\n\n", 100, {"max_tokens": 100, "max_steps": 9}, "max_tokens"),
])
def test_a_path_ends_on_eos_boxed_the_step_limit_or_the_token_limit(finish, text, tokens, kw, expected):
    (task,), engine, _ = run(spec("dvts", 4, 4, **kw), lambda d, s, k: (text.replace("s=", f"k={k} s="), finish, tokens))
    assert len(engine.calls) == 1 and task.finished[0].finish == expected


def test_search_asks_for_one_step_within_the_token_budget_left():
    def script(depth, seed, k):
        return f"STEP {depth} seed={seed} s=0.5\n\n", "step", 30

    _, engine, _ = run(spec("beam_search", 4, 4, max_steps=9, max_tokens=100, max_step_tokens=40), script)
    limits = [{r.params.max_tokens for r in call} for call in engine.calls]
    assert limits == [{40}, {40}, {40}, {10}]  # 100 tokens in all: 30+30+30, then 10 left
    assert all(r.params.stop == ("\n\n",) for call in engine.calls for r in call)


def test_best_of_n_samples_whole_solutions_scores_every_step_and_numbers_samples():
    def script(depth, seed, k):
        return f"a s=0.{k + 1}\n\nb s=0.9\n\n\\boxed{{2}}", "eos", 20

    (task,), engine, prm = run(MethodSpec("best_of_n", 8), script)
    assert len(engine.calls) == 1 and len(engine.calls[0]) == 8
    assert all(r.params.stop == () and r.params.max_tokens == 8192 for r in engine.calls[0])
    cands = task.candidates()
    assert [c[2].subtree for c in cands] == list(range(8))  # the sample index: budget n = first n
    for steps, scores, node in cands:
        assert steps == split_steps(node.text, "\n\n") and len(steps) == 3
        assert scores == [step_score(s) for s in steps]
    assert len({r.params.seed for r in engine.calls[0]}) == 8  # independent samples


def test_best_of_n_samples_do_not_depend_on_the_other_budgets_of_a_run():
    """Nested budgets: the runner generates the largest budget once; its first n samples ARE Best-of-n."""
    small, _, _ = run(MethodSpec("best_of_n", 16))
    again, _, _ = run(MethodSpec("best_of_n", 16))
    assert [n.text for n in small[0].tree.nodes] == [n.text for n in again[0].tree.nodes]
    assert strategy_class("best_of_n").nested_budgets and not strategy_class("beam_search").nested_budgets


def test_cot_is_one_greedy_sample_and_never_scored():
    (task,), engine, prm = run(MethodSpec("cot", 1, temperature=0.0))
    assert len(engine.calls[0]) == 1 and engine.calls[0][0].params.temperature == 0.0
    assert not prm.all_calls and task.candidates()[0][1] is None


def test_problems_advance_together_in_one_batch_per_round():
    probs = [Problem(f"p{i}", f"Question {i}?", "1") for i in range(3)]
    tasks, engine, _ = run(spec("beam_search", 4, 2, max_steps=2), problems=probs)
    assert [len(r) for r in engine.calls] == [12, 12]
    assert all(len(t.candidates()) == 2 for t in tasks)


def test_the_registry_declares_what_each_method_is():
    assert list(STRATEGIES)[:4] == ["cot", "best_of_n", "beam_search", "dvts"]  # (later: test_after_study_methods)
    needs = {n for n in list(STRATEGIES)[:4] if STRATEGIES[n].needs_prm}
    assert needs == {"beam_search", "dvts"}
    assert strategy_class("cot").fixed_budget == 1 and strategy_class("cot").greedy


def test_a_strategy_of_ones_own_is_one_class_named_by_its_import_path():
    from ttslab.config import compose, method_specs

    cfg = compose(["method.name=fakes:KeepFirst", "method.budget=4", "method.beam_width=2", "method.max_steps=2"])
    (group,) = method_specs(cfg)
    engine = FakeEngine()
    task = make_task(PROBLEM, group[0])
    run_tasks([task], engine, None, "qwen2.5")
    assert [len(r) for r in engine.calls] == [4, 4] and len(task.candidates()) == 2
