"""lower-quantized: step 2 of quantization: `dequantize -> op -> quantize` becomes an integer op.

Input: a QDQ graph from the `quantize` pass (or any graph in that form). Each float op whose
operands are all dequantized (weights: constants behind a dequantize) and whose one use is a
quantize becomes its integer form reading the integer operands and producing the quantize's
type; kernel parameters (multipliers, shifts, clamps) come from `ir.quant`, the one place they
are computed. Data-movement ops (pools, reshape, transpose, pad, slice, split, concat, resize,
relu/relu6/clamp) run unchanged on integers; where an input's parameters differ from the
output's, a `requantize` rescales it first (concat). Ops marked `meta["float"]` (float islands,
see `quantize`) are left as they are, between their dequantize and quantize.

`io="int8"`: graph inputs and outputs become the integer tensors (the input quantize and the
output dequantize go away; names are kept). `io="float"`: the model keeps float inputs and
outputs, with a quantize/dequantize at the edges.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import Error, UsageError
from ..ir import ops, quant
from ..ir.graph import Graph, Node, Value
from ..ir.pattern import Pat, Rule, rewrite
from ..ir.quant import FIXED_OUTPUT, INT8_ONLY, INTEGER_OP
from ..ir.types import DType, TensorType

SAME = {"max_pool1d", "max_pool2d", "reshape", "transpose", "concat", "split", "slice", "pad", "resize", "relu",
        "relu6", "clamp"}  # run unchanged on integer tensors
KEEPS_SCALE = (SAME - {"concat"}) | {"avg_pool1d", "avg_pool2d", "adaptive_avg_pool"}  # output params = input's
WEIGHTED = {"conv1d", "conv2d", "conv_transpose2d", "linear"}
CLAMPS = {"relu": lambda a: (0.0, math.inf), "relu6": lambda a: (0.0, 6.0), "clamp": lambda a: (a["min"], a["max"])}


def why_float(n: Node, dtype: str = "i8") -> str | None:
    """Why `n` cannot run in integer arithmetic (with `dtype` activations), or None if it can."""
    a = n.attrs
    if n.op == "adaptive_avg_pool":
        sizes = [n.inputs[0].shape[ax] for ax in ops.spatial_axes(a["layout"], n.inputs[0].type.rank)]
        if any(s % o for s, o in zip(sizes, a["output_size"])):
            return f"adaptive pooling of {sizes} to {a['output_size']} has uneven windows"
    elif n.op not in SAME and INTEGER_OP.get(n.op) not in ops.OPS:
        return f"no integer kernel for {n.op}"
    if dtype != "i8" and n.op in INT8_ONLY:
        return f"TFLite Micro has no int16 {n.op} kernel"
    if n.op in WEIGHTED and not all(v.is_const for v in n.inputs[1:]):
        return "its weight or bias is not a constant"
    if n.op == "resize" and a["mode"] != "nearest":
        return f"{a['mode']} resize has no integer kernel"
    if n.op.startswith("avg_pool") and a["count_include_pad"] and any(a["pads"]):
        return "it averages over zero padding (count_include_pad); integer pooling averages the valid taps only"
    if n.op.endswith("softmax") and ops.norm_axis(a["axis"], n.inputs[0].type.rank) != n.inputs[0].type.rank - 1:
        return f"integer {n.op} works along the last axis only"
    if any(v.dtype != DType.f32 for v in n.inputs + n.outputs if not v.is_const):
        return "it operates on non-float values"
    return None


# ---------------------------------------------------------------- lowering rules

def _qp(v: Value) -> tuple[float, int]:
    return v.type.quant.scale[0], v.type.quant.zero_point[0]


def _dequantized(values: list[Value]) -> list[Value] | None:
    """The integer values behind `values` if each is a dequantize result, else None."""
    ints = [v.producer.inputs[0] for v in values if v.producer is not None and v.producer.op == "dequantize"]
    return ints if len(ints) == len(values) else None


def _at(g: Graph, x: Value, out: Value, before: Node) -> Value:
    """`x`, requantized to `out`'s parameters if they differ."""
    if x.type.quant == out.type.quant:
        return x
    attrs = quant.params("requantize", [x.type], out.type)
    return g.op("requantize", [x], attrs, out_types=[TensorType(x.shape, out.dtype, out.type.quant)],
                name=f"{x.name}_rq", before=before)


def _saturated(real: float, out: Value) -> int:
    """`real` quantized with `out`'s parameters (in float32, as `quantize` does), saturated."""
    s, zp = _qp(out)
    info = np.iinfo(out.dtype.np)
    if not math.isfinite(real):
        return int(info.max if real > 0 else info.min)
    return int(np.clip(quant.round_half_away(float(np.float32(real) / np.float32(s))) + zp, info.min, info.max))


