"""How two strategies are compared, and how sure one can be: the one place notebooks and READMEs get a verdict from.

- `paired_difference(a, b)`: A - B over the problems both were run on. Each problem is its own control
  (the same problem is easy or hard for both), so the interval is on the mean of per-problem differences,
  never on two marginal intervals that happen to overlap or not. Interval: percentile bootstrap over
  problems (scipy.stats.bootstrap); p-value: a two-sided sign-flip permutation test on the per-problem
  differences (scipy.stats.permutation_test), exact (every sign pattern of the problems that differ)
  when there are at most `EXACT_FLIPS` of them, else Monte Carlo. A difference is called a difference only
  when its interval excludes 0 and the sign-flip p-value is below 5%.
- `proportion_interval(mean, n)`: the Wilson score interval, never [0, 0] at 0/n (0/28 -> [0, 12.1%]).
  For per-problem *expected* accuracies (a fraction in [0, 1] per problem, e.g. Best-of-N@4 averaged over
  every subset of 4 samples) it is the Wilson interval of the mean with n = problems: a quantity in [0, 1]
  with mean p has variance at most p(1 - p) (equality when every value is 0 or 1), so the binomial
  variance the interval assumes is the largest possible and the interval is, if anything, wide.
- `over_seeds(fn, seeds)`: a cross-validated number depends on how the problems fall into folds; run it
  for many fold seeds and report the spread (min, quartiles, max), not one seed's value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

EXACT_FLIPS = 16  # 2^16 = 65,536 sign patterns: enumerated; beyond, Monte Carlo
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """A - B over the same problems, in points (percent) when the inputs are fractions."""

    a: str
    b: str
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    p_value: float
    problems: int
    differ: int  # problems where A and B differ
    exact: bool  # the p-value enumerates every sign pattern

    @property
    def decided(self) -> bool:
        """This run tells A and B apart: the interval excludes 0 *and* the sign-flip test rejects equality at
        5% (with a few problems the percentile bootstrap is too narrow; both must agree)."""
        return (self.low > 0 or self.high < 0) and self.p_value < 1 - CONFIDENCE

    def verdict(self) -> str:
        """One sentence: A - B with its interval and p-value, and what it allows one to say."""
        what = (f"{self.a} is above {self.b}" if self.decided and self.diff > 0 else
                f"{self.a} is below {self.b}" if self.decided else
                f"this run does not tell {self.a} and {self.b} apart")
        return f"{what}: {self}"

    def __str__(self) -> str:
        p = f"p = {self.p_value:.2g}" + ("" if self.exact else " (Monte Carlo)")
        return (f"{self.a} − {self.b} = {self.diff:+.1f} points [{self.low:+.1f}, {self.high:+.1f}] "
                f"({self.mean_a:.1f}% vs {self.mean_b:.1f}%, paired over {self.problems} problems, "
                f"{self.differ} differ; sign-flip {p})")

    def as_dict(self) -> dict:
        return {"A": self.a, "B": self.b, "A %": self.mean_a, "B %": self.mean_b, "A − B": self.diff,
                "low": self.low, "high": self.high, "p": self.p_value, "problems": self.problems,
                "differ": self.differ, "verdict": "A above B" if self.decided and self.diff > 0 else
                "A below B" if self.decided else "not told apart"}


def _aligned(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Per-problem values of A and B on the problems both have (Series are aligned on their index)."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        both = pd.concat([a.rename("a"), b.rename("b")], axis=1).dropna()
        return both["a"].to_numpy(dtype=float), both["b"].to_numpy(dtype=float)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: A has {a.shape} values, B {b.shape}; pair them by problem")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


def sign_flip_p(d: np.ndarray, n_resamples: int = 20_000, seed: int = 0) -> tuple[float, bool]:
    """Two-sided p-value of mean(d) = 0 under sign flips of the per-problem differences; (p, exact)."""
    d = d[d != 0]  # a zero difference flips to itself
    if len(d) <= 1:  # no sign pattern is less extreme than the observed one
        return 1.0, True
    exact = len(d) <= EXACT_FLIPS
    res = stats.permutation_test((d,), np.mean, permutation_type="samples", vectorized=True,
                                 n_resamples=np.inf if exact else n_resamples, alternative="two-sided",
                                 random_state=np.random.default_rng(seed))
    return float(min(1.0, res.pvalue)), exact


def paired_difference(a, b, name_a: str = "A", name_b: str = "B", scale: float = 100.0, n_boot: int = 5000,
                      confidence: float = CONFIDENCE, seed: int = 0) -> PairedDifference:
    """A - B over the problems both hold (per-problem values, e.g. expected correctness in [0, 1]).

    scale: 100 reports points of accuracy for fractions. Interval: percentile bootstrap of the mean
    difference over problems; p-value: `sign_flip_p`.
    """
    x, y = _aligned(a, b)
    if len(x) == 0:
        raise ValueError(f"paired_difference: {name_a} and {name_b} share no problem")
    d = (x - y) * scale
    mean = float(d.mean())
    if len(d) >= 2 and np.ptp(d) > 0:
        ci = stats.bootstrap((d,), np.mean, vectorized=True, n_resamples=n_boot, confidence_level=confidence,
                             method="percentile", random_state=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    else:  # every problem differs by the same amount (often 0): nothing to resample
        low = high = mean
    p, exact = sign_flip_p(d, seed=seed)
    return PairedDifference(name_a, name_b, float(x.mean() * scale), float(y.mean() * scale), mean, low, high, p,
                            len(d), int((d != 0).sum()), exact)


def paired_table(columns: dict[str, pd.Series], pairs: Iterable[tuple[str, str]], **kw) -> pd.DataFrame:
    """`paired_difference` for each (A, B) pair of named per-problem columns, one row each."""
    return pd.DataFrame([paired_difference(columns[a], columns[b], a, b, **kw).as_dict() for a, b in pairs])


def proportion_interval(mean: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion `mean` in [0, 1] over n problems (see the module docstring
    for per-problem expected accuracies); never [0, 0] at 0/n nor [1, 1] at n/n."""
    if n < 1:
        raise ValueError(f"proportion_interval: n = {n}; expected at least one problem")
    if not 0.0 <= mean <= 1.0:
        raise ValueError(f"proportion_interval: mean = {mean}; expected a fraction in [0, 1]")
    z = stats.norm.ppf(0.5 + confidence / 2)
    denom = 1 + z * z / n
    centre = (mean + z * z / (2 * n)) / denom
    half = z / denom * np.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n))
    low = 0.0 if mean == 0 else max(0.0, float(centre - half))  # (exact ends: no float dust at 0/n, n/n)
    high = 1.0 if mean == 1 else min(1.0, float(centre + half))
    return low, high


