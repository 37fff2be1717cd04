"""Token sampling for the CPU engine: numpy over the logits rows llama.cpp leaves after a decode.

Why not llama.cpp's own sampler chain: `llama_sampler_sample` copies all ~152k logits of a row into a
candidate array and runs a scalar softmax and a scalar cumulative scan over it, 1.5-3 ms per sequence per
token on the 2-core machines, i.e. 15-30% of a 16-sequence decode step, all on one core while the other
idles. Here each row costs a few vectorised passes that stay in the L2 cache (max, exp, block sums), one
uniform draw from the sequence's own seeded generator, and an inverse-CDF search over the block sums and
then inside one block. The same passes give the sampled token's log-probability under the temperature-1
full-vocabulary softmax (`Completion.token_logprobs`), so that costs one extra exp pass per row.

Semantics are llama.cpp's chain top-k -> top-p -> temperature -> dist (top-p on the temperature-1
softmax of the top-k candidates, keeping at least one token); temperature <= 0 is greedy (first maximum,
as llama.cpp's greedy sampler). Each sequence owns a `TokenSampler` whose generator is seeded from its
request's seed, so a seed reproduces its sample whatever else shares the batch. The draws differ from
llama.cpp's mt19937 stream: the same seed gives a different (equally distributed) sample than before.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ttslab.engines.base import SamplingParams

_BLOCK = 256  # inverse-CDF search: first over block sums, then inside one block


class TokenSampler:
    """One sequence's sampling state: its parameters and its own random generator."""

    __slots__ = ("rng", "temperature", "top_k", "top_p")

    def __init__(self, params: SamplingParams):
        self.temperature = float(params.temperature)
        self.top_k = int(params.top_k) if params.top_k and params.top_k > 0 else 0
        self.top_p = float(params.top_p)
        self.rng = np.random.default_rng(params.seed & 0xFFFFFFFF)


class RowSampler:
    """Samples one token per (logits row, sampler) pair; returns tokens and their log-probabilities.

    `threads` > 1 splits the rows over worker threads (numpy releases the GIL in its passes): between two
    decodes llama.cpp's threads are idle, so the second core would otherwise wait.
    """

    def __init__(self, n_vocab: int, threads: int = 1):
        self.n_vocab = n_vocab
        self.width = -(-n_vocab // _BLOCK) * _BLOCK
        self.threads = max(1, threads)
        # per worker: a scratch row (logits - max) and an exp row zero-padded to whole blocks
        self._scratch = [(np.zeros(self.width, np.float32), np.zeros(self.width, np.float32)) for _ in range(self.threads)]
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def sample(self, rows: Sequence[np.ndarray], samplers: Sequence[TokenSampler]) -> tuple[list[int], list[float]]:
        n = len(rows)
        tokens, logprobs = [0] * n, [0.0] * n
        if self._pool is None or n < 4:
            self._run(rows, samplers, range(n), tokens, logprobs, 0)
            return tokens, logprobs
        parts = [range(w, n, self.threads) for w in range(self.threads)]
        futures = [self._pool.submit(self._run, rows, samplers, parts[w], tokens, logprobs, w) for w in range(1, self.threads)]
        self._run(rows, samplers, parts[0], tokens, logprobs, 0)
        for f in futures:
            f.result()
        return tokens, logprobs

    def _run(self, rows, samplers, which, tokens, logprobs, worker: int) -> None:
        a, e = self._scratch[worker]
        for i in which:
            tokens[i], logprobs[i] = self._one(rows[i], samplers[i], a, e)

    def _one(self, logits: np.ndarray, s: TokenSampler, a: np.ndarray, e: np.ndarray) -> tuple[int, float]:
        V = self.n_vocab
        av, ev = a[:V], e[:V]
        m = logits.max()
        np.subtract(logits, m, out=av)
        np.exp(av, out=ev)
        lse = float(np.log(ev.sum(dtype=np.float32)))
        if s.temperature <= 0:
            tok = int(logits.argmax())
        elif s.top_k or s.top_p < 1.0:
            tok = self._truncated(logits, s)
        else:
            if s.temperature != 1.0:
                np.multiply(av, 1.0 / s.temperature, out=ev)
                np.exp(ev, out=ev)
            tok = self._inverse_cdf(e, s.rng.random())
        return tok, float(av[tok]) - lse

    def _inverse_cdf(self, e: np.ndarray, u: float) -> int:
        """The first token whose cumulative weight reaches u x total (e: weights, zero past n_vocab)."""
        blocks = np.cumsum(e.reshape(-1, _BLOCK).sum(axis=1, dtype=np.float32), dtype=np.float64)
        target = u * blocks[-1]
        j = min(int(np.searchsorted(blocks, target, side="left")), len(blocks) - 1)
        inside = np.cumsum(e[j * _BLOCK : (j + 1) * _BLOCK], dtype=np.float64)
        below = blocks[j - 1] if j else 0.0
        # the block's float32 sum and its float64 running sum differ in the last bits: rescale the target
        t = (target - below) / max(blocks[j] - below, 1e-300) * inside[-1]
        k = min(int(np.searchsorted(inside, t, side="left")), _BLOCK - 1)
        while e[j * _BLOCK + k] <= 0.0 and k > 0:  # never land on padding or an underflowed weight
            k -= 1
        tok = j * _BLOCK + k
        return tok if e[tok] > 0.0 else int(e.argmax())

    def _truncated(self, logits: np.ndarray, s: TokenSampler) -> int:
        """top-k, then top-p on the temperature-1 softmax of what is left, then temperature."""
        n = len(logits)
        k = s.top_k if 0 < s.top_k < n else n

        def top(h: int) -> np.ndarray:  # the h largest logits' ids, largest first
            ids = np.argpartition(logits, -h)[-h:] if h < n else np.arange(n)
            return ids[np.argsort(-logits[ids], kind="stable")]

        if s.top_p >= 1.0:
            cand = top(k)
        else:
            topk = logits if k == n else logits[np.argpartition(logits, -k)[-k:]]
            m = float(topk.max())
            log_z = m + float(np.log(np.exp(topk.astype(np.float64) - m).sum()))
            cand = top(min(k, 1024))  # the nucleus nearly always lies in the top 1024; else sort all top-k
            c = np.cumsum(np.exp(logits[cand].astype(np.float64) - log_z))
            if c[-1] < s.top_p and len(cand) < k:
                cand = top(k)
                c = np.cumsum(np.exp(logits[cand].astype(np.float64) - log_z))
            cand = cand[: min(int(np.searchsorted(c, s.top_p, side="left")) + 1, len(cand))]
        x = logits[cand].astype(np.float64)
        w = np.cumsum(np.exp((x - x[0]) / s.temperature))
        j = min(int(np.searchsorted(w, s.rng.random() * w[-1], side="left")), len(cand) - 1)
        return int(cand[j])
