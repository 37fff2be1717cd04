"""Re-score a run's stored Best-of-N candidates with other CPU verifiers, so every verifier is measured on
the same problems (notebooks/08_verifiers.ipynb reads the result; model time, resumable).

For each verifier config named (conf/prm/<name>.yaml) and each problem of the run (its largest Best-of-N
record), the real PRM class scores every step of every stored candidate (`score_all`, as Best-of-N's PRM
rules use them) and one line is appended to `<run_dir>/rescored/<name>.jsonl`:

    {"problem_id", "config", "prm", "step_scores": [[per step] per candidate, in sample order],
     "seconds", "usage"}

Problems already in the file are skipped, so a piece that stops (--max-seconds, a kill) resumes where it
ended. `--mixed-only` scores only the problems with both correct and wrong candidates: on the others every
selection rule is right (or wrong) whatever the scores, at every budget (a subset of all-correct candidates
is all correct), and they carry no (correct, wrong) pair for the AUC, so their scores change no number the
notebook reports.

    flock /tmp/ttslab-model.lock python benchmarks/verifier_rescore.py ttslab/data/study_run/math500_levels \\
        cpu_judge cpu_probe --mixed-only --max-seconds 540
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verifier_bench import Engines, prm_cfg
from verifier_data import candidates

from ttslab.rewards import build_reward_model
from ttslab.rewards.base import ScoreRequest

RESCORED = "rescored"


def done_problems(path: Path) -> set[str]:
    if not path.exists():
        return set()
    out = set()
    for line in path.read_text().splitlines():
        try:
            out.add(json.loads(line)["problem_id"])
        except (json.JSONDecodeError, KeyError):
            continue  # a torn last line (the piece was killed mid-write): that problem is redone
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("configs", nargs="+", help="PRM config names (conf/prm/), e.g. cpu_judge cpu_probe")
    ap.add_argument("--mixed-only", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=540.0,
                    help="start no new problem once this much time has passed (pieces of at most ~10 min)")
    args = ap.parse_args()
    start = time.perf_counter()
    cands = candidates(args.run_dir)
    by_problem: dict[str, list] = {}
    for c in cands:
        by_problem.setdefault(c.problem_id, []).append(c)
    if args.mixed_only:
        by_problem = {p: cs for p, cs in by_problem.items() if 0 < sum(c.correct for c in cs) < len(cs)}
    out_dir = Path(args.run_dir) / RESCORED
    out_dir.mkdir(exist_ok=True)
    engines = Engines()
    try:
        for name in args.configs:
            cfg = prm_cfg(name)
            path = out_dir / f"{name}.jsonl"
            todo = [p for p in by_problem if p not in done_problems(path)]
            print(f"{name}: {len(by_problem) - len(todo)} problems done, {len(todo)} to score", flush=True)
            if not todo:
                continue
            prm = build_reward_model(cfg, engines)
            last = 0.0
            for pid in todo:
                if time.perf_counter() - start + last > args.max_seconds:
                    print(f"stopping: {time.perf_counter() - start:.0f} s used; rerun to resume", flush=True)
                    return
                t0 = time.perf_counter()
                group = sorted(by_problem[pid], key=lambda c: c.index)
                scored = prm.score_all([ScoreRequest(c.question, c.steps, pid) for c in group])
                last = time.perf_counter() - t0
                usage = {"prompt_tokens": sum(s.usage.prompt_tokens for s in scored),
                         "cached_tokens": sum(s.usage.cached_tokens for s in scored)}
                line = {"problem_id": pid, "config": name, "prm": cfg["name"],
                        "step_scores": [[float(v) for v in s.scores] for s in scored],
                        "seconds": round(last, 2), "usage": usage}
                with open(path, "a") as f:
                    f.write(json.dumps(line) + "\n")
                print(f"  {name} {pid}: {sum(len(c.steps) for c in group)} steps in {last:.0f} s", flush=True)
            prm.close()
    finally:
        engines.close()
    print(f"all done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
