"""Accuracy vs budget N for every strategy x selection rule, pass@k, and bootstrap intervals.

Two steps, so difficulty bins and cross-validation can reuse the expensive part:

1. `per_problem_accuracy(records)`: a wide table, one row per problem, one column per
   (policy, prm, method, rule, budget), holding the *expected* correctness of that rule on that problem
   (a fraction in [0, 1]).

   **The estimator of Best-of-N (and DVTS) accuracy at budget N**, used everywhere in ttslab (curves,
   difficulty bins, compute-optimal, the router, and the run summary of `ttslab run`): for each
   problem, the exact expectation of the rule's correctness over *all* size-n subsets of that
   problem's units in its largest-N record (n = N/M units; M = 1 for Best-of-N, whose units are
   samples; M = beam width for DVTS, whose units are whole subtrees). pass@k uses its closed form
   1 - C(K-c, k)/C(K, k) (Chen et al. 2021). The other rules are computed by enumerating the
   C(K, n) subsets when there are at most `EXACT_CAP` (20,000) of them, which covers every budget of
   a 16-sample run; only beyond that is the expectation estimated from random subsets. At N = 1 every
   rule picks the one sample it has, so Best-of-N@1 equals pass@1 = c/K exactly. Accuracy over a
   dataset is the mean over problems, with a percentile-bootstrap 95% interval over problems.
   (The study does not release its Best-of-N post-processing (fact sheet §1.7); search-and-learn takes
   the first N samples. The first N of K iid samples are one random subset, so both estimate the same
   quantity; the expectation over all subsets removes the luck of which samples came first.)
   Beam search (and any other method, e.g. CoT) is read from its per-N records.
2. `curve_table(per_problem)`: the mean over problems per column, in percent, with a bootstrap
   confidence interval over problems (scipy.stats.bootstrap, percentile method); a column on which every
   problem agrees (0/n, n/n: no spread to resample) gets the Wilson interval instead, never [0, 0].
   Comparing two columns is `ttslab.analysis.compare.paired_difference`, paired over problems.

The vectorised selection below reproduces `ttslab.search.selection.select` exactly (same tie-breaks,
same float summation order) on every subset; tests/test_analysis_curves.py checks that.
Correctness comes from the records (`correct` per candidate): nothing is re-graded here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from ttslab.analysis.compare import proportion_interval
from ttslab.search.selection import RULES, SCORINGS, aggregate
from ttslab.search.strategies import subsampled_methods

# Methods whose curve is derived from one large-N record (the method registry says which), and how a unit
# is sized ("1": one candidate per unit; "beam_width": one subtree of M budget per unit).
SUBSAMPLED_METHODS = {m: "1" if unit == "sample" else "beam_width" for m, unit in subsampled_methods().items()}
PASS_AT_K = "pass@k"
# Enumerate all C(K, n) subsets up to this many (C(16, 8) = 12,870: every budget of a 16-sample run is
# exact); beyond it (e.g. n = 64 of K = 256) the expectation is estimated from random subsets.
EXACT_CAP = 20_000
COLUMNS = ["policy", "prm", "method", "rule", "budget"]
NO_PRM = ""  # prm label of records scored by no PRM (CoT, majority-only runs)


@dataclass
class CandidateArrays:
    """One (policy, prm, method) group's final candidates as padded arrays.

    Rows are records (a problem may appear once per seed); columns are unit slots: candidate i for
    Best-of-N, subtree j for DVTS, candidate i for per-budget methods. Empty slots have key -1.
    """

    problem_ids: np.ndarray  # (R,) problem id per record
    budgets: np.ndarray  # (R,) record budget N
    units: np.ndarray  # (R,) number of real slots (units) per record
    unit_size: int  # budget spent per unit (1 or the beam width M)
    keys: np.ndarray  # (R, U) int answer-key ids per record, -1 = no answer or empty slot
    correct: np.ndarray  # (R, U) bool
    scores: dict[str, np.ndarray]  # scoring name -> (R, U) aggregated PRM score per candidate


def _where(rec: dict[str, Any]) -> str:
    return f"record problem_id={rec.get('problem_id')!r} method={rec.get('method')!r} budget={rec.get('budget')!r}"


def _unit_size(rec: dict[str, Any]) -> int:
    kind = SUBSAMPLED_METHODS.get(rec["method"], "1")
    if kind == "1":
        return 1
    m = rec.get("beam_width")
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"{_where(rec)}: field 'beam_width' must be a positive int for DVTS, got {m!r}")
    return m


def candidate_arrays(records: Sequence[dict[str, Any]]) -> CandidateArrays:
    """Pack the final candidates of records of one (policy, prm, method) into padded arrays."""
    if not records:
        raise ValueError("candidate_arrays: no records given")
    subsampled = records[0]["method"] in SUBSAMPLED_METHODS
    unit_size = _unit_size(records[0])
    slot_lists, units = [], []
    for rec in records:
        if _unit_size(rec) != unit_size:
            raise ValueError(
                f"{_where(rec)}: beam_width {rec.get('beam_width')} differs from {unit_size} "
                "in the same (policy, prm, method) group"
            )
        cands = rec["candidates"]
        if subsampled:
            if rec["budget"] % unit_size:
                raise ValueError(f"{_where(rec)}: budget is not a multiple of beam_width {unit_size}")
            n_units = rec["budget"] // unit_size
            slots: list[dict | None] = [None] * n_units
            for i, c in enumerate(cands):
                j = c.get("subtree")
                j = i if j is None else int(j)
                if not 0 <= j < n_units or slots[j] is not None:
                    raise ValueError(
                        f"{_where(rec)}: candidate {i} has subtree {j!r}; expected a distinct "
                        f"index in [0, {n_units}) (one candidate per subtree/sample)"
                    )
                slots[j] = c
        else:
            slots = list(cands)
            n_units = len(slots)
        slot_lists.append(slots)
        units.append(n_units)
    width = max(max(units), 1)
    n = len(records)
    keys = np.full((n, width), -1, dtype=np.int64)
    correct = np.zeros((n, width), dtype=bool)
    scores = {s: np.full((n, width), -np.inf) for s in SCORINGS}
    for r, slots in enumerate(slot_lists):
        key_ids: dict[str, int] = {}  # answer key -> int, per record (keys only compare within a problem)
        for j, c in enumerate(slots):
            if c is None:
                continue
            if c.get("key") is not None:
                keys[r, j] = key_ids.setdefault(c["key"], len(key_ids))
            correct[r, j] = bool(c["correct"])
            steps = c.get("step_scores")
            for s in SCORINGS:
                scores[s][r, j] = aggregate(steps, s)  # the reference aggregation, once per candidate
    return CandidateArrays(
        problem_ids=np.array([str(r["problem_id"]) for r in records]),
        budgets=np.array([int(r["budget"]) for r in records]),
        units=np.array(units),
        unit_size=unit_size,
        keys=keys,
        correct=correct,
        scores=scores,
    )


def select_correct(
    arrays: CandidateArrays, idx: np.ndarray, rules: Sequence[str] = RULES
) -> dict[str, np.ndarray]:
    """Correctness of each rule's pick on subsets `idx` (S, R, n) of slot indices, ascending per row.

    Mirrors `ttslab.search.selection.select` on the candidates [slots[i] for i in idx[s, r]]:
    ties go to the earliest slot, candidates without an answer never vote, no answer -> incorrect.
    """
    S, R, n = idx.shape
    rows = np.arange(R)[None, :, None]
    keys = arrays.keys[rows, idx]
    valid = keys >= 0
    any_valid = valid.any(axis=-1)
    n_keys = int(arrays.keys.max()) + 1 if arrays.keys.size else 0
    # one bin per (subset, record, key); slots without an answer all fall in a trailing dummy bin
    dummy = S * R * n_keys
    bins = np.where(valid, np.arange(S * R).reshape(S, R, 1) * n_keys + keys, dummy).ravel()
    correct = arrays.correct[rows, idx]

    def pick_correct(value: np.ndarray) -> np.ndarray:
        # argmax returns the first maximum: the earliest slot, which is also the first holder of its key
        pick = np.where(valid, value, -np.inf).argmax(axis=-1)
        return np.take_along_axis(correct, pick[..., None], axis=-1)[..., 0] & any_valid

    out: dict[str, np.ndarray] = {}
    for rule in rules:
        if rule == "majority":
            counts = np.bincount(bins, minlength=dummy + 1)
            out[rule] = pick_correct(counts[bins].reshape(S, R, n).astype(float))
            continue
        scoring, voting = rule.rsplit("_", 1)
        score = arrays.scores[scoring][rows, idx]
        if voting == "max":
            out[rule] = pick_correct(score)
        else:  # vote: bincount adds in slot order, as selection.prm_vote does, so sums are bit-identical
            totals = np.bincount(bins, weights=np.where(valid, score, 0.0).ravel(), minlength=dummy + 1)
            out[rule] = pick_correct(totals[bins].reshape(S, R, n))
    return out


def unit_subsets(n_units_total: int, n_units: int, cap: int, subsets: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Slot subsets of size `n_units` among `n_units_total` units, and whether they are exhaustive.

    Every one of the C(total, n) subsets (ascending, lexicographic) when that count is at most `cap`:
    averaging a rule's correctness over them is the exact expectation. Otherwise `subsets` uniformly
    random subsets (without replacement inside a subset), ascending: a Monte-Carlo estimate of it.
    """
    if not 1 <= n_units <= n_units_total:
        raise ValueError(f"cannot draw {n_units} units from {n_units_total}")
    if special.comb(n_units_total, n_units, exact=True) <= cap:
        combos = np.fromiter(
            itertools.chain.from_iterable(itertools.combinations(range(n_units_total), n_units)), dtype=np.int64
        )
        return combos.reshape(-1, n_units), True
    draw = rng.random((subsets, n_units_total)).argsort(axis=1)[:, :n_units]
    return np.sort(draw, axis=1), False


