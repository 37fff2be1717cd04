"""SGLangEngine against the SGLang wire-format double, backed by the real CPU engine, over real HTTP."""

from __future__ import annotations

import math

import pytest

from tests.sglang_double import SGLangDouble
from ttslab.engines.base import GenerationRequest, SamplingParams
from ttslab.engines.sglang import ClientSettings, SGLangEngine, SGLangError, shard_index
from ttslab.prompts import build_prompt

QUESTION = "What is 12 + 30? Explain briefly, then give the answer in \\boxed{}."
PROMPT = build_prompt("qwen2.5", QUESTION)
YES_PROMPT = build_prompt("qwen2.5", "Reply with exactly one word: yes")
STEP = SamplingParams(temperature=0.7, max_tokens=64, stop=("\n\n",), seed=1)


@pytest.fixture(scope="module")
def cpu_engine():
    llamacpp = pytest.importorskip("ttslab.engines.llamacpp")
    pytest.importorskip("llama_cpp")
    eng = llamacpp.LlamaCppEngine("embedded:qwen2.5-coder-0.5b", n_threads=2, max_sequences=8,
                                  n_ctx_per_sequence=1024)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def double(cpu_engine):
    with SGLangDouble(cpu_engine) as d:
        yield d


@pytest.fixture(scope="module")
def client(double):
    eng = SGLangEngine([double.url], settings=ClientSettings(retries=1, backoff_s=0.05))
    yield eng
    eng.close()


@pytest.mark.model
def test_step_finish_keeps_delimiter_and_matches_in_process(client, cpu_engine, double):
    (c,) = client.generate([GenerationRequest(PROMPT, STEP, affinity="p0")])
    assert c.finish == "step"
    assert c.text.endswith("\n\n")
    body = double.bodies[-1]
    assert body["sampling_params"][0]["no_stop_trim"] is True
    assert body["sampling_params"][0]["stop"] == ["\n\n"]
    assert body["sampling_params"][0]["sampling_seed"] == 1
    (local,) = cpu_engine.generate([GenerationRequest(PROMPT, STEP)])
    assert (c.text, c.finish, c.token_ids) == (local.text, local.finish, local.token_ids)


@pytest.mark.model
def test_eos_and_length_finishes(client):
    eos, length = client.generate([
        GenerationRequest(YES_PROMPT, SamplingParams(temperature=0.0, max_tokens=32, seed=0)),
        GenerationRequest(PROMPT, SamplingParams(temperature=0.0, max_tokens=4, seed=0)),
    ])
    assert eos.finish == "eos" and eos.usage.completion_tokens < 32
    assert length.finish == "length" and length.usage.completion_tokens == 4


@pytest.mark.model
def test_children_share_one_request_and_report_cached_tokens(client, double):
    n_before = len(double.bodies)
    reqs = [GenerationRequest(PROMPT, SamplingParams(temperature=1.0, max_tokens=8, seed=s), affinity="p0")
            for s in (11, 12, 13)]
    out = client.generate(reqs)
    assert len(double.bodies) == n_before + 1  # all children of one parent in one /generate request
    assert len(double.bodies[-1]["input_ids"]) == 3
    assert all(c.usage.prompt_tokens > 0 for c in out)
    # the first child prefills (from whatever the cache holds); its siblings reuse the prompt
    assert all(c.usage.cached_tokens >= c.usage.prompt_tokens - 1 for c in out[1:])
    (again,) = client.generate([reqs[0]])
    assert again.usage.cached_tokens > 0


@pytest.mark.model
def test_seeds_distinct_samples_and_reproducible(client):
    hot = SamplingParams(temperature=1.0, max_tokens=24, seed=0)
    a, b = client.generate([GenerationRequest(PROMPT, hot), GenerationRequest(PROMPT, _seed(hot, 7))])
    assert a.text != b.text
    (a2,) = client.generate([GenerationRequest(PROMPT, hot)])
    assert a2.text == a.text


@pytest.mark.model
def test_next_token_logprobs_and_tokenize_match_in_process(client, cpu_engine, double):
    ids = [cpu_engine.tokenize("+")[0], cpu_engine.tokenize("-")[0], cpu_engine.tokenize("Yes")[0]]
    prompts = [PROMPT, YES_PROMPT]
    remote = client.next_token_logprobs(prompts, ids, affinity=["p0", "p1"])
    body = double.bodies[-1]
    assert body["sampling_params"][0]["max_new_tokens"] == 1 and body["logprob_start_len"] == [-1, -1]
    served = double.scored[-1]  # what the engine behind the server computed: transported exactly
    assert [r.logprobs for r in remote] == [s.logprobs for s in served]
    # SGLang really decodes the one token it is asked for: completion_tokens is 1
    assert [(r.usage.prompt_tokens, r.usage.cached_tokens, r.usage.completion_tokens) for r in remote] == [
        (s.usage.prompt_tokens, s.usage.cached_tokens, 1) for s in served]
    # an independent in-process call agrees up to llama.cpp's batch/cache-dependent numerics
    local = cpu_engine.next_token_logprobs(prompts, ids)
    for r, l in zip(remote, local):
        assert set(r.logprobs) == set(ids)
        for t in ids:
            assert math.exp(r.logprobs[t]) == pytest.approx(math.exp(l.logprobs[t]), abs=2e-3)
    assert client.tokenize(QUESTION) == cpu_engine.tokenize(QUESTION)


