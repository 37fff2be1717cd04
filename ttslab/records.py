"""The record: what one (problem, method, budget) leaves in a run directory, and what a run directory is for.

Everything about the *content* of records lives here; `ttslab.results` only reads and writes them.

* `Record` / `Candidate`: the fields of schema 1 (a record line of records.jsonl);
* `build_record`: the record of one finished search task;
* `run_identity` / `check_identity`: what makes a run directory's records comparable (models, PRM, seed,
  engine, dataset), compared whole on every rerun and merge;
* `check_record_settings`: the method settings each record carries, compared on resume;
* `redacted` / `is_secret`: the one rule for secrets (API keys, tokens, server environments), applied to
  everything ttslab writes or prints.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from ttslab.errors import ConfigError, InputError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ttslab.config import MethodSpec
    from ttslab.grading import Grader
    from ttslab.search.loop import Task

# the run-directory file names the record rules refer to (ttslab.results reads and writes them)
IDENTITY_FILE = "identity.json"
RECORDS_FILE = "records.jsonl"
CONFIG_FILE = "config.yaml"


# ------------------------------------------------------------------------------------------ the schema
class Usage(TypedDict):
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


class Candidate(TypedDict):
    """A final solution. `key` is the canonical answer key used for voting (None: no answer); `subtree`
    the DVTS subtree / Best-of-N sample index; `usage` the policy tokens attributable to it."""

    text: str
    steps: list[str]
    step_scores: list[float] | None
    answer: str | None
    key: str | None
    correct: bool
    finish: str
    subtree: int | None
    usage: Usage
    # only where the engine lowered a request's max_new_tokens to fit the model's context (SGLang's clamp):
    # [{"step": depth, "asked": the method's limit, "sent": what the server got}] along the solution's path
    clamped: NotRequired[list[dict[str, int]]]


class TreeNode(TypedDict, total=False):
    """A search-tree node as `ttslab.search.tree.Tree.as_records` writes it (`clamped` only when the engine
    clamped the request)."""

    id: int
    parent: int | None
    depth: int
    text: str
    score: float | None
    finish: str | None
    subtree: int | None
    valid: bool
    selected: bool
    terminal: bool
    tokens: int
    clamped: Any


class Record(TypedDict, total=False):
    """One line of records.jsonl (schema 1).

    problem_id, source, level, subject, gold       which problem
    policy, policy_params, prm, prm_params, engine who solved and scored it (params for FLOPs)
    method, budget, beam_width, seed, settings     how (budget N; beam_width M for beam search / DVTS)
    candidates                                     the final solutions (BoN: N; beam search, DVTS: N/M)
    selections   {rule: {answer, correct}} for every scoring x voting rule, plus "oracle" (pass@N)
    usage        {"policy": Usage, "prm": Usage} for the whole record
    grading      the grader's report (timeouts, fallbacks)
    tree         search-tree nodes (null for Best-of-N and CoT)
    wall_time_s  seconds from the method's start to this problem's end
    """

    schema: int
    problem_id: str | int
    source: str
    level: int | None
    subject: str | None
    gold: str
    policy: str
    policy_params: float
    prm: str | None
    prm_params: float | None
    engine: str
    method: str
    budget: int
    beam_width: int | None
    seed: int
    settings: dict[str, Any]
    candidates: list[Candidate]
    selections: dict[str, dict[str, Any]]
    usage: dict[str, Usage]
    grading: dict[str, Any]
    tree: list[TreeNode] | None
    wall_time_s: float


def build_record(task: Task, grader: Grader, cfg: DictConfig, budget: int, elapsed: float,
                 has_prm: bool) -> Record:
    """The record of one (problem, method, budget); for nested budgets, the first `budget` samples."""
    from ttslab.grading import extract_answer
    from ttslab.search.selection import select_all

    p = task.problem
    strategy = task.strategy
    cands = task.candidates()
    if strategy.nested_budgets:
        cands = cands[:budget]
    texts = ["".join(steps) for steps, _, _ in cands]
    answers = [extract_answer(t) for t in texts]
    keys, correct = grader.grade(p.answer, answers)
    scores = [s for _, s, _ in cands]
    candidates: list[Candidate] = []
    for (steps, sc, node), text, a, k, ok in zip(cands, texts, answers, keys, correct):
        path = task.tree.path(node)
        usage = {"prompt_tokens": sum(n.usage.prompt_tokens for n in path),
                 "cached_tokens": sum(n.usage.cached_tokens for n in path),
                 "completion_tokens": sum(n.usage.completion_tokens for n in path)}
        candidates.append({"text": text, "steps": steps, "step_scores": sc, "answer": a, "key": k,
                           "correct": ok, "finish": node.finish, "subtree": node.subtree, "usage": usage})
        clamps = [{"step": n.depth, **n.clamp} for n in path if n.clamp]
        if clamps:  # requests whose max_new_tokens the engine lowered to fit the model's context
            candidates[-1]["clamped"] = clamps
    if strategy.stepwise:
        policy_usage = task.tree.usage().as_dict()
        prm_usage = task.prm_usage.as_dict()
        tree = task.tree.as_records()
    else:  # whole solutions: the usage of the samples this budget keeps
        policy_usage = {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0}
        prm_usage = dict(policy_usage)
        for c, (_, _, node) in zip(candidates, cands):
            for k in policy_usage:
                policy_usage[k] += c["usage"][k]
            u = task.solution_prm_usage.get(node.id)
            for k, v in (u.as_dict() if u is not None else {}).items():
                prm_usage[k] += v
        tree = None
    return {
        "problem_id": p.id, "source": p.source, "level": p.level, "subject": p.subject, "gold": p.answer,
        "policy": cfg.policy.name, "policy_params": float(cfg.policy.params),
        "prm": cfg.prm.name if has_prm else None,
        "prm_params": float(cfg.prm.params) if has_prm and cfg.prm.get("params") else None,
        "engine": cfg.engine.name, "method": task.spec.name, "budget": budget,
        "beam_width": task.spec.beam_width if strategy.width_divides_budget else None,
        "seed": int(cfg.seed), "settings": task.spec.settings(),
        "candidates": candidates, "selections": select_all(keys, correct, answers, scores, with_prm=has_prm),
        "usage": {"policy": policy_usage, "prm": prm_usage},
        "grading": dict(getattr(grader, "last_report", None) or {}),
        "tree": tree, "wall_time_s": round(elapsed, 3),
    }


def summary_problem(rec: dict[str, Any]) -> str | None:
    """What a record lacks for the results table (None: nothing), e.g. "usage.policy.completion_tokens"."""
    budget = rec.get("budget")
    if isinstance(budget, int) and budget < 1:
        return f"budget {budget} (expected an integer >= 1)"
    oracle = (rec.get("selections") or {}).get("oracle")
    if not isinstance(oracle, dict) or "correct" not in oracle:
        return "selections.oracle.correct missing"
    usage = rec.get("usage")
    for who, keys in (("policy", ("completion_tokens",)), ("prm", ("prompt_tokens", "cached_tokens"))):
        part = usage.get(who) if isinstance(usage, dict) else None
        for k in keys:
            v = part.get(k) if isinstance(part, dict) else None
            if not isinstance(v, int) or isinstance(v, bool):
                return f"usage.{who}.{k} missing or not an integer"
    for i, c in enumerate(rec.get("candidates") or []):
        if not isinstance(c, dict):
            return f"candidates[{i}] is not an object"
        if "steps" in c and not isinstance(c["steps"], list):
            return f"candidates[{i}].steps is {type(c['steps']).__name__}, expected a list of strings"
    return None


# -------------------------------------------------------------------------------------------- secrets
SECRET = "<not saved>"
# key names whose values are secrets wherever they sit; `env` mappings (server environments) are secret whole
_SECRET_NAME = re.compile(r"^(?:(?:.*[_-])?(?:api[_-]?key|apikey|secret|password|passwd|credentials?|authorization)"
                          r"|(?:.*[_-])?(?:access|auth|api|hf|hub|bearer|refresh|session|github|gh|wandb|openai)"
                          r"[_-]?token|token)$", re.IGNORECASE)
_SECRET_PARENTS = {"env", "environment", "headers"}


def is_secret(path: str) -> bool:
    """Whether a dotted key path holds a secret: `*.api_key`, `*token` names (not `max_tokens`,
    `good_token`...: a label token is `good_token`, an access token `hf_token`), or anything under an
    `env` / `headers` mapping (`engine.launch.env.HF_TOKEN`, `engine.launch.env` itself)."""
    parts = [p for p in re.split(r"[.\[\]]+", path.lstrip("+~")) if p]
    if not parts:
        return False
    if any(p.lower() in _SECRET_PARENTS for p in parts):
        return True
    return bool(_SECRET_NAME.match(parts[-1]))


def _scrub(value: Any) -> Any:
    """A secret value with its form kept: mapping keys stay, every leaf becomes "<not saved>"."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return SECRET if value not in (None, "") else value


