"""The engine's two KV layouts on long, wide generation: one pool for all sequences vs one stream each.

With `kv_unified=True` (one KV pool; a forked prefix shares cells) llama.cpp builds each token's attention
over every cell in use by any sequence and masks the others out: on CPU the flash-attention kernel still
visits each masked cell once per head and query row, so the cost of a decode step grows with
sequences x their length. With `kv_unified=False` every sequence has its own stream and attends over its
own cells only (forks copy the stream instead of sharing it). `engine_peer.py` compares the layouts at the
issue's short workload; this script measures them where the study run lives: many sequences, hundreds of
tokens each (the cpu_study preset: 32 sequences at a time, up to 768 tokens).

Both engines are loaded once; the arms alternate within each round (so a drift in the machine's speed
hits both), each generating exactly --tokens tokens per sequence (EOS ignored). Printed: tok/s per arm and
round, and split/unified per round. Run it under the model lock like any model job:

    python benchmarks/engine_kv_layout.py [--sequences 32] [--tokens 512] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from ttslab.engines.base import GenerationRequest, SamplingParams
from ttslab.engines.llamacpp import LlamaCppEngine
from ttslab.prompts import build_prompt

QUESTION = "A train travels 180 km in 2.5 hours. Explain step by step how to find its average speed."


def rate(engine: LlamaCppEngine, n: int, tokens: int, round_: int) -> float:
    prompt = build_prompt("qwen2.5", f"{QUESTION} (Round {round_}.)")  # fresh each round: no KV carried over
    reqs = [GenerationRequest(prompt, SamplingParams(0.7, max_tokens=tokens, stop=("\x00never\x00",), seed=i,
                                                     ignore_eos=True)) for i in range(n)]
    start = time.perf_counter()
    outs = engine.generate(reqs)
    elapsed = time.perf_counter() - start
    assert {o.usage.completion_tokens for o in outs} == {tokens}
    return n * tokens / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded:qwen2.5-coder-0.5b")
    ap.add_argument("--sequences", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    engines = {name: LlamaCppEngine(args.model, n_threads=args.threads, max_sequences=args.sequences,
                                    n_ctx_per_sequence=args.tokens + 256, kv_unified=unified)
               for name, unified in (("unified", True), ("split", False))}
    for e in engines.values():
        rate(e, 2, 4, -1)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in engines}
    for r in range(args.rounds):
        order = list(engines) if r % 2 == 0 else list(engines)[::-1]
        for name in order:
            rates[name].append(rate(engines[name], args.sequences, args.tokens, r))
        print(f"round {r}: " + "  ".join(f"{n} {rates[n][-1]:.1f}" for n in engines) + " tok/s   split/unified "
              f"{rates['split'][-1] / rates['unified'][-1]:.2f}", flush=True)
    ratios = [s / u for s, u in zip(rates["split"], rates["unified"])]
    print(f"\n{args.sequences} sequences x {args.tokens} tokens, {args.threads} threads, {args.rounds} rounds: "
          f"median tok/s unified {statistics.median(rates['unified']):.1f}, split {statistics.median(rates['split']):.1f}; "
          f"split/unified min {min(ratios):.2f} median {statistics.median(ratios):.2f} max {max(ratios):.2f}")
    for e in engines.values():
        e.close()


if __name__ == "__main__":
    main()
