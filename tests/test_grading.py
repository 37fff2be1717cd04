"""Answer extraction and Math-Verify equivalence, on real MATH-500 gold answers."""

import json
import time

import pytest

from ttslab.grading import Grader, extract_answer, last_boxed, normalize


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


def test_voting_keys_merge_equivalent_answers():
    with Grader() as g:
        keys, correct = g.grade(r"\frac{1}{2}", ["0.5", r"\frac12", r"\dfrac{1}{2}", "3", "3.0", None])
    assert correct == [True, True, True, False, False, False]
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] == keys[4] != keys[0]
    assert keys[5] is None


def test_real_math500_gold_answers_verify(shared_data):
    rows = [json.loads(line) for line in (shared_data / "math500.jsonl").open()][:120]
    with Grader() as g:
        same = g.equivalent_many([(r["answer"], r["answer"]) for r in rows])
        # a wrong answer: the gold of another problem with a different value
        wrong = g.equivalent_many([(rows[i]["answer"], "123456789") for i in range(len(rows))])
    assert sum(same) >= 118, [r["answer"] for r, ok in zip(rows, same) if not ok]
    assert not any(wrong)


def test_a_hanging_check_times_out_and_counts_as_wrong():
    from helpers_grading import never_returns

    g = Grader(timeout=2.0, check=never_returns)
    try:
        start = time.perf_counter()
        assert g.equivalent_many([("1", "1"), ("2", "2")]) == [False, False]
        assert time.perf_counter() - start < 15
        assert g.timeouts >= 1
    finally:
        g.close()
