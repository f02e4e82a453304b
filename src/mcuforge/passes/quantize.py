"""quantize: calibrated post-training quantization, step 1 of 2: quantize/dequantize insertion.

Runs the float graph on the calibration data (`analysis.calibrate`), then rewrites it into QDQ
form: a float graph in which every tensor that an integer op will read or write goes through
`quantize -> dequantize` with its final parameters, and the weights of those ops are int8
constants behind a `dequantize`. The QDQ graph computes what the integer graph will compute
(up to the integer kernels' rounding), can be printed (`print_after`) and exported to ONNX as
QuantizeLinear/DequantizeLinear, and is kept in `ctx.qdq_graph`. `lower-quantized`
then turns each `dequantize -> op -> quantize` into an integer op.

Scheme (TFLite's int8 specification, DESIGN.md "Numeric semantics"):
- activations asymmetric int8 per tensor from the observed range (which contains 0), or
  symmetric int16 for `scheme="int16x8"`; weights symmetric int8 in [-127, 127] per output
  channel (`per_channel=False`: per tensor); biases int32 (int64 for int16x8) at s_in * s_w.
  Other constant operands (of add, mul, ...) are quantized like activations, at their own range.
- a tensor whose only user is relu, relu6 or clamp gets that op's bounds intersected with its
  range (the clamp is then nearly free in integers); fused activations become output clamps.
- max/avg pools, reshape, transpose, pad, slice, split, resize, relu/relu6/clamp keep their
  input's parameters; softmax and sigmoid output at 1/256 with zero point -128, tanh at 1/128
  with 0, log_softmax at 16/256 with 127, TFLite's fixed output scales; int16 softmax, sigmoid
  and tanh at 1/32768 with 0 (int16x8 keeps log_softmax and hardswish float: TFLite Micro has no
  int16 kernels for them); concat and add/sub outputs get
  their own range (the lowering rescales inputs). A concat input takes the concat's output
  parameters instead (so no requantize, as TFLite's converter does) where its scale is free
  (`_share_concat_scale`).
- ops without an integer form (`lower_quantized.why_float` says why), and the layers named in
  `keep_float`, stay float between dequantize and quantize: ctx.missed says which and why,
  `node.meta["float"]` keeps the reason for the lowering and the report.
- mixed precision: the layers named in `keep_int16` run int16x8 inside an int8 model (int16
  activations, int8 weights, int64 bias), and so do the data-movement ops that follow them;
  where an int8 and an int16 layer meet, the tensor is quantized a second time at the other
  type, which the lowering turns into a `requantize` (TFLite QUANTIZE int8 <-> int16). Graph
  inputs and outputs stay int8. `node.meta["int16"]` marks those layers.

Sensitivity: `sensitivity=True` measures, for every integer layer alone, the output SQNR (dB)
of the model with only that layer quantized (on up to 4 calibration samples), kept in
`node.meta["sensitivity"]` and the report. `auto_mixed=D` then keeps the most sensitive
layers in higher precision (`mixed="float"`: float; `mixed="int16x8"`: int16 activations, for
the layers that have an int16 kernel), one at a time, as long as each raises the whole model's
output SQNR by at least D dB; `node.meta["mixed_gain"]` records that gain. Every layer gets
`node.meta["sqnr"]`: its output in the QDQ graph against the float graph (error accumulated up
to that layer) on the same samples.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..analysis.calibrate import calibrate, load_samples
from ..errors import UsageError
from ..ir import quant
from ..ir.graph import Graph, Node, Value
from ..ir.interpreter import round_half_away, run
from ..ir.quant import FIXED_OUTPUT
from ..ir.types import DType, QuantParams
from .lower_quantized import CLAMPS, KEEPS_SCALE, WEIGHTED, why_float

SCHEMES = {"int8": "i8", "int16x8": "i16"}
CHECK_SAMPLES = 4  # calibration samples used for SQNR measurements


def quantize(graph: Graph, ctx, scheme="int8", calibration=None, observer="minmax", per_channel=True,
             keep_float=(), keep_int16=(), auto_mixed=None, mixed="float", sensitivity=False, quiet=False) -> bool:
    """Calibrates the float graph and inserts quantize/dequantize pairs (QDQ form).

    Options: scheme "int8" | "int16x8"; calibration: samples (see `analysis.calibrate`);
    observer: "minmax" | "moving_minmax" | "percentile" | "mse" | "entropy"; per_channel weight
    scales; keep_float: layer names to leave float; keep_int16: layer names to run int16x8 in an
    int8 model; auto_mixed: dB gain per extra layer kept at `mixed` ("float" | "int16x8")
    precision (see the module docstring); sensitivity: measure per-layer sensitivity; quiet: no
    progress bar. Preconditions: a float graph after fold-bn and fuse. Preserves: graph inputs
    and output names and shapes (values stay float; `lower-quantized` makes them integer).
    """
    if scheme not in SCHEMES:
        raise UsageError(f"unknown quantization scheme '{scheme}'", f"known: {', '.join(SCHEMES)}")
    dtype = SCHEMES[scheme]
    if graph.count("quantize") or graph.count("dequantize"):
        raise UsageError(f"graph '{graph.name}' is already quantized (it has quantize/dequantize ops)",
                         "quantize a float model; lower a QDQ graph with the lower-quantized pass alone")
    if mixed not in ("float", "int16x8") or (scheme != "int8" and (keep_int16 or mixed != "float")):
        raise UsageError(f"mixed precision '{mixed}' with scheme '{scheme}'",
                         "keep_int16 and mixed='int16x8' mix int16x8 layers into an int8 model; mixed: float | int16x8")
    samples = load_samples(calibration, graph)
    ranges = calibrate(graph, samples, observer, quiet=quiet)
    layers = {n.name: n for n in graph.nodes}
    for option, names in (("keep_float", keep_float), ("keep_int16", keep_int16)):
        if set(names) - set(layers):
            raise UsageError(f"{option} names unknown layer(s): {', '.join(sorted(set(names) - set(layers)))}",
                             f"layers: {', '.join(sorted(layers))}")
    no16 = [f"{k} ({why_float(layers[k], 'i16')})" for k in keep_int16 if why_float(layers[k], "i16")]
    if no16:
        raise UsageError(f"keep_int16 names layer(s) without an int16 kernel: {', '.join(no16)}",
                         "keep them int8 or float (keep_float)")
    float_graph, check = graph.clone(), samples[:CHECK_SAMPLES]
    float_runs = [traced(float_graph, s) for s in check]
    refs = [outs for outs, _ in float_runs]
    keep, wide = set(keep_float), set(keep_int16)

    def trial(keep: set, wide: set = frozenset(), edges=True, only=None) -> float:
        g = float_graph.clone()
        insert_qdq(g, ranges, dtype, per_channel,
                   lambda n: why_float(n, dtype) is None and n.name not in keep and only in (None, n.name), edges, wide)
        return sqnr(refs, [run(g, *s) for s in check])

    table, gains = {}, {}
    if sensitivity or auto_mixed is not None:
        table = {n.name: trial(set(), edges=False, only=n.name) for n in float_graph.nodes
                 if why_float(n, dtype) is None and n.op not in KEEPS_SCALE}
    if auto_mixed is not None:
        best = trial(keep, wide)
        for name in sorted((k for k in table if k not in keep | wide), key=table.get):
            if mixed == "int16x8" and why_float(layers[name], "i16"):
                continue
            better = trial(keep | {name}, wide) if mixed == "float" else trial(keep, wide | {name})
            if better - best < float(auto_mixed):
                break
            (keep if mixed == "float" else wide).add(name)
            gains[name], best = better - best, better

    nodes = graph.nodes
    float_names = {n: n.outputs[0].name for n in nodes}
    for n in nodes:
        reason = "kept float (keep_float / auto_mixed)" if n.name in keep else why_float(n, dtype)
        if reason:
            n.meta["float"] = reason
            ctx.miss(n, f"stays float: {reason}")
        for key, value in (("sensitivity", table), ("mixed_gain", gains)):
            if n.name in value:
                n.meta[key] = value[n.name]
    dequantized = insert_qdq(graph, ranges, dtype, per_channel, lambda n: "float" not in n.meta, True, wide)
    qdq_runs = [traced(graph, s) for s in check]
    for n, name in float_names.items():
        got = dequantized.get(name, n.outputs[0].name)
        n.meta["sqnr"] = sqnr([[t[name]] for _, t in float_runs], [[t[got]] for _, t in qdq_runs])
    ctx.stat("quantized", sum("float" not in n.meta for n in nodes))
    ctx.qdq_graph = graph.clone()
    ctx.quant_check = (check, refs)  # for passes that change the numbers later (compress-weights)
    ctx.quant = {"scheme": scheme, "observer": observer, "samples": len(samples),
                              "float_weight_bytes": sum(c.type.nbytes for c in float_graph.constants()),
                              "output_sqnr": sqnr(refs, [outs for outs, _ in qdq_runs])}
    return True


def traced(g: Graph, sample: tuple) -> tuple[list[np.ndarray], dict]:
    """(outputs, {value name: array}) of running `g` on one sample."""
    trace = {}
    return run(g, *sample, trace=trace), trace


def sqnr(refs: list[list[np.ndarray]], outs: list[list[np.ndarray]]) -> float:
    """Signal-to-quantization-noise ratio in dB of `outs` against `refs` (lists of output lists)."""
    signal = sum(float(np.sum(np.square(r, dtype=np.float64))) for rs in refs for r in rs)
    noise = sum(float(np.sum(np.square(r.astype(np.float64) - o))) for rs, os in zip(refs, outs)
                for r, o in zip(rs, os))
    return math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)


# ---------------------------------------------------------------- QDQ insertion

def range_params(lo: float, hi: float, dtype: str) -> QuantParams:
    """Per-tensor parameters covering [lo, hi] (which contains 0): asymmetric int8, symmetric int16."""
    if hi - lo <= 0:
        hi = lo + 1.0  # an all-zero tensor: any scale represents it
    if dtype == "i16":
        return QuantParams((max(-lo, hi) / 32767,), (0,))
    scale = (hi - lo) / 255
    return QuantParams((scale,), (int(np.clip(quant.round_half_away(-128 - lo / scale), -128, 127)),))


def insert_qdq(g: Graph, ranges: dict, dtype: str, per_channel: bool, is_int: Callable[[Node], bool],
               edges: bool = True, wide=frozenset()) -> dict:
    """Puts quantize -> dequantize on every float tensor that an op with `is_int(node)` reads or
    writes (and on the graph inputs and outputs if `edges`), and quantizes those ops' constant
    operands; the layers named in `wide` (and the data-movement ops after them) get int16, and
    a tensor read at another type than it is written gets a second pair for those readers.
    Returns {float value name: name of its dequantized value}."""
    nodes = g.nodes
    ints = {n for n in nodes if is_int(n)}
    types: dict[Node, str] = {}
    for n in nodes:
        if n in ints:
            first = n.inputs[0].producer
            inherit = n.op in KEEPS_SCALE and first in types and n.name not in wide
            types[n] = types[first] if inherit else "i16" if n.name in wide else dtype
            if types[n] != dtype:
                n.meta["int16"] = True

    def wanted(v: Value) -> bool:
        return v.dtype == DType.f32 and not v.is_const and (
            v.producer in ints or any(u in ints for u in v.users)
            or (edges and (any(v is i for i in g.inputs) or g.is_output(v))))

    params: dict[tuple[Value, str], QuantParams] = {}  # (tensor, type it is written at) -> params
    for v in [*g.inputs, *(s.read for s in g.states)]:  # (a state stays float, quantized where it is read)
        if wanted(v):
            params[v, dtype] = _range_params(g, v, ranges, dtype, ints)
    for n in nodes:
        for v in n.outputs:
            if not wanted(v):
                continue
            t = types.get(n, dtype)
            fixed = FIXED_OUTPUT[t].get(n.op) if n in ints else None
            if fixed:
                params[v, t] = QuantParams(*fixed)
            elif n in ints and n.op in KEEPS_SCALE and (n.inputs[0], t) in params:
                params[v, t] = params[n.inputs[0], t]
            else:
                params[v, t] = _range_params(g, v, ranges, t, ints)
    typed = {**dict.fromkeys(nodes, dtype), **types}  # float ops write their output at dtype
    for n in nodes:
        if n in ints and n.op == "concat":
            for v in n.inputs:
                _share_concat_scale(g, v, n, params, ranges, typed, ints)
    readers = {}  # (tensor, another type) -> the ops (None: the graph output) reading it at that type
    for v, t in list(params):
        for u in [*v.users, *[None] * g.is_output(v)]:
            other = types.get(u, dtype) if u is None or u in ints else t
            if other != t:
                readers.setdefault((v, other), []).append(u)
                params.setdefault((v, other), _range_params(g, v, ranges, other, ints))
    for n in ints:
        _quantize_constants(g, n, lambda v, t=types[n]: params[v, t], types[n], per_channel)
    dequantized = {}
    for (v, t), p in list(params.items()):
        if (v, t) not in readers:  # the type v is written at: after its conversions
            name = v.name
            for other in [o for w, o in readers if w is v]:
                us = readers[v, other]
                _insert_pair(g, v, params[v, other], other, [u for u in us if u], None in us, other)
            dequantized[name] = _insert_pair(g, v, p, t, list(v.users), g.is_output(v)).name
    g.toposort()
    return dequantized


def _range(g: Graph, v: Value, ranges: dict, ints: set) -> tuple[float, float]:
    """v's observed range, within the bounds of its one user if that is relu, relu6 or clamp."""
    lo, hi = ranges[v.name]
    if len(v.users) == 1 and v.users[0] in ints and v.users[0].op in CLAMPS and not g.is_output(v):
        a, b = CLAMPS[v.users[0].op](v.users[0].attrs)
        lo, hi = min(max(lo, a), 0.0), max(min(hi, b), 0.0)
    return lo, hi


