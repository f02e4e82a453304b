"""Channel dependency groups: which channels of a float graph must be removed together.

Removing output channel i of a conv also removes row i of its bias, channel i of the batch norm
after it and input channel i of every conv that reads it; through a residual `add` it removes
channel i of the other operand too, through a `concat` the matching slice of the result, and so
on. `analyze(graph)` finds these couplings without changing the graph:

- Every tensor axis that could lose channels is a *slot* (a Value and an axis): the channel axis
  of an activation as its producer defines it (conv: the layout's, linear: the last), and any
  axis of a constant (weights, biases, BN statistics, per-channel operands). Each index of a slot
  is an atom; op rules tie atoms that must go together (union-find), and the connected atoms
  form one removable unit.
- Op rules: conv/linear tie weight rows to output channels and weight columns to input channels;
  a grouped conv (groups > 1, depthwise included) ties all input and output channels of each of
  its groups, so whole groups go and `groups` shrinks; batch_norm, elementwise, pooling, pad
  (not on channels), resize, layer_norm/softmax/mean (not over channels) pass channels through;
  binary ops tie their operands (broadcasting aligned from the right); concat and split map
  channels to offset ranges; slice (step 1) to its window; transpose moves the axis. A reshape
  is followed exactly: the index of each input channel is pushed through it, the output axis that
  carries the channels is the largest axis they vary along, and every other channel that shares
  an output index is tied to it. So a flatten before a linear maps channel c to the c-th block of
  features, and a channel shuffle (reshape, transpose, reshape) ties channel k of each shuffle
  group together and follows the permutation. A reshape whose output indices share some but
  not all of their channels is refused (see `_reshape`).
- Units with the same slots form a `Group`; channel i of a group is its i-th unit, and each
  `Member` says which indices of its slot belong to each channel (`index[i]`, several when a
  channel spreads over a block, as after a flatten or in a grouped conv).
- A group is `frozen`, with reasons, when it reaches a graph input or output, an axis that its
  producer does not treat as channels, an op that mixes channels (softmax or mean over them,
  layer_norm over them, matmul, quantized ops), or a reshape it cannot follow.

`remove_channels(graph, group, channels)` applies a removal: it deletes the mapped indices from
every constant and every activation type, updates `groups`, reshape shapes, split sizes and
slice windows, checks every touched node against the op table, and renumbers the other groups.
Limits: float graphs (quantized constants are refused by the pruning pass); one channel axis per
activation; slices with a step other than 1 along channels are frozen.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..errors import ShapeError
from ..ir import ops
from ..ir.graph import Graph, Node, Value

LAYERS = ("conv1d", "conv2d", "conv_transpose2d", "linear")
_FLOAT = frozenset(ops.OPS) - ops.with_tag("integer") - ops.with_tag("quant")
_PASS_THROUGH = (ops.with_tag("elementwise") - ops.with_tag("binary")) & _FLOAT  # unary, channel by channel
_SPATIAL = (ops.with_tag("pool") | {"resize"}) & _FLOAT  # compute over the layout's spatial axes only
_FOLLOWED = _PASS_THROUGH | _SPATIAL | {"pad", "softmax", "log_softmax", "layer_norm", "mean", "transpose",
                                        "split", "slice", "reshape"}


@dataclass
class Member:
    """Axis `axis` of `value`; channel i of the group is `index[i]` (an (n, k) array) along it.
    `role` says what a constant is: "weight" (of a conv or linear), "bn_scale", or ""."""

    value: Value
    axis: int
    index: np.ndarray
    role: str = ""


@dataclass
class Group:
    """Channels that are removed together; `frozen` lists why they must not be removed."""

    id: int
    members: list[Member]
    layers: list[str] = field(default_factory=list)  # conv/linear nodes whose output channels these are
    frozen: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.members[0].index)

    def __str__(self):
        spans = ", ".join(f"%{m.value.name}[{m.axis}]" for m in self.members)
        state = f" frozen: {'; '.join(self.frozen)}" if self.frozen else ""
        return f"group {self.id} ({self.size} channels of {', '.join(self.layers) or '-'}): {spans}{state}"


@dataclass
class _Slot:
    value: Value
    axis: int
    base: int  # its first atom
    role: str = ""


class _Builder:
    """Union-find over the atoms of every slot, filled by one visit of the nodes in order."""

    def __init__(self):
        self.parent: list[int] = []
        self.slots: dict[tuple[int, int], _Slot] = {}
        self.owned: dict[int, int] = {}  # id(value) -> its channel axis, as its producer defines it
        self.frozen: list[tuple[_Slot, str]] = []

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = a = self.parent[self.parent[a]]
        return a

    def slot(self, v: Value, axis: int, role: str = "") -> _Slot:
        axis %= len(v.shape)
        key = (id(v), axis)
        if key not in self.slots:
            s = self.slots[key] = _Slot(v, axis, len(self.parent), role)
            self.parent.extend(range(s.base, s.base + v.shape[axis]))
            if not v.is_const and self.owned.get(id(v)) != axis:
                p = v.producer
                self.freeze(s, f"comes from graph input %{v.name}" if p is None else
                            f"axis {axis} of %{v.name} is not a channel axis of {p.op} %{p.name}")
        return self.slots[key]

    def own(self, v: Value, axis: int) -> _Slot:
        self.owned[id(v)] = axis % len(v.shape)
        return self.slot(v, axis)

    def tie(self, s: _Slot, i, t: _Slot, j):
        """Tie atoms i of slot s to atoms j of slot t (index arrays, broadcast)."""
        for a, b in np.broadcast(np.asarray(i) + s.base, np.asarray(j) + t.base):
            ra, rb = self.find(int(a)), self.find(int(b))
            if ra != rb:
                self.parent[ra] = rb

    def same(self, s: _Slot, t: _Slot, offset: int = 0):
        n = s.value.shape[s.axis]
        self.tie(s, np.arange(n), t, np.arange(n) + offset)

    def freeze(self, s: _Slot, reason: str):
        self.frozen.append((s, reason))

    def freeze_inputs(self, n: Node, reason: str):
        for v in n.inputs:
            if id(v) in self.owned:
                self.freeze(self.slot(v, self.owned[id(v)]), reason)


# ---------------------------------------------------------------- op rules

def _axes(n: Node) -> tuple[int, int, int, int]:
    """(activation channel axis, weight axis of outputs, weight axis of inputs, groups) of a layer."""
    if n.op == "linear":
        return len(n.inputs[0].shape) - 1, 0, 1, 1
    layout, rank = n.attrs["layout"], len(n.inputs[1].shape)
    nhwc = layout[1] != "C"
    if n.op == "conv_transpose2d":  # (I, O/g, kH, kW) or (O/g, kH, kW, I)
        w_out, w_in = (0, 3) if nhwc else (1, 0)
    else:  # (O, I/g, ...) or (O, ..., I/g)
        w_out, w_in = 0, (rank - 1 if nhwc else 1)
    return ops.channel_axis(layout) % rank, w_out, w_in, n.attrs["groups"]


def _layer(b: _Builder, n: Node):
    (x, w, *bias), y = n.inputs, n.output
    c, w_out, w_in, groups = _axes(n)
    sx, sy = b.slot(x, c), b.own(y, c)
    if groups == 1:
        b.same(b.slot(w, w_out, "weight"), sy)
        b.same(b.slot(w, w_in, "weight"), sx)
    else:  # every channel of a group, in and out, is one unit: whole groups go
        m_in, m_out = x.shape[c] // groups, y.shape[c] // groups
        b.tie(sx, np.arange(x.shape[c]), sy, np.arange(x.shape[c]) // m_in * m_out)
        b.tie(sy, np.arange(y.shape[c]), sy, np.arange(y.shape[c]) // m_out * m_out)
        weight_axis, weight_slot = (w_in, sx) if n.op == "conv_transpose2d" else (w_out, sy)
        b.same(b.slot(w, weight_axis, "weight"), weight_slot)
    for v in bias:
        b.same(b.slot(v, 0), sy)


def _pass_through(b: _Builder, n: Node, a: int | None, out_axis: int | None = None):
    """Output channel i is input channel i, on axis `out_axis` (default: the same axis)."""
    if a is not None:
        b.same(b.slot(n.inputs[0], a), b.own(n.output, a if out_axis is None else out_axis))


def _mixes(b: _Builder, n: Node, a: int | None, axes) -> bool:
    """Freeze the input if `n` computes across its channel axis `a` (one of `axes`)."""
    if a is not None and a in axes:
        b.freeze_inputs(n, f"{n.op} %{n.name} mixes the channels on axis {a}")
        return True
    return False


def _operands_axis(b: _Builder, n: Node) -> int | None:
    """The result's axis that holds the channels of all operands (aligned from the right, as
    broadcasting does), or None; operands with channels on different axes are frozen."""
    rank = len(n.output.shape)
    axes = {b.owned[id(v)] + rank - len(v.shape) for v in n.inputs if id(v) in b.owned}
    if len(axes) > 1:
        b.freeze_inputs(n, f"the operands of {n.op} %{n.name} have channels on different axes")
    return axes.pop() if len(axes) == 1 else None


def _binary(b: _Builder, n: Node, a: int):
    out, rank = b.own(n.output, a), len(n.output.shape)
    for v in n.inputs:
        va = a - (rank - len(v.shape))
        if va >= 0 and v.shape[va] == n.output.shape[a]:  # not broadcast along the channels
            b.same(b.slot(v, va), out)


def _concat(b: _Builder, n: Node, a: int):
    ax = ops.norm_axis(n.attrs["axis"], len(n.output.shape))
    out, offset = b.own(n.output, a), 0
    for v in n.inputs:
        b.same(b.slot(v, a), out, offset if a == ax else 0)
        offset += v.shape[ax]


def _split(b: _Builder, n: Node, a: int):
    ax, offset = ops.norm_axis(n.attrs["axis"], len(n.inputs[0].shape)), 0
    for y in n.outputs:
        b.same(b.own(y, a), b.slot(n.inputs[0], a), offset if a == ax else 0)
        offset += y.shape[ax]


def _slice(b: _Builder, n: Node, a: int):
    x = n.inputs[0]
    windows = {ops.norm_axis(ax, len(x.shape)): (st, en, sp)
               for ax, st, en, sp in zip(*(n.attrs[k] for k in ("axes", "starts", "ends", "steps")))}
    if a not in windows:
        return _pass_through(b, n, a)
    start, _, step = slice(*windows[a]).indices(x.shape[a])
    if step != 1:
        return b.freeze_inputs(n, f"slice %{n.name} steps over channels by {step}")
    b.same(b.own(n.output, a), b.slot(x, a), start)


def _reshape(b: _Builder, n: Node, a: int):
    """Push the channel index of every element through the reshape; the output axis that carries
    channels is the largest one they vary along, and each of its indices is tied to the channels
    it holds. That is a valid removal when the channel sets of the output indices are equal or
    disjoint: removing such a set removes the same elements (in the same order, which a reshape
    keeps) from input and output, so the output stays the reshape of the input."""
    x, y = n.inputs[0], n.output
    ids = np.arange(x.shape[a]).reshape([-1 if i == a else 1 for i in range(len(x.shape))])
    out = np.broadcast_to(ids, x.shape).reshape(y.shape)
    varying = [i for i in range(len(y.shape)) if y.shape[i] > 1 and np.any(np.diff(out, axis=i))]
    ax = max(varying, key=lambda i: y.shape[i], default=None)
    rows = None if ax is None else np.unique(np.moveaxis(out, ax, 0).reshape(y.shape[ax], -1), axis=1)
    sets = set() if rows is None else {frozenset(r.tolist()) for r in rows}
    if not sets or sum(map(len, sets)) != len(frozenset().union(*sets)):
        return b.freeze_inputs(n, f"reshape %{n.name} mixes channels in a way that cannot be followed")
    b.tie(b.own(y, ax), np.arange(len(rows))[:, None], b.slot(x, a), rows)


def _visit(b: _Builder, n: Node):
    x = n.inputs[0] if n.inputs else None
    a = b.owned.get(id(x)) if x is not None else None
    rank = len(x.shape) if x is not None else 0
    op, attrs = n.op, n.attrs
    if op in LAYERS:
        _layer(b, n)
    elif op == "batch_norm":
        _pass_through(b, n, a)
        xs = b.slot(x, attrs["axis"])
        for v, role in zip(n.inputs[1:], ("bn_scale", "", "", "")):
            b.same(b.slot(v, 0, role), xs)
    elif op in ops.with_tag("binary") & _FLOAT or op == "concat":
        common = _operands_axis(b, n)
        if common is not None:
            (_concat if op == "concat" else _binary)(b, n, common)
    elif op not in _FOLLOWED:
        b.freeze_inputs(n, f"{op} %{n.name} is not followed by the channel analysis")
    elif a is None:
        return  # no channels to follow
    elif op in _PASS_THROUGH:
        _pass_through(b, n, a)
    elif op in _SPATIAL:
        if not _mixes(b, n, a, ops.spatial_axes(attrs["layout"], rank)):
            _pass_through(b, n, a)
    elif op == "pad":
        if not _mixes(b, n, a, [i for i in range(rank) if attrs["pads"][i] or attrs["pads"][rank + i]]):
            _pass_through(b, n, a)
    elif op in ("softmax", "log_softmax", "layer_norm"):
        start = ops.norm_axis(attrs["axis"], rank)
        if not _mixes(b, n, a, [start] if op != "layer_norm" else range(start, rank)):
            _pass_through(b, n, a)
    elif op == "mean":
        axes = {ops.norm_axis(i, rank) for i in attrs["axes"]}
        if not _mixes(b, n, a, axes):
            _pass_through(b, n, a, a if attrs["keepdims"] else a - sum(i < a for i in axes))
    elif op == "transpose":
        _pass_through(b, n, a, list(attrs["perm"]).index(a))
    elif op == "split":
        _split(b, n, a)
    elif op == "slice":
        _slice(b, n, a)
    else:
        _reshape(b, n, a)


def analyze(graph: Graph) -> list[Group]:
    """The channel groups of `graph`, in order of first appearance (see the module docstring)."""
    b = _Builder()
    for n in graph.nodes:
        _visit(b, n)
    for v in graph.outputs:
        for (vid, _), s in list(b.slots.items()):
            if vid == id(v):
                b.freeze(s, f"reaches graph output %{v.name}")
    slots = sorted(b.slots.values(), key=lambda s: s.base)
    atom_slot = np.repeat(np.arange(len(slots)), [s.value.shape[s.axis] for s in slots])
    roots = np.array([b.find(i) for i in range(len(b.parent))], dtype=np.int64)
    order = np.lexsort((np.arange(len(roots)), roots))  # atoms by unit, then by id (so by slot)
    keys, starts, counts = np.unique(roots[order] * len(slots) + atom_slot[order], return_index=True,
                                     return_counts=True)
    parts: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # unit -> [(slot, start, count)]
    for key, start, count in zip(keys.tolist(), starts.tolist(), counts.tolist()):
        parts[key // len(slots)].append((key % len(slots), start, count))
    reasons: dict[int, list[str]] = defaultdict(list)
    for s, why in b.frozen:
        for root in np.unique(roots[s.base:s.base + s.value.shape[s.axis]]).tolist():
            if why and why not in reasons[root]:
                reasons[root].append(why)
    by_signature: dict[tuple, list[int]] = {}  # units with the same slots and atoms per slot
    for root in sorted(parts, key=lambda r: order[parts[r][0][1]]):  # by first atom
        by_signature.setdefault(tuple((si, k) for si, _, k in parts[root]), []).append(root)
    groups = []
    for signature, units in by_signature.items():
        members = []
        for j, (si, k) in enumerate(signature):
            first = np.array([parts[r][j][1] for r in units])
            index = order[first[:, None] + np.arange(k)] - slots[si].base
            members.append(Member(slots[si].value, slots[si].axis, index, slots[si].role))
        layers = [m.value.producer.name for m in members if not m.value.is_const and m.value.producer
                  and m.value.producer.op in LAYERS and b.owned.get(id(m.value)) == m.axis]
        frozen = list(dict.fromkeys(why for r in units for why in reasons.get(r, ())))
        groups.append(Group(len(groups), members, layers, frozen))
    return groups


# ---------------------------------------------------------------- removal

def remove_channels(graph: Graph, group: Group, channels, others: list[Group] = ()) -> None:
    """Delete channels `channels` (indices into the group) everywhere the group spans.

    Constants are sliced, activation types shrink, and the attributes that count channels follow
    (`groups` of grouped convs, reshape shapes, split sizes, slice windows); every touched node is
    checked against its op's shape rule. The index maps of `group` and `others` are renumbered
    so that later removals stay right.
    """
    channels = np.asarray(channels, dtype=np.int64)
    deleted: dict[tuple[int, int], np.ndarray] = {}
    touched: dict[int, Node] = {}
    for m in group.members:
        idx = np.unique(m.index[channels])
        deleted[(id(m.value), m.axis)] = idx
        shape = list(m.value.shape)
        shape[m.axis] -= len(idx)
        if m.value.is_const:
            data = np.delete(m.value.data, idx, m.axis)
            data.flags.writeable = False
            m.value.data = data
        m.value.type = m.value.type.with_shape(shape)
        for n in [m.value.producer, *m.value.users]:
            if n is not None:
                touched[id(n)] = n
    for g in {id(g): g for g in [group, *others]}.values():
        for m in g.members:
            gone = deleted.get((id(m.value), m.axis))
            if gone is not None:
                m.index = m.index - np.searchsorted(gone, m.index)
    for m in group.members:
        m.index = np.delete(m.index, channels, 0)
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    for n in sorted(touched.values(), key=lambda n: order[id(n)]):
        _refit(n, deleted)


def _refit(n: Node, deleted: dict):
    """Update the channel-counting attributes of `n` to its operands' new shapes, then check it."""
    a, x = n.attrs, n.inputs[0]
    if n.op in LAYERS and n.op != "linear" and a["groups"] > 1:  # the weight keeps the channels per group
        c, w_out, w_in, _ = _axes(n)
        transposed = n.op == "conv_transpose2d"
        a["groups"] = (n.output if transposed else x).shape[c] // n.inputs[1].shape[w_out if transposed else w_in]
    elif n.op == "reshape":
        a["shape"] = list(n.output.shape)
    elif n.op == "split":
        a["sizes"] = [y.shape[ops.norm_axis(a["axis"], len(x.shape))] for y in n.outputs]
    elif n.op == "slice":
        starts, ends = list(a["starts"]), list(a["ends"])
        for i, ax in enumerate(a["axes"]):
            ax = ops.norm_axis(ax, len(x.shape))
            gone = deleted.get((id(x), ax))
            if gone is not None:
                start, _, _ = slice(starts[i], ends[i], a["steps"][i]).indices(x.shape[ax] + len(gone))
                starts[i] = start - int(np.sum(gone < start))
                ends[i] = starts[i] + n.output.shape[ax]
        a["starts"], a["ends"] = starts, ends
    types = n.opdef.result_types([v.type for v in n.inputs], a)
    if [t.shape for t in types] != [v.shape for v in n.outputs]:
        raise ShapeError(n.name, f"removing channels left {n.op} with results {[t.shape for t in types]}, "
                                 f"expected {[v.shape for v in n.outputs]}")
