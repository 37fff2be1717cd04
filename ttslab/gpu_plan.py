"""`ttslab plan`: GPU memory and time of an SGLang experiment, before anything is launched.

For `gpus=<count>x<type>` it places the servers the config asks for and prints, per server, the weights,
the KV cache left, how many sequences of the method's length fit at once against its budget, and the exact
launch flags; then a ceiling of the preset's tokens and GPU-hours. `check_placement(cfg)` runs the same plan
before `ttslab run` launches anything and raises `ConfigError` (naming the model, the GPU and the numbers)
when a placement cannot fit.

Memory model (SGLang semantics, reference/engines.md and issue 10):
- `--mem-fraction-static f` is a share of the memory *free when that server starts*; weights + KV cache
  live in it, activations and CUDA graphs in the rest. The policy starts first and gets
  `engine.policy.gpu_share` of the GPU; the PRM server starts second, so its launch fraction is its planned
  share divided by what the policy left: f_prm = min(share_prm * M, free) / free with
  free = M - share_policy * M - reserve (the policy's memory outside its static pool).
- KV cache per token = 2 (K and V) x layers x kv_heads x head_dim x 2 bytes (bf16), from the config's
  `kv_layout`; weights = params x weight_bytes, split over tp_size GPUs.
- A classifier PRM (transformers, `device_map: auto`) takes the memory the policy servers leave, across
  every GPU; it needs its bf16 weights plus `reserve` for activations.

Time model, a stated assumption (not a measurement): generated tokens/s per GPU at high concurrency for an
8B bf16 model (`GPUType.tokens_per_s_8b`), scaled by 8e9 / params (decode cost grows with the weights read
and the FLOPs per token); PRM scoring is prefill, counted at `PREFILL_SPEEDUP` times that rate. Token
counts are ceilings: every sample runs to its token limit.
"""

from __future__ import annotations

import itertools
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ttslab.errors import ConfigError

GIB = 1024**3


@dataclass(frozen=True)
class GPUType:
    name: str
    memory_gib: float  # as nvidia-smi reports it (MiB / 1024)
    tokens_per_s_8b: float  # ASSUMED generated tokens/s per GPU, 8B bf16 policy, high concurrency


GPU_TYPES: dict[str, GPUType] = {
    "A100-40": GPUType("A100-40", 40.0, 1500.0),
    "A100-80": GPUType("A100-80", 80.0, 1800.0),
    "H100-80": GPUType("H100-80", 79.6, 3500.0),
    "H200-141": GPUType("H200-141", 140.4, 4500.0),
}
ALIASES = {"A100": "A100-80", "H100": "H100-80", "H200": "H200-141"}
PREFILL_SPEEDUP = 8.0  # ASSUMED: prefill tokens/s = 8 x generated tokens/s
PROMPT_TOKENS = 512  # assumed prompt length (system + problem) when sizing sequences
CLASSIFIER_RESCORE = 5.0  # ASSUMED: beam/DVTS rescore ~5 prefix lengths per solution (no KV reuse)
# Dataset sizes for hub ids (the local file is counted when it exists).
KNOWN_DATASET_SIZES = {"HuggingFaceH4/MATH-500": 500, "HuggingFaceH4/aime_2024": 30}


def parse_gpus(spec: str) -> tuple[GPUType, int]:
    """'8xH100-80' / '1xH200' / 'H100' -> (type, count)."""
    text = str(spec).strip()
    count_text, _, type_text = text.rpartition("x") if "x" in text else ("1", "", text)
    name = ALIASES.get(type_text, type_text)
    if name not in GPU_TYPES or not count_text.isdigit() or int(count_text) < 1:
        raise ConfigError(f"gpus={spec!r}: expected <count>x<type> with a type among "
                          f"{', '.join(list(GPU_TYPES) + list(ALIASES))}, e.g. gpus=1xH100-80 or gpus=8xH100")
    return GPU_TYPES[name], int(count_text)


# ----------------------------------------------------------------------------------------- memory


