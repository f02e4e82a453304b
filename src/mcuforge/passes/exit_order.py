"""Early-exit schedule: each exit head computed as early as it can be."""
from __future__ import annotations

from ..ir.graph import Graph


def exit_order(graph: Graph, ctx) -> bool:
    """Reorders the nodes so that exit 1's result comes first, then what exit 2 adds, ...

    The exits come from `ctx.exits` (a list of `mcuforge.ir.early_exit.Exit`, set by
    `compile(exits=...)`); without them the pass does nothing. Each group of nodes keeps its
    order, so run it after `schedule` and right before `memory-plan` (see `early_exit.order`).
    Records the MACs spent up to each exit as stats `macs_to_exit<k>` (what the report predicts
    an inference leaving there costs). Preserves: the nodes; only their order changes.
    """
    from ..ir.cost import macs
    from ..ir.early_exit import order
    exits = ctx.exits
    if not exits:
        return False
    changed = order(graph, exits)
    spent, at = 0, {id(graph.outputs[e.output].producer): k for k, e in enumerate(exits)}
    for n in graph.nodes:
        spent += macs(n)
        if id(n) in at:
            ctx.stat(f"macs_to_exit{at[id(n)]}", spent)
    return changed
