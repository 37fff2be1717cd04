"""The real-SGLang tier: a real SGLang 0.5.23 server on CPU, started by ttslab's own launcher.

Environment: `bash .ci/sglang.sh` builds it (a venv with SGLang pinned, the embedded GGUF converted to a
safetensors folder, the plain-torch `sgl_kernel` stand-in in tests/sglang_cpu/) and prints the line
`export TTSLAB_SGLANG_PYTHON=...`. Without that variable every test here skips saying so (CI forbids skips).

One server for the module (30-60 s to start), loopback only, with the launcher's GPU defaults overridden:
`--device cpu`, attention backend `torch_native` (no deterministic mode: it refuses that backend), no GPU
check, SGLang's CPU engine. Consequence, stated where it matters: on CPU **`sampling_seed` is ignored**
(it needs `--enable-deterministic-inference`), so sampled results are compared as distributions and
shapes, never byte for byte; greedy decoding is compared token for token where the two engines share
weights exactly.

What the wire-format double (tests/sglang_double.py) is trusted for elsewhere is checked here on the same
requests: the fields, their shapes, tokenization, finish reasons and the 400 on an over-long request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.model, pytest.mark.sglang_real]

REPO = Path(__file__).resolve().parents[1]
PYTHON = os.environ.get("TTSLAB_SGLANG_PYTHON")
HF_ID = "Qwen/Qwen2.5-Coder-0.5B-Instruct"
STAND_IN = REPO / "tests" / "sglang_cpu"
CONTEXT = 2048


def _model_dir() -> Path:
    if os.environ.get("TTSLAB_SGLANG_MODEL"):
        return Path(os.environ["TTSLAB_SGLANG_MODEL"])
    # <venv>/bin/python -> <venv>/models/...; not resolved: the venv's python is a symlink to the base one
    return Path(os.path.abspath(PYTHON)).parents[1] / "models" / HF_ID if PYTHON else Path("/nonexistent")


def engine_cfg() -> dict:
    """conf/engine/sglang.yaml with the launcher's GPU defaults overridden for SGLang's CPU backend."""
    return {
        "name": "sglang",
        "policy": {"gpu_share": None, "mem_fraction_static": None},
        "prm": {"gpu_share": None, "mem_fraction_static": None},
        "connect_timeout_s": 10,
        "retries": 1,
        "backoff_s": 0.5,
        "launch": {
            "python": PYTHON,
            "require_gpu": False,
            "deterministic": False,  # refuses torch_native; Triton does not run on CPU
            "attention_backend": "torch_native",
            "random_seed": 0,
            "context_length": CONTEXT,
            "schedule_policy": "lpm",
            "startup_timeout_s": 300,
            "api_key": True,
            "env": {"SGLANG_USE_CPU_ENGINE": "1", "PYTHONPATH": str(STAND_IN), "OMP_NUM_THREADS": "2"},
            "extra_args": ["--device", "cpu", "--disable-overlap-schedule", "--max-total-tokens", "8192",
                           "--max-running-requests", "8", "--sleep-on-idle"],
        },
    }


MODEL_CFG = {"name": "qwen2.5-coder-0.5b-cpu", "hf_id": HF_ID, "params": 4.94e8, "context_length": 32768,
             "sglang": {"model_path": None, "tp_size": 1, "mem_fraction_static": None, "extra_args": []}}


def start_server(run_dir: Path):
    from ttslab.engines.sglang_server import launch_for_role

    model = {**MODEL_CFG, "sglang": {**MODEL_CFG["sglang"], "model_path": str(_model_dir())}}
    t0 = time.monotonic()
    (server,) = launch_for_role(engine_cfg(), model, "policy", run_dir)
    server.startup_s = time.monotonic() - t0
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not PYTHON:
        pytest.skip("TTSLAB_SGLANG_PYTHON is not set: run `bash .ci/sglang.sh` (a CPU SGLang environment, "
                    "~6 min, ~7 GB) and export the variable it prints")
    if not (_model_dir() / "config.json").exists():
        pytest.skip(f"{_model_dir()} holds no converted model: rerun `bash .ci/sglang.sh`")
    s = start_server(tmp_path_factory.mktemp("sglang-real"))
    print(f"\nreal SGLang server up in {s.startup_s:.0f} s at {s.url}")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=600, headers={"Authorization": f"Bearer {server.api_key}"},
                      trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def client(server):
    from ttslab.engines.sglang import SGLangEngine

    eng = SGLangEngine.from_config({**engine_cfg(), "policy": {"urls": [server.url], "api_key": server.api_key}},
                                   MODEL_CFG, "policy", server.log_path.parent)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def cpu_engine():
    pytest.importorskip("llama_cpp")
    from ttslab.engines.llamacpp import LlamaCppEngine

    eng = LlamaCppEngine("embedded:qwen2.5-coder-0.5b", n_threads=2, max_sequences=8, n_ctx_per_sequence=1024)
    yield eng
    eng.close()


def prompt(question: str) -> str:
    from ttslab.prompts import build_prompt

    return build_prompt("qwen2.5", question)


Q = prompt("What is 12 + 30? Explain in two short steps, then give the answer in \\boxed{}.")


def generate(http, body: dict):
    r = http.post("/generate", json=body)
    assert r.status_code == 200, r.text[:500]
    return r.json()


# ----- the fields ttslab reads ------------------------------------------------------------------------------


def test_version_key_and_model_info(server, http):
    from ttslab.engines.sglang import TESTED_SGLANG_VERSION, check_version

    info = http.get("/server_info").json()
    assert info["version"] == TESTED_SGLANG_VERSION
    check_version(info["version"], server.url)
    assert http.get("/model_info").json()["model_path"].endswith(HF_ID)
    assert httpx.get(server.url + "/server_info", trust_env=False).status_code == 401  # the run's key is needed
    assert httpx.get(server.url + "/health", trust_env=False, timeout=60).status_code == 200  # probes are not


def test_fields_ttslab_reads_have_the_expected_shapes(http):
    tok = http.post("/tokenize", json={"prompt": [Q, "Yes"], "add_special_tokens": False}).json()
    assert isinstance(tok["tokens"], list) and all(isinstance(t, int) for t in tok["tokens"][0])
    assert tok["count"] == [len(t) for t in tok["tokens"]] and tok["max_model_len"] == CONTEXT
    ids = tok["tokens"][0]
    out = generate(http, {"input_ids": [ids, ids], "sampling_params": [
        {"temperature": 0.0, "max_new_tokens": 48, "stop": ["\n\n"], "no_stop_trim": True},
        {"temperature": 0.0, "max_new_tokens": 3}]})
    assert isinstance(out, list) and len(out) == 2
    step, short = out
    meta = step["meta_info"]
    assert {"id", "finish_reason", "prompt_tokens", "completion_tokens", "cached_tokens"} <= set(meta)
    assert meta["prompt_tokens"] == len(ids) and meta["completion_tokens"] == len(step["output_ids"])
    assert meta["finish_reason"] == {"type": "stop", "matched": "\n\n"} and step["text"].endswith("\n\n")
    assert short["meta_info"]["finish_reason"] == {"type": "length", "length": 3}
    scored = generate(http, {"input_ids": [ids], "return_logprob": [True], "logprob_start_len": [-1],
                             "token_ids_logprob": [[tok["tokens"][1][0], 2753]],
                             "sampling_params": [{"temperature": 1.0, "top_p": 1.0, "top_k": -1, "max_new_tokens": 1}]})
    (position,) = scored[0]["meta_info"]["output_token_ids_logprobs"]
    assert [entry[1] for entry in position] == [tok["tokens"][1][0], 2753]
    assert all(isinstance(entry[0], float) and entry[0] <= 0 for entry in position)


def test_eos_finish_is_the_token_id(http):
    ids = http.post("/tokenize", json={"prompt": prompt("Reply with exactly one word: yes"),
                                        "add_special_tokens": False}).json()["tokens"]
    (out,) = generate(http, {"input_ids": [ids], "sampling_params": [{"temperature": 0.0, "max_new_tokens": 16}]})
    matched = out["meta_info"]["finish_reason"]
    assert matched["type"] == "stop" and isinstance(matched["matched"], int)  # EOS: an int, not a str


# ----- the double answers as the real server does ------------------------------------------------------------


def test_double_matches_the_real_server_on_the_same_requests(http, cpu_engine):
    from tests.sglang_double import SGLangDouble

    with SGLangDouble(cpu_engine, model_path=HF_ID, context_length=CONTEXT) as d, \
            httpx.Client(base_url=d.url, timeout=600, trust_env=False) as fake:
        for texts in ([Q], [Q, "Yes", "<|im_start|>assistant\n"]):
            body = {"prompt": texts, "add_special_tokens": False}
            real, double = http.post("/tokenize", json=body).json(), fake.post("/tokenize", json=body).json()
            assert double == real  # the same tokenizer behind both: ids, counts, context
        ids = real["tokens"][0]
        requests = [
            {"input_ids": [ids], "sampling_params": [{"temperature": 0.0, "max_new_tokens": 64, "stop": ["\n\n"],
                                                      "no_stop_trim": True}]},
            {"input_ids": [ids], "sampling_params": [{"temperature": 0.0, "max_new_tokens": 64, "stop": ["\n\n"]}]},
            {"input_ids": [ids], "sampling_params": [{"temperature": 0.0, "max_new_tokens": 4}]},
            {"input_ids": [ids], "return_logprob": [True], "logprob_start_len": [-1], "token_ids_logprob": [[9454, 2753]],
             "sampling_params": [{"temperature": 1.0, "top_p": 1.0, "top_k": -1, "max_new_tokens": 1}]},
        ]
        for body in requests:
            (r,) = generate(http, body)
            (f,) = generate(fake, body)
            assert set(f) <= set(r) and set(f["meta_info"]) <= set(r["meta_info"]), body
            for key, value in f["meta_info"].items():
                assert type(value) is type(r["meta_info"][key]), key
            assert f["meta_info"]["finish_reason"]["type"] == r["meta_info"]["finish_reason"]["type"]
            assert f["meta_info"]["prompt_tokens"] == r["meta_info"]["prompt_tokens"]
            if "stop" in body["sampling_params"][0]:  # trimmed or kept, the same way
                assert f["text"].endswith("\n\n") == r["text"].endswith("\n\n")
            if "token_ids_logprob" in body:
                rl = [e[1] for e in r["meta_info"]["output_token_ids_logprobs"][0]]
                assert [e[1] for e in f["meta_info"]["output_token_ids_logprobs"][0]] == rl
        too_long = {"input_ids": [ids], "sampling_params": [{"max_new_tokens": 10 * CONTEXT}]}
        assert http.post("/generate", json=too_long).status_code == fake.post("/generate", json=too_long).status_code == 400


# ----- the client on the real server ------------------------------------------------------------------------


def test_siblings_and_children_reuse_the_prefix(client):
    from ttslab.engines.base import GenerationRequest, SamplingParams

    params = [SamplingParams(temperature=0.7, max_tokens=24, stop=("\n\n",), seed=i) for i in range(4)]
    first = client.generate([GenerationRequest(Q, p, affinity="p") for p in params])
    n_prompt = first[0].usage.prompt_tokens
    again = client.generate([GenerationRequest(Q, p, affinity="p") for p in params])
    assert all(c.usage.cached_tokens >= n_prompt - 1 for c in again)  # the radix cache kept the prompt
    step = next(c for c in first if c.finish == "step")
    children = client.generate([GenerationRequest(Q + step.text, p, affinity="p") for p in params[:2]])
    # the parent's prompt at least (the step boundary may re-tokenize differently: one token of slack)
    assert all(c.usage.cached_tokens >= n_prompt - 1 for c in children)
    print(f"\ncached_tokens: prompt {n_prompt}, repeats {[c.usage.cached_tokens for c in again]}, children of a "
          f"{step.usage.completion_tokens}-token step {[c.usage.cached_tokens for c in children]}")


def test_bos_text_reaches_the_model_once(http, client):
    # .ci/sglang.sh gives the test model's tokenizer Llama-3's habit of prepending its BOS: a prompt that
    # already starts with the BOS text gets a second one from /generate `text`.
    cfg = json.loads((_model_dir() / "tokenizer_config.json").read_text())
    bos = cfg.get("bos_token")
    bos = bos.get("content") if isinstance(bos, dict) else bos
    assert bos, "the test model's tokenizer has no BOS token"
    text = bos + "Hello"
    (bos_id,) = http.post("/tokenize", json={"prompt": bos, "add_special_tokens": False}).json()["tokens"]
    added = http.post("/tokenize", json={"prompt": "Hello", "add_special_tokens": True}).json()["tokens"]
    assert added[0] == bos_id  # the server's tokenizer adds a BOS, as Llama-3's does
    with_text = generate(http, {"text": [text], "return_logprob": [True], "logprob_start_len": [0],
                                "sampling_params": [{"temperature": 0.0, "max_new_tokens": 1}]})
    seen_by_text = [e[1] for e in with_text[0]["meta_info"]["input_token_logprobs"]]
    ids = client._run(client._token_ids(client.urls[0], [text]))[0]
    with_ids = generate(http, {"input_ids": [ids], "return_logprob": [True], "logprob_start_len": [0],
                               "sampling_params": [{"temperature": 0.0, "max_new_tokens": 1}]})
    seen_by_ids = [e[1] for e in with_ids[0]["meta_info"]["input_token_logprobs"]]
    print(f"\nBOS {bos!r} = {bos_id}; via text: {seen_by_text[:4]}...; via ttslab's ids: {seen_by_ids[:4]}...")
    assert seen_by_ids.count(bos_id) == 1 and seen_by_ids[0] == bos_id
    assert seen_by_text[:2] == [bos_id, bos_id]  # the defect ttslab avoids
    from ttslab.engines.base import GenerationRequest, SamplingParams

    (c,) = client.generate([GenerationRequest(text, SamplingParams(temperature=0.0, max_tokens=2))])
    assert c.usage.prompt_tokens == len(seen_by_ids)


def test_over_long_request_is_clamped_not_refused(http, client):
    from ttslab.engines.base import GenerationRequest, SamplingParams

    # The study's 8192 new tokens on a server with a 2048-token context (as qwen2.5-math-7b-instruct's 4096).
    yes = prompt("Reply with exactly one word: yes")
    n = len(client.tokenize(yes))
    raw = http.post("/generate", json={"text": yes, "sampling_params": {"max_new_tokens": 8192}})
    assert raw.status_code == 400  # what ttslab used to get, and treated as final
    (c,) = client.generate([GenerationRequest(yes, SamplingParams(temperature=0.0, max_tokens=8192, seed=0))])
    assert c.usage.prompt_tokens == n and 0 < c.usage.completion_tokens <= CONTEXT - n
    assert c.finish == "eos"


# ----- ttslab run engine=sglang against the in-process engine ------------------------------------------------

TINY = [
    "dataset.limit=1", "progress=false", "prm=cpu_judge",
    "plan=[{name:cot,max_tokens:24},{name:best_of_n,budgets:[4],max_tokens:40},"
    "{name:beam_search,budgets:[4],beam_width:2,max_tokens:48,max_step_tokens:24,max_steps:2}]",
]


def ttslab(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "ttslab.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def over(server) -> list[str]:
    return ["engine=sglang", f"engine.policy.urls=['{server.url}']", f"engine.prm.urls=['{server.url}']",
            f"engine.policy.api_key='{server.api_key}'", f"engine.prm.api_key='{server.api_key}'",
            "engine.retries=1", "engine.backoff_s=0.5"]


def same_shape(a, b, where: str = "record") -> None:
    """Same keys all the way down and the same value types where both sides have a value (None = no answer)."""
    if a is None or b is None:
        return
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, sorted(set(a) ^ set(b)))
        for k in a:
            same_shape(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list), where
        if a and b:
            same_shape(a[0], b[0], f"{where}[0]")
    elif isinstance(a, (int, float)) and not isinstance(a, bool):
        assert isinstance(b, (int, float)) and not isinstance(b, bool), where
    else:
        assert type(a) is type(b), (where, type(a).__name__, type(b).__name__)


def test_bon_and_beam_records_match_the_in_process_engine(server, tmp_path):
    from ttslab.results import read_records

    t0 = time.monotonic()
    local = ttslab("run", *TINY, "engine.max_sequences=8", "engine.n_ctx_per_sequence=1024", "engine.n_threads=2",
                   f"run_dir={tmp_path / 'cpu'}")
    assert local.returncode == 0, local.stderr[-3000:]
    t1 = time.monotonic()
    remote = ttslab("run", *TINY, *over(server), f"run_dir={tmp_path / 'sglang'}")
    assert remote.returncode == 0, remote.stderr[-3000:]
    print(f"\nin-process run {t1 - t0:.0f} s, engine=sglang run {time.monotonic() - t1:.0f} s")
    a = {(r["method"], r["budget"]): r for r in read_records(tmp_path / "cpu")}
    b = {(r["method"], r["budget"]): r for r in read_records(tmp_path / "sglang")}
    assert set(a) == set(b) == {("cot", 1), ("best_of_n", 4), ("beam_search", 4)}
    for key in a:
        ra, rb = a[key], b[key]
        assert rb["engine"] == "sglang" and ra["engine"] == "llamacpp"
        same_shape({k: v for k, v in ra.items() if k != "engine"}, {k: v for k, v in rb.items() if k != "engine"})
        assert len(ra["candidates"]) == len(rb["candidates"])
        for c in rb["candidates"]:
            assert c["finish"] in ("step", "eos", "length") and c["text"] == "".join(c["steps"])
            if key[0] == "cot":
                assert c["step_scores"] is None and ra["candidates"][0]["step_scores"] is None  # no PRM
            else:
                assert c["step_scores"] and all(0.0 <= s <= 1.0 for s in c["step_scores"])
            assert c["usage"]["prompt_tokens"] >= c["usage"]["cached_tokens"] >= 0
    # Greedy CoT: the same weights (dequantized GGUF vs llama.cpp's quantized kernels): same opening words.
    cot_a, cot_b = a[("cot", 1)]["candidates"][0]["text"], b[("cot", 1)]["candidates"][0]["text"]
    print(f"greedy CoT in-process: {cot_a[:60]!r}\ngreedy CoT over SGLang: {cot_b[:60]!r}")
    assert cot_a.split()[:2] == cot_b.split()[:2]
    # Sampled Best-of-N (sampling_seed is ignored on CPU): distinct samples, like the in-process engine.
    assert len({c["text"] for c in b[("best_of_n", 4)]["candidates"]}) > 1
    assert b[("best_of_n", 4)]["usage"]["policy"]["cached_tokens"] > 0  # siblings shared the prompt
    beam = b[("beam_search", 4)]
    assert beam["tree"] and beam["usage"]["prm"]["prompt_tokens"] > 0 and beam["beam_width"] == 2


def test_v1_models_gives_the_context_the_client_clamps_to(http, client):
    """Issue 19 (2): the model's context is `GET /v1/models`' max_model_len (SGLang's model_config.context_len,
    here --context-length); /tokenize's max_model_len is the tokenizer's model_max_length, which the client no
    longer reads. The double's card carries the real card's keys, with the same types."""
    from tests.sglang_double import SGLangDouble

    real = http.get("/v1/models").json()
    (card,) = [c for c in real["data"] if c.get("max_model_len") is not None]
    assert card["max_model_len"] == CONTEXT
    assert client.check_context() == {client.urls[0]: CONTEXT}
    with SGLangDouble(None, model_path=HF_ID, context_length=CONTEXT) as d:
        fake = d.models()
    assert set(fake) == set(real) and fake["object"] == real["object"] == "list"
    assert set(fake["data"][0]) == set(card)
    for key, value in fake["data"][0].items():
        assert value is None or type(value) is type(card[key]), key


def test_killed_server_gives_a_clear_error_and_the_run_resumes(server, tmp_path):
    """Last in the module: it kills the module's server, then starts a fresh one for the resume."""
    from ttslab.results import read_records

    run_dir = tmp_path / "run"
    plan = ["dataset.limit=2", "progress=false", "prm=none",
            "plan=[{name:cot,max_tokens:8},{name:best_of_n,budgets:[2],max_tokens:32}]", f"run_dir={run_dir}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "ttslab.cli", "run", *plan, *over(server)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records = run_dir / "records.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if records.exists() and records.read_text().strip():
            break
        time.sleep(0.2)
    os.killpg(server.proc.pid, signal.SIGKILL)  # the server dies mid-run
    _, err = proc.communicate(timeout=600)
    server.stop()
    kept = read_records(run_dir)
    assert proc.returncode != 0, "the run finished before the server was killed"
    assert f"SGLang server {server.url} failed on /" in err and "rerun resumes" in err, err[-2000:]
    assert sorted(r["method"] for r in kept) == ["cot", "cot"]
    fresh = start_server(tmp_path / "second")
    try:
        again = ttslab("run", *plan, *over(fresh))
        assert again.returncode == 0, again.stderr[-3000:]
    finally:
        fresh.stop()
    done = read_records(run_dir)
    assert sorted(r["method"] for r in done) == ["best_of_n", "best_of_n", "cot", "cot"]
    assert [r for r in done if r["method"] == "cot"] == kept  # finished work was not redone
