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
and the router at each lambda. All of them choose among the same actions (each method with the one rule
it reports, `ttslab.analysis.rules`), so the comparison is about strategy and budget.

Which router is *the* router. The sweep over lambda traces a curve; its best point is chosen on the
problems it is scored on and flatters the router. The router reported as a result is fixed in advance:
lambda chosen *inside* each training fold (`nested_lambda_router`: an inner cross-validation over the
training problems picks the lambda with the best inner held-out accuracy, ties to the larger lambda, i.e.
less compute), so the held-out problem plays no part in the choice. `router_verdicts` sets it against
CoT and against the most accurate fixed strategy that costs no more, with paired differences over problems
(`ttslab.analysis.compare`). Which methods play which part is read from the method registry
(`ttslab.analysis.methods`): the probe is the sampling method's first samples (Best-of-N), the other
actions are every search method, the baseline (CoT) is never an action.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ttslab.analysis import compare, curves, difficulty, flops, methods, rules

SIGNALS = ("agreement", "distinct", "no_answer", "verifier_mean", "verifier_max", "prompt_tokens")
LAMBDAS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0)
INNER_ORDERS = 32  # sample orders the inner cross-validation of `choose_lambda` reads


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


def _sampling_method(recs: Sequence[dict[str, Any]]) -> str | None:
    """The method whose first samples form the probe (Best-of-N, by the registry), if the records hold one."""
    found = methods.ordered(r["method"] for r in recs if methods.is_sampling(r["method"]))
    return found[0] if found else None


