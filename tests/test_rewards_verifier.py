"""The confidence and probe PRMs: fast checks of the statistics, the head and the registry, and (marked
`model`) the real embedded model teacher-forcing real steps through the CPU engine."""

import math
from pathlib import Path

import numpy as np
import pytest

from ttslab.engines.base import TokenUsage
from ttslab.rewards import BUILDERS, PRM_TYPES, build_reward_model
from ttslab.rewards.base import ScoreRequest
from ttslab.rewards.confidence import STATISTICS, confidence_score, step_statistics
from ttslab.rewards.probe import ProbeHead, step_features
from ttslab.rewards.reading import StepReading

QUESTION = "Tom has 3 boxes with 12 apples each. He eats 5 apples. How many apples are left?"
SOLUTION = (
    "Tom starts with 3 boxes of 12 apples, so he has 3 × 12 = 36 apples.\n\n",
    "He eats 5 of them, which leaves 36 − 5 = 31 apples.\n\n",
    "So the answer is \\boxed{31}.",
)
CONF = Path(__file__).resolve().parents[1] / "conf"
CONFIDENCE_CFG = {"name": "conf", "type": "confidence", "model": "embedded:qwen2.5-coder-0.5b",
                  "options": {"family": "qwen2.5", "statistic": "mean"}}


# ------------------------------------------------------------------------------ no model needed

def test_step_statistics_by_hand():
    lp = np.array([-0.1, -0.2, -3.0, -0.1, -0.4])
    s = step_statistics(lp, window=2, tail=2)
    assert s["mean"] == pytest.approx(-3.8 / 5)
    assert s["lowest_window"] == pytest.approx((-0.2 - 3.0) / 2)  # windows: -.15 -1.6 -1.55 -.25
    assert s["tail"] == pytest.approx(-0.25)


def test_step_statistics_short_and_empty_steps():
    s = step_statistics(np.array([-0.5, -1.5]), window=16, tail=16)
    assert s["lowest_window"] == pytest.approx(-1.0) and s["tail"] == pytest.approx(-1.0)
    assert all(math.isnan(v) for v in step_statistics(np.array([])).values())
    assert confidence_score(float("nan")) == 0.5
    assert confidence_score(math.log(0.25)) == pytest.approx(0.25)


def _head(dim=5, seed=0):
    rng = np.random.default_rng(seed)
    return ProbeHead(rng.normal(size=dim), rng.uniform(0.5, 2, size=dim), rng.normal(size=dim), 0.3,
                     window=8, tail=4, meta={"model": "embedded:qwen2.5-coder-0.5b", "C": "0.01"})


def test_probe_head_predicts_a_logistic_of_standardised_features(tmp_path):
    head = _head()
    x = np.random.default_rng(1).normal(size=(4, 5))
    z = ((x - head.mean) / head.scale) @ head.weights + head.bias
    assert np.allclose(head.predict(x), 1 / (1 + np.exp(-z)))
    head.save(tmp_path / "h.npz")
    back = ProbeHead.load(tmp_path / "h.npz")
    assert np.allclose(back.predict(x), head.predict(x), atol=1e-5)  # stored as float32
    assert (back.window, back.tail, back.meta) == (8, 4, head.meta)


def test_step_features_are_hidden_state_then_statistics():
    reading = StepReading([np.array([-0.1, -0.3]), np.array([])], np.ones((2, 3)), TokenUsage())
    x = step_features(reading, window=16, tail=16)
    assert x.shape == (2, 3 + len(STATISTICS))
    assert np.allclose(x[0, 3:], [-0.2, -0.2, -0.2]) and np.allclose(x[1, 3:], 0.0)  # empty step: no evidence


def test_registry_is_the_single_source_of_prm_types():
    assert PRM_TYPES == tuple(BUILDERS)
    assert {"confidence", "probe", "judge", "none"} <= set(PRM_TYPES)
    with pytest.raises(ValueError, match="prm.options.family"):
        build_reward_model({**CONFIDENCE_CFG, "options": {}}, lambda spec: None)
    with pytest.raises(ValueError, match=r"prm.options has keys \['colour'\]"):
        build_reward_model({**CONFIDENCE_CFG, "options": {"family": "qwen2.5", "colour": 1}}, lambda spec: None)
    with pytest.raises(ValueError, match="statistic"):
        build_reward_model({**CONFIDENCE_CFG, "options": {"family": "qwen2.5", "statistic": "median"}}, lambda s: None)


def test_probe_head_of_another_model_is_refused(tmp_path):
    _head().save(tmp_path / "h.npz")
    cfg = {"name": "p", "type": "probe", "model": "embedded:qwen2.5-coder-1.5b",
           "options": {"family": "qwen2.5", "head": str(tmp_path / "h.npz")}}
    with pytest.raises(ValueError, match="trained on hidden states of 'embedded:qwen2.5-coder-0.5b'"):
        build_reward_model(cfg, lambda spec: None)


