"""Verifiers measured the way they are used: on stored Best-of-N candidates of real runs.

Evaluation set: the largest Best-of-N record of every problem of the given run directories (default: the
shipped study run, `ttslab.study.study_run_dirs()`: 16 samples per problem of the 0.5B policy, graded by
Math-Verify). The README's table was measured on the earlier shipped run, ttslab/data/study_run/bundled and
the 6-problem math500/ of commit 1f8b01e (`git archive 1f8b01e ttslab/data/study_run/math500 | tar x`).
No scorer was fitted on these problems (the probe head and the confidence
statistic were picked by benchmarks/verifier_train.py on disjoint problems).

For each scorer:
  * within-problem AUC: over every (correct, wrong) pair of candidates of the same problem, how often the
    correct one scores higher (ties half); problems whose candidates all agree carry no pair. The solution
    score is PRM-Last / PRM-Min / PRM-Avg of its step scores. 95% bootstrap interval over problems.
  * step-level AUC: the 12 hand-made (correct, wrong) step pairs of benchmarks/prm_cost.py (the only step
    labels here): AUC over all correct-vs-wrong pairs, and paired accuracy.
  * accuracy of PRM-Max / PRM-Vote vs majority at N = 4 (random 4-subsets of the 16) and N = 16, through
    ttslab.analysis.curves (the selection rules of ttslab.search.selection), 95% bootstrap intervals over
    problems.
  * cost per scored step as beam search pays it (`score_last`, step k on top of steps < k): tokens the
    engine evaluated / tokens of the new step, and seconds per scored step.

Scorers: `judge-0.5b` (the shipped run's stored step scores of conf/prm/cpu_judge.yaml), `judge-1.5b`
(conf/prm/cpu_judge_1.5b.yaml, extra cpu-large; scored here on the problems with both correct and wrong
candidates; on the others every rule is right or wrong whatever the scores, so they get a constant),
`confidence-{mean,lowest_window,tail}` and `probe` (read once per candidate by teacher forcing and cached;
the real PRM classes are run on the cost sample and must agree with the cached path).

    PYTHONPATH=. flock /tmp/ttslab-model.lock python benchmarks/verifier_bench.py --cache runs/verifier-cache \\
        --out runs/verifier-bench.md
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prm_cost import CASES
from verifier_data import ROOT, candidates, pooled_auc, read_run, solution_scores, within_problem_pairs

from ttslab.analysis.curves import curve_table, per_problem_accuracy
from ttslab.rewards import build_reward_model
from ttslab.rewards.base import ScoreRequest
from ttslab.rewards.confidence import STATISTICS, confidence_score
from ttslab.rewards.probe import ProbeHead, head_path
from ttslab.study import study_run_dirs

SCORINGS = ("prm_last", "prm_min", "prm_avg")
POLICY = "embedded:qwen2.5-coder-0.5b"


def prm_cfg(name: str, **options) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "prm" / f"{name}.yaml"), resolve=True)
    if options:
        cfg["options"] = {**cfg.get("options", {}), **options}
    return cfg


def scorer_configs(with_large: bool) -> dict[str, dict]:
    out = {"judge-0.5b": prm_cfg("cpu_judge")}
    if with_large:
        out["judge-1.5b"] = prm_cfg("cpu_judge_1.5b")
    for stat in STATISTICS:
        out[f"confidence-{stat}"] = prm_cfg("cpu_confidence", statistic=stat)
    out["probe"] = prm_cfg("cpu_probe")
    return out


class Engines:
    """One engine per model, shared by the scorers (as the runner's engine factory does)."""

    def __init__(self):
        self.engines = {}

    def __call__(self, spec: str):
        if spec not in self.engines:
            from ttslab.engines.llamacpp import LlamaCppEngine

            self.engines[spec] = LlamaCppEngine(spec, max_sequences=16, n_ctx_per_sequence=2048)
        return self.engines[spec]

    def close(self):
        for e in self.engines.values():
            e.close()
        self.engines.clear()


def widen(data: dict, cands, read) -> dict:
    """Readings of a subset `read` of `cands`, re-indexed over all of `cands` (others: one zero row per step)."""
    pos = {(c.problem_id, c.index): i for i, c in enumerate(read)}
    X, cand, n_feat = [], [], data["X"].shape[1]
    for i, c in enumerate(cands):
        j = pos.get((c.problem_id, c.index))
        X.append(data["X"][data["cand"] == j] if j is not None else np.zeros((len(c.steps), n_feat), np.float32))
        cand += [i] * len(X[-1])
    return {**data, "X": np.vstack(X), "cand": np.array(cand)}


def cached_step_scores(data: dict, n: int, name: str, head: ProbeHead) -> list[np.ndarray]:
    """Step scores of the confidence / probe scorers from the cached readings."""
    X, cand = data["X"].astype(np.float64), data["cand"]
    if name == "probe":
        values = head.predict(X)
    else:
        j = STATISTICS.index(name.split("-", 1)[1])
        values = np.array([confidence_score(v) for v in X[:, X.shape[1] - len(STATISTICS) + j]])
    return [values[cand == i] for i in range(n)]


def judge_scores(cfg: dict, cands, engines: Engines, cache: Path, first: int = 16) -> list[np.ndarray]:
    """A judge's step scores on the first `first` candidates of the problems with both correct and wrong
    answers (cached); the other candidates get NaN."""
    done = json.loads(cache.read_text()) if cache.exists() else {}
    mixed = set(within_problem_pairs([c.problem_id for c in cands], np.array([c.correct for c in cands]),
                                     np.zeros(len(cands))))
    prm = build_reward_model(cfg, engines)
    start = time.perf_counter()
    for pid in dict.fromkeys(c.problem_id for c in cands):
        if pid not in mixed or pid in done:
            continue
        group = [c for c in cands if c.problem_id == pid][:first]
        done[pid] = [s.scores for s in prm.score_all([ScoreRequest(c.question, c.steps) for c in group])]
        cache.write_text(json.dumps(done))
        print(f"  {cfg['name']}: {pid} scored ({time.perf_counter() - start:.0f} s so far)", flush=True)
    index: dict[str, int] = {}
    out = []
    for c in cands:
        k = index.setdefault(c.problem_id, 0)
        index[c.problem_id] = k + 1
        have = c.problem_id in done and k < len(done[c.problem_id])
        out.append(np.array(done[c.problem_id][k]) if have else np.full(len(c.steps), np.nan))
    return out


def cost(cfg: dict, cands, engines: Engines, per_problem: int, problems: int) -> dict:
    """score_last step by step (as beam search calls it) on a few candidates: tokens and seconds per step."""
    prm = build_reward_model(cfg, engines)
    engine = engines(cfg["model"])
    sample = []
    for pid in list(dict.fromkeys(c.problem_id for c in cands))[:problems]:
        sample += [c for c in cands if c.problem_id == pid][:per_problem]
    evaluated = step_tokens = steps = 0
    last_scores = []
    start = time.perf_counter()
    for c in sample:
        scores = []
        for k in range(1, len(c.steps) + 1):
            s = prm.score_last([ScoreRequest(c.question, c.steps[:k])])[0]
            scores.append(s.scores[0])
            evaluated += s.usage.evaluated_tokens
            step_tokens += len(engine.tokenize(c.steps[k - 1]))
            steps += 1
        last_scores.append(scores)
    seconds = time.perf_counter() - start
    return {"steps": steps, "tokens_per_step_token": evaluated / step_tokens, "step_tokens_mean": step_tokens / steps,
            "seconds_per_step": seconds / steps, "sample": [(c.problem_id, c.index) for c in sample],
            "incremental_scores": last_scores}


def step_auc(cfg: dict, engines: Engines) -> dict:
    prm = build_reward_model(cfg, engines)
    good = [prm.score_last([ScoreRequest(q, e + (c,))])[0].scores[0] for q, e, c, _ in CASES]
    bad = [prm.score_last([ScoreRequest(q, e + (w,))])[0].scores[0] for q, e, _, w in CASES]
    auc = sum((g > b) + 0.5 * (g == b) for g in good for b in bad) / (len(good) * len(bad))
    return {"step_auc": auc, "paired": f"{sum(g > b for g, b in zip(good, bad))}/{len(CASES)}"}


def accuracy(records: list[dict], scores: dict[str, list[np.ndarray]], cands, subsets: int) -> object:
    """curve_table rows for every scorer, with the step scores swapped into copies of the N=16 records."""
    where = {(c.problem_id, c.index): i for i, c in enumerate(cands)}
    recs = []
    for name, steps in scores.items():
        for rec in records:
            r = copy.deepcopy(rec)
            r["prm"] = name
            for i, c in enumerate(r["candidates"]):
                c["step_scores"] = [float(v) for v in steps[where[(r["problem_id"], i)]]]
            recs.append(r)
    return curve_table(per_problem_accuracy(recs, budgets=[4, 16], subsets=subsets), n_boot=2000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=[str(d) for d in study_run_dirs()])
    parser.add_argument("--cache", default="runs/verifier-cache")
    parser.add_argument("--out", default="runs/verifier-bench.md")
    parser.add_argument("--no-large", action="store_true", help="leave out the 1.5B judge (extra cpu-large)")
    parser.add_argument("--cost-problems", type=int, default=2)
    parser.add_argument("--cost-candidates", type=int, default=2)
    parser.add_argument("--subsets", type=int, default=64)
    parser.add_argument("--large-subset", type=int, default=0,
                        help="only the 1.5B judge, on the first K candidates of each problem with both correct and "
                             "wrong ones, compared with every scorer on the same candidates (appended to --out)")
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    with_large = not args.no_large
    if with_large:
        try:
            from ttslab.models import ModelError, resolve

            resolve("embedded:qwen2.5-coder-1.5b")
        except ModelError as err:  # the extra is optional: say so in the table
            print(f"1.5B judge left out: {err}")
            with_large = False
    configs = scorer_configs(with_large)
    head = ProbeHead.load(head_path(configs["probe"]["options"]["head"]))

    cands, records = [], []
    for run in args.runs:
        cands += candidates(run)
        top = {}
        for line in (Path(run) / "records.jsonl").read_text().splitlines():
            rec = json.loads(line)
            if rec["method"] == "best_of_n" and rec["budget"] > top.get(rec["problem_id"], {}).get("budget", 0):
                top[rec["problem_id"]] = rec
        records += top.values()
    pids = [c.problem_id for c in cands]
    correct = np.array([c.correct for c in cands])
    engines = Engines()
    t0 = time.perf_counter()
    # one reading of all evaluation candidates with the policy model (cached)
    # only problems with both correct and wrong candidates are read: on the others every selection rule is right
    # (or wrong) whatever the scores, and they carry no pair; their candidates get a constant score
    mixed_ids = set(within_problem_pairs(pids, correct, np.zeros(len(cands))))
    read = [c for c in cands if c.problem_id in mixed_ids]
    data = read_run(engines(POLICY), "qwen2.5", read, cache / "eval-study-run-mixed.npz")
    data = widen(data, cands, read)
    print(f"read {len(read)} candidates of {len(mixed_ids)} problems / {len(data['X'])} steps in {float(data['seconds']):.0f} s "
          f"(this call {time.perf_counter() - t0:.0f} s); evaluated tokens per step token in one full read: "
          f"{data['evaluated'].sum() / data['step_tokens'].sum():.2f}")

    scores: dict[str, list[np.ndarray]] = {}
    if args.large_subset:
        large_subset(args, configs, cands, data, head, engines, cache)
        return
    scores["judge-0.5b"] = [np.array(c.judge_scores) for c in cands]
    if with_large:
        scores["judge-1.5b"] = judge_scores(configs["judge-1.5b"], cands, engines, cache / "eval-judge-1.5b.json")
    for name in configs:
        if name.startswith(("confidence", "probe")):
            scores[name] = cached_step_scores(data, len(cands), name, head)
            scores[name] = [x if c.problem_id in mixed_ids else np.full(len(c.steps), 0.5)
                            for x, c in zip(scores[name], cands)]

    rows = {}
    for name, cfg in configs.items():
        row = {}
        for s in SCORINGS:
            row[s] = pooled_auc(within_problem_pairs(pids, correct, solution_scores(scores[name], s)))
        row.update(step_auc(cfg, engines))
        c = cost(cfg, read, engines, args.cost_candidates, args.cost_problems)
        if name in scores and not name.startswith("judge"):  # the real PRM class agrees with the cached path
            where = {(x.problem_id, x.index): i for i, x in enumerate(cands)}
            gap = max(abs(a - b) for key, inc in zip(c["sample"], c["incremental_scores"])
                      for a, b in zip(inc, scores[name][where[key]]))
            row["max_gap_vs_cached"] = gap
        row.update({k: v for k, v in c.items() if k not in ("sample", "incremental_scores")})
        rows[name] = row
        print(name, {k: v for k, v in row.items()}, flush=True)
    engines.close()

    acc = accuracy(records, scores, cands, args.subsets)
    mixed = sorted(within_problem_pairs(pids, correct, np.zeros(len(cands))))
    write_markdown(Path(args.out), rows, acc, sorted(set(pids)), mixed, len(cands))
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        {"rows": rows, "accuracy": acc.to_dict(orient="records"), "problems": sorted(set(pids)), "mixed": mixed},
        indent=1, default=float))
    print(Path(args.out).read_text())


