"""Configs as typed code: the schemas of every config group, `compose`, validation, run-directory identity.

The YAML files live in the top-level `conf/` folder and ship inside the package as `ttslab.conf` (see
pyproject.toml), so `ttslab run` composes every preset from an installed wheel, from any directory.
Each group file starts from its schema here (`defaults: [base_<group>, _self_]`), so Hydra rejects an
unknown key or a value of the wrong type at composition; the checks a type cannot express (a budget
that is not a multiple of the beam width, a search without a PRM...) are `validate`, in this one place.
Every failure is a `ttslab.errors.ConfigError` whose one-line message names the key and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from ttslab.errors import ConfigError
from ttslab.search.strategies import Strategy, strategy_class

CONFIG_MODULE = "ttslab.conf"


# ---------------------------------------------------------------- schemas of the config groups
@dataclass
class DatasetConfig:
    name: str = MISSING
    path: str = MISSING  # a Hugging Face hub id, a local .jsonl/.json/.parquet file, or "bundled"
    format: str = "auto"
    split: str = "test"
    limit: int | None = None
    ids: list[str] | None = None
    levels: list[int] | None = None


@dataclass
class PolicyConfig:
    name: str = MISSING
    family: str = MISSING  # prompt format (ttslab.prompts); never inferred from the name
    model: str | None = None  # GGUF spec for engine=llamacpp
    hf_id: str | None = None
    params: float = MISSING  # parameters, for FLOPs
    pretrain_tokens: float | None = None
    context_length: int = 32768
    sampling: dict[str, Any] = field(default_factory=dict)  # per-model overrides of method sampling
    sglang: dict[str, Any] | None = None
    kv_layout: dict[str, int] | None = None  # layers, kv_heads, head_dim: KV bytes per token (ttslab plan)
    weight_bytes: float | None = None  # bytes of the weights as served (ttslab plan)
    # The BOS text its tokenizer starts every input with (tokenizer_config.json `bos_token` where the chat
    # template writes it); null: none (Qwen2.5). The family's template must write exactly this
    # (ttslab.prompts.check_bos); engines tokenize with nothing added, so the model sees it once.
    bos_token: str | None = None


@dataclass
class PRMConfig:
    name: str = MISSING
    type: str = MISSING  # a type registered in ttslab.rewards
    format: str | None = None
    hf_id: str | None = None
    model: str | None = None
    params: float | None = None
    good_token: str | None = None
    bad_token: str | None = None
    step_tag: str | None = None
    format_options: dict[str, Any] = field(default_factory=dict)
    head: str | None = None  # classifier PRMs
    dtype: str | None = None
    device: str | None = None
    device_map: str | None = None
    batch_size: int = 8
    options: dict[str, Any] = field(default_factory=dict)  # type-specific settings of other scorers
    sglang: dict[str, Any] | None = None
    kv_layout: dict[str, int] | None = None
    weight_bytes: float | None = None  # bytes of the weights as served (ttslab plan)
    # The BOS text the PRM's input starts with, as its reference feeds it: "<s>" for Math-Shepherd (whose
    # references call tokenizer.encode(text), which adds it), "<|begin_of_text|>" for RLHFlow (written by
    # the Llama-3.1 chat template); null: none (Qwen). The format writes it; engines add nothing.
    bos_token: str | None = None


@dataclass
class MethodConfig:
    name: str = MISSING
    budget: int = 1
    budgets: list[int] | None = None  # several budgets in one run (overrides `budget`)
    beam_width: int = 4
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 8192  # CoT/BoN: new tokens; search: all steps together
    max_step_tokens: int = 2048
    max_steps: int = 40
    step_delimiter: str = "\n\n"
    # the selection rule figures and tables report for this method, fixed before any data
    # (ttslab.analysis.rules; not a generation setting: records do not depend on it)
    report_rule: str = "majority"
    # settings of the method's own (e.g. particle_filter's softmax_temperature), checked by its strategy
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LlamaCppEngineConfig:
    name: str = "llamacpp"
    n_threads: int | None = None
    max_sequences: int = 32
    n_ctx_per_sequence: int = 3072
    n_batch: int = 512
    kv_unified: bool = False  # conf/engine/llamacpp.yaml says why


@dataclass
class SGLangEngineConfig:
    name: str = "sglang"
    policy: dict[str, Any] = field(default_factory=dict)
    prm: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 16
    max_batch: int = 64
    timeout_s: float = 1800
    connect_timeout_s: float = 10
    retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30
    launch: dict[str, Any] = field(default_factory=dict)
    gpu: dict[str, Any] = field(default_factory=dict)


@dataclass
class TTSLabConfig:
    dataset: Any = MISSING
    policy: Any = MISSING
    prm: Any = MISSING
    engine: Any = MISSING
    method: Any = MISSING
    plan: list[Any] | None = None
    seed: int = 0
    shard: str = "0/1"
    run_name: str = MISSING
    run_dir: str = MISSING
    progress: bool = True


SCHEMAS = {
    ("dataset", "base_dataset"): DatasetConfig,
    ("policy", "base_policy"): PolicyConfig,
    ("prm", "base_prm"): PRMConfig,
    ("method", "base_method"): MethodConfig,
    ("engine", "base_llamacpp"): LlamaCppEngineConfig,
    ("engine", "base_sglang"): SGLangEngineConfig,
}


ENGINES = tuple(schema.name for (group, _), schema in SCHEMAS.items() if group == "engine")


def register_schemas() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=TTSLabConfig)
    for (group, name), schema in SCHEMAS.items():
        cs.store(group=group, name=name, node=schema)


# ---------------------------------------------------------------- composition
_NOISE = ("full_key:", "object_type=", "reference_type=", "HYDRA_FULL_ERROR", "OC_CAUSE")


def one_line(err: BaseException) -> str:
    """Hydra's and OmegaConf's composition errors as one line (they span several, with debugging noise)."""
    text = str(err).split("Config search path")[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(_NOISE)]
    msg = " ".join(lines) or type(err).__name__
    cause = err.__cause__
    if cause is not None and msg.startswith("Error merging override"):  # the cause says what was wrong
        msg += ": " + one_line(cause)
    msg = msg.replace("ConfigKeyError raised while composing config: ", "")
    msg = re.sub(r"\bbase_\w+\s*", "", msg)  # the schemas are not options to choose
    return msg.replace("Available options in", "; options in").replace(" ;", ";").strip()


def _preset_plan(name: str) -> list[str]:
    """The methods of a preset's plan (conf/experiment/<name>.yaml), [] when it has none."""
    from importlib.resources import files

    path = files(CONFIG_MODULE) / "experiment" / f"{name}.yaml"
    if not path.is_file():
        return []  # an unknown preset: Hydra's composition names it and its options
    plan = OmegaConf.load(str(path)).get("plan")
    return [str(item.get("name")) for item in plan] if isinstance(plan, list | ListConfig) else []


