"""Answer extraction, equivalence with Math-Verify, and canonical answer keys for voting.

Extraction follows the study's released code (Qwen2.5-Math `extract_answer`) with the last `\\boxed{}` first, then its
fallbacks: "final answer is $...$. I hope", "the answer is", "final answer is", the last number.
Every step is linear in the text and only the last `EXTRACT_TAIL_CHARS` characters of a solution are
examined (the final answer is stated at the end; a runaway output cannot stall grading).

Equivalence is Math-Verify's, gold first, gold wrapped in `$...$` so bare LaTeX parses; an escaped dollar
(`\\$18.90`) is a currency sign, not a math delimiter. Every check runs in a worker process with a
timeout: a pathological expression costs at most `timeout` seconds and counts as not equivalent; one
problem's checks share a `budget` of seconds, after which the remaining checks count as not
equivalent. An answer longer than `MAX_ANSWER_CHARS` is keyed by its first `MAX_ANSWER_CHARS` characters
and never checked (not correct): a cut expression can parse as its first number.
`Grader.last_report` says what happened for the last problem graded. Results are cached per pair.
"""

from __future__ import annotations

import bisect
import functools
import multiprocessing as mp
import re
import time
from collections.abc import Callable, Sequence

# The text examined for an answer: the tail of a solution. 64 K characters hold an 8192-token solution
# (the study's limit) in full; anything before is not read.
EXTRACT_TAIL_CHARS = 65_536
# Longest answer checked with Math-Verify (MATH-500's longest gold answer has 53 characters).
MAX_ANSWER_CHARS = 1_000

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_HOPE_END = re.compile(r"\$\.? I hope")  # the closing "$. I hope" of the study's answer sentence
_FINAL_OPEN = re.compile(r"final answer is:?\s*\$")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), with nested braces matched."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        # "\boxed 5" form
        m = re.match(r"\\boxed\s+([^\s$]+)", text[start:])
        return m.group(1) if m else None
    depth = 0
    for m in re.finditer(r"[{}]", text[i:]):  # braces only: C-speed scan between them
        depth += 1 if m.group() == "{" else -1
        if depth == 0:
            return text[i + 1 : i + m.start()].strip()
    return None  # unbalanced: the answer was cut off


def _final_answer_sentence(text: str) -> str | None:
    """`final answer is: $X$. I hope` in linear time, same match as the regex
    `final answer is:?\\s*\\$(.+?)\\$\\.? I hope` (re.S), whose lazy scan is quadratic without an end."""
    ends = [m.start() for m in _HOPE_END.finditer(text)]
    if not ends:
        return None
    for m in _FINAL_OPEN.finditer(text):
        j = bisect.bisect_left(ends, m.end() + 1)  # `.+?` takes at least one character
        if j == len(ends):
            return None  # later openings have no closing either
        return text[m.end() : ends[j]].strip() or None
    return None


def extract_answer(text: str) -> str | None:
    """The final answer a solution states, or None (only the last EXTRACT_TAIL_CHARS are read)."""
    text = text[-EXTRACT_TAIL_CHARS:]
    boxed = last_boxed(text)
    if boxed:
        return boxed
    sentence = _final_answer_sentence(text)
    if sentence:
        return sentence
    for marker in ("he answer is", "final answer is"):
        k = text.rfind(marker)
        if k >= 0:
            end = text.find("\n", k)
            tail = text[k + len(marker) : end if end >= 0 else len(text)]
            tail = tail.strip().rstrip(".").strip("$ :")
            if tail:
                return tail
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


_STRIP = [
    (re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ "), ""),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\^\{?\\circ\}?|°"), ""),
    (re.compile(r"\\text\{\s*([^}]*)\}"), r"\1"),
    (re.compile(r"\\mathrm\{\s*([^}]*)\}"), r"\1"),
    (re.compile(r"\\\$|\$"), ""),
    (re.compile(r"\s+"), ""),
]


