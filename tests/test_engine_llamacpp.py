"""The CPU engine on the real embedded model: batching, prefix reuse, finish reasons, seeds, logprobs."""

import numpy as np
import pytest

from ttslab.engines.base import GenerationRequest, SamplingParams
from ttslab.prompts import build_prompt

pytestmark = pytest.mark.model

QUESTION = "A farm has 12 cows and 9 chickens. How many legs do the animals have in total?"


def prompt(steps=()):
    return build_prompt("qwen2.5", QUESTION, list(steps))


def test_finish_reasons_and_stop_string_kept(engine):
    step, eos, cut = engine.generate([
        GenerationRequest(prompt(), SamplingParams(temperature=0.0, max_tokens=300, stop=("\n\n",))),
        GenerationRequest(prompt(), SamplingParams(temperature=0.0, max_tokens=400)),
        GenerationRequest(prompt(), SamplingParams(temperature=0.0, max_tokens=5)),
    ])
    assert step.finish == "step" and step.text.endswith("\n\n") and step.text.count("\n\n") == 1
    assert eos.finish == "eos" and "\\boxed" in eos.text
    assert cut.finish == "length" and cut.usage.completion_tokens == 5
    # greedy: the first step is the prefix of the whole solution, also inside one mixed batch
    assert eos.text.startswith(step.text)


def test_shared_prompt_is_evaluated_once_and_reused(engine):
    reqs = [GenerationRequest(prompt(), SamplingParams(temperature=0.7, max_tokens=24, seed=s)) for s in range(6)]
    outs = engine.generate(reqs)
    n = outs[0].usage.prompt_tokens
    assert all(o.usage.prompt_tokens == n for o in outs)
    # the first child pays at most the whole prompt; its siblings reuse all of it
    assert all(o.usage.cached_tokens == n for o in outs[1:])
    assert len({o.text for o in outs}) > 1  # distinct seeds give distinct samples


def test_next_step_reuses_the_previous_steps_kv(engine):
    first = engine.generate([GenerationRequest(prompt(), SamplingParams(temperature=0.0, max_tokens=200, stop=("\n\n",)))])[0]
    second = engine.generate([GenerationRequest(prompt([first.text]), SamplingParams(temperature=0.0, max_tokens=200, stop=("\n\n",)))])[0]
    u = second.usage
    assert u.prompt_tokens - u.cached_tokens <= 3  # only the boundary token(s) are recomputed


def test_same_seed_same_sample(engine):
    reqs = [GenerationRequest(prompt(), SamplingParams(temperature=0.7, max_tokens=40, seed=s)) for s in (11, 12, 13)]
    a = [c.text for c in engine.generate(reqs)]
    b = [c.text for c in engine.generate(reqs)]
    assert a == b


def test_batched_greedy_equals_single_stream(engine):
    single = engine.generate([GenerationRequest(prompt(), SamplingParams(temperature=0.0, max_tokens=48))])[0].text
    batch = engine.generate([GenerationRequest(prompt(), SamplingParams(temperature=0.0, max_tokens=48, seed=s)) for s in range(4)])
    assert all(c.text == single for c in batch)


def test_next_token_logprobs_match_a_cold_evaluation(engine):
    # raw completion, as measured in reference/cpu-engine.md §3(d): " Yes" -0.37, " No" -1.22 for the 0.5B
    yes, no = engine.tokenize(" Yes")[0], engine.tokenize(" No")[0]
    base = "Is 7 a prime number? Answer Yes or No.\nAnswer:"
    warm = engine.next_token_logprobs([base, base + " Yes", base], [yes, no])
    assert warm[0].logprobs == warm[2].logprobs
    assert warm[2].usage.cached_tokens == warm[2].usage.prompt_tokens
    engine.generate([GenerationRequest(build_prompt("qwen2.5", "unrelated"), SamplingParams(max_tokens=2))])
    cold = engine.next_token_logprobs([base], [yes, no])[0]
    # KV computed in a different batch shape takes other quantised-matmul paths in llama.cpp: the values
    # agree to a few hundredths in log-probability (measured up to 0.06), not bit for bit
    for t in (yes, no):
        assert abs(cold.logprobs[t] - warm[0].logprobs[t]) < 0.15
    assert -0.8 < cold.logprobs[yes] < 0 and cold.logprobs[no] < cold.logprobs[yes]


