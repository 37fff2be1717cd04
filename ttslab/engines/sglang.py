"""GPU engine: an HTTP client of SGLang's native `POST /generate` API.

SGLang runs as an external server (see `sglang_server.py` for launching one). This client
- sends all samples of one prompt (the children of one search node) in one batched request, so
  RadixAttention computes their shared prefix once;
- keeps the matched step delimiter in the text (`no_stop_trim`) and tells a stop string
  (`finish_reason.matched` is a str) from EOS (`matched` is an int token id);
- gives every sample its own `sampling_seed` (taken from `SamplingParams.seed`, as the CPU engine does);
- shards requests over several servers by `GenerationRequest.affinity` (the problem id), so every
  request of one problem hits the same radix cache (one server per GPU; sgl-model-gateway is not spoken:
  it has no `/tokenize` and takes one `sampling_params` per request, see `ROUTER_REFUSED`);
- retries transport errors and 5xx answers with exponential backoff, then fails naming the server;
- sends token ids (`input_ids`, from the server's own `/tokenize` without special tokens), never `text`:
  `/generate` with text adds the BOS token, and the Llama-3 / R1 / RLHFlow prompts already start with the
  BOS text, so the model would see two;
- clamps `max_new_tokens` to the context left (context length minus prompt tokens) instead of getting a 400,
  and says so in the `Completion` (`max_new_tokens_sent`), so the record keeps what was asked and what was
  sent. The context is the model's, as `GET /v1/models` reports it (`max_model_len`, SGLang's
  `model_config.context_len`), never `/tokenize`'s `max_model_len`: that one is the tokenizer's
  `model_max_length` (16384 for the R1-Distill tokenizers, whose model takes 131072);
- checks the server's SGLang version (`GET /server_info` -> "version") against `MIN_SGLANG_VERSION`;
- sends `Authorization: Bearer <api key>` when the servers were started with `--api-key`.

The sync methods (the `Engine` protocol) run the async client on an event loop in a helper thread,
so they work the same in scripts and in Jupyter (whose own loop is already running).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .base import Completion, GenerationRequest, TokenScores, TokenUsage

log = logging.getLogger(__name__)
T = TypeVar("T")


# /tokenize (0.5.9) and the radix cache kept in deterministic mode; the CI tier runs 0.5.23 (.ci/sglang.sh).
MIN_SGLANG_VERSION = "0.5.9"
TESTED_SGLANG_VERSION = "0.5.23"


class SGLangError(RuntimeError):
    """A server answered with an error, or could not be reached after the allowed retries."""


# sgl-model-gateway (sglang-router, smg) types `sampling_params`, `return_logprob`, `logprob_start_len` and
# `token_ids_logprob` as one value per request (src/protocols/generate.rs), so ttslab's batches (one seed per
# sample) are refused with 422, and it has no /tokenize route. Refused in preflight (ttslab.config.validate).
ROUTER_REFUSED = (
    "engine.{role}.router=true is not supported: sgl-model-gateway has no /tokenize route and refuses the "
    "batched /generate requests ttslab sends (one sampling_seed per sample); use one server per GPU instead, "
    "problems sharded by id: engine.{role}.gpus=['0','1',...] to launch them, or "
    "engine.{role}.urls=[<one URL per server>] for servers you started"
)


def version_tuple(version: str) -> tuple[int, ...] | None:
    """(0, 5, 23) from "0.5.23", "0.5.23rc1" or "0.5.23.post2"; None when it does not start with a number."""
    parts = []
    for piece in str(version).strip().lstrip("v").split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts) or None


def check_version(version: Any, url: str) -> None:
    """Refuse a server older than MIN_SGLANG_VERSION, naming it and the upgrade command."""
    got = version_tuple(str(version)) if version is not None else None
    if got is None:
        raise SGLangError(f"{url}/server_info reports no SGLang version ({version!r}); ttslab needs SGLang >= "
                          f"{MIN_SGLANG_VERSION} (tested: {TESTED_SGLANG_VERSION})")
    if got < version_tuple(MIN_SGLANG_VERSION):
        raise SGLangError(
            f"SGLang server {url} runs SGLang {version}, but ttslab needs >= {MIN_SGLANG_VERSION} (/tokenize, "
            f"radix cache in deterministic mode; tested: {TESTED_SGLANG_VERSION}); upgrade its environment: "
            f"pip install -U 'sglang>={MIN_SGLANG_VERSION}'"
        )


@dataclass(frozen=True)
class ClientSettings:
    concurrency: int = 16  # HTTP requests in flight per server
    max_batch: int = 64  # prompts per /generate request (a larger group of equal prompts is never split)
    timeout_s: float = 1800.0  # per HTTP request; long CoT generations take minutes
    connect_timeout_s: float = 10.0
    retries: int = 4  # after the first attempt
    backoff_s: float = 1.0  # first wait; doubles each retry
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        for key in ("concurrency", "max_batch"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"engine.{key}={getattr(self, key)!r}: expected an integer >= 1")
        if int(self.retries) < 0:
            raise ValueError(f"engine.retries={self.retries!r}: expected an integer >= 0")
        for key in ("timeout_s", "connect_timeout_s", "backoff_s", "max_backoff_s"):
            if float(getattr(self, key)) < 0:
                raise ValueError(f"engine.{key}={getattr(self, key)!r}: expected a number >= 0")


def shard_index(affinity: str, n_servers: int) -> int:
    """Stable server index for a problem id: the same on every run, process and machine."""
    if n_servers == 1:
        return 0
    digest = hashlib.blake2b(affinity.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_servers


def sampling_payload(params, max_new_tokens: int | None = None) -> dict[str, Any]:
    """SGLang `sampling_params` for one sample. Everything explicit: server defaults come from the
    model's generation_config.json and would otherwise leak into the study's settings.
    `max_new_tokens`: the clamped limit (context left), if smaller than `params.max_tokens`."""
    limit = int(params.max_tokens) if max_new_tokens is None else min(int(params.max_tokens), int(max_new_tokens))
    p: dict[str, Any] = {
        "temperature": float(params.temperature),  # SGLang turns ~0 into greedy (top_k=1)
        "top_p": float(params.top_p),
        "top_k": int(params.top_k) if params.top_k and params.top_k > 0 else -1,
        "max_new_tokens": limit,
        "no_stop_trim": True,  # keep "\n\n" in the text: prompt + text is the next prefix
        "sampling_seed": int(params.seed),
    }
    if params.stop:
        p["stop"] = list(params.stop)
    if getattr(params, "ignore_eos", False):  # equal-length benchmark arms, as on the CPU engine
        p["ignore_eos"] = True
    return p


def parse_finish(finish_reason: Any, url: str) -> tuple[str, str | None]:
    """Map SGLang's finish_reason JSON to ("step" | "eos" | "length", matched stop string or None)."""
    if not isinstance(finish_reason, Mapping):
        raise SGLangError(f"{url}: unexpected finish_reason {finish_reason!r} (expected a JSON object)")
    kind = finish_reason.get("type")
    if kind == "length":
        return "length", None
    if kind == "stop":
        matched = finish_reason.get("matched")
        if isinstance(matched, str):
            return "step", matched
        return "eos", None  # an int: EOS or a stop_token_ids hit
    if kind == "abort":
        raise SGLangError(f"{url}: request aborted by the server: {finish_reason.get('message')!r}")
    raise SGLangError(f"{url}: unknown finish_reason type {kind!r} in {finish_reason!r}")


