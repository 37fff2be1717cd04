"""`ttslab run`: turn a resolved config into records in a run directory.

Order of work: validate everything that can be checked without generating (methods, budgets, dataset
file, model files and their hashes) -> open the run directory (resume: skip finished records) -> for
each method, advance all its problems together through the search loop, writing each record as soon
as its problem finishes -> summary.json and the printed table, derived from records.jsonl only.
"""

from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ttslab.problems import Problem, load_problems, shard
from ttslab.grading import Grader, extract_answer
from ttslab.results import CONFIG, RecordWriter, record_key
from ttslab.summary import write_summary
from ttslab.search.loop import MethodSpec, Task, make_task, run_tasks
from ttslab.search.selection import select_all

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
METHODS = ("cot", "best_of_n", "beam_search", "dvts")
# settings that must match for a rerun to resume into an existing run directory
IDENTITY = ("policy.name", "prm.name", "dataset.path", "dataset.format", "seed")


class ConfigError(ValueError):
    pass


def method_specs(cfg: DictConfig) -> list[list[MethodSpec]]:
    """The methods to run, each as a list of specs (one per budget), validated."""
    items = OmegaConf.to_container(cfg.plan, resolve=True) if cfg.get("plan") else [{}]
    base = OmegaConf.to_container(cfg.method, resolve=True)
    overrides = OmegaConf.to_container(cfg.policy.sampling, resolve=True) if cfg.policy.get("sampling") else {}
    known = {f.name for f in fields(MethodSpec)}
    out = []
    for n, item in enumerate(items):
        where = f"plan[{n}]" if cfg.get("plan") else "method"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping like {{name: best_of_n, budgets: [4, 16]}}, got {item!r}")
        name = item.get("name", base.get("name"))
        if name not in METHODS:
            raise ConfigError(f"{where}.name={name!r} is not a method; expected one of {', '.join(METHODS)}")
        # a plan item starts from the method's config file (or from `method` with its overrides)
        spec = {**(base if name == base.get("name") else _method_defaults(name)), **item}
        budgets = spec.pop("budgets", None) or [spec.get("budget")]
        for key, value in overrides.items():
            if key in known and not (name == "cot" and key == "temperature"):
                spec[key] = value
        unknown = set(spec) - known
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(known | {'budgets'})}")
        specs = []
        for b in budgets:
            if not isinstance(b, int) or isinstance(b, bool) or b < 1:
                raise ConfigError(f"{where}.budget={b!r}: expected an integer >= 1")
            try:
                specs.append(MethodSpec(**{**spec, "budget": 1 if name == "cot" else b}))
            except ValueError as e:
                raise ConfigError(f"{where}: {e}") from None
        out.append(sorted(set(specs), key=lambda s: s.budget))
    return out


def _method_defaults(name: str | None) -> dict[str, Any]:
    """A plan item for another method starts from that method's config file."""
    path = CONF_DIR / "method" / f"{name}.yaml"
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def needs_prm(specs: list[list[MethodSpec]]) -> bool:
    return any(s.name != "cot" for group in specs for s in group)


def check_identity(run_dir: Path, cfg: DictConfig) -> None:
    """A rerun into an existing run directory must be the same experiment, or records would mix."""
    old_path = run_dir / CONFIG
    if not old_path.exists():
        return
    old = OmegaConf.load(old_path)
    for key in IDENTITY:
        a, b = OmegaConf.select(old, key), OmegaConf.select(cfg, key)
        if a != b:
            raise ConfigError(
                f"run_dir={str(run_dir)!r} holds a run with {key}={a!r}, but this run has {key}={b!r}; "
                "choose another run_dir (or run_name) to keep records apart"
            )


def build_record(task: Task, grader: Grader, cfg: DictConfig, budget: int, elapsed: float) -> dict[str, Any]:
    """The record of one (problem, method, budget); for Best-of-N the first `budget` samples."""
    p: Problem = task.problem
    cands = task.candidates()
    if task.spec.name in ("best_of_n", "cot"):
        cands = cands[:budget]
    texts = ["".join(steps) for steps, _, _ in cands]
    answers = [extract_answer(t) for t in texts]
    keys, correct = grader.grade(p.answer, answers)
    scores = [s for _, s, _ in cands]
    candidates = []
    policy_usage = {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0}
    prm_usage = {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0}
    for (steps, sc, node), text, a, k, ok in zip(cands, texts, answers, keys, correct):
        path = task.tree.path(node)
        usage = {"prompt_tokens": sum(n.usage.prompt_tokens for n in path),
                 "cached_tokens": sum(n.usage.cached_tokens for n in path),
                 "completion_tokens": sum(n.usage.completion_tokens for n in path)}
        candidates.append({"text": text, "steps": steps, "step_scores": sc, "answer": a, "key": k,
                           "correct": ok, "finish": node.finish, "subtree": node.subtree, "usage": usage})
    if task.spec.name in ("best_of_n", "cot"):
        for c, (_, _, node) in zip(candidates, cands):
            for k in policy_usage:
                policy_usage[k] += c["usage"][k]
            u = task.solution_prm_usage.get(node.id)
            if u is not None:
                for k, v in u.as_dict().items():
                    prm_usage[k] += v
        tree = None
    else:
        policy_usage = task.tree.usage().as_dict()
        prm_usage = task.prm_usage.as_dict()
        tree = task.tree.as_records()
    has_prm = task.spec.name != "cot" and cfg.prm.get("type", "none") != "none"
    selections = select_all(keys, correct, answers, scores, with_prm=has_prm)
    return {
        "problem_id": p.id, "source": p.source, "level": p.level, "subject": p.subject, "gold": p.answer,
        "policy": cfg.policy.name, "policy_params": float(cfg.policy.params),
        "prm": cfg.prm.name if has_prm else None,
        "prm_params": float(cfg.prm.params) if has_prm and cfg.prm.get("params") else None,
        "engine": cfg.engine.name, "method": task.spec.name, "budget": budget,
        "beam_width": task.spec.beam_width if task.spec.name in ("beam_search", "dvts") else None,
        "seed": int(cfg.seed),
        "candidates": candidates, "selections": selections,
        "usage": {"policy": policy_usage, "prm": prm_usage},
        "tree": tree, "wall_time_s": round(elapsed, 3),
    }


