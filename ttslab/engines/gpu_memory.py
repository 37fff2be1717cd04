"""GPU memory of an SGLang server: the GPU catalogue, SGLang's own memory formulas, one nvidia-smi query.

Both the launcher (`engines/sglang_server.py`) and the plan (`ttslab/plan.py`) size servers with these
functions, so what `ttslab plan` prints is what `ttslab run` launches. Every number below is SGLang
0.5.23's (the wheel's source, read file by file):

- `--mem-fraction-static f` is a share of the memory *free when the server starts*
  (`mem_cache/kv_cache_configurator.py`, `_profile_available_bytes`: the KV budget is what is free after
  loading minus `pre_model_load_memory * (1 - f)`); weights and KV cache live in it.
- Outside it the server needs its runtime reserve: `arg_groups/memory_hook.py`
  (`handle_gpu_memory_settings`) estimates 512 MiB + 1.5 MiB per chunked-prefill token + tp/8 GiB + 2 MiB
  per decode CUDA-graph batch slot + 8 MiB per prefill CUDA-graph size, and never less than 10 GiB on a
  GPU over 60 GiB: ~13.6 GiB on an H100 (chunked prefill 8192, 256 graph slots).
- The attention backend's own buffers come on top (they are allocated after the KV pool): the triton
  backend in deterministic mode splits the KV of a decode step into ceil(context/256) tiles
  (`layers/attention/triton_backend.py`), so its CUDA-graph `attn_logits` holds graph slots x heads x
  splits x v_head_dim fp32 (2 GiB for Llama-3.1-8B at 131072 tokens) and an eager decode step past the
  graph's batch allocates the same per sequence (8 MiB each). fa3 needs only a page table
  (`flashattention_backend.py`). SGLang itself picks fa3 for deterministic inference on Hopper
  (`arg_groups/overrides.py`, `_deterministic_attention_backend`); ttslab does the same and uses triton
  elsewhere (FA3 on sm80 is not what SGLang's deterministic tests run).
- Online fp8 (`--quantization fp8` on a bf16 checkpoint, `layers/quantization/fp8.py`) creates every
  weight in the checkpoint's dtype and quantizes after loading: the load peak is the bf16 weights.

Nothing here imports the plan, the runner or the config layer.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ttslab.errors import ConfigError

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class GPUType:
    name: str
    memory_gib: float  # as nvidia-smi reports it (MiB / 1024)
    tokens_per_s_8b: float  # ASSUMED generated tokens/s per GPU, 8B bf16 policy, high concurrency
    sm: int  # compute capability x 10 (80 Ampere, 90 Hopper): chooses the attention backend


GPU_TYPES: dict[str, GPUType] = {
    "A100-40": GPUType("A100-40", 40.0, 1500.0, 80),
    "A100-80": GPUType("A100-80", 80.0, 1800.0, 80),
    "H100-80": GPUType("H100-80", 79.6, 3500.0, 90),
    "H200-141": GPUType("H200-141", 140.4, 4500.0, 90),
}
ALIASES = {"A100": "A100-80", "H100": "H100-80", "H200": "H200-141"}
# The launcher starts every server on this machine: more GPUs than one node holds are shards over jobs.
MAX_GPUS = 64


def parse_gpus(spec: str) -> tuple[GPUType, int]:
    """'8xH100-80' / '1xH200' / 'H100' -> (type, count); counts above MAX_GPUS are refused."""
    text = str(spec).strip()
    count_text, _, type_text = text.rpartition("x") if "x" in text else ("1", "", text)
    name = ALIASES.get(type_text, type_text)
    shown = text if len(text) < 40 else f"{text[:20]}...{text[-12:]}"
    if name not in GPU_TYPES or not count_text.isdigit() or int(count_text[:6]) < 1:
        raise ConfigError(f"gpus={shown!r}: expected <count>x<type> with a type among "
                          f"{', '.join(list(GPU_TYPES) + list(ALIASES))}, e.g. gpus=1xH100-80 or gpus=8xH100")
    if len(count_text.lstrip("0")) > 3 or int(count_text) > MAX_GPUS:  # the length first: int() of 5000 digits fails
        raise ConfigError(f"gpus={shown!r}: at most {MAX_GPUS} GPUs (the servers of one run share one machine); "
                          f"for more, shard the problems over jobs (shard=0/4 ... shard=3/4)")
    return GPU_TYPES[name], int(count_text)


# ------------------------------------------------------------------------------------ model memory


def kv_bytes_per_token(layout: Mapping[str, Any] | None, what: str) -> int:
    """2 (K and V) x layers x kv_heads x head_dim x 2 bytes (bf16), from the model's `kv_layout`."""
    if not layout or not all(layout.get(k) for k in ("layers", "kv_heads", "head_dim")):
        raise ConfigError(f"{what}: kv_layout {{layers, kv_heads, head_dim}} is missing from its config; "
                          f"`ttslab plan` needs it to size the KV cache (see the model's config.json)")
    return 2 * int(layout["layers"]) * int(layout["kv_heads"]) * int(layout["head_dim"]) * 2