@pytest.mark.model
def test_sharding_sends_each_problem_to_one_server(cpu_engine):
    with SGLangDouble(cpu_engine) as d0, SGLangDouble(cpu_engine) as d1:
        client = SGLangEngine([d0.url, d1.url])
        try:
            problems = [f"problem-{i}" for i in range(6)]
            assert len({shard_index(p, 2) for p in problems}) == 2  # both servers get work
            reqs = [GenerationRequest(build_prompt("qwen2.5", f"What is {i} + {i}?"),
                                      SamplingParams(temperature=1.0, max_tokens=2, seed=s), affinity=p)
                    for i, p in enumerate(problems) for s in range(2)]
            out = client.generate(reqs)
            assert len(out) == len(reqs) and all(c.usage.completion_tokens >= 1 for c in out)
            client.next_token_logprobs([r.prompt for r in reqs[::2]], [15], affinity=problems)
            for i, p in enumerate(problems):
                prompt = reqs[2 * i].prompt
                where = {k for k, d in enumerate((d0, d1)) for b in d.bodies
                         if prompt in [d._texts[tuple(ids)] for ids in b["input_ids"]]}
                assert where == {shard_index(p, 2)}, p
        finally:
            client.close()


@pytest.mark.model
def test_server_dying_mid_run_gives_clear_error(cpu_engine):
    with SGLangDouble(cpu_engine, die_after=1) as d:
        client = SGLangEngine([d.url], settings=ClientSettings(retries=2, backoff_s=0.05))
        try:
            req = GenerationRequest(PROMPT, SamplingParams(temperature=0.0, max_tokens=2))
            assert client.generate([req])[0].usage.completion_tokens == 2
            with pytest.raises(SGLangError, match=f"{d.url}.*after 3 attempts"):
                client.generate([req])
        finally:
            client.close()


def test_unreachable_server_retries_then_names_url():
    client = SGLangEngine(["http://127.0.0.1:9"], settings=ClientSettings(retries=2, backoff_s=0.01))
    try:
        with pytest.raises(SGLangError, match=r"http://127\.0\.0\.1:9 failed on /tokenize after 3 attempts"):
            client.generate([GenerationRequest("x", SamplingParams(max_tokens=1))])
    finally:
        client.close()


def test_hanging_server_times_out_with_clear_error():
    with SGLangDouble(None, hang=True) as d:
        client = SGLangEngine([d.url], settings=ClientSettings(retries=1, backoff_s=0.01, timeout_s=0.3))
        try:
            with pytest.raises(SGLangError, match="ReadTimeout"):
                client.generate([GenerationRequest("x", SamplingParams(max_tokens=1))])
            assert len(d.bodies) == 2  # first attempt + one retry
        finally:
            client.close()


def test_server_errors_are_retried_bad_requests_are_not():
    with SGLangDouble(None) as d:  # no engine behind it: every valid /generate answers 503
        client = SGLangEngine([d.url], settings=ClientSettings(retries=3, backoff_s=0.01))
        try:
            with pytest.raises(SGLangError, match="HTTP 503"):
                client.generate([GenerationRequest("x", SamplingParams(max_tokens=1))])
            assert len(d.bodies) == 4  # first attempt + 3 retries
            bad = {"text": ["a"], "sampling_params": [{}, {}]}  # 2 sampling_params for 1 prompt
            with pytest.raises(SGLangError, match="rejected the request: HTTP 400"):
                client._run(client._post(d.url, "/generate", bad))
            assert len(d.bodies) == 5  # not retried
        finally:
            client.close()


def test_batches_keep_children_together_and_respect_max_batch():
    client = SGLangEngine(["http://127.0.0.1:1", "http://127.0.0.1:2"], settings=ClientSettings(max_batch=4))
    try:
        items = [(f"prompt-{i // 3}", f"prob-{i // 6}") for i in range(18)]  # 6 prompts x 3 children
        batches = client._batches(items)
        assert sorted(i for _, b in batches for i in b) == list(range(18))
        for url, b in batches:
            assert len({items[i][0] for i in b}) * 3 == len(b)  # whole groups only
            assert len(b) <= 4 or len({items[i][0] for i in b}) == 1
            assert {client._url_for(items[i][1], items[i][0]) for i in b} == {url}
    finally:
        client.close()