def kv_bytes_per_token(layout: Mapping[str, Any] | None, what: str) -> int:
    if not layout or not all(layout.get(k) for k in ("layers", "kv_heads", "head_dim")):
        raise ConfigError(f"{what}: kv_layout {{layers, kv_heads, head_dim}} is missing from its config; "
                          f"`ttslab plan` needs it to size the KV cache (see the model's config.json)")
    return 2 * int(layout["layers"]) * int(layout["kv_heads"]) * int(layout["head_dim"]) * 2


def planned_fraction(share: float, total_gib: float, free_gib: float, reserve_gib: float) -> tuple[float, float]:
    """(launch fraction, static GiB) of a server planned `share` of a GPU of `total_gib` that finds
    `free_gib` free at its start; it keeps `reserve_gib` outside its static pool."""
    static = min(share * total_gib, free_gib - reserve_gib)
    if static <= 0:
        return 0.0, 0.0
    return round(static / free_gib, 3), static


def launch_fraction(engine_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any], role: str,
                    memory: tuple[float, float] | None = None) -> float | None:
    """`--mem-fraction-static` for a server of `role` about to start. `memory` = (total, free) GiB of its
    GPU measured now (nvidia-smi), else the plan's own numbers. Explicit `engine.<role>.mem_fraction_static`
    wins; `gpu_share: null` means the server has its GPUs to itself (the model's own fraction)."""
    role_cfg = dict(engine_cfg.get(role) or {})
    if role_cfg.get("mem_fraction_static") is not None:
        return float(role_cfg["mem_fraction_static"])
    share = role_cfg.get("gpu_share")
    if share is None:
        own = (model_cfg.get("sglang") or {}).get("mem_fraction_static")
        return None if own is None else float(own)
    reserve = float((engine_cfg.get("launch") or {}).get("runtime_reserve_gib", 4.0))
    if memory is not None:
        total, free = memory
    else:  # no measurement: the PRM starts after the policy took its share (+ its reserve)
        total = 80.0
        policy_share = (engine_cfg.get("policy") or {}).get("gpu_share") or 0.0
        free = total * (1 - float(policy_share)) - reserve if role == "prm" else total
    fraction, static = planned_fraction(float(share), total, free, reserve)
    tp = int((model_cfg.get("sglang") or {}).get("tp_size") or 1)
    weights = float(model_cfg.get("params") or 0) * _weight_bytes(model_cfg) / GIB / tp
    if fraction <= 0 or fraction >= 0.97 or static < weights * 1.05:
        raise ConfigError(
            f"engine.{role}.gpu_share={share}: {model_cfg.get('name')!r} would get {max(static, 0):.1f} GiB of a GPU "
            f"with {free:.1f} of {total:.1f} GiB free ({reserve:.0f} GiB kept for activations) for {weights:.1f} GiB "
            f"of weights and its KV cache; lower the other server's gpu_share or give this role its own GPUs "
            f"(engine.{role}.gpus)"
        )
    return fraction


