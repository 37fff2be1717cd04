"""Shared by the verifier scripts: stored Best-of-N candidates of run directories, and their readings.

`candidates(run_dir)` lists each problem's largest Best-of-N record's candidates (text already split in
steps, answer key, Math-Verify correctness), with the question text looked up in the run's dataset
(records of MATH-500 hold no problem text). `read_run(...)` teacher-forces every candidate through the
reading model once (`ttslab.rewards.reading.read_steps`, all steps, KV reuse across a problem's
candidates) and caches per-step features in an .npz, so that the benchmark and training need no
regeneration and no second pass over the model.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ttslab.problems import load_problems
from ttslab.rewards.base import ScoreRequest
from ttslab.rewards.confidence import STATISTICS
from ttslab.rewards.probe import step_features
from ttslab.rewards.reading import read_steps

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Candidate:
    problem_id: str
    index: int  # sample index within the problem
    question: str
    steps: tuple[str, ...]
    key: str | None
    correct: bool
    judge_scores: list[float] | None  # step scores stored in the run (the run's PRM), if any


def _dataset_path(run_dir: Path, cfg: dict) -> str:
    path = cfg["dataset"]["path"]
    if path == "bundled" or Path(path).is_absolute():
        return path
    for base in (ROOT, Path.cwd(), run_dir):  # relative paths are relative to where the run was started
        if (base / path).exists():
            return str(base / path)
    return path


def candidates(run_dir: str | Path, method: str = "best_of_n") -> list[Candidate]:
    run_dir = Path(run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    problems = {p.id: p for p in load_problems(_dataset_path(run_dir, cfg), cfg["dataset"].get("format", "auto"),
                                                cfg["dataset"].get("split", "test"))}
    top: dict[str, dict] = {}
    for line in (run_dir / "records.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["method"] == method and (rec["problem_id"] not in top or rec["budget"] > top[rec["problem_id"]]["budget"]):
            top[rec["problem_id"]] = rec
    out = []
    for pid, rec in top.items():
        for i, c in enumerate(rec["candidates"]):
            steps = tuple(c["steps"]) if c.get("steps") else (c["text"],)
            out.append(Candidate(pid, i, problems[pid].question, steps, c.get("key"), bool(c["correct"]),
                                 c.get("step_scores")))
    return out


def read_run(engine, family: str, cands: list[Candidate], cache: Path, window: int = 16, tail: int = 16) -> dict:
    """Per-step features of every candidate (cached in `cache`): X (steps, n_embd + 3), cand (steps,) candidate
    index, step (steps,) step index, plus per-candidate evaluated tokens and step tokens and the seconds."""
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        if len(data["n_steps"]) == len(cands):
            return data
    feats, cand_idx, step_idx, evaluated, step_tokens, n_steps = [], [], [], [], [], []
    start = time.perf_counter()
    by_problem: dict[str, list[int]] = {}
    for i, c in enumerate(cands):
        by_problem.setdefault(c.problem_id, []).append(i)
    readings: dict[int, object] = {}
    for idx in by_problem.values():  # one call per problem: its candidates share the prompt's KV
        for i, r in zip(idx, read_steps(engine, family, [ScoreRequest(cands[i].question, cands[i].steps) for i in idx],
                                        last_only=False)):
            readings[i] = r
    seconds = time.perf_counter() - start
    for i in range(len(cands)):
        r = readings[i]
        x = step_features(r, window, tail)
        feats.append(x)
        cand_idx += [i] * len(x)
        step_idx += list(range(len(x)))
        evaluated.append(r.usage.evaluated_tokens)
        step_tokens.append(sum(len(lp) for lp in r.logprobs))
        n_steps.append(len(x))
    data = {"X": np.vstack(feats).astype(np.float32), "cand": np.array(cand_idx), "step": np.array(step_idx),
            "evaluated": np.array(evaluated), "step_tokens": np.array(step_tokens), "n_steps": np.array(n_steps),
            "seconds": np.array(seconds), "statistics": np.array(STATISTICS)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **data)
    return data


def solution_scores(step_scores: list[np.ndarray], scoring: str) -> np.ndarray:
    """One score per candidate from its step scores, as `ttslab.search.selection.aggregate` does."""
    from ttslab.search.selection import aggregate

    return np.array([aggregate(list(map(float, s)), scoring) for s in step_scores])


def within_problem_pairs(problem_ids: list[str], correct: np.ndarray, scores: np.ndarray) -> dict[str, tuple[float, int]]:
    """Per problem: (wins, pairs) over its (correct, wrong) candidate pairs; a win is correct > wrong, a tie
    half. Problems whose candidates all agree (all correct or all wrong) carry no pair and are left out."""
    out = {}
    for pid in dict.fromkeys(problem_ids):
        m = np.array([p == pid for p in problem_ids])
        good, bad = scores[m & correct], scores[m & ~correct]
        if len(good) and len(bad):
            diff = good[:, None] - bad[None, :]
            out[pid] = (float((diff > 0).sum() + 0.5 * (diff == 0).sum()), diff.size)
    return out


def pooled_auc(pairs: dict[str, tuple[float, int]], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """AUC over all within-problem pairs, with a 95% percentile bootstrap interval over problems."""
    if not pairs:
        return float("nan"), float("nan"), float("nan")
    wins = np.array([w for w, _ in pairs.values()])
    n = np.array([k for _, k in pairs.values()], dtype=float)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(wins), size=(n_boot, len(wins)))
    boot = wins[draw].sum(axis=1) / n[draw].sum(axis=1)
    return float(wins.sum() / n.sum()), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))
