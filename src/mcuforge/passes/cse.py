"""Common-subexpression elimination."""
from __future__ import annotations

from ..ir.graph import Graph, Value


def cse(graph: Graph, ctx) -> bool:
    """Merges nodes with the same op, the same operand Values and equal attributes.

    Constants with the same type (shape, dtype, quantization) and bytes are merged first, so
    `conv(x, w1)` and `conv(x, w2)` merge when w1 and w2 hold the same numbers. One sweep in
    topological order suffices: a node's operands are already merged when it is reached.
    Preconditions: none. Preserves: graph outputs; `meta` of the surviving (first) node. Limits:
    no commutativity (`add(a, b)` and `add(b, a)` stay apart); two graph outputs are never
    merged into one Value.
    """
    changed = False
    consts: dict[tuple, Value] = {}
    for c in graph.constants():
        first = consts.setdefault((c.type, c.data.tobytes()), c)
        if first is not c and _may_merge(graph, c, first):
            graph.replace_all_uses(c, first)
            ctx.stat("constants")
            changed = True
    seen: dict[tuple, object] = {}
    for n in graph.nodes:
        key = (n.op, tuple(id(v) for v in n.inputs), _freeze(n.attrs))
        first = seen.setdefault(key, n)
        if first is not n and all(_may_merge(graph, a, b) for a, b in zip(n.outputs, first.outputs)):
            graph.replace_node(n, first.outputs)
            ctx.stat("nodes")
            changed = True
    return changed


def _may_merge(graph: Graph, v: Value, into: Value) -> bool:
    return not (graph.is_output(v) and graph.is_output(into))


def _freeze(x):
    if isinstance(x, dict):
        return tuple((k, _freeze(v)) for k, v in sorted(x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    return x
