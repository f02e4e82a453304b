"""Operator ordering for the least peak activation memory.

The memory model is the planner's (`analysis.memory`), so the peak of an order here is the plan's
lower bound for that order: each group of statically aliased values (views, concat slices) is one
buffer, allocated when its first producer runs and freed after its last reader; graph inputs are
live from the start, graph outputs and state writes to the end (state reads are not in the
arena); an in-place op (`memory.INPLACE`) whose input
buffer of its size dies there needs no new bytes. At a step, the live bytes are those before it
plus what the node allocates (less an in-place reuse).

The bytes live after a set of executed nodes depend on the set only, not on the order within it,
so the least peak is a shortest-path problem over the downsets of the graph (sets of nodes closed
under predecessors):
- exact: dynamic programming level by level over downsets, keeping the least peak reaching each
  and dropping any that cannot beat the best order known; `budget` bounds the transitions tried,
  beyond it the search gives up (wide graphs have exponentially many downsets);
- greedy: run the ready node that frees the most and allocates the least (net bytes), then the
  one whose step costs least; and the same with the two keys swapped;
- the input order, so the result is never worse than it.
A linear chain has one order and is returned as it is at once.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph
from .memory import INPLACE, VIEWS, _root, kept, static_aliases


@dataclass
class Schedule:
    order: list  # the nodes in their new order
    peak: int  # peak live bytes of `order`
    input_peak: int  # peak live bytes of the input order
    method: str  # "chain", "input", "greedy" or "exact"
    optimal: bool  # proven least peak


class _Model:
    """The graph as bitmask records: node j is bit j of a set of executed nodes."""

    def __init__(self, graph: Graph):
        self.nodes = nodes = graph.nodes
        index = {id(n): j for j, n in enumerate(nodes)}
        host = static_aliases(graph)
        buf: dict[int, int] = {}  # id(root value) -> buffer index
        self.size, self.users, self.producers, self.pinned = [], [], [], []

        def buffer(v) -> int:
            r = _root(host, v)[0]
            if id(r) not in buf:
                buf[id(r)] = len(self.size)
                self.size.append(r.type.nbytes)
                self.users.append(0)
                self.producers.append(0)
                self.pinned.append(False)
            return buf[id(r)]

        self.makes, self.reads, self.preds, self.succs, self.inplace = [], [], [], [[] for _ in nodes], []
        for j, n in enumerate(nodes):
            made = [buffer(v) for v in n.outputs if not (n.op in VIEWS and v in host)]  # a view allocates nothing
            for b in made:
                self.producers[b] |= 1 << j
            read = [buffer(v) for v in n.inputs if not v.is_const and graph.state(v) is None]  # (states: no arena)
            for b in made + read:
                self.users[b] |= 1 << j
            self.makes.append(sorted(set(made)))
            self.reads.append(list(dict.fromkeys(read)))
            preds = {index[id(v.producer)] for v in n.inputs if v.producer is not None}
            self.preds.append(sum(1 << p for p in preds))
            for p in preds:
                self.succs[p].append(j)
            own = n.op in INPLACE and len(n.outputs) == 1 and n.output not in host
            self.inplace.append(n.output.type.nbytes if own else 0)
        for v in kept(graph):
            self.pinned[buffer(v)] = True
        self.live0 = sum(self.size[buffer(v)] for v in {id(v): v for v in graph.inputs}.values())

    def step(self, done: int, j: int, live: int) -> tuple[int, int]:
        """(bytes live while node j runs, bytes live after it), `done` having run before."""
        after = done | 1 << j
        alloc = sum(self.size[b] for b in self.makes[j] if not self.producers[b] & done)
        dying = [b for b in {*self.makes[j], *self.reads[j]} if not self.pinned[b] and not self.users[b] & ~after]
        reuse = self.inplace[j] if any(self.size[b] == self.inplace[j] and b in self.reads[j] and b not in self.makes[j]
                                       for b in dying) else 0
        return live + alloc - reuse, live + alloc - sum(self.size[b] for b in dying)

    def ready(self, done: int, candidates) -> list[int]:
        return [s for s in candidates if not self.preds[s] & ~done]

    def peak(self, order: list[int]) -> int:
        done, live, peak = 0, self.live0, self.live0
        for j in order:
            cost, live = self.step(done, j, live)
            peak, done = max(peak, cost), done | 1 << j
        return peak

    def greedy(self, key) -> list[int]:
        done, live, order = 0, self.live0, []
        ready = set(self.ready(0, range(len(self.nodes))))
        while ready:
            costs = {j: self.step(done, j, live) for j in ready}
            j = min(ready, key=lambda j: key(costs[j], live) + (j,))
            live, done = costs[j][1], done | 1 << j
            order.append(j)
            ready.remove(j)
            ready.update(self.ready(done, self.succs[j]))
        return order

    def exact(self, bound: int, budget: int) -> tuple[list[int] | None, bool]:
        """(an order with the least peak if it is below `bound`, else None; whether the search
        finished within `budget`)."""
        level = {0: (0, self.live0, frozenset(self.ready(0, range(len(self.nodes)))))}
        back = []
        for _ in self.nodes:
            nxt, steps = {}, {}
            for done, (peak, live, ready) in level.items():
                budget -= len(ready)
                if budget < 0:
                    return None, False
                for j in ready:
                    cost, after_live = self.step(done, j, live)
                    new_peak, after = max(peak, cost), done | 1 << j
                    if new_peak >= bound or (after in nxt and nxt[after][0] <= new_peak):
                        continue
                    nxt[after] = (new_peak, after_live, ready - {j} | set(self.ready(after, self.succs[j])))
                    steps[after] = (done, j)
            if not nxt:
                return None, True
            back.append(steps)
            level = nxt
        (done,) = level
        order = []
        for steps in reversed(back):
            done, j = steps[done]
            order.append(j)
        return order[::-1], True


def peak_bytes(graph: Graph) -> int:
    """Peak live activation bytes of the graph in its current node order."""
    m = _Model(graph)
    return m.peak(list(range(len(m.nodes))))


def schedule(graph: Graph, budget: int = 200_000) -> Schedule:
    """The order of `graph`'s nodes with the least peak found (see the module docstring)."""
    m = _Model(graph)
    n = len(m.nodes)
    given = list(range(n))
    if all(m.preds[j] >> (j - 1) & 1 for j in range(1, n)):  # each node needs the one before it
        return Schedule(m.nodes, m.peak(given), m.peak(given), "chain", True)
    candidates = [("input", given),
                  ("greedy", m.greedy(lambda c, live: (c[1] - live, c[0]))),
                  ("greedy", m.greedy(lambda c, live: (c[0], c[1] - live)))]
    (method, order), peak = min(((c, m.peak(c[1])) for c in candidates), key=lambda r: r[1])
    found, complete = m.exact(peak, budget)
    if found is not None:
        method, order, peak = "exact", found, m.peak(found)
    return Schedule([m.nodes[j] for j in order], peak, m.peak(given), method, complete)
