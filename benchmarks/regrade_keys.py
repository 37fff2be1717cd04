"""Recompute the voting keys (and what reads them) of stored runs from their stored candidate texts, with
ttslab's current grading: no model is loaded, nothing is generated.

Why: until issue #20 `ttslab.grading.Grader.grade` merged every answer equivalent to the gold into one key
(wrong answers merged only pairwise), so the gold leaked into majority voting, PRM-Vote and the router's
agreement signal. Keys now come from pairwise equivalence between the answers alone. For each record this
script re-extracts every candidate's answer from its text, regrades (keys, correctness), recomputes the
stored rule picks (`selections`) from the new keys and the stored step scores, and keeps everything else
(texts, scores, usage, tree, wall times). It reports what changed, rewrites records.jsonl atomically
(`--write`) and rebuilds summary.json from the records, keeping its wall times and provenance.

    python benchmarks/regrade_keys.py ttslab/data/study_run/*/            # report only
    python benchmarks/regrade_keys.py --write ttslab/data/study_run/*/    # rewrite
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ttslab.grading import Grader, extract_answer
from ttslab.results import SUMMARY, read_records, rewrite_records
from ttslab.search.selection import select_all


def regrade(record: dict, grader: Grader) -> tuple[dict, dict]:
    """(new record, what changed) for one record."""
    cands = record["candidates"]
    answers = [extract_answer(c["text"]) for c in cands]
    keys, correct = grader.grade(record["gold"], answers)
    changed = {"answers": sum(a != c.get("answer") for a, c in zip(answers, cands)),
               "keys": sum(k != c.get("key") for k, c in zip(keys, cands)),
               "correct": sum(ok != c.get("correct") for ok, c in zip(correct, cands))}
    new = dict(record)
    new["candidates"] = [{**c, "answer": a, "key": k, "correct": ok} for c, a, k, ok in zip(cands, answers, keys, correct)]
    new["selections"] = select_all(keys, correct, answers, [c.get("step_scores") for c in cands],
                                   with_prm=record.get("prm") is not None)
    changed["selections"] = sorted(r for r in new["selections"] if new["selections"][r] != record["selections"].get(r))
    return new, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--write", action="store_true", help="rewrite records.jsonl and summary.json")
    args = parser.parse_args(argv)
    with Grader(workers=1) as grader:
        for d in map(Path, args.run_dirs):
            records = read_records(d)
            out, moved = [], []
            for r in records:
                new, ch = regrade(r, grader)
                out.append(new)
                if ch["keys"] or ch["correct"] or ch["answers"] or ch["selections"]:
                    moved.append((r["problem_id"], r["method"], r["budget"], ch))
            n_keys = sum(ch["keys"] for *_, ch in moved)
            print(f"{d}: {len(records)} records; {len(moved)} changed; {n_keys} candidate keys changed; "
                  f"correctness changed for {sum(ch['correct'] for *_, ch in moved)} candidates")
            for pid, m, b, ch in moved:
                print(f"  {pid} {m} N={b}: {ch}")
            if args.write and moved:
                from ttslab.summary import write_summary

                rewrite_records(d, out)
                old = json.loads((d / SUMMARY).read_text()) if (d / SUMMARY).is_file() else {}
                write_summary(d, old.get("wall_time_s"), old.get("provenance"))
                print(f"  rewrote {d / 'records.jsonl'} and {d / SUMMARY}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