def normalize(answer: str) -> str:
    """A cheap string normal form: the first-pass voting key before equivalence merges keys.

    Two answers with the same normal form are equivalent (it only drops spacing, `\\text{}` wrappers,
    degree signs, dollar signs, thousands separators and trailing zeros)."""
    s = answer.strip()
    for pat, rep in _STRIP:
        s = pat.sub(rep, s)
    s = s.rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d+\.\d*?0+", s):
        s = s.rstrip("0").rstrip(".")
    return s


_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_TEXT_NUMBER = re.compile(r"\\(?:text|mbox|mathrm)\{\s*(-?[\d.,]+)\s*\}")


def _prepare(expr: str) -> str:
    """What Math-Verify reads: an escaped dollar is currency (dropped); `\\text{1.25}` is the number."""
    return _TEXT_NUMBER.sub(r"\1", expr.replace("\\$", ""))


def _wrap(expr: str) -> str:
    return expr if _UNESCAPED_DOLLAR.search(expr) or "\\boxed" in expr else f"${expr}$"


def _has_math(parsed: list) -> bool:
    return any(not isinstance(x, str) for x in parsed)


@functools.lru_cache(maxsize=4096)  # a problem's gold (and each answer) is parsed once per worker
def _parse_gold(gold: str) -> list:
    from math_verify import parse

    gold = _prepare(gold)
    return parse(_wrap(gold)) or parse(gold)


@functools.lru_cache(maxsize=4096)
def _parse_answer(answer: str) -> list:
    from math_verify import parse

    answer = _prepare(answer)
    a = parse(f"\\boxed{{{answer}}}")
    if not _has_math(a):  # e.g. `10\%` parses as math only outside \boxed
        a = parse(_wrap(answer)) or a
    return a


def verify_pair(gold: str, answer: str) -> bool:
    """Math-Verify equivalence of one (gold, answer) pair. Runs inside the worker process."""
    from math_verify import verify

    g, a = _parse_gold(gold), _parse_answer(answer)
    return bool(g and a and verify(g, a))


def _warm() -> bool:
    import math_verify  # noqa: F401  (the import is the slow part of a worker's first check)

    return True


def _new_report() -> dict:
    return {"checks": 0, "timed_out": 0, "unchecked": 0, "budget_exhausted": False, "truncated_answers": 0}


