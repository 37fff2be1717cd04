"""Compute-optimal TTS (§3, §5.2, Table 5): the best strategy + rule per budget, and its honest estimate.

For each (policy, PRM, difficulty bin, budget) the configuration (method, rule) with the best mean
accuracy is chosen. Choosing and scoring on the same problems overstates the result (the max over
many noisy configurations), so `compute_optimal_curve` reports both the in-sample accuracy and a
K-fold cross-validated one: configurations are chosen on the training folds and scored on the
held-out problems, and every problem is scored exactly once. The cross-validated curve is reported
at fixed budgets; a single "compute-optimal accuracy" either reads it at a budget fixed in advance
(e.g. the largest) or chooses the budget inside the folds (`nested_cv_accuracy`). Its maximum over
budgets would choose the budget on the held-out scores: in-sample selection again.

Intervals: `compute_optimal_curve` gives each accuracy a 95% percentile bootstrap interval over problems
(`<column>_ci_low/_ci_high`) of the per-problem scores with the configurations held at their choice: they
show how much the problems move the number, not how uncertain the choice itself is (the gap between the
in-sample and the cross-validated curve shows that).

Efficiency Gain interpolates in log2 budget by default: budgets are powers of two and the curves are
drawn on a log2 axis, so this is linear interpolation along the segment the reader sees. `scale="linear"`
interpolates in raw budget instead (it gives a larger matched budget, hence a smaller gain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ttslab.analysis.compare import proportion_interval
from ttslab.analysis.curves import PASS_AT_K
from ttslab.search.strategies import STRATEGIES

NOT_TTS_METHODS = tuple(n for n, c in STRATEGIES.items() if c.greedy)  # baselines, not TTS strategies
ALL = "all"  # difficulty label when no bins are given


def _candidate_columns(per_problem: pd.DataFrame) -> pd.DataFrame:
    """Only TTS configurations: drop pass@k (an oracle) and CoT (a baseline)."""
    cols = per_problem.columns
    keep = ~cols.get_level_values("method").isin(NOT_TTS_METHODS) & (
        cols.get_level_values("rule") != PASS_AT_K
    )
    return per_problem.loc[:, keep]


def _choose(values: pd.DataFrame) -> pd.DataFrame:
    """Per (policy, prm, budget): the (method, rule) column with the highest mean over the given rows.

    Ties go to the first column in sorted (method, rule) order, so the choice is reproducible. Only columns
    with a value for every given row compete: a configuration run on a subset of the problems (search at
    N = 16 on 10 of 40) would otherwise compete by its mean over other problems, and leave the rest unscored.
    """
    means = _complete(values).mean(axis=0).rename("accuracy").reset_index()
    means = means.sort_values(["policy", "prm", "budget", "method", "rule"], kind="stable")
    best = means.loc[means.groupby(["policy", "prm", "budget"], sort=True)["accuracy"].idxmax()]
    return best.reset_index(drop=True)


def _complete(values: pd.DataFrame) -> pd.DataFrame:
    """The columns with a value on every row."""
    return values.loc[:, values.notna().all(axis=0)]


def _bins_or_all(per_problem: pd.DataFrame, bins: pd.Series | None) -> pd.Series:
    if bins is None:
        return pd.Series(ALL, index=per_problem.index, name="difficulty")
    missing = per_problem.index.difference(bins.index)
    if len(missing):
        raise ValueError(
            f"compute-optimal: {len(missing)} problems have no difficulty label, e.g. {missing[0]!r}"
        )
    return bins.reindex(per_problem.index).astype(str)


def best_configurations(per_problem: pd.DataFrame, bins: pd.Series | None = None) -> pd.DataFrame:
    """The in-sample choice per (policy, prm, difficulty, budget): method, rule and accuracy (percent)."""
    tts = _candidate_columns(per_problem)
    labels = _bins_or_all(per_problem, bins)
    parts = []
    for label in sorted(labels.unique()):
        rows = tts.loc[labels == label]
        parts.append(_choose(rows).assign(difficulty=label, n_problems=len(rows)))
    out = pd.concat(parts, ignore_index=True)
    out["accuracy"] *= 100.0
    return out[["policy", "prm", "difficulty", "budget", "method", "rule", "accuracy", "n_problems"]]


def _bin_folds(labels: pd.Series, train: np.ndarray, test: np.ndarray):
    """(bin mask, train mask, test mask) of each difficulty bin with test problems in this fold."""
    for label in labels.unique():
        in_bin = (labels == label).to_numpy()
        tr, te = train & in_bin, test & in_bin
        if not te.any():
            continue
        if not tr.any():
            raise ValueError(
                f"cross-validation: difficulty bin {label!r} has no training problems in a fold; "
                "use fewer folds or coarser bins"
            )
        yield in_bin, tr, te


def _scored_with_choice(
    tts: pd.DataFrame, labels: pd.Series, train: np.ndarray, test: np.ndarray
) -> pd.DataFrame:
    """Per-problem values on `test` rows of the configuration chosen on `train` rows of the same bin.

    Returns one column per (policy, prm, budget).
    """
    test_ids = tts.index[test]
    out: dict[tuple, np.ndarray] = {}
    for in_bin, tr, te in _bin_folds(labels, train, test):
        rows_in_test = in_bin[test]  # positions of this bin's problems among the test rows
        complete = _complete(tts.loc[tr | te]).columns  # scorable on the held-out rows too
        for _, c in _choose(tts.loc[tr, complete]).iterrows():
            key = (c["policy"], c["prm"], c["budget"])
            col = (c["policy"], c["prm"], c["method"], c["rule"], c["budget"])
            out.setdefault(key, np.full(len(test_ids), np.nan))[rows_in_test] = tts.loc[te, col].to_numpy()
    return pd.DataFrame(out, index=test_ids)


def _mean_ci(scores: pd.DataFrame, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: mean, and 95% percentile-bootstrap interval over the rows (problems), in percent."""
    values = scores.to_numpy(dtype=float) * 100.0
    mean = values.mean(axis=0)
    low, high = mean.copy(), mean.copy()
    if len(values) >= 2:
        ci = stats.bootstrap((values,), np.mean, axis=0, vectorized=True, n_resamples=n_boot,
                             confidence_level=0.95, method="percentile",
                             random_state=np.random.default_rng(seed)).confidence_interval
        low, high = np.where(np.isnan(ci.low), mean, ci.low), np.where(np.isnan(ci.high), mean, ci.high)
    # a column on which every problem agrees (0/n, n/n): the Wilson interval, never [0, 0]
    flat = np.ptp(values, axis=0) == 0 if len(values) else np.zeros(len(mean), dtype=bool)
    for j in np.nonzero(flat)[0]:
        lo, hi = proportion_interval(min(1.0, max(0.0, mean[j] / 100.0)), len(values))
        low[j], high[j] = 100.0 * lo, 100.0 * hi
    return mean, low, high