def parse_completion(item: Mapping[str, Any], url: str) -> Completion:
    meta = item.get("meta_info") or {}
    finish, matched = parse_finish(meta.get("finish_reason"), url)
    text = item.get("text", "")
    if matched is not None and not text.endswith(matched):
        text += matched  # a server that trimmed anyway (old versions ignore no_stop_trim)
    usage = TokenUsage(
        prompt_tokens=int(meta.get("prompt_tokens", 0)),
        cached_tokens=int(meta.get("cached_tokens", 0) or 0),
        completion_tokens=int(meta.get("completion_tokens", 0)),
    )
    return Completion(text=text, finish=finish, usage=usage, token_ids=list(item.get("output_ids") or []))


class _LoopThread:
    """An asyncio loop in a daemon thread: sync callers submit coroutines and wait for their result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ttslab-sglang-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class SGLangEngine:
    """`Engine` over one or more SGLang servers.

    urls      several URLs: one server per GPU (group); requests are sharded by affinity (problem id).
    servers   launched `SGLangServer`s that this engine owns and shuts down on `close()`.
    context_length  the config's limit (launch.context_length or the model config's); the server's own
              (`GET /v1/models`) is taken where smaller.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        settings: ClientSettings | None = None,
        servers: Sequence[Any] = (),
        name: str = "sglang",
        api_key: str | None = None,
        context_length: int | None = None,
    ):
        urls = [str(u).rstrip("/") for u in urls]
        if not urls:
            raise ValueError("SGLangEngine: no server URL given (expected at least one http://host:port)")
        for u in urls:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"SGLangEngine: server URL {u!r} must start with http:// or https://")
        self.urls = urls
        self.server_versions: dict[str, str] = {}  # url -> SGLang version it reports (run provenance)
        self.settings = settings or ClientSettings()
        self.servers = list(servers)
        self.name = name
        self.api_key = api_key
        # The config's context length; each server's own (GET /v1/models max_model_len) is taken if smaller.
        self.context_length = int(context_length) if context_length else None
        self.server_contexts: dict[str, int | None] = {}  # url -> the model context it reports (None: none)
        self._token_cache: OrderedDict[str, list[int]] = OrderedDict()  # prompt text -> ids (LRU)
        self._loop = _LoopThread()
        self._client = None  # httpx.AsyncClient, created on the loop thread
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._closed = False

    # ----- configuration -----------------------------------------------------------------------

    @classmethod
    def from_config(cls, engine_cfg: Any, model_cfg: Any, role: str, run_dir: str | Path) -> SGLangEngine:
        """Build the engine for `role` ("policy" or "prm") from `conf/engine/sglang.yaml` and the model's
        config: connect to `engine.<role>.urls` if given, else launch servers (one per `gpus` entry)."""
        from . import sglang_server

        engine_cfg = _to_dict(engine_cfg)
        model_cfg = _to_dict(model_cfg)
        if role not in ("policy", "prm"):
            raise ValueError(f"SGLangEngine.from_config: role={role!r}; expected 'policy' or 'prm'")
        role_cfg = _to_dict(engine_cfg.get(role) or {})
        settings = ClientSettings(
            **{k: engine_cfg[k] for k in ClientSettings.__dataclass_fields__ if engine_cfg.get(k) is not None}
        )
        urls = list(role_cfg.get("urls") or [])
        servers: list[Any] = []
        api_key = role_cfg.get("api_key")  # for servers started by hand with --api-key
        if role_cfg.get("router"):
            raise ValueError(ROUTER_REFUSED.format(role=role))
        if not urls:
            servers = sglang_server.launch_for_role(engine_cfg, model_cfg, role, run_dir)
            urls = [s.url for s in servers]
            api_key = servers[0].api_key if servers else api_key
        engine = cls(urls, settings=settings, servers=servers, name=f"sglang-{role}",
                     api_key=api_key, context_length=(engine_cfg.get("launch") or {}).get("context_length")
                     or model_cfg.get("context_length"))
        try:
            engine.wait_ready(timeout_s=float(engine_cfg.get("connect_timeout_s") or 10.0) * 3)
            engine.check_server_version()
            engine.check_model(model_cfg)
            engine.check_context()
        except BaseException:
            engine.close()
            raise
        return engine

    # ----- the Engine protocol (sync) ------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        return self._run(self.agenerate(requests))

    def next_token_logprobs(
        self, prompts: Sequence[str], token_ids: Sequence[int], affinity: Sequence[str] | None = None
    ) -> list[TokenScores]:
        return self._run(self.anext_token_logprobs(prompts, token_ids, affinity))

    def tokenize(self, text: str) -> list[int]:
        return self._run(self.atokenize(text))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._client is not None:
                self._loop.run(self._client.aclose())
        finally:
            self._loop.stop()
            for server in self.servers:
                server.stop()

    def __enter__(self) -> SGLangEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Fail fast with a clear message when a configured server is not reachable."""
        self._run(self._await_health(timeout_s))

    def check_server_version(self) -> None:
        """Refuse servers older than MIN_SGLANG_VERSION."""
        for url in self.urls:
            info = self._run(self._get_json(url, ("/server_info", "/get_server_info")))
            check_version((info or {}).get("version"), url)
            self.server_versions[url] = str((info or {}).get("version"))

    def check_model(self, model_cfg: Mapping[str, Any]) -> None:
        """Warn when a server serves another model than the config names (a silent mix-up otherwise)."""
        expected = {str(v) for v in (model_cfg.get("hf_id"), (model_cfg.get("sglang") or {}).get("model_path")) if v}
        if not expected:
            return
        for url in self.urls:
            info = self._run(self._get_json(url, ("/model_info", "/get_model_info")))
            served = str((info or {}).get("model_path", ""))
            if served and not any(served == e or served.rstrip("/").endswith(e) for e in expected):
                warnings.warn(f"{url} serves model {served!r} but the config names {sorted(expected)}")

    def check_context(self) -> dict[str, int | None]:
        """Each server's model context (`GET /v1/models`), fetched once; the clamp uses the smallest limit."""
        for url in self.urls:
            self._run(self._server_context(url))
        return dict(self.server_contexts)

    # ----- async API ----------------------------------------------------------------------------

    async def agenerate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        requests = list(requests)
        if not requests:
            return []
        _warn_on_collapsing_seeds(requests)
        jobs = []
        out: list[Completion | None] = [None] * len(requests)
        for url, batch in self._batches([(r.prompt, r.affinity) for r in requests]):
            ids = await self._token_ids(url, [requests[i].prompt for i in batch])
            context = await self._context_limit(url)
            send, payload_ids, params = [], [], []
            sent: dict[int, int] = {}  # request index -> max_new_tokens sent, where lower than asked
            for i, prompt_ids in zip(batch, ids):
                room = None if context is None else context - len(prompt_ids)
                if room is not None and room < 1:  # nothing fits: what SGLang would cut at once, without a 400
                    out[i] = Completion(text="", finish="length", usage=TokenUsage(prompt_tokens=len(prompt_ids)),
                                        max_new_tokens_sent=0)
                    continue
                send.append(i)
                payload_ids.append(prompt_ids)
                params.append(sampling_payload(requests[i].params, room))
                if params[-1]["max_new_tokens"] < int(requests[i].params.max_tokens):
                    sent[i] = params[-1]["max_new_tokens"]
            if send:
                jobs.append(self._generate_batch(url, {"input_ids": payload_ids, "sampling_params": params}, send))
        for batch, completions in await asyncio.gather(*jobs):
            for i, c in zip(batch, completions):
                c.max_new_tokens_sent = sent.get(i)
                out[i] = c
        return out  # type: ignore[return-value]

    async def anext_token_logprobs(
        self, prompts: Sequence[str], token_ids: Sequence[int], affinity: Sequence[str] | None = None
    ) -> list[TokenScores]:
        # max_new_tokens 1 with return_logprob: `output_token_ids_logprobs[0]` is the distribution right
        # after the prompt. logprob_start_len -1 asks for no prompt logprobs; the scheduler then sets it to
        # len(prompt) - 1, so the radix cache may serve every earlier token (earlier steps are not
        # recomputed). The alternative, max_new_tokens 0 + logprob_start_len = len - 1, needs the token
        # count first (a /tokenize round trip) and, per strands-sglang#32/#34, returns None at exactly
        # that position. temperature 1, no top-p/top-k: the logprobs are the full-vocabulary softmax.
        prompts = list(prompts)
        ids = [int(t) for t in token_ids]
        if not ids:
            raise ValueError("next_token_logprobs: token_ids is empty (expected the label token ids)")
        if affinity is not None and len(affinity) != len(prompts):
            raise ValueError(f"next_token_logprobs: {len(affinity)} affinity keys for {len(prompts)} prompts")
        keys = list(affinity) if affinity is not None else [""] * len(prompts)
        jobs = []
        for url, batch in self._batches(list(zip(prompts, keys))):
            n = len(batch)
            payload = {
                "input_ids": await self._token_ids(url, [prompts[i] for i in batch]),
                "sampling_params": [
                    {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "max_new_tokens": 1, "sampling_seed": 0}
                ]
                * n,
                "return_logprob": [True] * n,
                "logprob_start_len": [-1] * n,
                "token_ids_logprob": [ids] * n,
            }
            jobs.append(self._score_batch(url, payload, batch, ids))
        out: list[TokenScores | None] = [None] * len(prompts)
        for batch, scores in await asyncio.gather(*jobs):
            for i, s in zip(batch, scores):
                out[i] = s
        return out  # type: ignore[return-value]

    async def atokenize(self, text: str) -> list[int]:
        return list((await self._token_ids(self.urls[0], [text]))[0])

    async def _token_ids(self, url: str, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text by the server's tokenizer: special-token text (BOS, chat markers) parsed,
        nothing added. One /tokenize call for the texts not seen recently."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._token_cache))
        if todo:
            body = await self._post(url, "/tokenize", {"prompt": todo, "add_special_tokens": False})
            tokens = body.get("tokens") if isinstance(body, Mapping) else None
            if not isinstance(tokens, list) or len(tokens) != len(todo) or not all(isinstance(t, list) for t in tokens):
                raise SGLangError(f"{url}/tokenize: expected {{'tokens': [[...] x {len(todo)}]}}, got {str(body)[:200]}")
            # (its `max_model_len` is the tokenizer's model_max_length, not the model's context: not used)
        fresh = {text: [int(t) for t in ids] for text, ids in zip(todo, tokens)} if todo else {}
        out = []
        for text in texts:
            ids = fresh.get(text) or self._token_cache.pop(text)
            self._token_cache[text] = ids  # most recently used last
            out.append(ids)
        while len(self._token_cache) > 4096:
            self._token_cache.popitem(last=False)
        return out

    async def _server_context(self, url: str) -> int | None:
        """The model context a server reports: `GET /v1/models` -> data[i].max_model_len (SGLang's
        model_config.context_len, i.e. --context-length or the model's config.json); LoRA cards carry none."""
        if url not in self.server_contexts:
            body = await self._get_json(url, ("/v1/models",))
            cards = body.get("data") if isinstance(body, Mapping) else None
            limits = [c.get("max_model_len") for c in cards or [] if isinstance(c, Mapping)]
            limits = [n for n in limits if isinstance(n, int) and not isinstance(n, bool) and n > 0]
            self.server_contexts[url] = limits[0] if limits else None
        return self.server_contexts[url]

    async def _context_limit(self, url: str) -> int | None:
        limits = [c for c in (self.context_length, await self._server_context(url)) if c]
        return min(limits) if limits else None

    # ----- internals ----------------------------------------------------------------------------

    def _run(self, coro: Awaitable[T]) -> T:
        if self._closed:
            raise SGLangError(f"{self.name}: the engine is closed")
        return self._loop.run(coro)

    def _url_for(self, affinity: str, prompt: str) -> str:
        if len(self.urls) == 1:
            return self.urls[0]
        # No affinity: keep equal prompts together at least (they share a prefix).
        return self.urls[shard_index(affinity or prompt, len(self.urls))]

    def _batches(self, items: Sequence[tuple[str, str]]) -> list[tuple[str, list[int]]]:
        """Group request indices by (server, prompt), then pack whole groups into /generate batches.
        A group (all samples of one prompt) always travels in one request."""
        groups: OrderedDict[tuple[str, str], list[int]] = OrderedDict()
        for i, (prompt, key) in enumerate(items):
            groups.setdefault((self._url_for(key, prompt), prompt), []).append(i)
        batches: list[tuple[str, list[int]]] = []
        open_batch: dict[str, list[int]] = {}
        for (url, _), idx in groups.items():
            cur = open_batch.get(url)
            if cur is not None and len(cur) + len(idx) > self.settings.max_batch:
                batches.append((url, cur))
                cur = None
            if cur is None:
                cur = open_batch[url] = []
            cur.extend(idx)
        batches.extend((url, idx) for url, idx in open_batch.items() if idx)
        return batches

    async def _generate_batch(self, url: str, payload: dict, batch: list[int]):
        body = await self._post(url, "/generate", payload)
        items = _as_list(body, len(batch), url)
        return batch, [parse_completion(item, url) for item in items]

    async def _score_batch(self, url: str, payload: dict, batch: list[int], ids: list[int]):
        body = await self._post(url, "/generate", payload)
        items = _as_list(body, len(batch), url)
        scores = []
        for item in items:
            meta = item.get("meta_info") or {}
            positions = meta.get("output_token_ids_logprobs")
            if not positions or not positions[0]:
                raise SGLangError(f"{url}/generate: no output_token_ids_logprobs in the answer (meta_info keys: "
                                  f"{sorted(meta)}); does this server support token_ids_logprob?")
            got = {int(entry[1]): entry[0] for entry in positions[0]}
            missing = [t for t in ids if got.get(t) is None]
            if missing:
                raise SGLangError(f"{url}/generate: no logprob for token ids {missing}")
            usage = TokenUsage(
                prompt_tokens=int(meta.get("prompt_tokens", 0)),
                cached_tokens=int(meta.get("cached_tokens", 0) or 0),
                completion_tokens=int(meta.get("completion_tokens", 0)),
            )
            scores.append(TokenScores(logprobs={t: float(got[t]) for t in ids}, usage=usage))
        return batch, scores

    async def _client_for(self):
        if self._client is None:
            import httpx

            s = self.settings
            timeout = httpx.Timeout(s.timeout_s, connect=s.connect_timeout_s)
            limits = httpx.Limits(max_connections=s.concurrency * len(self.urls) + 4)
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
            self._client = httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False, headers=headers)
            self._semaphores = {u: asyncio.Semaphore(s.concurrency) for u in self.urls}
        return self._client

    async def _post(self, url: str, path: str, payload: dict) -> Any:
        return await self._request("POST", url, path, payload)

    async def _get_json(self, url: str, paths: Sequence[str]) -> Any:
        for path in paths:  # SGLang renamed some endpoints; try the current name, then the old one
            try:
                return await self._request("GET", url, path, None)
            except SGLangError as e:
                if "HTTP 404" not in str(e):
                    raise
        return None

    async def _request(self, method: str, url: str, path: str, payload: dict | None) -> Any:
        """One HTTP call with bounded retries on transport errors and 5xx; 4xx is final."""
        import httpx

        client = await self._client_for()
        s = self.settings
        attempts = s.retries + 1
        last: str = ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(min(s.backoff_s * 2 ** (attempt - 1), s.max_backoff_s))
            try:
                async with self._semaphores[url]:
                    resp = await client.request(method, url + path, json=payload)
            except httpx.TransportError as e:  # refused, reset, timeout, broken connection
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                log.warning("%s%s attempt %d/%d failed: %s", url, path, attempt + 1, attempts, last)
                continue
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
                log.warning("%s%s attempt %d/%d failed: %s", url, path, attempt + 1, attempts, last)
                continue
            if resp.status_code >= 400:
                raise SGLangError(f"{url}{path} rejected the request: HTTP {resp.status_code}: {resp.text[:500]}")
            try:
                return resp.json()
            except ValueError as e:
                raise SGLangError(f"{url}{path}: answer is not JSON: {resp.text[:200]!r}") from e
        raise SGLangError(
            f"SGLang server {url} failed on {path} after {attempts} attempts ({s.retries} retries with backoff): "
            f"{last}. Is the server still running? Check its log; finished problems are kept in the run "
            f"directory and a rerun resumes."
        )

    async def _await_health(self, timeout_s: float) -> None:
        import httpx

        client = await self._client_for()
        loop = asyncio.get_running_loop()
        for url in self.urls:
            deadline = loop.time() + timeout_s
            while True:
                try:
                    resp = await client.get(url + "/health")
                    if resp.status_code == 200:
                        break
                    last = f"HTTP {resp.status_code}"
                except httpx.TransportError as e:
                    last = f"{type(e).__name__}: {e}"
                if loop.time() > deadline:
                    raise SGLangError(f"SGLang server {url} is not healthy after {timeout_s:.0f} s ({last}); "
                                      f"start it first, or leave engine.<role>.urls empty to launch one")
                await asyncio.sleep(1.0)


def _as_list(body: Any, n: int, url: str) -> list[Mapping[str, Any]]:
    if isinstance(body, Mapping):
        body = [body]
    if not isinstance(body, list) or len(body) != n:
        got = len(body) if isinstance(body, list) else type(body).__name__
        raise SGLangError(f"{url}/generate: expected {n} results, got {got}")
    return body


_seed_warned = False


def _warn_on_collapsing_seeds(requests: Sequence[GenerationRequest]) -> None:
    """Equal prompts with equal seeds give equal samples under a seeded sampler: almost surely a bug."""
    global _seed_warned
    if _seed_warned:
        return
    seen = set()
    for r in requests:
        if r.params.temperature <= 0:
            continue
        key = (r.prompt, r.params.seed)
        if key in seen:
            _seed_warned = True
            log.warning("several samples of one prompt share sampling_seed=%d: they will be identical",
                        r.params.seed)
            return
        seen.add(key)


def _to_dict(cfg: Any) -> dict:
    if cfg is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise TypeError(f"expected a mapping or DictConfig, got {type(cfg).__name__}")
