"""One search tree per (problem, method, budget): nodes are reasoning steps."""

from __future__ import annotations

from dataclasses import dataclass, field

from ttslab.engines.base import TokenUsage


@dataclass
class Node:
    id: int
    parent: int | None
    depth: int  # number of steps on the path, this one included (root: 0)
    text: str = ""  # the step as the policy wrote it, delimiter included
    finish: str = ""  # step | eos | length | max_steps | max_tokens | answer
    score: float | None = None  # PRM score of this step (given its prefix): the PRM-Last of the path
    usage: TokenUsage = field(default_factory=TokenUsage)
    subtree: int = 0  # DVTS subtree / BoN sample index
    valid: bool = True  # False: cut at the step limit, blank, or a duplicate of a sibling (same parent and subtree)
    selected: bool = False  # kept by the strategy at its depth
    terminal: bool = False  # the path ends here (answer given, EOS, or a limit)
    path_tokens: int = 0  # generated tokens on the path, this step included
    # {"asked": max_tokens, "sent": max_new_tokens}: the engine lowered the limit to fit the model's context
    clamp: dict[str, int] | None = None


class Tree:
    def __init__(self) -> None:
        self.nodes: list[Node] = [Node(0, None, 0, selected=True)]

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add(self, parent: Node, text: str, finish: str, usage: TokenUsage, subtree: int) -> Node:
        node = Node(len(self.nodes), parent.id, parent.depth + 1, text, finish, None, usage, subtree,
                    path_tokens=parent.path_tokens + usage.completion_tokens)
        self.nodes.append(node)
        return node

    def path(self, node: Node) -> list[Node]:
        """Nodes from the first step to `node` (the root excluded)."""
        out = []
        while node.parent is not None:
            out.append(node)
            node = self.nodes[node.parent]
        return out[::-1]

    def steps(self, node: Node) -> list[str]:
        return [n.text for n in self.path(node)]

    def usage(self) -> TokenUsage:
        total = TokenUsage()
        for n in self.nodes:
            total = total + n.usage
        return total

    def as_records(self) -> list[dict]:
        return [
            {"id": n.id, "parent": n.parent, "depth": n.depth, "text": n.text, "score": n.score,
             "finish": n.finish, "subtree": n.subtree, "valid": n.valid, "selected": n.selected,
             "terminal": n.terminal, "tokens": n.usage.completion_tokens, **({"clamped": n.clamp} if n.clamp else {})}
            for n in self.nodes
        ]