def _range_params(g: Graph, v: Value, ranges: dict, dtype: str, ints: set) -> QuantParams:
    return range_params(*_range(g, v, ranges, ints), dtype)


def _share_concat_scale(g: Graph, v: Value, concat: Node, params: dict, ranges: dict, types: dict, ints: set):
    """Gives concat input `v` the concat's output parameters (TFLite wants them equal; else the
    lowering inserts a requantize) where its scale is free: chosen from the range of an op of the
    concat's type (integer, or a float island's output quantize; not a fixed output scale, a graph
    input or another concat), maybe through integer scale-keeping ops (pools, reshape, ...). Each
    tensor whose parameters follow (that op's output and the scale-keeping ops' after it) must be
    no graph output, read by no other concat and, unless the concat is its one reader,
    representable at the new parameters (its observed range within half a step)."""
    t, root = types[concat], v
    while root.producer in ints and root.producer.op in KEEPS_SCALE and types[root.producer] == t:
        root = root.producer.inputs[0]
    p = root.producer
    if p is None or types[p] != t or p.op == "concat" or (p in ints and p.op in FIXED_OUTPUT[t]):
        return
    target, info = params[concat.output, t], np.iinfo(DType(t).np)
    s, z = target.scale[0], target.zero_point[0]
    tied, todo = [], [root]
    while todo:
        w = todo.pop()
        lo, hi = _range(g, w, ranges, ints)
        if g.is_output(w) or any(u.op == "concat" and u is not concat for u in w.users) or (
                set(w.users) != {concat} and not (info.min - z - 0.5) * s <= lo <= hi <= (info.max - z + 0.5) * s):
            return
        tied.append(w)
        todo += [o for u in w.users if u in ints and u.op in KEEPS_SCALE and types[u] == t for o in u.outputs]
    for w in tied:
        params[w, t] = target