def test_sync_facade_works_inside_a_running_event_loop():
    import asyncio

    async def notebook_cell():  # Jupyter runs cells inside a live loop
        client = SGLangEngine(["http://127.0.0.1:9"], settings=ClientSettings(retries=0))
        try:
            with pytest.raises(SGLangError):
                client.tokenize("x")
        finally:
            client.close()

    asyncio.run(notebook_cell())


def test_rejects_bad_settings_naming_the_key():
    with pytest.raises(ValueError, match="engine.max_batch=0"):
        ClientSettings(max_batch=0)
    with pytest.raises(ValueError, match="must start with http"):
        SGLangEngine(["127.0.0.1:30000"])


def _seed(p: SamplingParams, seed: int) -> SamplingParams:
    from dataclasses import replace

    return replace(p, seed=seed)


# ----- issue 10: what SGLang's own source says would break a first GPU run ---------------------------------

LLAMA_PROMPT = build_prompt("llama3", "What is 1+1?")  # starts with the BOS text <|begin_of_text|>


def test_prompts_travel_as_token_ids_so_bos_is_not_doubled():
    # (2) /generate with `text` tokenizes with special tokens added: a prompt that starts with the BOS text
    # would reach the model with two BOS tokens. The client sends the ids of /tokenize (nothing added).
    with SGLangDouble(None) as d:
        client = SGLangEngine([d.url], settings=ClientSettings(retries=0))
        try:
            with pytest.raises(SGLangError, match="HTTP 503"):  # no engine behind this double
                client.generate([GenerationRequest(LLAMA_PROMPT, STEP)])
            with pytest.raises(SGLangError, match="HTTP 503"):
                client.next_token_logprobs([LLAMA_PROMPT], [1, 2])
        finally:
            client.close()
    expected = d.tokenize({"prompt": LLAMA_PROMPT, "add_special_tokens": False})["tokens"]
    assert len(d.bodies) == 2
    for body in d.bodies:
        assert "text" not in body
        assert body["input_ids"] == [expected]


def test_max_new_tokens_is_clamped_to_the_context_left():
    # (4) qwen2.5-math-7b-instruct has 4096 tokens of context and the CoT preset asks for 8192 new tokens:
    # SGLang answers 400 (final). The client sends what fits; a prompt that fills the context ends at once.
    with SGLangDouble(None, context_length=100) as d:
        client = SGLangEngine([d.url], settings=ClientSettings(retries=0), context_length=4096)
        try:
            with pytest.raises(SGLangError, match="HTTP 503"):  # i.e. not 400: the request was accepted
                client.generate([GenerationRequest("abc", SamplingParams(max_tokens=8192))])
            (c,) = client.generate([GenerationRequest("y" * 100, SamplingParams(max_tokens=8192))])
        finally:
            client.close()
    assert len(d.bodies) == 1
    assert d.bodies[0]["sampling_params"][0]["max_new_tokens"] == 100 - 3  # server's max_model_len < config's
    assert c.finish == "length" and c.text == "" and c.usage.prompt_tokens == 100


def test_config_context_length_clamps_before_the_server_reports_one():
    with SGLangDouble(None, context_length=10**6) as d:
        client = SGLangEngine([d.url], settings=ClientSettings(retries=0), context_length=4096)
        try:
            with pytest.raises(SGLangError, match="HTTP 503"):
                client.generate([GenerationRequest("abcd", SamplingParams(max_tokens=8192))])
        finally:
            client.close()
    assert d.bodies[0]["sampling_params"][0]["max_new_tokens"] == 4096 - 4


@pytest.mark.parametrize("version, ok", [("0.5.23", True), ("0.5.9", True), ("0.6.0rc1", True),
                                         ("0.5.3", False), ("0.4.10.post2", False), ("dev", False)])
def test_server_version_floor(version, ok):
    # (6) ttslab needs /tokenize and the radix cache in deterministic mode: SGLang >= 0.5.9.
    from ttslab.engines.sglang import MIN_SGLANG_VERSION

    assert MIN_SGLANG_VERSION == "0.5.9"
    with SGLangDouble(None, version=version) as d:
        client = SGLangEngine([d.url], settings=ClientSettings(retries=0))
        try:
            if ok:
                client.check_server_version()
            else:
                with pytest.raises(SGLangError, match=f"{d.url}.*(runs SGLang {version}|no SGLang version).*0.5.9"):
                    client.check_server_version()
        finally:
            client.close()


