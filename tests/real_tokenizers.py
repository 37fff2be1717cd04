"""The study's real tokenizers, built offline from what PyPI packages ship, as Hugging Face tokenizers.

* Mistral-7B v0.1 (the Math-Shepherd PRM): the sentencepiece model `mistral_common/data/tokenizer.model.v1`
  (PyPI mistral-common), converted by transformers as a `LlamaTokenizer` (legacy, BOS added on encode), as
  the Mistral-7B-v0.1 tokenizer files on the hub describe it.
* Llama-3.1 (the Llama policies, the RLHFlow PRMs): the tiktoken BPE `llama_models/llama3/tokenizer.model`
  (PyPI llama-models) with the 256 special tokens its `tokenizer.py` adds (ids 128000-128255), converted by
  transformers' `TikTokenConverter`; BOS `<|begin_of_text|>` added on encode, as Llama-3.1's tokenizer.json.
* Qwen2.5 (the Qwen policies, Skywork, Qwen2.5-Math-PRM): the vocabulary of the embedded GGUF
  (Qwen2.5-Coder-0.5B-Instruct), read by transformers' GGUF loader, with the GGUF's chat template.
* DeepSeek-R1-Distill-Qwen: Qwen2.5's BPE with the R1 tokenizer's special tokens on ids 151643-151649
  (`<｜end▁of▁sentence｜>` ... `<｜begin▁of▁sentence｜>` = 151646 ... `</think>`), BOS added on encode,
  `model_max_length` 16384 while the model allows 131072 (the R1-Distill tokenizer_config.json).

Each builder writes the tokenizer files into a folder (a checkpoint of tests/sglang_cpu/make_tiny_checkpoints.py,
or a cache folder for tests/test_golden_ids.py) and returns the loaded tokenizer. Missing packages raise
ImportError naming the `pip install` that brings them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

LLAMA31_CONTEXT = 131072
R1_TOKENIZER_MAX_LENGTH = 16384  # R1-Distill's tokenizer_config.json; its config.json allows 131072
R1_SPECIALS = {  # id -> content in the R1-Distill-Qwen tokenizer (Qwen2.5's own tokens on these ids are replaced)
    151643: "<｜end▁of▁sentence｜>",
    151644: "<｜User｜>",
    151645: "<｜Assistant｜>",
    151646: "<｜begin▁of▁sentence｜>",
    151647: "<|EOT|>",
    151648: "<think>",
    151649: "</think>",
}


def _need(module: str, package: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(f"{module} is missing: pip install {package} (the dev extra has it)") from err


def mistral_model_file() -> Path:
    mc = _need("mistral_common", "mistral-common")
    return Path(mc.__file__).parent / "data" / "tokenizer.model.v1"


def llama3_model_file() -> Path:
    lm = _need("llama_models", "llama-models")
    return Path(lm.__file__).parent / "llama3" / "tokenizer.model"


def llama3_special_tokens() -> list[str]:
    """The 256 special tokens of llama_models' Llama-3 tokenizer.py, in id order from 128000."""
    _need("tiktoken", "tiktoken")
    from llama_models.llama3.tokenizer import Tokenizer

    tok = Tokenizer(llama3_model_file())
    return [t for t, _ in sorted(tok.special_tokens.items(), key=lambda kv: kv[1])]


def gguf_file() -> Path:
    # TTSLAB_GGUF_FILE: .ci/sglang.sh builds the tiny checkpoints in the SGLang environment (torch, which
    # transformers needs to read a GGUF vocabulary), where the embedded model's wheels are not installed
    if os.environ.get("TTSLAB_GGUF_FILE"):
        return Path(os.environ["TTSLAB_GGUF_FILE"])
    from ttslab.models import resolve

    return Path(resolve("embedded:qwen2.5-coder-0.5b"))


def _write_config(folder: Path, **extra) -> None:
    path = folder / "tokenizer_config.json"
    cfg = json.loads(path.read_text()) if path.exists() else {}
    cfg.update(extra)
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))


