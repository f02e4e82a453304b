"""Constant folding through the reference interpreter."""
from __future__ import annotations

from ..ir.graph import Graph
from ..ir.interpreter import evaluate


def constant_fold(graph: Graph, ctx) -> bool:
    """Replaces every node whose operands are all constants by constants holding its results.

    The results come from `interpreter.evaluate`, the definition of every op, so folding means
    exactly what running the graph means. One sweep in topological order folds whole constant
    subgraphs. Preconditions: none. Preserves: result types (dtype and quantization parameters
    are kept; the arrays are cast to the declared dtype). Limits: results are not bounded in
    size, so a fold may enlarge the weights (e.g. a broadcast of a small constant).
    """
    folded = 0
    for n in graph.nodes:
        if n.inputs and all(v.is_const for v in n.inputs):
            arrays = evaluate(n.op, [v.data for v in n.inputs], n.attrs)
            graph.replace_node(n, [graph.const(a, v.name, v.dtype, v.type.quant) for a, v in zip(arrays, n.outputs)])
            folded += 1
    ctx.stat("folded", folded)
    return folded > 0