def _one_group(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    recs = list(records)
    groups = {(r.get("policy"), r.get("prm")) for r in recs if not methods.is_baseline(r["method"])}
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
    groups = {(r.get("policy"), r.get("prm")) for r in recs if not methods.is_baseline(r["method"])}
    if len(groups) != 1 or not all(p for _, p in groups):
        return "the records need exactly one (policy, PRM) pair with a verifier"
    have: dict[str, set] = {}
    for r in recs:
        if not methods.is_baseline(r["method"]):
            have.setdefault(str(r["problem_id"]), set()).add((r["method"], int(r["budget"])))
    sampler = _sampling_method(recs)
    if sampler is None or not any((sampler, probe) in h for h in have.values()):
        return f"no record of a sampling method (Best-of-N) at N = {probe} (the probe)"
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
    sampler = _sampling_method(recs)
    prm = str(next(r.get("prm") for r in recs if not methods.is_baseline(r["method"])) or curves.NO_PRM)
    bon_top: dict[str, dict] = {}
    for r in recs:
        if r["method"] == sampler:
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
    bon_budgets = sorted({int(r["budget"]) for r in recs if r["method"] == sampler and r["budget"] >= probe})
    actions = [(sampler, b, rules.rule_of(sampler, prm)) for b in bon_budgets]
    other = sorted({(r["method"], int(r["budget"])) for r in recs if methods.is_search(r["method"])},
                   key=lambda mb: (methods.ordered([mb[0], *methods.method_names()]).index(mb[0]), mb))
    actions += [(m, b, rules.rule_of(m, prm)) for m, b in other]
    P, J, A = len(problems), orders, len(actions)
    rng = np.random.default_rng(seed)
    perms = np.stack([np.stack([rng.permutation(K) for _ in range(P)]) for _ in range(J)])  # (J, P, K)
    correct = np.zeros((P, J, A))
    tokens = np.full((P, A), np.nan)
    flops_ = np.full((P, A), np.nan)
    by_key = {(str(r["problem_id"]), r["method"], int(r["budget"])): r for r in recs}
    for a, (method, b, rule) in enumerate(actions):
        if method == sampler:
            correct[:, :, a] = curves.select_correct(arrays, perms[:, :, :b], (rule,))[rule].T
        for i, p in enumerate(problems):
            rec = by_key.get((p, method, b))
            if rec is None:
                raise ValueError(f"router: problem {p!r} has no {method} N={b} record; every problem needs every action")
            t, f = cost[(p, method, b)]
            if method != sampler:
                correct[i, :, a] = bool(rec["selections"][rule]["correct"])
                pt, pf = cost.get((p, sampler, probe), (np.nan, np.nan))
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


def _fold_of(n: int, folds: int | None, seed: int) -> np.ndarray:
    """Fold index per problem: leave-one-out (folds=None) or K shuffled folds."""
    return np.arange(n) if folds is None else np.random.default_rng(seed).permutation(n) % folds


def _row(data: RouterData, i: int, stump: Stump, lam: float) -> dict[str, Any]:
    """Held-out accuracy, cost and choice of `stump` on problem i (averaged over sample orders)."""
    act = stump.decide(data.features[i])  # (J,)
    chosen = pd.Series([data.actions[a] for a in act]).value_counts()
    return {
        "lambda": lam, "problem_id": data.problems[i],
        "accuracy": float(data.correct[i, np.arange(len(act)), act].mean()),
        "tokens": float(data.tokens[i, act].mean()), "flops": float(data.flops[i, act].mean()),
        "signal": SIGNALS[stump.signal], "threshold": stump.threshold,
        "low": "{} N={}".format(*data.actions[stump.low][:2]),
        "high": "{} N={}".format(*data.actions[stump.high][:2]),
        "action": "{} N={}".format(*chosen.index[0][:2]), "action_share": float(chosen.iloc[0] / len(act)),
    }


def cross_validated_router(
    data: RouterData, lambdas: Sequence[float] = LAMBDAS, folds: int | None = None, seed: int = 0, cost: str = "flops",
    fitted: dict | None = None,
) -> pd.DataFrame:
    """Per (lambda, problem): held-out accuracy, tokens and FLOPs of the router, and what it chose.

    folds: None = leave-one-out; else K folds over problems (shuffled with `seed`).
    fitted: {fold: stumps per lambda} already fitted on each fold's training problems (else fitted here).
    """
    fold_of = _fold_of(len(data.problems), folds, seed)
    fitted = fitted or {k: fit_stumps(data, fold_of != k, lambdas, cost) for k in np.unique(fold_of)}
    return pd.DataFrame([_row(data, i, fitted[k][li], lam) for li, lam in enumerate(lambdas)
                         for k in np.unique(fold_of) for i in np.nonzero(fold_of == k)[0]])


def choose_lambda(data: RouterData, train: np.ndarray, lambdas: Sequence[float], inner_folds: int = 5,
                  seed: int = 0, cost: str = "flops") -> int:
    """Index of the lambda whose router, cross-validated *within* the training problems `train` (a mask),
    has the best held-out accuracy; ties go to the larger lambda (less compute). The inner fits read the
    first `INNER_ORDERS` sample orders only (a coarse choice among a few lambdas needs fewer; 4x faster)."""
    data = RouterData(data.problems, data.actions, data.correct[:, :INNER_ORDERS], data.tokens, data.flops,
                      data.features[:, :INNER_ORDERS], data.probe)
    idx = np.nonzero(train)[0]
    inner = np.random.default_rng(seed).permutation(len(idx)) % min(inner_folds, len(idx))
    score = np.zeros(len(lambdas))
    for k in np.unique(inner):
        fit = np.zeros(len(data.problems), dtype=bool)
        fit[idx[inner != k]] = True
        test = idx[inner == k]
        for li, stump in enumerate(fit_stumps(data, fit, lambdas, cost)):
            act = stump.decide(data.features[test])  # (t, J)
            score[li] += np.take_along_axis(data.correct[test], act[..., None], axis=-1).mean(axis=1).sum()
    return int(np.nonzero(score >= score.max() - 1e-9)[0].max())


def nested_lambda_router(data: RouterData, lambdas: Sequence[float] = LAMBDAS, folds: int | None = None,
                         inner_folds: int = 5, seed: int = 0, cost: str = "flops",
                         fitted: dict | None = None) -> pd.DataFrame:
    """The reported router: per held-out problem, lambda chosen by `choose_lambda` on that fold's training
    problems alone, the stump fitted on them with it. One row per problem, as `cross_validated_router`."""
    fold_of = _fold_of(len(data.problems), folds, seed)
    fitted = fitted or {k: fit_stumps(data, fold_of != k, lambdas, cost) for k in np.unique(fold_of)}
    rows = []
    for k in np.unique(fold_of):
        li = choose_lambda(data, fold_of != k, lambdas, inner_folds, seed, cost)
        rows += [_row(data, i, fitted[k][li], lambdas[li]) for i in np.nonzero(fold_of == k)[0]]
    return pd.DataFrame(rows)


def fixed_policies(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per (strategy, problem): accuracy (ttslab's estimator, each method's reported rule) and measured cost
    of its record."""
    recs = _one_group(records)
    cost = _cost_per_record(recs)
    wide = curves.per_problem_accuracy(recs)
    rows = []
    for (policy, prm, method, rule, b), col in wide.items():
        if rule != rules.rule_of(method, prm):
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
    tts = fixed[~fixed["method"].map(methods.is_baseline)]
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


@dataclass
class RouterResult:
    """Everything `evaluate` computes: the policy table, and the per-problem frames behind it."""

    table: pd.DataFrame  # one row per policy (fixed, oracle-bin, router per lambda, the reported router)
    routed: pd.DataFrame  # the router's per-(lambda, problem) rows of the sweep
    nested: pd.DataFrame  # the reported router's per-problem rows (lambda chosen inside the folds)
    fixed: pd.DataFrame  # per (fixed strategy, problem): accuracy, tokens, FLOPs
    verdicts: pd.DataFrame  # paired differences of the reported router (`router_verdicts`)


REPORTED = "router, lambda chosen in the training folds (reported)"


def evaluate(
    records: Iterable[dict[str, Any]],
    probe: int = 4,
    lambdas: Sequence[float] = LAMBDAS,
    orders: int = 128,
    folds: int | None = None,
    inner_folds: int = 5,
    n_boot: int = 2000,
    seed: int = 0,
) -> RouterResult:
    """Fixed strategies, the oracle-bin compute-optimal choice per budget, the router per lambda (the
    sweep, for reading) and the reported router (lambda chosen inside the folds), with 95% bootstrap
    intervals over problems, and the reported router's paired differences (`router_verdicts`)."""
    recs = _one_group(records)
    fixed = fixed_policies(recs)
    bins = difficulty.difficulty_bins(difficulty.pass_at_1(recs))
    oracle = oracle_bin_policies(fixed, bins, folds, seed)
    data = router_data(recs, probe=probe, orders=orders, seed=seed)
    fold_of = _fold_of(len(data.problems), folds, seed)
    fitted = {k: fit_stumps(data, fold_of != k, lambdas, "flops") for k in np.unique(fold_of)}
    routed = cross_validated_router(data, lambdas, folds, seed, fitted=fitted)
    nested = nested_lambda_router(data, lambdas, folds, inner_folds, seed, fitted=fitted)
    rows = []
    for kind, frame, key in (("fixed", fixed, "policy"), ("oracle-bin (gold Pass@1)", oracle, "policy"),
                             ("router (no gold)", routed, "lambda"), (REPORTED, nested.assign(all=0), "all")):
        for name, g in frame.groupby(key, sort=False):
            if kind == "fixed":
                what = {"policy": name, "method": g["method"].iloc[0], "budget": g["budget"].iloc[0], "lambda": np.nan}
            elif kind.startswith("oracle"):
                what = {"policy": name, "method": "compute_optimal", "budget": g["budget"].iloc[0], "lambda": np.nan}
            elif kind == REPORTED:
                lams = ", ".join(f"{v:g}" for v in sorted(g["lambda"].unique()))
                what = {"policy": f"router, lambda chosen in each training fold ({lams})", "method": "router_nested",
                        "budget": np.nan, "lambda": np.nan}
            else:
                what = {"policy": f"router lambda={name:g}", "method": "router", "budget": np.nan, "lambda": name}
            rows.append({"kind": kind, **what, **bootstrap_means(g, n_boot=n_boot, seed=seed)})
    table = pd.DataFrame(rows)
    for c in ("accuracy", "accuracy_low", "accuracy_high"):
        table[c] *= 100.0
    return RouterResult(table, routed, nested, fixed, router_verdicts(nested, fixed, seed=seed))


def router_verdicts(nested: pd.DataFrame, fixed: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The reported router against CoT and against the most accurate fixed strategy costing no more
    (mean FLOPs per problem) than the router, paired over problems (`compare.paired_difference`).

    That strategy is picked on these problems, which flatters it, not the router."""
    router = nested.set_index("problem_id")["accuracy"]
    cost = nested["flops"].mean()
    means = fixed.groupby("policy").agg(accuracy=("accuracy", "mean"), flops=("flops", "mean"), method=("method", "first"))
    out = []
    base = means[means["method"].map(methods.is_baseline)]
    cheap = means[~means["method"].map(methods.is_baseline) & (means["flops"] <= cost * 1.0001)]
    for role, pick in (("the baseline (CoT)", base), ("the most accurate fixed strategy at no more compute", cheap)):
        if pick.empty:
            out.append({"against": role, "sentence": f"no {role} in these records"})
            continue
        name = pick.sort_values(["accuracy", "flops"], ascending=[False, True]).index[0]
        other = fixed[fixed["policy"] == name].set_index("problem_id")["accuracy"]
        d = compare.paired_difference(router, other, "the reported router", name, seed=seed)
        out.append({"against": role, "strategy": name, "router flops": cost,
                    "its flops": float(means.loc[name, "flops"]), **d.as_dict(), "sentence": d.verdict()})
    return pd.DataFrame(out)


def policy_table(
    records: Iterable[dict[str, Any]],
    probe: int = 4,
    lambdas: Sequence[float] = LAMBDAS,
    orders: int = 128,
    folds: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`evaluate`'s (table, per-(lambda, problem) rows of the sweep)."""
    res = evaluate(records, probe, lambdas, orders, folds, n_boot=n_boot, seed=seed)
    return res.table, res.routed