def redacted(data: Any, prefix: str = "", resolve: bool = True) -> Any:
    """`data` (a DictConfig or plain containers) with every secret value replaced by "<not saved>".

    Mapping keys are kept (a reader sees *which* variables were set), values in any form (string,
    list, nested mapping) are not. resolve=False keeps interpolations as written (Hydra's own files)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(data, (DictConfig, ListConfig)):
        data = OmegaConf.to_container(data, resolve=resolve)
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            out[k] = _scrub(v) if is_secret(path) else redacted(v, path)
        return out
    if isinstance(data, list):
        return [redacted(v, prefix) for v in data]
    return data


def redact_override(override: str) -> str:
    """A command-line override as it may be printed: `engine.launch.env.HF_TOKEN=<not saved>`."""
    key, eq, _ = override.partition("=")
    return f"{key}={SECRET}" if eq and is_secret(key) else override


# ------------------------------------------------------------------------------------ run identity
def _file_digest(path: str) -> str | None:
    from ttslab.models import sha256_of

    p = Path(path).expanduser()
    return sha256_of(p) if p.is_file() else None


PRM_IDENTITY_KEYS = ("name", "type", "format", "model", "good_token", "bad_token", "step_tag", "format_options",
                     "options")


def run_identity(cfg: DictConfig, specs: list[list[MethodSpec]], model_hashes: dict[str, str | None]) -> dict:
    """Everything that changes what a record holds, besides the method settings each record carries.

    The PRM is always part of it (prm=none as "none"), even for a run of methods that score with none: a
    directory holds one experiment, and the PRM-guided records of a later invocation must not mix with
    another PRM's. Problem filters (ids, levels, limit, shard) are not part of it: they choose which
    problems run, not what a problem's record holds, so a run directory can grow by resuming.
    """
    from omegaconf import OmegaConf

    ident = {
        "policy.name": cfg.policy.name,
        "policy.family": cfg.policy.family,
        "policy.model": cfg.policy.get("model") or cfg.policy.get("hf_id"),
        "policy.model_sha256": model_hashes.get("policy"),
        "seed": int(cfg.seed),
        "engine.name": cfg.engine.name,
        "dataset.path": cfg.dataset.path,
        "dataset.format": cfg.dataset.format,
        "dataset.split": cfg.dataset.split,
        "dataset.file_sha256": _file_digest(cfg.dataset.path) if cfg.dataset.path != "bundled" else "bundled",
    }
    prm = OmegaConf.to_container(cfg.prm, resolve=True)
    ident.update({f"prm.{k}": prm.get(k) for k in PRM_IDENTITY_KEYS})
    # The BOS a logprob PRM's inputs start with changes every score (Math-Shepherd was once scored without
    # its <s>). Kept only when set, so a run directory made before the key existed, with a PRM that has
    # none, still resumes, while an old Math-Shepherd directory (no key) is refused for a run that sends <s>.
    if prm.get("bos_token") is not None:
        ident["prm.bos_token"] = prm["bos_token"]
    ident["prm.model_sha256"] = model_hashes.get("prm")
    return ident


def _json_file(path: Path) -> Any:
    from ttslab.writes import read_regular

    try:
        return json.loads(read_regular(path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not the JSON ttslab wrote ({e}); restore it from a copy, or move the run "
                         "directory aside and start a new one") from None


def read_identity(run_dir: Path) -> dict[str, Any] | None:
    """A run directory's identity.json (None: there is none); anything but a JSON object is refused."""
    path = Path(run_dir) / IDENTITY_FILE
    if not path.exists() and not path.is_symlink():
        return None
    old = _json_file(path)
    if not isinstance(old, dict):
        raise InputError(f"{path}: holds a JSON {type(old).__name__}, expected the object of keys ttslab wrote; "
                         "restore it from a copy, or move the run directory aside")
    return old


