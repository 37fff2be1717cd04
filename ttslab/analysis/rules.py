"""The selection rule each strategy reports, fixed before any data, and the one labelled exception.

Every run stores every rule's pick (majority; PRM-Min/Last/Avg/Prod x Max/Vote), so a reader could pick,
per strategy, budget or difficulty bin, whichever rule came out best, and report it: that flatters the
strategy on exactly the problems it is reported on (with 9 rules and a few dozen problems, by several
points). So each strategy reports one rule, named in its config file before any run
(`report_rule:` in conf/method/<name>.yaml, the schema's `MethodConfig.report_rule`), with the study's
convention for that strategy written next to it: majority for Best-of-N and CoT, PRM-Last-Max for beam
search and DVTS. A strategy without a config file (one registered from outside, `package.module:Class`)
reports the schema's default.

The rule is read from the packaged config files, not from a run's records (records hold every rule's pick
and do not depend on it): `method.report_rule=...` on the command line is validated with the run, but to change
what figures and notebooks report, change the config file.

The maximum over rules is drawn only as `envelope(...)`, whose rule column says "optimistic maximum over
N rules": never a strategy's curve.
"""

from __future__ import annotations

import functools
from importlib.resources import files

import pandas as pd

from ttslab.analysis.curves import NO_PRM, PASS_AT_K
from ttslab.errors import ConfigError
from ttslab.search.selection import RULES

ENVELOPE = "optimistic maximum over {n} rules"


@functools.cache
def report_rule(method: str) -> str:
    """The rule `method` reports: its config file's `report_rule`, else the schema's default."""
    from omegaconf import OmegaConf

    from ttslab.config import CONFIG_MODULE, MethodConfig

    path = files(CONFIG_MODULE) / "method" / f"{method}.yaml"
    rule = MethodConfig.report_rule
    if ":" not in method and path.is_file():
        rule = OmegaConf.load(str(path)).get("report_rule", rule)
    if rule not in RULES:
        raise ConfigError(f"conf/method/{method}.yaml: report_rule={rule!r}; expected one of {', '.join(RULES)}")
    return str(rule)


def rule_of(method: str, prm: str) -> str:
    """The rule reported for `method` in a group scored by `prm` (without a verifier only majority exists)."""
    return report_rule(method) if prm != NO_PRM else "majority"


def reported(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a curve table (`curves.curve_table`, `difficulty.curves_by_difficulty`, ...) that hold
    each (policy, prm, method)'s reported rule."""
    if table.empty:
        return table
    keep = [rule == rule_of(method, prm) for method, prm, rule in zip(table["method"], table["prm"], table["rule"])]
    return table[keep].reset_index(drop=True)


def envelope(table: pd.DataFrame, by: tuple[str, ...] = ("policy", "prm", "method", "budget")) -> pd.DataFrame:
    """The best rule per (policy, prm, method, budget): an optimistic upper envelope, chosen on the very
    problems it is scored on, labelled as such in its `rule` column (pass@k, an oracle, excluded)."""
    t = table[table["rule"] != PASS_AT_K]
    keys = [c for c in by if c in t.columns] + [c for c in ("difficulty",) if c in t.columns and c not in by]
    best = t.loc[t.groupby(keys, observed=True, sort=False)["accuracy"].idxmax()].copy()
    n_rules = t.groupby(keys, observed=True, sort=False)["rule"].transform("nunique").loc[best.index]
    best["rule"] = [ENVELOPE.format(n=int(n)) for n in n_rules]
    return best.reset_index(drop=True)
