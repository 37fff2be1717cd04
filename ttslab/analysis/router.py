"""Compute-optimal TTS without gold answers: a router that picks each problem's strategy and budget.

The study's compute-optimal recipe (§3, §4.3, Table 5) chooses the strategy per difficulty bin, and the
bins come from each problem's Pass@1, measured with the gold answers: an oracle no deployment has.
The router decides per problem from signals available at test time. It first draws a *probe* of the
first k Best-of-N samples and reads, without any gold answer:

    agreement      share of the k samples that give the most common answer
    distinct       number of distinct answers among them
    no_answer      share of them without an extractable answer
    verifier_mean  mean verifier (PRM) score of the k samples (`scoring`, default PRM-Last)
    verifier_max   the highest of those scores
    prompt_tokens  the problem's length in tokens

and then takes one action: stop at Best-of-N with N >= k (the probe samples are its first k: nothing is
wasted), or run beam search / DVTS at a recorded budget (paid on top of the probe). The policy is a
decision stump: one signal, one threshold, one action below it and one at or above it (a constant
policy is the stump whose threshold is never reached). It is fitted by exhaustive search to maximise
mean accuracy - lambda x mean cost on the training problems, and evaluated by cross-validation over
problems (leave-one-out by default): every problem is scored by a router fitted without it. Sweeping
lambda traces accuracy against compute.

Estimators. Accuracy of a fixed Best-of-N strategy is ttslab's one estimator (`curves`): the exact
expectation over all size-N subsets of a problem's samples. The router's accuracy depends on which
samples form the probe, so it is averaged over `orders` random orders of each problem's samples (the
probe = the first k of an order, Best-of-N@N = the first N): a Monte-Carlo estimate of the same kind
of expectation. (One difference by design: `curves` breaks a vote tie by the samples' stored order,
as the selection rules do; a random order breaks it at random. For iid samples both estimate the
same accuracy.) Beam search, DVTS and CoT are read from their records. Cost of an action on a problem
= the measured tokens (policy + verifier) and inference FLOPs (2 x params x tokens, `flops`) of its
records with prefix reuse counted (prompt tokens a cache served are not recomputed); Best-of-N@N uses
the record of the first N samples. Intervals: 95% percentile bootstrap over problems (accuracy and
cost resampled together); for cross-validated policies they hold the folds fixed (they do not include
the variability of refitting).

Compared policies (`policy_table`): every fixed strategy, the study's oracle-bin compute-optimal
choice at each budget (strategy chosen per gold-Pass@1 bin on the training folds, as `optimal` does),
and the router at each lambda. All of them choose among the same actions (one selection rule per
method, `FIXED_RULES`), so the comparison is about strategy and budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ttslab.analysis import curves, difficulty, flops

SIGNALS = ("agreement", "distinct", "no_answer", "verifier_mean", "verifier_max", "prompt_tokens")
# One selection rule per method, fixed in advance (the router chooses strategy and budget, not rules):
# majority for sampling; PRM-Last max for search, the score that ranks candidates inside the search.
FIXED_RULES = {"cot": "majority", "best_of_n": "majority", "beam_search": "prm_last_max", "dvts": "prm_last_max"}
LAMBDAS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0)


@dataclass
class RouterData:
    """Everything the router sees and is scored on, per problem (P), sample order (J) and action (A)."""

    problems: list[str]
    actions: list[tuple[str, int, str]]  # (method, budget, rule)
    correct: np.ndarray  # (P, J, A) correctness of the action's answer under sample order j
    tokens: np.ndarray  # (P, A) tokens spent (policy + verifier, prefix reuse counted), probe included
    flops: np.ndarray  # (P, A) inference FLOPs, same accounting
    features: np.ndarray  # (P, J, S) test-time signals of the probe under order j
    probe: int


@dataclass(frozen=True)
class Stump:
    """Action `high` where signal >= threshold, else `low` (indices into RouterData.actions)."""

    signal: int
    threshold: float
    low: int
    high: int

    def decide(self, features: np.ndarray) -> np.ndarray:
        return np.where(features[..., self.signal] >= self.threshold, self.high, self.low)


def _cost_per_record(records: Sequence[dict[str, Any]]) -> dict[tuple, tuple[float, float]]:
    fl = flops.inference_flops(records)
    tokens = fl["policy_tokens_reuse"] + fl["prm_tokens_reuse"]
    return {
        (str(p), m, int(b)): (float(t), float(f))
        for p, m, b, t, f in zip(fl["problem_id"], fl["method"], fl["budget"], tokens, fl["total_flops_reuse"])
    }


def _one_group(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    recs = list(records)
    groups = {(r.get("policy"), r.get("prm")) for r in recs if r["method"] != "cot"}
    if len(groups) != 1:
        raise ValueError(f"router: records must hold one (policy, PRM) pair, found {sorted(map(str, groups))}")
    if len({r.get("seed", 0) for r in recs}) != 1:
        raise ValueError("router: records must hold one seed")
    return recs


def unusable(records: Iterable[dict[str, Any]], probe: int = 4) -> str:
    """Why these records cannot be routed ("" if they can): the router needs, for every problem, one
    (policy, PRM) pair, Best-of-N records at N = probe (the probe's measured cost) and above it, and
    every search record the other problems have."""
    recs = list(records)
    groups = {(r.get("policy"), r.get("prm")) for r in recs if r["method"] != "cot"}
    if len(groups) != 1 or not all(p for _, p in groups):
        return "the records need exactly one (policy, PRM) pair with a verifier"
    have: dict[str, set] = {}
    for r in recs:
        if r["method"] != "cot":
            have.setdefault(str(r["problem_id"]), set()).add((r["method"], int(r["budget"])))
    if not any(("best_of_n", probe) in h for h in have.values()):
        return f"no Best-of-N record at N = {probe} (the probe)"
    union = set().union(*have.values())
    if any(h != union for h in have.values()):
        return "not every problem has the same (method, budget) records"
    return ""


def router_data(
    records: Iterable[dict[str, Any]], probe: int = 4, orders: int = 128, seed: int = 0, scoring: str = "prm_last"
) -> RouterData:
    """Signals, per-order correctness and costs of every action, from one run's stored records."""
    recs = _one_group(records)
    cost = _cost_per_record(recs)
    bon_top: dict[str, dict] = {}
    for r in recs:
        if r["method"] == "best_of_n":
            p = str(r["problem_id"])
            if p not in bon_top or r["budget"] > bon_top[p]["budget"]:
                bon_top[p] = r
    problems = sorted(bon_top)
    if not problems:
        raise ValueError("router: no Best-of-N records (the probe is the first Best-of-N samples)")
    arrays = curves.candidate_arrays([bon_top[p] for p in problems])
    K = int(arrays.units.min())
    if probe > K or (arrays.units != K).any():
        raise ValueError(f"router: every problem needs the same number of Best-of-N samples >= probe={probe}")
    # actions: Best-of-N at recorded N >= probe (its first `probe` samples are the probe), search methods
    bon_budgets = sorted({int(r["budget"]) for r in recs if r["method"] == "best_of_n" and r["budget"] >= probe})
    actions = [("best_of_n", b, FIXED_RULES["best_of_n"]) for b in bon_budgets]
    other = sorted({(r["method"], int(r["budget"])) for r in recs if r["method"] in ("beam_search", "dvts")})
    actions += [(m, b, FIXED_RULES[m]) for m, b in other]
    P, J, A = len(problems), orders, len(actions)
    rng = np.random.default_rng(seed)
    perms = np.stack([np.stack([rng.permutation(K) for _ in range(P)]) for _ in range(J)])  # (J, P, K)
    correct = np.zeros((P, J, A))
    tokens = np.full((P, A), np.nan)
    flops_ = np.full((P, A), np.nan)
    by_key = {(str(r["problem_id"]), r["method"], int(r["budget"])): r for r in recs}
    for a, (method, b, rule) in enumerate(actions):
        if method == "best_of_n":
            correct[:, :, a] = curves.select_correct(arrays, perms[:, :, :b], (rule,))[rule].T
        for i, p in enumerate(problems):
            rec = by_key.get((p, method, b))
            if rec is None:
                raise ValueError(f"router: problem {p!r} has no {method} N={b} record; every problem needs every action")
            t, f = cost[(p, method, b)]
            if method != "best_of_n":
                correct[i, :, a] = bool(rec["selections"][rule]["correct"])
                pt, pf = cost.get((p, "best_of_n", probe), (np.nan, np.nan))
                t, f = t + pt, f + pf
            tokens[i, a], flops_[i, a] = t, f
    if np.isnan(tokens).any():
        raise ValueError(f"router: a Best-of-N N={probe} record (the probe's cost) is missing for some problem")
    features = probe_signals(arrays, perms[:, :, :probe], scoring, prompt_tokens=[
        float(bon_top[p]["candidates"][0]["usage"]["prompt_tokens"]) for p in problems])
    return RouterData(problems, actions, correct, tokens, flops_, features, probe)


def probe_signals(arrays: curves.CandidateArrays, idx: np.ndarray, scoring: str, prompt_tokens: Sequence[float]) -> np.ndarray:
    """(P, J, S) signals of the probe samples idx (J, P, k): answer keys and verifier scores only, no gold."""
    rows = np.arange(idx.shape[1])[None, :, None]
    keys = arrays.keys[rows, idx]  # (J, P, k)
    k = idx.shape[-1]
    valid = keys >= 0
    same = (keys[..., :, None] == keys[..., None, :]) & valid[..., :, None] & valid[..., None, :]
    modal = same.sum(axis=-1).max(axis=-1)  # votes of the most common answer
    # distinct answers: count each key at its first occurrence in the probe
    first = valid & ~np.tril(same, k=-1).any(axis=-1)
    scores = arrays.scores[scoring][rows, idx]
    scores = np.where(np.isfinite(scores), scores, -1.0)
    feats = np.stack([
        modal / k,
        first.sum(axis=-1).astype(float),
        1.0 - valid.mean(axis=-1),
        scores.mean(axis=-1),
        scores.max(axis=-1),
        np.broadcast_to(np.asarray(prompt_tokens, dtype=float)[None, :], modal.shape),
    ], axis=-1)
    return feats.transpose(1, 0, 2)  # (P, J, S)


def _thresholds(values: np.ndarray, max_thresholds: int) -> np.ndarray:
    """Candidate thresholds: the distinct values (or `max_thresholds` quantiles of them), plus +inf
    (never reached: a constant policy)."""
    u = np.unique(values)
    if len(u) > max_thresholds:
        u = np.unique(np.quantile(u, np.linspace(0, 1, max_thresholds)))
    return np.append(u, np.inf)


def fit_stumps(
    data: RouterData, train: np.ndarray, lambdas: Sequence[float], cost: str = "flops", max_thresholds: int = 32
) -> list[Stump]:
    """For each lambda, the stump maximising mean accuracy - lambda x mean cost / scale on `train`.

    scale = the mean cost of the cheapest action, so lambda reads "accuracy given up for one more
    cheapest action's worth of compute". Ties go to the cheaper action, then to the earlier signal and
    threshold. Accuracy and cost of each side are separable, so every (signal, threshold) is scored
    for all actions and lambdas at once.
    """
    c = getattr(data, cost)[train]  # (p, A)
    c = c / float(c.mean(axis=0).min())
    corr = data.correct[train]  # (p, J, A)
    feats = data.features[train]  # (p, J, S)
    n, J = corr.shape[:2]
    lam = np.asarray(lambdas, dtype=float)[:, None, None]  # (L, 1, 1)
    best_val = np.full(len(lambdas), -np.inf)
    best: list[Stump | None] = [None] * len(lambdas)
    for s in range(feats.shape[-1]):
        ts = _thresholds(feats[..., s], max_thresholds)
        hi = feats[None, ..., s] >= ts[:, None, None]  # (T, p, J)
        parts = []
        for mask in (~hi, hi):
            acc = np.einsum("tpj,pja->ta", mask, corr) / (n * J)  # (T, A)
            cst = mask.mean(axis=2) @ c / n  # (T, A)
            obj = acc[None] - lam * cst[None] - 1e-9 * cst[None]  # (L, T, A)
            parts.append((obj.argmax(axis=2), obj.max(axis=2)))  # (L, T) each
        total = parts[0][1] + parts[1][1]  # (L, T)
        t_best = total.argmax(axis=1)
        for li in range(len(lambdas)):
            t = t_best[li]
            if total[li, t] > best_val[li] + 1e-12:
                best_val[li] = total[li, t]
                best[li] = Stump(s, float(ts[t]), int(parts[0][0][li, t]), int(parts[1][0][li, t]))
    return best  # type: ignore[return-value]


def cross_validated_router(
    data: RouterData, lambdas: Sequence[float] = LAMBDAS, folds: int | None = None, seed: int = 0, cost: str = "flops"
) -> pd.DataFrame:
    """Per (lambda, problem): held-out accuracy, tokens and FLOPs of the router, and what it chose.

    folds: None = leave-one-out; else K folds over problems (shuffled with `seed`).
    """
    P = len(data.problems)
    fold_of = np.arange(P) if folds is None else np.random.default_rng(seed).permutation(P) % folds
    rows = []
    fitted = {k: fit_stumps(data, fold_of != k, lambdas, cost) for k in np.unique(fold_of)}
    for li, lam in enumerate(lambdas):
        for k in np.unique(fold_of):
            test = fold_of == k
            stump = fitted[k][li]
            for i in np.nonzero(test)[0]:
                act = stump.decide(data.features[i])  # (J,)
                chosen = pd.Series([data.actions[a] for a in act]).value_counts()
                rows.append({
                    "lambda": lam, "problem_id": data.problems[i],
                    "accuracy": float(data.correct[i, np.arange(len(act)), act].mean()),
                    "tokens": float(data.tokens[i, act].mean()), "flops": float(data.flops[i, act].mean()),
                    "signal": SIGNALS[stump.signal], "threshold": stump.threshold,
                    "low": "{} N={}".format(*data.actions[stump.low][:2]),
                    "high": "{} N={}".format(*data.actions[stump.high][:2]),
                    "action": "{} N={}".format(*chosen.index[0][:2]), "action_share": float(chosen.iloc[0] / len(act)),
                })
    return pd.DataFrame(rows)


def fixed_policies(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per (strategy, problem): accuracy (ttslab's estimator, FIXED_RULES) and measured cost of its record."""
    recs = _one_group(records)
    cost = _cost_per_record(recs)
    wide = curves.per_problem_accuracy(recs)
    rows = []
    for (policy, prm, method, rule, b), col in wide.items():
        if rule != FIXED_RULES.get(method):
            continue
        for p, v in col.dropna().items():
            if (str(p), method, int(b)) not in cost:
                continue  # a subsampled budget without a record of its own: no measured cost
            t, f = cost[(str(p), method, int(b))]
            rows.append({"policy": f"{method} N={b}", "method": method, "budget": int(b), "problem_id": str(p),
                         "accuracy": float(v), "tokens": t, "flops": f})
    return pd.DataFrame(rows)


def oracle_bin_policies(
    fixed: pd.DataFrame, bins: pd.Series, folds: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """The study's compute-optimal choice at each budget N, cross-validated: per gold-Pass@1 bin, the
    strategy with the best mean accuracy on the training problems of that bin (all training problems if
    the bin has none), scored on the held-out problem. Per (budget, problem): accuracy, tokens, FLOPs."""
    tts = fixed[fixed["method"] != "cot"]
    problems = sorted(tts["problem_id"].unique())
    fold_of = dict(zip(problems, np.arange(len(problems)) if folds is None
                       else np.random.default_rng(seed).permutation(len(problems)) % folds))
    label = {p: str(bins[p]) for p in problems}
    rows = []
    for b, g in tts.groupby("budget"):
        acc = g.pivot(index="problem_id", columns="method", values="accuracy").dropna()  # every strategy run
        for k in sorted(set(fold_of.values())):
            for p in [q for q in acc.index if fold_of[q] == k]:
                train = [q for q in acc.index if fold_of[q] != k]
                same_bin = [q for q in train if label[q] == label[p]]
                means = acc.loc[same_bin or train].mean(axis=0).sort_index()
                m = str(means.idxmax())
                r = g[(g["problem_id"] == p) & (g["method"] == m)].iloc[0]
                rows.append({"policy": f"oracle-bin compute-optimal N={b}", "budget": int(b), "problem_id": p,
                             "choice": m, "accuracy": r["accuracy"], "tokens": r["tokens"], "flops": r["flops"]})
    return pd.DataFrame(rows)


def bootstrap_means(per_problem: pd.DataFrame, columns=("accuracy", "tokens", "flops"), n_boot: int = 2000,
                    confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Means of `columns` over problems with percentile-bootstrap intervals (problems resampled jointly)."""
    v = per_problem[list(columns)].to_numpy(dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))
    boots = v[idx].mean(axis=1)  # (n_boot, C)
    lo, hi = np.percentile(boots, [50 * (1 - confidence), 50 * (1 + confidence)], axis=0)
    out: dict[str, float] = {"problems": len(v)}
    for j, c in enumerate(columns):
        out[c], out[f"{c}_low"], out[f"{c}_high"] = float(v[:, j].mean()), float(lo[j]), float(hi[j])
    return out


def policy_table(
    records: Iterable[dict[str, Any]],
    probe: int = 4,
    lambdas: Sequence[float] = LAMBDAS,
    orders: int = 128,
    folds: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accuracy (%) vs mean compute per problem for fixed strategies, the oracle-bin compute-optimal
    choice per budget and the router per lambda, with 95% bootstrap intervals over problems.

    Returns (table, router_rows): one row per policy; the router's per-problem rows (what it chose).
    """
    recs = _one_group(records)
    fixed = fixed_policies(recs)
    bins = difficulty.difficulty_bins(difficulty.pass_at_1(recs))
    oracle = oracle_bin_policies(fixed, bins, folds, seed)
    data = router_data(recs, probe=probe, orders=orders, seed=seed)
    routed = cross_validated_router(data, lambdas, folds, seed)
    rows = []
    for kind, frame, key in (("fixed", fixed, "policy"), ("oracle-bin (gold Pass@1)", oracle, "policy"),
                             ("router (no gold)", routed, "lambda")):
        for name, g in frame.groupby(key, sort=False):
            if kind == "fixed":
                what = {"policy": name, "method": g["method"].iloc[0], "budget": g["budget"].iloc[0], "lambda": np.nan}
            elif kind.startswith("oracle"):
                what = {"policy": name, "method": "compute_optimal", "budget": g["budget"].iloc[0], "lambda": np.nan}
            else:
                what = {"policy": f"router lambda={name:g}", "method": "router", "budget": np.nan, "lambda": name}
            rows.append({"kind": kind, **what, **bootstrap_means(g, n_boot=n_boot, seed=seed)})
    table = pd.DataFrame(rows)
    for c in ("accuracy", "accuracy_low", "accuracy_high"):
        table[c] *= 100.0
    return table, routed
