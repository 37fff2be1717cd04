"""Budget semantics of Best-of-N, beam search and DVTS on the real engine with the real CPU judge.

The integration tier of tests/test_search_rules.py (the same rules on a scripted engine, in milliseconds)."""

import pytest

from ttslab.problems import load_problems
from ttslab.config import MethodSpec
from ttslab.search.loop import make_task, run_tasks, split_steps

pytestmark = pytest.mark.model

SMALL = dict(max_tokens=160, max_step_tokens=64, max_steps=3)


def problems(n=2):
    return load_problems(limit=n)


def by_depth(task):
    depths = {}
    for n in task.tree.nodes[1:]:
        depths.setdefault(n.depth, []).append(n)
    return depths


def test_best_of_n_gives_n_solutions_scored_step_by_step(engine, judge):
    tasks = [make_task(p, MethodSpec("best_of_n", 4, **SMALL)) for p in problems()]
    run_tasks(tasks, engine, judge, "qwen2.5")
    for t in tasks:
        cands = t.candidates()
        assert len(cands) == 4
        for steps, scores, node in cands:
            assert steps == split_steps(node.text, "\n\n") and "".join(steps).strip() == node.text.strip()
            assert scores is not None and len(scores) == len(steps)
            assert all(0.0 <= s <= 1.0 for s in scores)


def test_beam_search_spends_n_per_depth_and_keeps_n_over_m(engine, judge):
    n, m = 4, 2
    tasks = [make_task(p, MethodSpec("beam_search", n, beam_width=m, **SMALL)) for p in problems()]
    run_tasks(tasks, engine, judge, "qwen2.5")
    for t in tasks:
        depths = by_depth(t)
        assert len(depths[1]) == n  # N candidates at the first depth, all from the root
        for d, nodes in depths.items():
            assert len(nodes) <= n
            kept = [x for x in nodes if x.selected]
            assert len(kept) <= n // m
            rejected = [x for x in nodes if x.valid and not x.selected]
            if kept and rejected:  # the kept ones are the best-scored valid candidates (PRM-Last)
                assert min(x.score for x in kept) >= max(x.score for x in rejected)
            parents = {x.parent for x in nodes}
            if d > 1:
                assert all(sum(1 for x in nodes if x.parent == p) == m for p in parents)
        assert len(t.finished) <= n // m
        for steps, scores, _ in t.candidates():
            assert len(scores) == len(steps)


def test_dvts_runs_n_over_m_independent_subtrees(engine, judge):
    n, m = 4, 2
    tasks = [make_task(p, MethodSpec("dvts", n, beam_width=m, **SMALL)) for p in problems(1)]
    run_tasks(tasks, engine, judge, "qwen2.5")
    t = tasks[0]
    assert {x.subtree for x in t.tree.nodes[1:]} == {0, 1}
    for d, nodes in by_depth(t).items():
        for s in (0, 1):
            group = [x for x in nodes if x.subtree == s]
            assert len(group) in (0, m)
            assert sum(x.selected for x in group) <= 1
    assert len(t.finished) <= n // m
    assert len({node.subtree for _, _, node in t.candidates()}) == len(t.candidates())
