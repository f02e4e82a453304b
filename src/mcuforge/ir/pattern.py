"""Declarative local rewrites: patterns over Values, rules `(pattern, callback)`, and a driver.

A `Pat` describes a Value: the op of its producer, patterns for that node's operands, exact
attribute values, whether it is a constant or has a single use, and a free-form predicate. A
name binds the matched Value so the callback can reach it. A `Rule` pairs a pattern with a
callback `(graph, m: Match) -> Value | list[Value] | None`; None means "no rewrite". The
returned Values replace the results of the node the pattern was matched at (the root). New
nodes go before the root so the order stays topological: `m.replacement(op, inputs, attrs)`
makes the usual one (the root's name, meta and result type), `graph.op(..., before=m.root)` any
other.

`rewrite(graph, rules, ctx)` applies the rules until none fires (a fixpoint). It keeps a worklist
of nodes, seeded with every node in order; after a rewrite it queues the new nodes and the users
of whatever changed, and erases the nodes that became dead. Rules are indexed by root op, so a
sweep costs O(nodes x rules for that op x pattern size). With a `ctx`, each rewrite is counted
as `<pass>.<rule name>`, and the reasons callbacks give with `m.miss(reason)` for declining
a rewrite reach `ctx.miss` (once per node, if the node survives).

Worked example (run by the tests), a pass that drops `mul(x, 1)`, turns `div(x, c)` into
`mul(x, 1/c)` and `relu(relu(x))` into `relu(x)`:

    import numpy as np
    from mcuforge.ir.pattern import Pat, Rule, rewrite

    def times_one(g, m):
        ones = bool(np.all(m["c"].data == 1))
        return m["x"] if ones and m["x"].shape == m.root.output.shape else None  # no broadcast

    def div_to_mul(g, m):
        inv = g.const(1.0 / m["c"].data, "inv")
        return m.replacement("mul", [m["x"], inv])

    RULES = [
        Rule(Pat("mul", [Pat.any("x"), Pat.const("c")], attrs={"act": "none"}), times_one),
        Rule(Pat("div", [Pat.any("x"), Pat.const("c")]), div_to_mul),
        Rule(Pat("relu", [Pat("relu", name="inner")]), lambda g, m: m["inner"]),
    ]

    def simplify(graph, ctx) -> bool:  # a pass: (graph, ctx, **options) -> changed
        return rewrite(graph, RULES, ctx)

A rewrite is skipped when it would make a graph output alias a graph input or another graph
output (every output needs its own buffer in the backends).
"""
from __future__ import annotations

from collections import deque
from typing import Callable

from .graph import Graph, Node, Value


class Match:
    """The Values a pattern bound by name (`m["x"]`), their producers (`m.node("x")`), the root."""

    def __init__(self, graph: Graph, root: Node, ctx=None, misses: dict | None = None):
        self.graph, self.root, self.ctx = graph, root, ctx
        self.values: dict[str, Value] = {}
        self._misses = {} if misses is None else misses

    def __getitem__(self, name: str) -> Value:
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def node(self, name: str) -> Node:
        v = self.values[name]
        if v.producer is None:
            raise KeyError(f"%{v.name} (bound to '{name}') has no producer node")
        return v.producer

    def replacement(self, op: str, inputs: list[Value], attrs: dict | None = None, **kw):
        """A new node to replace the root: placed before it, with its result types, and its name
        and meta unless `name=`/`meta=` say otherwise."""
        r = self.root
        kw = {"name": r.name, "meta": dict(r.meta), **kw}
        return self.graph.op(op, inputs, attrs, out_types=[v.type for v in r.outputs], before=r, **kw)

    def miss(self, reason: str):
        """Records why the root was not rewritten; reported through `ctx.miss` when the driver
        finishes, once per node, and only if the node is still there by then. Returns None, so
        a callback can decline with `return m.miss(why)`."""
        self._misses[self.root] = reason

    def bind(self, name: str, v: Value) -> bool:
        """Binds `name`; a name bound twice must be the same Value (`add(x, x)`)."""
        return self.values.setdefault(name, v) is v


class Pat:
    """A pattern over one Value. All given constraints must hold.

    op: the producer's op name, or a tuple of alternatives; None places no constraint.
    inputs: patterns for the producer's operands, all of them in order; a trailing `...` lets
        further operands go unmatched (`[Pat.any("x"), Pat.const("w"), ...]`: bias or not).
    attrs: exact values of the producer's attributes (lists and tuples compare alike).
    one_use: the Value has exactly one user and is not a graph output.
    const: True for a constant Value, False for a non-constant one.
    predicate: a function of the Value, checked last.
    """

    def __init__(self, op: str | tuple[str, ...] | None = None, inputs: list | None = None, name: str | None = None,
                 attrs: dict | None = None, one_use: bool = False, const: bool | None = None,
                 predicate: Callable[[Value], bool] | None = None):
        self.op = (op,) if isinstance(op, str) else (tuple(op) if op is not None else None)
        self.open = bool(inputs) and inputs[-1] is ...
        self.inputs = None if inputs is None else list(inputs[:-1] if self.open else inputs)
        self.name, self.attrs, self.one_use, self.const, self.predicate = name, attrs or {}, one_use, const, predicate

    @classmethod
    def any(cls, name: str | None = None, **kw) -> "Pat":
        return cls(name=name, **kw)

    @classmethod
    def const(cls, name: str | None = None, **kw) -> "Pat":
        return cls(name=name, const=True, **kw)

    @property
    def depth(self) -> int:
        """Levels of producers the pattern looks at (1 for a lone op pattern)."""
        return 1 + max((p.depth for p in self.inputs or ()), default=0)

    def match(self, v: Value, m: Match) -> bool:
        if self.const is not None and v.is_const != self.const:
            return False
        if self.one_use and (len(v.users) != 1 or m.graph.escapes(v)):
            return False
        if self.op is not None or self.attrs or self.inputs is not None:
            n = v.producer
            if n is None or not self._match_node(n, m):
                return False
        if self.name is not None and not m.bind(self.name, v):
            return False
        return self.predicate is None or bool(self.predicate(v))

    def _match_node(self, n: Node, m: Match) -> bool:
        if self.op is not None and n.op not in self.op:
            return False
        if not all(_same(n.attrs.get(k), want) for k, want in self.attrs.items()):
            return False
        if self.inputs is None:
            return True
        if len(n.inputs) < len(self.inputs) or (not self.open and len(n.inputs) != len(self.inputs)):
            return False
        return all(p.match(v, m) for p, v in zip(self.inputs, n.inputs))

    def __repr__(self):
        parts = [repr(self.op[0] if len(self.op) == 1 else self.op)] if self.op else []
        if self.inputs is not None:
            parts.append(repr(self.inputs + [...] if self.open else self.inputs))
        parts += [f"{k}={getattr(self, k)!r}" for k in ("name", "attrs", "one_use", "const") if getattr(self, k)]
        return f"Pat({', '.join(parts)})"


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