def expected_correct(
    arrays: CandidateArrays, rows: np.ndarray, subsets: np.ndarray, rules: Sequence[str], chunk: int = 2_000_000
) -> dict[str, np.ndarray]:
    """Mean correctness of each rule over `subsets` (S, n) of slots, for each record in `rows`.

    The same subsets serve every row (the rows share a unit count); chunked to bound memory.
    """
    S, n = subsets.shape
    step = max(1, chunk // max(1, len(rows) * n))
    sub = CandidateArrays(
        arrays.problem_ids[rows], arrays.budgets[rows], arrays.units[rows], arrays.unit_size,
        arrays.keys[rows], arrays.correct[rows], {k: v[rows] for k, v in arrays.scores.items()},
    )
    totals = {rule: np.zeros(len(rows)) for rule in rules}
    for start in range(0, S, step):
        part = subsets[start : start + step]
        idx = np.broadcast_to(part[:, None, :], (len(part), len(rows), n))
        for rule, ok in select_correct(sub, idx, rules).items():
            totals[rule] += ok.sum(axis=0)
    return {rule: t / S for rule, t in totals.items()}


def pass_at_k(n: np.ndarray | int, c: np.ndarray | int, k: int) -> np.ndarray:
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), elementwise; needs k <= n."""
    n, c = np.asarray(n), np.asarray(c)
    if np.any(k > n):
        raise ValueError(f"pass@k needs k <= n samples; got k={k}, smallest n={n.min()}")
    # log-space through gammaln keeps C(256, 128)-sized ratios finite and exact to ~1e-13
    log_ratio = (
        special.gammaln(n - c + 1)
        - special.gammaln(n - c - k + 1)
        - special.gammaln(n + 1)
        + special.gammaln(n - k + 1)
    )
    return np.where(n - c < k, 1.0, 1.0 - np.exp(np.where(n - c < k, 0.0, log_ratio)))


def default_budgets(unit_size: int, max_units: int) -> list[int]:
    """Powers of two of units times the unit size: 1, 2, 4, ... (BoN) or M, 2M, 4M, ... (DVTS)."""
    return [unit_size * 2**i for i in range(int(np.log2(max_units)) + 1)]


def _group_key(rec: dict[str, Any]) -> tuple[str, str, str]:
    return (str(rec.get("policy") or ""), str(rec.get("prm") or NO_PRM), rec["method"])


def _by_problem(problem_ids: np.ndarray, values: np.ndarray) -> pd.Series:
    """Average rows of the same problem (several seeds) into one value per problem."""
    return pd.Series(values, index=problem_ids).groupby(level=0, sort=False).mean()


def _subsampled_columns(recs, key, budgets, exact_cap, subsets, rng) -> dict[tuple, pd.Series]:
    # one record per (problem, seed): the largest budget, from which all smaller ones are drawn
    top: dict[tuple, dict] = {}
    for r in recs:
        k = (str(r["problem_id"]), r.get("seed", 0))
        if k not in top or r["budget"] > top[k]["budget"]:
            top[k] = r
    arrays = candidate_arrays(list(top.values()))
    min_units, max_units = int(arrays.units.min()), int(arrays.units.max())
    wanted = budgets if budgets is not None else default_budgets(arrays.unit_size, min_units)
    rules = RULES if key[1] != NO_PRM else ("majority",)
    cols: dict[tuple, pd.Series] = {}
    for b in wanted:
        if b % arrays.unit_size or b // arrays.unit_size > max_units:
            if budgets is None:
                continue
            raise ValueError(
                f"{key}: budget {b} is not a multiple of the unit {arrays.unit_size} "
                f"at most {max_units * arrays.unit_size} (the largest record)"
            )
        n = b // arrays.unit_size
        # a problem whose largest record has fewer than n units has no value at this budget (NaN)
        values = {rule: np.full(len(arrays.units), np.nan) for rule in rules}
        for total in np.unique(arrays.units):  # records with the same unit count share their subsets
            if total < n:
                continue
            rows = np.nonzero(arrays.units == total)[0]
            idx, _ = unit_subsets(int(total), n, exact_cap, subsets, rng)
            for rule, v in expected_correct(arrays, rows, idx, rules).items():
                values[rule][rows] = v
        for rule, v in values.items():
            cols[(*key, rule, b)] = _by_problem(arrays.problem_ids, v)
        # pass@k over the same units as the rules (samples, or subtrees of at most one solution each), so a
        # rule never reads above it (DVTS's was read off each budget's own records: PRM-Last-Max 17.6 > 17.5)
        ok = arrays.units >= n
        p = np.full(len(arrays.units), np.nan)
        p[ok] = pass_at_k(arrays.units[ok], arrays.correct.sum(axis=1)[ok], n)
        cols[(*key, PASS_AT_K, b)] = _by_problem(arrays.problem_ids, p)
    return cols


def _per_budget_columns(recs, key, budgets) -> dict[tuple, pd.Series]:
    rules = RULES if key[1] != NO_PRM else ("majority",)
    cols: dict[tuple, pd.Series] = {}
    for b in sorted({int(r["budget"]) for r in recs}):
        if budgets is not None and b not in budgets:
            continue
        arrays = candidate_arrays([r for r in recs if int(r["budget"]) == b])
        width = arrays.keys.shape[1]
        idx = np.broadcast_to(np.arange(width), (1, len(arrays.units), width))
        for rule, ok in select_correct(arrays, idx, rules).items():
            cols[(*key, rule, b)] = _by_problem(arrays.problem_ids, ok[0].astype(float))
    return cols


def per_problem_accuracy(
    records: Iterable[dict[str, Any]],
    budgets: Sequence[int] | None = None,
    exact_cap: int = EXACT_CAP,
    subsets: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Expected correctness per problem (rows) for every (policy, prm, method, rule, budget) (columns).

    budgets: the N values of subsampled curves (default: every power of two of units up to N_max);
    exact_cap: enumerate every size-n subset of a record's units when there are at most this many
    (the exact expectation); beyond it, average over `subsets` random subsets (seeded by `seed`).
    See the module docstring for the estimator.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(_group_key(r), []).append(r)
    if not groups:
        raise ValueError("per_problem_accuracy: no records")
    rng = np.random.default_rng(seed)
    cols: dict[tuple, pd.Series] = {}
    for key, recs in sorted(groups.items()):
        if key[2] in SUBSAMPLED_METHODS:
            cols.update(_subsampled_columns(recs, key, budgets, exact_cap, subsets, rng))
        else:
            cols.update(_per_budget_columns(recs, key, budgets))
    wide = pd.DataFrame(cols)
    wide.columns = pd.MultiIndex.from_tuples(list(cols), names=COLUMNS)
    wide.index.name = "problem_id"
    return wide


def split_rule(rule: str) -> tuple[str, str]:
    """(scoring, voting) of a rule name: 'prm_min_vote' -> ('prm_min', 'vote'); majority -> ('', 'majority')."""
    if rule in ("majority", PASS_AT_K):
        return "", rule
    scoring, voting = rule.rsplit("_", 1)
    return scoring, voting


def curve_table(
    per_problem: pd.DataFrame,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    problems: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Mean accuracy (percent) per column with a bootstrap CI over problems, as a tidy frame.

    problems: restrict to these problem ids (difficulty bins, held-out folds). Columns whose problem
    coverage differs are bootstrapped separately, each over the problems it has.
    """
    data = per_problem if problems is None else per_problem.loc[list(problems)]
    present = data.notna().to_numpy()
    by_pattern: dict[bytes, list[int]] = {}
    for j in range(present.shape[1]):
        by_pattern.setdefault(present[:, j].tobytes(), []).append(j)
    rows = []
    for positions in by_pattern.values():
        mask = present[:, positions[0]]
        cols = [data.columns[j] for j in positions]
        values = data.iloc[mask, positions].to_numpy(dtype=float) * 100.0
        mean = values.mean(axis=0) if len(values) else np.full(len(cols), np.nan)
        low = high = np.full(len(cols), np.nan)
        if len(values) >= 2:
            ci = stats.bootstrap(
                (values,),
                np.mean,
                axis=0,
                vectorized=True,
                n_resamples=n_boot,
                confidence_level=confidence,
                method="percentile",
                batch=max(1, 20_000_000 // values.size),
                random_state=np.random.default_rng(seed),
            ).confidence_interval
            low, high = np.where(np.isnan(ci.low), mean, ci.low), np.where(np.isnan(ci.high), mean, ci.high)
        if len(values):
            # a column on which every problem agrees (0/n, n/n) has no bootstrap spread: the Wilson interval
            # instead, never [0, 0] (ttslab.analysis.compare.proportion_interval)
            flat = np.ptp(values, axis=0) == 0 if len(values) >= 2 else np.ones(len(cols), dtype=bool)
            wilson = np.array([proportion_interval(min(1.0, max(0.0, m / 100.0)), len(values)) for m in mean]) * 100.0
            low, high = np.where(flat, wilson[:, 0], low), np.where(flat, wilson[:, 1], high)
        for i, col in enumerate(cols):
            rows.append((*col, *split_rule(col[3]), mean[i], low[i], high[i], int(mask.sum())))
    out = pd.DataFrame(
        rows, columns=[*COLUMNS, "scoring", "voting", "accuracy", "ci_low", "ci_high", "n_problems"]
    )
    return out.sort_values(COLUMNS, kind="stable").reset_index(drop=True)


def accuracy_curves(
    records: Iterable[dict[str, Any]],
    budgets: Sequence[int] | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Records -> tidy curves (percent, with CIs): `curve_table(per_problem_accuracy(records))`."""
    return curve_table(per_problem_accuracy(records, budgets, seed=seed), n_boot, confidence, seed)