def test_api_key_is_sent_and_required():
    with SGLangDouble(None, api_key="s3cret") as d:
        good = SGLangEngine([d.url], settings=ClientSettings(retries=0), api_key="s3cret")
        bad = SGLangEngine([d.url], settings=ClientSettings(retries=0))
        try:
            assert good.tokenize("ab") == [97, 98]
            good.check_server_version()
            with pytest.raises(SGLangError, match="HTTP 401"):
                bad.tokenize("ab")
        finally:
            good.close()
            bad.close()


# ----- issue 19 (2): the model's context is GET /v1/models' max_model_len, not the tokenizer's model_max_length ---

def test_context_comes_from_v1_models_not_from_the_tokenizers_model_max_length():
    # DeepSeek-R1-Distill: tokenizer_config.json says model_max_length 16384 (what /tokenize reports as
    # max_model_len), the model takes 131072 (what /v1/models reports). The study asks for 32768 new tokens.
    with SGLangDouble(None, context_length=131072, model_max_length=16384) as d:
        client = SGLangEngine([d.url], settings=ClientSettings(retries=0), context_length=131072)
        try:
            assert d.tokenize({"prompt": "x", "add_special_tokens": False})["max_model_len"] == 16384
            with pytest.raises(SGLangError, match="HTTP 503"):  # no engine behind it: the request is what counts
                client.generate([GenerationRequest("abc", SamplingParams(max_tokens=32768))])
            assert client.server_contexts == {d.url: 131072}
        finally:
            client.close()
    assert d.bodies[0]["sampling_params"][0]["max_new_tokens"] == 32768


def test_the_server_context_is_fetched_once_per_server_and_a_lora_card_is_skipped():
    with SGLangDouble(None, context_length=4096) as d:
        cards = d.models()
        d.models = lambda: {"object": "list", "data": [
            {"id": "adapter", "object": "model", "parent": d.model_path, "max_model_len": None}, *cards["data"]]}
        client = SGLangEngine([d.url], settings=ClientSettings(retries=0))
        try:
            assert client.check_context() == {d.url: 4096}
            d.models = lambda: {"object": "list", "data": []}  # not asked again
            with pytest.raises(SGLangError, match="HTTP 503"):
                client.generate([GenerationRequest("ab", SamplingParams(max_tokens=8192))])
        finally:
            client.close()
    assert d.bodies[0]["sampling_params"][0]["max_new_tokens"] == 4096 - 2


def test_a_router_url_is_refused_with_what_to_use_instead(tmp_path):
    with pytest.raises(ValueError, match=r"engine.policy.router=true is not supported.*one server per GPU"):
        SGLangEngine.from_config({"policy": {"urls": ["http://127.0.0.1:9"], "router": True}}, {}, "policy",
                                 tmp_path)


@pytest.mark.model
def test_a_clamped_request_says_what_was_sent(cpu_engine):
    # the completion carries the limit actually sent, so the record keeps the clamp (asked vs sent)
    with SGLangDouble(cpu_engine, context_length=len(cpu_engine.tokenize(PROMPT)) + 6) as d:
        client = SGLangEngine([d.url], settings=ClientSettings(retries=0))
        try:
            clamped, fits = client.generate([
                GenerationRequest(PROMPT, SamplingParams(temperature=0.0, max_tokens=64, seed=0)),
                GenerationRequest(PROMPT, SamplingParams(temperature=0.0, max_tokens=4, seed=0)),
            ])
        finally:
            client.close()
    assert [sp["max_new_tokens"] for sp in d.bodies[0]["sampling_params"]] == [6, 4]
    assert clamped.max_new_tokens_sent == 6 and clamped.usage.completion_tokens <= 6
    assert fits.max_new_tokens_sent is None


def test_a_launched_server_reports_the_context_it_was_started_with(tmp_path):
    # engine.launch.context_length becomes --context-length; the client reads the server's context back from
    # GET /v1/models (the double, as a process, reports its --context-length there as SGLang does)
    import os
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    cfg = {"launch": {"python": sys.executable, "module": "tests.sglang_double", "require_gpu": False,
                      "startup_timeout_s": 60, "env": env, "context_length": 4096},
           "policy": {"mem_fraction_static": 0.5}, "connect_timeout_s": 1}
    model = {"name": "p", "hf_id": "ttslab/test-double", "context_length": 131072,
             "sglang": {"model_path": None, "tp_size": 1, "mem_fraction_static": 0.5, "extra_args": []}}
    engine = SGLangEngine.from_config(cfg, model, "policy", tmp_path)
    try:
        assert engine.server_contexts == {engine.urls[0]: 4096}
        assert engine.context_length == 4096  # the launch's, over the model config's 131072
    finally:
        engine.close()
