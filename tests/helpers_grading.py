"""Helpers for the grading tests: check functions importable by the spawned worker, answer rewritings."""

import re
import time


def never_returns(gold: str, answer: str) -> bool:
    time.sleep(60)
    return True


def slow_true(gold: str, answer: str) -> bool:
    """A check that takes half a second: budgets are measured in whole checks."""
    time.sleep(0.5)
    return True


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

# (pattern, replacement): ways a correct answer drops the gold's decoration
_STRIPS = [
    (r"\\\$", ""),  # \$18.90 -> 18.90
    (r"\^\{?\\circ\}?", ""),  # 90^\circ -> 90
    (r"\^\{?\\circ\}?", "^{\\\\circ}"),  # 90^\circ -> 90^{\circ}
    (r"\\%", ""),  # 10\% -> 10
    (r"\\%", "%"),
    (r"\\text\{\s*([^}]*)\}", r"\1"),  # \text{(C)} -> (C)
    (r"\s*\\(?:text|mbox)\{\s*[A-Za-z ]+\}$", ""),  # 5\text{ cm} -> 5
    (r",\\!\s*|\{,\}", ""),  # 32,\!348 -> 32348
    (r",\\!\s*|\{,\}", ","),  # 32,\!348 -> 32,348
]


def rewritings(gold: str) -> list[str]:
    """The gold answer and the common ways a correct answer writes it (units, \\text{}, thousands
    separators, \\$, ^\\circ, percent): each must grade correct against the gold."""
    out = {gold}
    for pat, rep in _STRIPS:
        t = re.sub(pat, rep, gold).strip()
        if t:
            out.add(t)
    if _NUMBER.fullmatch(gold):
        out |= {f"\\${gold}", f"{gold}\\%", f"{gold}^\\circ", f"{gold}^{{\\circ}}", f"{gold} \\text{{ cm}}",
                f"{gold}\\text{{ meters}}", f"\\text{{{gold}}}", f"{gold}."}
        if re.fullmatch(r"-?\d{4,}", gold):
            sep = f"{int(gold):,}"
            out |= {sep, sep.replace(",", "{,}"), sep.replace(",", ",\\!")}
    return sorted(out)