def test_shipped_probe_config_loads_its_head():
    from omegaconf import OmegaConf

    from ttslab.rewards.probe import head_path

    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "prm" / "cpu_probe.yaml"))
    head = ProbeHead.load(head_path(cfg["options"]["head"]))
    assert head.meta["model"] == cfg["model"]
    assert head.weights.shape == head.mean.shape == (896 + len(STATISTICS),)  # Qwen2.5-0.5B width + statistics


# ------------------------------------------------------------------------------ the real model

@pytest.fixture(scope="module")
def engine():
    from ttslab.engines.llamacpp import LlamaCppEngine

    e = LlamaCppEngine("embedded:qwen2.5-coder-0.5b", max_sequences=4, n_ctx_per_sequence=1024)
    yield e
    e.close()


@pytest.mark.model
def test_teacher_forced_logprobs_match_next_token_logprobs(engine):
    from ttslab.prompts import build_prompt

    prompt = build_prompt("qwen2.5", QUESTION)
    p_ids, s_ids = engine.tokenize(prompt), engine.tokenize(SOLUTION[0])
    forced = engine.teacher_force([p_ids + s_ids], [len(p_ids)], [[len(p_ids) + len(s_ids) - 1]])[0]
    assert forced.logprobs.shape == (len(s_ids),) and forced.hidden.shape == (1, 896)
    assert np.all(forced.logprobs <= 0) and np.isfinite(forced.hidden).all()
    # reading only the step's tail on the now-cached prefix gives the same numbers and hidden state (first,
    # before another call claims that slot: the engine truncates a slot in place when a shorter prompt reuses it)
    half = len(s_ids) // 2
    again = engine.teacher_force([p_ids + s_ids], [len(p_ids) + half], [[len(p_ids) + len(s_ids) - 1]])[0]
    assert again.usage.evaluated_tokens == len(s_ids) - half + 1
    assert np.allclose(again.logprobs, forced.logprobs[half:], atol=0.15)
    cos = again.hidden[0] @ forced.hidden[0] / np.linalg.norm(again.hidden[0]) / np.linalg.norm(forced.hidden[0])
    assert cos > 0.995
    # the first step token given the prompt, through the engine's independent path (next_token_logprobs).
    # KV computed in another batch shape takes other quantised-matmul paths in llama.cpp: log-probabilities
    # agree to a few hundredths for likely tokens, not bit for bit (measured up to 0.06:
    # tests/test_engine_llamacpp.py); this hand-written step's first token is unlikely (log-prob ~ -8), where the
    # error grows with the magnitude (measured 0.19 in a fresh CI environment): 5% relative. A wrong position
    # or prefix would be off by whole nats.
    ref = engine.next_token_logprobs([prompt], [s_ids[0]])[0]
    assert forced.logprobs[0] == pytest.approx(ref.logprobs[s_ids[0]], rel=0.05, abs=0.15)


@pytest.mark.model
def test_confidence_prm_scores_incrementally_at_the_cost_of_the_new_step(engine):
    prm = build_reward_model(CONFIDENCE_CFG, lambda spec: engine)
    full = prm.score_all([ScoreRequest(QUESTION, SOLUTION)])[0]
    assert len(full.scores) == 3 and all(0 < s <= 1 for s in full.scores)
    for k in range(1, 4):
        last = prm.score_last([ScoreRequest(QUESTION, SOLUTION[:k])])[0]
        # the same step read again on a cached prefix gives the same score (the decode split may move it a little)
        assert last.scores[0] == pytest.approx(full.scores[k - 1], abs=0.02)
        step_tokens = len(engine.tokenize(SOLUTION[k - 1]))
        assert last.usage.evaluated_tokens <= step_tokens + 1  # the newest step and one re-read token


@pytest.mark.model
def test_probe_prm_on_real_steps(engine):
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "prm" / "cpu_probe.yaml"))
    prm = build_reward_model(cfg, lambda spec: engine)
    wrong = SOLUTION[:1] + ("He eats 5 of them, which leaves 36 − 5 = 41 apples.\n\n", "So the answer is \\boxed{41}.")
    out = prm.score_all([ScoreRequest(QUESTION, SOLUTION), ScoreRequest(QUESTION, wrong)])
    assert [len(o.scores) for o in out] == [3, 3]
    assert all(0 < s < 1 for o in out for s in o.scores)
    assert out[0].scores[0] == pytest.approx(out[1].scores[0], abs=0.02)  # the shared first step
    last = prm.score_last([ScoreRequest(QUESTION, wrong)])[0]
    assert last.scores[0] == pytest.approx(out[1].scores[2], abs=0.02)
