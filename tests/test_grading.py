"""Answer extraction and Math-Verify equivalence, on real MATH-500 / AIME24 gold answers; bounded grading."""

import json
import random
import re
import time

import pytest

from ttslab.grading import EXTRACT_TAIL_CHARS, MAX_ANSWER_CHARS, Grader, extract_answer, last_boxed, normalize


def test_last_boxed_matches_nested_braces():
    assert last_boxed(r"first \boxed{1} then \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{\sqrt{x^{2}}}") == r"\sqrt{x^{2}}"
    assert last_boxed(r"cut off \boxed{\frac{1}{2") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"So the answer is \boxed{42}.", "42"),
        ("Therefore, the final answer is: $\\frac{3}{4}$. I hope it is correct.", r"\frac{3}{4}"),
        ("Thus the answer is 17 apples.\nDone", "17 apples"),
        ("We get 3, then 5, and finally 1,024 marbles", "1024"),
        ("no numbers here", None),
    ],
)
def test_extract_answer_order(text, expected):
    assert extract_answer(text) == expected


# Outputs that made the old extraction quadratic (46 KB took 0.8 s, 1 MB many minutes): an unclosed
# "final answer is $" sentence repeated, and other runaway shapes a model produces at its token limit.
HUGE = {
    "unclosed final-answer sentences": "The final answer is: $x" * 45_000,
    "closed but no I hope": "final answer is $1$ " * 50_000,
    "open boxes": "\\boxed{" * 150_000,
    "one long answer line": "the answer is " + "7" * 1_000_000,
    "numbers": "1,2.5," * 170_000,
    "I hope without opening": "$. I hope " * 100_000,
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(HUGE))
def test_extraction_of_a_1mb_output_is_fast_and_reads_only_the_tail(name):
    text = HUGE[name]
    assert len(text) >= 1_000_000
    start = time.perf_counter()
    got = extract_answer(text)
    elapsed = time.perf_counter() - start
    # the work done: only the documented tail is read, so the answer is the tail's answer ...
    assert got == extract_answer(text[-EXTRACT_TAIL_CHARS:])
    # ... and the time is bounded (generous: the fix takes milliseconds, the old code minutes)
    assert elapsed < 1.0, f"{name}: {elapsed:.2f} s"


def test_final_answer_sentence_matches_the_study_regex():
    """The linear scan finds exactly what the study's lazy regex found, on random token soups."""
    from ttslab.grading import _final_answer_sentence

    study = re.compile(r"final answer is:?\s*\$(.+?)\$\.? I hope", flags=re.DOTALL)
    tokens = ["final answer is", ":", " ", "$", ".", " I hope", "x", "\n", "I hope"]
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice(tokens) for _ in range(rng.randint(0, 12)))
        m = study.search(text)
        assert _final_answer_sentence(text) == (m.group(1).strip() if m and m.group(1).strip() else None), text


def test_normalize_folds_latex_noise():
    assert normalize(r"\dfrac{1}{2}") == normalize(r"\frac{1}{2}")
    assert normalize(r"90^\circ") == "90"
    assert normalize("1,000") == "1000"
    assert normalize(r"\text{(A)}") == "(A)"


def test_math_verify_equivalences():
    with Grader() as g:
        assert g.equivalent("0.5", r"\frac{1}{2}")
        assert g.equivalent(r"\sqrt{18}", r"3\sqrt{2}")  # bare LaTeX gold is wrapped so it parses
        assert g.equivalent(r"\frac{\pi}{2}", r"\pi/2")
        assert not g.equivalent("43", "44")


def test_escaped_dollar_golds_grade_correct():
    """MATH-500 writes three golds with an escaped dollar sign; they never graded correct before."""
    with Grader() as g:
        for gold, answers in [(r"\$18.90", [r"\$18.90", "18.90", "18.9", r"\$ 18.90"]),
                              (r"\$36", [r"\$36", "36", r"36 \text{ dollars}"]),
                              (r"\$32,\!348", [r"\$32,\!348", "32348", "32,348", r"\$32{,}348"])]:
            assert g.equivalent(gold, gold), gold
            _, correct = g.grade(gold, answers)
            assert all(correct), (gold, answers, correct)
            _, wrong = g.grade(gold, ["19", r"\$37", "32347"])
            assert not any(wrong), gold


def test_voting_keys_merge_equivalent_answers():
    with Grader() as g:
        keys, correct = g.grade(r"\frac{1}{2}", ["0.5", r"\frac12", r"\dfrac{1}{2}", "3", "3.0", None])
    assert correct == [True, True, True, False, False, False]
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] == keys[4] != keys[0]
    assert keys[5] is None