def identity_difference(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys on which two identities differ (a key present in only one of them differs too)."""
    missing = object()
    return [k for k in sorted(set(old) | set(new)) if old.get(k, missing) != new.get(k, missing)]


def describe_difference(old: dict[str, Any], new: dict[str, Any], keys: list[str], there: str = "there",
                        here: str = "now") -> str:
    shown = "; ".join(f"{k}: {old.get(k, '(absent)')!r} {there}, {new.get(k, '(absent)')!r} {here}"
                      for k in keys[:4])
    return shown + (f"; and {', '.join(keys[4:])}" if len(keys) > 4 else "")


def check_identity(run_dir: Path, ident: dict[str, Any]) -> None:
    """Refuse a run whose identity differs from the run directory's in any key, naming the keys.

    A directory with records but neither identity.json nor config.yaml cannot be checked, so it is
    refused too (its records may come from any experiment)."""
    RECORDS, CONFIG = RECORDS_FILE, CONFIG_FILE  # the names results.py gives them

    old = read_identity(run_dir)
    if old is None:
        has_records = (run_dir / RECORDS).exists() and (run_dir / RECORDS).stat().st_size > 0
        if (run_dir / CONFIG).exists():  # a run directory written before identity.json existed
            old = _legacy_identity(run_dir / CONFIG, ident)
        elif has_records:
            raise InputError(f"run_dir={str(run_dir)!r} holds records but no {IDENTITY_FILE} or {CONFIG}, so what "
                             "made them cannot be checked; use another run_dir, or restore those files")
        else:
            return
    diff = identity_difference(old, ident)
    if diff:
        raise ConfigError(f"run_dir={str(run_dir)!r} holds records made with other settings "
                          f"({describe_difference(old, ident, diff)}); use another run_dir (or run_name) to keep "
                          "records apart")


def _legacy_identity(config: Path, ident: dict[str, Any]) -> dict[str, Any]:
    """The identity keys an old config.yaml can tell; the keys it cannot are taken as this run's."""
    from omegaconf import OmegaConf

    from ttslab.writes import read_regular

    try:
        legacy = OmegaConf.create(read_regular(config).decode("utf-8"))
    except Exception as e:  # noqa: BLE001 - YAML errors come in many types; all mean "not the config ttslab wrote"
        raise InputError(f"{config}: not the YAML config ttslab wrote ({' '.join(str(e).split())[:160]}); "
                         "restore it, or move the run directory aside") from None
    if not isinstance(legacy, dict) and not OmegaConf.is_dict(legacy):
        raise InputError(f"{config}: not the YAML mapping ttslab wrote; restore it, or move the run directory aside")
    old = dict(ident)
    for k in ("policy.name", "dataset.path", "dataset.format", "seed", "prm.name"):
        old[k] = OmegaConf.select(legacy, k, default=None)
    return old


def check_record_settings(records: list[dict[str, Any]], specs: list[list[MethodSpec]], where: Path) -> None:
    """A finished record is reused on resume only if the method settings that made it are this run's."""
    wanted = {(s.name, s.budget): s.settings() for g in specs for s in g}
    for r in records:
        have = r.get("settings")
        want = wanted.get((r.get("method"), r.get("budget")))
        if have is None or want is None or have == want:
            continue
        diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        k = diff[0]
        raise ConfigError(
            f"{where}: records of {r['method']} N={r['budget']} were made with {k}={have.get(k)!r}, this run has "
            f"{k}={want.get(k)!r} (differing: {', '.join(diff)}); use another run_dir to keep records apart"
        )


def bad_gold(answer: Any) -> bool:
    """A gold answer no grader can match: empty, NaN or infinite."""
    if answer is None:
        return True
    if isinstance(answer, float):
        return not math.isfinite(answer)
    text = str(answer).strip().lower()
    return text in ("", "nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity")