def cross_validated_scores(
    per_problem: pd.DataFrame, bins: pd.Series | None = None, folds: int = 5, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(in-sample, held-out) per-problem expected correctness of the compute-optimal choice, one column
    per (policy, prm, budget): the per-problem values behind `compute_optimal_curve`, for paired
    comparisons (`ttslab.analysis.compare.paired_difference`)."""
    tts = _candidate_columns(per_problem)
    labels = _bins_or_all(per_problem, bins)
    n = len(tts)
    if folds < 2 or folds > n:
        raise ValueError(
            f"compute_optimal_curve: folds must be in [2, {n}] (number of problems), got {folds}"
        )
    everyone = np.ones(n, dtype=bool)
    in_sample = _scored_with_choice(tts, labels, everyone, everyone)
    fold_of = np.random.default_rng(seed).permutation(n) % folds
    held_out = pd.concat([_scored_with_choice(tts, labels, fold_of != k, fold_of == k) for k in range(folds)])
    return in_sample, held_out.loc[in_sample.index, in_sample.columns]  # same problems, same column order


def compute_optimal_curve(
    per_problem: pd.DataFrame, bins: pd.Series | None = None, folds: int = 5, seed: int = 0, n_boot: int = 1000
) -> pd.DataFrame:
    """Compute-optimal accuracy (percent) per (policy, prm, budget), in-sample and cross-validated,
    each with a 95% bootstrap interval over problems (`accuracy_in_sample_ci_low`, ..._ci_high,
    `accuracy_cv_ci_low`, ...; the choices held fixed, see the module docstring).

    With `bins`, the configuration is chosen per difficulty bin (the study's difficulty-aware
    recipe) and each problem is scored with its own bin's choice.
    """
    in_sample, held_out = cross_validated_scores(per_problem, bins, folds, seed)
    out = pd.DataFrame(index=pd.MultiIndex.from_tuples(in_sample.columns, names=["policy", "prm", "budget"]))
    for name, scores in (("accuracy_in_sample", in_sample), ("accuracy_cv", held_out)):
        mean, low, high = _mean_ci(scores, n_boot, seed)
        out[name], out[f"{name}_ci_low"], out[f"{name}_ci_high"] = mean, low, high
    out = out[["accuracy_in_sample", "accuracy_cv", "accuracy_in_sample_ci_low", "accuracy_in_sample_ci_high",
               "accuracy_cv_ci_low", "accuracy_cv_ci_high"]]
    return out.reset_index().sort_values(["policy", "prm", "budget"]).reset_index(drop=True)


def nested_cv_accuracy(
    per_problem: pd.DataFrame, bins: pd.Series | None = None, folds: int = 5, seed: int = 0
) -> pd.DataFrame:
    """Compute-optimal accuracy (percent) per (policy, prm) with the budget chosen inside the folds.

    In each fold the configuration (method, rule) *and* the budget are chosen on the training problems
    (per difficulty bin when `bins` is given) and scored on the held-out ones. Taking the maximum of the
    cross-validated curve over budgets instead would pick the luckiest budget after seeing the held-out
    scores (in-sample again). Returns policy, prm, accuracy_cv_nested, and the budget chosen most often.
    """
    tts = _candidate_columns(per_problem)
    labels = _bins_or_all(per_problem, bins)
    n = len(tts)
    if folds < 2 or folds > n:
        raise ValueError(f"nested_cv_accuracy: folds must be in [2, {n}] (number of problems), got {folds}")
    fold_of = np.random.default_rng(seed).permutation(n) % folds
    scored: dict[tuple, np.ndarray] = {}
    chosen: dict[tuple, list[int]] = {}
    for k in range(folds):
        train, test = fold_of != k, fold_of == k
        for _, tr, te in _bin_folds(labels, train, test):
            complete = _complete(tts.loc[tr | te]).columns  # scorable on the held-out rows too
            means = tts.loc[tr, complete].mean(axis=0).rename("accuracy").reset_index()
            means = means.sort_values(["policy", "prm", "budget", "method", "rule"], kind="stable")
            for (policy, prm), g in means.groupby(["policy", "prm"], sort=True):
                c = g.loc[g["accuracy"].idxmax()]
                col = (policy, prm, c["method"], c["rule"], c["budget"])
                scored.setdefault((policy, prm), np.full(n, np.nan))[te] = tts.loc[te, col].to_numpy()
                chosen.setdefault((policy, prm), []).append(int(c["budget"]))
    rows = [
        {"policy": p, "prm": q, "accuracy_cv_nested": float(np.nanmean(v)) * 100.0,
         "budget_chosen_most": int(pd.Series(chosen[(p, q)]).mode().max())}
        for (p, q), v in sorted(scored.items())
    ]
    return pd.DataFrame(rows)


def performance_gain(cot: float, tts: float) -> float:
    """Table 5's Performance Gain in percent: (TTS - CoT) / CoT x 100; NaN (undefined) when CoT is 0, as on a
    few hard problems a small policy may get none right with CoT."""
    if cot < 0:
        raise ValueError(f"performance_gain: CoT accuracy must be >= 0, got {cot}")
    return (tts - cot) / cot * 100.0 if cot > 0 else float("nan")


@dataclass(frozen=True)
class EfficiencyGain:
    """Budget at the majority-vote maximum / budget where the compute-optimal curve reaches it."""

    value: float  # NaN when the compute-optimal curve never reaches the majority maximum
    lower_bound: bool  # True: TTS already beats the majority maximum at its smallest budget (our ">")
    majority_budget: float
    matched_budget: float

    def __str__(self) -> str:
        if np.isnan(self.value):
            return "not reached"
        return f"{'>' if self.lower_bound else ''}{self.value:.1f}×"


def efficiency_gain(majority: pd.Series, optimal: pd.Series, scale: str = "log2") -> EfficiencyGain:
    """Efficiency Gain from two curves (index = budget, values = accuracy), as the study's authors define it.

    1. the highest point of the majority curve (the smallest budget reaching it on ties);
    2. the budget at which the compute-optimal curve first reaches that accuracy, by linear
       interpolation between its two neighbouring points, in log2 budget (default) or raw budget;
    3. the ratio. If the compute-optimal curve is already at or above the target at its smallest
       budget, the true matched budget is unknown (below the grid) and the ratio is printed with ">".

    That ">" is our reading of the ">" Table 5 prints (e.g. ">64.0×"): a lower bound because the curve
    starts above the target. The study does not say what its ">" means; the fact sheet (§3) marks this
    reading as an interpretation, and it is not settled.
    """
    if scale not in ("log2", "linear"):
        raise ValueError(f"efficiency_gain: scale {scale!r}; expected 'log2' or 'linear'")
    maj = majority.dropna().sort_index()
    opt = optimal.dropna().sort_index()
    if maj.empty or opt.empty:
        raise ValueError("efficiency_gain: both curves need at least one point")
    if (maj.index <= 0).any() or (opt.index <= 0).any():
        raise ValueError("efficiency_gain: budgets must be positive")
    target = maj.max()
    majority_budget = float(maj.index[np.argmax(maj.to_numpy() >= target)])
    budgets, acc = opt.index.to_numpy(dtype=float), opt.to_numpy(dtype=float)
    if acc[0] >= target:
        return EfficiencyGain(majority_budget / budgets[0], True, majority_budget, budgets[0])
    above = np.nonzero(acc >= target)[0]
    if not len(above):
        return EfficiencyGain(float("nan"), False, majority_budget, float("nan"))
    i = above[0]  # first point at or above the target; i - 1 is below it
    frac = (target - acc[i - 1]) / (acc[i] - acc[i - 1])
    if scale == "log2":
        matched = float(
            2 ** (np.log2(budgets[i - 1]) + frac * (np.log2(budgets[i]) - np.log2(budgets[i - 1])))
        )
    else:
        matched = float(budgets[i - 1] + frac * (budgets[i] - budgets[i - 1]))
    return EfficiencyGain(majority_budget / matched, False, majority_budget, matched)


def table5_row(policy: str, cot: float, majority: pd.Series, optimal: pd.Series, scale: str = "log2") -> dict:
    """One Table 5 row from measured curves (accuracy in percent, index = budget)."""
    eg = efficiency_gain(majority, optimal, scale)
    best = float(optimal.max())
    return {
        "policy_model": policy,
        "cot": cot,
        "majority": float(majority.max()),
        "compute_optimal_tts": best,
        "performance_gain_pct": performance_gain(cot, best),
        "efficiency_gain": eg.value,
        "efficiency_gain_is_lower_bound": eg.lower_bound,
        "efficiency_gain_printed": str(eg),
    }