def measure_gpus(cuda_visible_devices: str | None) -> tuple[float, float] | None:
    """(total, free) GiB of the tightest GPU among those visible to a server, from nvidia-smi; None if
    nvidia-smi is missing or answers nothing usable."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        res = subprocess.run([smi, "--query-gpu=index,memory.total,memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = {}
    for line in res.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and all(p.replace(".", "").isdigit() for p in parts):
            rows[parts[0]] = (float(parts[1]) / 1024, float(parts[2]) / 1024)
    if not rows:
        return None
    wanted = [d.strip() for d in (cuda_visible_devices or "").split(",") if d.strip()]
    picked = [rows[d] for d in wanted if d in rows] or list(rows.values())[:1]
    return min(t for t, _ in picked), min(f for _, f in picked)


# ------------------------------------------------------------------------------------------ the plan


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

    def render(self) -> str:
        if self.kind == "transformers":
            head = (f"  {self.role}: {self.model} in-process (transformers, bf16, device_map=auto) on GPUs "
                    f"{self.gpus}: weights {self.weights_gib:.1f} GiB of {self.static_gib:.1f} GiB the policy leaves")
            return head
        waves = math.ceil(self.budget / max(self.seqs_fit, 1))
        return (
            f"  {self.role}: {self.model} on GPU{'s' if self.tp > 1 else ''} {self.gpus} (tp {self.tp}): "
            f"weights {self.weights_gib:.1f} GiB/GPU, KV cache {self.kv_gib:.1f} GiB = {self.kv_tokens:,} tokens "
            f"-> {self.seqs_fit} sequences of {self.seq_tokens:,} tokens at once (budget N={self.budget}: "
            f"{'fits in one wave' if waves <= 1 else f'{waves} waves per problem'})\n"
            f"    launch: {' '.join(self.flags)}"
        )


@dataclass
class Plan:
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
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg)


def _method_specs(cfg: Any) -> list:
    try:
        from ttslab.config import method_specs  # type: ignore[attr-defined]
    except ImportError:
        from ttslab.runner import method_specs
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


def _weight_bytes(model: Mapping[str, Any]) -> float:
    return float(model.get("weight_bytes") or (model.get("sglang") or {}).get("weight_bytes") or 2)


def _launch_flags(engine: Mapping[str, Any], model: Mapping[str, Any], tp: int, fraction: float | None) -> list[str]:
    from ttslab.engines.sglang_server import build_launch_command

    launch = dict(engine.get("launch") or {})
    sg = dict(model.get("sglang") or {})
    cmd = build_launch_command(
        python="python", module=str(launch.get("module") or "sglang.launch_server"),
        model_path=str(sg.get("model_path") or model.get("hf_id")), host=str(launch.get("host") or "127.0.0.1"),
        port=30000, tp_size=tp, mem_fraction_static=fraction, random_seed=launch.get("random_seed"),
        deterministic=bool(launch.get("deterministic", True)), attention_backend=launch.get("attention_backend"),
        context_length=launch.get("context_length"), schedule_policy=launch.get("schedule_policy"),
        extra_args=list(sg.get("extra_args") or []) + list(launch.get("extra_args") or []),
    )
    cmd = ["<port>" if a == "30000" else a for a in cmd[2:]]  # drop "python -m"
    return cmd + ["--api-key", "<per run>"]


def build_plan(cfg: Any, gpu: GPUType, count: int) -> Plan:
    """Place the config's servers on `count` GPUs of type `gpu`; raise ConfigError when they cannot fit."""
    c = _plain(cfg)
    engine, policy, prm = c["engine"], c["policy"], c.get("prm") or {"type": "none"}
    if engine.get("name") != "sglang":
        raise ConfigError(f"engine={engine.get('name')!r}: `ttslab plan` plans SGLang GPU runs (engine=sglang)")
    specs = _method_specs(cfg)
    problems = _problems(c["dataset"])
    reserve = float((engine.get("launch") or {}).get("runtime_reserve_gib", 4.0))
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
    pol_weights = float(policy["params"]) * _weight_bytes(policy) / GIB / tp
    pol_fraction = launch_fraction(engine, policy, "policy", (M, M))
    if pol_fraction is None:
        raise ConfigError(f"policy {policy['name']}: no gpu_share and no sglang.mem_fraction_static to plan with")
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
    gpu_groups = [",".join(str(g) for g in range(i * tp, (i + 1) * tp)) for i in range(count // tp)]
    servers: list[ServerPlan] = []
    pol_kv_tokens = int(pol_kv * GIB * tp // kv_tok)
    for group in gpu_groups:
        servers.append(ServerPlan("policy", policy["name"], "sglang", group, tp, pol_weights, pol_static,
                                  pol_kv * tp, pol_kv_tokens, seq_tokens, pol_kv_tokens // seq_tokens, budget,
                                  pol_fraction, _launch_flags(engine, policy, tp, pol_fraction)))
    if len(gpu_groups) > 1:
        notes.append(f"{len(gpu_groups)} policy servers (one per {tp} GPU{'s' if tp > 1 else ''}), problems sharded: "
                     f"engine.policy.gpus=[{','.join(repr(g) for g in gpu_groups)}]"
                     + (f" engine.prm.gpus=[{','.join(repr(g) for g in gpu_groups)}]" if prm_kind in ("logprob", "judge") else ""))

    prm_name = prm.get("name") if uses_prm else None
    if prm_kind in ("logprob", "judge"):
        prm_weights = float(prm["params"]) * _weight_bytes(prm) / GIB
        free = M - pol_static - reserve
        try:
            prm_fraction = launch_fraction(engine, prm, "prm", (M, free))
        except ConfigError as e:
            raise ConfigError(f"PRM {prm_name} does not fit beside policy {policy['name']} on {gpu.name}: {e}") from None
        prm_static = (prm_fraction or 0) * free
        prm_kv = prm_static - prm_weights
        prm_kv_tok = kv_bytes_per_token(prm.get("kv_layout"), f"PRM {prm_name}")
        if prm_kv * GIB < seq_tokens * prm_kv_tok:
            raise ConfigError(
                f"PRM {prm_name} does not fit beside policy {policy['name']} on {gpu.name} ({M:.1f} GiB): the policy "
                f"takes {pol_static:.1f} GiB (+{reserve:.0f} GiB runtime), the PRM's {prm_fraction} of the "
                f"{free:.1f} GiB left is {prm_static:.1f} GiB for {prm_weights:.1f} GiB of weights, leaving "
                f"{max(prm_kv, 0):.1f} GiB of KV cache (one {seq_tokens}-token sequence needs "
                f"{seq_tokens * prm_kv_tok / GIB:.2f} GiB); raise engine.prm.gpu_share, lower engine.policy.gpu_share, "
                f"or give the PRM its own GPU"
            )
        prm_tokens_fit = int(prm_kv * GIB // prm_kv_tok)
        prm_model = {**prm, "sglang": {"model_path": prm.get("hf_id"), "extra_args": []}}
        for group in gpu_groups:
            first = group.split(",")[0]
            servers.append(ServerPlan("prm", prm_name, "sglang", first, 1, prm_weights, prm_static, prm_kv,
                                      prm_tokens_fit, seq_tokens, prm_tokens_fit // seq_tokens, budget,
                                      prm_fraction, _launch_flags(engine, prm_model, 1, prm_fraction)))
    elif prm_kind == "classifier":
        prm_weights = float(prm["params"]) * _weight_bytes(prm) / GIB
        used = {int(g) for group in gpu_groups for g in group.split(",")}
        left = sum((M - pol_static - reserve) if g in used else (M - reserve) for g in range(count))
        if prm_weights + reserve > left:
            raise ConfigError(
                f"PRM {prm_name} ({prm_weights:.1f} GiB of bf16 weights, +{reserve:.0f} GiB activations) does not fit "
                f"{count}x{gpu.name}: the policy servers ({policy['name']}, {pol_static:.1f} GiB each) leave "
                f"{left:.1f} GiB across the GPUs; use more GPUs (it loads with device_map=auto across them) "
                f"or fewer policy servers (engine.policy.gpus)"
            )
        spread = prm_weights + reserve > (M - pol_static - reserve)
        where = f"0-{count - 1}" if spread and count > 1 else "0"
        servers.append(ServerPlan("prm", prm_name, "transformers", where, 1, prm_weights, left, 0.0, 0,
                                  seq_tokens, 0, budget, None))
        if spread:
            notes.append(f"{prm_name} is larger than what one GPU leaves: accelerate spreads its layers over GPUs {where}")

    # ---- tokens and time (ceilings)
    per_problem = 0.0
    prm_per_problem = 0.0
    largest = {}  # methods whose smaller budgets reuse the largest one's samples (the registry says which)
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
    rate = gpu.tokens_per_s_8b * 8e9 / float(policy["params"])
    hours = policy_tokens / rate / 3600
    if uses_prm:
        hours += prm_tokens / (gpu.tokens_per_s_8b * 8e9 / float(prm["params"]) * PREFILL_SPEEDUP) / 3600
    return Plan(gpu, count, policy["name"], prm_name, problems, servers, policy_tokens, prm_tokens, hours, notes)


def check_placement(cfg: Any) -> Plan | None:
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
        found = _detect()
        if found is None:
            return None
        gpu, count = found
    return build_plan(cfg, gpu, count)


def _detect() -> tuple[GPUType, int] | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    res = subprocess.run([smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=60, check=False)
    sizes = [float(x) / 1024 for x in res.stdout.split() if x.replace(".", "").isdigit()]
    if not sizes:
        return None
    nearest = min(GPU_TYPES.values(), key=lambda g: abs(g.memory_gib - min(sizes)))
    return GPUType(f"detected-{min(sizes):.0f}GiB", min(sizes), nearest.tokens_per_s_8b), len(sizes)


# ------------------------------------------------------------------------------------------- the CLI


def _compose(overrides: Sequence[str]):
    try:
        from ttslab.config import compose  # type: ignore[attr-defined]
    except ImportError:
        from ttslab.runner import compose
    return compose(list(overrides))


def sweep_points(overrides: Sequence[str]) -> list[list[str]]:
    """The override lists of every point of the experiment's Hydra sweep (one point if none)."""
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parent.parent / "conf"
    exp = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), None)
    params: dict[str, str] = {}
    if exp:
        path = conf / "experiment" / f"{exp}.yaml"
        if path.exists():
            swept = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params")
            params = {str(k): str(v) for k, v in (swept or {}).items()}
    given = {o.split("=", 1)[0] for o in overrides if "=" in o}
    axes = [[f"{k}={v}" for v in vals.split(",")] for k, vals in params.items() if k not in given]
    return [list(overrides) + list(point) for point in itertools.product(*axes)]


def plan_preset(overrides: Sequence[str], gpus: str) -> tuple[list[Plan], list[str]]:
    """Plans of every sweep point that fits, and the errors of those that do not."""
    gpu, count = parse_gpus(gpus)
    plans, errors = [], []
    for point in sweep_points(overrides):
        try:
            plans.append(build_plan(_compose(point), gpu, count))
        except ConfigError as e:
            errors.append(f"{' '.join(p for p in point if p not in overrides)}: {e}")
    return plans, errors


PRESETS = ("gpu_smoke", "fig4_math500", "fig5_aime24", "fig7_qwen_sizes", "fig8_llama_difficulty",
           "table3_small_tts", "table3_cot_baselines")
TABLE_GPUS = ("1xH100", "1xH200", "8xH100")


def readme_table(presets: Sequence[str] = PRESETS, gpus: Sequence[str] = TABLE_GPUS) -> str:
    """Markdown: per preset and GPU set, the sweep points that fit and the GPU-hours ceiling of those."""
    head = "| preset | points | " + " | ".join(gpus) + " |\n|---|---|" + "---|" * len(gpus)
    rows = [head]
    for preset in presets:
        cells, n_points = [], 0
        for g in gpus:
            plans, errors = plan_preset([f"experiment={preset}"], g)
            n_points = len(plans) + len(errors)
            hours = sum(p.gpu_hours for p in plans)
            h = f"{hours:.2f}" if hours < 1 else f"{hours:.1f}" if hours < 10 else f"{hours:,.0f}"
            cells.append(f"{len(plans)}/{n_points} fit, ≤{h} GPU-h" if plans else f"0/{n_points} fit")
        rows.append(f"| {preset} | {n_points} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


USAGE = """usage: ttslab plan [overrides ...] gpus=<count>x<type>
       ttslab plan --readme-table
Prints, per sweep point of the experiment, each server's weights, KV cache, concurrent sequences and exact
launch flags, and a ceiling of tokens and GPU-hours. GPU types: """ + ", ".join(GPU_TYPES) + """ (aliases """ + \
    ", ".join(f"{a}={t}" for a, t in ALIASES.items()) + """).
Exit status 2 when a point cannot fit."""


def main(argv: list[str]) -> int:
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv == ["--readme-table"]:
        print(readme_table())
        return 0
    gpus = [a for a in argv if a.startswith("gpus=")]
    overrides = [a for a in argv if not a.startswith("gpus=")]
    if len(gpus) != 1:
        print(f"ttslab plan: give the GPUs once, e.g. gpus=1xH100-80\n{USAGE}", file=sys.stderr)
        return 2
    try:
        plans, errors = plan_preset(overrides, gpus[0].split("=", 1)[1])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in plans:
        print(p.render())
    for e in errors:
        print(f"does not fit: {e}")
    if plans:
        total = sum(p.gpu_hours for p in plans)
        print(f"total over {len(plans)} point{'s' if len(plans) > 1 else ''} that fit: at most {total:,.1f} GPU-hours")
    return 2 if errors else 0
