"""The IR data model: a graph of `Node`s that consume and produce `Value`s (SSA tensors).

- A `Value` has a name, a `TensorType`, at most one producer, and a use list (`users`, with a
  node listed once per operand slot it fills). A constant is a Value holding a read-only numpy
  array in `data`; constants are not nodes, so they disappear with their last user.
- A `Node` has an op name from `ops.OPS`, operand and result Values, and attributes completed
  with the op's defaults. `meta` carries non-semantic facts (the source location from fx).
- The `Graph` keeps its nodes in a topological order, its inputs and outputs explicitly, and
  unique value names. All mutation goes through the Graph so use lists stay right.
- A `State` is a tensor kept across invocations (a streaming model's ring buffer, an RNN's hidden
  state): its `read` Value holds it at the start of an invocation (no node produces it, like an
  input), its `write` is what it holds at the start of the next (live to the end, like an
  output), and `init` is its value before the first invocation and after a reset.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from . import ops as _ops
from .types import DType, QuantParams, TensorType, check_size

_NAME_OK = re.compile(r"[^A-Za-z0-9_.]")


class Value:
    __slots__ = ("name", "type", "producer", "data", "users")

    def __init__(self, name: str, type: TensorType, producer: "Node | None" = None, data=None):
        self.name = name
        self.type = type
        self.producer = producer
        self.data = data
        self.users: list[Node] = []

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def is_const(self) -> bool:
        return self.data is not None

    def __repr__(self):
        kind = "const " if self.is_const else ""
        return f"<Value %{self.name}: {kind}{self.type.dtype.value}{list(self.shape)}>"


class Node:
    __slots__ = ("op", "inputs", "outputs", "attrs", "meta", "graph")

    def __init__(self, op: str, inputs: list[Value], outputs: list[Value], attrs: dict, meta: dict | None = None):
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
        self.attrs = attrs
        self.meta = meta or {}
        self.graph: Graph | None = None

    @property
    def name(self) -> str:
        """A node is named after its first result."""
        return self.outputs[0].name

    @property
    def output(self) -> Value:
        assert len(self.outputs) == 1, f"{self.op} has {len(self.outputs)} results"
        return self.outputs[0]

    @property
    def opdef(self) -> _ops.OpDef:
        return _ops.get(self.op)

    def __repr__(self):
        return f"<Node %{self.name} = {self.op}({', '.join('%' + v.name for v in self.inputs)})>"


@dataclass(eq=False)
class State:
    """A tensor kept across invocations (see the module docstring)."""

    read: Value
    write: Value | None
    init: np.ndarray


def _initial(type: TensorType, init) -> np.ndarray:
    """A state's read-only initial value: `init`, or real zero (the zero point if quantized)."""
    zero = type.quant.zero_point[0] if type.quant is not None and type.quant.axis is None else 0
    init = np.full(type.shape, zero, type.dtype.np) if init is None else np.array(init, type.dtype.np)
    init.flags.writeable = False
    return init


