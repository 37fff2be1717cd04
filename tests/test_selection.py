"""Every scoring x voting rule on hand-built candidate sets with known answers."""

import pytest

from ttslab.search.selection import RULES, aggregate, select, select_all

KEYS = ["7", "7", "9", "9", "9", None]
CORRECT = [True, True, False, False, False, False]
SCORES = [
    [0.9, 0.8],        # min .8 last .8 avg .85 prod .72
    [0.3, 0.95],       # min .3 last .95 avg .625 prod .285
    [0.6, 0.6, 0.6],   # min .6 last .6 avg .6 prod .216
    [0.7, 0.1],        # min .1 last .1 avg .4 prod .07
    [0.5, 0.5],        # min .5 last .5 avg .5 prod .25
    [1.0],             # no answer: never selected
]


def test_aggregations():
    assert aggregate([0.9, 0.8], "prm_min") == 0.8
    assert aggregate([0.9, 0.8], "prm_last") == 0.8
    assert aggregate([0.9, 0.8], "prm_avg") == pytest.approx(0.85)
    assert aggregate([0.9, 0.8], "prm_prod") == pytest.approx(0.72)
    assert aggregate([], "prm_min") == -1.0 and aggregate(None, "prm_last") == -1.0


@pytest.mark.parametrize(
    "rule, expected_index",
    [
        ("majority", 2),         # 9 appears three times
        ("prm_min_max", 0),      # .8 is the best minimum
        ("prm_min_vote", 2),     # 7: 1.1 vs 9: 1.2
        ("prm_last_max", 1),     # .95
        ("prm_last_vote", 0),    # 7: 1.75 vs 9: 1.2
        ("prm_avg_max", 0),      # .85
        ("prm_avg_vote", 0),     # 7: 1.475 vs 9: 1.5 -> 9?  (checked below)
        ("prm_prod_max", 0),     # .72
        ("prm_prod_vote", 0),    # 7: 1.005 vs 9: .536
    ],
)
def test_each_rule_on_a_known_set(rule, expected_index):
    got = select(rule, KEYS, SCORES)
    if rule == "prm_avg_vote":
        assert KEYS[got] == "9"  # 0.6 + 0.4 + 0.5 = 1.5 > 0.85 + 0.625 = 1.475
    else:
        assert got == expected_index


def test_ties_go_to_the_first_seen_answer():
    assert select("majority", ["a", "b", "b", "a"], [None] * 4) == 0
    assert select("prm_last_max", ["a", "b"], [[0.5], [0.5]]) == 0


def test_select_all_reports_every_rule_and_the_oracle():
    out = select_all(KEYS, CORRECT, KEYS, SCORES)
    assert set(out) == set(RULES) | {"oracle"}
    assert out["majority"]["correct"] is False and out["prm_last_max"]["correct"] is True
    assert out["oracle"]["correct"] is True
    # without a PRM only majority and the oracle exist; with one, unscored candidates score -1
    assert set(select_all(KEYS, CORRECT, KEYS, [None] * 6, with_prm=False)) == {"majority", "oracle"}
    assert select_all(["1", "2"], [False, True], ["1", "2"], [None, [0.1]])["prm_last_max"]["correct"] is True


def test_no_answers_selects_nothing():
    out = select_all([None, None], [False, False], [None, None], [[0.9], [0.1]])
    assert all(not v["correct"] for v in out.values())
    with pytest.raises(ValueError, match="unknown selection rule"):
        select("prm_median_max", KEYS, SCORES)
