"""`ttslab export RUN_DIR [--out PATH] [--per candidate|record]`: a run's records as one Parquet file.

Two shapes, both flat enough for pandas, DuckDB, Polars or `datasets.load_dataset("parquet", ...)`:

* ``--per candidate`` (default): one row per final candidate solution, with the fields of the record it
  belongs to (problem, policy, PRM, method, budget, seed) repeated. Columns: the record's scalar fields,
  ``candidate_index``, ``text``, ``steps`` (list of strings), ``step_scores`` (list of floats, null when no
  PRM scored it), ``answer``, ``key``, ``correct``, ``finish``, ``subtree`` and the candidate's token usage.
* ``--per record``: one row per (problem, method, budget) record, as in records.jsonl: scalar fields, one
  ``<rule>_answer`` / ``<rule>_correct`` pair per selection rule (null where the method has no such rule),
  policy and PRM token usage, ``n_candidates``, and the nested ``candidates`` and ``tree`` as JSON text so no
  information is lost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ttslab.errors import InputError

# record fields that are one value per record (schema 1, see ttslab.results)
RECORD_FIELDS: list[tuple[str, str]] = [
    ("problem_id", "string"), ("source", "string"), ("level", "int64"), ("subject", "string"),
    ("gold", "string"), ("policy", "string"), ("policy_params", "float64"), ("prm", "string"),
    ("prm_params", "float64"), ("engine", "string"), ("method", "string"), ("budget", "int64"),
    ("beam_width", "int64"), ("seed", "int64"), ("wall_time_s", "float64"),
]
USAGE_FIELDS = ("prompt_tokens", "cached_tokens", "completion_tokens")


def _arrow_type(name: str):
    import pyarrow as pa

    return {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}[name]


def _check_steps(rec: dict[str, Any], i: int, c: dict[str, Any]) -> None:
    steps = c.get("steps")
    if steps is not None and not (isinstance(steps, list) and all(isinstance(s, str) for s in steps)):
        raise InputError(f"record of problem {rec.get('problem_id')!r}, {rec.get('method')} N={rec.get('budget')}: "
                         f"candidates[{i}].steps is {type(steps).__name__}, expected a list of strings")


def _base(rec: dict[str, Any]) -> dict[str, Any]:
    out = {k: rec.get(k) for k, _ in RECORD_FIELDS}
    out["problem_id"] = str(out["problem_id"])
    return out


def candidate_table(records: list[dict[str, Any]]):
    """One row per candidate (a pyarrow Table with a fixed schema)."""
    import pyarrow as pa

    rows = []
    for rec in records:
        base = _base(rec)
        for i, c in enumerate(rec.get("candidates") or []):
            if not isinstance(c, dict):
                raise InputError(f"record of problem {rec.get('problem_id')!r}: candidates[{i}] is not an object")
            _check_steps(rec, i, c)
            usage = c.get("usage") or {}
            rows.append({
                **base, "candidate_index": i, "text": c.get("text"), "steps": c.get("steps"),
                "step_scores": c.get("step_scores"), "answer": c.get("answer"), "key": c.get("key"),
                "correct": c.get("correct"), "finish": c.get("finish"), "subtree": c.get("subtree"),
                **{f"candidate_{k}": usage.get(k) for k in USAGE_FIELDS},
            })
    schema = pa.schema(
        [(k, _arrow_type(t)) for k, t in RECORD_FIELDS]
        + [("candidate_index", pa.int64()), ("text", pa.string()), ("steps", pa.list_(pa.string())),
           ("step_scores", pa.list_(pa.float64())), ("answer", pa.string()), ("key", pa.string()),
           ("correct", pa.bool_()), ("finish", pa.string()), ("subtree", pa.int64())]
        + [(f"candidate_{k}", pa.int64()) for k in USAGE_FIELDS]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def record_table(records: list[dict[str, Any]]):
    """One row per record (a pyarrow Table); selection rules become `<rule>_answer` / `<rule>_correct`."""
    import pyarrow as pa

    rules = sorted({rule for rec in records for rule in rec.get("selections") or {}})
    rows = []
    for rec in records:
        row = _base(rec)
        sel = rec.get("selections") or {}
        for rule in rules:
            row[f"{rule}_answer"] = (sel.get(rule) or {}).get("answer")
            row[f"{rule}_correct"] = (sel.get(rule) or {}).get("correct")
        usage = rec.get("usage") or {}
        for who in ("policy", "prm"):
            for k in USAGE_FIELDS:
                row[f"{who}_{k}"] = (usage.get(who) or {}).get(k)
        row["n_candidates"] = len(rec.get("candidates") or [])
        row["candidates_json"] = json.dumps(rec.get("candidates"), ensure_ascii=False)
        row["tree_json"] = None if rec.get("tree") is None else json.dumps(rec["tree"], ensure_ascii=False)
        rows.append(row)
    schema = pa.schema(
        [(k, _arrow_type(t)) for k, t in RECORD_FIELDS]
        + [f for rule in rules for f in ((f"{rule}_answer", pa.string()), (f"{rule}_correct", pa.bool_()))]
        + [(f"{who}_{k}", pa.int64()) for who in ("policy", "prm") for k in USAGE_FIELDS]
        + [("n_candidates", pa.int64()), ("candidates_json", pa.string()), ("tree_json", pa.string())]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def load_run_records(run_dir: Path) -> list[dict[str, Any]]:
    from ttslab.results import RECORDS, read_records

    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory; expected a run directory written by `ttslab run`")
    if not (run_dir / RECORDS).exists():
        raise InputError(f"{run_dir}: no {RECORDS}; expected a run directory written by `ttslab run`")
    try:
        records = read_records(run_dir)
    except ValueError as e:
        raise InputError(str(e)) from e
    if not records:
        raise InputError(f"{run_dir / RECORDS}: no finished records to export")
    return records


MARK = b"ttslab export"  # Parquet metadata key: this file was written by ttslab export (safe to replace)


def _made_by_export(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # noqa: BLE001 - not Parquet at all (pyarrow raises several types): not ours
        return False
    return MARK in meta


def _inside_run_dir(path: Path) -> Path | None:
    """The run directory `path` would be written into (a folder holding records.jsonl), if any."""
    from ttslab.results import IDENTITY, RECORDS

    for d in Path(os.path.abspath(path)).parents:
        if (d / RECORDS).exists() or (d / IDENTITY).exists():
            return d
    return None


def check_output(out: Path, force: bool, made_by_us, command: str) -> None:
    """Refuse an output inside a run directory, over a directory or link, or over a file `command` did not
    make (unless force). Shared by export and figures."""
    run = _inside_run_dir(out)
    if run is not None:
        raise InputError(f"{command}: --out {out} is inside the run directory {run}; run directories hold only "
                         "what `ttslab run` writes: choose a path outside it")
    if out.is_symlink():
        raise InputError(f"{command}: --out {out} is a symbolic link; ttslab never writes through links: remove it "
                         "or choose another path")
    if out.is_dir():
        raise InputError(f"{command}: --out {out} is a directory; expected a file name, e.g. {out}/records.parquet")
    if out.exists() and not force and not made_by_us(out):
        raise InputError(f"{command}: --out {out} exists and was not written by {command}; choose another path, "
                         "or pass --force to replace it")


def export_run(run_dir: str | Path, out: str | Path | None = None, per: str = "candidate",
               force: bool = False) -> Path:
    """Write the run's records as Parquet; returns the file written.

    Never into a run directory, never over a file `ttslab export` did not write (force=True allows the
    latter), and whole: through a temporary file renamed into place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ttslab.writes import replace_with

    run_dir = Path(run_dir)
    if per not in ("candidate", "record"):
        raise InputError(f"--per {per!r}: expected 'candidate' or 'record'")
    out = Path(out) if out is not None else Path(f"{run_dir.resolve().name}-{per}s.parquet")
    check_output(out, force, _made_by_export, "ttslab export")
    records = load_run_records(run_dir)
    try:
        table = candidate_table(records) if per == "candidate" else record_table(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InputError(f"{run_dir}: a record field has the wrong type for export ({' '.join(str(e).split())[:200]}); "
                         "records.jsonl is damaged: `ttslab summary` / check_run names the line") from None
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), MARK: per.encode()})
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_with(out, lambda tmp: pq.write_table(table, tmp))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ttslab export", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help="a run directory (holds records.jsonl)")
    ap.add_argument("--out", help="the Parquet file to write (default: ./<run name>-<per>s.parquet)")
    ap.add_argument("--per", choices=("candidate", "record"), default="candidate",
                    help="one row per candidate solution (default) or per (problem, method, budget) record")
    ap.add_argument("--force", action="store_true",
                    help="replace an existing --out file that ttslab export did not write")
    args = ap.parse_args(argv)
    try:
        path = export_run(args.run_dir, args.out, args.per, force=args.force)
    except InputError as e:
        msg = str(e)
        print(msg if msg.startswith("ttslab export:") else f"ttslab export: {msg}", file=sys.stderr)
        return e.exit_code
    import pyarrow.parquet as pq

    print(f"wrote {path} ({pq.ParquetFile(path).metadata.num_rows} rows, one per {args.per})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
