"""The CPU engine against llama.cpp's own server and against raw batched decoding, measured in one run.

Three arms on the same GGUF, the same threads and the same workload, interleaved round by round so that
a drift in the machine's speed hits all of them alike:

  ttslab  `LlamaCppEngine.generate` (what every CPU run uses);
  server  `llama-server` with 16 parallel slots and continuous batching (its default), sent the same
          prompt token ids over HTTP: one request with n=16 for "16 samples of one prompt", 16 concurrent
          requests for "16 different prompts"; full-vocabulary sampling at the same temperature;
  raw     `llama-batched-bench`: the same llama_decode calls with nothing around them (no sampling, no
          text): the ceiling (-pps: the prompt decoded once and shared, as the engine does).

Every arm generates exactly --tokens tokens per sequence (no stop string can match, EOS ignored; checked
per arm). Rate = generated tokens / wall seconds, prompt processing included. Printed: each arm's rate
per round and the ratios ttslab/server and ttslab/raw as min / median / max over the rounds.
Goals (issue 11): ttslab >= 1.0x server and >= 0.9x raw.

The peer is built from the llama.cpp that llama-cpp-python 0.3.36 vendors, outside the repository
(about 15 min on 2 cores; run it under the model lock like any CPU-heavy job):

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d peer
    tar xzf peer/llama_cpp_python-0.3.36.tar.gz -C peer
    cmake -S peer/llama_cpp_python-0.3.36/vendor/llama.cpp -B peer/build -G Ninja -DCMAKE_BUILD_TYPE=Release \\
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \\
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
    cmake --build peer/build --target llama-server llama-batched-bench -j 2

    python benchmarks/engine_peer.py --bin peer/build/bin [--tokens 128] [--rounds 3]

`--kv-unified 1,0` measures the engine with both KV layouts (one pool shared by all sequences, which
prefix sharing uses; or one stream per sequence, as llama-server -np and llama-batched-bench run by
default) as two arms of the same rounds.

`--before FILE` adds a fourth arm, an earlier version of the engine module (e.g. `git show
<rev>:ttslab/engines/llamacpp.py > before.py`), so a change is measured against its parent in one run.

Both tools run with --no-repack, llama.cpp's switch for what the engine does in-process
(use_extra_bufts=False, the AMX workaround of reference/cpu-engine.md), and otherwise their defaults.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ttslab.engines.base import GenerationRequest, SamplingParams
from ttslab.engines.llamacpp import LlamaCppEngine
from ttslab.models import resolve
from ttslab.prompts import build_prompt

QUESTIONS = [
    "A farm has 12 cows and 9 chickens. How many legs do the animals have in total?",
    "What is the sum of the first 20 positive odd numbers?",
    "A train travels 180 km in 2.5 hours. What is its average speed in km/h?",
    "How many positive divisors does 360 have?",
]
NEVER = ("\x00never\x00",)
N_SEQ = 16


def prompts(workload: str, round_: int) -> list[str]:
    """16 chat prompts: one repeated ("same") or 16 distinct ("diff"); fresh each round (no KV carried over)."""
    if workload == "same":
        return [build_prompt("qwen2.5", f"{QUESTIONS[0]} (Round {round_}.)")] * N_SEQ
    return [build_prompt("qwen2.5", f"{QUESTIONS[i % len(QUESTIONS)]} (Round {round_}, variant {i}.)")
            for i in range(N_SEQ)]


# ---------------------------------------------------------------- arms
def run_ttslab(engine: LlamaCppEngine, texts: list[str], tokens: int, temperature: float) -> float:
    reqs = [GenerationRequest(t, SamplingParams(temperature, max_tokens=tokens, stop=NEVER, seed=i, ignore_eos=True))
            for i, t in enumerate(texts)]
    start = time.perf_counter()
    outs = engine.generate(reqs)
    elapsed = time.perf_counter() - start
    counts = [o.usage.completion_tokens for o in outs]
    assert all(o.finish == "length" for o in outs) and set(counts) == {tokens}, f"ttslab generated {counts}"
    return sum(counts) / elapsed


class _NoEndOfGeneration:
    """The llama_cpp module as seen by an older engine, with no token an end-of-generation token."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    @staticmethod
    def llama_vocab_is_eog(vocab, token) -> bool:
        return False


