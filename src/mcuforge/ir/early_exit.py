"""Early-exit networks: a graph whose outputs are exits, tried in order; inference stops at the
first exit that is confident enough.

Marking: `compile(..., exits={"exit1": 0.9, "out": None})` (CLI: `--exit exit1=0.9 --exit out`)
names every graph output (by value name or index) in the order they are tried, each with a
threshold on its confidence, the largest softmax probability of its scores. The last exit is
always taken (its threshold is ignored).

Confidence, computed the same way by `run_exits` and by the generated C (`confidence_test` is
the one definition both use), on the exit's result as one vector of scores (batch 1):
- probabilities (the result of softmax / qsoftmax): max p >= θ; int8: max q >= ceil(θ / s + zp).
- logits: max softmax >= θ  <=>  sum_j exp(l_j - l_max) <= 1 / θ. int8 logits (scale s) differ by
  integers d = q_max - q_j in [0, 255], so the test is integer arithmetic, bit for bit the same in
  C and numpy: sum_j T[d_j] <= floor(2^16 / θ) with the table T[d] = round(2^16 exp(-s d)), cut
  where it reaches 0. Float logits use float32 exp (C: expf); they agree except for scores
  within a rounding error of the threshold.

Schedule: `order(graph, exits)` moves each exit head as early as it can go: the nodes exit 1
needs, then those exit 2 needs besides, and so on, each group in the order it had (the `schedule`
pass's, when it ran). `compile(exits=...)` runs it as the `exit-order` pass right before the
memory plan. Memory: an exit's result is a graph output, so the plan keeps it live to the end,
and the outputs computed before the exit taken are all still in the arena when the C code
returns. `run_exits` is the reference semantics; `run_dataset` / `average_macs` give the MACs a
data set costs at given thresholds (what `mcuforge bench` reports).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from .graph import Graph, Value

ONE = 1 << 16  # fixed-point 1.0 of the int8 logits test


@dataclass(frozen=True)
class Exit:
    output: int  # index into graph.outputs
    threshold: float | None  # None: always taken (the last exit)


@dataclass(frozen=True)
class Test:
    """How one exit decides: kind "probs" or "logits", on "i8" or "f32" scores; `bound` is the
    integer or float the statistic is compared with, `table` the int8 logits' exp table."""

    kind: str
    dtype: str
    bound: float
    table: np.ndarray | None = None


def resolve(graph: Graph, exits) -> list[Exit]:
    """`{output name or index: threshold or None}` (in the order tried) -> list of Exit."""
    names = [v.name for v in graph.outputs]
    out, seen = [], set()
    for key, theta in dict(exits).items():
        i = key if isinstance(key, int) else names.index(key) if key in names else None
        if i is None or not 0 <= i < len(names) or i in seen:
            raise UsageError(f"exit {key!r} is not a graph output (or is listed twice)",
                             f"the graph's outputs: {', '.join(names)} (or their indices)")
        if theta is not None and not 0 < float(theta) <= 1:
            raise UsageError(f"exit {key!r}: threshold {theta!r} must be in (0, 1]", "e.g. 0.9, or None for the last")
        if graph.outputs[i].producer is None:
            raise UsageError(f"exit {key!r} is a graph input or a constant, not computed by the model")
        seen.add(i)
        out.append(Exit(i, None if theta is None else float(theta)))
    missing = [names[i] for i in range(len(names)) if i not in seen]
    if missing:
        raise UsageError(f"graph outputs {', '.join(missing)} are not exits", "list every output in exits=")
    return out[:-1] + [Exit(out[-1].output, None)] if out else out


def confidence_test(v: Value, threshold: float) -> Test:
    """The test that exit result `v` passes when its confidence is at least `threshold`."""
    kind = "probs" if v.producer is not None and v.producer.op in ("softmax", "qsoftmax") else "logits"
    q = v.type.quant
    if v.dtype.value == "f32" and q is None:
        return Test(kind, "f32", float(np.float32(threshold if kind == "probs" else 1 / threshold)))
    if v.dtype.value != "i8" or q is None or q.axis is not None:
        raise UsageError(f"exit %{v.name}: confidence tests take float or per-tensor int8 scores, not {v.dtype.value}",
                         "make the exit heads' outputs float or int8 (io='float' or 'int8')")
    s, zp = float(q.scale[0]), int(q.zero_point[0])
    if kind == "probs":
        return Test(kind, "i8", min(math.ceil(threshold / s + zp - 1e-9), 128))
    table = np.round(ONE * np.exp(-s * np.arange(256))).astype(np.int32)
    return Test(kind, "i8", math.floor(ONE / threshold), table[:int(np.count_nonzero(table))])


