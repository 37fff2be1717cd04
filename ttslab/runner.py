"""`ttslab run`: turn a composed config into records in a run directory.

Order of work:
  1. `preflight`: everything that can fail without generating — the config (ttslab.config.validate),
     the dataset file and filters, the dependencies of the PRM, the model files and their hashes, the
     run directory (writable, not locked by another run, same identity, readable records);
  2. lock the run directory, load the engines, then for each method advance all its problems together
     through the search loop, appending each record as soon as its problem finishes (resume: finished
     records are skipped);
  3. summary.json and the printed table, derived from records.jsonl only.
A run that fails before writing any record leaves no directory behind (if it created it).
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ttslab.config import MethodSpec, compose, uses_prm, validate
from ttslab.errors import ConfigError, InputError
from ttslab.grading import Grader
from ttslab.models import model_sha256
from ttslab.problems import Problem, load_problems, shard
from ttslab.records import (
    IDENTITY_FILE,
    bad_gold,
    build_record,
    check_identity,
    check_record_settings,
    redacted,
    run_identity,
)
from ttslab.results import (
    CONFIG,
    INVOCATIONS,
    RecordWriter,
    check_records,
    check_run_dir_contents,
    lock_run_dir,
    read_records,
    record_key,
    remove_created,
)
from ttslab.rewards import ENGINE_PRM_TYPES
from ttslab.search.loop import Task, make_task, run_tasks
from ttslab.summary import write_summary


@dataclass
class RunPlan:
    """What preflight established: the run is possible, and with what."""

    cfg: DictConfig
    specs: list[list[MethodSpec]]
    problems: list[Problem]
    use_prm: bool
    run_dir: Path
    identity: dict[str, Any]


def _check_dependencies(cfg: DictConfig, use_prm: bool) -> None:
    if use_prm and cfg.prm.type == "classifier":
        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(f"prm={cfg.prm.name} is a classifier PRM run with transformers in-process, but "
                              f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: "
                              'pip install -e ".[gpu]" and a torch build')
    if cfg.engine.name == "llamacpp" and importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError('engine=llamacpp needs llama-cpp-python: pip install -e ".[cpu]"')


def _check_writable(run_dir: Path) -> None:
    """Write a probe file where the run directory is (or will be created): permissions alone can lie (root)."""
    where = run_dir if run_dir.exists() else next((p for p in run_dir.parents if p.exists()), Path("."))
    try:
        if not where.is_dir():
            raise NotADirectoryError(where)
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as e:
        raise InputError(f"run_dir={str(run_dir)!r}: {where} is not a writable directory ({e.strerror or e}); "
                         "choose a run_dir where you can write") from None


def _checked_run_dir(value: str | None) -> Path:
    """The run directory a config names; empty, the file-system root or a home directory are refused."""
    if value is None or not str(value).strip():
        raise ConfigError("run_dir is empty: expected a directory for this run's records, e.g. run_dir=runs/my-run")
    run_dir = Path(str(value)).expanduser()
    real = run_dir.resolve()
    if real == Path(real.anchor) or real == Path.home().resolve():
        raise ConfigError(f"run_dir={str(value)!r} is {real}: expected a directory of its own for this run's "
                          "records, e.g. run_dir=runs/my-run")
    return run_dir


def preflight(cfg: DictConfig) -> RunPlan:
    """Every check that needs no generation (see the module docstring); raises ttslab.errors."""
    specs = validate(cfg)
    ds = cfg.dataset
    problems = shard(load_problems(ds.path, ds.format, ds.split, ds.limit, ds.ids, ds.levels, source=ds.name),
                     cfg.shard)
    if not problems:
        raise ConfigError(f"shard={cfg.shard}: this shard holds no problem of the {ds.name} selection")
    bad = next((p for p in problems if bad_gold(p.answer)), None)
    if bad is not None:
        raise InputError(f"dataset {ds.path}: problem {bad.id!r} has gold answer {bad.answer!r}, which no answer can "
                         "equal; fix or drop that problem (dataset.ids= selects the others)")
    run_dir = _checked_run_dir(cfg.run_dir)
    use_prm = uses_prm(cfg, specs)
    _check_dependencies(cfg, use_prm)
    hashes: dict[str, str | None] = {}
    if cfg.engine.name == "llamacpp":  # a missing or corrupt model file fails here, not after loading
        hashes["policy"] = model_sha256(cfg.policy.model)
        # the PRM is part of the run's identity even when no method of this invocation scores with it
        if cfg.prm.get("model") and cfg.prm.type in ENGINE_PRM_TYPES:
            hashes["prm"] = model_sha256(cfg.prm.model)
    elif cfg.engine.name == "sglang":  # a placement that cannot fit the GPUs is refused before launching
        from ttslab.plan import check_placement

        check_placement(cfg)
    _check_writable(run_dir)
    identity = run_identity(cfg, specs, hashes)
    if run_dir.exists():
        check_run_dir_contents(run_dir)
        check_identity(run_dir, identity)
        check_records(run_dir)
        check_record_settings(read_records(run_dir), specs, run_dir)
    return RunPlan(cfg, specs, problems, use_prm, run_dir, identity)


def _write_run_files(plan: RunPlan) -> None:
    """config.yaml and identity.json on the first run; later runs append their config to invocations.jsonl.

    Secrets are redacted (ttslab.records.redacted); nothing is written through a symlink (ttslab.writes)."""
    from ttslab.writes import append_line, write_atomic

    run_dir, cfg = plan.run_dir, plan.cfg
    data = redacted(cfg)
    if not (run_dir / CONFIG).exists():
        write_atomic(run_dir / CONFIG, OmegaConf.to_yaml(OmegaConf.create(data)))
    if not (run_dir / IDENTITY_FILE).exists():
        write_atomic(run_dir / IDENTITY_FILE, json.dumps(plan.identity, indent=1) + "\n")
    append_line(run_dir / INVOCATIONS,
                json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "config": data}))


def _build_engines(plan: RunPlan):
    from ttslab.engines import build_engine
    from ttslab.rewards import build_reward_model

    cfg = plan.cfg
    engine = build_engine(cfg.engine, cfg.policy, "policy", plan.run_dir)
    prm, prm_engines = None, []
    if plan.use_prm:
        def engine_factory(spec: str):
            model_cfg = {**OmegaConf.to_container(cfg.prm, resolve=True), "model": spec}
            prm_engines.append(build_engine(cfg.engine, model_cfg, "prm", plan.run_dir))
            return prm_engines[-1]

        prm = build_reward_model(cfg.prm, engine_factory)
    return engine, prm, prm_engines


def _provenance(cfg: DictConfig, engine, prm_engines: list) -> dict[str, Any]:
    from ttslab.provenance import collect

    servers: dict[str, str] = {}
    for e in [engine, *prm_engines]:
        servers.update(getattr(e, "server_versions", {}))
    return collect({"engine": cfg.engine.name, **({"sglang_servers": servers} if servers else {})})


def run_header(plan: RunPlan) -> str:
    """What a run prints first: where it writes, with what, and every method's budgets and token limits
    (so a GPU run made without a preset shows it has the study's limits, not the CPU quickstart's)."""
    from ttslab.config import describe_limits

    cfg = plan.cfg
    prm = cfg.prm.name if plan.use_prm else "none"
    head = (f"ttslab run {cfg.run_name}: {len(plan.problems)} problems of {cfg.dataset.name}, policy "
            f"{cfg.policy.name}, PRM {prm}, engine {cfg.engine.name}, seed {cfg.seed} -> {plan.run_dir}")
    return "\n".join([head, *("  " + line for line in describe_limits(plan.specs))])


def execute(plan: RunPlan) -> Path:
    """Generate, score, grade and record every (problem, method, budget) the plan still lacks."""
    from tqdm.auto import tqdm

    print(run_header(plan), flush=True)
    cfg, run_dir = plan.cfg, plan.run_dir
    created = [p for p in [run_dir, *run_dir.parents] if not p.exists()]  # what a failure removes again
    run_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    try:
        with lock_run_dir(run_dir):
            engine, prm, prm_engines = _build_engines(plan)
            _write_run_files(plan)
            writer = RecordWriter(run_dir)
            try:
                with Grader() as grader:
                    _run_methods(plan, engine, prm, writer, grader, timings, tqdm)
            finally:
                writer.close()
                if prm is not None:
                    prm.close()
                for e in prm_engines:
                    e.close()
                engine.close()
            write_summary(run_dir, timings, provenance=_provenance(cfg, engine, prm_engines))
    except BaseException:
        records = run_dir / "records.jsonl"
        if created and (not records.exists() or records.stat().st_size == 0):
            remove_created(created)  # nothing finished: leave no half-made directory, nor the parents it made
        raise
    return run_dir


def _pending(plan: RunPlan, group: list[MethodSpec], writer: RecordWriter) -> list[tuple[Task, list[int]]]:
    """One method's tasks that still lack a record, each with the budgets it records. Nested budgets
    share the largest budget's samples: one task per problem."""
    spec, cfg = group[-1], plan.cfg
    key_prm = cfg.prm.name if plan.use_prm and spec.strategy.uses_prm else None
    runs = [(spec, [s.budget for s in group])] if spec.strategy.nested_budgets else [(s, [s.budget]) for s in group]
    return [(make_task(p, s), wanted) for s, wanted in runs for p in plan.problems
            if not all(writer.has((p.id, s.name, b, key_prm, int(cfg.seed))) for b in wanted)]