class Rule:
    """`pattern` matched at a node's first result; `callback(graph, m)` returns the replacements."""

    def __init__(self, pattern: Pat, callback: Callable[[Graph, Match], "Value | list[Value] | None"],
                 name: str | None = None):
        self.pattern, self.callback = pattern, callback
        self.name = name or getattr(callback, "__name__", "rule")

    def __repr__(self):
        return f"Rule({self.name}: {self.pattern})"


def rewrite(graph: Graph, rules: list[Rule], ctx=None, max_rewrites: int | None = None) -> bool:
    """Applies `rules` until none fires; returns whether the graph changed.

    Rules are tried in list order at each node (those whose root op differs are never looked
    at). Raises RuntimeError after `max_rewrites` rewrites (default 10 per node + 1000), which
    only rules that undo each other reach.
    """
    by_op: dict[str, list[Rule]] = {}
    levels = max((r.pattern.depth for r in rules), default=1)
    misses: dict[Node, str] = {}
    queue = deque(graph.nodes)
    known, queued = set(queue), set(queue)  # nodes hash by identity
    limit = max_rewrites if max_rewrites is not None else 10 * len(queue) + 1000
    done = 0

    def push(n: Node):
        if n not in queued and n.graph is graph:
            queued.add(n)
            queue.append(n)

    def push_up(nodes, depth):
        for _ in range(depth):
            for n in nodes:
                push(n)
            nodes = list(dict.fromkeys(u for n in nodes for v in n.outputs for u in v.users))

    while queue:
        node = queue.popleft()
        queued.discard(node)
        if node.graph is not graph:
            continue
        if node.op not in by_op:
            by_op[node.op] = [r for r in rules if r.pattern.op is None or node.op in r.pattern.op]
        for rule in by_op[node.op]:
            m = Match(graph, node, ctx, misses)
            if not rule.pattern.match(node.outputs[0], m):
                continue
            new = rule.callback(graph, m)
            if new is None:
                continue
            new = [new] if isinstance(new, Value) else list(new)
            if len(new) != len(node.outputs):
                raise ValueError(f"rule {rule.name} returned {len(new)} values for {node} "
                                 f"with {len(node.outputs)} results")
            if all(a is b for a, b in zip(new, node.outputs)):
                continue
            if not _outputs_stay_distinct(graph, node, new):
                _erase_dead(graph, new)
                continue
            done += 1
            if done > limit:
                raise RuntimeError(f"rewrite did not reach a fixpoint after {limit} rewrites; "
                                   f"last rule {rule.name} at {node}")
            if ctx is not None:
                ctx.stat(rule.name)
            fresh = _new_nodes(new, known)
            touched = [u for old in node.outputs for u in old.users]  # their operands change
            for old, v in zip(node.outputs, new):
                graph.replace_all_uses(old, v)
            erased = _erase_dead(graph, node.outputs)
            for n in fresh:  # names freed by the erased nodes go back to their replacements
                for v in n.outputs:
                    graph.reclaim_name(v)
            # a value left with one user may now match `one_use`; only such values, to stay O(1)
            lone = [v.users[0] for e in erased for v in e.inputs if len(v.users) == 1]
            for n in fresh:
                push(n)
            push_up(touched + lone, max(levels - 1, 1))
            break
    for n, reason in misses.items():
        if ctx is not None and n.graph is graph:
            ctx.miss(n, reason)
    return done > 0


def _outputs_stay_distinct(graph: Graph, node: Node, new: list[Value]) -> bool:
    return not any(old is not v and graph.is_output(old) and (graph.is_output(v) or v in graph.inputs)
                   for old, v in zip(node.outputs, new))


def _new_nodes(values: list[Value], known: set[Node]) -> list[Node]:
    """Producers of `values` not seen before, and theirs, recursively; marks them known."""
    out, stack = [], [v.producer for v in values if v.producer is not None]
    while stack:
        n = stack.pop()
        if n not in known:
            known.add(n)
            out.append(n)
            stack.extend(v.producer for v in n.inputs if v.producer is not None)
    return out


def _erase_dead(graph: Graph, values: list[Value]) -> list[Node]:
    """Erases the producers of `values` that have no uses left, and theirs; returns them."""
    erased, stack = [], [v.producer for v in values if v.producer is not None]
    while stack:
        n = stack.pop()
        if n.graph is graph and not any(graph.has_uses(v) for v in n.outputs):
            graph.erase(n)
            erased.append(n)
            stack.extend(v.producer for v in n.inputs if v.producer is not None)
    return erased