def _attrs(y: Node, x: list[Value], out: Value) -> tuple[str, list[Value], dict] | None:
    """(integer op, operands, attributes) for float op `y` reading integer `x`, writing `out`."""
    a, dt = {k: v for k, v in y.attrs.items() if k not in ("act", "count_include_pad")}, out.dtype.value
    op = INTEGER_OP.get(y.op, y.op)
    if FIXED_OUTPUT.get(dt, {}).get(y.op, _qp(out)) != _qp(out):
        return None  # the integer kernel only writes its fixed output scale
    if op in quant.PARAMS and not op.startswith("qavg_pool"):  # the pools rescale their input first
        kept = {k: v for k, v in a.items() if k in ops.get(op).attrs}
        return op, x, {**kept, **quant.params(op, [v.type for v in x], out.type, y.attrs)}
    # the ops below keep their input's parameters: rescale the inputs that differ first
    x = [_at(y.graph, v, out, y) for v in x]
    if y.op == "adaptive_avg_pool":
        rank, nd = x[0].type.rank, len(a["output_size"])
        k = [x[0].shape[ax] // o for ax, o in zip(ops.spatial_axes(a["layout"], rank), a["output_size"])]
        op, a = f"qavg_pool{nd}d", dict(kernel=k, stride=k, pads=[0] * 2 * nd, layout=a["layout"])
    if op.startswith("qavg_pool"):
        return op, x, {**a, **quant.params(op, [v.type for v in x], out.type)}
    if y.op in CLAMPS:
        lo, hi = CLAMPS[y.op](y.attrs)
        return "clamp", x, {"min": _saturated(lo, out), "max": _saturated(hi, out)}
    if y.op == "pad":
        return op, x, {**a, "value": _saturated(a["value"], out)}
    return op, x, a


def lower_one(g: Graph, m):
    y, out = m.node("y"), m.root.output
    x = _dequantized(y.inputs)
    if x is None:
        return None
    try:
        lowered = _attrs(y, x, out)
    except Error as e:
        return m.miss(f"{y.op} %{y.name} stays float: {e.message}")
    if lowered is None:
        return m.miss(f"{y.op} %{y.name} stays float: its output is not at the kernel's fixed scale")
    op, operands, attrs = lowered
    if op not in ops.OPS:
        return None
    return m.replacement(op, operands, attrs, name=y.name, meta=dict(y.meta))


def requantize_one(g: Graph, m):
    """quantize(dequantize(x)) of an integer tensor x (mixed int8/int16 precision) -> requantize(x)."""
    x, out = m.root.inputs[0].producer.inputs[0], m.root.output
    if x.is_const or x.dtype == DType.f32:
        return None
    return m.replacement("requantize", [x], quant.params("requantize", [x.type], out.type),
                         name=m.root.name)


ROOT = Pat("quantize", [Pat(tuple((set(INTEGER_OP) | SAME | {"adaptive_avg_pool"}) - {"split"}), name="y",
                            one_use=True, predicate=lambda v: "float" not in v.producer.meta)])
RULES = [Rule(ROOT, lower_one, "lowered"), Rule(Pat("quantize", [Pat("dequantize")]), requantize_one, "requantized")]


def _lower_splits(g: Graph, ctx) -> bool:
    """split (several results, so not a pattern): quantize(split(dequantize(x))) -> split(x); a
    result nobody reads (an LSTM's forget gate at a zero cell state) needs no quantize."""
    changed = False
    for n in g.nodes:
        if n.op != "split" or "float" in n.meta:
            continue
        x = _dequantized(n.inputs)
        qs = [v.users[0] if len(v.users) == 1 and v.users[0].op == "quantize" else None if v.users else "unread"
              for v in n.outputs]
        if x is None or None in qs or any(g.is_output(v) for v in n.outputs):
            continue
        new = g.add_node("split", x, n.attrs, out_types=[x[0].type.with_shape(v.shape) for v in n.outputs],
                         name=n.name, meta=dict(n.meta), before=n)
        for q, v in zip(qs, new.outputs):
            if q != "unread":
                g.replace_all_uses(q.output, _at(g, v, q.output, q))
        g.dce()
        for v in new.outputs:
            g.reclaim_name(v)
        ctx.stat("lowered")
        changed = True
    return changed


def _integer_edges(g: Graph, io: str) -> bool:
    """io="int8": graph inputs take the type of their quantize, outputs drop their dequantize."""
    changed = False
    if io == "int8":
        for v in g.inputs:
            if len(v.users) == 1 and v.users[0].op == "quantize" and not g.escapes(v):
                q = v.users[0]
                v.type = q.output.type
                g.replace_all_uses(q.output, v)
                g.erase(q)
                changed = True
    outputs = list(g.outputs)
    for i, o in enumerate(outputs):
        d = o.producer
        if d is None or d.op != "dequantize" or d.inputs[0].is_const:
            continue
        x = d.inputs[0]
        if io == "int8" and not any(x is v for v in outputs + g.inputs):
            outputs[i] = x
            g.outputs = outputs
            g.erase(d)
            g.rename(x, o.name)
            changed = True
        elif io == "float" and x.name == f"{o.name}_float":
            g.rename(x, f"{o.name}_q")
    return changed


def lower_quantized(graph: Graph, ctx, io="int8") -> bool:
    """Turns dequantize -> op -> quantize into integer ops; io="int8" makes the graph's inputs and
    outputs integer, io="float" keeps them float with a quantize/dequantize at the edges.

    Preconditions: QDQ form (see the `quantize` pass). Preserves: what the QDQ graph computes, up
    to the integer kernels' rounding (within 1 LSB nearly everywhere); output names.
    """
    if io not in ("int8", "float"):
        raise UsageError(f"io must be 'int8' or 'float', got '{io}'", "int8: integer model inputs and outputs")
    changed = rewrite(graph, RULES, ctx)
    changed |= _lower_splits(graph, ctx)
    changed |= _integer_edges(graph, io)
    graph.dce()
    return changed
