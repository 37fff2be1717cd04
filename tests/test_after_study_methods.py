"""The methods after the study (ttslab/search/after_study.py): each one's selection rule pinned on hand-made
cases with the scripted engine and PRM (milliseconds), ESC replayed on stored records, and one model-tier
run per method on the embedded model.

Particle filtering (Puri et al. 2025), REBASE (Wu et al. 2024), early-stopping self-consistency (Li et al.
2024) and DeepConf (Fu et al. 2025); see the README's "Methods after the study".
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEngine, FakePRM, random_steps, step_score

from ttslab.config import MethodSpec, compose, validate
from ttslab.engines.base import Completion, TokenUsage
from ttslab.errors import ConfigError, RunFailed
from ttslab.problems import Problem
from ttslab.search import after_study as A
from ttslab.search.loop import make_task, run_tasks
from ttslab.search.strategies import STRATEGIES, method_names, whole_solution_methods

PROBLEM = Problem("p1", "What is 1+1?", "2")
STUDY_RUN = Path(__file__).resolve().parents[1] / "ttslab" / "data" / "study_run" / "math500_levels"


def spec(name, budget, options=None, **kw):
    cls = STRATEGIES[name]
    return MethodSpec(name, budget, **{"max_steps": 3, **kw}, options=cls.check_options(options or {}, "method"))


def run(s: MethodSpec, engine=None, prm=None):
    engine, prm = engine or FakeEngine(), prm if prm is not None else FakePRM()
    task = make_task(PROBLEM, s)
    done = []
    run_tasks([task], engine, prm, "qwen2.5", seed=0, on_done=done.append)
    assert done == [task]
    return task, engine


def by_depth(task):
    depths: dict[int, list] = {}
    for n in task.tree.nodes[1:]:
        depths.setdefault(n.depth, []).append(n)
    return depths


def scored_steps(scores_by_lineage):
    """A script whose first steps carry the given scores in order of arrival; later steps copy their lineage's.

    The depth-0 request k of the first call gets scores_by_lineage[k]; a later step repeats the score found
    in its prompt's first step, so a lineage keeps its score and the test knows every weight."""
    calls = {"first": 0}

    def script(depth, seed, k):
        if depth == 0:
            i = calls["first"]
            calls["first"] += 1
            return f"STEP 0 lineage={i} s={scores_by_lineage[i]:.6f}\n\n", "step", 10
        return f"STEP {depth} seed={seed} s=@\n\n", "step", 10

    return script


class LineagePRM(FakePRM):
    """Scores a step by its own s=, or for 's=@' by the first step's score of the path."""

    def score_last(self, requests):
        out = super().score_last(requests)
        for r, s in zip(requests, out):
            if "s=@" in r.steps[-1]:
                s.scores[-1] = step_score(r.steps[0])
        return out


# ------------------------------------------------------------------------------------- registry / config
def test_the_four_methods_are_registered_after_the_study_with_their_facts():
    assert method_names()[:4] == ("cot", "best_of_n", "beam_search", "dvts")
    assert set(method_names()[4:]) == {"particle_filter", "rebase", "early_stopping", "deepconf"}
    pf, rb, es, dc = (STRATEGIES[n] for n in ("particle_filter", "rebase", "early_stopping", "deepconf"))
    assert pf.needs_prm and pf.stepwise and not pf.subsample_unit and not pf.nested_budgets
    assert rb.needs_prm and rb.stepwise and not rb.width_divides_budget
    assert not es.needs_prm and not es.uses_prm and not es.stepwise and es.nested_budgets and es.subsample_unit is None
    assert not dc.needs_prm and not dc.uses_prm and dc.stepwise  # (stopped traces are not Pass@1 samples)
    # Pass@1 (the difficulty bins) reads only unselected whole solutions: ESC stops on what it drew
    assert whole_solution_methods() == ("cot", "best_of_n")
    assert all(STRATEGIES[n].label and STRATEGIES[n].color and STRATEGIES[n].marker for n in method_names()[4:])


@pytest.mark.parametrize("method", ["particle_filter", "rebase", "early_stopping"])
def test_each_yaml_composes_and_its_options_enter_the_record_settings(method):
    (s,), = validate(compose([f"method={method}"]))
    assert s.name == method and s.options
    assert s.settings()["options"] == dict(s.options)
    assert json.loads(json.dumps(s.settings())) == s.settings()  # what resume compares with