def run(cfg: DictConfig) -> Path:
    """Run an experiment config; returns the run directory."""
    from tqdm.auto import tqdm

    from ttslab.engines import build_engine
    from ttslab.models import resolve
    from ttslab.rewards import build_reward_model

    specs = method_specs(cfg)
    ds = cfg.dataset
    problems = shard(
        load_problems(ds.path, ds.format, ds.split, ds.limit, ds.ids, ds.levels, source=ds.name), cfg.shard
    )
    from ttslab.rewards import PRM_TYPES

    if cfg.prm.get("type") not in PRM_TYPES:
        raise ConfigError(f"prm.type={cfg.prm.get('type')!r} is not known; expected one of {list(PRM_TYPES)}")
    use_prm = needs_prm(specs) and cfg.prm.type != "none"
    if any(s.name in ("beam_search", "dvts") for g in specs for s in g) and not use_prm:
        raise ConfigError("beam_search and dvts need a PRM: set prm= to a config other than none (e.g. prm=cpu_judge)")
    if cfg.engine.name == "llamacpp":  # fail on a missing or corrupt model before any generation
        resolve(cfg.policy.model) if cfg.policy.get("model") else None
        if use_prm and cfg.prm.get("model"):
            resolve(cfg.prm.model)
    run_dir = Path(cfg.run_dir)
    check_identity(run_dir, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG).write_text(OmegaConf.to_yaml(cfg, resolve=True))

    engine = build_engine(cfg.engine, cfg.policy, "policy", run_dir)
    prm = None
    prm_engines: list = []
    if use_prm:
        def engine_factory(spec: str):
            prm_engines.append(build_engine(cfg.engine, {**OmegaConf.to_container(cfg.prm), "model": spec}, "prm", run_dir))
            return prm_engines[-1]
        prm = build_reward_model(cfg.prm, engine_factory)
    timings: dict[str, float] = {}
    writer = RecordWriter(run_dir)
    try:
        with Grader() as grader:
            for group in specs:
                spec = group[-1]  # Best-of-N: the largest budget's samples serve every smaller budget
                budgets = [s.budget for s in group]
                key_prm = cfg.prm.name if (use_prm and spec.name != "cot") else None
                todo_specs = group if spec.name in ("beam_search", "dvts") else [spec]
                tasks = []
                for s in todo_specs:
                    for p in problems:
                        wanted = budgets if s is spec and spec.name in ("best_of_n", "cot") else [s.budget]
                        if all(writer.has((p.id, s.name, b, key_prm, int(cfg.seed))) for b in wanted):
                            continue
                        tasks.append((make_task(p, s), wanted))
                if not tasks:
                    continue
                bar = tqdm(total=len(tasks), desc=f"{spec.name} N={','.join(map(str, budgets))}",
                           disable=not cfg.progress, unit="problem")
                start = time.perf_counter()
                wanted_of = {id(t): w for t, w in tasks}

                def on_done(task: Task) -> None:
                    elapsed = time.perf_counter() - start
                    for b in wanted_of[id(task)]:
                        rec = build_record(task, grader, cfg, b, elapsed)
                        if not writer.has(record_key(rec)):
                            writer.write(rec)
                    bar.update(1)

                run_tasks([t for t, _ in tasks], engine, prm if spec.name != "cot" else None,
                          cfg.policy.family, int(cfg.seed), on_done=on_done)
                bar.close()
                timings[f"{spec.name}"] = timings.get(spec.name, 0.0) + time.perf_counter() - start
    finally:
        writer.close()
        if prm is not None:
            prm.close()
        for e in prm_engines:
            e.close()
        engine.close()
    write_summary(run_dir, timings)
    return run_dir


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config `ttslab run <overrides>` would use, for notebooks and tests (Hydra's compose API)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def run_experiment(overrides: list[str] | tuple[str, ...] = ("experiment=quickstart",)) -> Path:
    """Run from Python (a notebook): the same as `ttslab run <overrides>`; returns the run directory."""
    return run(compose(overrides))
