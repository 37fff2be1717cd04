#!/usr/bin/env bash
# The real-SGLang test tier's environment (tests/test_sglang_real.py): a venv with SGLang pinned, CPU-only,
# and the embedded GGUF model converted to a safetensors folder SGLang can serve.
#
#   bash .ci/sglang.sh            # idempotent: skips what is already there
#   export TTSLAB_SGLANG_PYTHON=$PWD/.venv-sglang/bin/python   # the tests look for it (printed at the end)
#
# Why trimmed: `pip install sglang` pulls a CUDA-only kernel stack (11 GB); the CPU server needs none of it.
# The CPU build of sgl-kernel is not on PyPI; tests/sglang_cpu/sgl_kernel is a plain-torch stand-in that the
# tests put on the server's PYTHONPATH. The heavy steps run under the model lock (2-core machines).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SGLANG_VERSION=0.5.23
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)  # SGLang 0.5.23 pins torch 2.14.1; PyPI torchvision must match it
VENV=${TTSLAB_SGLANG_VENV:-$REPO/.venv-sglang}
BASE_PYTHON=${SGLANG_BASE_PYTHON:-python3}
TTSLAB_PYTHON=${TTSLAB_PYTHON:-python}       # the ttslab environment (resolves the embedded GGUF)
LOCK=${TTSLAB_MODEL_LOCK:-/tmp/ttslab-model.lock}
MODEL_DIR=$VENV/models/Qwen/Qwen2.5-Coder-0.5B-Instruct  # named after the hub id: served-model checks compare endings
START=$(date +%s)

locked() { if command -v flock >/dev/null; then flock "$LOCK" "$@"; else "$@"; fi; }

if [ ! -f "$VENV/.sglang-$SGLANG_VERSION-ok" ]; then
  "$BASE_PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "SGLang 0.5.23 needs Python >= 3.11")'
  "$BASE_PYTHON" -m venv "$VENV"
  PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)
  "${PIP[@]}" install -q --upgrade pip packaging
  "${PIP[@]}" install -q --no-deps "sglang==$SGLANG_VERSION"
  # Its runtime requirements minus the CUDA-only ones (and torch*, pinned below).
  "$VENV/bin/python" - > "$VENV/sglang-requirements.txt" <<'PY'
from importlib.metadata import requires
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
CUDA_ONLY = {"torch", "torchaudio", "torchvision", "torchcodec", "torch-memory-saver", "sglang-kernel",
             "sgl-deep-ep", "sgl-deep-gemm", "sgl-flash-mla", "flashinfer-python", "flash-attn-4",
             "humming-kernels", "nvidia-cutlass-dsl", "nvidia-mathdx", "nvshmem4py-cu13", "quack-kernels",
             "tilelang", "cuda-python", "apache-tvm-ffi", "timm"}
for line in requires("sglang"):
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    if canonicalize_name(req.name) not in CUDA_ONLY:
        req.marker = None
        print(req)
PY
  "${PIP[@]}" install -q -r "$VENV/sglang-requirements.txt" "${TORCH_PINS[@]}" accelerate gguf
  "$VENV/bin/python" -c "import sglang, torch; print('sglang', sglang.__version__, 'torch', torch.__version__)"
  touch "$VENV/.sglang-$SGLANG_VERSION-ok"
fi
echo "sglang.sh: environment ready after $(( $(date +%s) - START )) s"

if [ ! -f "$MODEL_DIR/.converted-ok" ]; then
  GGUF=$("$TTSLAB_PYTHON" -c 'from ttslab.models import resolve; print(resolve("embedded:qwen2.5-coder-0.5b"))')
  # GGUF is not servable by SGLang on CPU: dequantize with transformers and write safetensors directly
  # (save_pretrained refuses GGUF-quantized models). fp16 halves the folder and decodes ~2x faster than fp32.
  locked "$VENV/bin/python" - "$GGUF" "$MODEL_DIR" <<'PY'
import sys, pathlib, torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer
gguf, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
kw = dict(gguf_file=gguf.name)
tok = AutoTokenizer.from_pretrained(gguf.parent, **kw)
model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kw)
config = model.config
if hasattr(config, "quantization_config"):
    del config.quantization_config
config.architectures = [type(model).__name__]
config.torch_dtype = "float16"
state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
if getattr(config, "tie_word_embeddings", False):
    state.pop("lm_head.weight", None)  # tied: loaders rebuild it from the embeddings
save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
config.save_pretrained(out)
if model.generation_config is not None:
    model.generation_config.save_pretrained(out)
# Give the tokenizer Llama-3's habit of prepending its BOS when special tokens are added (what /generate
# does with `text`), so the tier can check that ttslab's prompts, which carry the BOS text, reach the
# model with exactly one BOS. ttslab itself never asks for added special tokens.
tok.bos_token = tok.bos_token or "<|endoftext|>"
bos_id = tok.convert_tokens_to_ids(tok.bos_token)
tok.add_bos_token = True  # rebuilds the post-processor; saved in tokenizer_config.json
tok.save_pretrained(out)
check = AutoTokenizer.from_pretrained(out)
assert check("hi")["input_ids"][0] == bos_id and check("hi", add_special_tokens=False)["input_ids"][0] != bos_id, \
    "the converted tokenizer does not prepend its BOS"
(out / ".converted-ok").write_text(str(gguf) + "\n")
print("converted", gguf, "->", out)
PY
fi
# Tiny random-weight checkpoints of the study's architectures (Mistral, Llama-3.1, R1-Distill-Qwen) with the
# real tokenizers (tests/test_sglang_real_architectures.py); a few MB each, ~20 s. It reads the embedded GGUF's
# vocabulary (for R1's Qwen2.5 BPE), so it runs under the model lock; it skips folders already made.
TINY_DIR=$VENV/models/tiny
# Made in this environment: the weights need torch and so does transformers' GGUF reader (README command 2's
# environment has no torch). The tokenizer caches it writes (TTSLAB_CACHE) are plain tokenizer.json files that
# the golden-id tests then load without torch.
"$VENV/bin/python" -m pip --disable-pip-version-check --no-input install -q \
  mistral-common llama-models tiktoken sentencepiece protobuf
TTSLAB_GGUF_FILE=$("$TTSLAB_PYTHON" -c 'from ttslab.models import resolve; print(resolve("embedded:qwen2.5-coder-0.5b"))')
export TTSLAB_GGUF_FILE
locked "$VENV/bin/python" tests/sglang_cpu/make_tiny_checkpoints.py "$TINY_DIR"
echo "sglang.sh: tiny checkpoints ready after $(( $(date +%s) - START )) s"
echo "sglang.sh: done in $(( $(date +%s) - START )) s"
echo "export TTSLAB_SGLANG_PYTHON=$VENV/bin/python"