def test_voting_keys_come_from_the_answers_never_from_the_gold():
    """Issue #20: "x=2" and "y=2" are each equivalent to the gold "2" (Math-Verify reads the right-hand side)
    but not to each other. Keys by pairwise equivalence keep them apart, as for two wrong answers; the old
    code put every answer equivalent to the gold under one key, so correct answers pooled their votes and
    majority voting picked the correct answer over the twice-given "3"."""
    from ttslab.search.selection import select

    with Grader() as g:
        keys, correct = g.grade("2", ["x=2", "3", "y=2", "3"])
        assert correct == [True, False, True, False]
        assert keys[0] != keys[2] and keys[1] == keys[3]
        assert select("majority", keys, [None] * 4) == 1  # "3": two votes against one each
        # the same answers under a gold equivalent to none of them get the same keys: the gold plays no part
        assert g.grade("5", ["x=2", "3", "y=2", "3"])[0] == keys
        # answers equivalent to each other still vote together, whatever the gold
        keys, _ = g.grade("7", ["0.5", r"\frac{1}{2}", "3"])
        assert keys[0] == keys[1] != keys[2]


@pytest.mark.model  # slow tier: every MATH-500 and AIME24 gold answer through Math-Verify workers, ~14 s
def test_every_gold_answer_verifies_against_itself_and_its_rewritings(shared_data):
    """Every gold answer of MATH-500 and AIME24 must verify against itself and the common ways a
    correct answer rewrites it (units, \\text{}, thousands separators, \\$, ^\\circ, percent): no miss."""
    from helpers_grading import rewritings

    golds = [json.loads(line)["answer"] for line in (shared_data / "math500.jsonl").open()]
    golds += [str(json.loads(line)["answer"]) for line in (shared_data / "aime24.jsonl").open()]
    assert len(golds) == 530
    pairs = [(gold, r) for gold in golds for r in rewritings(gold)]
    assert len(pairs) > 3 * len(golds)
    with Grader(workers=2, budget=None) as g:  # two workers: this machine's two cores
        ok = g.equivalent_many(pairs)
        misses = [p for p, v in zip(pairs, ok) if not v]
        assert not misses, f"{len(misses)} of {len(pairs)} (gold, rewriting) pairs failed: {misses[:20]}"
        for gold in golds:  # the run's path: keys and correctness of a problem's answers
            answers = rewritings(gold)
            keys, correct = g.grade(gold, answers)
            assert all(correct) and len(set(keys)) == 1, (gold, answers, correct, keys)
        # and a wrong answer stays wrong: another gold with a different value
        wrong = g.equivalent_many([(gold, "123456789") for gold in golds])
    assert not any(wrong)


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_a_hanging_check_times_out_and_counts_as_wrong():
    from helpers_grading import never_returns

    g = Grader(timeout=1.0, check=never_returns)
    try:
        start = time.perf_counter()
        assert g.equivalent_many([("1", "1"), ("2", "2")]) == [False, False]
        assert time.perf_counter() - start < 15
        assert g.timeouts >= 1
        _, correct = g.grade("1", ["2"])
        assert correct == [False]
        assert g.last_report["timed_out"] == 1 and g.last_report["checks"] == 1
    finally:
        g.close()


@pytest.mark.model  # integration tier: slow (see pyproject's markers)
def test_a_problem_grading_budget_bounds_its_checks():
    """Five distinct answers at half a second per check, within a 1.25 s budget: about two checks run,
    the rest count as not equivalent, the report says so, and the next problem is graded normally."""
    from helpers_grading import slow_true

    with Grader(timeout=5.0, budget=1.25, check=slow_true) as g:
        g.equivalent("warm", "up")  # worker start-up is outside any budget
        start = time.perf_counter()
        keys, correct = g.grade("g", ["a", "b", "c", "d", "e"])
        elapsed = time.perf_counter() - start
        rep = g.last_report
        assert rep["budget_exhausted"] is True
        left = 5 - rep["checks"]  # answers not checked against the gold, then every pairwise merge
        # (keys merge pairwise among all five answers, after correctness: all 10 pairs are cut)
        assert 1 <= rep["checks"] <= 3 and rep["unchecked"] == left + 5 * 4 // 2
        assert sum(correct) == rep["checks"]  # slow_true says equivalent to whatever it checks
        assert elapsed < 1.25 + 2.0
        # cut checks are not cached as wrong: the next problem re-checks them
        _, correct = g.grade("g", ["e"])
        assert correct == [True] and g.last_report == {**g.last_report, "checks": 1, "budget_exhausted": False}


def test_overlong_answers_are_truncated_and_counted():
    with Grader() as g:
        long = "5" + " + x" * MAX_ANSWER_CHARS
        keys, correct = g.grade("5", ["5", long, long + "y", None])
        # cut to MAX_ANSWER_CHARS, "5 + x + ... +" would parse as 5: overlong answers are never checked
        assert correct == [True, False, False, False]
        assert keys[1] == keys[2] != keys[0]  # keyed by their first MAX_ANSWER_CHARS characters
        assert g.last_report["truncated_answers"] == 2 and g.last_report["checks"] == 0
        assert g.last_report["budget_exhausted"] is False
