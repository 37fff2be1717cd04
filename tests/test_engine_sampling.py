"""The CPU engine's numpy sampler against exact distributions (no model: synthetic logits rows)."""

import numpy as np
import pytest

from ttslab.engines.base import SamplingParams
from ttslab.engines.sampling import RowSampler, TokenSampler

V = 151_936  # the Qwen2.5 vocabulary: not a multiple of the sampler's block size


def logits_row(seed=0, peak=(7, 151_935)):
    x = np.random.default_rng(seed).normal(0.0, 2.0, V).astype(np.float32)
    x[list(peak)] += np.float32(9.0)  # two likely tokens, one of them in the padded last block
    return x


def exact(x, temperature=1.0):
    z = x.astype(np.float64) / temperature
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


@pytest.mark.parametrize("threads", [1, 2])
def test_logprob_is_the_temperature_one_log_softmax_of_the_sampled_token(threads):
    rows = [logits_row(s) for s in range(6)]
    samplers = [TokenSampler(SamplingParams(temperature=0.7, seed=s)) for s in range(6)]
    toks, lps = RowSampler(V, threads).sample(rows, samplers)
    for x, t, lp in zip(rows, toks, lps):
        assert lp == pytest.approx(np.log(exact(x)[t]), abs=2e-4)


def test_samples_follow_the_tempered_softmax():
    x = logits_row(1)
    p = exact(x, 0.7)
    sampler, s = RowSampler(V), TokenSampler(SamplingParams(temperature=0.7, seed=3))
    n = 800
    counts: dict[int, int] = {}
    for _ in range(n):
        t = sampler.sample([x], [s])[0][0]
        counts[t] = counts.get(t, 0) + 1
    for t in (7, 151_935):  # the two peaked tokens, within 5 standard errors
        assert abs(counts.get(t, 0) / n - p[t]) < 5 * np.sqrt(p[t] * (1 - p[t]) / n)
    tail = n - counts.get(7, 0) - counts.get(151_935, 0)  # the rest of the vocabulary is sampled too
    assert abs(tail / n - (1 - p[7] - p[151_935])) < 5 * np.sqrt(0.25 / n)


def test_greedy_takes_the_first_maximum():
    x = logits_row(2)
    x[11] = x[40] = x.max() + 1
    t, _ = RowSampler(V).sample([x], [TokenSampler(SamplingParams(temperature=0.0))])
    assert t == [11]


def test_a_seed_reproduces_its_sample_whatever_shares_the_batch():
    rows = [logits_row(s) for s in range(5)]
    alone = [RowSampler(V).sample([rows[i]], [TokenSampler(SamplingParams(temperature=1.0, seed=i))])[0][0]
             for i in range(5)]
    batch = RowSampler(V, 2).sample(rows, [TokenSampler(SamplingParams(temperature=1.0, seed=i)) for i in range(5)])[0]
    assert batch == alone


def test_top_k_and_top_p_keep_only_the_head():
    x = logits_row(4)
    x[np.argsort(-x)[:40]] += np.float32(8.0)  # a peaked head, as language models have: the nucleus is small
    order = np.argsort(-x)
    sampler = RowSampler(V)
    s = TokenSampler(SamplingParams(temperature=1.0, top_k=3, seed=0))
    assert {sampler.sample([x], [s])[0][0] for _ in range(40)} <= set(order[:3].tolist())
    p = exact(x)
    keep = int(np.searchsorted(np.cumsum(p[order]), 0.9)) + 1
    s = TokenSampler(SamplingParams(temperature=1.0, top_p=0.9, seed=0))
    assert {sampler.sample([x], [s])[0][0] for _ in range(40)} <= set(order[:keep].tolist())