def test_methods_without_options_keep_the_settings_their_records_always_had():
    (s,), = validate(compose(["method=best_of_n"]))
    assert "options" not in s.settings()
    with pytest.raises(ConfigError, match=r"method.options=\{'softmax_temperature': 1\}: method dvts takes no options"):
        validate(compose(["method=dvts", "+method.options.softmax_temperature=1"]))


@pytest.mark.parametrize("override, message", [
    ("method.options.softmax_temperature=0", r"method.options.softmax_temperature=0: expected a number > 0"),
    ("+method.options.beams=3", r"method.options: unknown keys \['beams'\]; particle_filter takes \['softmax_temperature'\]"),
])
def test_bad_options_fail_with_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(["method=particle_filter", override]))


def test_deepconf_with_the_papers_confidence_says_what_the_engines_lack():
    with pytest.raises(ConfigError, match=r"method.options.confidence='top_k' .* needs per-position top-k log-probabilities"):
        validate(compose(["method=deepconf"]))
    (s,), = validate(compose(["method=deepconf", "method.options.confidence=sampled_token", "prm=none"]))
    assert dict(s.options)["confidence"] == "sampled_token"


# ------------------------------------------------------------------------------------- particle filtering
def test_allot_splits_a_width_exactly_by_largest_remainders():
    assert A.allot(5, np.array([0.5, 0.3, 0.2])) == [3, 1, 1]  # quotas 2.5, 1.5, 1.0: the tie goes to the first
    assert A.allot(4, np.array([0.25] * 4)) == [1, 1, 1, 1]
    rng = np.random.default_rng(0)
    for _ in range(50):
        w = rng.dirichlet(np.ones(7))
        n = int(rng.integers(1, 40))
        assert sum(A.allot(n, w)) == n
    assert np.allclose(A.softmax([0.0, math.log(3)], 1.0), [0.25, 0.75])


def test_particle_filter_resamples_onto_the_heavy_particle_and_keeps_ancestry():
    scores = [0.1, 0.9, 0.2, 0.3]  # lineage 1 dominates at temperature 0.01
    task, engine = run(spec("particle_filter", 4, {"softmax_temperature": 0.01}), FakeEngine(scored_steps(scores)),
                       LineagePRM())
    assert [len(c) for c in engine.calls] == [4, 4, 4]  # N particles = N generations per depth
    # after round 0 every particle is a copy of lineage 1: round 1 expands that one node into 4 children
    assert len({r.prompt for r in engine.calls[1]}) == 1 and "lineage=1" in engine.calls[1][0].prompt
    first = [n for n in task.tree.nodes if n.depth == 1]
    assert [n.selected for n in first] == [False, True, False, False] and [n.subtree for n in first] == [0, 1, 2, 3]
    for steps, _, node in task.candidates():
        assert "lineage=1" in steps[0] and node.subtree == 1  # every survivor descends from it
        assert [n.depth for n in task.tree.path(node)] == [1, 2, 3]


def test_particle_filter_at_high_temperature_keeps_several_lineages_and_is_reproducible():
    def once():
        task, _ = run(spec("particle_filter", 8, {"softmax_temperature": 100.0}))
        return task, [(n.parent, n.text, n.selected) for n in task.tree.nodes]

    (task, a), (_, b) = once(), once()
    assert a == b  # seeded resampling
    assert len({n.subtree for n in task.finished}) > 1


def test_particle_filter_finished_particles_compete_with_the_live_ones():
    def script(depth, seed, k):  # at depth 0, sample k=0 answers with a high score; the others are weak
        if depth == 0 and k == 0:
            return "STEP 0 \\boxed{2} s=0.990000\n\n", "step", 10
        return f"STEP {depth} seed={seed} s=0.010000\n\n", "step", 10

    task, engine = run(spec("particle_filter", 4, {"softmax_temperature": 0.01}, max_steps=5), FakeEngine(script))
    assert [len(c) for c in engine.calls] == [4]  # every particle resampled onto the finished one: no round 2
    assert len(task.finished) == 1 and task.finished[0].finish == "answer"


