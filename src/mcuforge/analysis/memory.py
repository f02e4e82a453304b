"""Static memory planning: the byte offset of every activation in one arena, fixed at compile time.

`plan_memory(graph)` reads the graph (never changes it) and follows its schedule, `graph.nodes`:
1. Values that need no bytes of their own become aliases. Order-independent ones
   (`static_aliases`): a view (reshape) shares its input's bytes; a concat's input is written
   straight into its slice of the concat's result when the concat is its only use, it has the
   result's type, and the slices are contiguous (every dim before the axis is 1). Order-dependent
   ones: an elementwise op (activations, add/sub/mul/div, their integer forms) writes over an
   operand of its size that dies there (in place); and where the backend's `overlap` rule allows
   (its kernel's read and write order), an op's output shares one buffer with an input that dies
   there, the input starting that many bytes after the output.
2. Each group of aliased values becomes one `Buffer(name, size, first, last)` (steps are schedule
   indices, both ends live); a kernel's scratch buffer (`scratch(node)` bytes, from a backend)
   lives during its node's step only. Graph inputs live from step 0, graph outputs to the last
   step; constants are not planned (they stay in flash).
3. Offsets come from several algorithms, the smallest arena wins (`best_offsets`): greedy by
   size and greedy by breadth (the buffers of the busiest steps first), both with best fit; if
   they miss the lower bound, a two-ended depth-first search for a plan at the bound; and for
   at most `EXACT_MAX` buffers, a branch and bound over placement orders (exact within budget).
`lower_bound_bytes` is the most bytes live at one step: no placement of these buffers does better.
States (`Graph.states`) live outside the arena, in a state buffer of their own that persists
between invocations (`state_offsets`, `state_bytes`: each state's read Value, aligned, in order):
a read costs no arena bytes; a write is copied into the state buffer after its commit step
(`state_commits`): the first step after which it is computed and no node is left to read the old
value (what TFLite Micro's ASSIGN_VARIABLE does where the file has it), and it lives until then.
`check_plan` verifies a plan, `format_timeline` draws it. Limits: shapes are static; the alias
rules are local (no split views; overlaps only between a node's first input and its output).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from ..errors import Error
from ..ir import ops
from ..ir.graph import Graph, Node, Value

VIEWS = ops.with_tag("view")
INPLACE = ops.with_tag("elementwise")  # element i of the result needs element i of an operand only
EXACT_MAX = 20  # buffers; the branch and bound is exponential beyond


class PlanError(Error):
    """A memory plan that breaks a rule (overlap, alignment, alias)."""


@dataclass
class Buffer:
    name: str
    size: int
    first: int
    last: int


@dataclass
class MemoryPlan:
    arena_bytes: int
    lower_bound_bytes: int
    alignment: int
    algorithm: str
    schedule: list[str]  # node names in execution order
    offsets: dict[str, int]  # value (or "<node>.scratch") -> byte offset in the arena
    sizes: dict[str, int]
    lifetimes: dict[str, tuple[int, int]]
    aliases: dict[str, str]  # value -> the value whose bytes it shares
    # input -> (its node's output, the fewest bytes the input starts after it): an input that dies
    # at its node shares a buffer with the output, overlapping it as far as the kernel allows
    overlaps: dict[str, tuple[str, int]] = field(default_factory=dict)
    state_offsets: dict[str, int] = field(default_factory=dict)  # state (its read Value) -> offset in the state buffer
    state_bytes: int = 0
    state_commits: dict[str, int] = field(default_factory=dict)  # state -> the step after which its write is copied in
    # the op-level bound: the most bytes live at one step of this schedule when every tensor is
    # whole (in-place reuse, no overlaps); overlaps take the arena below it, never the lower bound
    whole_bound_bytes: int = 0

    def below_bound(self) -> str | None:
        """What took the arena below the op-level (whole-tensor) bound, or None if it is not below."""
        if not self.overlaps or self.arena_bytes >= self.whole_bound_bytes:
            return None
        return (f"{self.whole_bound_bytes - self.arena_bytes:,} B below the whole-tensor bound "
                f"{self.whole_bound_bytes:,} B: {len(self.overlaps)} inputs overlapped by their outputs")


def kept(graph: Graph) -> list[Value]:
    """The values no op may overwrite in place: graph outputs and state writes (in the arena)."""
    reads = {id(s.read) for s in graph.states}
    return [v for v in [*graph.outputs, *(s.write for s in graph.states)] if not v.is_const and id(v) not in reads]


def static_aliases(graph: Graph) -> dict[Value, tuple[Value, int]]:
    """Aliases that hold in every schedule: value -> (value it lives in, byte offset there)."""
    host: dict[Value, tuple[Value, int]] = {}
    ends = {id(v) for v in kept(graph)}
    for n in graph.nodes:
        if n.op in VIEWS and not n.inputs[0].is_const and graph.state(n.inputs[0]) is None:
            host[n.output] = (n.inputs[0], 0)
        elif n.op == "concat":
            y = n.output
            if any(d != 1 for d in y.shape[:ops.norm_axis(n.attrs["axis"], len(y.shape))]):
                continue  # the slices are strided, not contiguous
            offset = 0
            for v in n.inputs:
                if (v.producer is not None and v.producer.op not in VIEWS and len(v.users) == 1
                        and id(v) not in ends and v.type.dtype == y.type.dtype and v.type.quant == y.type.quant):
                    host[v] = (y, offset)
                offset += v.type.nbytes
    return host


def _root(host: dict, v: Value) -> tuple[Value, int]:
    offset = 0
    while v in host:
        v, d = host[v]
        offset += d
    return v, offset


def plan_memory(graph: Graph, *, alignment: int = 16, scratch: Callable[[Node], int] | None = None,
                inplace: bool = True, overlap: Callable[[Node], int | None] | None = None) -> MemoryPlan:
    """Plans the arena for `graph` in its current node order (see the module docstring).

    `scratch(node) -> bytes` gives the scratch a backend's kernel needs; `inplace=False` turns off
    in-place reuse (for runtimes whose kernels may not overwrite their inputs). `overlap(node)`
    (a backend's, from its kernels' access order) gives the fewest bytes by which the node's first
    input may start after its output in one buffer, or None: where that input dies at the node,
    the two share a buffer that far apart (`MemoryPlan.overlaps`).
    """
    nodes = graph.nodes
    end = max(len(nodes) - 1, 0)
    reads = {s.read for s in graph.states}  # in the state buffer
    first: dict[Value, int] = {v: 0 for v in graph.inputs}
    last: dict[Value, int] = {v: 0 if v.users else end for v in graph.inputs}  # unread inputs stay
    for i, n in enumerate(nodes):
        for v in n.outputs:
            first[v] = last[v] = i
        for v in n.inputs:
            if not v.is_const and v not in reads:
                last[v] = i
    for v in graph.outputs:
        if not v.is_const:
            last[v] = end
    commits = state_commits(graph, nodes)
    for st in graph.states:
        if st.write in first:
            last[st.write] = max(last[st.write], commits[st.read.name])
    host = static_aliases(graph)
    span: dict[Value, list[int]] = {}  # root -> [first, last] of its group
    for v in first:
        r = _root(host, v)[0]
        s = span.setdefault(r, [first[v], last[v]])
        s[0], s[1] = min(s[0], first[v]), max(s[1], last[v])
    pinned = {_root(host, v)[0] for v in kept(graph)}
    if inplace:
        for i, n in enumerate(nodes):
            if n.op not in INPLACE or len(n.outputs) != 1 or n.output in host:
                continue
            o = n.output
            for v in (v for v in n.inputs if not v.is_const and v not in reads):
                r, offset = _root(host, v)
                if offset == 0 and r is not o and r not in pinned and span[r][1] == i and \
                        r.type.nbytes == o.type.nbytes:  # an input of the same size that dies here
                    host[o] = (v, 0)
                    span[r][1] = max(span[r][1], span.pop(o)[1])
                    if o in pinned:
                        pinned.add(r)
                    break
    extent = {r: r.type.nbytes for r in span}  # a group's bytes: the members' farthest end in it
    for v in first:
        r, offset = _root(host, v)
        extent[r] = max(extent[r], offset + v.type.nbytes)
    scratches = [Buffer(f"{n.name}.scratch", scratch(n), i, i) for i, n in enumerate(nodes)
                 if scratch is not None and scratch(n) > 0]
    overlaps, whole = {}, lower_bound([Buffer("", extent[r], f, l) for r, (f, l) in span.items()] + scratches)
    if overlap is not None and inplace:  # the fewest bytes live of: none, the paying ones, every allowed one
        tries = [(host, span, extent, {})]
        for every in (False, True):
            h, sp, ex = dict(host), {r: list(v) for r, v in span.items()}, dict(extent)
            tries.append((h, sp, ex, _overlap(nodes, h, sp, ex, pinned, overlap, every)))
        host, span, extent, overlaps = min(tries, key=lambda t: (lower_bound(
            [Buffer("", t[2][r], f, l) for r, (f, l) in t[1].items()] + scratches), len(t[3])))
    buffers = [Buffer(r.name, extent[r], f, l) for r, (f, l) in span.items() if extent[r] > 0] + scratches
    sizes = {v.name: v.type.nbytes for v in first if v.type.nbytes > 0} | {b.name: b.size for b in scratches}
    lifetimes = {v.name: (first[v], last[v]) for v in first if v.type.nbytes > 0} | \
        {b.name: (b.first, b.last) for b in scratches}
    algorithm, offsets = best_offsets(buffers, alignment)
    state_offsets, state_bytes = {}, 0
    for st in graph.states:
        state_offsets[st.read.name] = state_bytes = _align(state_bytes, alignment)
        state_bytes += st.read.type.nbytes
    for v in first:
        if v.type.nbytes > 0 and v.name not in offsets:
            r, offset = _root(host, v)
            offsets[v.name] = offsets[r.name] + offset
    return MemoryPlan(arena_bytes=max((offsets[b.name] + b.size for b in buffers), default=0),
                      lower_bound_bytes=lower_bound(buffers), alignment=alignment, algorithm=algorithm,
                      schedule=[n.name for n in nodes], offsets=offsets, sizes=sizes, lifetimes=lifetimes,
                      aliases={v.name: host[v][0].name for v in host if v.name in sizes}, overlaps=overlaps,
                      state_offsets=state_offsets, state_bytes=state_bytes, state_commits=commits,
                      whole_bound_bytes=whole)


def state_commits(graph: Graph, nodes: list[Node]) -> dict[str, int]:
    """Per state, the first step after which its write is computed and its read has no reader left."""
    step = {id(n): i for i, n in enumerate(nodes)}
    return {st.read.name: max([step.get(id(st.write.producer), 0),
                               *(i for i, n in enumerate(nodes) if any(v is st.read for v in n.inputs))])
            for st in graph.states}


def _overlap(nodes, host, span, extent, pinned, overlap, every: bool) -> dict[str, tuple[str, int]]:
    """Puts each node's first input (its group), where it dies at the node, into its output's
    buffer `lag = overlap(node)` bytes after the output (updating host, span and extent): every
    one the rule allows, or (`every=False`) those that lower the bytes live at the node without
    raising the most live at any step of the two buffers' lives (the shared buffer, max(output,
    lag + input) bytes, lives as long as both; a chain of them pays only as a whole)."""
    live = [0] * (len(nodes) + 1)
    for r, (f, l) in span.items():
        for step in range(f, l + 1):
            live[step] += extent[r]
    done = {}
    for i, n in enumerate(nodes):
        lag = overlap(n) if len(n.outputs) == 1 and n.inputs else None
        if lag is None:
            continue
        x, o = _root(host, n.inputs[0]), n.output  # the input's group, placed with its start at the input's
        if n.inputs[0].is_const or x[0] not in span or x[1] != 0 or o in host or x[0] in pinned or span[x[0]][1] != i:
            continue
        x = x[0]
        (fx, lx), (fo, lo) = span[x], span[o]
        shared = max(extent[o], lag + extent[x])
        steps = range(min(fx, fo), max(lx, lo) + 1)
        after = [live[s] - extent[x] * (fx <= s <= lx) - extent[o] * (fo <= s <= lo) + shared for s in steps]
        if not every and (after[i - steps.start] >= live[i] or max(after) > max(live[s] for s in steps)):
            continue
        for s, v in zip(steps, after):
            live[s] = v
        host[x] = (o, lag)
        span[o] = [steps.start, steps.stop - 1]
        extent[o] = shared
        del span[x], extent[x]
        done[x.name] = (o.name, lag)
    return done


# ---------------------------------------------------------------- placement

def lower_bound(buffers: list[Buffer]) -> int:
    """The most bytes live at one step."""
    return max(step_bytes(buffers), default=0)


def step_bytes(buffers: list[Buffer]) -> list[int]:
    """Bytes live at each step."""
    steps = max((b.last for b in buffers), default=-1) + 1
    delta = [0] * (steps + 1)
    for b in buffers:
        delta[b.first] += b.size
        delta[b.last + 1] -= b.size
    out, live = [], 0
    for d in delta[:-1]:
        live += d
        out.append(live)
    return out


def _align(x: int, alignment: int) -> int:
    return -(-x // alignment) * alignment


def best_fit(buffers: list[Buffer], alignment: int) -> dict[str, int]:
    """Places the buffers in the given order, each in the smallest gap between the buffers
    already placed that live at the same time, or above them all if no gap fits."""
    at_step: dict[int, list[int]] = {}  # step -> indices of placed buffers live then
    offsets: list[int] = []
    for i, b in enumerate(buffers):
        busy = {j for s in range(b.first, b.last + 1) for j in at_step.get(s, ())}
        best, top = None, 0
        for lo, hi in sorted((offsets[j], offsets[j] + buffers[j].size) for j in busy):
            if lo - top >= b.size and (best is None or lo - top < best[0]):
                best = (lo - top, top)
            top = max(top, _align(hi, alignment))
        offsets.append(best[1] if best else top)
        for s in range(b.first, b.last + 1):
            at_step.setdefault(s, []).append(i)
    return {b.name: o for b, o in zip(buffers, offsets)}


def greedy_by_size(buffers: list[Buffer], alignment: int) -> dict[str, int]:
    return best_fit(sorted(buffers, key=lambda b: (-b.size, b.first - b.last, b.first)), alignment)


def greedy_by_breadth(buffers: list[Buffer], alignment: int) -> dict[str, int]:
    """Buffers of the busiest steps first: by the most bytes live at a step of their lifetime."""
    live = step_bytes(buffers)
    breadth = {id(b): max(live[b.first:b.last + 1]) for b in buffers}
    return best_fit(sorted(buffers, key=lambda b: (-breadth[id(b)], -b.size, b.first)), alignment)


def two_ended(buffers: list[Buffer], alignment: int, target: int, budget: int = 20_000) -> dict[str, int] | None:
    """Places the buffers by first use, each at the lowest or the highest offset where it fits
    under `target`, depth first (a later dead end tries the other end); None if no plan fits
    within `budget` placements. Finds the ping-pong plans of chains with long-lived skips."""
    order = sorted(buffers, key=lambda b: (b.first, -b.size))
    at_step: dict[int, list[int]] = {}
    offsets: list[int] = []
    stack: list[list[int]] = []  # per placed buffer: the offsets still to try

    def candidates(k: int) -> list[int]:
        b, low, high, top = order[k], None, None, 0
        busy = {j for s in range(b.first, b.last + 1) for j in at_step.get(s, ())}
        for lo, hi in sorted((offsets[j], offsets[j] + order[j].size) for j in busy) + [(target, target)]:
            if lo - top >= b.size:
                low = top if low is None else low
                high = (lo - b.size) // alignment * alignment
            top = max(top, _align(hi, alignment))
        return [o for o in dict.fromkeys((low, high)) if o is not None and o + b.size <= target]

    def place(k: int, offset: int):
        offsets.append(offset)
        for s in range(order[k].first, order[k].last + 1):
            at_step.setdefault(s, []).append(k)

    def unplace(k: int):
        offsets.pop()
        for s in range(order[k].first, order[k].last + 1):
            at_step[s].remove(k)

    while len(stack) < len(order):
        options = candidates(len(stack))
        while not options:  # dead end: back to the last buffer with an offset left to try
            if not stack or budget <= 0:
                return None
            unplace(len(stack) - 1)
            options = stack.pop()
        place(len(stack), options.pop(0))
        stack.append(options)
        budget -= 1
    return {b.name: o for b, o in zip(order, offsets)}


def exact(buffers: list[Buffer], alignment: int, bound: int, budget: int = 5_000) -> dict[str, int] | None:
    """Branch and bound over placement orders, each buffer at its lowest free offset; returns
    offsets with an arena below `bound`, the smallest found, or None.

    Exact unless `budget` (placements tried) runs out: pushing every buffer of an optimal plan
    down as far as it goes, repeatedly, gives a plan whose buffers, placed by increasing offset,
    each land at their lowest free offset. So only orders whose offsets never decrease are
    searched; a branch stops once its arena, or its offset plus the largest unplaced buffer,
    reaches the best arena; partial placements seen before are skipped.
    """
    n = len(buffers)
    conflicts = [[j for j, c in enumerate(buffers) if j != i and c.first <= b.last and b.first <= c.last]
                 for i, b in enumerate(buffers)]
    floor = lower_bound(buffers)
    best: dict = {"top": bound, "offsets": None}
    seen: set = set()
    placed: list[int | None] = [None] * n

    def lowest(i: int) -> int:
        at = 0
        for lo, hi in sorted((placed[j], placed[j] + buffers[j].size) for j in conflicts[i] if placed[j] is not None):
            if lo - at >= buffers[i].size:
                break
            at = max(at, _align(hi, alignment))
        return at

    def search(top: int, last: int) -> bool:  # True stops the search (budget spent or optimum reached)
        nonlocal budget
        rest = [i for i in range(n) if placed[i] is None]
        if not rest:
            best["top"], best["offsets"] = top, list(placed)
            return top <= floor
        largest = max(buffers[i].size for i in rest)
        for i in rest:
            offset = lowest(i)
            if offset < last or max(top, offset + largest) >= best["top"]:
                continue
            placed[i] = offset
            key = tuple(placed)
            if key not in seen:
                seen.add(key)
                budget -= 1
                if budget <= 0 or search(max(top, offset + buffers[i].size), offset):
                    placed[i] = None
                    return True
            placed[i] = None
        return False

    search(0, 0)
    return None if best["offsets"] is None else {b.name: o for b, o in zip(buffers, best["offsets"])}


def best_offsets(buffers: list[Buffer], alignment: int) -> tuple[str, dict[str, int]]:
    """(name of the winning algorithm, offsets): the two greedy placements; if both miss the
    lower bound, the two-ended search for a plan at the bound, or failing that below them; then, for at most `EXACT_MAX`
    buffers still above it, branch and bound below the best arena so far."""
    def arena(offsets):
        return max((offsets[b.name] + b.size for b in buffers), default=0)

    floor = lower_bound(buffers)
    best = min([("greedy-by-size", greedy_by_size(buffers, alignment)),
                ("greedy-by-breadth", greedy_by_breadth(buffers, alignment))], key=lambda r: arena(r[1]))
    if arena(best[1]) > floor:  # at the bound if it can, else anything below the greedy plans
        found = two_ended(buffers, alignment, floor) or two_ended(buffers, alignment, arena(best[1]) - 1)
        best = ("two-ended", found) if found is not None else best
    if arena(best[1]) > floor and len(buffers) <= EXACT_MAX:
        found = exact(buffers, alignment, arena(best[1]))
        best = ("branch-and-bound", found) if found is not None else best
    return best


# ---------------------------------------------------------------- checking and drawing

def run_in_arena(graph: Graph, plan: MemoryPlan, *inputs) -> list:
    """Runs `graph` as the generated code does: every activation read from and written to its
    offset in one byte arena (constants aside). Equal to `interpreter.run` only if the plan is
    right: a buffer overwritten while live changes the results."""
    import numpy as np

    from ..ir.interpreter import evaluate
    arena = np.zeros(plan.arena_bytes, np.uint8)

    def at(v):
        return arena[plan.offsets[v.name]:plan.offsets[v.name] + v.type.nbytes]

    def store(v, a):
        if v.type.nbytes:
            at(v)[:] = np.ascontiguousarray(a, v.dtype.np).reshape(-1).view(np.uint8)

    def load(v):
        if v.is_const:
            return v.data
        return at(v).view(v.dtype.np).reshape(v.shape).copy() if v.type.nbytes else np.zeros(v.shape, v.dtype.np)

    for v, a in zip(graph.inputs, inputs, strict=True):
        store(v, a)
    for n in graph.nodes:
        for v, a in zip(n.outputs, evaluate(n.op, [load(v) for v in n.inputs], n.attrs)):
            store(v, a)
    return [load(v) for v in graph.outputs]


def _spans(plan: MemoryPlan) -> dict[str, list[int]]:
    """Buffers that own their bytes -> [first, last] step of the values sharing them, and the end
    of the farthest of their bytes (a buffer with an overlapping member reaches past its own)."""
    spans: dict[str, list[int]] = {}
    for name in plan.sizes:
        r, seen = name, {name}
        while r in plan.aliases:
            r = plan.aliases[r]
            if r in seen or r not in plan.sizes:
                raise PlanError(f"invalid memory plan: the alias chain of {name} "
                                f"{'loops' if r in seen else f'names {r}, which is not planned'}")
            seen.add(r)
        f, l = plan.lifetimes[name]
        s = spans.setdefault(r, [f, l, plan.offsets[r] + plan.sizes[r]])
        s[0], s[1], s[2] = min(s[0], f), max(s[1], l), max(s[2], plan.offsets[name] + plan.sizes[name])
    return spans


def check_plan(plan: MemoryPlan) -> None:
    """Raises PlanError unless: every buffer fits the arena, buffers that own their bytes are
    aligned, each alias lies inside the bytes of the value it names (no cycles), no two buffers
    live at the same step overlap, and the arena is not below the lower bound."""
    def fail(msg):
        raise PlanError(f"invalid memory plan: {msg}", "this is a planner bug unless the plan was edited")

    for name, size in plan.sizes.items():
        off = plan.offsets.get(name)
        if off is None or off < 0 or off + size > plan.arena_bytes:
            fail(f"{name} at offset {off} ({size} bytes) is not inside the arena of {plan.arena_bytes} bytes")
    spans = _spans(plan)
    for a, t in plan.aliases.items():
        lo, hi = plan.offsets[t], plan.offsets[t] + plan.sizes[t]
        if a in plan.overlaps:  # an input beside its node's output: as far after it as the kernel needs
            if plan.overlaps[a][0] != t or plan.offsets[a] - lo < plan.overlaps[a][1]:
                fail(f"{a} starts {plan.offsets[a] - lo} bytes after {t}, but its kernel needs "
                     f"{plan.overlaps[a][1]} (it would overwrite inputs it has yet to read)")
            if plan.lifetimes[a][1] > plan.lifetimes[t][0]:
                fail(f"{a} overlaps {t} but lives on after {t} is written (steps {plan.lifetimes[a]}, "
                     f"{plan.lifetimes[t]})")
        elif not lo <= plan.offsets[a] <= plan.offsets[a] + plan.sizes[a] <= hi:
            fail(f"alias {a} at {plan.offsets[a]} ({plan.sizes[a]} bytes) is not inside {t} [{lo}, {hi})")
    active: list[str] = []
    for r in sorted(spans, key=lambda r: spans[r][0]):
        if plan.offsets[r] % plan.alignment:
            fail(f"{r} at offset {plan.offsets[r]} is not aligned to {plan.alignment}")
        if spans[r][2] > plan.arena_bytes:
            fail(f"the bytes sharing {r} end at {spans[r][2]}, past the arena of {plan.arena_bytes} bytes")
        active = [a for a in active if spans[a][1] >= spans[r][0]]
        for a in active:
            if plan.offsets[a] < spans[r][2] and plan.offsets[r] < spans[a][2]:
                fail(f"{a} [{plan.offsets[a]}, {spans[a][2]}) and {r} [{plan.offsets[r]}, {spans[r][2]}) "
                     f"overlap while both are live (steps {spans[a][:2]} and {spans[r][:2]})")
        active.append(r)
    if plan.arena_bytes < plan.lower_bound_bytes:
        fail(f"arena of {plan.arena_bytes} bytes is below the lower bound {plan.lower_bound_bytes}")


def format_timeline(plan: MemoryPlan, width: int = 64) -> str:
    """One row per step: which bytes of the arena are live (a letter per buffer), then a legend."""
    symbols = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    spans = _spans(plan)
    sym = {n: symbols[i % len(symbols)] for i, n in enumerate(sorted(spans, key=lambda n: (plan.offsets[n], n)))}
    scale = max(plan.arena_bytes, 1) / width
    over = plan.arena_bytes / plan.lower_bound_bytes - 1 if plan.lower_bound_bytes else 0.0
    top = f"{plan.arena_bytes:,}"
    below = plan.below_bound()
    lines = [f"arena {plan.arena_bytes:,} B, lower bound {plan.lower_bound_bytes:,} B (+{over:.1%}), "
             f"{plan.algorithm}, alignment {plan.alignment}" + (f"; {below}" if below else ""),
             f"{'step':>4}  {'node':<24} |0{top:>{width - 1}}| live B"]
    for step, node in enumerate(plan.schedule):
        row, live = ["."] * width, 0
        for name, (f, l, end) in spans.items():
            if f <= step <= l:
                live += end - plan.offsets[name]
                lo, hi = plan.offsets[name] / scale, end / scale
                for c in range(int(lo), max(int(lo) + 1, min(width, math.ceil(hi)))):
                    row[c] = sym[name]
        lines.append(f"{step:>4}  {node[:24]:<24} |{''.join(row)}| {live:,}")
    lines.append("legend: " + "; ".join(f"{sym[n]}={n} @{plan.offsets[n]} {plan.sizes[n]:,} B" for n in sym))
    if plan.aliases:
        lines.append("aliases (share bytes): " + ", ".join(
            f"{a}->{t}" + (f" (overlapping, {plan.offsets[a] - plan.offsets[t]:+,} B)" if a in plan.overlaps else "")
            for a, t in plan.aliases.items()))
    return "\n".join(lines)
