"""Run directories: resolved config, append-only records, resume, shard merge, loading.

A run directory holds
    config.yaml      the resolved Hydra config that made it
    records.jsonl    one JSON line per (problem, method, budget), appended and flushed as each finishes
    summary.json     derived from records.jsonl only (rewritten at the end of a run)

Record fields (schema 1):
    problem_id, source, level, subject, gold              which problem
    policy, policy_params, prm, prm_params, engine        who solved and scored it (params for FLOPs)
    method, budget, beam_width, seed                      how (budget N; beam_width M for beam/DVTS)
    candidates: [{text, steps, step_scores, answer, key, correct, finish, subtree, usage}]
        the final solutions (BoN: N; beam search and DVTS: N/M). `key` is the canonical answer key used
        for voting (None: no answer), `subtree` the DVTS subtree / BoN sample index, `usage` the policy
        tokens attributable to that candidate.
    selections: {rule: {answer, correct}} for every scoring x voting rule, plus "oracle" (pass@N)
    usage: {"policy": TokenUsage dict, "prm": TokenUsage dict} for the whole record
    tree: search-tree nodes [{id, parent, depth, text, score, finish, selected}] (null for BoN/CoT)
    wall_time_s
A crash loses at most the record being written: a torn last line is ignored (and repaired) on resume.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

SCHEMA = 1
RECORDS = "records.jsonl"
CONFIG = "config.yaml"
SUMMARY = "summary.json"


def record_key(rec: dict[str, Any]) -> tuple:
    """Identity of a record inside a run: a rerun skips keys it already has."""
    return (str(rec["problem_id"]), rec["method"], int(rec["budget"]), rec.get("prm"), int(rec.get("seed", 0)))


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete records of a run directory (or a records.jsonl file); a torn last line is skipped."""
    p = Path(path)
    if p.is_dir():
        p = p / RECORDS
    if not p.exists():
        return []
    out = []
    with p.open("r", encoding="utf-8") as f:
        lines = f.readlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if n == len(lines) and not line.endswith("\n"):
                continue  # the write of the last record was interrupted: it is redone on resume
            raise ValueError(f"{p}:{n}: not a JSON record ({e.msg})") from e
    return out


class RecordWriter:
    """Append-only writer: one line per record, flushed and fsynced so a kill loses nothing finished."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / RECORDS
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        self.done: set[tuple] = {record_key(r) for r in read_records(self.path)}
        self._f = self.path.open("a", encoding="utf-8")

    def _repair_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as f:
                f.truncate(cut)

    def has(self, key: tuple) -> bool:
        return key in self.done

    def write(self, rec: dict[str, Any]) -> None:
        rec = {"schema": SCHEMA, **rec}
        key = record_key(rec)
        if key in self.done:
            return
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.done.add(key)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def merge_runs(shard_dirs: Iterable[str | os.PathLike], out_dir: str | os.PathLike) -> int:
    """Combine shard run directories into one (deduplicated by record key). Returns the record count."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shard_dirs = [Path(d) for d in shard_dirs]
    config = next((d / CONFIG for d in shard_dirs if (d / CONFIG).exists()), None)
    if config is not None and not (out / CONFIG).exists():
        (out / CONFIG).write_text(config.read_text())
    n = 0
    with RecordWriter(out) as w:
        for d in shard_dirs:
            if not (d / RECORDS).exists():
                raise FileNotFoundError(f"{d}: no {RECORDS} (is this a ttslab run directory?)")
            for rec in read_records(d):
                rec.pop("schema", None)
                before = len(w.done)
                w.write(rec)
                n += len(w.done) - before
    return len(read_records(out))


@dataclass
class Run:
    """A run directory loaded for analysis."""

    path: Path
    records: list[dict[str, Any]]

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Run":
        p = Path(path)
        if not (p / RECORDS).exists():
            raise FileNotFoundError(f"{p}: no {RECORDS}; expected a run directory written by `ttslab run`")
        return cls(p, read_records(p))


def iter_candidates(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for r in records:
        for i, c in enumerate(r["candidates"]):
            yield {"problem_id": r["problem_id"], "method": r["method"], "budget": r["budget"], "index": i, **c}


def records_frame(records: Iterable[dict[str, Any]]):
    """One row per (record, selection rule): the tidy table analysis and summaries start from."""
    import pandas as pd

    rows = []
    for r in records:
        base = {
            "problem_id": str(r["problem_id"]), "source": r.get("source"), "level": r.get("level"),
            "policy": r.get("policy"), "prm": r.get("prm"), "method": r["method"], "budget": r["budget"],
            "seed": r.get("seed", 0),
            "policy_completion_tokens": r["usage"]["policy"]["completion_tokens"],
            "wall_time_s": r.get("wall_time_s", 0.0),
        }
        for rule, sel in r["selections"].items():
            rows.append({**base, "rule": rule, "correct": bool(sel["correct"])})
    return pd.DataFrame(rows)
