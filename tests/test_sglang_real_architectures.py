"""Every study architecture through a real SGLang 0.5.23 server on CPU, with the study's real tokenizers.

The checkpoints are tiny random-weight models of the real architecture classes carrying the real tokenizers
(tests/sglang_cpu/make_tiny_checkpoints.py, made by .ci/sglang.sh next to the converted Qwen model of
tests/test_sglang_real.py, which covers the Qwen2.5 tokenizer): Mistral v0.1 (the Math-Shepherd PRM),
Llama-3.1 (the RLHFlow PRMs and the Llama policies), R1-Distill-Qwen (the R1 policies). One server per
checkpoint, started by ttslab's own launcher; each PRM format and policy family goes through ttslab's real
client: /tokenize, /generate and the score read-out. Scores are random; the ids the server receives, their
positions, the special tokens and the limits are the real ones, and they are checked against
tests/golden/token_ids.json (the ids the study's references feed).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.test_sglang_real import PYTHON, engine_cfg

pytestmark = [pytest.mark.model, pytest.mark.sglang_real]

GOLDEN = json.loads((Path(__file__).parent / "golden" / "token_ids.json").read_text())
QUESTION, STEPS = GOLDEN["question"], tuple(GOLDEN["steps"])


def tiny_root() -> Path:
    if os.environ.get("TTSLAB_TINY_CHECKPOINTS"):
        return Path(os.environ["TTSLAB_TINY_CHECKPOINTS"])
    return Path(os.path.abspath(PYTHON)).parents[1] / "models" / "tiny" if PYTHON else Path("/nonexistent")


class Served:
    """One real server for a tiny checkpoint, ttslab's client on it, and every payload the client sent."""

    def __init__(self, hub_id: str, run_dir: Path, context_length: int | None):
        from ttslab.engines.sglang import SGLangEngine
        from ttslab.engines.sglang_server import launch_for_role

        folder = tiny_root() / hub_id
        if not (folder / "config.json").exists():
            pytest.skip(f"{folder} holds no tiny checkpoint: rerun `bash .ci/sglang.sh`")
        cfg = engine_cfg()
        cfg["launch"] = {**cfg["launch"], "context_length": context_length}
        model = {"name": hub_id, "hf_id": hub_id, "params": 1e6, "context_length": context_length,
                 "sglang": {"model_path": str(folder), "tp_size": 1, "mem_fraction_static": None, "extra_args": []}}
        t0 = time.monotonic()
        (self.server,) = launch_for_role(cfg, model, "policy", run_dir)
        self.startup_s = time.monotonic() - t0
        self.folder = folder
        self.client = SGLangEngine([self.server.url], api_key=self.server.api_key, name=f"tiny-{hub_id}",
                                   context_length=context_length)
        self.sent: list[tuple[str, dict]] = []
        post = self.client._post

        async def recording(url, path, payload):  # observe what ttslab puts on the wire, unchanged
            self.sent.append((path, payload))
            return await post(url, path, payload)

        self.client._post = recording
        print(f"\nreal SGLang server for {hub_id} up in {self.startup_s:.0f} s")

    def generated_ids(self) -> list[list[int]]:
        return [ids for path, p in self.sent if path == "/generate" for ids in p["input_ids"]]

    def close(self):
        self.client.close()
        self.server.stop()


@pytest.fixture(scope="module")
def need_sglang():
    if not PYTHON:
        pytest.skip("TTSLAB_SGLANG_PYTHON is not set: run `bash .ci/sglang.sh` and export the variable it prints")


def served(hub_id, tmp_path_factory, context_length=2048):
    s = Served(hub_id, tmp_path_factory.mktemp("tiny"), context_length)
    return s


@pytest.fixture(scope="module")
def mistral(need_sglang, tmp_path_factory):
    s = served("peiyi9979/math-shepherd-mistral-7b-prm", tmp_path_factory)
    yield s
    s.close()


@pytest.fixture(scope="module")
def llama(need_sglang, tmp_path_factory):
    s = served("meta-llama/Llama-3.1-8B-Instruct", tmp_path_factory)
    yield s
    s.close()


@pytest.fixture(scope="module")
def r1(need_sglang, tmp_path_factory):
    s = served("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", tmp_path_factory, context_length=None)
    yield s
    s.close()


def prm_on(name: str, engine):
    from ttslab.config import compose
    from ttslab.rewards import build_reward_model

    return build_reward_model(compose([f"prm={name}"]).prm, lambda spec: engine)