def accuracy_interval(values, confidence: float = CONFIDENCE, scale: float = 100.0) -> tuple[float, float, float]:
    """(mean, low, high) of per-problem values in [0, 1], in percent: the Wilson interval over problems."""
    v = np.asarray(pd.Series(values).dropna(), dtype=float)
    lo, hi = proportion_interval(float(v.mean()), len(v), confidence)
    return float(v.mean() * scale), lo * scale, hi * scale


def with_wilson(table: pd.DataFrame, n_col: str = "n_problems", acc: str = "accuracy",
                low: str = "ci_low", high: str = "ci_high") -> pd.DataFrame:
    """A curve table (accuracy in percent over `n_col` problems) with its intervals replaced by Wilson's."""
    out = table.copy()
    bounds = [proportion_interval(min(1.0, max(0.0, a / 100.0)), int(n)) if n >= 1 else (np.nan, np.nan)
              for a, n in zip(out[acc], out[n_col])]
    out[low] = [100.0 * lo for lo, _ in bounds]
    out[high] = [100.0 * hi for _, hi in bounds]
    return out


@dataclass(frozen=True)
class SeedSpread:
    """One cross-validated number over many fold seeds."""

    values: pd.Series  # seed -> value (NaN: that seed's folds could not be used)

    @property
    def summary(self) -> dict[str, float]:
        v = self.values.dropna()
        return {"seeds": len(v), "skipped": int(self.values.isna().sum()), "mean": float(v.mean()), "min": float(v.min()), "q25": float(v.quantile(0.25)),
                "median": float(v.median()), "q75": float(v.quantile(0.75)), "max": float(v.max())}

    def __str__(self) -> str:
        s = self.summary
        skipped = f"; {s['skipped']} seeds gave unusable folds" if s["skipped"] else ""
        return (f"{s['mean']:.1f} on average over {s['seeds']} fold seeds (range {s['min']:.1f}-{s['max']:.1f}, "
                f"quartiles {s['q25']:.1f}-{s['q75']:.1f}{skipped})")


def over_seeds(fn: Callable[[int], float], seeds: Sequence[int] = tuple(range(20))) -> SeedSpread:
    """`fn(seed)` (a cross-validated estimate whose folds are drawn with `seed`) for every seed."""
    return SeedSpread(pd.Series({int(s): float(fn(int(s))) for s in seeds}, name="value").rename_axis("seed"))