def large_subset(args, configs, cands, data, head, engines, cache) -> None:
    """The 1.5B judge on a subset (its cost on the whole set is ~0.7 s per step), every scorer on the same pairs."""
    cfg = prm_cfg("cpu_judge_1.5b")
    big = judge_scores(cfg, cands, engines, cache / "eval-judge-1.5b.json", first=args.large_subset)
    keep = np.array([not np.isnan(b).any() for b in big])
    sub = [c for c, k in zip(cands, keep) if k]
    pids, correct = [c.problem_id for c in sub], np.array([c.correct for c in sub])
    scores = {"judge-1.5b": [b for b, k in zip(big, keep) if k],
              "judge-0.5b": [np.array(c.judge_scores) for c in sub]}
    for name in configs:
        if name.startswith(("confidence", "probe")):
            scores[name] = [x for x, k in zip(cached_step_scores(data, len(cands), name, head), keep) if k]
    extra = {**step_auc(cfg, engines), **cost(cfg, cands, engines, args.cost_candidates, args.cost_problems)}
    engines.close()
    intro = (f"1.5B judge (extra cpu-large) on a subset: the first {args.large_subset} candidates of each of the "
             f"{len(set(pids))} problems with both correct and wrong candidates ({len(sub)} candidates); every "
             "scorer on the same pairs:")
    lines = ["", intro, "",
             "| scorer | within-problem AUC, PRM-Last | PRM-Min | PRM-Avg |", "|---|---|---|---|"]
    for name, st in scores.items():
        aucs = [_ci(pooled_auc(within_problem_pairs(pids, correct, solution_scores(st, s)))) for s in SCORINGS]
        lines.append(f"| {name} | " + " | ".join(aucs) + " |")
    summary = (f"judge-1.5b: step AUC {extra['step_auc']:.2f} (paired {extra['paired']}), "
               f"{extra['tokens_per_step_token']:.2f} tokens evaluated per new-step token, "
               f"{extra['seconds_per_step']:.2f} s per scored step.")
    lines += ["", summary]
    with open(args.out, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def _ci(t: tuple[float, float, float], digits: int = 2) -> str:
    return f"{t[0]:.{digits}f} [{t[1]:.{digits}f}, {t[2]:.{digits}f}]"


def write_markdown(path: Path, rows: dict, acc, problems: list[str], mixed: list[str], n_cands: int) -> None:
    lines = [
        (f"Evaluation set: {len(problems)} problems of the shipped study run ({n_cands} Best-of-N candidates, 16 per "
         f"problem); within-problem pairs come from the {len(mixed)} problems with both correct and wrong candidates. "
         "Intervals: 95% bootstrap over problems."),
        "",
        ("| scorer | within-problem AUC, PRM-Last | PRM-Min | PRM-Avg | step AUC (12 hand-made pairs) | "
         "tokens evaluated / new-step token | s / scored step |"),
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {_ci(r['prm_last'])} | {_ci(r['prm_min'])} | {_ci(r['prm_avg'])} | "
                     f"{r['step_auc']:.2f} (paired {r['paired']}) | {r['tokens_per_step_token']:.2f} | "
                     f"{r['seconds_per_step']:.2f} |")
    lines += ["", "Accuracy (%) of the selection rules at N = 4 and 16 (majority and pass@N need no scorer):", "",
              "| scorer | scoring | PRM-Max N=4 | PRM-Vote N=4 | PRM-Max N=16 | PRM-Vote N=16 |", "|---|---|---|---|---|---|"]

    def cell(prm, rule, n):
        row = acc[(acc.prm == prm) & (acc.rule == rule) & (acc.budget == n)].iloc[0]
        return f"{row.accuracy:.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]"

    first = next(iter(rows))
    lines.append(f"| majority | – | {cell(first, 'majority', 4)} | | {cell(first, 'majority', 16)} | |")
    lines.append(f"| pass@N | – | {cell(first, 'pass@k', 4)} | | {cell(first, 'pass@k', 16)} | |")
    for name in rows:
        for s in SCORINGS:
            lines.append(f"| {name} | {s} | {cell(name, s + '_max', 4)} | {cell(name, s + '_vote', 4)} | "
                         f"{cell(name, s + '_max', 16)} | {cell(name, s + '_vote', 16)} |")
    lines += ["", "Problems: " + ", ".join(problems)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