def test_bad_token_ids_are_refused(engine):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        engine.next_token_logprobs(["x"], [10**9])


def test_token_logprobs_are_the_temperature_one_log_softmax(engine):
    """Completion.token_logprobs[i] = log p(token_ids[i] | prompt + token_ids[:i]) under the raw logits,
    whatever temperature sampled it: checked against next_token_logprobs on the same prefix, which
    reads the same distribution through a different code path."""
    p = prompt()
    (out,) = engine.generate([GenerationRequest(p, SamplingParams(temperature=0.7, max_tokens=24, seed=5))])
    assert len(out.token_logprobs) == len(out.token_ids) == 24
    assert all(lp <= 0.0 for lp in out.token_logprobs)
    base, checked = engine.tokenize(p), 0
    for k in (0, 4, 8, 16):
        text = p + b"".join(engine._piece(t) for t in out.token_ids[:k]).decode("utf-8", errors="strict")
        if engine.tokenize(text) != base + out.token_ids[:k]:
            continue  # the prefix would re-tokenize differently: not the same condition
        ref = engine.next_token_logprobs([text], [out.token_ids[k]])[0].logprobs[out.token_ids[k]]
        # different batch shapes take different quantised-matmul paths: equal to a few hundredths
        assert abs(ref - out.token_logprobs[k]) < 0.15, (k, ref, out.token_logprobs[k])
        checked += 1
    assert checked >= 2


def test_ignore_eos_runs_to_max_tokens(engine):
    short = build_prompt("qwen2.5", "Reply with the single word: yes.")
    done, forced = engine.generate([
        GenerationRequest(short, SamplingParams(temperature=0.0, max_tokens=40)),
        GenerationRequest(short, SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)),
    ])
    assert done.finish == "eos" and done.usage.completion_tokens < 40
    assert forced.finish == "length" and forced.usage.completion_tokens == 40
    # the end-of-generation token was sampled and generation went on past it
    assert forced.token_ids[: len(done.token_ids)] == done.token_ids


def test_every_request_of_a_group_gets_its_own_result_when_done_at_the_first_token(engine):
    """A group of equal prompts finishing at their first token (max_tokens 1) once left all but one empty."""
    reqs = [GenerationRequest(prompt(["Step 1."]), SamplingParams(temperature=0.7, max_tokens=1, seed=s))
            for s in range(4)] + [GenerationRequest(prompt(), SamplingParams(temperature=0.7, max_tokens=3, seed=9))]
    out = engine.generate(reqs)
    assert all(c is not None for c in out)
    assert [c.finish for c in out] == ["length"] * 5
    assert [c.usage.completion_tokens for c in out] == [1, 1, 1, 1, 3]


def test_per_sequence_kv_streams_give_the_results_of_the_shared_pool(engine):
    # kv_unified=False (one KV stream per sequence: a fork copies the stream, attention spans only the
    # sequence's own cells) changes speed and float rounding, not results: the same greedy texts for forks of
    # one prompt (each fork copies the stream) and for continuations that reuse a slot's prefix;
    # log-probabilities equal up to rounding (measured: at most 0.064 apart over 32 tokens)
    from ttslab.engines.llamacpp import LlamaCppEngine

    split = LlamaCppEngine("embedded:qwen2.5-coder-0.5b", max_sequences=4, n_ctx_per_sequence=1024, kv_unified=False)
    try:
        reqs = [GenerationRequest(prompt(), SamplingParams(0.0, max_tokens=n, stop=("\n\n",))) for n in (16, 24, 32)]
        a, b = engine.generate(reqs), split.generate(reqs)
        assert [c.text for c in a] == [c.text for c in b]
        assert b[1].usage.cached_tokens == b[1].usage.prompt_tokens  # the fork reused the whole prompt
        np.testing.assert_allclose(a[2].token_logprobs, b[2].token_logprobs, atol=0.15)
        nxt = [GenerationRequest(prompt([c.text]), SamplingParams(0.0, max_tokens=24)) for c in a[1:]]
        a2, b2 = engine.generate(nxt), split.generate(nxt)
        assert [c.text for c in a2] == [c.text for c in b2]
        # the same prefix reuse as the shared pool (texts cut mid-sentence re-tokenize a few tokens differently)
        assert [c.usage.cached_tokens for c in b2] == [c.usage.cached_tokens for c in a2] and b2[0].usage.cached_tokens > 50
    finally:
        split.close()