def confident(test: Test, scores: np.ndarray) -> bool:
    """Whether `scores` pass `test` (the C helpers in templates/early_exit.c.j2 compute the same)."""
    x = np.ravel(scores)
    if test.kind == "probs":
        return bool(x.max() >= test.bound)
    if test.dtype == "i8":
        d = np.minimum(int(x.max()) - x.astype(np.int64), len(test.table))  # beyond the table: exp rounds to 0
        return int(np.append(test.table, 0)[d].sum()) <= test.bound
    return bool(np.cumsum(np.exp(x - x.max()), dtype=np.float32)[-1] <= np.float32(test.bound))


def order(graph: Graph, exits: list[Exit]) -> bool:
    """Reorders the nodes so each exit's result is computed as early as possible (module
    docstring); returns whether the order changed."""
    group: dict[int, int] = {}  # id(node) -> index of the first exit that needs it
    for k, e in enumerate(exits):
        stack = [graph.outputs[e.output].producer]
        while stack:
            n = stack.pop()
            if n is not None and id(n) not in group:
                group[id(n)] = k
                stack.extend(v.producer for v in n.inputs)
    nodes = graph.nodes
    new = sorted(nodes, key=lambda n: group.get(id(n), len(exits)))  # stable: each group keeps its order
    graph.reorder(new)
    return any(a is not b for a, b in zip(new, nodes))


def run_exits(graph: Graph, exits, *inputs) -> tuple[int, list, int]:
    """Runs `graph` node by node, in its order, until the first confident exit ->
    (index of that exit in `exits`, the graph's outputs (None for those not computed), MACs
    spent). `exits` is a list of Exit or the dict `resolve` takes."""
    from .cost import macs
    from .interpreter import run
    exits = exits if isinstance(exits, list) else resolve(graph, exits)
    at = {id(graph.outputs[e.output].producer): (k, e) for k, e in enumerate(exits)}
    spent, taken = 0, []

    def until(n, value) -> bool:
        nonlocal spent
        spent += macs(n)
        k, e = at.get(id(n), (None, None))
        v = graph.outputs[e.output] if e else None
        if e is not None and (e.threshold is None or confident(confidence_test(v, e.threshold), value(v))):
            taken.append(k)
        return bool(taken)

    outputs = run(graph, *inputs, until=until)
    if not taken:
        raise UsageError("no exit was reached", "the last exit is always taken: is every output an exit?")
    return taken[0], outputs, spent


@dataclass
class ExitStats:
    average_macs: float
    full_macs: int  # MACs of the whole graph
    taken: list[int]  # per exit: how many samples left there
    exits: list[int]  # per sample: the exit taken
    outputs: list[np.ndarray]  # per sample: the result of the exit taken


def quantize_input(v: Value, x) -> np.ndarray:
    """A sample for graph input `v`: float data quantized for an integer input (the `quantize`
    op's semantics), a missing batch dimension of 1 added."""
    from .interpreter import quantize
    x = np.asarray(x)
    x = x.reshape(v.shape) if x.size == v.type.numel else x
    q, dt = v.type.quant, v.dtype.np
    if q is not None and np.issubdtype(dt, np.integer) and np.issubdtype(x.dtype, np.floating):
        return quantize(x, scale=q.scale, zero_point=q.zero_point, axis=q.axis, dtype=v.dtype.value)
    return x.astype(dt)


def run_dataset(graph: Graph, dataset, exits) -> ExitStats:
    """`run_exits` over `dataset` (samples: arrays or tuples of arrays, float data quantized for
    int8 inputs), with the thresholds of `exits`."""
    from .cost import macs
    exits = exits if isinstance(exits, list) else resolve(graph, exits)
    stats = ExitStats(0.0, sum(macs(n) for n in graph.nodes), [0] * len(exits), [], [])
    for sample in dataset:
        xs = [quantize_input(v, x) for v, x in zip(graph.inputs, sample if isinstance(sample, tuple) else (sample,))]
        k, outputs, spent = run_exits(graph, exits, *xs)
        stats.taken[k] += 1
        stats.exits.append(k)
        stats.outputs.append(outputs[exits[k].output])
        stats.average_macs += spent
    stats.average_macs /= max(len(stats.exits), 1)
    return stats


def average_macs(graph: Graph, dataset, exits) -> float:
    """Mean MACs per sample of `dataset` when inference stops at the first confident exit."""
    return run_dataset(graph, dataset, exits).average_macs
