"""Tiny random-weight checkpoints of the study's architectures, carrying the study's real tokenizers.

    .venv-sglang/bin/python tests/sglang_cpu/make_tiny_checkpoints.py <folder> [tokenizers|weights]
    (idempotent; .ci/sglang.sh runs both phases in the SGLang environment, which has torch: transformers
    reads a GGUF vocabulary through it, and README command 2's environment has none)

Each is a Hugging Face folder SGLang serves on CPU (tests/test_sglang_real_architectures.py): the real
architecture class and the real tokenizer (tests/real_tokenizers.py), with 2 layers and a 32-wide hidden
state, so the scores are random but the ids, positions, special tokens and limits are the real ones.

| folder (named after the hub id it stands for)        | architecture        | tokenizer                         |
|------------------------------------------------------|---------------------|-----------------------------------|
| peiyi9979/math-shepherd-mistral-7b-prm               | MistralForCausalLM  | Mistral v0.1 sentencepiece        |
| meta-llama/Llama-3.1-8B-Instruct                     | LlamaForCausalLM    | Llama-3.1 tiktoken BPE            |
| deepseek-ai/DeepSeek-R1-Distill-Qwen-7B              | Qwen2ForCausalLM    | R1-Distill (Qwen2.5 BPE)          |

The R1 folder keeps R1-Distill's mismatch: its tokenizer's `model_max_length` is 16384 while the model's
`max_position_embeddings` is 131072 (SGLang's /tokenize reports the first, GET /v1/models the second). Needs
torch, transformers and the tokenizer packages (mistral-common, llama-models, tiktoken, sentencepiece); the GGUF
comes from TTSLAB_GGUF_FILE or the installed embedded model. A few MB each, never committed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

VERSION = "tiny-v1"  # bump to rebuild existing folders
SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "tie_word_embeddings": True, "torch_dtype": "float16"}

# The real models' config.json facts that reach a server: vocabulary, context, RoPE, BOS/EOS ids.
CHECKPOINTS = {
    "peiyi9979/math-shepherd-mistral-7b-prm": {
        "arch": "mistral", "tokenizer": "mistral",
        "config": {"vocab_size": 32000, "max_position_embeddings": 32768, "rope_theta": 10000.0,
                   "sliding_window": None, "bos_token_id": 1, "eos_token_id": 2}},
    "meta-llama/Llama-3.1-8B-Instruct": {
        "arch": "llama", "tokenizer": "llama31",
        "config": {"vocab_size": 128256, "max_position_embeddings": 131072, "rope_theta": 500000.0,
                   "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                   "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}},
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": {
        "arch": "qwen2", "tokenizer": "r1_distill",
        "config": {"vocab_size": 152064, "max_position_embeddings": 131072, "rope_theta": 10000.0,
                   "use_sliding_window": False, "bos_token_id": 151646, "eos_token_id": 151643}},
}


def build_tokenizer(root: Path, hub_id: str, spec: dict) -> None:
    """Phase 1, in the ttslab environment (the dev extra's tokenizer packages; no torch needed)."""
    from tests import real_tokenizers as rt

    out = root / hub_id
    if (out / f".{VERSION}-tokenizer-ok").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    if spec["tokenizer"] == "r1_distill":  # Qwen2.5's BPE (read from the GGUF once, then cached)
        rt.tokenizer("qwen25")
        tok = rt.build_r1_distill(out, rt.cache_dir() / "qwen25")
    else:
        tok = rt.BUILDERS[spec["tokenizer"]](out)
    (out / f".{VERSION}-tokenizer-ok").write_text(json.dumps({"len": len(tok)}) + "\n")
    print(f"tokenizer for {hub_id}: {len(tok)} tokens, model_max_length {tok.model_max_length}")


def build_weights(root: Path, hub_id: str, spec: dict) -> None:
    """Phase 2, in the SGLang environment (torch + transformers): the random 2-layer model beside it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    out = root / hub_id
    if (out / f".{VERSION}-ok").exists():
        return
    n_tokens = json.loads((out / f".{VERSION}-tokenizer-ok").read_text())["len"]
    config = AutoConfig.for_model(spec["arch"], **SMALL, **spec["config"])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).to(torch.float16)
    assert model.config.vocab_size >= n_tokens, (hub_id, model.config.vocab_size, n_tokens)
    model.save_pretrained(out, safe_serialization=True)
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    (out / f".{VERSION}-ok").write_text(json.dumps({"hub_id": hub_id, "mib": round(size, 1)}) + "\n")
    print(f"made {out} ({type(model).__name__}, {size:.1f} MiB)")


PHASES = {"tokenizers": build_tokenizer, "weights": build_weights}


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or (len(argv) == 2 and argv[1] not in PHASES):
        print("usage: make_tiny_checkpoints.py <folder> [tokenizers|weights]  (no phase: both, in one environment)",
              file=sys.stderr)
        return 2
    root = Path(argv[0])
    for phase in [argv[1]] if len(argv) == 2 else list(PHASES):
        for hub_id, spec in CHECKPOINTS.items():
            PHASES[phase](root, hub_id, spec)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
