"""The GPU plan of an SGLang experiment: memory and time, before anything is launched.

For `count` GPUs of a type it places the servers the config asks for and gives, per server, the weights,
the memory kept outside SGLang's static pool (SGLang's runtime reserve and the chosen attention backend's
buffers, `engines/gpu_memory.py`), the KV cache left, how many sequences of the method's length fit at
once against its budget, and the exact launch flags (the launcher's own `launch_args`); then a ceiling of
the tokens and GPU-hours. `check_placement(cfg)` runs the same plan before `ttslab run` launches anything
and raises `ConfigError` (naming the model, the GPU and the numbers) when a placement cannot fit.

Placement: the policy starts first and gets `engine.policy.gpu_share` of the GPU (null: all it can take);
the PRM server starts second on what the policy left (its pool plus its outside memory), its launch
fraction being its share over that free memory (`gpu_share: null`: all of it but its own outside memory).
A classifier PRM (transformers, `device_map: auto`) takes what the policy servers leave, across every
GPU, and needs its bf16 weights plus CLASSIFIER_ACTIVATIONS_GIB.

Time model, a stated assumption (not a measurement): generated tokens/s per GPU at high concurrency for an
8B bf16 model (`GPUType.tokens_per_s_8b`), scaled by 8e9 / params (decode cost grows with the weights read
and the FLOPs per token); PRM scoring is prefill, counted at `PREFILL_SPEEDUP` times that rate. Token
counts are ceilings: every sample runs to its token limit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttslab.engines.gpu_memory import (
    GIB,
    GPU_TYPES,
    GPUType,
    ServerOverhead,
    detect_gpu_type,
    exact_params,
    kv_bytes_per_token,
    launch_fraction,
    load_peak_gib,
    parse_gpus,
    server_overhead,
    weights_gib,
)
from ttslab.engines.sglang_server import launch_args
from ttslab.errors import ConfigError

PREFILL_SPEEDUP = 8.0  # ASSUMED: prefill tokens/s = 8 x generated tokens/s
PROMPT_TOKENS = 512  # assumed prompt length (system + problem) when sizing sequences
CLASSIFIER_RESCORE = 5.0  # ASSUMED: beam/DVTS rescore ~5 prefix lengths per solution (no KV reuse)
CLASSIFIER_ACTIVATIONS_GIB = 4.0  # ASSUMED: a transformers forward of batch_size 8 x 8K tokens, bf16
# Dataset sizes for hub ids (the local file is counted when it exists).
KNOWN_DATASET_SIZES = {"HuggingFaceH4/MATH-500": 500, "HuggingFaceH4/aime_2024": 30}


@dataclass
class ServerPlan:
    role: str
    model: str
    kind: str  # "sglang" or "transformers"
    gpus: str  # "0", "0,1", "0-7"
    tp: int
    weights_gib: float  # per GPU
    static_gib: float  # per GPU: weights + KV (SGLang) / memory it may take (transformers)
    kv_gib: float  # per server
    kv_tokens: int
    seq_tokens: int  # prompt + the method's token limit
    seqs_fit: int
    budget: int  # the largest per-problem budget of the plan
    fraction: float | None
    flags: list[str] = field(default_factory=list)
    overhead: ServerOverhead | None = None  # per GPU, outside the static pool
    load_peak_gib: float | None = None  # per GPU while loading, when above the served weights

    def render(self) -> str:
        if self.kind == "transformers":
            return (f"  {self.role}: {self.model} in-process (transformers, bf16, device_map=auto) on GPUs "
                    f"{self.gpus}: weights {self.weights_gib:.1f} GiB of {self.static_gib:.1f} GiB the policy leaves")
        waves = math.ceil(self.budget / max(self.seqs_fit, 1))
        lines = [(
            f"  {self.role}: {self.model} on GPU{'s' if self.tp > 1 else ''} {self.gpus} (tp {self.tp}): "
            f"weights {self.weights_gib:.1f} GiB/GPU, KV cache {self.kv_gib:.1f} GiB = {self.kv_tokens:,} tokens "
            f"-> {self.seqs_fit} sequences of {self.seq_tokens:,} tokens at once (budget N={self.budget}: "
            f"{'fits in one wave' if waves <= 1 else f'{waves} waves per problem'})"
        )]
        if self.overhead is not None:
            att = self.overhead.attention
            buffers = f"{att.backend} buffers {att.graph_gib:.2f} GiB" if att.backend else "attention buffers: SGLang's choice"
            if att.eager_gib:
                buffers += f" + {att.eager_gib:.2f} GiB eager decode (--max-running-requests {att.max_running})"
            elif att.max_running:
                buffers += f" (--max-running-requests {att.max_running}: no eager decode buffer)"
            lines.append(f"    outside its pool, per GPU: runtime reserve {self.overhead.reserve_gib:.1f} GiB, "
                         f"{buffers}; attention backend {att.backend or 'not set'} ({att.why})")
        if self.load_peak_gib:
            lines.append(f"    load peak {self.load_peak_gib:.1f} GiB/GPU (bf16 weights before online quantization)")
        lines.append(f"    launch: {' '.join(self.flags)}")
        return "\n".join(lines)


@dataclass
class GPUPlan:
    gpu: GPUType
    count: int
    policy: str
    prm: str | None
    problems: int
    servers: list[ServerPlan]
    policy_tokens: float  # ceiling of generated tokens
    prm_tokens: float  # ceiling of PRM prefill tokens
    gpu_hours: float
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"{self.count}x{self.gpu.name}: policy {self.policy}, PRM {self.prm or 'none'}, {self.problems} problems"]
        groups: dict[tuple, list[ServerPlan]] = {}
        for s in self.servers:  # data-parallel copies print once
            groups.setdefault((s.role, s.model, s.kind, " ".join(s.flags)), []).append(s)
        for same in groups.values():
            text = same[0].render()
            if len(same) > 1:
                where = f"GPU{'s' if same[0].tp > 1 else ''} {same[0].gpus} "
                text = text.replace(f"on {where}", f"x{len(same)}, on GPUs {' | '.join(s.gpus for s in same)} ", 1)
            lines.append(text)
        lines.append(f"  tokens (ceiling, every sample to its limit): {self.policy_tokens:,.0f} generated, "
                     f"{self.prm_tokens:,.0f} PRM prefill -> at most {self.gpu_hours:,.2f} GPU-hours "
                     f"(assumed {self.gpu.tokens_per_s_8b:,.0f} tok/s per {self.gpu.name} for an 8B model)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _plain(cfg: Any) -> dict:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def _method_specs(cfg: Any) -> list:
    from ttslab.config import method_specs

    return [s for group in method_specs(cfg) for s in group]


def _problems(ds: Mapping[str, Any]) -> int:
    if ds.get("ids"):
        return len(ds["ids"])
    path = Path(str(ds.get("path")))
    if path.is_file() and path.suffix == ".jsonl":
        n = sum(1 for line in path.open() if line.strip())
    elif str(ds.get("path")) in KNOWN_DATASET_SIZES:
        n = KNOWN_DATASET_SIZES[str(ds.get("path"))]
    elif ds.get("limit"):
        return int(ds["limit"])
    else:
        raise ConfigError(f"dataset.path={ds.get('path')!r}: `ttslab plan` cannot count its problems; pass a "
                          f"local .jsonl file or dataset.limit")
    return min(n, int(ds["limit"])) if ds.get("limit") else n


def _flags(engine: Mapping[str, Any], model: Mapping[str, Any], role: str, fraction: float | None,
           overhead: ServerOverhead) -> list[str]:
    """The launcher's argv for this server, with the per-run parts as placeholders."""
    cmd = launch_args(engine, model, role, port=30000, fraction=fraction, overhead=overhead, python="python",
                      key_file="<run_dir>/logs/<server>.key.yaml" if (engine.get("launch") or {}).get("api_key", True) else None)
    return ["<port>" if a == "30000" else a for a in cmd[2:]]  # drop "python -m"


