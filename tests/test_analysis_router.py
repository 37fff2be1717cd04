"""The router (compute-optimal TTS without gold answers) on synthetic records with a known best policy."""

import copy

import numpy as np
import pytest
from analysis_fixtures import make_record

from ttslab.analysis import router

GOLD = "42"


def _cand(key, subtree, completion=200, score=0.6):
    return {"text": f"... \\boxed{{{key}}}", "steps": [f"... \\boxed{{{key}}}"], "step_scores": [score],
            "answer": f"\\boxed{{{key}}}", "key": key, "correct": key == GOLD, "finish": "eos",
            "subtree": subtree,
            "usage": {"prompt_tokens": 60, "cached_tokens": 40, "completion_tokens": completion}}


def _with_cost(rec, completion):
    rec["usage"]["policy"]["completion_tokens"] = completion
    return rec


def known_policy_records(n_problems=16):
    """Even problems are easy: every sample agrees on the gold answer. Odd problems are hard: 16 samples,
    16 different wrong answers; only (expensive) beam search solves them. Best policy: probe 4 samples;
    if they agree, answer with them (Best-of-N@4); else run beam search."""
    recs = []
    for i in range(n_problems):
        pid, easy = f"p{i:02d}", i % 2 == 0
        keys = [GOLD] * 16 if easy else [str(100 + j) for j in range(16)]
        bon = [_cand(k, j) for j, k in enumerate(keys)]
        recs.append(make_record(pid, "cot", 1, [_cand(keys[0], 0)], gold=GOLD, prm=None, prm_params=None))
        for n in (1, 2, 4, 8, 16):
            recs.append(make_record(pid, "best_of_n", n, copy.deepcopy(bon[:n]), gold=GOLD))
        beam = make_record(pid, "beam_search", 4, [_cand(GOLD, None)], gold=GOLD)
        recs.append(_with_cost(beam, 20_000))  # right, and ~25x the cost of Best-of-N@4
        dvts = make_record(pid, "dvts", 4, [_cand("7", 0)], gold=GOLD)
        recs.append(_with_cost(dvts, 3_000))  # wrong
    return recs


def test_router_finds_the_known_best_policy():
    recs = known_policy_records()
    table, routed = router.policy_table(recs, probe=4, lambdas=(0.02,), orders=16, n_boot=200)
    r = routed.set_index("problem_id")
    easy = [p for p in r.index if int(p[1:]) % 2 == 0]
    hard = [p for p in r.index if int(p[1:]) % 2 == 1]
    assert (r.loc[easy, "action"] == "best_of_n N=4").all() and (r.loc[hard, "action"] == "beam_search N=4").all()
    assert (r["accuracy"] == 1.0).all() and (r["action_share"] == 1.0).all()
    t = table.set_index("policy")
    assert t.loc["router lambda=0.02", "accuracy"] == 100.0
    # as accurate as always running beam search, at about half its compute
    assert t.loc["beam_search N=4", "accuracy"] == 100.0
    assert t.loc["router lambda=0.02", "flops"] < 0.75 * t.loc["beam_search N=4", "flops"]
    for p in ("best_of_n N=16", "best_of_n N=4", "dvts N=4", "cot N=1"):
        assert t.loc[p, "accuracy"] == pytest.approx(50.0 if p != "dvts N=4" else 0.0)
    # the oracle uses gold Pass@1 bins: easy -> an accurate choice, hard -> beam search
    assert t.loc["oracle-bin compute-optimal N=4", "accuracy"] == 100.0


def test_expensive_compute_makes_the_router_stop_at_the_probe():
    table, routed = router.policy_table(known_policy_records(), lambdas=(5.0,), orders=8, n_boot=100)
    assert (routed["action"] == "best_of_n N=4").all()
    assert table.set_index("policy").loc["router lambda=5", "accuracy"] == 50.0


