"""The embedded CPU engine: llama.cpp in-process, many sequences per `llama_decode`, prefixes shared.

One llama context holds `max_sequences` KV sequences ("slots"). For a batch of requests:
  1. each distinct prompt is prefilled once, starting from the longest token prefix already held by any
     slot (`llama_memory_seq_cp` of that prefix into a free slot, or truncation in place), so a beam's
     next step pays only for its newest step;
  2. requests with the same prompt fork the prefilled slot (`seq_cp`) and sample their first token from
     the same logits row;
  3. all live sequences then advance together: one `llama_decode` per token position carries one token
     per sequence, each with its own sampler and seed (`sampling.py`: numpy over the logits rows, which
     also records each sampled token's log-probability).
A sequence stops on a stop string (finish "step", the string kept in the text), on an end-of-generation
token ("eos"), or at max_tokens / its slot's capacity ("length").

Shapes that do not change a sample (see `_MIN_ROWS`/`_MAX_ROWS`): every llama_decode carries 2 to 63 rows,
so each row's KV and logits take the same CPU kernels whatever shares the batch, and a prompt's last token is
always decoded anew, after its prefix was evaluated or found cached, in a batch of last tokens. With one KV
stream per sequence (kv_unified=False) a request and its seed then give the same tokens cold, warm and
resumed (tests/test_cache_determinism.py). Not yet: a prompt whose prefix came from other decodes (llama.cpp
splits a per-stream batch into runs of consecutive sequence ids, some of one row), and the shared pool,
where freed cells let a sequence's KV lie out of position order (flash attention sums in cell order).

The AMX workaround (reference/cpu-engine.md §1): the model is loaded with `use_extra_bufts=False`, or
the default source build segfaults at the first decode on AMX CPUs.
"""

from __future__ import annotations

import ctypes
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ttslab.config import LlamaCppEngineConfig
from ttslab.engines.base import Completion, GenerationRequest, SamplingParams, TokenScores, TokenUsage
from ttslab.engines.sampling import RowSampler, TokenSampler
from ttslab.models import resolve

_DEFAULTS = LlamaCppEngineConfig()  # one source for the engine's settings: the config schema

# Rows per llama_decode: at least 2, at most 63. llama.cpp's CPU backend (ggml-cpu as vendored by
# llama-cpp-python 0.3.36) picks kernels by batch shape, and they round differently: a 1-row batch takes
# ggml's vec_dot path for the quantised weights where 2+ rows take llamafile's sgemm (sgemm.cpp: "only
# enable sgemm for prompt processing", n < 2); flash attention takes a split-KV path for 1 query row over
# >= 512 cells and a tiled GEMM path from 64 query rows on (GGML_FA_TILE_Q), the row-by-row kernel between.
# From 2 to 63 rows each row's result depends on its own token and its sequence's KV (in cell order) only.
_MIN_ROWS, _MAX_ROWS = 2, 63


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
class TeacherForced:
    """What `LlamaCppEngine.teacher_force` read from one token sequence."""

    logprobs: np.ndarray  # (n,) log-probability of each token from score_from on, given its prefix
    hidden: np.ndarray  # (h, n_embd) last-layer hidden states at the requested positions
    usage: TokenUsage  # prompt_tokens = sequence length, cached_tokens = positions reused from the KV cache


@dataclass
class _Live:
    """A sequence being generated."""

    index: int  # request index
    slot: int
    params: SamplingParams
    sampler: TokenSampler
    stop: list[bytes]
    out: bytearray = field(default_factory=bytearray)
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # of each sampled token, temperature-1 softmax
    pending: int = -1  # sampled, not yet decoded
    finish: str | None = None
    cut: int | None = None  # byte length of the text kept (after a stop string)
    usage: TokenUsage = field(default_factory=TokenUsage)