# ------------------------------------------------------------------------------------- REBASE
def test_rebase_allots_each_depths_width_by_softmax_of_prm_last():
    scores = [0.9, 0.5, 0.1, 0.7]
    t = 0.2
    task, engine = run(spec("rebase", 8, {"softmax_temperature": t}), FakeEngine(scored_steps(scores + [0.0] * 4)),
                       LineagePRM())
    first = sorted((n for n in task.tree.nodes if n.depth == 1), key=lambda n: n.id)
    want = A.allot(8, A.softmax([step_score(n.text) for n in first], t))
    got = [sum(1 for m in task.tree.nodes if m.parent == n.id) for n in first]
    assert got == want and sum(got) == 8 and got[0] > got[2]  # the best node gets the most children
    assert [len(c) for c in engine.calls] == [8, 8, 8]


def test_rebase_spends_n_minus_the_finished_solutions_and_stops_at_n():
    def script(depth, seed, k):  # three first steps answer at once; the rest go on
        if depth == 0 and k < 3:
            return f"STEP 0 \\boxed{{2}} seed={seed} s=0.5\n\n", "step", 10
        return random_steps(depth, seed, k)

    task, engine = run(spec("rebase", 8, max_steps=3), FakeEngine(script))
    assert [len(c) for c in engine.calls] == [8, 5, 5]
    assert len(task.finished) == 8 and sum(n.finish == "answer" for n in task.finished) == 3


# ------------------------------------------------------------------------------------- early-stopping SC
@pytest.mark.parametrize("keys, window, budget, drawn", [
    (["a"] * 8, 4, 8, 4),  # the first window agrees
    (["a", "b", "a", "a", "a", "a", "a", "a"], 4, 8, 8),  # the second does
    (["a", "b", "a", "a", "c", "c", "c", "c"], 4, 6, 6),  # the budget cuts the second window to 2
    ([None] * 8, 4, 8, 8),  # no answer never agrees
    (["a", "a", "b", "b"], 2, 4, 2),
    (["a", "b", "c"], 1, 3, 1),  # a window of one always agrees
])
def test_early_stop_length_pins_the_windows(keys, window, budget, drawn):
    assert A.early_stop_length(keys, window, budget) == drawn


def test_early_stopping_at_a_smaller_budget_is_the_first_samples_of_the_largest():
    rng = random.Random(0)
    for _ in range(300):
        keys = [rng.choice("ab") for _ in range(16)]
        w = rng.choice([1, 2, 3, 4, 5])
        full = A.early_stop_length(keys, w, 16)
        for b in range(1, 17):
            assert A.early_stop_length(keys, w, b) == min(full, b)  # what nested_budgets (cands[:b]) relies on


def whole(answer_of):
    def script(depth, seed, k):
        return f"Solution seed={seed}\n\nSo \\boxed{{{answer_of(seed, k)}}}", "eos", 20

    return script


def test_early_stopping_live_stops_at_the_first_unanimous_window():
    task, engine = run(spec("early_stopping", 16, {"window": 4}), FakeEngine(whole(lambda s, k: 2)), prm=None)
    assert [len(c) for c in engine.calls] == [4] and len(task.candidates()) == 4


def test_early_stopping_live_draws_the_budget_when_windows_disagree_with_distinct_seeds():
    task, engine = run(spec("early_stopping", 10, {"window": 4}), FakeEngine(whole(lambda s, k: k)), prm=None)
    assert [len(c) for c in engine.calls] == [4, 4, 2]
    seeds = [r.params.seed for call in engine.calls for r in call]
    assert len(set(seeds)) == 10  # each window's samples are new samples
    assert [node.subtree for _, _, node in task.candidates()] == list(range(10))  # stored in drawing order


