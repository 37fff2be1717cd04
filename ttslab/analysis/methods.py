"""What analysis needs to know about a method, read from its strategy class (the method registry), never
from its name: a strategy registered from outside (`method.name=package.module:Class`) is analysed like
the built-in ones, and a record whose method cannot be imported any more is still read (as a method with
no special role)."""

from __future__ import annotations

import functools

from ttslab.search.strategies import Strategy, method_names


@functools.cache
def strategy_of(method: str) -> type[Strategy] | None:
    """The strategy class of a method name or import path; None when it cannot be found."""
    from ttslab.errors import ConfigError
    from ttslab.search.strategies import strategy_class

    try:
        return strategy_class(method)
    except ConfigError:
        return None


def is_baseline(method: str) -> bool:
    """The greedy one-answer baseline (CoT): drawn as a line, never a TTS strategy."""
    cls = strategy_of(method)
    return bool(cls is not None and cls.greedy)


def is_sampling(method: str) -> bool:
    """Independent whole solutions whose smaller budgets are the first samples of the largest
    (Best-of-N): the pool that majority voting, pass@k and the router's probe read."""
    cls = strategy_of(method)
    return bool(cls is not None and cls.nested_budgets and not cls.greedy)


def is_search(method: str) -> bool:
    """A TTS strategy that is neither the baseline nor a sampling method (beam search, DVTS, ...)."""
    return not is_baseline(method) and not is_sampling(method)


def ordered(methods) -> list[str]:
    """Methods in the registry's order (CoT first), then any others by name."""
    order = method_names()
    return sorted(set(methods), key=lambda m: (order.index(m) if m in order else len(order), str(m)))


def label(method: str) -> str:
    """How figures and tables name a method: its class's label, else its name."""
    cls = strategy_of(method)
    return cls.label if cls is not None and cls.label else str(method).rpartition(":")[2] or str(method)