class LlamaCppEngine:
    """In-process batched llama.cpp engine (see the module docstring)."""

    def __init__(
        self,
        model: str,
        n_threads: int | None = _DEFAULTS.n_threads,
        max_sequences: int = _DEFAULTS.max_sequences,
        n_ctx_per_sequence: int = _DEFAULTS.n_ctx_per_sequence,
        n_batch: int = _DEFAULTS.n_batch,
        kv_unified: bool = _DEFAULTS.kv_unified,
    ):
        if max_sequences < 1 or n_ctx_per_sequence < 64 or n_batch < _MIN_ROWS:
            raise ValueError(
                f"engine: need max_sequences >= 1, n_ctx_per_sequence >= 64, n_batch >= {_MIN_ROWS}; got "
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
        self.rows = min(n_batch, _MAX_ROWS)  # rows per llama_decode (see _MAX_ROWS)
        # one more sequence id, never a slot: the scratch row that pads a 1-row batch to 2 (see _decode)
        self.scratch = max_sequences
        threads = n_threads or os.cpu_count() or 1
        cp = ll.llama_context_default_params()
        cp.n_ctx = (max_sequences + 1) * n_ctx_per_sequence
        cp.n_batch = cp.n_ubatch = max(n_batch, _MAX_ROWS + 1)
        cp.n_seq_max = max_sequences + 1
        cp.n_threads = cp.n_threads_batch = threads
        # unified: one KV pool, a forked prefix shares cells; per-sequence streams: a fork copies the
        # buffer and each sequence attends only over its own cells, which one would expect to be cheaper
        # for long, wide batches but measured slower (0.81x at 32 x 384 tokens, benchmarks/engine_kv_layout.py)
        cp.kv_unified = kv_unified
        self.kv_unified = kv_unified
        self.ctx = ll.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise EngineError(f"llama.cpp could not create a context of {cp.n_ctx} tokens for {self.path}")
        self.mem = ll.llama_get_memory(self.ctx)
        self.batch = ll.llama_batch_init(max(n_batch, _MAX_ROWS + 1), 0, 1)
        self.slots = [_Slot() for _ in range(max_sequences)]
        self._clock = 0
        self._sampling = RowSampler(self.n_vocab, threads=min(threads, 2))
        self._pieces: dict[int, bytes] = {}
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
        piece = self._pieces.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = self._ll.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._ll.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
            piece = self._pieces[token] = buf.raw[:n]
        return piece

    # ---------------------------------------------------------------- KV bookkeeping
    def _decode(self, items: Sequence[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of 1..self.rows (token, position, seq, want_logits) rows. A single row gets a
        companion on the scratch sequence (its logits, if any, are the batch's second row; its KV is dropped
        right after): a 1-row batch would take other kernels than every other batch (see _MIN_ROWS)."""
        ll, b = self._ll, self.batch
        assert 0 < len(items) <= self.rows, len(items)
        padded = len(items) < _MIN_ROWS
        if padded:
            items = [*items, (items[0][0], 0, self.scratch, items[0][3])]
        b.n_tokens = len(items)
        for i, (tok, pos, seq, logits) in enumerate(items):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        rc = ll.llama_decode(self.ctx, b)
        if padded:
            ll.llama_memory_seq_rm(self.mem, self.scratch, -1, -1)
        if rc != 0:
            raise EngineError(
                f"llama_decode failed (code {rc}); the KV cache is full: lower engine.max_sequences or raise "
                "engine.n_ctx_per_sequence"
            )

    def _spans(self, rows: Sequence[tuple[int, int, int, bool]]) -> list[tuple[int, int]]:
        """Index ranges of `rows` (each sequence's rows adjacent) for one llama_decode each: at most
        self.rows rows; with per-sequence streams also one sequence per decode, since llama.cpp splits a
        batch with unequal rows per stream into ubatches of its own, possibly of one row (see _MIN_ROWS)."""
        spans, lo = [], 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or i - lo == self.rows or (not self.kv_unified and rows[i][2] != rows[lo][2]):
                spans.append((lo, i))
                lo = i
        return spans

    @staticmethod
    def _common(a: list[int], b: list[int]) -> int:
        n = min(len(a), len(b))
        i = 0
        while i < n and a[i] == b[i]:
            i += 1
        return i

    def _best_source(self, tokens: list[int], among) -> tuple[int, int]:
        best, best_len = -1, 0
        for s in among:
            c = self._common(self.slots[s].tokens, tokens)
            if c > best_len:
                best, best_len = s, c
        return best, best_len

    def _free_slot(self, reserved: set[int]) -> int:
        free = [s for s in range(self.n_seq) if s not in reserved]
        return min(free, key=lambda s: (self.slots[s].last_used, s))  # least recently used

    def _claim(self, tokens: list[int], source: int, reuse: int, reserved: set[int]) -> int:
        """A slot outside `reserved` holding tokens[:reuse] (taken from `source`), recorded as `tokens`."""
        ll = self._ll
        if source >= 0 and source not in reserved:
            dest = source  # truncate in place: nothing to copy
            ll.llama_memory_seq_rm(self.mem, dest, reuse, -1)
        else:
            dest = self._free_slot(reserved)
            ll.llama_memory_seq_rm(self.mem, dest, -1, -1)
            if reuse > 0 and self.kv_unified:
                ll.llama_memory_seq_cp(self.mem, source, dest, 0, reuse)
            elif reuse > 0:  # across streams llama.cpp copies whole buffers only: copy, then cut
                ll.llama_memory_seq_cp(self.mem, source, dest, -1, -1)
                ll.llama_memory_seq_rm(self.mem, dest, reuse, -1)
        self._clock += 1
        self.slots[dest] = _Slot(list(tokens), self._clock)
        reserved.add(dest)
        return dest

    def _fork(self, source: int, reserved: set[int]) -> int:
        """A new slot sharing all of `source`'s KV."""
        dest = self._free_slot(reserved)
        self._ll.llama_memory_seq_rm(self.mem, dest, -1, -1)
        self._ll.llama_memory_seq_cp(self.mem, source, dest, -1, -1)
        self.slots[dest] = _Slot(list(self.slots[source].tokens), self._clock)
        reserved.add(dest)
        return dest

    def _prefill_many(self, prompts: list[list[int]], reserved: set[int], on_ready) -> None:
        """Evaluate every prompt on a slot outside `reserved`, each from its longest cached prefix.

        Prompts that do not depend on each other form a "wave" (a prompt that would reuse much more from a
        prompt of the current wave waits for the next wave). The wave's tokens before each prompt's last
        are evaluated first, `self.rows` rows per decode, without logits; then the last tokens, with logits:
        a prompt's last token is decoded anew even when its whole prompt is cached, so its logits come from
        the same computation in every cache state. `on_ready(k, slot, cached, row)` runs for prompt k
        while its last-token logits sit at batch `row` (the next decode overwrites them). Slots used are
        added to `reserved`.
        """
        remaining = list(range(len(prompts)))
        while remaining:
            placed: list[tuple[int, int, int]] = []  # (prompt, slot, positions reused)
            wave: set[int] = set()
            deferred = []
            for k in remaining:
                tokens = prompts[k]
                if len(reserved) >= self.n_seq:
                    deferred.append(k)
                    continue
                source, common = self._best_source(tokens, [s for s in range(self.n_seq) if s not in wave])
                _, from_wave = self._best_source(tokens, wave)
                if from_wave > common + 32:
                    deferred.append(k)
                    continue
                reuse = min(common, len(tokens) - 1)  # the last token is always decoded anew (above)
                slot = self._claim(tokens, source, reuse, reserved)
                wave.add(slot)
                placed.append((k, slot, reuse))
            if not placed:
                raise EngineError(f"no free sequence slot for {len(deferred)} prompts (max_sequences={self.n_seq})")
            body = [(prompts[k][p], p, slot, False) for k, slot, reuse in placed for p in range(reuse, len(prompts[k]) - 1)]
            for lo, hi in self._spans(body):
                self._decode(body[lo:hi])
            for lo in range(0, len(placed), self.rows):
                chunk = placed[lo : lo + self.rows]
                self._decode([(prompts[k][-1], len(prompts[k]) - 1, slot, True) for k, slot, _ in chunk])
                for row, (k, slot, reuse) in enumerate(chunk):
                    on_ready(k, slot, reuse, row)
            remaining = deferred

    def _free_unmatched(self, prompts: list[list[int]]) -> None:
        """Drop slots no prompt of this call can reuse: keeps the unified KV pool small and fast."""
        for s, sl in enumerate(self.slots):
            if sl.tokens and not any(self._common(sl.tokens, p) > 0 for p in prompts):
                self._ll.llama_memory_seq_rm(self.mem, s, -1, -1)
                self.slots[s] = _Slot()

    # ---------------------------------------------------------------- sampling
    def _sampler(self, p: SamplingParams) -> TokenSampler:
        return TokenSampler(p)

    def _logits_rows(self, first: int, n: int) -> list[np.ndarray]:
        """Views of the logits of batch rows first..first+n-1 of the last decode (each with logits on),
        valid until the next decode: one array over llama.cpp's output buffer when the rows lie in it
        back to back (the usual case), else one view per row."""
        ll, V = self._ll, self.n_vocab
        head = ll.llama_get_logits_ith(self.ctx, first)
        if n > 1:
            tail = ll.llama_get_logits_ith(self.ctx, first + n - 1)
            addr = ctypes.cast(head, ctypes.c_void_p).value or 0
            if (ctypes.cast(tail, ctypes.c_void_p).value or 0) - addr != (n - 1) * V * ctypes.sizeof(ctypes.c_float):
                return [np.ctypeslib.as_array(ll.llama_get_logits_ith(self.ctx, first + i), shape=(V,)) for i in range(n)]
        return list(np.ctypeslib.as_array(head, shape=(n, V)))

    def _take(self, live: _Live, token: int) -> None:
        """Record a sampled token; decide whether the sequence stops."""
        live.tokens.append(token)
        if not live.params.ignore_eos and self._ll.llama_vocab_is_eog(self.vocab, token):
            live.finish = "eos"
            return
        before = len(live.out)
        live.out += self._piece(token)
        for s in live.stop:
            k = live.out.find(s, max(0, before - len(s) + 1))
            if k >= 0:
                live.finish, live.cut = "step", k + len(s)
                return
        if len(live.tokens) >= live.params.max_tokens or len(self.slots[live.slot].tokens) + 1 >= self.seq_capacity:
            live.finish = "length"
            return
        live.pending = token

    def _completion(self, live: _Live) -> Completion:
        live.usage.completion_tokens = len(live.tokens)
        data = bytes(live.out[: live.cut] if live.cut is not None else live.out)
        return Completion(data.decode("utf-8", errors="replace"), live.finish, live.usage, live.tokens, live.logprobs)

    # ---------------------------------------------------------------- public API
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Continuous batching: a sequence that finishes frees its slot for the next queued request."""
        results: list[Completion | None] = [None] * len(requests)
        tokens = {r.prompt: None for r in requests}
        for prompt in tokens:
            tokens[prompt] = self.tokenize(prompt)
            if len(tokens[prompt]) + 1 >= self.seq_capacity:
                raise EngineError(
                    f"a prompt of {len(tokens[prompt])} tokens does not fit a sequence of {self.seq_capacity} "
                    "tokens; raise engine.n_ctx_per_sequence"
                )
        self._free_unmatched(list(tokens.values()))
        queue = deque(sorted(range(len(requests)), key=lambda i: requests[i].prompt))  # equal prompts adjacent
        active: list[_Live] = []
        while queue or active:
            reserved = {lv.slot for lv in active}
            groups: list[list[int]] = []  # admitted requests, grouped by prompt
            room = self.n_seq - len(reserved)
            while queue and room > 0:
                prompt, group = requests[queue[0]].prompt, []
                while queue and room > 0 and requests[queue[0]].prompt == prompt:
                    group.append(queue.popleft())
                    room -= 1
                groups.append(group)

            def on_ready(k: int, lead: int, cached: int, row: int) -> None:
                n_prompt = len(self.slots[lead].tokens)
                lives = []
                for m, i in enumerate(groups[k]):
                    slot = lead if m == 0 else self._fork(lead, reserved)
                    p = requests[i].params
                    lives.append(_Live(i, slot, p, self._sampler(p), [s.encode() for s in p.stop],
                                       usage=TokenUsage(n_prompt, cached if m == 0 else n_prompt, 0)))
                logits = self._logits_rows(row, 1)  # every request of the group samples from this row
                firsts, lps = self._sampling.sample(logits * len(lives), [lv.sampler for lv in lives])
                for live, tok, lp in zip(lives, firsts, lps):
                    live.logprobs.append(lp)
                    self._take(live, tok)
                    if live.finish:  # done at its first token (EOS, a stop string, max_tokens 1)
                        results[live.index] = self._completion(live)
                    else:
                        active.append(live)

            if groups:
                self._prefill_many([tokens[requests[g[0]].prompt] for g in groups], reserved, on_ready)
            still = []
            for lo in range(0, len(active), self.rows):  # one token per live sequence, self.rows per decode
                chunk = active[lo : lo + self.rows]
                rows = []
                for lv in chunk:
                    sl = self.slots[lv.slot]
                    rows.append((lv.pending, len(sl.tokens), lv.slot, True))
                    sl.tokens.append(lv.pending)
                self._decode(rows)
                toks, lps = self._sampling.sample(self._logits_rows(0, len(rows)), [lv.sampler for lv in chunk])
                for lv, tok, lp in zip(chunk, toks, lps):
                    lv.logprobs.append(lp)
                    self._take(lv, tok)
                    if lv.finish:
                        results[lv.index] = self._completion(lv)
                    else:
                        still.append(lv)
            active = still
        return results  # type: ignore[return-value]

    def next_token_logprobs(
        self, prompts: Sequence[str], token_ids: Sequence[int], affinity: Sequence[str] | None = None
    ) -> list[TokenScores]:
        ids = np.asarray(list(token_ids), dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_vocab):
            raise ValueError(f"token ids {list(token_ids)} are outside the vocabulary of {self.n_vocab}")
        # shortest first: the step-k prompts of many solutions then share waves, and each one's step-(k-1)
        # prefix is already settled in a slot from an earlier chunk (bigger, faster prefill batches)
        unique = list(dict.fromkeys(prompts))
        toks = [self.tokenize(p) for p in unique]
        order = sorted(range(len(unique)), key=lambda k: len(toks[k]))
        unique, toks = [unique[k] for k in order], [toks[k] for k in order]
        for t in toks:
            if len(t) + 1 >= self.seq_capacity:
                raise EngineError(f"a scoring prompt of {len(t)} tokens exceeds engine.n_ctx_per_sequence={self.seq_capacity}")
        self._free_unmatched(toks)
        scored: dict[str, TokenScores] = {}

        def on_ready(k: int, slot: int, cached: int, row: int) -> None:
            logits = np.ctypeslib.as_array(self._ll.llama_get_logits_ith(self.ctx, row), shape=(self.n_vocab,))
            m = float(logits.max())
            lse = m + float(np.log(np.exp(logits - m).sum()))
            scored[unique[k]] = TokenScores({int(t): float(logits[t]) - lse for t in ids},
                                            TokenUsage(len(toks[k]), cached, 0))

        # in chunks of max_sequences prompts; slots are free again between chunks (their KV stays cached)
        for lo in range(0, len(unique), self.n_seq):
            chunk = list(range(lo, min(lo + self.n_seq, len(unique))))
            self._prefill_many([toks[k] for k in chunk], set(),
                               lambda j, slot, cached, row: on_ready(chunk[j], slot, cached, row))
        out, seen = [], set()
        for p in prompts:  # a repeated prompt is served from the first evaluation
            s = scored[p]
            out.append(s if p not in seen else TokenScores(dict(s.logprobs), TokenUsage(s.usage.prompt_tokens, s.usage.prompt_tokens, 0)))
            seen.add(p)
        return out

    # ---------------------------------------------------------------- teacher forcing (PRMs that read the policy)
    def teacher_force(
        self, sequences: Sequence[list[int]], score_from: Sequence[int], hidden_at: Sequence[Sequence[int]]
    ) -> list[TeacherForced]:
        """Read given token sequences through the model, reusing cached prefixes: no sampling.

        For sequence k: `logprobs[i]` is the natural-log probability of token `score_from[k] + i` given
        the tokens before it (raw logits, full vocabulary, temperature 1), for every position from
        `score_from[k]` (>= 1) to the end; `hidden[j]` is the last layer's output (after the final norm,
        llama.cpp's per-token embedding with pooling none) at position `hidden_at[k][j]` (>= score_from - 1).
        Only tokens from `score_from - 1` on are evaluated when the rest is cached: scoring a new step on
        top of an earlier call's prefix costs ~the step's tokens. Rows that need outputs are decoded with
        embeddings on (llama.cpp then outputs every row), the rest with embeddings off.
        """
        ll = self._ll
        n_embd = ll.llama_model_n_embd(self.model)
        if ll.llama_pooling_type(self.ctx) != ll.LLAMA_POOLING_TYPE_NONE:  # per-token hidden states need no pooling
            raise EngineError(f"teacher_force needs a context without pooling; {self.path} has pooling type "
                              f"{ll.llama_pooling_type(self.ctx)}")
        for k, toks in enumerate(sequences):
            if not 1 <= score_from[k] <= len(toks) or any(not score_from[k] - 1 <= p < len(toks) for p in hidden_at[k]):
                raise ValueError(f"teacher_force: sequence {k} of {len(toks)} tokens: score_from={score_from[k]}, "
                                 f"hidden_at={list(hidden_at[k])} out of range")
            if len(toks) + 1 >= self.seq_capacity:
                raise EngineError(f"a sequence of {len(toks)} tokens exceeds engine.n_ctx_per_sequence={self.seq_capacity}")
        self._free_unmatched([list(t) for t in sequences])
        out: list[TeacherForced | None] = [None] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda k: (sequences[k], k))  # shared prefixes adjacent
        pending = order
        while pending:  # rounds: a sequence sharing a long prefix with one of this round waits for the next
            reserved: set[int] = set()
            settled: dict[int, int] = {}  # slot claimed in this round -> positions whose KV already exist
            quiet: list[tuple[int, int, int, bool]] = []  # rows needing no output (cached-prefix fill)
            loud: list[tuple[int, int, int, bool]] = []  # rows whose logits / hidden state are read
            owners: list[tuple[int, int]] = []  # per loud row: (sequence k, position)
            this, deferred = [], []
            for k in pending:
                toks = list(sequences[k])
                if len(reserved) >= self.n_seq:
                    deferred.append(k)
                    continue
                first = min([score_from[k] - 1, *hidden_at[k]])
                best, common, in_round = -1, 0, 0
                for s in range(self.n_seq):
                    c = self._common(self.slots[s].tokens, toks)
                    if s in settled:
                        in_round = max(in_round, c)
                        c = min(c, settled[s])
                    if c > common:
                        best, common = s, c
                if in_round > common + 32:  # e.g. the shared prompt: decode it once, reuse it next round
                    deferred.append(k)
                    continue
                reuse = min(common, first)
                slot = self._claim(toks, best, reuse, reserved)
                settled[slot] = reuse
                this.append(k)
                for p in range(reuse, len(toks)):
                    if p < first:
                        quiet.append((toks[p], p, slot, False))
                    else:
                        loud.append((toks[p], p, slot, True))
                        owners.append((k, p))
                out[k] = TeacherForced(np.zeros(len(toks) - score_from[k], dtype=np.float32),
                                       np.zeros((len(hidden_at[k]), n_embd), dtype=np.float32),
                                       TokenUsage(len(toks), reuse, 0))
            pending = deferred
            # quiet rows first: every loud row's prefix is then in the KV cache
            for a, b in self._spans(quiet):
                self._decode(quiet[a:b])
            wanted = {k: {p: j for j, p in enumerate(hidden_at[k])} for k in this}
            ll.llama_set_embeddings(self.ctx, True)
            try:
                for a, b in self._spans(loud):
                    rows = loud[a:b]
                    self._decode(rows)
                    for i, (k, p) in enumerate(owners[a : a + len(rows)]):
                        toks, res = sequences[k], out[k]
                        if p + 1 < len(toks) and p + 1 >= score_from[k]:
                            logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,))
                            m = float(logits.max())
                            lse = m + float(np.log(np.exp(logits - m).sum()))
                            res.logprobs[p + 1 - score_from[k]] = float(logits[toks[p + 1]]) - lse
                        j = wanted[k].get(p)
                        if j is not None:
                            res.hidden[j] = np.ctypeslib.as_array(ll.llama_get_embeddings_ith(self.ctx, i), shape=(n_embd,))
            finally:
                ll.llama_set_embeddings(self.ctx, False)
        return out  # type: ignore[return-value]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ll = self._ll
        self._sampling.close()
        ll.llama_batch_free(self.batch)
        ll.llama_free(self.ctx)
        _release_model(ll, self.path)

    def __enter__(self) -> LlamaCppEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
