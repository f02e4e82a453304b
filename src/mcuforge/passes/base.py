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
from typing import TYPE_CHECKING, Callable

from ..ir.graph import Graph, Node

if TYPE_CHECKING:
    from ..analysis.memory import MemoryPlan
    from ..analysis.prune_report import PruneReport
    from ..analysis.scheduling import Schedule
    from ..ir.early_exit import Exit


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
    """What passes share besides the graph: the target, statistics, missed opportunities, what
    `compile` hands to passes, and the typed results that passes leave for later passes, the
    report and the backends (each field says which pass sets it)."""

    target: object | None = None
    debug: bool = False
    stats: Counter = field(default_factory=Counter)
    missed: list[Missed] = field(default_factory=list)
    current_pass: str = ""
    # given by compile()
    scratch: Callable[[Node], int] | None = None  # the backends' kernel scratch bytes per node (memory-plan)
    overlap: Callable[[Node], int | None] | None = None  # how far its kernel lets an input overlap the output
    exits: list[Exit] | None = None  # early exits in the order tried (exit-order, the C backend)
    # results
    schedule: Schedule | None = None  # schedule: the order and its peaks before and after
    plan: MemoryPlan | None = None  # memory-plan
    quant: dict | None = None  # quantize, compress-weights: the report's quantization summary
    qdq_graph: Graph | None = None  # quantize: the model in QDQ form, the ONNX backend's interchange export
    quant_check: tuple | None = None  # quantize: (samples, float outputs), for passes that change numbers later
    weights: dict | None = None  # compress-weights: the format and per layer (int8 bytes, packed bytes)
    pruning: PruneReport | None = None  # prune-channels
    low_rank: list | None = None  # low-rank: a `Factored` per layer

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