def weight_bytes(model: Mapping[str, Any]) -> float:
    return float(model.get("weight_bytes") or (model.get("sglang") or {}).get("weight_bytes") or 2)


def exact_params(model: Mapping[str, Any]) -> float:
    """The parameter count from config.json (`sglang.params`); a policy's top-level `params` is the nominal
    count the study's FLOPs use (8e9 for Llama-3.1-8B's 8.03e9), a PRM's is already exact."""
    return float((model.get("sglang") or {}).get("params") or model.get("params") or 0)


def weights_gib(model: Mapping[str, Any], tp: int = 1) -> float:
    """Per GPU, as served."""
    return exact_params(model) * weight_bytes(model) / GIB / max(tp, 1)


def load_peak_gib(model: Mapping[str, Any], tp: int = 1) -> float:
    """Per GPU while loading: `sglang.load_weight_bytes` per parameter when the weights are quantized
    online (fp8.py loads bf16 first), else the served weights."""
    load_bytes = (model.get("sglang") or {}).get("load_weight_bytes")
    if not load_bytes:
        return weights_gib(model, tp)
    return exact_params(model) * float(load_bytes) / GIB / max(tp, 1)


# ------------------------------------------------------------------------ SGLang's runtime reserve


def sglang_capacity_defaults(memory_gib: float, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, decode CUDA-graph max batch) SGLang picks for a GPU of this size
    (memory_hook.py, handle_gpu_memory_settings)."""
    mib = memory_gib * 1024
    if mib < 20 * 1024:
        return 2048, 8
    if mib < 35 * 1024:
        return 4096, 48 if tp < 4 else 160
    if mib < 60 * 1024:
        return 4096, 32 if tp < 4 else 160
    if mib < 160 * 1024:
        return 8192, 256 if tp < 4 else 512
    return 16384, 512


def _prefill_graph_sizes(max_tokens: int) -> int:
    """How many prefill CUDA graphs SGLang captures up to `max_tokens` (cuda_graph_hook.py)."""
    sizes = (list(range(4, 33, 4)) + list(range(48, 257, 16)) + list(range(288, 513, 32))
             + list(range(576, 1025, 64)) + list(range(1280, 4097, 256)) + list(range(4608, max_tokens + 1, 512)))
    return sum(1 for s in sizes if s <= max_tokens)


def runtime_reserve_gib(memory_gib: float, tp: int = 1, chunked_prefill: int | None = None) -> float:
    """SGLang's own estimate of a server's memory outside its static pool (activations, CUDA graphs,
    metadata), in GiB: what it leaves free when it chooses --mem-fraction-static itself."""
    default_chunk, max_bs = sglang_capacity_defaults(memory_gib, tp)
    chunk = int(chunked_prefill or default_chunk)
    mib = 512 + max(chunk, 2048) * 1.5 + tp / 8 * 1024  # metadata, activations, parallel slack
    mib += max_bs * 2 + _prefill_graph_sizes(chunk) * 8  # decode and prefill CUDA graphs
    if memory_gib * 1024 > 60 * 1024:
        mib = max(mib, 10 * 1024)
    return mib / 1024


# ------------------------------------------------------------------------- the attention backend

# An eager decode step past the CUDA graph's batch allocates the triton buffer per sequence; the plan
# caps --max-running-requests so that this stays under EAGER_BUFFER_GIB.
EAGER_BUFFER_GIB = 1.0
SGLANG_MAX_RUNNING = 4096  # the most running requests SGLang allows by default (resolve_max_num_reqs)


def choose_attention_backend(configured: str | None, sm: int | None, deterministic: bool) -> str | None:
    """`engine.launch.attention_backend`: 'auto' -> fa3 on Hopper (sm90) in deterministic mode, triton
    elsewhere; a name is kept; null, or 'auto' on an unknown GPU, leaves the choice to SGLang."""
    if configured != "auto":
        return configured or None
    if sm is None:
        return None
    return "fa3" if deterministic and sm == 90 else "triton"


@dataclass(frozen=True)
class AttentionMemory:
    backend: str | None
    graph_gib: float  # persistent, allocated with the CUDA graphs
    eager_gib: float  # transient, an eager decode step of `max_running` sequences
    max_running: int | None  # --max-running-requests the plan sets (None: SGLang's default)
    why: str = ""  # how the backend was chosen


def attention_memory(backend: str | None, layout: Mapping[str, Any] | None, tp: int, context: int,
                     memory_gib: float, deterministic: bool = True) -> AttentionMemory:
    """Per GPU, the buffers of `backend` for a model of `layout` (needs `heads`) at `context` tokens."""
    _, max_bs = sglang_capacity_defaults(memory_gib, tp)
    if backend == "fa3":  # a page table of int32 per graph slot and context position (page size 1)
        return AttentionMemory(backend, max_bs * context * 4 / GIB, 0.0, None)
    if backend != "triton":
        return AttentionMemory(backend, 0.0, 0.0, None)
    if not layout or not layout.get("heads") or not layout.get("head_dim"):
        raise ConfigError("kv_layout.heads (num_attention_heads of config.json) is missing: the triton "
                          "backend's decode buffer is sized from it")
    heads = max(int(layout["heads"]) // max(tp, 1), 1)
    splits = math.ceil(context / 256) if deterministic else 8  # triton_attention_num_kv_splits = 8 otherwise
    per_seq = heads * splits * (int(layout["head_dim"]) + 1) * 4  # attn_logits + attn_lse, fp32
    graph = max_bs * per_seq + max_bs * context * 8  # + the graph's int64 kv_indices
    cap = max(max_bs, min(SGLANG_MAX_RUNNING, int(EAGER_BUFFER_GIB * GIB // per_seq)))
    eager = cap * per_seq if cap > max_bs else 0.0
    return AttentionMemory(backend, graph / GIB, eager / GIB, cap if cap < SGLANG_MAX_RUNNING else None)


@dataclass(frozen=True)
class ServerOverhead:
    """What one server needs outside its static pool, per GPU."""

    reserve_gib: float
    attention: AttentionMemory

    @property
    def total_gib(self) -> float:
        return self.reserve_gib + self.attention.graph_gib + self.attention.eager_gib


def server_overhead(engine_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any], role: str,
                    memory_gib: float, sm: int | None) -> ServerOverhead:
    launch = dict(engine_cfg.get("launch") or {})
    tp = int((model_cfg.get("sglang") or {}).get("tp_size") or 1)
    deterministic = bool(launch.get("deterministic", True))
    fixed = launch.get("runtime_reserve_gib")
    reserve = float(fixed) if fixed is not None else runtime_reserve_gib(memory_gib, tp, launch.get("chunked_prefill_size"))
    configured = launch.get("attention_backend")
    backend = choose_attention_backend(configured, sm, deterministic)
    context = int(launch.get("context_length") or model_context(model_cfg))
    layout = model_cfg.get("kv_layout") or (model_cfg.get("sglang") or {}).get("kv_layout")
    attention = attention_memory(backend, layout, tp, context, memory_gib, deterministic)
    why = (f"auto on sm{sm}{', deterministic' if deterministic else ''}" if configured == "auto" and backend
           else "engine.launch.attention_backend" if backend else "SGLang's own choice")
    return ServerOverhead(reserve, replace(attention, why=f"{why}, {context:,}-token context"))


def model_context(model_cfg: Mapping[str, Any]) -> int:
    """The context SGLang serves the model at: the policy's `context_length`, a PRM's `kv_layout.context`."""
    layout = model_cfg.get("kv_layout") or {}
    return int(model_cfg.get("context_length") or layout.get("context") or 32768)


# ---------------------------------------------------------------------------- the launch fraction


def planned_fraction(share: float | None, total_gib: float, free_gib: float, outside_gib: float) -> tuple[float, float]:
    """(launch fraction, static GiB) of a server planned `share` of a GPU of `total_gib` (None: all it can
    take) that finds `free_gib` free at its start and needs `outside_gib` outside its static pool."""
    room = free_gib - outside_gib
    static = room if share is None else min(float(share) * total_gib, room)
    if static <= 0:
        return 0.0, 0.0
    fraction = math.floor(static / free_gib * 1000) / 1000  # rounded down: never less than `outside` left
    return fraction, fraction * free_gib


def launch_fraction(engine_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any], role: str,
                    memory: tuple[float, float] | None = None, sm: int | None = None,
                    before: ServerOverhead | None = None) -> float | None:
    """`--mem-fraction-static` for a server of `role` about to start. `memory` = (total, free) GiB of its
    GPU measured now (nvidia-smi), else the plan's numbers for an 80 GiB GPU (`before`: the overhead of the
    policy server that started first on it). Explicit `engine.<role>.mem_fraction_static` (or the model's
    `sglang.mem_fraction_static`) wins; `gpu_share: null` takes all the server can (SGLang's own sizing),
    and without a measurement leaves the fraction to SGLang."""
    role_cfg = dict(engine_cfg.get(role) or {})
    for explicit in (role_cfg.get("mem_fraction_static"), (model_cfg.get("sglang") or {}).get("mem_fraction_static")):
        if explicit is not None:
            return float(explicit)
    share = role_cfg.get("gpu_share")
    if share is None and memory is None:
        return None
    if memory is not None:
        total, free = memory
    else:  # no measurement: the PRM starts after the policy took its share and its overhead
        total = 80.0
        policy_share = (engine_cfg.get("policy") or {}).get("gpu_share") or 0.0
        taken = (before or server_overhead(engine_cfg, model_cfg, "policy", total, sm)).total_gib
        free = total * (1 - float(policy_share)) - taken if role == "prm" else total
    outside = server_overhead(engine_cfg, model_cfg, role, total, sm)
    fraction, static = planned_fraction(share, total, free, outside.total_gib)
    tp = int((model_cfg.get("sglang") or {}).get("tp_size") or 1)
    name = model_cfg.get("name")
    peak = load_peak_gib(model_cfg, tp)
    if peak > weights_gib(model_cfg, tp) and peak > free - 0.5:  # SGLang's 512 MiB of metadata: the CUDA context is there while loading
        raise ConfigError(
            f"{role} {name!r} runs out of memory while loading: its weights take {peak:.1f} GiB per GPU "
            f"(tp {tp}) before online quantization (sglang.load_weight_bytes; fp8.py quantizes after loading "
            f"bf16), more than the {free:.1f} of {total:.1f} GiB free; use GPUs with more memory, a larger "
            f"tp_size, or a checkpoint quantized offline"
        )
    weights = weights_gib(model_cfg, tp)
    if fraction <= 0 or fraction >= 0.97 or static < weights * 1.05:
        raise ConfigError(
            f"engine.{role}.gpu_share={share}: {name!r} would get {max(static, 0):.1f} GiB of a GPU "
            f"with {free:.1f} of {total:.1f} GiB free ({outside.total_gib:.1f} GiB kept outside its pool: "
            f"SGLang's runtime reserve {outside.reserve_gib:.1f} + {outside.attention.backend or 'attention'} "
            f"buffers {outside.attention.graph_gib + outside.attention.eager_gib:.1f}) for {weights:.1f} GiB of "
            f"weights and its KV cache; lower the other server's gpu_share or give this role its own GPUs "
            f"(engine.{role}.gpus)"
        )
    return fraction


# ------------------------------------------------------------------------- the nvidia-smi query

SMI_FIELDS = "index,uuid,memory.total,memory.free,compute_cap"


@dataclass(frozen=True)
class GPUState:
    index: str
    uuid: str
    total_gib: float
    free_gib: float
    sm: int | None


def query_gpus(run=subprocess.run) -> list[GPUState] | None:
    """Every GPU nvidia-smi sees (physical indices, not the job's mask); None without nvidia-smi or an answer."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        res = run([smi, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"],
                  capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_smi(res.stdout) or None


def parse_smi(text: str) -> list[GPUState]:
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5 or not parts[0].isdigit():
            continue
        try:
            total, free = float(parts[2]) / 1024, float(parts[3]) / 1024
        except ValueError:
            continue
        try:
            sm = round(float(parts[4]) * 10)
        except ValueError:
            sm = None
        rows.append(GPUState(parts[0], parts[1], total, free, sm))
    return rows


def select_gpus(rows: list[GPUState], visible: str | None) -> list[GPUState]:
    """The GPUs a CUDA_VISIBLE_DEVICES mask names, by index or (a unique prefix of) UUID, as CUDA reads it.
    A MIG instance (MIG-...) is not a row of the query: ConfigError, never another GPU's numbers."""
    if visible is None or not visible.strip():
        return list(rows)
    picked = []
    for entry in (d.strip() for d in visible.split(",") if d.strip()):
        if entry.upper().startswith("MIG-"):
            raise ConfigError(f"CUDA_VISIBLE_DEVICES={visible!r} names a MIG instance ({entry}); nvidia-smi "
                              f"--query-gpu does not report its memory, so ttslab cannot size the server: set "
                              f"engine.<role>.mem_fraction_static for it")
        if entry.isdigit():
            match = [r for r in rows if r.index == entry]
        else:
            match = [r for r in rows if r.uuid.startswith(entry if entry.startswith("GPU-") else f"GPU-{entry}")]
        if len(match) != 1:
            raise ConfigError(f"CUDA_VISIBLE_DEVICES={visible!r}: {entry!r} is not one of the GPUs nvidia-smi "
                              f"lists ({', '.join(f'{r.index} {r.uuid}' for r in rows)})")
        picked.append(match[0])
    return picked


def measure_gpus(visible: str | None, rows: list[GPUState] | None = None) -> tuple[float, float, int | None] | None:
    """(total, free GiB, sm) of the tightest GPU a server with this CUDA_VISIBLE_DEVICES sees; None when
    nvidia-smi is missing or answers nothing usable."""
    rows = query_gpus() if rows is None else rows
    if not rows:
        return None
    picked = select_gpus(rows, visible)
    sms = {r.sm for r in picked}
    return min(r.total_gib for r in picked), min(r.free_gib for r in picked), (sms.pop() if len(sms) == 1 else None)


def detect_gpu_type(rows: list[GPUState] | None = None, visible: str | None = None) -> tuple[GPUType, int] | None:
    """The GPUs this job sees (`visible`: its CUDA_VISIBLE_DEVICES) as a plan type (the nearest catalogue
    entry's speed), or None."""
    rows = query_gpus() if rows is None else rows
    if not rows:
        return None
    rows = select_gpus(rows, visible)
    smallest = min(r.total_gib for r in rows)
    nearest = min(GPU_TYPES.values(), key=lambda g: abs(g.memory_gib - smallest))
    sm = rows[0].sm if all(r.sm == rows[0].sm for r in rows) and rows[0].sm else nearest.sm
    return GPUType(f"detected-{smallest:.0f}GiB", smallest, nearest.tokens_per_s_8b, sm), len(rows)


def job_devices(role_gpus: str, job_mask: str | None) -> str:
    """`engine.<role>.gpus` ("0,1") are positions in the GPUs the job was given (SLURM sets
    CUDA_VISIBLE_DEVICES, e.g. "4,5,6,7" or UUIDs): the child's mask is those entries; without a mask they
    are the machine's indices."""
    wanted = [g.strip() for g in str(role_gpus).split(",") if g.strip()]
    if job_mask is None or not job_mask.strip():
        return ",".join(wanted)
    mask = [d.strip() for d in job_mask.split(",") if d.strip()]
    out = []
    for g in wanted:
        if not g.isdigit() or int(g) >= len(mask):
            raise ConfigError(f"engine.<role>.gpus={role_gpus!r}: {g!r} is not a position in this job's "
                              f"CUDA_VISIBLE_DEVICES={job_mask!r} ({len(mask)} GPU{'s' if len(mask) != 1 else ''}: "
                              f"positions 0..{len(mask) - 1})")
        out.append(mask[int(g)])
    return ",".join(out)
