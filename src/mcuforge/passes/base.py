"""What a pass is and what passes share: `Pass` (a kebab-case name and a function), the
`PassContext` handed to every pass (target, statistics, missed optimizations, typed results of
analyses), and the records the manager keeps of each pass it ran.

A pass is a plain function `fn(graph, ctx, **options) -> changed: bool`; its keyword arguments
are its options, its docstring says what it does, its preconditions and what it preserves.
"""
from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from ..ir.graph import Node


@dataclass(frozen=True)
class Pass:
    name: str
    fn: Callable[..., bool]

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.fn) or ""

    @property
    def summary(self) -> str:
        return self.doc.splitlines()[0] if self.doc else ""

    @property
    def options(self) -> dict:
        """Keyword options the pass accepts, with their defaults."""
        sig = inspect.signature(self.fn)
        return {k: p.default for k, p in list(sig.parameters.items())[2:]
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


@dataclass
class Missed:
    """An optimization a pass looked at and did not do, with the reason (shown in the report)."""

    pass_name: str
    node: str
    op: str
    reason: str


@dataclass
class PassContext:
    """What passes share besides the graph: the target, statistics and missed opportunities."""

    target: object | None = None
    debug: bool = False
    stats: Counter = field(default_factory=Counter)
    missed: list[Missed] = field(default_factory=list)
    current_pass: str = ""
    artifacts: dict = field(default_factory=dict)  # results of analyses (e.g. "plan") for backends

    def stat(self, key: str, n: int = 1):
        """Count an event under `<current pass>.<key>`."""
        self.stats[f"{self.current_pass}.{key}"] += n

    def miss(self, node: Node, reason: str):
        self.missed.append(Missed(self.current_pass, node.name, node.op, reason))


@dataclass
class PassRecord:
    name: str
    options: dict
    changed: bool
    seconds: float
    nodes_before: int
    nodes_after: int