class Graph:
    def __init__(self, name: str = "main"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.states: list[State] = []
        self._nodes: list[Node] = []
        self._dirty = False  # erased nodes still in _nodes, or nodes waiting in _pending
        self._pending: dict[Node, list[Node]] = {}  # nodes to insert just before a node; O(1) inserts
        self._names: set[str] = set()
        self._counters: dict[str, int] = {}

    # ------------------------------------------------------------------ names
    def unique_name(self, base: str) -> str:
        base = _NAME_OK.sub("_", base) or "v"
        if base not in self._names:
            self._names.add(base)
            return base
        n = self._counters.get(base, 0)
        while True:
            n += 1
            cand = f"{base}_{n}"
            if cand not in self._names:
                self._counters[base] = n
                self._names.add(cand)
                return cand

    def rename(self, v: Value, name: str) -> str:
        """Give `v` the name `name` (made unique); returns the name it got."""
        if v.name != name:
            self._names.discard(v.name)
            v.name = self.unique_name(name)
        return v.name

    def reclaim_name(self, v: Value):
        """Drop the `_N` suffix `unique_name` gave `v` once the base name is free again (its holder
        was erased), so a node that replaces another keeps the original name."""
        base, sep, n = v.name.rpartition("_")
        if sep and n.isdigit() and base not in self._names:
            self.rename(v, base)

    # ------------------------------------------------------------------ building
    def add_input(self, name: str, type: TensorType) -> Value:
        check_size(type.shape, type.dtype.itemsize, f"graph input {name!r}")
        v = Value(self.unique_name(name), type)
        self.inputs.append(v)
        return v

    def add_state(self, name: str, type: TensorType, init=None) -> Value:
        """A new state of `type` starting at `init` (None: real zero, the zero point if quantized);
        returns its read Value. Its write is set with `set_state_write`."""
        v = Value(self.unique_name(name), type)
        self.states.append(State(v, None, _initial(type, init)))
        return v

    def feed_back(self, input: Value, output: Value, init=None):
        """Graph input `input` becomes a state written from graph output `output`, which stops
        being an output: a hidden state that the model takes and returns, carried by the runtime."""
        self.inputs.remove(input)
        self.outputs.remove(output)
        self.states.append(State(input, output, _initial(input.type, init)))

    def state(self, read: Value) -> State | None:
        """The State whose read Value is `read`, or None."""
        return next((s for s in self.states if s.read is read), None)

    def set_state_write(self, read: Value, write: Value):
        self.state(read).write = write

    def const(self, array, name: str = "const", dtype: DType | None = None, quant: QuantParams | None = None) -> Value:
        """A constant Value holding a read-only copy of `array`."""
        arr = np.array(array, dtype=dtype.np if dtype else None)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        arr.flags.writeable = False
        return Value(self.unique_name(name), TensorType(arr.shape, DType.from_numpy(arr.dtype), quant), data=arr)

    def add_node(self, op: str, inputs: Sequence[Value], attrs: dict | None = None, *, name: str | None = None,
                 out_types: Sequence[TensorType] | None = None, before: Node | None = None,
                 meta: dict | None = None) -> Node:
        """Create a node; result types come from the op table (`OpDef.result_types`: the shape
        rule, and the first operand's dtype unless the op says otherwise) or from `out_types`. Names are made unique from `name` (or the op
        name). The node goes at the end, or just before `before` to keep a topological order.
        """
        if before is not None and before.graph is not self:
            raise ValueError(f"cannot insert before {before}: it is not in this graph")
        d = _ops.get(op)
        attrs = d.full_attrs(dict(attrs or {}))
        inputs = list(inputs)
        if out_types is None:
            out_types = d.result_types([v.type for v in inputs], attrs)
        base = name or op
        for t in out_types:  # before any pass or the interpreter allocates a result of a giant shape rule
            check_size(t.shape, t.dtype.itemsize, f"the result of {op} node {base!r}")
        outs = [Value(self.unique_name(base if i == 0 else f"{base}.{i}"), t) for i, t in enumerate(out_types)]
        node = Node(op, inputs, outs, attrs, meta)
        for v in outs:
            v.producer = node
        for v in inputs:
            v.users.append(node)
        node.graph = self
        if before is None:
            self._nodes.append(node)
        else:
            self._pending.setdefault(before, []).append(node)
            self._dirty = True
        return node

    def op(self, op: str, inputs: Sequence[Value], attrs: dict | None = None, **kw) -> Value | tuple[Value, ...]:
        """`add_node` returning the result Value (or a tuple of them for multi-result ops)."""
        n = self.add_node(op, inputs, attrs, **kw)
        return n.outputs[0] if len(n.outputs) == 1 else tuple(n.outputs)

    # ------------------------------------------------------------------ queries
    @property
    def nodes(self) -> list[Node]:
        """The nodes in topological order (a fresh list: safe to mutate the graph while iterating)."""
        if self._dirty:
            self._nodes = [m for n in self._nodes for m in self._with_pending(n) if m.graph is self]
            self._dirty = False
        return list(self._nodes)

    def _with_pending(self, node: Node):
        for p in self._pending.pop(node, ()):
            yield from self._with_pending(p)
        yield node

    def __len__(self):
        return len(self.nodes)

    def constants(self) -> list[Value]:
        """Constant Values in order of first use (by nodes, then by graph outputs)."""
        seen: dict[int, Value] = {}
        for n in self.nodes:
            for v in n.inputs:
                if v.is_const and id(v) not in seen:
                    seen[id(v)] = v
        for v in [*self.outputs, *(s.write for s in self.states)]:
            if v is not None and v.is_const and id(v) not in seen:
                seen[id(v)] = v
        return list(seen.values())

    def values(self) -> list[Value]:
        """Every Value: inputs, state reads, constants, then node results in order."""
        return [*self.inputs, *(s.read for s in self.states), *self.constants(),
                *(v for n in self.nodes for v in n.outputs)]

    def find(self, name: str) -> Node:
        for n in self.nodes:
            if any(v.name == name for v in n.outputs):
                return n
        raise KeyError(f"no node named {name}")

    def is_output(self, v: Value) -> bool:
        return any(o is v for o in self.outputs)

    def escapes(self, v: Value) -> bool:
        """Whether `v` is seen outside the graph's nodes: a graph output or a state's write (a
        rewrite must keep its value, not only its users' results)."""
        return self.is_output(v) or any(s.write is v for s in self.states)

    def has_uses(self, v: Value) -> bool:
        """Whether a node, a graph output or a state's write uses `v`."""
        return bool(v.users) or self.escapes(v)

    def count(self, op: str | None = None) -> int | dict[str, int]:
        """Number of `op` nodes, or a {op: count} table when op is None."""
        if op is not None:
            return sum(n.op == op for n in self.nodes)
        table: dict[str, int] = {}
        for n in self.nodes:
            table[n.op] = table.get(n.op, 0) + 1
        return dict(sorted(table.items()))

    # ------------------------------------------------------------------ mutation
    def set_input(self, node: Node, index: int, value: Value):
        old = node.inputs[index]
        old.users.remove(node)
        node.inputs[index] = value
        value.users.append(node)

    def set_inputs(self, node: Node, values: Iterable[Value]):
        for v in node.inputs:
            v.users.remove(node)
        node.inputs = list(values)
        for v in node.inputs:
            v.users.append(node)

    def replace_all_uses(self, old: Value, new: Value):
        """Point every use of `old` (operands and graph outputs) at `new`."""
        if old is new:
            return
        for user in old.users:
            user.inputs = [new if v is old else v for v in user.inputs]
        new.users.extend(old.users)  # a user is listed once per operand slot, on both sides
        old.users.clear()
        self.outputs = [new if o is old else o for o in self.outputs]
        for s in self.states:
            s.write = new if s.write is old else s.write

    def erase(self, node: Node):
        """Remove a node whose results have no uses."""
        for v in node.outputs:
            if self.has_uses(v):
                raise ValueError(f"cannot erase {node}: result %{v.name} is still used")
        for v in node.inputs:
            v.users.remove(node)
        for v in node.outputs:
            self._names.discard(v.name)  # the name is free for a replacement
        node.graph = None
        self._dirty = True

    def replace_node(self, node: Node, new_values: Sequence[Value]):
        """Replace every use of `node`'s results by `new_values`, then erase it."""
        for old, new in zip(node.outputs, new_values, strict=True):
            self.replace_all_uses(old, new)
        self.erase(node)

    def toposort(self):
        """Restore a topological order after mutation, keeping the current order where it is valid."""
        nodes = self.nodes
        pos = {id(n): i for i, n in enumerate(nodes)}
        indeg = {id(n): 0 for n in nodes}
        for n in nodes:
            indeg[id(n)] = len({id(v.producer) for v in n.inputs if v.producer is not None and id(v.producer) in pos})
        import heapq
        ready = [(pos[id(n)], n) for n in nodes if indeg[id(n)] == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, n = heapq.heappop(ready)
            order.append(n)
            for user in {id(u): u for v in n.outputs for u in v.users}.values():
                if id(user) in indeg:
                    indeg[id(user)] -= 1
                    if indeg[id(user)] == 0:
                        heapq.heappush(ready, (pos[id(user)], user))
        if len(order) != len(nodes):
            raise ValueError("graph has a cycle")
        self._nodes = order

    def reorder(self, nodes: Sequence[Node]):
        """Adopt `nodes`, a topological order of exactly this graph's nodes, as the node order."""
        if sorted(map(id, nodes)) != sorted(map(id, self.nodes)):
            raise ValueError("reorder needs every node of the graph exactly once")
        self._nodes = list(nodes)

    def dce(self) -> int:
        """Erase nodes whose results are unused; returns how many were erased."""
        erased = 0
        for n in reversed(self.nodes):
            if not any(self.has_uses(v) for v in n.outputs):
                self.erase(n)
                erased += 1
        return erased

    def clone(self) -> "Graph":
        """A structural deep copy; constant arrays (read-only) are shared."""
        g = Graph(self.name)
        g._names = set(self._names)
        g._counters = dict(self._counters)
        vmap: dict[int, Value] = {}

        def copy(v: Value) -> Value:
            if id(v) not in vmap:
                vmap[id(v)] = Value(v.name, v.type, data=v.data)
            return vmap[id(v)]

        g.inputs = [copy(v) for v in self.inputs]
        g.states = [State(copy(s.read), None, s.init) for s in self.states]
        for n in self.nodes:
            new = Node(n.op, [copy(v) for v in n.inputs], [copy(v) for v in n.outputs], dict(n.attrs), dict(n.meta))
            for v in new.outputs:
                v.producer = new
            for v in new.inputs:
                v.users.append(new)
            new.graph = g
            g._nodes.append(new)
        g.outputs = [copy(v) for v in self.outputs]
        for new, s in zip(g.states, self.states):
            new.write = s.write and copy(s.write)
        return g

    def __str__(self):
        from .printer import print_graph
        return print_graph(self)
