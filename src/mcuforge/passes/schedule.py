"""Operator order for the least peak activation memory."""
from __future__ import annotations

from ..analysis import scheduling
from ..ir.graph import Graph


def schedule(graph: Graph, ctx, budget: int = 200_000) -> bool:
    """Reorders the nodes so that the fewest activation bytes are live at once (analysis.scheduling).

    Exact (dynamic programming over the sets of executed nodes) while it stays within `budget`
    transitions, otherwise the best of two greedy orders; never worse than the input order, which
    is kept on ties. Peaks count graph inputs and outputs and use the memory planner's aliasing
    (views, concat slices, in-place ops), so run it right before `memory-plan`, after every pass
    that adds or removes nodes. Records `ctx.schedule` (peaks before and after, the
    method) and the peaks as stats. Preserves: the nodes themselves; only their order changes.
    """
    result = scheduling.schedule(graph, budget)
    ctx.schedule = result
    ctx.stat("peak_bytes_before", result.input_peak)
    ctx.stat("peak_bytes_after", result.peak)
    if all(a is b for a, b in zip(result.order, graph.nodes)):
        return False
    graph.reorder(result.order)
    return True