def score(prm) -> list[float]:
    from ttslab.rewards.base import ScoreRequest

    (result,) = prm.score_all([ScoreRequest(question=QUESTION, steps=STEPS, affinity="p")])
    assert len(result.scores) == len(STEPS) and all(0.0 <= p <= 1.0 for p in result.scores)
    assert result.usage.prompt_tokens > 0
    return result.scores


# ------------------------------------------------------------------------------------------ Mistral


def test_math_shepherd_reaches_the_model_with_exactly_one_bos(mistral):
    g = GOLDEN["math_shepherd"]
    prm = prm_on("math-shepherd-mistral-7b", mistral.client)
    assert (prm.good_id, prm.bad_id) == (648, 387)  # the real server's /tokenize of "+" and "-"
    mistral.sent.clear()
    scores = score(prm)
    sent = mistral.generated_ids()
    tags = [i for i, t in enumerate(g["ids"]) if t == g["step_tag_id"]]
    assert sent == [g["ids"][: t + 1] for t in tags]  # each step's input ends at its " ки", as the reference's
    assert all(ids[0] == 1 and ids.count(1) == 1 for ids in sent)
    for path, payload in mistral.sent:
        if path == "/generate":
            assert payload["token_ids_logprob"] == [[648, 387]] * len(payload["input_ids"])
    print(f"Math-Shepherd on the real server: {len(sent)} inputs, each starting [1, {sent[0][1]}, ...]; scores {scores}")


def test_the_server_sees_the_ids_ttslab_sends(mistral):
    # What the model is fed, read back from the server (input_token_logprobs), not from ttslab's payload.
    ids = GOLDEN["math_shepherd"]["ids"]
    r = mistral.client._run(mistral.client._post(mistral.server.url, "/generate", {
        "input_ids": [ids], "return_logprob": [True], "logprob_start_len": [0],
        "sampling_params": [{"temperature": 0.0, "max_new_tokens": 1}]}))
    seen = [e[1] for e in r[0]["meta_info"]["input_token_logprobs"]]
    assert seen == ids and r[0]["meta_info"]["prompt_tokens"] == len(ids)


# -------------------------------------------------------------------------------------------- Llama


@pytest.mark.parametrize("name", ["rlhflow-8b-deepseek-data", "rlhflow-8b-mistral-data"])
def test_rlhflow_ids_are_the_llama31_templates_up_to_each_label(llama, name):
    g = GOLDEN["rlhflow"]
    prm = prm_on(name, llama.client)
    assert (prm.good_id, prm.bad_id) == (g["plus_id"], g["minus_id"]) == (10, 12)
    llama.sent.clear()
    score(prm)
    sent = llama.generated_ids()
    assert sent == [g["ids"][:p] for p in g["label_positions"]]
    assert all(ids[0] == 128000 and ids.count(128000) == 1 for ids in sent)


def test_llama3_policy_is_sent_with_one_bos_and_generates(llama):
    from ttslab.engines.base import GenerationRequest, SamplingParams
    from ttslab.prompts import build_prompt

    llama.sent.clear()
    prompt = build_prompt("llama3", QUESTION)
    out = llama.client.generate([GenerationRequest(prompt, SamplingParams(temperature=0.7, max_tokens=6, stop=("\n\n",),
                                                                          seed=i), affinity="p") for i in range(2)])
    (ids,) = {tuple(i) for i in llama.generated_ids()}
    assert list(ids) == GOLDEN["llama3_policy"]["ids"] and ids.count(128000) == 1
    assert all(c.usage.prompt_tokens == len(ids) and c.finish in ("step", "eos", "length") for c in out)


# ----------------------------------------------------------------------------------------------- R1


def test_r1_policy_is_sent_with_one_bos_and_the_two_context_facts_differ(r1):
    from ttslab.engines.base import GenerationRequest, SamplingParams
    from ttslab.prompts import build_prompt

    # The checkpoint keeps R1-Distill's mismatch: the tokenizer says 16384, the model 131072.
    tokenized = r1.client._run(r1.client._post(r1.server.url, "/tokenize", {"prompt": "x", "add_special_tokens": False}))
    models = r1.client._run(r1.client._request("GET", r1.server.url, "/v1/models", None))
    assert tokenized["max_model_len"] == 16384
    assert [c["max_model_len"] for c in models["data"]] == [131072]
    r1.sent.clear()
    (c,) = r1.client.generate([GenerationRequest(build_prompt("deepseek_r1_distill", QUESTION),
                                                 SamplingParams(temperature=0.0, max_tokens=4, seed=0))])
    (ids,) = r1.generated_ids()
    assert ids == GOLDEN["r1_policy"]["ids"] and ids.count(151646) == 1 and c.usage.prompt_tokens == len(ids)
