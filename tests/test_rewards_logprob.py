"""LogprobPRM on the real CPU engine and the embedded GGUF model (the CPU judge), plus engine-free checks."""

import math

import pytest

from ttslab.engines.base import TokenScores, TokenUsage
from ttslab.rewards import build_reward_model
from ttslab.rewards.base import ScoreRequest
from ttslab.rewards.logprob import LogprobPRM, renormalised_good_probability

JUDGE_CFG = {
    "name": "cpu-judge", "type": "judge", "format": "judge", "model": "embedded:qwen2.5-coder-0.5b",
    "good_token": "Yes", "bad_token": "No", "step_tag": None,
}
QUESTION = "Tom has 3 boxes with 12 apples each. He eats 5 apples. How many apples are left?"
SOLUTION = (
    "Tom starts with 3 boxes of 12 apples, so he has 3 × 12 = 36 apples.\n\n",
    "He eats 5 of them, which leaves 36 − 5 = 31 apples.\n\n",
    "So the answer is \\boxed{31}.",
)
# Judge quality is measured, not asserted: on 12 hand-made (correct, wrong) step pairs the 0.5B judge is
# at chance (benchmarks/prm_cost.py: paired 6/12, AUC 0.49; the 1.5B: 10/12, AUC 0.57). Its per-pair
# margins (~0.02) are below the ~0.03 that cache reuse in a different decode split can move a score, so
# a "correct > wrong" assertion on the 0.5B would be a coin flip. The tests pin what the score *is*.


# ------------------------------------------------------------------------------ no model needed

class FakeTokenizerEngine:
    """Only `tokenize` is used by the label check; anything else fails loudly."""

    def tokenize(self, text):
        return [ord(c) for c in text]


def test_label_must_be_one_token():
    with pytest.raises(ValueError, match=r"prm.good_token='Yes' must be exactly one token"):
        LogprobPRM(FakeTokenizerEngine(), "judge", "Yes", "N")


def test_same_label_tokens_are_refused():
    with pytest.raises(ValueError, match="are the same token"):
        LogprobPRM(FakeTokenizerEngine(), "judge", "Y", "Y")


def test_unknown_format_option_is_named():
    with pytest.raises(ValueError, match=r"format_options has keys \['step_tag'\]"):
        LogprobPRM(FakeTokenizerEngine(), "judge", "Y", "N", format_options={"step_tag": " ки"})


def test_renormalisation():
    assert renormalised_good_probability(math.log(0.3), math.log(0.1)) == pytest.approx(0.75)
    assert renormalised_good_probability(-1e4, 0.0) == pytest.approx(0.0)
    assert renormalised_good_probability(-math.inf, -math.inf) == 0.5


class RecordingEngine(FakeTokenizerEngine):
    """Speaks the Engine's next_token_logprobs contract; P(good) grows with the prompt length."""

    def __init__(self):
        self.calls = []

    def next_token_logprobs(self, prompts, token_ids, affinity=None):
        self.calls.append((list(prompts), list(affinity or [])))
        good, bad = token_ids
        return [TokenScores({good: -1.0, bad: -1.0 - len(p) / 1000}, TokenUsage(len(p), 0, 0)) for p in prompts]


def test_score_all_sends_every_prefix_in_order_in_one_batch():
    engine = RecordingEngine()
    prm = LogprobPRM(engine, "math_shepherd", "+", "-", format_options={"step_tag": " ки"})
    reqs = [ScoreRequest("Q", ("a\n\n", "b\n\n", "c"), affinity="p1"), ScoreRequest("R", ("x",), affinity="p2")]
    out = prm.score_all(reqs)
    assert len(engine.calls) == 1
    prompts, affinity = engine.calls[0]
    assert prompts == ["Q a ки", "Q a ки\nb ки", "Q a ки\nb ки\nc ки", "R x ки"]
    assert affinity == ["p1", "p1", "p1", "p2"]
    assert [len(r.scores) for r in out] == [3, 1]
    assert out[0].usage.prompt_tokens == sum(len(p) for p in prompts[:3])
    last = prm.score_last(reqs)
    assert engine.calls[-1][0] == ["Q a ки\nb ки\nc ки", "R x ки"]
    assert [r.scores for r in last] == [out[0].scores[-1:], out[1].scores]


