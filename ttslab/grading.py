"""Answer extraction, equivalence with Math-Verify, and canonical answer keys for voting.

Extraction follows the study (reference/paper.md §1.9) with the last `\\boxed{}` first, then its
fallbacks: "final answer is $...$. I hope", "the answer is", "final answer is", the last number.
Equivalence is Math-Verify's, gold first, gold wrapped in `$...$` so bare LaTeX parses. Every check runs
in a worker process with a timeout: a pathological expression costs at most `timeout` seconds and
counts as not equivalent; it never hangs a run. Results are cached per (gold, answer) pair.
"""

from __future__ import annotations

import multiprocessing as mp
import re
from typing import Callable, Sequence

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


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
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None  # unbalanced: the answer was cut off


def extract_answer(text: str) -> str | None:
    """The final answer a solution states, or None."""
    boxed = last_boxed(text)
    if boxed:
        return boxed
    m = re.search(r"final answer is:?\s*\$(.+?)\$\.? I hope", text, flags=re.S)
    if m:
        return m.group(1).strip()
    for marker in ("he answer is", "final answer is"):
        k = text.rfind(marker)
        if k >= 0:
            tail = text[k + len(marker) :].strip().split("\n")[0].strip().rstrip(".").strip("$ :")
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
    """A cheap string normal form: the first-pass voting key before equivalence merges keys."""
    s = answer.strip()
    for pat, rep in _STRIP:
        s = pat.sub(rep, s)
    s = s.rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d+\.\d*?0+", s):
        s = s.rstrip("0").rstrip(".")
    return s


def _wrap(expr: str) -> str:
    return expr if "$" in expr or "\\boxed" in expr else f"${expr}$"


def verify_pair(gold: str, answer: str) -> bool:
    """Math-Verify equivalence of one (gold, answer) pair. Runs inside the worker process."""
    from math_verify import parse, verify

    g = parse(_wrap(gold))
    if not g:
        g = parse(gold)
    a = parse(f"\\boxed{{{answer}}}")
    if not a:
        a = parse(_wrap(answer))
    return bool(g and a and verify(g, a))


class Grader:
    """Equivalence checks in a worker process, each bounded by `timeout` seconds, cached per pair."""

    def __init__(self, timeout: float = 5.0, check: Callable[[str, str], bool] = verify_pair):
        self.timeout = timeout
        self.check = check
        self._pool = None
        self._cache: dict[tuple[str, str], bool] = {}
        self.timeouts = 0

    def _ensure_pool(self):
        if self._pool is None:
            # spawn, not fork: the parent may hold llama.cpp/OpenMP threads
            self._pool = mp.get_context("spawn").Pool(1)
        return self._pool

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
        self._pool = None

    def equivalent_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        todo = [p for p in dict.fromkeys(pairs) if p not in self._cache]
        if todo:
            pending = [(p, self._ensure_pool().apply_async(self.check, p)) for p in todo]
            for i, (p, res) in enumerate(pending):
                try:
                    self._cache[p] = bool(res.get(self.timeout))
                except mp.TimeoutError:
                    self.timeouts += 1
                    self._cache[p] = False
                    self._restart()  # the worker is stuck: kill it, resubmit the rest
                    rest = [q for q, _ in pending[i + 1 :]]
                    self._cache.update(zip(rest, self.equivalent_many(rest)))
                    break
                except Exception:  # a parser crash on odd LaTeX means "not shown equivalent"
                    self._cache[p] = False
        return [self._cache[p] for p in pairs]

    def equivalent(self, gold: str, answer: str) -> bool:
        return self.equivalent_many([(gold, answer)])[0]

    def grade(self, gold: str, answers: Sequence[str | None]) -> tuple[list[str | None], list[bool]]:
        """Voting keys and correctness for one problem's candidate answers.

        Keys: string-normalised answers, then merged when Math-Verify finds two distinct keys equivalent
        (so "0.5" and "\\frac{1}{2}" vote together). Equivalence is computed once per distinct answer.
        """
        norm = [normalize(a) if a else None for a in answers]
        distinct = list(dict.fromkeys(k for k in norm if k))
        correct_of = dict(zip(distinct, self.equivalent_many([(gold, k) for k in distinct])))
        # merge keys: correct answers all share the gold's key; wrong ones merge pairwise
        canon: dict[str, str] = {}
        gold_key = next((k for k in distinct if correct_of[k]), None)
        reps: list[str] = []
        wrong = [k for k in distinct if not correct_of[k]]
        if len(wrong) > 1:
            checks = self.equivalent_many([(a, b) for i, a in enumerate(wrong) for b in wrong[i + 1 :]])
            eq = iter(checks)
            same = {(a, b): next(eq) for i, a in enumerate(wrong) for b in wrong[i + 1 :]}
        else:
            same = {}
        for k in distinct:
            if correct_of[k]:
                canon[k] = gold_key
                continue
            canon[k] = next((r for r in reps if same.get((r, k)) or same.get((k, r))), k)
            if canon[k] == k:
                reps.append(k)
        keys = [canon[k] if k else None for k in norm]
        return keys, [bool(k and correct_of[k]) for k in norm]

    def close(self) -> None:
        self._restart()

    def __enter__(self) -> "Grader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
