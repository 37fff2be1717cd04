"""The embedded CPU engine: llama.cpp in-process, many sequences per `llama_decode`, prefixes shared.

One llama context holds `max_sequences` KV sequences ("slots"). For a batch of requests:
  1. each distinct prompt is prefilled once, starting from the longest token prefix already held by any
     slot (`llama_memory_seq_cp` of that prefix into a free slot, or truncation in place), so a beam's
     next step pays only for its newest step;
  2. requests with the same prompt fork the prefilled slot (`seq_cp`) and sample their first token from
     the same logits row;
  3. all live sequences then advance together: one `llama_decode` per token position carries one token
     per sequence, each with its own sampler chain and seed.
A sequence stops on a stop string (finish "step", the string kept in the text), on an end-of-generation
token ("eos"), or at max_tokens / its slot's capacity ("length").

The AMX workaround (reference/cpu-engine.md §1): the model is loaded with `use_extra_bufts=False`, or
the default source build segfaults at the first decode on AMX CPUs.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ttslab.engines.base import Completion, GenerationRequest, SamplingParams, TokenScores, TokenUsage
from ttslab.models import resolve


class EngineError(RuntimeError):
    pass


def _llama():
    try:
        import llama_cpp
    except ImportError as e:  # the cpu extra is optional
        raise EngineError('the CPU engine needs llama-cpp-python: pip install -e ".[cpu]"') from e
    return llama_cpp


_LOG_CALLBACK = None  # kept alive: llama.cpp holds a pointer to it
_MODELS: dict[str, tuple[object, int]] = {}  # path -> (model pointer, users): policy and judge share weights


def _quiet(llama_cpp) -> None:
    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        _LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()


def _load_model(llama_cpp, path: str):
    if path in _MODELS:
        model, users = _MODELS[path]
        _MODELS[path] = (model, users + 1)
        return model
    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = False  # AMX workaround: the extra (AMX/repack) buffers segfault on decode
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        raise EngineError(f"llama.cpp could not load the model file {path}")
    _MODELS[path] = (model, 1)
    return model


def _release_model(llama_cpp, path: str) -> None:
    model, users = _MODELS[path]
    if users > 1:
        _MODELS[path] = (model, users - 1)
    else:
        del _MODELS[path]
        llama_cpp.llama_model_free(model)


@dataclass
class _Slot:
    tokens: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds, from position 0
    last_used: int = 0


@dataclass
class _Live:
    """A sequence being generated."""

    index: int  # request index
    slot: int
    params: SamplingParams
    sampler: object
    stop: list[bytes]
    out: bytearray = field(default_factory=bytearray)
    tokens: list[int] = field(default_factory=list)
    pending: int = -1  # sampled, not yet decoded
    finish: str | None = None
    cut: int | None = None  # byte length of the text kept (after a stop string)


class LlamaCppEngine:
    """In-process batched llama.cpp engine (see the module docstring)."""

    def __init__(
        self,
        model: str,
        n_threads: int | None = None,
        max_sequences: int = 32,
        n_ctx_per_sequence: int = 4096,
        n_batch: int = 512,
    ):
        if max_sequences < 1 or n_ctx_per_sequence < 64 or n_batch < max_sequences:
            raise ValueError(
                f"engine: need max_sequences >= 1, n_ctx_per_sequence >= 64, n_batch >= max_sequences; got "
                f"{max_sequences}, {n_ctx_per_sequence}, {n_batch}"
            )
        self._ll = ll = _llama()
        _quiet(ll)
        self.model_spec = model
        self.path = str(resolve(model))
        self.model = _load_model(ll, self.path)
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        self.n_seq = max_sequences
        self.seq_capacity = n_ctx_per_sequence
        self.n_batch = n_batch
        threads = n_threads or os.cpu_count() or 1
        cp = ll.llama_context_default_params()
        cp.n_ctx = max_sequences * n_ctx_per_sequence
        cp.n_batch = cp.n_ubatch = n_batch
        cp.n_seq_max = max_sequences
        cp.n_threads = cp.n_threads_batch = threads
        cp.kv_unified = True  # one KV pool: a forked prefix shares cells instead of being copied
        self.ctx = ll.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise EngineError(f"llama.cpp could not create a context of {cp.n_ctx} tokens for {self.path}")
        self.mem = ll.llama_get_memory(self.ctx)
        self.batch = ll.llama_batch_init(n_batch, 0, 1)
        self.slots = [_Slot() for _ in range(max_sequences)]
        self._clock = 0
        self._closed = False

    # ---------------------------------------------------------------- tokens
    def tokenize(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 16
        buf = (self._ll.llama_token * n_max)()
        n = self._ll.llama_tokenize(self.vocab, data, len(data), buf, n_max, False, True)
        if n < 0:
            raise EngineError(f"tokenization failed for a text of {len(data)} bytes")
        return list(buf[:n])

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._ll.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._ll.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    # ---------------------------------------------------------------- KV bookkeeping
    def _decode(self, items: Sequence[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, seq, want_logits) rows."""
        ll, b = self._ll, self.batch
        b.n_tokens = len(items)
        for i, (tok, pos, seq, logits) in enumerate(items):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        rc = ll.llama_decode(self.ctx, b)
        if rc != 0:
            raise EngineError(
                f"llama_decode failed (code {rc}); the KV cache is full: lower max_sequences or raise "
                "engine.n_ctx_per_sequence"
            )

    def _prefill(self, slot: int, tokens: list[int], start: int) -> None:
        """Evaluate tokens[start:] on `slot`, in n_batch chunks; logits for the last token only."""
        end = len(tokens)
        for lo in range(start, end, self.n_batch):
            hi = min(lo + self.n_batch, end)
            self._decode([(tokens[p], p, slot, p == end - 1) for p in range(lo, hi)])

    @staticmethod
    def _common(a: list[int], b: list[int]) -> int:
        n = min(len(a), len(b))
        i = 0
        while i < n and a[i] == b[i]:
            i += 1
        return i

    def _place(self, tokens: list[int], reserved: set[int]) -> tuple[int, int]:
        """Put a prompt's KV into a slot not in `reserved`, reusing the longest cached prefix.

        Returns (slot, cached): the prompt is fully evaluated on `slot`, logits of its last token ready
        at batch row len(last decode)-1, and `cached` of its tokens were reused, not recomputed.
        """
        ll = self._ll
        best, best_len = -1, 0
        for s, sl in enumerate(self.slots):
            c = self._common(sl.tokens, tokens)
            if c > best_len or (c == best_len and best >= 0 and s not in reserved and best in reserved):
                best, best_len = s, c
        reuse = min(best_len, len(tokens) - 1)  # the last token is always re-decoded for fresh logits
        if best >= 0 and best not in reserved:
            dest = best
        else:
            free = [s for s in range(self.n_seq) if s not in reserved]
            dest = min(free, key=lambda s: (self.slots[s].last_used, s))
        if dest != best:
            ll.llama_memory_seq_rm(self.mem, dest, -1, -1)
            self.slots[dest].tokens = []
            if reuse > 0:
                ll.llama_memory_seq_cp(self.mem, best, dest, 0, reuse)
        else:
            ll.llama_memory_seq_rm(self.mem, dest, reuse, -1)
        self._prefill(dest, tokens, reuse)
        self._clock += 1
        self.slots[dest] = _Slot(list(tokens), self._clock)
        return dest, reuse

    def _free_unmatched(self, prompts: list[list[int]]) -> None:
        """Drop slots no prompt of this call can reuse: keeps the unified KV pool small and fast."""
        for s, sl in enumerate(self.slots):
            if sl.tokens and not any(self._common(sl.tokens, p) > 0 for p in prompts):
                self._ll.llama_memory_seq_rm(self.mem, s, -1, -1)
                self.slots[s] = _Slot()

    # ---------------------------------------------------------------- sampling
    def _sampler(self, p: SamplingParams):
        ll = self._ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        if p.temperature <= 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
            return chain
        if p.top_k and p.top_k > 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(p.top_k))
        if p.top_p < 1.0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(p.top_p, 1))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(p.temperature))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(p.seed & 0xFFFFFFFF))
        return chain

    def _take(self, live: _Live, token: int, row: int) -> None:
        """Record a sampled token; decide whether the sequence stops."""
        live.tokens.append(token)
        if self._ll.llama_vocab_is_eog(self.vocab, token):
            live.finish = "eos"
            return
        before = len(live.out)
        live.out += self._piece(token)
        for s in live.stop:
            k = live.out.find(s, max(0, before - len(s) + 1))
            if k >= 0:
                live.finish, live.cut = "step", k + len(s)
                return
        pos = len(self.slots[live.slot].tokens)
        if len(live.tokens) >= live.params.max_tokens or pos + 1 >= self.seq_capacity:
            live.finish = "length"
            return
        live.pending = token

    # ---------------------------------------------------------------- public API
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: requests[i].prompt)  # equal prompts adjacent
        token_cache: dict[str, list[int]] = {}
        for lo in range(0, len(order), self.n_seq):
            chunk = order[lo : lo + self.n_seq]
            for i in chunk:
                if requests[i].prompt not in token_cache:
                    token_cache[requests[i].prompt] = self.tokenize(requests[i].prompt)
            for i, c in zip(chunk, self._generate_chunk([requests[i] for i in chunk], token_cache)):
                results[i] = c
        return results  # type: ignore[return-value]

    def _generate_chunk(self, reqs: list[GenerationRequest], token_cache) -> list[Completion]:
        ll = self._ll
        prompts = [token_cache[r.prompt] for r in reqs]
        for p in prompts:
            if len(p) + 1 >= self.seq_capacity:
                raise EngineError(
                    f"a prompt of {len(p)} tokens does not fit a sequence of {self.seq_capacity} tokens; "
                    "raise engine.n_ctx_per_sequence"
                )
        self._free_unmatched(prompts)
        reserved: set[int] = set()
        lives: list[_Live] = []
        usage: list[TokenUsage] = []
        i = 0
        while i < len(reqs):
            j = i
            while j < len(reqs) and reqs[j].prompt == reqs[i].prompt:
                j += 1
            lead, cached = self._place(prompts[i], reserved)
            reserved.add(lead)
            for k in range(i, j):
                if k == i:
                    slot = lead
                else:
                    free = [s for s in range(self.n_seq) if s not in reserved]
                    slot = min(free, key=lambda s: (self.slots[s].last_used, s))
                    ll.llama_memory_seq_rm(self.mem, slot, -1, -1)
                    ll.llama_memory_seq_cp(self.mem, lead, slot, -1, -1)
                    self.slots[slot] = _Slot(list(prompts[i]), self._clock)
                    reserved.add(slot)
                p = reqs[k].params
                live = _Live(k, slot, p, self._sampler(p), [s.encode() for s in p.stop])
                usage.append(TokenUsage(len(prompts[i]), cached if k == i else len(prompts[i]) - 1, 0))
                tok = ll.llama_sampler_sample(live.sampler, self.ctx, -1)
                self._take(live, tok, -1)
                lives.append(live)
            i = j
        # advance all live sequences together, one token each per decode
        while True:
            active = [lv for lv in lives if lv.finish is None]
            if not active:
                break
            rows = []
            for lv in active:
                sl = self.slots[lv.slot]
                rows.append((lv.pending, len(sl.tokens), lv.slot, True))
                sl.tokens.append(lv.pending)
            self._decode(rows)
            for row, lv in enumerate(active):
                tok = ll.llama_sampler_sample(lv.sampler, self.ctx, row)
                self._take(lv, tok, row)
        out = []
        for lv, u in zip(lives, usage):
            ll.llama_sampler_free(lv.sampler)
            data = bytes(lv.out[: lv.cut] if lv.cut is not None else lv.out)
            u.completion_tokens = len(lv.tokens)
            out.append(Completion(data.decode("utf-8", errors="replace"), lv.finish, u, lv.tokens))
        return out

    def next_token_logprobs(
        self, prompts: Sequence[str], token_ids: Sequence[int], affinity: Sequence[str] | None = None
    ) -> list[TokenScores]:
        ids = np.asarray(list(token_ids), dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_vocab):
            raise ValueError(f"token ids {list(token_ids)} are outside the vocabulary of {self.n_vocab}")
        out: list[TokenScores] = []
        done: dict[str, TokenScores] = {}
        for prompt in prompts:
            if prompt in done:  # a repeated prompt costs nothing more
                prev = done[prompt]
                n = prev.usage.prompt_tokens
                out.append(TokenScores(dict(prev.logprobs), TokenUsage(n, n, 0)))
                continue
            tokens = self.tokenize(prompt)
            if len(tokens) + 1 >= self.seq_capacity:
                raise EngineError(f"a scoring prompt of {len(tokens)} tokens exceeds {self.seq_capacity}")
            slot, cached = self._place(tokens, set())
            logits = np.ctypeslib.as_array(self._ll.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
            m = float(logits.max())
            lse = m + float(np.log(np.exp(logits - m).sum()))
            scores = TokenScores({int(t): float(logits[t]) - lse for t in ids}, TokenUsage(len(tokens), cached, 0))
            done[prompt] = scores
            out.append(scores)
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ll = self._ll
        ll.llama_batch_free(self.batch)
        ll.llama_free(self.ctx)
        _release_model(ll, self.path)

    def __enter__(self) -> "LlamaCppEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