def build_mistral(folder: Path):
    from transformers import AutoTokenizer

    _need("sentencepiece", "sentencepiece")
    _need("google.protobuf", "protobuf")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as src:
        shutil.copy(mistral_model_file(), Path(src) / "tokenizer.model")
        (Path(src) / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "LlamaTokenizer", "legacy": True,  # see build_mistral's note "add_bos_token": True, "add_eos_token": False,
            "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 32768}))
        tok = AutoTokenizer.from_pretrained(src)
        tok.save_pretrained(folder)
    # Loaded as tokenizer.json says (Metaspace prepend_scheme "always", <s> added on encode: Mistral v0.1's
    # legacy behaviour), not re-derived by a Llama tokenizer class: transformers 5 rebuilds a LlamaTokenizer
    # as non-legacy (prepend_scheme "first", no "▁" on the word after a special token) when `legacy` is unset.
    _write_config(folder, tokenizer_class="PreTrainedTokenizerFast", legacy=True, add_bos_token=True,
                  add_eos_token=False)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["post_processor"] = _bos_template("<s>", 1)  # Mistral v0.1's tokenizer.json: <s> first on encode
    (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    return AutoTokenizer.from_pretrained(folder)


def _bos_template(bos: str, bos_id: int) -> dict:
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}


def build_llama31(folder: Path):
    from tokenizers import processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    folder.mkdir(parents=True, exist_ok=True)
    backend = TikTokenConverter(vocab_file=str(llama3_model_file()),
                                extra_special_tokens=llama3_special_tokens()).converted()
    bos = "<|begin_of_text|>"
    bos_id = backend.token_to_id(bos)
    assert bos_id == 128000, bos_id
    # Llama-3.1's tokenizer.json: byte-level post-processing, then the BOS prepended on encode.
    backend.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                                      special_tokens=[(bos, bos_id)]),
    ])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token="<|eot_id|>",
                                  model_max_length=LLAMA31_CONTEXT, clean_up_tokenization_spaces=True)
    tok.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def build_qwen25(folder: Path):
    from transformers import AutoTokenizer

    _need("gguf", "gguf")
    folder.mkdir(parents=True, exist_ok=True)
    gguf = gguf_file()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def build_r1_distill(folder: Path, qwen_folder: Path):
    """Qwen2.5's tokenizer.json with R1-Distill's special tokens, BOS added on encode, 16384 model_max_length."""
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    data = _renamed(json.loads((qwen_folder / "tokenizer.json").read_text()), R1_SPECIALS)
    bos = R1_SPECIALS[151646]
    data["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        _bos_template(bos, 151646),
    ]}
    (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": R1_SPECIALS[151643],
        "pad_token": R1_SPECIALS[151643], "add_bos_token": True, "add_eos_token": False,
        "model_max_length": R1_TOKENIZER_MAX_LENGTH, "clean_up_tokenization_spaces": False}, ensure_ascii=False))
    return AutoTokenizer.from_pretrained(folder)


def _renamed(data: dict, names: dict[int, str]) -> dict:
    """tokenizer.json with the special tokens on `names`' ids renamed (added tokens and the BPE vocabulary)."""
    vocab = data["model"]["vocab"]
    for entry in data["added_tokens"]:
        if entry["id"] in names:
            vocab.pop(entry["content"], None)
            entry.update(content=names[entry["id"]], special=True)
            vocab[entry["content"]] = entry["id"]
    return data


def build_qwen_math_prm(folder: Path, qwen_folder: Path):
    """Qwen2.5's tokenizer with Qwen2.5-Math-PRM's step tag `<extra_0>` on id 151651 (the study's special_tag_id)."""
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    data = _renamed(json.loads((qwen_folder / "tokenizer.json").read_text()), {151651: "<extra_0>"})
    (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    shutil.copy(qwen_folder / "tokenizer_config.json", folder / "tokenizer_config.json")
    for extra in ("chat_template.jinja",):
        if (qwen_folder / extra).exists():
            shutil.copy(qwen_folder / extra, folder / extra)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg.pop("added_tokens_decoder", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False))
    return AutoTokenizer.from_pretrained(folder)


BUILDERS = {"mistral": build_mistral, "llama31": build_llama31, "qwen25": build_qwen25}


def cache_dir() -> Path:
    base = os.environ.get("TTSLAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ttslab")
    return Path(base) / "real-tokenizers-v1"


@cache
def tokenizer(name: str):
    """One of "mistral", "llama31", "qwen25", "r1_distill", "qwen_math_prm", built once into the cache folder, then loaded."""
    from transformers import AutoTokenizer

    folder = cache_dir() / name
    if (folder / ".ok").exists():
        return AutoTokenizer.from_pretrained(folder)
    if name in ("r1_distill", "qwen_math_prm"):
        tokenizer("qwen25")
        build = build_r1_distill if name == "r1_distill" else build_qwen_math_prm
        tok = build(folder, cache_dir() / "qwen25")
    else:
        tok = BUILDERS[name](folder)
    (folder / ".ok").write_text("ok\n")
    return tok