def _insert_pair(g: Graph, v: Value, p: QuantParams, dtype: str, users: list, output: bool, suffix="") -> Value:
    """v -> quantize -> dequantize, `users` (and the graph output if `output`) reading the
    dequantized value (which then takes v's name, v becoming `<name>_float`)."""
    name = v.name
    if output:
        g.rename(v, f"{name}_float")
    attrs = {"scale": list(p.scale), "zero_point": list(p.zero_point)}
    q = g.op("quantize", [v], {**attrs, "dtype": dtype}, name=f"{name}_q{suffix}")
    d = g.op("dequantize", [q], attrs, name=name if output else f"{name}_dq{suffix}")
    for u in users:
        g.set_inputs(u, [d if x is v else x for x in u.inputs])
    if output:
        g.outputs = [d if o is v else o for o in g.outputs]
    return d


def _quantize_constants(g: Graph, n: Node, params: Callable[[Value], QuantParams], dtype: str, per_channel: bool):
    """Float constant operands of integer op `n` -> integer constants behind a dequantize."""
    w_scale = None
    for i, c in enumerate(n.inputs):
        if not c.is_const or c.dtype != DType.f32:
            continue
        if n.op in WEIGHTED and i == 1:
            axis = weight_axis(n) if per_channel else None
            reduce = tuple(a for a in range(c.data.ndim) if a != axis)
            amax = np.abs(c.data).max(axis=reduce, keepdims=True) if axis is not None else np.abs(c.data).max()
            scale = np.where(amax > 0, amax / 127, 1.0)  # an all-zero channel: any scale will do
            w_scale = scale.ravel()
            data = np.clip(round_half_away(c.data / scale), -127, 127).astype(np.int8)
            q = QuantParams(w_scale, [0] * w_scale.size, axis if w_scale.size > 1 else None)
        elif n.op in WEIGHTED and i == 2:
            s = params(n.inputs[0]).scale[0] * np.broadcast_to(w_scale, c.shape)
            big = np.int64 if dtype == "i16" else np.int32
            info = np.iinfo(big)
            data = np.clip(round_half_away(c.data.astype(np.float64) / s), info.min, info.max).astype(big)
            q = QuantParams(s, [0] * s.size, 0 if s.size > 1 else None)
        else:
            q = range_params(min(float(c.data.min()), 0.0), max(float(c.data.max()), 0.0), dtype)
            info = np.iinfo(DType(dtype).np)
            data = np.clip(round_half_away(c.data / q.scale[0]) + q.zero_point[0], info.min, info.max).astype(info.dtype)
        qc = g.const(data, f"{c.name}_q", quant=q)
        axis = {"axis": q.axis} if q.axis is not None else {}
        g.set_input(n, i, g.op("dequantize", [qc], {"scale": list(q.scale), "zero_point": list(q.zero_point), **axis},
                               name=f"{c.name}_dq"))


def weight_axis(n: Node) -> int | None:
    """The output-channel axis of a weighted op's weight (None: per tensor only)."""
    if n.op == "conv_transpose2d":  # (I, O/g, kH, kW) under NCHW, (O/g, kH, kW, I) under NHWC
        return None if n.attrs["groups"] > 1 else (1 if n.attrs["layout"] == "NCHW" else 0)
    return 0