def _method_rows(run_dir: Path, method: str) -> str:
    """The results table's rows of one method (from the records written so far)."""
    from ttslab.summary import summary_table

    table = summary_table([r for r in read_records(run_dir) if r["method"] == method], n_boot=200)
    return table.to_string(index=False, na_rep="-")


def _run_methods(plan: RunPlan, engine, prm, writer: RecordWriter, grader: Grader, timings: dict[str, float],
                 tqdm, together: bool = False) -> None:
    """Every method of the plan at all its budgets: one method after another, all its problems together.

    Each method's rows print as soon as its last problem finishes; one progress bar covers the whole run,
    its ETA counted in generation budget (generations per depth x token limit per task).
    together=True runs all methods' tasks through one search loop instead (the methods are independent, so
    the engine's batches fill across them). Measured on the quickstart (2 cores, AMD EPYC, 2026-12-03):
    318 s together vs 266 s one after another, the first rows on screen after 111 s vs 19 s (the long
    Best-of-N samples hold every search round back), so one after another stays the default.
    """
    cfg = plan.cfg
    todo: list[tuple[int, Task, list[int]]] = []  # (method index in the plan, task, budgets it records)
    for m, group in enumerate(plan.specs):
        todo += [(m, t, w) for t, w in _pending(plan, group, writer)]
    if not todo:
        return
    names = [group[-1].name for group in plan.specs]
    has_prm = [plan.use_prm and group[-1].strategy.uses_prm for group in plan.specs]
    left = {m: sum(1 for k, _, _ in todo if k == m) for m in {k for k, _, _ in todo}}
    of_task = {id(t): (m, w) for m, t, w in todo}
    weight = {id(t): t.spec.budget * t.spec.max_tokens for _, t, _ in todo}
    bar = tqdm(total=sum(weight.values()), desc=", ".join(dict.fromkeys(names[m] for m in left)),
               disable=not cfg.progress, bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
    start = time.perf_counter()

    def on_done(task: Task) -> None:
        m, wanted = of_task[id(task)]
        elapsed = time.perf_counter() - start
        for b in wanted:
            rec = build_record(task, grader, cfg, b, elapsed, has_prm[m])
            if not writer.has(record_key(rec)):
                writer.write(rec)
        bar.update(weight[id(task)])
        left[m] -= 1
        if left[m] == 0:  # this method is complete: its rows now, the whole table at the end
            timings[names[m]] = timings.get(names[m], 0.0) + elapsed
            bar.write(_method_rows(plan.run_dir, names[m]) + f"\n({names[m]}: {elapsed:.0f} s)")

    for part in ([todo] if together else [[x for x in todo if x[0] == m] for m in sorted(left)]):
        if not together:
            start = time.perf_counter()
        run_tasks([t for _, t, _ in part], engine, prm if any(has_prm[m] for m, _, _ in part) else None,
                  cfg.policy.family, int(cfg.seed), on_done=on_done)
    bar.close()


def run(cfg: DictConfig) -> Path:
    """Run an experiment config; returns the run directory."""
    return execute(preflight(cfg))


def run_experiment(overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """Run from Python (a notebook): the same as `ttslab run <overrides>`; returns the run directory."""
    return run(compose(overrides))