class Grader:
    """Equivalence checks in worker processes, each bounded by `timeout` seconds, cached per pair.

    `budget`: seconds for all checks of one `grade()` call (one problem); checks left when it runs out
    count as not equivalent (and are not cached). `workers`: worker processes (1 inside a run, whose
    cores belong to the model)."""

    def __init__(self, timeout: float = 5.0, check: Callable[[str, str], bool] = verify_pair,
                 budget: float | None = 60.0, workers: int = 1):
        self.timeout = timeout
        self.check = check
        self.budget = budget
        self.workers = workers
        self._pool = None
        self._cache: dict[tuple[str, str], bool] = {}
        self.timeouts = 0
        self.last_report: dict = _new_report()

    def _ensure_pool(self):
        if self._pool is None:
            # spawn, not fork: the parent may hold llama.cpp/OpenMP threads
            self._pool = mp.get_context("spawn").Pool(self.workers)
            # start-up (interpreter + Math-Verify import) is not charged to any check's timeout
            self._pool.apply_async(_warm).get(120)
        return self._pool

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
        self._pool = None

    def _run(self, todo: list[tuple[str, str]], deadline: float | None, report: dict) -> None:
        """Check `todo` pairs into the cache until done or `deadline` (time.monotonic)."""
        if deadline is not None and deadline <= time.monotonic():
            report["budget_exhausted"] = True
            report["unchecked"] += len(todo)
            return
        pool = self._ensure_pool()
        pending = [(p, pool.apply_async(self.check, p)) for p in todo]
        i = 0
        while i < len(pending):
            p, res = pending[i]
            wait = self.timeout
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    break
            try:
                self._cache[p] = bool(res.get(wait))
                report["checks"] += 1
            except mp.TimeoutError:
                if wait < self.timeout:  # the problem's budget ran out, not this check's timeout
                    break
                self.timeouts += 1
                report["checks"] += 1
                report["timed_out"] += 1
                self._cache[p] = False
                self._restart()  # the worker is stuck: kill it, resubmit the rest
                pool = self._ensure_pool()
                pending[i + 1 :] = [(q, pool.apply_async(self.check, q)) for q, _ in pending[i + 1 :]]
            except Exception:  # a parser crash on odd LaTeX means "not shown equivalent"
                self._cache[p] = False
                report["checks"] += 1
            i += 1
        if i < len(pending):
            report["budget_exhausted"] = True
            report["unchecked"] += len(pending) - i
            self._restart()  # the worker may still be busy with a check nobody waits for

    def equivalent_many(self, pairs: Sequence[tuple[str, str]], deadline: float | None = None,
                        report: dict | None = None) -> list[bool]:
        """Equivalence of each (gold, answer) pair; pairs left unchecked at `deadline` are False."""
        report = _new_report() if report is None else report
        todo = [p for p in dict.fromkeys(pairs) if p not in self._cache]
        if todo:
            self._run(todo, deadline, report)
        return [self._cache.get(p, False) for p in pairs]

    def equivalent(self, gold: str, answer: str) -> bool:
        return self.equivalent_many([(gold, answer)])[0]

    def grade(self, gold: str, answers: Sequence[str | None]) -> tuple[list[str | None], list[bool]]:
        """Voting keys and correctness for one problem's candidate answers.

        Keys: string-normalised answers, then merged when Math-Verify finds two distinct keys equivalent
        (so "0.5" and "\\frac{1}{2}" vote together). Keys come from the answers alone, pairwise, never from
        the gold: two answers that are each equivalent to the gold but not to each other keep two keys, as
        two wrong answers would (merging every correct answer into one key would hand correct answers a
        vote no wrong answer gets). A key joins the first earlier key it is equivalent to (Math-Verify's
        check with the earlier key's answer in the gold's place). Equivalence is computed once per distinct
        key, on the key's first answer as written; correctness first, then the pairwise merges, all within
        `budget` seconds. `last_report` records the checks made, timed out and cut by the budget.
        """
        report = self.last_report = _new_report()
        overlong = {i for i, a in enumerate(answers) if a and len(a) > MAX_ANSWER_CHARS}
        report["truncated_answers"] = len(overlong)
        cut = [a[:MAX_ANSWER_CHARS] if a else a for a in answers]
        norm = [normalize(a) if a else None for a in cut]
        raw_of: dict[str, str] = {}
        for k, a in zip(norm, cut):
            if k:
                raw_of.setdefault(k, a)
        distinct = list(raw_of)
        overlong_keys = {norm[i] for i in overlong} - {norm[i] for i in range(len(norm)) if i not in overlong}
        gold_norm = normalize(gold)
        to_check = [k for k in distinct if k != gold_norm and k not in overlong_keys]
        checkable = [k for k in distinct if k not in overlong_keys]
        if to_check or len(checkable) > 1:
            self._ensure_pool()  # start-up is outside the budget
        deadline = None if self.budget is None else time.monotonic() + self.budget
        found = dict(zip(to_check, self.equivalent_many([(gold, raw_of[k]) for k in to_check], deadline, report)))
        correct_of = {k: k == gold_norm or found.get(k, False) for k in distinct}
        # merge keys pairwise, correct and wrong alike (the gold plays no part here)
        pairs = [(a, b) for i, a in enumerate(checkable) for b in checkable[i + 1 :]]
        checks = self.equivalent_many([(raw_of[a], raw_of[b]) for a, b in pairs], deadline, report) if pairs else []
        same = dict(zip(pairs, checks))
        canon: dict[str, str] = {}
        reps: list[str] = []
        for k in distinct:
            canon[k] = next((r for r in reps if same.get((r, k)) or same.get((k, r))), k)
            if canon[k] == k:
                reps.append(k)
        keys = [canon[k] if k else None for k in norm]
        return keys, [bool(k and correct_of[k]) for k in norm]

    def close(self) -> None:
        self._restart()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
