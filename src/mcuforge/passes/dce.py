"""Dead-code elimination."""
from __future__ import annotations

from ..ir.graph import Graph


def dce(graph: Graph, ctx) -> bool:
    """Erases nodes none of whose results reach a graph output.

    Preconditions: none. Preserves: graph inputs (unused ones too, they are the interface),
    outputs, and the order of the remaining nodes. Constants go with their last user. Every op
    is free of side effects, so nothing else is kept alive.
    """
    erased = graph.dce()
    ctx.stat("erased", erased)
    return erased > 0
