"""Classifier-head PRMs (Qwen2.5-Math-PRM, Skywork) on tiny random Qwen2 models built here (no download).

Checks the exact input, the score positions, one score per step, scores in [0, 1], batch/padding
invariance and that checkpoints with the published weight layouts load into our head classes.
"""


import pytest

# torch: no extra installs it, .ci/run's torch stage runs these (see conftest); model: importing torch and
# transformers alone takes ~7 s, too much for the fast suite
pytestmark = [pytest.mark.torch, pytest.mark.model]
torch = pytest.importorskip("torch", reason="classifier PRMs need torch (CPU build: torch==2.13.0)")
pytest.importorskip("transformers", reason="classifier PRMs need transformers (extra `gpu`)")
tokenizers = pytest.importorskip("tokenizers", reason="the tiny test tokenizer needs `tokenizers`")

from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from ttslab.rewards import build_reward_model  # noqa: E402
from ttslab.rewards import formats  # noqa: E402
from ttslab.rewards.base import ScoreRequest  # noqa: E402
from ttslab.rewards.classifier import ClassifierPRM, TwoClassStepHead, ValueStepHead, load_head_model  # noqa: E402

QUESTION = "What is 2+3?"
STEPS = ("First, 2+3=5.\n\n", "So the answer is\n\\boxed{5}.")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE without merges (one token per byte) plus Qwen's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", pad_token="<|endoftext|>")


def tiny_config(tokenizer) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def qwen_prm(tokenizer):
    torch.manual_seed(0)
    return ClassifierPRM(TwoClassStepHead(tiny_config(tokenizer)).eval(), tokenizer, "qwen_math_prm", name="tiny-qwen")


@pytest.fixture(scope="module")
def skywork_prm(tokenizer):
    torch.manual_seed(1)
    return ClassifierPRM(ValueStepHead(tiny_config(tokenizer)).eval(), tokenizer, "skywork", name="tiny-skywork")


def test_qwen_input_and_tag_positions(qwen_prm, tokenizer):
    ids, positions = qwen_prm.encode(QUESTION, STEPS)
    assert tokenizer.decode(ids) == formats.qwen_math_prm(QUESTION, STEPS)
    tag = tokenizer.convert_tokens_to_ids("<extra_0>")
    assert [i for i, t in enumerate(ids) if t == tag] == positions and len(positions) == len(STEPS)
    # Each tag comes right after its step's text.
    assert tokenizer.decode(ids[: positions[0]]).endswith("<|im_start|>assistant\nFirst, 2+3=5.")
    assert tokenizer.decode(ids[positions[0] + 1 : positions[1]]) == "So the answer is\n\\boxed{5}."


def test_skywork_input_and_step_end_positions(skywork_prm, tokenizer):
    ids, positions = skywork_prm.encode(QUESTION, STEPS)
    assert tokenizer.decode(ids) == formats.skywork(QUESTION, STEPS, bos="<|endoftext|>")
    newline = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("\n"))[0]
    assert len(positions) == len(STEPS) and all(ids[p] == newline for p in positions)
    assert positions[-1] == len(ids) - 1
    assert tokenizer.decode(ids[positions[0] + 1 : positions[1]]) == "So the answer is \\boxed{5}."


@pytest.mark.parametrize("prm_name", ["qwen_prm", "skywork_prm"])
def test_one_score_per_step_in_unit_interval(prm_name, request):
    prm = request.getfixturevalue(prm_name)
    reqs = [ScoreRequest(QUESTION, STEPS[:1]), ScoreRequest(QUESTION, STEPS), ScoreRequest("Q?", ("a",) * 5)]
    for req, result in zip(reqs, prm.score_all(reqs)):
        assert len(result.scores) == len(req.steps)
        assert all(0.0 <= s <= 1.0 for s in result.scores)
        assert result.usage.prompt_tokens == len(prm.encode(req.question, req.steps)[0])
    last = prm.score_last(reqs)
    assert [len(r.scores) for r in last] == [1, 1, 1]


@pytest.mark.parametrize("prm_name", ["qwen_prm", "skywork_prm"])
def test_scores_match_a_manual_forward_and_ignore_padding(prm_name, request):
    prm = request.getfixturevalue(prm_name)
    ids, positions = prm.encode(QUESTION, STEPS)
    with torch.no_grad():
        probs = prm.model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    manual = [float(probs[0, p]) for p in positions]
    alone = prm.score_all([ScoreRequest(QUESTION, STEPS)])[0].scores
    # Batched with a longer request: right padding must not change the scores.
    padded = prm.score_all([ScoreRequest(QUESTION, STEPS), ScoreRequest(QUESTION, STEPS + ("x" * 40,))])
    assert alone == pytest.approx(manual, abs=1e-6)
    assert padded[0].scores == pytest.approx(alone, abs=1e-5)
    assert padded[1].scores[:2] == pytest.approx(alone, abs=1e-5)  # a prefix's scores do not see later steps
    assert prm.score_last([ScoreRequest(QUESTION, STEPS)])[0].scores == pytest.approx(alone[-1:], abs=1e-6)


def test_two_class_score_is_softmax_index_1(qwen_prm):
    ids, positions = qwen_prm.encode(QUESTION, STEPS)
    model = qwen_prm.model
    with torch.no_grad():
        hidden = model.model(input_ids=torch.tensor([ids])).last_hidden_state
        logits = model.score(hidden)[0, positions]
    expected = torch.softmax(logits, -1)[:, 1].tolist()
    assert qwen_prm.score_all([ScoreRequest(QUESTION, STEPS)])[0].scores == pytest.approx(expected, abs=1e-6)


