"""Train the probe PRM head (and pick the confidence statistic) on this package's own runs.

Training data: Best-of-N candidates of `ttslab run` on problems disjoint from the evaluation problems of
`benchmarks/verifier_bench.py` (the shipped study run ttslab/data/study_run/). Each step is labelled with
its solution's outcome (final answer correct per Math-Verify, as stored in the records). Features: the
policy's last-layer hidden state at the step's end plus its three confidence statistics
(`ttslab.rewards.probe.step_features`), read once by teacher forcing and cached.

Model selection uses only the training problems: grouped K-fold cross-validation by problem over the L2
strength, scored by the within-problem AUC of the solution score (PRM-Last, PRM-Min, PRM-Avg: the best
one is recorded in the head's metadata as its recommended aggregation). Each solution weighs 1 in total
(its steps share the weight), and the classes are balanced.

    PYTHONPATH=. flock /tmp/ttslab-model.lock python benchmarks/verifier_train.py \\
        --runs runs/verifier-train-bundled runs/verifier-train-math500 --cache runs/verifier-cache \\
        --out ttslab/data/probe_prm/qwen2.5-coder-0.5b.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verifier_data import candidates, pooled_auc, read_run, solution_scores, within_problem_pairs

from ttslab.rewards.confidence import STATISTICS, confidence_score
from ttslab.rewards.probe import ProbeHead, sigmoid

SCORINGS = ("prm_last", "prm_min", "prm_avg")
C_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Weighted L2 logistic regression on standardised X: (mean, scale, weights, bias)."""
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-6
    Z = (X - mean) / scale
    w = w / w.sum()

    def loss(theta):
        coef, b = theta[:-1], theta[-1]
        z = Z @ coef + b
        # log(1 + e^z) - y z, written without overflow
        nll = np.logaddexp(0.0, z) - y * z
        grad_z = w * (sigmoid(z) - y)
        return float(w @ nll + 0.5 / C / len(y) * coef @ coef), np.append(Z.T @ grad_z + coef / C / len(y), grad_z.sum())

    theta = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500}).x
    return mean, scale, theta[:-1], float(theta[-1])


def weights_for(cand: np.ndarray, n_steps: np.ndarray, y: np.ndarray) -> np.ndarray:
    w = 1.0 / n_steps[cand]  # a solution weighs 1 in total
    for label in (0, 1):  # balanced classes
        m = y == label
        if m.any():
            w[m] *= 0.5 / w[m].sum()
    return w


def per_candidate(values: np.ndarray, cand: np.ndarray, n: int) -> list[np.ndarray]:
    return [values[cand == i] for i in range(n)]


def cv_auc(X, y, cand, n_steps, pids, correct, C: float, folds: int, seed: int) -> dict[str, float]:
    """Out-of-fold within-problem AUC per scoring (grouped by problem)."""
    problems = np.array(sorted(set(pids)))
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(problems), np.arange(len(problems)) % folds))
    cand_fold = np.array([fold_of[p] for p in pids])
    step_fold = cand_fold[cand]
    oof = np.zeros(len(y))
    for f in range(folds):
        tr, te = step_fold != f, step_fold == f
        mean, scale, coef, b = fit_logistic(X[tr], y[tr], weights_for(cand[tr], n_steps, y[tr]), C)
        oof[te] = sigmoid(((X[te] - mean) / scale) @ coef + b)
    steps = per_candidate(oof, cand, len(pids))
    return {s: pooled_auc(within_problem_pairs(list(pids), correct, solution_scores(steps, s)))[0] for s in SCORINGS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run directories with Best-of-N records")
    parser.add_argument("--cache", default="runs/verifier-cache", help="where step features are cached")
    parser.add_argument("--out", default="ttslab/data/probe_prm/qwen2.5-coder-0.5b.npz")
    parser.add_argument("--model", default="embedded:qwen2.5-coder-0.5b")
    parser.add_argument("--family", default="qwen2.5")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cands, datas = [], []
    engine = None
    for run in args.runs:
        cs = candidates(run)
        cache = Path(args.cache) / f"{Path(run).name}.npz"
        if not cache.exists() and engine is None:
            from ttslab.engines.llamacpp import LlamaCppEngine

            engine = LlamaCppEngine(args.model, max_sequences=16, n_ctx_per_sequence=2048)
        t0 = time.perf_counter()
        data = read_run(engine, args.family, cs, cache)
        print(f"{run}: {len(cs)} candidates, {len(data['X'])} steps, read in {float(data['seconds']):.0f} s "
              f"(this call {time.perf_counter() - t0:.0f} s)")
        cands.append(cs)
        datas.append(data)
    if engine is not None:
        engine.close()
    offset, Xs, cand, n_steps = 0, [], [], []
    for cs, d in zip(cands, datas):
        Xs.append(d["X"].astype(np.float64))
        cand.append(d["cand"] + offset)
        n_steps.append(d["n_steps"])
        offset += len(cs)
    flat = [c for cs in cands for c in cs]
    X, cand, n_steps = np.vstack(Xs), np.concatenate(cand), np.concatenate(n_steps)
    pids = [c.problem_id for c in flat]
    correct = np.array([c.correct for c in flat])
    y = correct[cand].astype(float)
    mixed = {p for p in within_problem_pairs(pids, correct, np.zeros(len(flat)))}
    print(f"training: {len(set(pids))} problems ({len(mixed)} with both correct and wrong solutions), "
          f"{len(flat)} solutions ({correct.mean():.0%} correct), {len(X)} steps")

    # the confidence PRM's statistic and aggregation, picked on the training problems
    conf = {}
    for j, stat in enumerate(STATISTICS):
        scores = per_candidate(np.array([confidence_score(v) for v in X[:, -len(STATISTICS) + j]]), cand, len(flat))
        for s in SCORINGS:
            conf[(stat, s)] = pooled_auc(within_problem_pairs(pids, correct, solution_scores(scores, s)))[0]
    for (stat, s), auc in conf.items():
        print(f"  confidence {stat:14s} {s:9s} within-problem AUC {auc:.3f}")
    best_conf = max(conf, key=conf.get)
    print(f"  -> confidence: statistic={best_conf[0]}, aggregation={best_conf[1]}")

    results = {}
    for C in C_GRID:
        results[C] = cv_auc(X, y, cand, n_steps, pids, correct, C, args.folds, args.seed)
        print(f"  probe C={C:<6} CV within-problem AUC " + ", ".join(f"{s} {v:.3f}" for s, v in results[C].items()))
    C, scoring = max(((c, s) for c in C_GRID for s in SCORINGS), key=lambda cs: results[cs[0]][cs[1]])
    print(f"  -> probe: C={C}, aggregation={scoring} (CV AUC {results[C][scoring]:.3f})")
    mean, scale, coef, b = fit_logistic(X, y, weights_for(cand, n_steps, y), C)
    meta = {
        "model": args.model, "family": args.family, "C": C, "aggregation": scoring, "seed": args.seed,
        "cv_auc": round(results[C][scoring], 4), "training_runs": [Path(r).name for r in args.runs],
        "training_problems": sorted(set(pids)), "n_solutions": len(flat), "n_steps": len(X),
        "confidence_choice": list(best_conf), "folds": args.folds,
    }
    head = ProbeHead(mean, scale, coef, b, meta={k: json.dumps(v) if not isinstance(v, str) else v for k, v in meta.items()})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