# ------------------------------------------------------------------------- real engine + model

@pytest.fixture(scope="module")
def judge():
    pytest.importorskip("llama_cpp", reason="the CPU judge needs llama-cpp-python (extra `cpu`)")
    from ttslab.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(JUDGE_CFG["model"], n_threads=2, max_sequences=4, n_ctx_per_sequence=2048)
    prm = build_reward_model(JUDGE_CFG, lambda spec: engine)
    yield prm
    engine.close()


@pytest.mark.model
def test_label_tokens_resolve_to_single_qwen_tokens(judge):
    assert (judge.good_id, judge.bad_id) == (9454, 2753)  # "Yes", "No" in the Qwen2.5 vocabulary


@pytest.mark.model
def test_incremental_score_last_equals_score_all(judge):
    incremental = []
    for k in range(1, len(SOLUTION) + 1):
        result = judge.score_last([ScoreRequest(QUESTION, SOLUTION[:k])])[0]
        assert len(result.scores) == 1
        incremental.append(result.scores[0])
    full = judge.score_all([ScoreRequest(QUESTION, SOLUTION)])[0]
    assert len(full.scores) == len(SOLUTION)
    assert all(0.0 <= p <= 1.0 for p in full.scores + incremental)
    # Same prompts and labels, but the cached KV of a prefix was computed in a different decode split
    # (one 100-token chunk vs one step at a time). llama.cpp's quantized (Q4_K x Q8) matmuls take
    # batch-size-dependent paths, so the probabilities differ slightly: measured max 0.0063 here, and
    # up to 0.03 for another prompt pair whose prefix came from a different call, hence 0.04.
    assert incremental == pytest.approx(full.scores, abs=0.04)


@pytest.mark.model
def test_incremental_cost_is_the_new_step_plus_the_template(judge):
    engine = judge.engine
    prompts = [judge.prompt(QUESTION, SOLUTION[:k]) for k in range(1, len(SOLUTION) + 1)]
    judge.score_last([ScoreRequest("An unrelated question to evict the cache?", ("x",))])
    judge.score_last([ScoreRequest(QUESTION, SOLUTION[:1])])
    for k in range(2, len(SOLUTION) + 1):
        usage = judge.score_last([ScoreRequest(QUESTION, SOLUTION[:k])])[0].usage
        new_prompt_tokens = len(engine.tokenize(prompts[k - 1])) - len(engine.tokenize(prompts[k - 2]))
        step_tokens = len(engine.tokenize(SOLUTION[k - 1].strip()))
        template = new_prompt_tokens - step_tokens
        assert usage.prompt_tokens == len(engine.tokenize(prompts[k - 1]))
        # Only the appended turn (+ the re-decoded last token of the cached prefix) is evaluated.
        assert usage.evaluated_tokens <= new_prompt_tokens + 1
        assert usage.evaluated_tokens <= 1.5 * step_tokens + template
        assert usage.cached_tokens >= len(engine.tokenize(prompts[k - 2])) - 1


@pytest.mark.model
def test_score_is_p_yes_renormalised_over_yes_and_no(judge):
    request = ScoreRequest(QUESTION, SOLUTION[:2])
    score = judge.score_last([request])[0].scores[0]
    raw = judge.engine.next_token_logprobs([judge.prompt(QUESTION, SOLUTION[:2])], [judge.good_id, judge.bad_id])[0]
    p_yes, p_no = math.exp(raw.logprobs[judge.good_id]), math.exp(raw.logprobs[judge.bad_id])
    assert score == pytest.approx(p_yes / (p_yes + p_no), abs=1e-9)  # same cached prompt: same logits
    assert p_yes + p_no > 0.5  # the judge prompt makes Yes/No the likely next tokens