def _explicit_note(engine: Mapping[str, Any], role: str, name: str, fraction: float, total: float, free: float,
                   over: ServerOverhead) -> str | None:
    left = free * (1 - fraction)
    if left + 0.05 >= over.total_gib:
        return None
    return (f"{role} {name}: --mem-fraction-static {fraction} leaves {left:.1f} GiB outside its pool, less than "
            f"the {over.total_gib:.1f} GiB SGLang's runtime reserve and the attention buffers need")


def build_plan(cfg: Any, gpu: GPUType, count: int) -> GPUPlan:
    """Place the config's servers on `count` GPUs of type `gpu`; raise ConfigError when they cannot fit."""
    c = _plain(cfg)
    engine, policy, prm = c["engine"], c["policy"], c.get("prm") or {"type": "none"}
    if engine.get("name") != "sglang":
        raise ConfigError(f"engine={engine.get('name')!r}: `ttslab plan` plans SGLang GPU runs (engine=sglang)")
    specs = _method_specs(cfg)
    problems = _problems(c["dataset"])
    uses_prm = prm.get("type", "none") != "none" and any(s.name != "cot" for s in specs)
    prm_kind = prm.get("type") if uses_prm else None
    context = int(policy.get("context_length") or 10**9)
    seq_tokens = min(max(s.max_tokens for s in specs) + PROMPT_TOKENS, context)
    budget = max(s.budget for s in specs)
    notes: list[str] = []
    if max(s.max_tokens for s in specs) + PROMPT_TOKENS > context:
        notes.append(f"{policy['name']} has a {context}-token context: max_new_tokens is clamped to "
                     f"{context} - prompt tokens")

    sg = dict(policy.get("sglang") or {})
    tp = int(sg.get("tp_size") or 1)
    if tp > count:
        raise ConfigError(f"policy {policy['name']} needs tp_size={tp} GPUs per server; {count}x{gpu.name} has {count}")
    M = gpu.memory_gib
    pol_weights = weights_gib(policy, tp)
    pol_over = server_overhead(engine, policy, "policy", M, gpu.sm)
    try:
        pol_fraction = launch_fraction(engine, policy, "policy", (M, M), gpu.sm)
    except ConfigError as e:
        raise ConfigError(f"policy {policy['name']} does not fit {count}x{gpu.name}: {e}") from None
    assert pol_fraction is not None  # a measurement was given
    pol_static = pol_fraction * M
    pol_kv = pol_static - pol_weights
    kv_tok = kv_bytes_per_token(policy.get("kv_layout") or sg.get("kv_layout"), f"policy {policy['name']}")
    if pol_kv * GIB * tp < seq_tokens * kv_tok:
        raise ConfigError(
            f"policy {policy['name']} does not fit {count}x{gpu.name}: {pol_weights:.1f} GiB of weights per GPU "
            f"(tp {tp}) in a static pool of {pol_static:.1f} GiB ({pol_fraction} x {M:.1f} GiB) leaves "
            f"{max(pol_kv, 0):.1f} GiB for the KV cache, less than one sequence of {seq_tokens} tokens "
            f"({seq_tokens * kv_tok / GIB:.2f} GiB); use a larger GPU, tp_size, or a smaller gpu_share for the PRM"
        )
    note = _explicit_note(engine, "policy", policy["name"], pol_fraction, M, M, pol_over)
    if note:
        notes.append(note)
    gpu_groups = [",".join(str(g) for g in range(i * tp, (i + 1) * tp)) for i in range(count // tp)]
    servers: list[ServerPlan] = []
    pol_kv_tokens = int(pol_kv * GIB * tp // kv_tok)
    peak = load_peak_gib(policy, tp)
    pol_flags = _flags(engine, policy, "policy", pol_fraction, pol_over)
    for group in gpu_groups:
        servers.append(ServerPlan("policy", policy["name"], "sglang", group, tp, pol_weights, pol_static,
                                  pol_kv * tp, pol_kv_tokens, seq_tokens, pol_kv_tokens // seq_tokens, budget,
                                  pol_fraction, pol_flags, pol_over, peak if peak > pol_weights else None))
    if len(gpu_groups) > 1:
        notes.append(f"{len(gpu_groups)} policy servers (one per {tp} GPU{'s' if tp > 1 else ''}), problems sharded: "
                     f"engine.policy.gpus=[{','.join(repr(g) for g in gpu_groups)}]"
                     + (f" engine.prm.gpus=[{','.join(repr(g) for g in gpu_groups)}]" if prm_kind in ("logprob", "judge") else ""))

    prm_name = prm.get("name") if uses_prm else None
    if prm_kind in ("logprob", "judge"):
        prm_model = {**prm, "sglang": {"model_path": prm.get("hf_id"), "extra_args": [], **(prm.get("sglang") or {})}}
        prm_weights = weights_gib(prm_model)
        prm_over = server_overhead(engine, prm_model, "prm", M, gpu.sm)
        free = M - pol_static - pol_over.total_gib
        try:
            prm_fraction = launch_fraction(engine, prm_model, "prm", (M, free), gpu.sm)
        except ConfigError as e:
            raise ConfigError(f"PRM {prm_name} does not fit beside policy {policy['name']} on {gpu.name}: {e}") from None
        prm_static = (prm_fraction or 0) * free
        prm_kv = prm_static - prm_weights
        prm_kv_tok = kv_bytes_per_token(prm.get("kv_layout"), f"PRM {prm_name}")
        if prm_kv * GIB < seq_tokens * prm_kv_tok:
            raise ConfigError(
                f"PRM {prm_name} does not fit beside policy {policy['name']} on {gpu.name} ({M:.1f} GiB): the policy "
                f"takes {pol_static:.1f} GiB (+{pol_over.total_gib:.1f} GiB outside its pool), the PRM's {prm_fraction} "
                f"of the {free:.1f} GiB left is {prm_static:.1f} GiB for {prm_weights:.1f} GiB of weights, leaving "
                f"{max(prm_kv, 0):.1f} GiB of KV cache (one {seq_tokens}-token sequence needs "
                f"{seq_tokens * prm_kv_tok / GIB:.2f} GiB); raise engine.prm.gpu_share, lower engine.policy.gpu_share, "
                f"or give the PRM its own GPU"
            )
        note = _explicit_note(engine, "prm", prm_name, prm_fraction, M, free, prm_over)
        if note:
            notes.append(note)
        prm_tokens_fit = int(prm_kv * GIB // prm_kv_tok)
        prm_flags = _flags(engine, prm_model, "prm", prm_fraction, prm_over)
        for group in gpu_groups:
            first = group.split(",")[0]
            servers.append(ServerPlan("prm", prm_name, "sglang", first, 1, prm_weights, prm_static, prm_kv,
                                      prm_tokens_fit, seq_tokens, prm_tokens_fit // seq_tokens, budget,
                                      prm_fraction, prm_flags, prm_over))
    elif prm_kind == "classifier":
        prm_weights = weights_gib(prm)
        used = {int(g) for group in gpu_groups for g in group.split(",")}
        taken = pol_static + pol_over.total_gib
        per_gpu = [(M - taken) if g in used else M for g in range(count)]
        left = sum(per_gpu)
        need = prm_weights + CLASSIFIER_ACTIVATIONS_GIB
        if need > left:
            raise ConfigError(
                f"PRM {prm_name} ({prm_weights:.1f} GiB of bf16 weights, +{CLASSIFIER_ACTIVATIONS_GIB:.0f} GiB "
                f"activations) does not fit {count}x{gpu.name}: the policy servers ({policy['name']}, "
                f"{taken:.1f} GiB each with SGLang's reserve) leave {left:.1f} GiB across the GPUs; use more GPUs "
                f"(it loads with device_map=auto across them) or fewer policy servers (engine.policy.gpus)"
            )
        spread = need > per_gpu[0]
        where = f"0-{count - 1}" if spread and count > 1 else "0"
        servers.append(ServerPlan("prm", prm_name, "transformers", where, 1, prm_weights, left, 0.0, 0,
                                  seq_tokens, 0, budget, None))
        if spread:
            notes.append(f"{prm_name} is larger than what one GPU leaves: accelerate spreads its layers over GPUs {where}")

    # ---- tokens and time (ceilings)
    per_problem = 0.0
    prm_per_problem = 0.0
    largest: dict[str, int] = {}  # methods whose smaller budgets reuse the largest one's samples
    for s in specs:
        if s.strategy.nested_budgets:
            largest[s.name] = max(largest.get(s.name, 0), s.budget)
    for s in specs:
        cls = s.strategy
        limit = min(s.max_tokens, context - PROMPT_TOKENS)
        if cls.nested_budgets and s.budget != largest[s.name]:
            continue  # smaller budgets reuse the largest one's samples
        n = s.budget
        per_problem += n * limit
        if uses_prm and cls.uses_prm:
            factor = CLASSIFIER_RESCORE if prm_kind == "classifier" and cls.stepwise else 1.0
            prm_per_problem += n * limit * factor
    policy_tokens = per_problem * problems
    prm_tokens = prm_per_problem * problems
    rate = gpu.tokens_per_s_8b * 8e9 / exact_params(policy)  # decode reads every weight per token
    hours = policy_tokens / rate / 3600
    if uses_prm:
        hours += prm_tokens / (gpu.tokens_per_s_8b * 8e9 / exact_params(prm) * PREFILL_SPEEDUP) / 3600
    return GPUPlan(gpu, count, policy["name"], prm_name, problems, servers, policy_tokens, prm_tokens, hours, notes)


def check_placement(cfg: Any) -> GPUPlan | None:
    """The plan of `cfg` on the GPUs named by `engine.gpu` (or found by nvidia-smi); raises ConfigError
    naming the model, the GPU and the numbers when it cannot fit. None when there is nothing to plan
    (not an SGLang run, servers given by URL, or no GPU description and no nvidia-smi)."""
    c = _plain(cfg)
    engine = c.get("engine") or {}
    if engine.get("name") != "sglang":
        return None
    if (engine.get("policy") or {}).get("urls"):
        return None  # servers started by someone else: their memory is theirs
    spec = engine.get("gpu") or {}
    if spec.get("type"):
        gpu, count = parse_gpus(f"{int(spec.get('count') or 1)}x{spec['type']}")
    else:
        found = detect_gpu_type(visible=os.environ.get("CUDA_VISIBLE_DEVICES"))  # the job's GPUs, not the node's
        if found is None:
            return None
        gpu, count = found
    return build_plan(cfg, gpu, count)


__all__ = ["GPU_TYPES", "GPUPlan", "ServerPlan", "build_plan", "check_placement"]