def test_router_signals_use_no_gold_answer():
    recs = known_policy_records(6)
    flipped = copy.deepcopy(recs)
    for r in flipped:
        for c in r["candidates"]:
            c["correct"] = not c["correct"]
    a, b = router.router_data(recs, orders=8), router.router_data(flipped, orders=8)
    np.testing.assert_array_equal(a.features, b.features)
    assert not np.array_equal(a.correct, b.correct)
    i = router.SIGNALS.index("agreement")
    assert (a.features[0::2, :, i] == 1.0).all() and (a.features[1::2, :, i] == 0.25).all()
    assert (a.features[1::2, :, router.SIGNALS.index("distinct")] == 4).all()


def test_router_accuracy_is_averaged_over_sample_orders():
    # one problem, 16 samples: 10 gold, 6 of one wrong answer. Best-of-N@3 majority (no ties possible)
    # over random orders converges to the exact expectation over all 3-subsets (ttslab.analysis.curves).
    # With ties, the two differ by design: curves breaks them by sample order (as selection does),
    # a random order breaks them at random; for iid samples both estimate the same accuracy.
    from ttslab.analysis import curves

    keys = [GOLD] * 10 + ["7"] * 6
    bon = [_cand(k, j) for j, k in enumerate(keys)]
    recs = [make_record("p0", "best_of_n", n, copy.deepcopy(bon[:n]), gold=GOLD) for n in (3, 16)]
    data = router.router_data(recs, probe=3, orders=4000, seed=1)
    a = data.actions.index(("best_of_n", 3, "majority"))
    exact = curves.per_problem_accuracy(recs, budgets=[3])[(recs[0]["policy"], recs[0]["prm"], "best_of_n", "majority", 3)]
    # hypergeometric: P(at least 2 of 3 draws among the 10 gold) = (C(10,2)*6 + C(10,3)) / C(16,3)
    assert float(exact.iloc[0]) == pytest.approx((45 * 6 + 120) / 560)
    assert data.correct[0, :, a].mean() == pytest.approx(float(exact.iloc[0]), abs=0.02)


def test_unusable_says_why_records_cannot_be_routed():
    recs = known_policy_records(4)
    assert router.unusable(recs) == ""
    no_probe = [r for r in recs if not (r["method"] == "best_of_n" and r["budget"] == 4)]
    assert "N = 4" in router.unusable(no_probe)
    uneven = [r for r in recs if not (r["problem_id"] == "p01" and r["method"] == "dvts")]
    assert "same (method, budget)" in router.unusable(uneven)
    with pytest.raises(ValueError, match="probe"):
        router.router_data(no_probe)


def test_the_reported_router_chooses_lambda_inside_the_training_folds_and_is_compared_paired():
    """On the known-best records the stump at lambda = 0.02 is perfect and the one at lambda = 50 always stops at
    the probe (50%): choosing lambda inside each training fold must find the perfect one for every held-out
    problem; the reported router is then compared, paired over problems, with CoT (+50 points, decided: 8 easy
    problems right where CoT is right too, 8 hard ones right where CoT is wrong)."""
    res = router.evaluate(known_policy_records(), probe=4, lambdas=(0.02, 50.0), orders=16, n_boot=200)
    assert set(res.nested["lambda"]) == {0.02} and (res.nested["accuracy"] == 1.0).all()
    assert len(res.nested) == 16  # one row per held-out problem
    reported = res.table[res.table["kind"] == router.REPORTED].iloc[0]
    assert reported["accuracy"] == 100.0
    v = res.verdicts.set_index("against")
    cot = v.loc["the baseline (CoT)"]
    assert cot["A − B"] == pytest.approx(50.0) and cot["differ"] == 8 and cot["verdict"] == "A above B"
    assert cot["p"] == pytest.approx(2 / 2**8)  # exact sign flips of the 8 problems that differ
    # no fixed strategy costs no more than the router and is as accurate: compared with the best of the cheaper ones
    assert v.loc["the most accurate fixed strategy at no more compute", "its flops"] <= reported["flops"] * 1.0001


def test_choose_lambda_prefers_the_larger_lambda_on_a_tie():
    data = router.router_data(known_policy_records(), probe=4, orders=8)
    train = np.ones(len(data.problems), dtype=bool)
    # 0.02 and 0.021 give the same (perfect) router: the tie goes to the larger price of compute
    assert router.choose_lambda(data, train, (0.02, 0.021, 50.0)) == 1
