"""Deterministic text form of a graph; `parser.parse` reads it back (`print(parse(t)) == t`).

    graph @tiny(%x: f32[1,3,8,8]) -> (%y) {
      %w = const f32[4,3,3,3] b64"AAAA..."
      %b = const f32[4] [0.5, -1.0, 0.0, 2.0]
      %y = conv2d(%x, %w, %b) {stride=[1,1], pads=[1,1,1,1], dilation=[1,1], groups=1, act="relu", layout="NCHW"} : f32[1,4,8,8]
      return %y
    }

Constants with at most `INLINE` elements are written as a flat list of exact values, larger ones
as base64 of their little-endian bytes. `elide=True` writes a content hash instead (for dumps
and golden files; such text does not parse back). Attributes follow the op table's order.
Quantized types carry `<scale=..., zp=...>` or `<axis=0, scale=[...], zp=[...]>`.
A state is declared after the constants with its type and initial value (written as a constant's
data), `%h = state i8[1,4] [0, 0, 0, 0]`, and its write is given before the return: `update %h = %h2`.
"""
from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING

import numpy as np

from .types import TensorType

if TYPE_CHECKING:  # annotations only: graph.py's __str__ imports this module
    from .graph import Graph, Value

INLINE = 16


def format_scalar(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    if isinstance(x, str):
        return json.dumps(x)
    raise TypeError(f"cannot print attribute value {x!r}")


def format_attr(x) -> str:
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(format_attr(v) for v in x) + "]"
    return format_scalar(x)


def format_type(t: TensorType) -> str:
    s = f"{t.dtype.value}[{','.join(map(str, t.shape))}]"
    q = t.quant
    if q is not None:
        if q.axis is None:
            s += f"<scale={format_scalar(q.scale[0])}, zp={q.zero_point[0]}>"
        else:
            s += f"<axis={q.axis}, scale={format_attr(list(q.scale))}, zp={format_attr(list(q.zero_point))}>"
    return s


def format_const(v: Value, elide: bool, kind: str = "const", data=None) -> str:
    """`%name = const <type> <data>` (a state's declaration with `kind="state"` and its initial value)."""
    data = v.data if data is None else data
    if data.size <= INLINE:
        body = "[" + ", ".join(format_scalar(x) for x in data.reshape(-1).tolist()) + "]"
    elif elide:
        body = 'sha"' + hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()[:16] + '"'
    else:
        le = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
        body = 'b64"' + base64.b64encode(le.tobytes()).decode() + '"'
    return f"%{v.name} = {kind} {format_type(v.type)} {body}"


def print_graph(g: Graph, *, elide: bool = False, locs: bool = False) -> str:
    ins = ", ".join(f"%{v.name}: {format_type(v.type)}" for v in g.inputs)
    outs = ", ".join(f"%{v.name}" for v in g.outputs)
    lines = [f"graph @{g.name}({ins}) -> ({outs}) {{"]
    lines += ["  " + format_const(c, elide) for c in g.constants()]
    lines += ["  " + format_const(s.read, elide, "state", s.init) for s in g.states]
    for n in g.nodes:
        res = ", ".join(f"%{v.name}" for v in n.outputs)
        args = ", ".join(f"%{v.name}" for v in n.inputs)
        attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in n.attrs.items())
        types = ", ".join(format_type(v.type) for v in n.outputs)
        line = f"  {res} = {n.op}({args})" + (f" {{{attrs}}}" if attrs else "") + f" : {types}"
        if locs and n.meta.get("source"):
            line += f" loc({json.dumps(n.meta['source'])})"
        lines.append(line)
    lines += [f"  update %{s.read.name} = %{s.write.name if s.write is not None else '?'}" for s in g.states]
    lines += [f"  return {outs}", "}"]
    return "\n".join(lines) + "\n"