def test_early_stopping_replay_on_hand_made_best_of_n_records():
    from ttslab.analysis.early_stopping import early_stopping_summary, early_stopping_table

    def rec(pid, keys, gold):
        return {"method": "best_of_n", "budget": len(keys), "problem_id": pid, "policy": "p", "prm": None, "seed": 0,
                "candidates": [{"key": k, "correct": k == gold, "subtree": i, "usage": {"completion_tokens": 10}}
                               for i, k in enumerate(keys)]}

    # p1: the first window of 2 agrees on the wrong answer; majority of 4 is right (b, b, a... tie first-seen)
    recs = [rec("p1", ["a", "a", "b", "b"], "b"), rec("p2", ["b", "a", "b", "b"], "b"),
            {**rec("p1", ["a", "a"], "b"), "budget": 2}]  # a smaller record of p1 is not the one replayed
    t = early_stopping_table(recs, window=2, budgets=[4])
    got = {r.problem_id: (r.samples, r.correct, r.bon_correct, r.completion_tokens) for r in t.itertuples()}
    assert got == {"p1": (2, False, False, 20), "p2": (4, True, True, 40)}  # p1: a,a,b,b majority ties -> a
    s = early_stopping_summary(t).iloc[0]
    assert s.esc_accuracy == 0.5 and s.esc_samples == 3.0 and s.token_share == 60 / 80
    assert s.difference == 0.0 and s.p_value == 1.0 and s.verdict == "not told apart"
    assert s.esc_low > 0 and s.esc_high < 1  # Wilson, never [0, 0] nor [1, 1]
    # averaged over random orders of the stored samples, ESC at N = 1 is Pass@1 (p1: 2 of 4, p2: 3 of 4)
    t = early_stopping_table(recs, window=2, budgets=[1, 4], orders=4000, seed=1)
    at1 = t[t.budget == 1].set_index("problem_id")
    assert at1.loc["p1", "correct"] == pytest.approx(0.5, abs=0.03) and at1.loc["p2", "correct"] == pytest.approx(0.75, abs=0.03)
    assert (at1.correct == at1.bon_correct).all()
    at4 = t[t.budget == 4].set_index("problem_id")
    # p1 at N = 4: the first window agrees (stop at 2) iff its two samples match: P = 2 * (2/4 * 1/3) = 1/3
    assert at4.loc["p1", "samples"] == pytest.approx(2 * (1 / 3) + 4 * (2 / 3), abs=0.05)


@pytest.mark.skipif(not (STUDY_RUN / "records.jsonl").exists(), reason="the shipped study run is not in this checkout")
def test_early_stopping_on_the_shipped_run_matches_its_stored_best_of_n_majority():
    from ttslab.analysis.early_stopping import early_stopping_table

    recs = [json.loads(line) for line in (STUDY_RUN / "records.jsonl").open()]
    t = early_stopping_table(recs, window=4)
    stored = {(r["problem_id"], r["budget"]): r["selections"]["majority"]["correct"] for r in recs
              if r["method"] == "best_of_n"}
    assert len(t) == 40 * 5
    assert all(stored[(p, b)] == c for p, b, c in zip(t.problem_id, t.budget, t.bon_correct))
    assert (t.samples <= t.budget).all() and ((t.samples == t.budget) | (t.samples % 4 == 0)).all()


# ------------------------------------------------------------------------------------- DeepConf
def test_group_confidence_is_the_lowest_sliding_window_mean():
    assert np.allclose(A.group_confidences([1, 2, 3, 4], 2), [1.5, 2.5, 3.5])
    assert np.allclose(A.group_confidences([1, 2, 3], 5), [2.0])  # shorter than the window: one group
    assert A.lowest_group_confidence([5, 1, 1, 5, 5], 2) == 1.0
    assert math.isnan(A.lowest_group_confidence([], 4))


def test_deepconf_offline_keeps_the_top_eta_percent_then_votes_by_confidence():
    keys, conf = ["a", "b", "a", "c"], [0.9, 0.1, 0.8, 0.7]
    kept, pick = A.deepconf_offline(keys, conf, eta=50)  # 50th percentile of the four: 0.75
    assert kept == [0, 2] and pick == 0
    kept, pick = A.deepconf_offline(["x", "y", "y"], [0.9, 0.4, 0.4], eta=100)
    assert kept == [0, 1, 2] and pick == 0  # weights 0.9 vs 0.8: the confident single trace wins
    assert A.weighted_majority([None, "y"], [5.0, 0.1]) == 1


