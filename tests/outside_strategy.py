"""A strategy that lives outside ttslab, named by its import path (`method.name=outside_strategy:Subtrees`):
it declares no colour, marker or config file, so every consumer must fall back, never look its name up."""

from ttslab.search.strategies import DVTS


class Subtrees(DVTS):
    """DVTS under another name (the search is the same; what matters here is the name and the missing facts)."""

    label = "Subtrees (outside)"
    color = None
    marker = None