def single_method_overrides(overrides: list[str] | tuple[str, ...]) -> list[str]:
    """The command line's meaning for the preset, in three rules (`compose` and the Hydra path both apply them).

    1. The default composition is the quickstart, a CPU preset with CPU token limits (384 per solution, 192
       per step, 10 steps). `engine=sglang` without `experiment=` sets `experiment=none`: a GPU run takes the
       study's limits of conf/method/ (8192 new tokens; search 2048 per step, 8192 in all, 40 steps) and its
       own run name, unless a preset or an override names others.
    2. A method chosen on the command line (`method=`, `method.<key>=`) without a preset or plan runs alone
       (`plan=null`): `ttslab run method=dvts` runs DVTS on the quickstart's problems with its limits.
    3. Method overrides beside a plan (a preset's, or `plan=` / `plan.<i>.<key>=`) are refused with one line:
       a plan's items are the methods that run, so a `method.*` value would change none of them (or only
       some). Change the plan's items instead (`plan.3.beam_width=3`), or drop the preset.
    """
    overrides = list(overrides)
    pairs = [(o.lstrip("+~").split("=", 1)[0], o.split("=", 1)[1] if "=" in o else "") for o in overrides]
    method_keys = [o for (k, _), o in zip(pairs, overrides) if k == "method" or k.startswith("method.")]
    presets = [v for k, v in pairs if k == "experiment"]
    planned = [o for (k, _), o in zip(pairs, overrides) if k == "plan" or k.startswith("plan.")]
    for o in method_keys:  # a bad budget is named as such, before any advice about plans
        key, _, value = o.lstrip("+~").partition("=")
        numbers = [v for v in value.split(",") if re.fullmatch(r"\s*[+-]?\d+(\.\d*)?\s*", v)]  # (sweeps: 4,16)
        if key == "method.budget" and any(not v.strip().isdigit() or int(v) < 1 for v in numbers):
            raise ConfigError(f"{o}: expected an integer >= 1")
    if method_keys:
        plans = {p: _preset_plan(p) for v in presets for p in v.split(",") if p not in ("", "null", "none")}
        with_plan = {p: m for p, m in plans.items() if m}
        if with_plan or planned:
            preset, methods = next(iter(with_plan.items()), ("", []))
            where = f"experiment={preset} runs its plan ({', '.join(methods)})" if preset else f"{planned[0]} sets the plan"
            chosen = [o.split("=", 1)[1] for o in method_keys if o.lstrip("+~").startswith("method=")]
            i = str(methods.index(chosen[0])) if chosen and chosen[0] in methods else "<i>"
            items = []
            for o in method_keys:
                key, _, value = o.lstrip("+~").partition("=")
                if "." in key:  # a plan item lists its budgets
                    key = key.split(".", 1)[1]
                    items.append(f"plan.{i}.budgets=[{value}]" if key == "budget" else f"plan.{i}.{key}={value}")
            items = items or [f"plan.{i}.budgets=[4]"]
            raise ConfigError(
                f"{' '.join(method_keys)}: {where}, which these method overrides would not change; set the plan's "
                f"items instead (e.g. {' '.join(items)}, or the whole plan=[...]), or run one method alone without a "
                "preset or plan (ttslab run method=... method.<key>=...)"
            )
    if any(k == "engine" and v == "sglang" for k, v in pairs) and not presets:
        overrides.append("experiment=none")  # the study's limits, not the CPU quickstart's
    elif method_keys and not presets and not planned:
        overrides.append("plan=null")
    return overrides


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config `ttslab run <overrides>` uses (Hydra's compose API over the packaged conf/)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return hydra_compose(config_name="config", overrides=single_method_overrides(overrides))
    except Exception as e:  # Hydra raises several types; all mean "this override/composition is wrong"
        raise ConfigError(one_line(e)) from e
    finally:
        GlobalHydra.instance().clear()


# ---------------------------------------------------------------- methods
@dataclass(frozen=True)
class MethodSpec:
    """One method at one budget, validated: what the search loop runs."""

    name: str
    budget: int
    beam_width: int = 4
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 8192
    max_step_tokens: int = 2048
    max_steps: int = 40
    step_delimiter: str = "\n\n"
    options: tuple[tuple[str, Any], ...] = ()  # method.options as sorted (key, value) pairs (hashable)

    @property
    def strategy(self) -> type[Strategy]:
        return strategy_class(self.name)

    def settings(self) -> dict[str, Any]:
        """What a record of this spec depends on besides the budget (stored in every record)."""
        d = asdict(self)
        d.pop("budget")
        if not self.strategy.width_divides_budget:
            d.pop("beam_width")
        d["options"] = dict(self.options)
        if not self.options:  # methods without options keep the settings their records always had
            d.pop("options")
        return d


SPEC_KEYS = tuple(f.name for f in fields(MethodSpec))


def describe_limits(specs: list[list[MethodSpec]]) -> list[str]:
    """One line per method of a run: budgets, sampling and the token limits it runs with (the run's header)."""
    lines = []
    for group in specs:
        s = group[-1]
        budgets = ",".join(str(g.budget) for g in group)
        width = f" M={s.beam_width}" if s.strategy.width_divides_budget else ""
        if s.strategy.stepwise:
            limits = f"{s.max_step_tokens} new tokens per step, {s.max_tokens} in all, at most {s.max_steps} steps"
        else:
            limits = f"{s.max_tokens} new tokens per solution"
        lines.append(f"{s.name:<12} N={budgets}{width}  T={s.temperature:g} top_p={s.top_p:g}  {limits}")
    return lines


def _check_spec(spec: dict[str, Any], where: str) -> None:
    name = spec["name"]
    cls = strategy_class(name)
    for key in ("budget", "beam_width", "max_tokens", "max_step_tokens", "max_steps"):
        v = spec.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{where}.{key}={v!r}: expected an integer >= 1")
    if not 0.0 <= float(spec["temperature"]) <= 10.0:
        raise ConfigError(f"{where}.temperature={spec['temperature']!r}: expected a number in [0, 10]")
    if not 0.0 < float(spec["top_p"]) <= 1.0:
        raise ConfigError(f"{where}.top_p={spec['top_p']!r}: expected a number in (0, 1]")
    if not spec["step_delimiter"]:
        raise ConfigError(f"{where}.step_delimiter is empty: expected a string such as '\\n\\n'")
    m, n = spec["beam_width"], spec["budget"]
    if cls.width_divides_budget and n % m:
        lower, upper = (n // m) * m, (n // m + 1) * m
        hint = f"{lower} or {upper}" if lower else f"{upper}"
        raise ConfigError(
            f"{where}.budget={n} is not a multiple of {where}.beam_width={m}, as {name} needs "
            f"(N/M beams of width M): use budget {hint}, or another beam_width"
        )


def method_specs(cfg: DictConfig) -> list[list[MethodSpec]]:
    """The methods a config runs, each as a list of validated specs (one per budget, ascending).

    Without `plan`, the one method of `cfg.method`; with a plan, each item starts from its method's
    config file (or from `cfg.method` when it names the same method) and overrides fields of it.
    """
    items = OmegaConf.to_container(cfg.plan, resolve=True) if cfg.get("plan") else [{}]
    base = OmegaConf.to_container(cfg.method, resolve=True)
    overrides = OmegaConf.to_container(cfg.policy.sampling, resolve=True) if cfg.policy.get("sampling") else {}
    allowed = set(SPEC_KEYS) | {"budgets", "report_rule"}  # report_rule: read by ttslab.analysis.rules
    out = []
    for n, item in enumerate(items):
        where = f"plan[{n}]" if cfg.get("plan") else "method"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping like {{name: best_of_n, budgets: [4, 16]}}, got {item!r}")
        name = item.get("name", base.get("name"))
        cls = strategy_class(name)
        spec = {**(base if name == base.get("name") else method_defaults(name)), **item}
        unknown = set(spec) - allowed
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        rule = spec.pop("report_rule", MethodConfig.report_rule)
        from ttslab.search.selection import RULES

        if rule not in RULES:
            raise ConfigError(f"{where}.report_rule={rule!r}: expected one of {', '.join(RULES)}")
        spec["options"] = _method_options(cls, spec.get("options"), where)
        budgets = spec.pop("budgets", None)
        if budgets is None:
            budgets = [spec.get("budget")]
        if not isinstance(budgets, list) or not budgets:
            raise ConfigError(f"{where}.budgets={budgets!r}: expected a list of integers, e.g. [4, 16]")
        for key, value in (overrides or {}).items():  # the policy's own sampling settings (R1: T=0.6)
            if key in SPEC_KEYS and not (cls.greedy and key == "temperature"):
                spec[key] = value
        specs = set()
        for b in budgets:
            one = {**spec, "budget": cls.fixed_budget or b}
            _check_spec({**one, "budget": b}, where)  # a fixed-budget method (CoT) still refuses a bad budget
            if cls.fixed_budget:
                _check_spec(one, where)
            specs.add(MethodSpec(**one))
        out.append(sorted(specs, key=lambda s: s.budget))
    return out


def _method_options(cls: type[Strategy], options: Any, where: str) -> tuple[tuple[str, Any], ...]:
    """`method.options` checked by the strategy that reads them (ttslab.search.after_study.OptionsStrategy)."""
    check = getattr(cls, "check_options", None)
    if check is not None:
        return check(options, where)
    if options:
        raise ConfigError(f"{where}.options={options!r}: method {cls.name} takes no options")
    return ()


def method_defaults(name: str) -> dict[str, Any]:
    """A plan item for another method starts from that method's config file in conf/method/."""
    from importlib.resources import files

    path = files(CONFIG_MODULE) / "method" / f"{name}.yaml"
    if not path.is_file():
        if ":" in name:  # a strategy of the user's own: the schema's defaults
            return {k: v for k, v in asdict(MethodConfig()).items() if v is not MISSING and k != "name"}
        raise ConfigError(f"method {name!r} has no config file conf/method/{name}.yaml")
    data = OmegaConf.to_container(OmegaConf.load(str(path)), resolve=True)
    data.pop("defaults", None)
    return data  # type: ignore[return-value]


# ---------------------------------------------------------------- validation
def uses_prm(cfg: DictConfig, specs: list[list[MethodSpec]]) -> bool:
    """Whether any method of the run scores with the configured PRM."""
    return cfg.prm.type != "none" and any(s.strategy.uses_prm for g in specs for s in g)


def validate(cfg: DictConfig) -> list[list[MethodSpec]]:
    """Every check that needs no model and no file content; returns the method specs."""
    from ttslab.rewards import ENGINE_PRM_TYPES, IN_PROCESS_PRM_TYPES, PRM_TYPES

    specs = method_specs(cfg)
    if cfg.prm.type not in PRM_TYPES:
        raise ConfigError(f"prm.type={cfg.prm.type!r} is not known; expected one of {', '.join(PRM_TYPES)}")
    needs = sorted({s.name for g in specs for s in g if s.strategy.needs_prm})
    if needs and cfg.prm.type == "none":
        raise ConfigError(f"{' and '.join(needs)} need a PRM to guide the search, but prm=none: "
                          "set prm= to a PRM config (e.g. prm=cpu_judge)")
    try:  # the policy's BOS is its tokenizer's fact (conf/policy/*.yaml); its chat family must write exactly it
        from ttslab.prompts import check_bos

        check_bos(cfg.policy.family, cfg.policy.get("bos_token"), cfg.policy.name)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if cfg.engine.name not in ENGINES:  # (the group's schema already holds it; a hand-made config may not)
        raise ConfigError(f"engine.name={cfg.engine.name!r} is unknown; expected one of {', '.join(ENGINES)}")
    if cfg.engine.name == "sglang":  # sgl-model-gateway is not spoken (ttslab.engines.sglang.ROUTER_REFUSED)
        from ttslab.engines.sglang import ROUTER_REFUSED

        for role in ("policy", "prm"):
            if OmegaConf.select(cfg, f"engine.{role}.router"):
                raise ConfigError(ROUTER_REFUSED.format(role=role))
    try:
        i, k = (int(x) for x in str(cfg.shard).split("/"))
        assert 0 <= i < k
    except (ValueError, AssertionError):
        raise ConfigError(f"shard={cfg.shard!r}: expected i/k with 0 <= i < k, e.g. 0/4") from None
    limit = cfg.dataset.limit
    if limit is not None and limit < 1:
        raise ConfigError(f"dataset.limit={limit}: expected a positive integer or null")
    if uses_prm(cfg, specs) and cfg.prm.type in IN_PROCESS_PRM_TYPES and cfg.engine.name != "llamacpp":
        raise ConfigError(f"prm={cfg.prm.name} (type {cfg.prm.type}) reads the model in-process and needs "
                          f"engine=llamacpp, but engine={cfg.engine.name}: choose a PRM an SGLang server can serve "
                          "(e.g. prm=rlhflow-8b-deepseek-data, or prm=cpu_judge on CPU)")
    if cfg.engine.name == "llamacpp":
        if not cfg.policy.model:
            raise ConfigError(f"policy {cfg.policy.name!r} has no GGUF model (policy.model is null), so it cannot "
                              "run on engine=llamacpp: use engine=sglang, or set policy.model to a .gguf path")
        if uses_prm(cfg, specs) and cfg.prm.type in ENGINE_PRM_TYPES and not cfg.prm.model:
            raise ConfigError(f"prm {cfg.prm.name!r} has no model (prm.model is null) for engine=llamacpp")
    check_ranges(cfg, specs)
    return specs


MAX_BUDGET = 1 << 16  # far above the study's 256; a larger N is a typo, not an experiment
# engine.<key>: (lowest, highest or None, what it is); null allowed where the schema says `| None`
ENGINE_RANGES: dict[str, dict[str, tuple[float, float | None, str]]] = {
    "llamacpp": {"n_threads": (1, 1024, "CPU threads (null: all cores)"),
                 "max_sequences": (1, 256, "KV sequences of the context (llama.cpp allows up to 256)"),
                 "n_ctx_per_sequence": (64, 1 << 20, "tokens of context per sequence"),
                 "n_batch": (1, 1 << 20, "tokens per llama_decode batch")},
    "sglang": {"concurrency": (1, 1 << 16, "requests in flight"), "max_batch": (1, 1 << 16, "requests per batch"),
               "timeout_s": (1e-3, None, "seconds"), "connect_timeout_s": (1e-3, None, "seconds"),
               "retries": (0, 100, "retries"), "backoff_s": (0, None, "seconds"), "max_backoff_s": (0, None, "seconds")},
}


def check_ranges(cfg: DictConfig, specs: list[list[MethodSpec]]) -> None:
    """Values the schema types allow but no run can use: engine sizes, empty budget lists, absurd budgets."""
    for where, node in [("method", cfg.method)] + [(f"plan[{i}]", it) for i, it in enumerate(cfg.get("plan") or [])]:
        budgets = node.get("budgets") if hasattr(node, "get") else None
        if budgets is not None and len(budgets) == 0:
            raise ConfigError(f"{where}.budgets=[]: expected a non-empty list of budgets, e.g. [4, 16] "
                              "(or null to use budget)")
    for s in (s for g in specs for s in g):
        if s.budget > MAX_BUDGET:
            raise ConfigError(f"{s.name} budget={s.budget}: expected at most {MAX_BUDGET} generations per step")
    ranges = ENGINE_RANGES.get(cfg.engine.name, {})
    for key, (low, high, what) in ranges.items():
        if key not in cfg.engine:  # a schema without this setting (hand-made configs, older presets)
            continue
        v = cfg.engine.get(key)
        if v is None and key == "n_threads":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < low or (high is not None and v > high):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise ConfigError(f"engine.{key}={v!r}: expected a number {bound} ({what})")
    if cfg.engine.name == "llamacpp" and cfg.engine.n_batch < cfg.engine.max_sequences:
        raise ConfigError(f"engine.n_batch={cfg.engine.n_batch} is below engine.max_sequences="
                          f"{cfg.engine.max_sequences}: every sequence needs a slot in a batch; raise n_batch")
    if cfg.engine.name == "sglang" and cfg.engine.max_backoff_s < cfg.engine.backoff_s:
        raise ConfigError(f"engine.max_backoff_s={cfg.engine.max_backoff_s} is below engine.backoff_s="
                          f"{cfg.engine.backoff_s}")


# ---------------------------------------------------------------- moved to ttslab.records
_MOVED = ("redacted", "run_identity", "check_identity", "check_record_settings", "IDENTITY_FILE")


def __getattr__(name: str):  # the run identity and the secret rule live in ttslab.records now
    if name in _MOVED:
        import ttslab.records

        return getattr(ttslab.records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