def test_token_confidence_measures():
    c = Completion("ab", "eos", TokenUsage(0, 0, 2), [1, 2], [math.log(0.5), math.log(0.25)])
    assert np.allclose(A.token_confidences(c, "sampled_token", 20), [0.5, 0.25])

    class WithTopK(Completion):  # what an engine that returned per-position top-k log-probabilities would give
        top_logprobs = ((-0.1, -2.0, -3.0), (-1.0, -1.0, -4.0))

    assert np.allclose(A.token_confidences(WithTopK("ab", "eos", TokenUsage(), [1, 2]), "top_k", 2), [1.05, 1.0])
    with pytest.raises(RunFailed, match="needs Completion.token_logprobs"):
        A.token_confidences(Completion("ab", "eos", TokenUsage(0, 0, 2), [1, 2]), "sampled_token", 20)
    with pytest.raises(RunFailed, match="top-k log-probabilities of every generated position"):
        A.token_confidences(c, "top_k", 20)


class ConfidenceEngine(FakeEngine):
    """Each trace's tokens have one probability, chosen when its first step is written: `first[i]` for the
    i-th first step requested; later steps repeat the p= written in the path's first step."""

    def __init__(self, first: list[float], tokens: int = 10):
        super().__init__()
        self.first, self.started, self.tokens = list(first), 0, tokens

    def generate(self, requests):
        self.calls.append(list(requests))
        out = []
        for r in requests:
            depth = r.prompt.count("STEP")
            if depth == 0:
                p = self.first[self.started]
                self.started += 1
            else:
                p = float(re.search(r"p=([0-9.]+)", r.prompt).group(1))
            text = f"STEP {depth} p={p} seed={r.params.seed}\n\n"
            out.append(Completion(text, "step", TokenUsage(len(r.prompt), 0, self.tokens), list(range(self.tokens)),
                                  [math.log(p)] * self.tokens))
        return out


def deepconf(budget, **options):
    return spec("deepconf", budget, {"confidence": "sampled_token", "window": 5, **options})


def test_deepconf_offline_generates_every_trace_and_keeps_the_confident_ones():
    engine = ConfidenceEngine([0.9, 0.8, 0.7, 0.6])
    task, _ = run(deepconf(4, mode="offline", eta=50), engine, prm=None)
    assert [len(c) for c in engine.calls] == [4, 4, 4]  # no early stop offline
    kept = sorted(round(n.score, 6) for n in task.finished)
    assert kept == [0.8, 0.9]  # above the 50th percentile 0.75; node.score = the path's lowest group confidence
    assert all(n.finish == "max_steps" for n in task.finished)


def test_deepconf_online_warms_up_then_stops_traces_below_the_threshold():
    # warm-up 0.9, 0.8, 0.7, 0.6 -> threshold 0.75 (eta 50); then 0.85 (kept), 0.5 (stopped), 0.95, 0.4
    engine = ConfidenceEngine([0.9, 0.8, 0.7, 0.6, 0.85, 0.5, 0.95, 0.4])
    task, _ = run(deepconf(8, mode="online", eta=50, warmup=4), engine, prm=None)
    strategy = task.strategy
    assert strategy.threshold == pytest.approx(0.75)
    assert [len(c) for c in engine.calls] == [4, 4, 4, 4, 2, 2]  # warm-up to the end, then 4, two stopped
    stopped = [n for n in task.tree.nodes if n.finish == "low_confidence"]
    assert sorted(round(n.score, 6) for n in stopped) == [0.4, 0.5] and all(n.depth == 1 for n in stopped)
    assert not any(n.selected for n in stopped)
    assert sorted(round(n.score, 6) for n in task.finished) == [0.8, 0.85, 0.9, 0.95]  # warm-up ones filtered too
    assert sum(n.usage.completion_tokens for n in task.tree.nodes) == (4 * 3 + 2 * 3 + 2 * 1) * 10  # tokens saved


def test_deepconf_online_never_stops_a_trace_before_its_first_full_window():
    engine = ConfidenceEngine([0.9, 0.9, 0.1], tokens=3)  # window 5 > one step of 3 tokens
    task, _ = run(deepconf(3, mode="online", eta=50, warmup=2), engine, prm=None)
    low = [n for n in task.tree.nodes if "p=0.1" in n.text]
    assert [n.finish for n in low] == ["step", "low_confidence"]  # judged once 6 >= 5 tokens were written


def test_deepconf_vote_reads_the_record():
    rec = {"candidates": [{"key": "a", "answer": "1", "correct": False, "step_scores": [0.9, 0.3]},
                          {"key": "b", "answer": "2", "correct": True, "step_scores": [0.2, 0.2]},
                          {"key": "b", "answer": "2", "correct": True, "step_scores": [0.2, 0.2]}]}
    assert A.deepconf_vote(rec) == {"answer": "2", "correct": True}  # 0.4 vs 0.3