def _save_checkpoint(directory, config, state_dict, tokenizer):
    from safetensors.torch import save_file

    config.save_pretrained(directory)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(directory / "model.safetensors"))
    tokenizer.save_pretrained(directory)


def test_qwen_prm_checkpoint_layout_loads(tmp_path, tokenizer):
    """Keys as in Qwen2.5-Math-PRM: model.* + score.0 / score.2 (architectures Qwen2ForProcessRewardModel)."""
    torch.manual_seed(2)
    config = tiny_config(tokenizer)
    config.architectures = ["Qwen2ForProcessRewardModel"]
    source = TwoClassStepHead(config)
    state = source.state_dict()
    assert {"score.0.weight", "score.0.bias", "score.2.weight", "score.2.bias"} <= set(state)
    _save_checkpoint(tmp_path, config, state, tokenizer)
    prm = build_reward_model(
        {"name": "tiny", "type": "classifier", "format": "qwen_math_prm", "head": "two_class",
         "hf_id": str(tmp_path), "step_tag": "<extra_0>", "dtype": "float32"}
    )
    expected = ClassifierPRM(source.eval(), tokenizer, "qwen_math_prm").score_all([ScoreRequest(QUESTION, STEPS)])
    assert prm.score_all([ScoreRequest(QUESTION, STEPS)])[0].scores == pytest.approx(expected[0].scores, abs=1e-6)


def test_skywork_checkpoint_layout_loads(tmp_path, tokenizer):
    """Keys as Skywork's wrapper saves them: a Qwen2ForCausalLM (model.*, lm_head) + v_head.summary."""
    torch.manual_seed(3)
    config = tiny_config(tokenizer)
    config.architectures = ["Qwen2ForCausalLM"]
    causal = Qwen2ForCausalLM(config)
    summary = torch.nn.Linear(config.hidden_size, 1)
    state = dict(causal.state_dict())
    state["v_head.summary.weight"], state["v_head.summary.bias"] = summary.weight.data, summary.bias.data
    _save_checkpoint(tmp_path, config, state, tokenizer)
    model = load_head_model(str(tmp_path), "value", dtype="float32")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        hidden = causal.model(input_ids=ids).last_hidden_state
        expected = torch.sigmoid(summary(hidden)).squeeze(-1)
        got = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert torch.allclose(got, expected, atol=1e-6)


def test_checkpoint_without_the_head_is_refused(tmp_path, tokenizer):
    config = tiny_config(tokenizer)
    _save_checkpoint(tmp_path, config, Qwen2ForCausalLM(config).state_dict(), tokenizer)
    with pytest.raises(RuntimeError, match="weights missing"):
        load_head_model(str(tmp_path), "two_class", dtype="float32")


def test_classifier_config_errors(tokenizer, qwen_prm):
    with pytest.raises(ValueError, match="prm.format='judge' is not a classifier format"):
        ClassifierPRM(qwen_prm.model, tokenizer, "judge")
    with pytest.raises(ValueError, match="prm.head='mlp'"):
        load_head_model("unused", "mlp")
    with pytest.raises(ValueError, match="format_options has keys"):
        ClassifierPRM(qwen_prm.model, tokenizer, "qwen_math_prm", format_options={"bos_token": "x"})
    with pytest.raises(ValueError, match="needs keys"):
        build_reward_model({"name": "q", "type": "classifier", "format": "qwen_math_prm"})


# ----- issue 10 (3): the GPU presets put classifier PRMs on the GPU, in bf16, spread over GPUs when needed


def _gpu_classifier_configs():
    from pathlib import Path

    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[1] / "conf" / "prm"
    cfgs = [OmegaConf.to_container(OmegaConf.load(p)) for p in sorted(conf.glob("*.yaml")) if not p.name.startswith("cpu_")]
    return [c for c in cfgs if c.get("type") == "classifier"]


def test_gpu_classifier_presets_load_on_cuda_in_bf16_with_a_device_map():
    cfgs = _gpu_classifier_configs()
    assert {c["name"] for c in cfgs} >= {"skywork-prm-1.5b", "skywork-prm-7b", "qwen2.5-math-prm-7b",
                                         "qwen2.5-math-prm-72b"}
    for c in cfgs:
        assert c["device"] == "cuda", c["name"]
        assert c["dtype"] == "bfloat16", c["name"]
        assert c["device_map"] == "auto", c["name"]  # accelerate spreads a model larger than one GPU


def test_load_head_model_passes_dtype_and_device_map(tmp_path, tokenizer, monkeypatch):
    calls = {}
    real = TwoClassStepHead.from_pretrained.__func__

    def spy(cls, path, **kw):
        calls.update(kw)
        kw.pop("device_map", None)  # no GPU here: load on CPU, but record what a GPU run would ask for
        return real(cls, path, **kw)

    TwoClassStepHead(tiny_config(tokenizer)).save_pretrained(tmp_path)
    monkeypatch.setattr(TwoClassStepHead, "from_pretrained", classmethod(spy))
    model = load_head_model(str(tmp_path), "two_class", dtype="bfloat16", device="cuda", device_map="auto")
    assert calls["dtype"] is torch.bfloat16 and calls["device_map"] == "auto"
    assert next(model.parameters()).dtype is torch.bfloat16


def test_transformers_floor_supports_the_dtype_keyword():
    # issue 10 (5): `from_pretrained(dtype=...)` (used above) needs transformers >= 4.56.
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.version import Version

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for extra in meta["optional-dependencies"].values() for r in extra]
    floors = [r.specifier for r in reqs if r.name == "transformers"]
    assert floors and all(not s.contains(Version("4.55.4")) and s.contains(Version("4.56.0")) for s in floors)
