"""quantize: calibrated post-training quantization, step 1 of 2: quantize/dequantize insertion.

Runs the float graph on the calibration data (`compiler.calibrate`), then rewrites it into QDQ
form: a float graph in which every tensor that an integer op will read or write goes through
`quantize -> dequantize` with its final parameters, and the weights of those ops are int8
constants behind a `dequantize`. The QDQ graph computes what the integer graph will compute
(up to the integer kernels' rounding), can be printed (`print_after`) and exported to ONNX as
QuantizeLinear/DequantizeLinear, and is kept in `ctx.artifacts["qdq_graph"]`. `lower-quantized`
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
  with 0, TFLite's fixed output scales (int16x8 keeps these four ops float: TFLite's int16
  kernels for them differ); concat and add/sub outputs get their own range (the lowering
  rescales inputs).
- ops without an integer form (`lower_quantized.why_float` says why), and the layers named in
  `keep_float`, stay float between dequantize and quantize: ctx.missed says which and why,
  `node.meta["float"]` keeps the reason for the lowering and the report.

Sensitivity: `sensitivity=True` measures, for every integer layer alone, the output SQNR (dB)
of the model with only that layer quantized (on up to 4 calibration samples), kept in
`node.meta["sensitivity"]` and the report. `auto_mixed=D` then keeps the most sensitive
layers float, one at a time, as long as each raises the whole model's output SQNR by at least
D dB. Every layer gets `node.meta["sqnr"]`: its output in the QDQ graph against the float graph
(error accumulated up to that layer) on the same samples.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..compiler.calibrate import calibrate, load_samples
from ..errors import UsageError
from ..ir import quant
from ..ir.graph import Graph, Node, Value
from ..ir.interpreter import round_half_away, run
from ..ir.types import DType, QuantParams
from .lower_quantized import CLAMPS, FIXED_OUTPUT, KEEPS_SCALE, WEIGHTED, why_float

SCHEMES = {"int8": "i8", "int16x8": "i16"}
CHECK_SAMPLES = 4  # calibration samples used for SQNR measurements


def quantize(graph: Graph, ctx, scheme="int8", calibration=None, observer="minmax", per_channel=True,
             keep_float=(), auto_mixed=None, sensitivity=False, quiet=False) -> bool:
    """Calibrates the float graph and inserts quantize/dequantize pairs (QDQ form).

    Options: scheme "int8" | "int16x8"; calibration: samples (see `compiler.calibrate`);
    observer: "minmax" | "moving_minmax" | "percentile" | "mse" | "entropy"; per_channel weight
    scales; keep_float: layer names to leave float; auto_mixed: dB gain per extra float layer
    (see the module docstring); sensitivity: measure per-layer sensitivity; quiet: no progress
    bar. Preconditions: a float graph after fold-bn and fuse. Preserves: graph inputs and output
    names and shapes (values stay float; `lower-quantized` makes them integer).
    """
    if scheme not in SCHEMES:
        raise UsageError(f"unknown quantization scheme '{scheme}'", f"known: {', '.join(SCHEMES)}")
    dtype = SCHEMES[scheme]
    if graph.count("quantize") or graph.count("dequantize"):
        raise UsageError(f"graph '{graph.name}' is already quantized (it has quantize/dequantize ops)",
                         "quantize a float model; lower a QDQ graph with the lower-quantized pass alone")
    samples = load_samples(calibration, graph)
    ranges = calibrate(graph, samples, observer, quiet=quiet)
    layers = {n.name for n in graph.nodes}
    unknown = sorted(set(keep_float) - layers)
    if unknown:
        raise UsageError(f"keep_float names unknown layer(s): {', '.join(unknown)}",
                         f"layers: {', '.join(sorted(layers))}")
    float_graph, check = graph.clone(), samples[:CHECK_SAMPLES]
    float_runs = [traced(float_graph, s) for s in check]
    refs = [outs for outs, _ in float_runs]
    keep = set(keep_float)

    def trial(keep: set, edges=True, only=None) -> float:
        g = float_graph.clone()
        insert_qdq(g, ranges, dtype, per_channel,
                   lambda n: why_float(n, dtype) is None and n.name not in keep and only in (None, n.name), edges)
        return sqnr(refs, [run(g, *s) for s in check])

    table = {}
    if sensitivity or auto_mixed is not None:
        table = {n.name: trial(set(), edges=False, only=n.name) for n in float_graph.nodes
                 if why_float(n, dtype) is None and n.op not in KEEPS_SCALE}
    if auto_mixed is not None:
        best = trial(keep)
        for name in sorted((k for k in table if k not in keep), key=table.get):
            better = trial(keep | {name})
            if better - best < float(auto_mixed):
                break
            keep.add(name)
            best = better

    nodes = graph.nodes
    float_names = {n: n.outputs[0].name for n in nodes}
    for n in nodes:
        reason = "kept float (keep_float / auto_mixed)" if n.name in keep else why_float(n, dtype)
        if reason:
            n.meta["float"] = reason
            ctx.miss(n, f"stays float: {reason}")
        if n.name in table:
            n.meta["sensitivity"] = table[n.name]
    dequantized = insert_qdq(graph, ranges, dtype, per_channel, lambda n: "float" not in n.meta)
    qdq_runs = [traced(graph, s) for s in check]
    for n, name in float_names.items():
        got = dequantized.get(name, n.outputs[0].name)
        n.meta["sqnr"] = sqnr([[t[name]] for _, t in float_runs], [[t[got]] for _, t in qdq_runs])
    ctx.stat("quantized", sum("float" not in n.meta for n in nodes))
    ctx.artifacts["qdq_graph"] = graph.clone()
    ctx.artifacts["quant"] = {"scheme": scheme, "observer": observer, "samples": len(samples),
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
               edges: bool = True) -> dict:
    """Puts quantize -> dequantize on every float tensor that an op with `is_int(node)` reads or
    writes (and on the graph inputs and outputs if `edges`), and quantizes those ops' constant
    operands. Returns {float value name: name of its dequantized value}."""
    nodes = g.nodes
    ints = {n for n in nodes if is_int(n)}

    def wanted(v: Value) -> bool:
        return v.dtype == DType.f32 and not v.is_const and (
            v.producer in ints or any(u in ints for u in v.users)
            or (edges and (any(v is i for i in g.inputs) or g.is_output(v))))

    params: dict[Value, QuantParams] = {}
    for v in g.inputs:
        if wanted(v):
            params[v] = _range_params(g, v, ranges, dtype, ints)
    for n in nodes:
        for v in n.outputs:
            if not wanted(v):
                continue
            fixed = FIXED_OUTPUT.get(n.op) if n in ints else None
            if fixed:
                params[v] = QuantParams(*fixed)
            elif n in ints and n.op in KEEPS_SCALE and n.inputs[0] in params:
                params[v] = params[n.inputs[0]]
            else:
                params[v] = _range_params(g, v, ranges, dtype, ints)
    for n in ints:
        _quantize_constants(g, n, params, dtype, per_channel)
    dequantized = {v.name: _insert_pair(g, v, p, dtype).name for v, p in params.items()}
    g.toposort()
    return dequantized


def _range_params(g: Graph, v: Value, ranges: dict, dtype: str, ints: set) -> QuantParams:
    lo, hi = ranges[v.name]
    if len(v.users) == 1 and v.users[0] in ints and v.users[0].op in CLAMPS and not g.is_output(v):
        a, b = CLAMPS[v.users[0].op](v.users[0].attrs)
        lo, hi = min(max(lo, a), 0.0), max(min(hi, b), 0.0)
    return range_params(lo, hi, dtype)


def _insert_pair(g: Graph, v: Value, p: QuantParams, dtype: str) -> Value:
    """v -> quantize -> dequantize, every user of v reading the dequantized value (a graph output
    keeps its name: the dequantized value takes it, v becomes `<name>_float`)."""
    name, output = v.name, g.is_output(v)
    if output:
        g.rename(v, f"{name}_float")
    attrs = {"scale": list(p.scale), "zero_point": list(p.zero_point)}
    q = g.op("quantize", [v], {**attrs, "dtype": dtype}, name=f"{name}_q")
    d = g.op("dequantize", [q], attrs, name=name if output else f"{name}_dq")
    g.replace_all_uses(v, d)
    g.set_input(q.producer, 0, v)
    return d


def _quantize_constants(g: Graph, n: Node, params: dict, dtype: str, per_channel: bool):
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
            s = params[n.inputs[0]].scale[0] * np.broadcast_to(w_scale, c.shape)
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