# ------------------------------------------------------------------------------------- the embedded model
MODEL_OVERRIDES = ["dataset.limit=1", "method.budget=2", "method.max_tokens=96", "method.max_step_tokens=48",
                   "method.max_steps=2", "progress=false"]


@pytest.mark.model
@pytest.mark.parametrize("method, extra", [
    ("particle_filter", []),  # the CPU default PRM (cpu_confidence)
    ("rebase", []),
    ("early_stopping", ["prm=none", "method.options.window=1"]),
    ("deepconf", ["prm=none", "method.options.confidence=sampled_token", "method.options.window=16",
                  "method.options.warmup=1", "method.options.eta=50"]),
])
def test_each_method_runs_on_the_embedded_model(method, extra, tmp_path):
    from ttslab.runner import run_experiment

    pytest.importorskip("llama_cpp", reason="the cpu extra (llama-cpp-python) is not installed")
    run_dir = run_experiment([f"method={method}", *MODEL_OVERRIDES, *extra, f"run_dir={tmp_path / method}"])
    recs = [json.loads(line) for line in (Path(run_dir) / "records.jsonl").open()]
    assert [(r["method"], r["budget"]) for r in recs] == [(method, 2)]
    r = recs[0]
    assert r["settings"]["options"] and r["usage"]["policy"]["completion_tokens"] > 0
    assert "majority" in r["selections"]
    if STRATEGIES[method].stepwise:
        assert r["tree"] and r["tree"][0]["parent"] is None
        assert all(c["step_scores"] is not None for c in r["candidates"])
    if method == "early_stopping":
        assert len(r["candidates"]) == 1  # a window of one agrees with itself
    if method == "deepconf":
        assert all(0 < c["step_scores"][-1] <= 1 for c in r["candidates"])


# ------------------------------------------------------------------------------------- records and summary
def test_records_of_the_four_methods_go_through_summary_and_report_rules_without_naming_them():
    from ttslab.analysis.rules import report_rule
    from ttslab.grading import Grader
    from ttslab.records import build_record
    from ttslab.summary import summary_table

    answered = lambda depth, seed, k: (f"STEP {depth} seed={seed} s=0.5 \\boxed{{{2 if seed % 3 else 3}}}\n\n",
                                       "step", 10) if depth == 1 else random_steps(depth, seed, k)
    runs = [
        ("particle_filter", spec("particle_filter", 4), FakeEngine(answered), FakePRM(), True),
        ("rebase", spec("rebase", 4), FakeEngine(answered), FakePRM(), True),
        ("early_stopping", spec("early_stopping", 4, {"window": 2}), FakeEngine(whole(lambda s, k: k)), None, False),
        ("deepconf", deepconf(4, mode="offline", eta=50), ConfidenceEngine([0.9, 0.8, 0.7, 0.6]), None, False),
    ]
    records = []
    with Grader() as grader:
        for name, s, engine, prm, has_prm in runs:
            cfg = compose([f"method={name}"] + ([] if has_prm else ["prm=none"]))
            task, _ = run(s, engine, prm)
            for b in ([1, 2, 4] if STRATEGIES[name].nested_budgets else [4]):
                rec = build_record(task, grader, cfg, b, 0.1, has_prm)
                rec = json.loads(json.dumps(rec))  # as stored
                assert rec["settings"]["options"] == dict(s.options) and rec["method"] == name
                records.append(rec)
    table = summary_table(records, n_boot=50)
    assert list(dict.fromkeys(table["method"])) == ["particle_filter", "rebase", "early_stopping", "deepconf"]
    assert list(table[table.method == "early_stopping"]["N"]) == [1, 2, 4]  # nested: one generation, three records
    assert table["tokens/problem"].gt(0).all()
    esc = [r for r in records if r["method"] == "early_stopping"]
    assert [len(r["candidates"]) for r in esc] == [1, 2, 4]  # answers 0, 1 in every window: none agrees
    assert [report_rule(n) for n, *_ in runs] == ["prm_last_max", "prm_last_vote", "majority", "majority"]
    for r in records:
        assert report_rule(r["method"]) in r["selections"]