class Server:
    def __init__(self, binary: Path, model: str, threads: int, ctx_per_seq: int):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(os.devnull, "wb")  # noqa: SIM115 (lives as long as the server)
        self.proc = subprocess.Popen(
            [str(binary), "-m", model, "--host", "127.0.0.1", "--port", str(self.port), "-t", str(threads),
             "-tb", str(threads), "-np", str(N_SEQ), "-c", str(N_SEQ * ctx_per_seq), "--no-repack",
             "--no-webui", "--log-disable"],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.close()
        raise RuntimeError("llama-server did not become healthy in 120 s")

    def complete(self, body: dict) -> list[dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/completion", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=3600) as r:
            out = json.loads(r.read())
        return out if isinstance(out, list) else [out]

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (checks that it stays idle during the other arms)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def server_body(ids: list[int], tokens: int, temperature: float, seed: int, n: int) -> dict:
    # plain full-vocabulary sampling at `temperature`, as the engine does: every other sampler neutral
    return {"prompt": ids, "n_predict": tokens, "ignore_eos": True, "temperature": temperature, "top_k": 0,
            "top_p": 1.0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0, "samplers": ["temperature"],
            "seed": seed, "n": n, "cache_prompt": True}


def run_server(server: Server, ids: list[list[int]], tokens: int, temperature: float, same: bool) -> float:
    start = time.perf_counter()
    if same:
        results = server.complete(server_body(ids[0], tokens, temperature, 1, N_SEQ))
    else:
        with ThreadPoolExecutor(N_SEQ) as pool:
            results = [r for rs in pool.map(lambda k: server.complete(server_body(ids[k], tokens, temperature, k, 1)),
                                            range(len(ids))) for r in rs]
    elapsed = time.perf_counter() - start
    counts = [r["tokens_predicted"] for r in results]
    assert len(counts) == N_SEQ and set(counts) == {tokens}, f"server generated {counts}"
    return sum(counts) / elapsed


def run_raw(binary: Path, model: str, threads: int, n_prompt: int, tokens: int, same: bool) -> tuple[float, float]:
    """(generated tokens / (prompt + decode seconds), decode-only tokens/s) of llama-batched-bench."""
    cmd = [str(binary), "-m", model, "-t", str(threads), "-tb", str(threads), "--no-repack",
           "-c", str(N_SEQ * (n_prompt + tokens) + 256), "-b", "512", "-ub", "512",
           "-npp", str(n_prompt), "-ntg", str(tokens), "-npl", str(N_SEQ), "--output-format", "jsonl"]
    if same:
        cmd.append("-pps")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in (out.stdout + out.stderr).splitlines() if line.startswith("{")]
    r = rows[-1]
    assert r["tg"] == tokens and r["pl"] == N_SEQ, r
    return N_SEQ * tokens / r["t"], r["speed_tg"]


# ---------------------------------------------------------------- main
def _arm(unified: bool, layouts: list[bool]) -> str:
    """'ttslab' when one KV layout is measured, else 'ttslab-unified' / 'ttslab-split'."""
    return "ttslab" if len(layouts) == 1 else f"ttslab-{'unified' if unified else 'split'}"


def spread(xs: list[float]) -> str:
    return f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", type=Path, required=True, help="folder holding llama-server and llama-batched-bench")
    ap.add_argument("--model", default="embedded:qwen2.5-coder-0.5b")
    ap.add_argument("--tokens", type=int, default=128, help="generated tokens per sequence")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--workloads", default="same,diff")
    ap.add_argument("--kv-unified", default="1",
                    help="the engine's kv_unified; '1,0' measures both layouts as two ttslab arms in the same rounds")
    ap.add_argument("--before", type=Path, help="an earlier llamacpp.py to measure as a fourth arm")
    args = ap.parse_args()
    model = str(resolve(args.model))
    ctx_per_seq = 1024
    layouts = [bool(int(v)) for v in args.kv_unified.split(",")]
    engines = {_arm(u, layouts): LlamaCppEngine(args.model, n_threads=args.threads, max_sequences=N_SEQ,
                                                n_ctx_per_sequence=ctx_per_seq, kv_unified=u) for u in layouts}
    engine = next(iter(engines.values()))
    before = None
    if args.before:
        spec = importlib.util.spec_from_file_location("llamacpp_before", args.before)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
        before = mod.LlamaCppEngine(args.model, n_threads=args.threads, max_sequences=N_SEQ,
                                    n_ctx_per_sequence=ctx_per_seq, kv_unified=layouts[0])
        before._ll = _NoEndOfGeneration(before._ll)  # an engine from before ignore_eos: the same effect
    server = Server(args.bin / "llama-server", model, args.threads, ctx_per_seq)
    try:
        # warm-up: first calls of both in-process and server paths
        for e in engines.values():
            run_ttslab(e, prompts("same", -1)[:2], 4, args.temperature)
        if before:
            run_ttslab(before, prompts("same", -1)[:2], 4, args.temperature)
        run_server(server, [engine.tokenize(t) for t in prompts("diff", -1)], 4, args.temperature, same=False)
        rates: dict[tuple[str, str], list[float]] = {}
        for r in range(args.rounds):
            for wl in args.workloads.split(","):
                texts = prompts(wl, r)
                ids = [engine.tokenize(t) for t in texts]
                n_prompt = round(sum(map(len, ids)) / len(ids))
                idle = server.cpu_seconds()
                got = {arm: run_ttslab(e, texts, args.tokens, args.temperature) for arm, e in engines.items()}
                idle = server.cpu_seconds() - idle
                got["server"] = run_server(server, ids, args.tokens, args.temperature, same=wl == "same")
                got["raw"], got["raw decode-only"] = run_raw(args.bin / "llama-batched-bench", model, args.threads,
                                                             n_prompt, args.tokens, same=wl == "same")
                if before:
                    got["before"] = run_ttslab(before, texts, args.tokens, args.temperature)
                for arm, v in got.items():
                    rates.setdefault((wl, arm), []).append(v)
                print(f"round {r} {wl:4s} (prompt {n_prompt} tok): " +
                      "  ".join(f"{arm} {v:6.1f}" for arm, v in got.items()) +
                      f"  tok/s  (idle server used {idle:.2f} CPU s meanwhile)", flush=True)
    finally:
        server.close()
        for e in engines.values():
            e.close()
        if before:
            before.close()
    print(f"\n{N_SEQ} sequences x {args.tokens} tokens, {args.threads} threads, {args.rounds} rounds; "
          "ratios per round, min / median / max")
    for wl in args.workloads.split(","):
        s, raw = rates[(wl, "server")], rates[(wl, "raw")]
        for arm in engines:
            t = rates[(wl, arm)]
            print(f"  {wl:4s} {arm}/server {spread([a / b for a, b in zip(t, s)])}  (goal >= 1.0)   "
                  f"{arm}/raw {spread([a / b for a, b in zip(t, raw)])}  (goal >= 0.9)   "
                  f"median tok/s: {arm} {statistics.median(t):.1f} server {statistics.median(s):.1f} "
                  f"raw {statistics.median(raw):.1f} (decode-only {statistics.median(rates[(wl, 'raw decode-only')]):.1f})")
        if before:
            b, t = rates[(wl, "before")], rates[(wl, next(iter(engines)))]
            print(f"  {wl:4s} before/server {spread([a / c for a, c in zip(b, s)])}   before/raw "
                  f"{spread([a / c for a, c in zip(b, raw)])}   ttslab/before {spread([a / c for a, c in zip(t, b)])}")


if __name__ == "__main__":
    main()
