"""A test server that speaks SGLang's native HTTP wire format, backed by a real ttslab Engine.

It stands in for `python -m sglang.launch_server` where no GPU exists: real HTTP on 127.0.0.1, the
request/response JSON of `/generate`, `/health`, `/tokenize`, `/server_info`, `/model_info`, `/v1/models` as
SGLang documents them (reference/engines.md §1a), and the engine behind it does the real generation.

Wire details reproduced:
- `text` str or list, or `input_ids` (a list, or a list of lists), `sampling_params` dict or list (one per
  prompt); a list in gives a list out. Simplification: `input_ids` must be ids this double's `/tokenize`
  returned (it maps them back to their text for the engine behind it); SGLang accepts any ids;
- `/tokenize` with `prompt` str or list and `add_special_tokens` (only false is supported: the engine
  behind adds nothing); its `max_model_len` is the tokenizer's `model_max_length`, as in SGLang's
  serving_tokenize.py (the double's `model_max_length`, by default its `context_length`; the R1-Distill
  tokenizers say 16384 while the model takes 131072);
- `GET /v1/models`: `{"object": "list", "data": [{"id", "object": "model", "created", "owned_by": "sglang",
  "root", "parent": null, "max_model_len": <context_length>}]}`: the model's context (SGLang's
  `model_config.context_len`, http_server.py `available_models`);
- `max_new_tokens` beyond the context left is refused with 400, as SGLang does;
- `Authorization: Bearer <api_key>` required on everything but /health when `api_key` is set (401);
- `sampling_seed` -> SamplingParams.seed (missing: 42, deterministic mode's default for every request);
- `stop` str or list; `no_stop_trim` false trims the matched stop string from `text` (SGLang's default);
- `finish_reason`: {"type":"stop","matched":"\\n\\n"} | {"type":"stop","matched":<eos id>} |
  {"type":"length","length":max_new_tokens};
- `meta_info`: id, finish_reason, prompt_tokens, completion_tokens, cached_tokens, e2e_latency;
- `return_logprob` + `token_ids_logprob` with `max_new_tokens` 1: `output_token_ids_logprobs` =
  [[[logprob, token_id, null], ...]] (one position). Simplification: the "generated" token is the most
  likely of the requested ids instead of a sampled one; prompt logprobs are not supported (400).

Fault injection: `die_after=K` closes the listening socket after K `/generate` answers (later requests
are refused); `hang=True` makes `/generate` never answer (until `stop()`).

Also runnable as a process with launch_server-like arguments (`--host --port --model-path`, unknown
ones ignored) and no engine, to test the launcher's lifecycle: `python -m tests.sglang_double ...`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ttslab.engines.base import GenerationRequest, SamplingParams


class _Unavailable(Exception):
    pass


_ENGINE_LOCKS: dict[int, threading.Lock] = {}


class SGLangDouble:
    def __init__(
        self,
        engine: Any = None,
        *,
        model_path: str = "ttslab/test-double",
        port: int = 0,
        die_after: int | None = None,
        hang: bool = False,
        api_key: str | None = None,
        context_length: int = 32768,
        model_max_length: int | None = None,
        version: str = "0.5.23",
    ):
        self.engine = engine
        self.model_path = model_path
        self.die_after = die_after
        self.hang = hang
        self.api_key = api_key
        self.context_length = int(context_length)
        self.model_max_length = int(model_max_length) if model_max_length is not None else self.context_length
        self.version = version
        self._texts: dict[tuple[int, ...], str] = {}  # ids from /tokenize -> their text
        self.bodies: list[dict] = []  # every /generate request body, in arrival order
        self.scored: list[list] = []  # the engine's TokenScores behind each scoring answer
        self.n_generate = 0
        # The engine is not thread-safe, and several doubles may share one engine (sharding tests).
        self._engine_lock = _ENGINE_LOCKS.setdefault(id(engine), threading.Lock())
        self._stopped = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    # ----- lifecycle ------------------------------------------------------------------------------
    def start(self) -> SGLangDouble:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"sglang-double-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> SGLangDouble:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _die(self) -> None:
        threading.Thread(target=self.stop, daemon=True).start()

    # ----- SGLang semantics -----------------------------------------------------------------------
    def generate(self, body: dict) -> Any:
        if body.get("input_ids") is not None:
            ids = body["input_ids"]
            single = bool(ids) and not isinstance(ids[0], list)
            id_lists = [ids] if single else list(ids)
            unknown = [i for i, x in enumerate(id_lists) if tuple(x) not in self._texts]
            if unknown:
                raise ValueError(f"input_ids {unknown} were not returned by this double's /tokenize")
            texts = [self._texts[tuple(x)] for x in id_lists]
            lengths = [len(x) for x in id_lists]
        else:
            single = isinstance(body.get("text"), str)
            texts = [body["text"]] if single else list(body["text"])
            with self._engine_lock:
                lengths = [len(self.engine.tokenize(t)) for t in texts] if self.engine is not None else [0] * len(texts)
        sp = body.get("sampling_params") or {}
        sps = [sp] * len(texts) if isinstance(sp, dict) else list(sp)
        if len(sps) != len(texts):
            raise ValueError(f"{len(sps)} sampling_params for {len(texts)} prompts")
        for n, sp in zip(lengths, sps):  # SGLang's check (its message is longer)
            if n + int(sp.get("max_new_tokens", 128)) > self.context_length:
                raise ValueError(f"Requested token count exceeds the model's maximum context length of "
                                 f"{self.context_length} tokens. You requested a total of "
                                 f"{n + int(sp.get('max_new_tokens', 128))} tokens")
        if self.engine is None:
            raise _Unavailable("no engine behind this double")
        if _first(body.get("return_logprob"), False):
            out = self._score(texts, sps, body)
        else:
            out = self._sample(texts, sps)
        return out[0] if single else out

    def _sample(self, texts: list[str], sps: list[dict]) -> list[dict]:
        reqs = []
        for text, sp in zip(texts, sps):
            stop = sp.get("stop") or ()
            params = SamplingParams(
                temperature=float(sp.get("temperature", 1.0)),
                top_p=float(sp.get("top_p", 1.0)),
                top_k=int(sp.get("top_k", -1)),
                max_tokens=int(sp.get("max_new_tokens", 128)),
                stop=(stop,) if isinstance(stop, str) else tuple(stop),
                seed=int(sp.get("sampling_seed", 42)),
            )
            reqs.append(GenerationRequest(prompt=text, params=params))
        t0 = time.perf_counter()
        with self._engine_lock:
            completions = self.engine.generate(reqs)
        latency = time.perf_counter() - t0
        out = []
        for req, sp, c in zip(reqs, sps, completions):
            text = c.text
            if c.finish == "step":
                matched: Any = next(s for s in req.params.stop if text.endswith(s))
                if not sp.get("no_stop_trim", False):
                    text = text[: -len(matched)]
                finish = {"type": "stop", "matched": matched}
            elif c.finish == "eos":
                finish = {"type": "stop", "matched": int(c.token_ids[-1]) if c.token_ids else 0}
            else:
                finish = {"type": "length", "length": req.params.max_tokens}
            out.append({"text": text, "output_ids": list(c.token_ids), "meta_info": self._meta(c.usage, finish, latency)})
        return out

    def _score(self, texts: list[str], sps: list[dict], body: dict) -> list[dict]:
        if any(int(sp.get("max_new_tokens", 128)) != 1 for sp in sps):
            raise ValueError("the test double scores only with max_new_tokens=1")
        if any(int(s) != -1 for s in _each(body.get("logprob_start_len", -1), len(texts))):
            raise ValueError("the test double does not return prompt logprobs (logprob_start_len must be -1)")
        ids_per = body.get("token_ids_logprob")
        if not ids_per:
            raise ValueError("return_logprob without token_ids_logprob is not supported by the test double")
        if not isinstance(ids_per[0], list):
            ids_per = [ids_per] * len(texts)
        if any(list(ids) != list(ids_per[0]) for ids in ids_per):
            raise ValueError("the test double scores one token_ids_logprob list per request")
        ids = [int(t) for t in ids_per[0]]
        t0 = time.perf_counter()
        with self._engine_lock:  # one engine call for the batch, as SGLang batches them
            results = self.engine.next_token_logprobs(texts, ids)
        self.scored.append(results)
        out = []
        for scores in results:
            best = max(ids, key=lambda t: scores.logprobs[t])
            meta = self._meta(scores.usage, {"type": "length", "length": 1}, time.perf_counter() - t0)
            meta["completion_tokens"] = 1
            meta["output_token_ids_logprobs"] = [[[scores.logprobs[t], t, None] for t in ids]]
            meta["output_token_logprobs"] = [[scores.logprobs[best], best, None]]
            out.append({"text": "", "output_ids": [best], "meta_info": meta})
        return out

    @staticmethod
    def _meta(usage, finish: dict, latency: float) -> dict:
        return {
            "id": uuid.uuid4().hex,
            "finish_reason": finish,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "e2e_latency": latency,
        }

    def tokenize(self, body: dict) -> dict:
        prompt = body.get("prompt")
        if body.get("add_special_tokens", True):
            raise ValueError("the test double tokenizes only with add_special_tokens=false")
        # Without an engine (fault-injection doubles): one id per UTF-8 byte.
        tokenize = self.engine.tokenize if self.engine is not None else (lambda s: list(s.encode("utf-8")))
        with self._engine_lock:
            if isinstance(prompt, list):
                tokens: Any = [tokenize(p) for p in prompt]
                count: Any = [len(t) for t in tokens]
                for p, ids in zip(prompt, tokens):
                    self._texts[tuple(ids)] = p
            else:
                tokens = tokenize(prompt)
                count = len(tokens)
                self._texts[tuple(tokens)] = prompt
        return {"tokens": tokens, "count": count, "max_model_len": self.model_max_length}

    def models(self) -> dict:
        card = {"id": self.model_path, "object": "model", "created": int(time.time()), "owned_by": "sglang",
                "root": self.model_path, "parent": None, "max_model_len": self.context_length}
        return {"object": "list", "data": [card]}

    def server_info(self) -> dict:
        return {"model_path": self.model_path, "tp_size": 1, "random_seed": 42, "version": self.version,
                "enable_deterministic_inference": True}

    def model_info(self) -> dict:
        return {"model_path": self.model_path, "tokenizer_path": self.model_path, "is_generation": True}

    # ----- HTTP -----------------------------------------------------------------------------------
    def _handler_class(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, status: int, obj: Any = None, text: str | None = None) -> None:
                data = (json.dumps(obj) if text is None else text).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if text is None else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _dead(self) -> bool:
                # After die_after, also drop kept-alive connections: a dead server answers nothing.
                if double._stopped.is_set():
                    self.close_connection = True
                    return True
                return False

            def _authorized(self, path: str) -> bool:
                # SGLang's middleware lets /health, /ready and /metrics through without a key.
                if double.api_key is None or path.startswith(("/health", "/ready", "/metrics")):
                    return True
                if self.headers.get("Authorization") == f"Bearer {double.api_key}":
                    return True
                self._send(401, {"error": "Unauthorized"})
                return False

            def do_GET(self) -> None:
                if self._dead():
                    return
                path = self.path.split("?")[0]
                if not self._authorized(path):
                    return
                if path in ("/health", "/health_generate"):
                    self._send(200, text="")
                elif path in ("/server_info", "/get_server_info"):
                    self._send(200, double.server_info())
                elif path in ("/model_info", "/get_model_info"):
                    self._send(200, double.model_info())
                elif path == "/v1/models":
                    self._send(200, double.models())
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                if self._dead():
                    return
                path = self.path.split("?")[0]
                length = int(self.headers.get("Content-Length") or 0)
                if not self._authorized(path):
                    self.rfile.read(length)
                    return
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError as e:
                    self._send(400, {"object": "error", "message": f"bad JSON: {e}", "code": 400})
                    return
                if path == "/generate":
                    double.bodies.append(body)
                    if double.hang:
                        double._stopped.wait()
                        return
                    try:
                        result = double.generate(body)
                    except _Unavailable as e:
                        self._send(503, {"object": "error", "message": str(e), "code": 503})
                        return
                    except (ValueError, KeyError, TypeError) as e:
                        self._send(400, {"object": "error", "message": str(e), "code": 400})
                        return
                    except Exception as e:  # the engine failed: SGLang answers 500
                        self._send(500, {"object": "error", "message": repr(e), "code": 500})
                        return
                    double.n_generate += 1
                    self._send(200, result)
                    if double.die_after is not None and double.n_generate >= double.die_after:
                        double._die()
                elif path in ("/tokenize", "/v1/tokenize"):
                    try:
                        self._send(200, double.tokenize(body))
                    except ValueError as e:
                        self._send(400, {"object": "error", "message": str(e), "code": 400})
                else:
                    self._send(404, {"detail": "Not Found"})

        return Handler


def _first(value: Any, default: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else default
    return default if value is None else value


def _each(value: Any, n: int) -> list:
    return list(value) if isinstance(value, list) else [value] * n


def main(argv: list[str] | None = None) -> None:
    """Process mode for launcher tests: serve /health etc. without an engine until SIGTERM."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model-path", default="ttslab/test-double")
    ap.add_argument("--startup-delay", type=float, default=0.0)
    ap.add_argument("--exit-code", type=int, default=None, help="exit at once with this code (a failed launch)")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--config", default=None, help="a YAML of options, as SGLang's ConfigArgumentMerger reads it")
    ap.add_argument("--version", default="0.5.23", help="the SGLang version /server_info reports")
    ap.add_argument("--context-length", type=int, default=32768, help="the model context /v1/models reports")
    args, unknown = ap.parse_known_args(argv)
    if args.config:  # the launcher passes the API key this way, out of argv
        import yaml

        options = yaml.safe_load(open(args.config)) or {}
        args.api_key = args.api_key or options.get("api-key") or options.get("api_key")
    print(f"test double: ignoring launch_server arguments {unknown}", flush=True)
    if args.exit_code is not None:
        print("test double: simulated launch failure", flush=True)
        raise SystemExit(args.exit_code)
    time.sleep(args.startup_delay)
    double = SGLangDouble(model_path=args.model_path, port=args.port, api_key=args.api_key,
                          version=args.version, context_length=args.context_length).start()
    print(f"test double serving on {double.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        double.stop()


if __name__ == "__main__":
    main()
