""".tflite -> IR: TFLite's builtin ops back into IR ops, float and int8/int16, channel-last.

`load_tflite` checks the file (the TFL3 identifier, then the whole flatbuffer read through the
schema's object API, then every index and buffer size), then converts the first subgraph op by op
through `IMPORTS`, the one table from a builtin operator to a converter `(ctx, op) -> [Value]`.
Constant tensors become IR constants (with their quantization parameters); the others get the
tensor's name. TFLite's SAME/VALID padding becomes explicit pads; fused activations become the
IR's `act` where the op has one and a relu/relu6/clamp after it elsewhere. Integer ops get their
kernel attributes from `ir.quant`, computed from the tensors' scales and zero points exactly as
TFLite does, so the integer graph computes what TFLite Micro computes.

Constants TensorFlow's converter stores compressed come back as float32 or dense arrays:
float16 weights behind a DEQUANTIZE ("float16 quantization") are folded to float32 constants,
and sparse constants (a tensor's `sparsity`: its axes, blocked ones split into blocks, traversed
in `traversal_order`, each level DENSE or SPARSE_CSR) are densified, behind DENSIFY or not.

Only malformed bytes raise `ModelLoadError`: what the flatbuffer reader raises on them, and what
the checks find (indices, sizes, quantization arrays, operand counts, option tables and values,
ranks, axes); a tensor beyond `ir.types.MAX_TENSOR_BYTES` is a `ResourceLimitError`. A valid file
using what mcuforge cannot import (an op without a converter, or used in a way a converter
refuses; a tensor type the IR has not) gets one `UnsupportedOpError` listing every such op with
its node name: the results of a refused op become placeholders of the file's types, so the ops
after it are converted (and refused) too. Any other exception is a bug in mcuforge: it propagates.

Resource variables (how TensorFlow's converter keeps a streaming model's state) become IR states:
each VAR_HANDLE's resource is one state, typed by its first READ_VARIABLE (or ASSIGN_VARIABLE);
a read gives the value the resource holds at that point of the subgraph (the state's read Value
before the first assignment, the last assigned Value after), and the value last assigned is the
state's write. The initial values come from the subgraph a CALL_ONCE runs, which may only assign
constants to resources (what the converter writes); a resource it leaves alone starts at zero.
Limits: the first subgraph is the model (no control flow beyond CALL_ONCE), static shapes, no
custom ops.
"""
from __future__ import annotations

import math
import os
import struct

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..errors import Error, ModelLoadError, ShapeError, UnsupportedItem, UnsupportedOpError
from ..ir import quant
from ..ir.graph import Graph, Value
from ..ir.ops import registrar
from ..ir.types import DType, QuantParams, TensorType, check_size
from . import rnn

OP, ACT, PAD = fb.BuiltinOperator, fb.ActivationFunctionType, fb.Padding
# IR dtype -> the schema's TensorType (the TFLite backend writes with the same table)
DTYPES = {DType.f32: fb.TensorType.FLOAT32, DType.f16: fb.TensorType.FLOAT16, DType.i64: fb.TensorType.INT64,
          DType.i32: fb.TensorType.INT32, DType.i16: fb.TensorType.INT16, DType.i8: fb.TensorType.INT8,
          DType.u8: fb.TensorType.UINT8, DType.bool: fb.TensorType.BOOL}
_IR_DTYPE = {code: dt for dt, code in DTYPES.items()}
_OP_NAMES = {v: k for k, v in vars(OP).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
_ACT_NAMES = {ACT.NONE: "none", ACT.RELU: "relu", ACT.RELU6: "relu6"}
# the options table each converter reads (absent: the schema's defaults, as TFLite reads it)
_OPTIONS = {OP.CONV_2D: fb.Conv2DOptionsT, OP.DEPTHWISE_CONV_2D: fb.DepthwiseConv2DOptionsT,
            OP.TRANSPOSE_CONV: fb.TransposeConvOptionsT, OP.FULLY_CONNECTED: fb.FullyConnectedOptionsT,
            OP.ADD: fb.AddOptionsT, OP.SUB: fb.SubOptionsT, OP.MUL: fb.MulOptionsT, OP.DIV: fb.DivOptionsT,
            OP.AVERAGE_POOL_2D: fb.Pool2DOptionsT, OP.MAX_POOL_2D: fb.Pool2DOptionsT,
            **dict.fromkeys((OP.MEAN, OP.SUM, OP.REDUCE_MAX, OP.REDUCE_MIN), fb.ReducerOptionsT),
            OP.CONCATENATION: fb.ConcatenationOptionsT, OP.STRIDED_SLICE: fb.StridedSliceOptionsT,
            OP.SOFTMAX: fb.SoftmaxOptionsT, OP.LEAKY_RELU: fb.LeakyReluOptionsT, OP.GELU: fb.GeluOptionsT,
            OP.BATCH_MATMUL: fb.BatchMatMulOptionsT, OP.RESIZE_BILINEAR: fb.ResizeBilinearOptionsT,
            OP.RESIZE_NEAREST_NEIGHBOR: fb.ResizeNearestNeighborOptionsT, OP.VAR_HANDLE: fb.VarHandleOptionsT,
            OP.CALL_ONCE: fb.CallOnceOptionsT}
_POSITIVE = ("strideH", "strideW", "dilationHFactor", "dilationWFactor", "filterHeight", "filterWidth")
_HINT = "check that the file is a complete .tflite model (re-export it); mcuforge reads TFLite flatbuffers"


class _Unsupported(Exception):
    """A converter's refusal: why this op cannot become IR."""


class _Ctx:
    """The graph being built, the TFLite tensors and the Values made from them."""

    def __init__(self, model: fb.ModelT, sub: fb.SubGraphT, where: str):
        self.g, self.where = Graph(_text(sub.name) or "tflite"), where
        self.model, self.tensors = model, sub.tensors
        self.env: dict[int, Value] = {}
        self.code, self.op_name = 0, ""  # the builtin being converted, and the name its results get
        self.handles: dict[int, str] = {}  # VAR_HANDLE result tensor -> its resource's name
        self.initial: dict[str, np.ndarray] = {}  # resource -> its value after CALL_ONCE's subgraph
        self.reads: dict[str, Value] = {}  # resource -> its state's read Value
        self.held: dict[str, Value] = {}  # resource -> the Value it holds at this point of the subgraph

    def value(self, i: int) -> Value:
        """The Value of tensor `i`: converted before, or a constant read from its buffer."""
        if i in self.env:
            return self.env[i]
        if i < 0:
            raise self.corrupt("a required input is absent (tensor index -1)")
        t = self.tensors[i]
        self.env[i] = self.g.const(self.array(i), _text(t.name) or "const", quant=_quant(t))
        return self.env[i]

    def array(self, i: int) -> np.ndarray:
        """The data of constant tensor `i`, densified if it is stored sparse."""
        t = self.tensors[i]
        data = self.model.buffers[t.buffer].data
        if data is None or not len(data):
            raise _Unsupported(f"reads tensor {_text(t.name)!r}, which no op writes and which has no data")
        values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), _dtype(t).np)
        return values.reshape(_shape(t)) if t.sparsity is None else _densify(self, t, values)

    def corrupt(self, what: str) -> ModelLoadError:
        """The error for an operator that breaks what TFLite's own kernels require of it."""
        return ModelLoadError(f"{self.where} is corrupt at {self.op_name}: {what}", _HINT)

    def check_operator(self, o, code: int) -> None:
        """Check operator `o` of builtin `code` (its options table and their window fields) and make
        its tensor indices `_Operands`, so that reading one the file leaves out is a corrupt file."""
        want, opts = _OPTIONS.get(code), o.builtinOptions
        if want is not None and opts is None:
            o.builtinOptions = opts = want()
        elif want is not None and not isinstance(opts, want):
            raise self.corrupt(f"{_OP_NAMES[code]} has options {type(opts).__name__[:-1]}, not {want.__name__[:-1]}")
        if any(getattr(opts, f, 1) <= 0 for f in _POSITIVE) or \
                getattr(opts, "padding", PAD.SAME) not in (PAD.SAME, PAD.VALID):
            raise self.corrupt(f"window options {vars(opts)} (strides, dilations and sizes must be positive)")
        o.inputs, o.outputs = _Operands(self, "inputs", o.inputs), _Operands(self, "outputs", o.outputs)

    def const(self, i: int) -> np.ndarray:
        v = self.value(i)
        if not v.is_const:
            raise _Unsupported(f"needs tensor {v.name!r} to be a constant")
        return v.data

    def tensor_type(self, i: int) -> TensorType:
        t = self.tensors[i]
        return TensorType(_shape(t), _dtype(t), _quant(t))

    def op(self, op: str, inputs, attrs=None, out: int | None = None) -> Value:
        """An IR op; with `out`, its result is TFLite tensor `out` (named after it, with its
        quantization parameters)."""
        if out is None:
            return self.g.op(op, inputs, attrs, name=self.op_name)
        return self.node(op, inputs, attrs, [out])[0]

    def node(self, op: str, inputs, attrs, outs: list[int]) -> list[Value]:
        """An IR op writing TFLite tensors `outs`, whose shapes and dtypes must be what the op
        table gives (a file that disagrees is refused)."""
        n = self.g.add_node(op, inputs, attrs, name=_text(self.tensors[outs[0]].name) or self.op_name)
        for v, i in zip(n.outputs, outs, strict=True):
            want = self.tensor_type(i)
            if (v.shape, v.dtype) != (want.shape, want.dtype):
                raise _Unsupported(f"the file gives tensor {v.name!r} type {want.dtype.value}{list(want.shape)}, "
                                   f"but {op} computes {v.dtype.value}{list(v.shape)}")
            v.type = want
        return n.outputs


class _Operands(list):
    """An operator's input or output tensor indices; a position the file leaves out raises ModelLoadError."""

    def __init__(self, ctx: _Ctx, kind: str, indices):
        super().__init__(int(i) for i in (indices if indices is not None else ()))
        self.ctx, self.kind = ctx, kind

    def __getitem__(self, k):
        if isinstance(k, int) and not -len(self) <= k < len(self):
            raise self.ctx.corrupt(f"the operator has {len(self)} {self.kind}, its converter reads {self.kind} {k}")
        return super().__getitem__(k)


def _axes(ctx: _Ctx, i: int, rank: int, one: bool = False) -> list[int]:
    """Constant tensor `i`'s axes of a rank-`rank` tensor, made non-negative and sorted; an axis out
    of range (or, with `one`, not exactly one axis) is a corrupt file."""
    axes = [int(a) for a in ctx.const(i).reshape(-1)]
    if any(not -rank <= a < rank for a in axes) or one and len(axes) != 1:
        raise ctx.corrupt(f"axes {axes[:8]} for a tensor of rank {rank}")
    return sorted(a % rank for a in axes)


def _text(s) -> str:
    return s.decode(errors="replace") if isinstance(s, bytes) else (s or "")


def _shape(t: fb.TensorT) -> tuple[int, ...]:
    return tuple(int(d) for d in (t.shape if t.shape is not None else ()))


def _dtype(t: fb.TensorT) -> DType:
    if t.type not in _IR_DTYPE:
        raise _Unsupported(f"tensor {_text(t.name)!r} has TFLite type {_TYPE_NAMES.get(t.type, t.type)}, "
                           "which the IR has not")
    return _IR_DTYPE[t.type]


def _indices(ctx: _Ctx, kind: int, vector) -> np.ndarray:
    """A SparseIndexVector (int32, uint16 or uint8 values) as int64."""
    if kind == fb.SparseIndexVector.NONE or vector is None or vector.values is None:
        raise ctx.corrupt("a SPARSE_CSR level without its segments or indices")
    return np.asarray(vector.values, np.int64).reshape(-1)


def _densify(ctx: _Ctx, t: fb.TensorT, values: np.ndarray) -> np.ndarray:
    """Sparse constant `t` as a dense array, its stored `values` being the nonzero elements in
    traversal order. TFLite's sparsity format: each axis d of the n-axis shape in `block_map` is
    split into blocks (axis d, of shape[d] / b) and an axis n + j within the block (the j-th
    entry of block_map, of size b: its level's dense_size). `traversal_order` visits the n + k
    axes, block axes last; per level, DENSE visits every index and SPARSE_CSR the indices
    array_indices[segments[p]:segments[p + 1]] of parent position p. Leaves come out in the
    order of `values`. Inconsistent parameters are a corrupt file."""
    s, shape = t.sparsity, _shape(t)
    n, order, blocks = len(shape), [int(o) for o in s.traversalOrder], [int(b) for b in (s.blockMap or [])]
    levels = s.dimMetadata or []
    if sorted(order) != list(range(n + len(blocks))) or sorted(order[:n]) != list(range(n)) or \
            len(levels) != len(order) or len(set(blocks)) != len(blocks) or not set(blocks) <= set(range(n)):
        raise ctx.corrupt(f"sparse tensor {_text(t.name)!r} has an inconsistent traversal order {order}, "
                         f"block map {blocks} or {len(levels)} dimension metadata for shape {list(shape)}")
    size = list(shape)
    for j, d in enumerate(blocks):
        b = int(levels[order.index(n + j)].denseSize)
        if b <= 0 or shape[d] % b:
            raise ctx.corrupt(f"sparse tensor {_text(t.name)!r}: block size {b} does not divide axis {d} of {shape[d]}")
        size[d] //= b
        size.append(b)
    pos, coords = np.zeros(1, np.int64), []  # per leaf so far: its position in the level, its indices
    for lv, d in zip(levels, order):
        if lv.format == fb.DimensionType.DENSE:
            pos = (pos[:, None] * size[d] + np.arange(size[d])).reshape(-1)
            coords = [np.repeat(c, size[d]) for c in coords] + [pos % size[d]]
            continue
        segments = _indices(ctx, lv.arraySegmentsType, lv.arraySegments)
        idx = _indices(ctx, lv.arrayIndicesType, lv.arrayIndices)
        if pos.size and (pos.max() + 1 >= segments.size or np.any(np.diff(segments) < 0) or segments[0] < 0
                         or segments[-1] > idx.size or np.any((idx < 0) | (idx >= size[d]))):
            raise ctx.corrupt(f"sparse tensor {_text(t.name)!r} has segments or indices out of range for axis {d}")
        counts = segments[pos + 1] - segments[pos]
        pos = np.arange(counts.sum()) + np.repeat(segments[pos] - np.cumsum(counts) + counts, counts)
        coords = [np.repeat(c, counts) for c in coords] + [idx[pos]]
    if pos.size != values.size:
        raise ctx.corrupt(f"sparse tensor {_text(t.name)!r} stores {values.size} values for {pos.size} positions")
    at = [coords[order.index(d)] for d in range(n)]
    for j, d in enumerate(blocks):
        at[d] = at[d] * size[n + j] + coords[order.index(n + j)]
    dense = np.zeros(shape, values.dtype)
    dense[tuple(at)] = values
    return dense


def _quant(t: fb.TensorT) -> QuantParams | None:
    q = t.quantization
    if q is None or q.scale is None or not len(q.scale):
        return None
    zp = list(q.zeroPoint) if q.zeroPoint is not None and len(q.zeroPoint) else [0] * len(q.scale)
    return QuantParams(list(q.scale), zp, q.quantizedDimension if len(q.scale) > 1 else None)


def _sq(t: TensorType) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized type."""
    if t.quant is None:
        raise _Unsupported("an integer tensor has no quantization parameters")
    return t.quant.scale[0], t.quant.zero_point[0]


# ---------------------------------------------------------------- helpers

def _act_name(op) -> str:
    act = getattr(op.builtinOptions, "fusedActivationFunction", ACT.NONE)
    if act not in _ACT_NAMES:
        raise _Unsupported(f"fused activation {act} (only NONE, RELU, RELU6)")
    return _ACT_NAMES[act]


def _then_act(ctx: _Ctx, op, v: Value, out: int) -> Value:
    """`v` followed by the op's fused activation as its own IR op (for ops without `act`)."""
    act = _act_name(op)
    if act == "none":
        return v
    if v.dtype != DType.f32:
        raise _Unsupported(f"fused {act} on an integer op without an integer clamp")
    return ctx.op(act, [v], out=out)


def _tflite_pads(padding: int, sizes, kernel, stride, dilation) -> list[int]:
    """TFLite's SAME (extra padding at the end) or VALID as begin-then-end pads."""
    if padding == PAD.VALID:
        return [0] * (2 * len(sizes))
    totals = [max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
              for n, k, s, d in zip(sizes, kernel, stride, dilation)]
    return [t // 2 for t in totals] + [t - t // 2 for t in totals]


def _window(op, sizes, kernel):
    o = op.builtinOptions
    stride = [o.strideH, o.strideW]
    dilation = [getattr(o, "dilationHFactor", 1) or 1, getattr(o, "dilationWFactor", 1) or 1]
    return dict(stride=stride, dilation=dilation, pads=_tflite_pads(o.padding, sizes, kernel, stride, dilation))


# ---------------------------------------------------------------- converters

IMPORTS: dict = {}


imports = registrar(IMPORTS)


def _integer(ctx: _Ctx, op, name: str, inputs: list[Value], attrs: dict | None = None, **folded):
    """Integer op `name` on `inputs` writing `op`'s output: `attrs` plus the kernel parameters the
    scales give (`quant.params`), with the float attributes in `folded` (act, beta, alpha) folded in."""
    attrs, types = attrs or {}, [*(v.type for v in inputs), ctx.tensor_type(op.outputs[0])]
    biased = name in ("qconv2d", "qconv_transpose2d", "qlinear")  # the bias (third operand) may have no scales
    if any(t.dtype.np.kind not in "iu" or t.quant is None and not (biased and k == 2 < len(inputs))
           for k, t in enumerate(types)):
        raise _Unsupported(f"on {[t.dtype.value for t in types]} tensors (an integer op needs integer tensors "
                           "with quantization parameters, the bias aside)")
    if not all(math.isfinite(f) for f in folded.values() if isinstance(f, float)):
        raise ctx.corrupt(f"float options {folded} are not finite")
    try:
        params = quant.params(name, types[:-1], types[-1], {**attrs, **folded})
    except Error as why:  # scales TFLite's kernel cannot work with
        raise _Unsupported(why.message) from None
    return ctx.op(name, inputs, {**attrs, **params}, out=op.outputs[0])


def _conv_like(ctx: _Ctx, op, x: Value, w: Value, bias: int, attrs: dict, name: str):
    """`name` (float) or its integer form (attributes from the scales) writing the op's output."""
    inputs = [x, w] + ([ctx.value(bias)] if bias >= 0 else [])
    act = _act_name(op)
    if x.dtype == DType.f32:
        return ctx.op(name, inputs, {**attrs, "act": act}, out=op.outputs[0])
    return _integer(ctx, op, "q" + name, inputs, attrs, act=act)


def _bias_index(op, k: int) -> int:
    return op.inputs[k] if len(op.inputs) > k else -1


@imports(OP.CONV_2D)
def _conv2d(ctx, op):
    x, w = ctx.value(op.inputs[0]), ctx.value(op.inputs[1])
    if x.type.rank != 4 or w.type.rank != 4 or not w.shape[-1]:
        raise ctx.corrupt(f"CONV_2D of input {list(x.shape)} and filter {list(w.shape)}")
    attrs = dict(_window(op, x.shape[1:3], w.shape[1:3]), groups=x.shape[-1] // w.shape[-1], layout="NHWC")
    return _conv_like(ctx, op, x, w, _bias_index(op, 2), attrs, "conv2d")


@imports(OP.DEPTHWISE_CONV_2D)
def _depthwise(ctx, op):
    """Filter [1, kH, kW, C_out] -> OHWI (C_out, kH, kW, 1), one group per input channel."""
    x, f = ctx.value(op.inputs[0]), ctx.value(op.inputs[1])
    if x.type.rank != 4 or f.type.rank != 4 or f.shape[0] != 1:
        raise ctx.corrupt(f"DEPTHWISE_CONV_2D of input {list(x.shape)} and filter {list(f.shape)} (not [1, kH, kW, C])")
    q = f.type.quant
    if q is not None and q.axis is not None:
        q = QuantParams(q.scale, q.zero_point, 0)
    w = ctx.g.const(np.ascontiguousarray(ctx.const(op.inputs[1])[0].transpose(2, 0, 1)[..., None]), f.name, quant=q)
    attrs = dict(_window(op, x.shape[1:3], w.shape[1:3]), groups=x.shape[-1], layout="NHWC")
    return _conv_like(ctx, op, x, w, _bias_index(op, 2), attrs, "conv2d")


@imports(OP.TRANSPOSE_CONV)
def _transpose_conv(ctx, op):
    """TFLite pads as for a conv reading the output; the end pad the size leaves is output_padding."""
    out_shape, w, x = ctx.const(op.inputs[0]), ctx.value(op.inputs[1]), ctx.value(op.inputs[2])
    o = op.builtinOptions
    stride, kernel = [o.strideH, o.strideW], list(w.shape[1:3])
    pads = _tflite_pads(o.padding, list(out_shape[1:3]), kernel, stride, [1, 1])[:2]
    ends = [(n - 1) * s + k - p - int(m) for n, s, k, p, m in zip(x.shape[1:3], stride, kernel, pads, out_shape[1:3])]
    attrs = dict(stride=stride, dilation=[1, 1], pads=pads + [max(e, 0) for e in ends],
                 output_padding=[max(-e, 0) for e in ends], groups=1, layout="NHWC")
    return _conv_like(ctx, op, x, w, _bias_index(op, 3), attrs, "conv_transpose2d")


@imports(OP.FULLY_CONNECTED)
def _fully_connected(ctx, op):
    x, w = ctx.value(op.inputs[0]), ctx.value(op.inputs[1])
    if w.type.rank != 2 or not w.shape[1]:
        raise ctx.corrupt(f"FULLY_CONNECTED weights of shape {list(w.shape)}")
    if x.type.rank != 2 and not op.builtinOptions.keepNumDims:  # TFLite flattens the leading axes
        x = ctx.op("reshape", [x], {"shape": [x.type.numel // w.shape[1], w.shape[1]]})
    inputs = [x, w] + ([ctx.value(op.inputs[2])] if _bias_index(op, 2) >= 0 else [])
    act = _act_name(op)
    if x.dtype == DType.f32:
        return ctx.op("linear", inputs, {"act": act}, out=op.outputs[0])
    return _integer(ctx, op, "qlinear", inputs, act=act)


@imports(OP.ADD, OP.SUB, OP.MUL)
def _binary(ctx, op):
    a, b = ctx.value(op.inputs[0]), ctx.value(op.inputs[1])
    name = {OP.ADD: "add", OP.SUB: "sub", OP.MUL: "mul"}[ctx.code]
    act = _act_name(op)
    if a.dtype == DType.f32:
        return ctx.op(name, [a, b], {"act": act}, out=op.outputs[0])
    return _integer(ctx, op, "q" + name, [a, b], act=act)


@imports(OP.DIV)
def _div(ctx, op):
    v = ctx.op("div", [ctx.value(op.inputs[0]), ctx.value(op.inputs[1])],
               out=None if _act_name(op) != "none" else op.outputs[0])
    return _then_act(ctx, op, v, op.outputs[0])


@imports(OP.AVERAGE_POOL_2D, OP.MAX_POOL_2D)
def _pool(ctx, op):
    """TFLite's average pool divides by the valid taps only: count_include_pad=False."""
    x, o = ctx.value(op.inputs[0]), op.builtinOptions
    kernel = [o.filterHeight, o.filterWidth]
    attrs = dict(_window(op, x.shape[1:3], kernel), kernel=kernel, layout="NHWC")
    del attrs["dilation"]
    is_max, act = ctx.code == OP.MAX_POOL_2D, _act_name(op)
    if x.dtype != DType.f32 and not is_max:
        return _integer(ctx, op, "qavg_pool2d", [x], attrs, act=act)
    v = ctx.op("max_pool2d" if is_max else "avg_pool2d", [x], attrs if is_max else dict(attrs, count_include_pad=False),
               out=None if act != "none" else op.outputs[0])
    return _then_act(ctx, op, v, op.outputs[0])


@imports(OP.MEAN)
def _mean(ctx, op):
    x = ctx.value(op.inputs[0])
    attrs = dict(axes=_axes(ctx, op.inputs[1], x.type.rank), keepdims=bool(op.builtinOptions.keepDims))
    if x.dtype == DType.f32:
        return ctx.op("mean", [x], attrs, out=op.outputs[0])
    return _integer(ctx, op, "qmean", [x], attrs)


@imports(OP.RESHAPE, OP.SQUEEZE, OP.EXPAND_DIMS)
def _reshape(ctx, op):
    """The result's shape is in its tensor: every one of these is a reshape."""
    return ctx.op("reshape", [ctx.value(op.inputs[0])], {"shape": list(_shape(ctx.tensors[op.outputs[0]]))},
                  out=op.outputs[0])


@imports(OP.TRANSPOSE)
def _transpose(ctx, op):
    perm = [int(p) for p in ctx.const(op.inputs[1]).reshape(-1)]
    return ctx.op("transpose", [ctx.value(op.inputs[0])], {"perm": perm},
                  out=op.outputs[0])


@imports(OP.CONCATENATION)
def _concat(ctx, op):
    act = _act_name(op)
    v = ctx.op("concat", [ctx.value(i) for i in op.inputs], {"axis": op.builtinOptions.axis},
               out=None if act != "none" else op.outputs[0])
    return _then_act(ctx, op, v, op.outputs[0])


def _split_into(ctx, op, x: Value, axis: int):
    sizes = [_shape(ctx.tensors[i])[axis] for i in op.outputs]
    return ctx.node("split", [x], {"axis": axis, "sizes": sizes}, op.outputs)


@imports(OP.SPLIT)
def _split(ctx, op):
    x = ctx.value(op.inputs[1])
    return _split_into(ctx, op, x, _axes(ctx, op.inputs[0], x.type.rank, one=True)[0])


@imports(OP.SPLIT_V)
def _split_v(ctx, op):
    x = ctx.value(op.inputs[0])
    return _split_into(ctx, op, x, _axes(ctx, op.inputs[2], x.type.rank, one=True)[0])


@imports(OP.STRIDED_SLICE)
def _strided_slice(ctx, op):
    """Positive strides, begin/end masks; shrink_axis_mask becomes a reshape after the slice."""
    x, o = ctx.value(op.inputs[0]), op.builtinOptions
    begin, end, strides = (ctx.const(op.inputs[k]).reshape(-1).tolist() for k in (1, 2, 3))
    if o.ellipsisMask or o.newAxisMask or o.offset or any(s <= 0 for s in strides) or len(begin) != x.type.rank:
        raise _Unsupported("only positive strides over every axis (no ellipsis, new axes or offsets)")
    bit = lambda mask, i: mask >> i & 1  # noqa: E731
    starts = [b % x.shape[i] if bit(o.shrinkAxisMask, i) else 0 if bit(o.beginMask, i) else b for i, b in enumerate(begin)]
    ends = [starts[i] + 1 if bit(o.shrinkAxisMask, i) else x.shape[i] if bit(o.endMask, i) else e
            for i, e in enumerate(end)]
    attrs = dict(axes=list(range(x.type.rank)), starts=starts, ends=ends, steps=strides)
    if not o.shrinkAxisMask:
        return ctx.op("slice", [x], attrs, out=op.outputs[0])
    return ctx.op("reshape", [ctx.op("slice", [x], attrs)], {"shape": list(_shape(ctx.tensors[op.outputs[0]]))},
                  out=op.outputs[0])


@imports(OP.PAD, OP.PADV2)
def _pad(ctx, op):
    x, table = ctx.value(op.inputs[0]), ctx.const(op.inputs[1]).reshape(-1, 2)
    if ctx.code == OP.PADV2:
        value = ctx.const(op.inputs[2]).reshape(-1)[0].item()
    else:  # zeros: the zero point of a quantized tensor
        value = _sq(x.type)[1] if x.dtype != DType.f32 else 0.0
    pads = [int(b) for b in table[:, 0]] + [int(e) for e in table[:, 1]]
    return ctx.op("pad", [x], {"pads": pads, "value": value}, out=op.outputs[0])


@imports(OP.SOFTMAX)
def _softmax(ctx, op):
    x, beta = ctx.value(op.inputs[0]), op.builtinOptions.beta
    if x.dtype != DType.f32:
        return _integer(ctx, op, "qsoftmax", [x], {"axis": -1}, beta=beta)
    if beta != 1:
        x = ctx.op("mul", [x, ctx.g.const(np.float32(beta), "beta")])
    return ctx.op("softmax", [x], {"axis": -1}, out=op.outputs[0])


@imports(OP.LOG_SOFTMAX)
def _log_softmax(ctx, op):
    x = ctx.value(op.inputs[0])
    if x.dtype != DType.f32:
        return _integer(ctx, op, "qlog_softmax", [x], {"axis": -1})
    return ctx.op("log_softmax", [x], {"axis": -1}, out=op.outputs[0])


def _unary(name: str, qname: str | None = None):
    def convert(ctx, op):
        x = ctx.value(op.inputs[0])
        if x.dtype == DType.f32 or qname is None:
            return ctx.op(name, [x], out=op.outputs[0])
        return _integer(ctx, op, qname, [x])
    return convert


IMPORTS[OP.LOGISTIC] = _unary("sigmoid", "qlogistic")
IMPORTS[OP.TANH] = _unary("tanh", "qtanh")
IMPORTS[OP.HARD_SWISH] = _unary("hardswish", "qhardswish")
for _code, _name in ((OP.EXP, "exp"), (OP.LOG, "log"), (OP.SQRT, "sqrt"), (OP.ABS, "abs"), (OP.SIGN, "sign")):
    IMPORTS[_code] = _unary(_name)


def _float_only(ctx, op, n: int = 1) -> list[Value]:
    """The first `n` inputs, which must be float tensors (the ops imported only in float)."""
    xs = [ctx.value(i) for i in op.inputs[:n]]
    if any(x.dtype != DType.f32 for x in xs):
        raise _Unsupported("only on float tensors")
    return xs


@imports(OP.NEG)
def _neg(ctx, op):
    (x,) = _float_only(ctx, op)
    return ctx.op("mul", [x, ctx.g.const(np.float32(-1), "minus_one")], out=op.outputs[0])


@imports(OP.POW)
def _pow(ctx, op):
    return ctx.op("pow", _float_only(ctx, op, 2), out=op.outputs[0])


@imports(OP.SUM, OP.REDUCE_MAX, OP.REDUCE_MIN)
def _reduce(ctx, op):
    x = _float_only(ctx, op)[0]
    axes = _axes(ctx, op.inputs[1], x.type.rank)
    mode = {OP.SUM: "sum", OP.REDUCE_MAX: "max", OP.REDUCE_MIN: "min"}[ctx.code]
    return ctx.op("reduce", [x], dict(axes=axes, keepdims=bool(op.builtinOptions.keepDims), mode=mode),
                  out=op.outputs[0])


@imports(OP.TILE)
def _tile(ctx, op):
    x = _float_only(ctx, op)[0]
    return ctx.op("tile", [x], {"repeats": [int(r) for r in np.atleast_1d(ctx.const(op.inputs[1]))]},
                  out=op.outputs[0])


@imports(OP.RELU, OP.RELU6, OP.RELU_N1_TO_1)
def _relu(ctx, op):
    """relu/relu6 on floats; on integers TFLite clamps at the quantized bounds (same scale in and out)."""
    x, out = ctx.value(op.inputs[0]), ctx.tensor_type(op.outputs[0])
    lo, hi = {OP.RELU: (0.0, np.inf), OP.RELU6: (0.0, 6.0), OP.RELU_N1_TO_1: (-1.0, 1.0)}[ctx.code]
    if x.dtype == DType.f32:
        name = {OP.RELU: "relu", OP.RELU6: "relu6"}.get(ctx.code)
        return ctx.op(name, [x], out=op.outputs[0]) if name else \
            ctx.op("clamp", [x], {"min": lo, "max": hi}, out=op.outputs[0])
    if x.type.quant != out.quant:
        raise _Unsupported("an integer relu that rescales")
    s, zp = _sq(x.type)
    info = np.iinfo(x.dtype.np)
    bound = lambda r: zp + quant.round_half_away(float(np.float32(r) / np.float32(s)))  # noqa: E731
    return ctx.op("clamp", [x], {"min": max(info.min, bound(lo)), "max": min(info.max, bound(hi)) if hi < np.inf
                                 else int(info.max)}, out=op.outputs[0])


@imports(OP.LEAKY_RELU)
def _leaky_relu(ctx, op):
    x, alpha = ctx.value(op.inputs[0]), op.builtinOptions.alpha
    if x.dtype == DType.f32:
        return ctx.op("leaky_relu", [x], {"alpha": alpha}, out=op.outputs[0])
    return _integer(ctx, op, "qleaky_relu", [x], alpha=alpha)


@imports(OP.PRELU)
def _prelu(ctx, op):
    x, alpha = ctx.value(op.inputs[0]), ctx.value(op.inputs[1])
    if x.dtype == DType.f32:
        return ctx.op("prelu", [x, alpha], out=op.outputs[0])
    return _integer(ctx, op, "qprelu", [x, alpha])


@imports(OP.GELU)
def _gelu(ctx, op):
    approximate = "tanh" if op.builtinOptions.approximate else "none"
    return ctx.op("gelu", [ctx.value(op.inputs[0])], {"approximate": approximate}, out=op.outputs[0])


@imports(OP.MAXIMUM, OP.MINIMUM)
def _min_max(ctx, op):
    """Against a constant scalar of the same type: a one-sided clamp (how the emitter writes clamp);
    between float tensors: maximum / minimum."""
    x, c = ctx.value(op.inputs[0]), ctx.value(op.inputs[1])
    if not c.is_const or c.type.numel != 1 or c.type.quant != x.type.quant:
        if x.dtype == c.dtype == DType.f32:
            return ctx.op("maximum" if ctx.code == OP.MAXIMUM else "minimum", [x, c], out=op.outputs[0])
        raise _Unsupported("on integer tensors only against a constant scalar of the input's type")
    inf = np.inf if x.dtype == DType.f32 else int(np.iinfo(x.dtype.np).max)
    bounds = {"min": c.data.item(), "max": inf} if ctx.code == OP.MAXIMUM else {"min": -inf, "max": c.data.item()}
    return ctx.op("clamp", [x], bounds, out=op.outputs[0])


@imports(OP.BATCH_MATMUL)
def _batch_matmul(ctx, op):
    a, b = ctx.value(op.inputs[0]), ctx.value(op.inputs[1])
    if a.dtype != DType.f32:
        raise _Unsupported("integer BATCH_MATMUL")
    o = op.builtinOptions
    def swap(v):  # the last two axes
        r = v.type.rank
        return ctx.op("transpose", [v], {"perm": [*range(r - 2), r - 1, r - 2]})
    return ctx.op("matmul", [swap(a) if o.adjX else a, swap(b) if o.adjY else b], out=op.outputs[0])


_LSTM_EXTRAS = {9: "peepholes", 10: "peepholes", 11: "peepholes", 16: "a projection", 17: "a projection",
                20: "layer norm", 21: "layer norm", 22: "layer norm", 23: "layer norm"}


@imports(OP.UNIDIRECTIONAL_SEQUENCE_LSTM)
def _sequence_lstm(ctx, op):
    """A float LSTM unrolled over the sequence (rnn.py). Its state tensors are TFLite variables,
    kept across invocations (until the runtime resets them): they become IR states, read as the
    initial h and c and written with the final ones."""
    ins = op.inputs + [-1] * (24 - len(op.inputs))
    o, x = op.builtinOptions, ctx.value(ins[0])
    gates = [*range(1, 9), *range(12, 16)]  # weights and biases of the i, f, c, o gates
    extras = {what for k, what in _LSTM_EXTRAS.items() if ins[k] >= 0} | \
        ({"no input gate (CIFG)"} if any(ins[k] < 0 for k in gates) else set())
    if extras or o.cellClip or o.projClip or o.fusedActivationFunction != ACT.TANH:
        raise _Unsupported(f"{', '.join(sorted(extras)) or 'clipping or a cell activation other than tanh'}; only the "
                           "basic LSTM (all gates, tanh, no peepholes, projection, layer norm or clipping)")
    if x.dtype != DType.f32 or any(ctx.tensors[ins[k]].type != fb.TensorType.FLOAT32 for k in gates):
        raise _Unsupported("an integer or hybrid LSTM (TFLite Micro's integer kernel); only float32 is imported")
    cell = rnn.Cell("lstm", *(np.concatenate([ctx.const(ins[k + j]) for j in range(4)]) for k in (1, 5, 12)))

    def state(i):  # (the Value of initial state tensor i, its resource name if it is a variable)
        t = ctx.tensors[i]
        if not t.isVariable:
            return ctx.value(i), None
        name, data = _text(t.name) or f"state{i}", ctx.model.buffers[t.buffer].data
        ctx.reads[name] = ctx.held[name] = ctx.g.add_state(name, ctx.tensor_type(i),
                                                           ctx.array(i) if data is not None and len(data) else None)
        return ctx.reads[name], name

    (h, h_var), (c, c_var) = state(ins[18]), state(ins[19])
    time_axis, ir_op = 0 if o.timeMajor else 1, lambda name, vs, **a: ctx.op(name, vs, a)
    hs, h, c = rnn.direction(ir_op, ctx.g, ctx.op_name, x, time_axis, cell, h, c)
    ctx.held.update({k: v for k, v in ((h_var, h), (c_var, c)) if k})
    y = rnn.stack(ir_op, hs, time_axis)
    if y.shape != ctx.tensor_type(op.outputs[0]).shape:
        raise _Unsupported(f"the file gives the output shape {list(ctx.tensor_type(op.outputs[0]).shape)}, "
                           f"the LSTM computes {list(y.shape)}")
    return [y]


@imports(OP.RESIZE_NEAREST_NEIGHBOR, OP.RESIZE_BILINEAR)
def _resize(ctx, op):
    x, o, size = ctx.value(op.inputs[0]), op.builtinOptions, [int(s) for s in ctx.const(op.inputs[1]).reshape(-1)]
    nearest = ctx.code == OP.RESIZE_NEAREST_NEIGHBOR
    ok = (not o.alignCorners and not o.halfPixelCenters) if nearest else o.alignCorners != o.halfPixelCenters
    if not ok:
        raise _Unsupported(f"align_corners={bool(o.alignCorners)}, half_pixel_centers={bool(o.halfPixelCenters)} "
                           "has no torch equivalent")
    attrs = dict(size=size, mode="nearest" if nearest else "bilinear", align_corners=bool(o.alignCorners),
                 layout="NHWC")
    return ctx.op("resize", [x], attrs, out=op.outputs[0])


@imports(OP.QUANTIZE)
def _quantize(ctx, op):
    x, out = ctx.value(op.inputs[0]), ctx.tensor_type(op.outputs[0])
    if x.dtype == DType.f32:
        q = out.quant
        if q is None or out.dtype.np.kind not in "iu":
            raise _Unsupported(f"quantizes to {out.dtype.value} tensor {ctx.op_name!r} without quantization parameters")
        attrs = dict(scale=list(q.scale), zero_point=list(q.zero_point), axis=q.axis or 0, dtype=out.dtype.value)
        return ctx.op("quantize", [x], attrs, out=op.outputs[0])
    return _integer(ctx, op, "requantize", [x])


@imports(OP.DEQUANTIZE)
def _dequantize(ctx, op):
    """An integer tensor's dequantize; of a float16 constant (float16 quantization), that
    constant in float32."""
    x = ctx.value(op.inputs[0])
    if x.is_const and x.dtype == DType.f16:
        return ctx.g.const(x.data.astype(np.float32), _text(ctx.tensors[op.outputs[0]].name) or "const")
    q = x.type.quant
    if q is None:
        raise _Unsupported(f"dequantizes {x.dtype.value} tensor {x.name!r}, which has no quantization parameters")
    return ctx.op("dequantize", [x], dict(scale=list(q.scale), zero_point=list(q.zero_point), axis=q.axis or 0),
                  out=op.outputs[0])


@imports(OP.DENSIFY)
def _densify_op(ctx, op):
    """A sparse constant's dense form: the constant, densified on reading."""
    return ctx.g.const(ctx.const(op.inputs[0]), _text(ctx.tensors[op.outputs[0]].name) or "const",
                       quant=_quant(ctx.tensors[op.outputs[0]]))


def _resource(options) -> str:
    return "/".join(n for n in (_text(options.container), _text(options.sharedName)) if n) or "resource"


@imports(OP.VAR_HANDLE)
def _var_handle(ctx, op):
    ctx.handles[op.outputs[0]] = _resource(op.builtinOptions)
    return None


def _state_of(ctx, handle: int, t: TensorType) -> str:
    """The resource behind `handle`, made a state of type `t` at its first use."""
    if handle not in ctx.handles:
        raise _Unsupported("uses a resource no VAR_HANDLE of this subgraph made")
    name = ctx.handles[handle]
    if name not in ctx.reads:
        init = ctx.initial.get(name, np.zeros(t.shape, t.dtype.np))
        if init.shape != t.shape or init.dtype != t.dtype.np:
            raise _Unsupported(f"resource {name!r} is initialised with {init.dtype}{list(init.shape)} "
                               f"but used as {t.dtype.value}{list(t.shape)}")
        ctx.reads[name] = ctx.held[name] = ctx.g.add_state(name, t, init)
    return name


@imports(OP.READ_VARIABLE)
def _read_variable(ctx, op):
    return ctx.held[_state_of(ctx, op.inputs[0], ctx.tensor_type(op.outputs[0]))]


@imports(OP.ASSIGN_VARIABLE)
def _assign_variable(ctx, op):
    value = ctx.value(op.inputs[1])
    name = _state_of(ctx, op.inputs[0], value.type)
    want = ctx.reads[name].type
    if (value.shape, value.dtype, value.type.quant) != (want.shape, want.dtype, want.quant):
        raise _Unsupported(f"assigns {value.dtype.value}{list(value.shape)} to resource {name!r} of "
                           f"{want.dtype.value}{list(want.shape)} (or with other quantization parameters)")
    ctx.held[name] = value
    return []


@imports(OP.CALL_ONCE)
def _call_once(ctx, op):
    """The initial values of the resources that the initialisation subgraph assigns constants to."""
    sub = ctx.model.subgraphs[op.builtinOptions.initSubgraphIndex]
    handles = {}
    for o in sub.operators or []:
        oc = ctx.model.operatorCodes[o.opcodeIndex]
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        ctx.check_operator(o, code)
        ins = o.inputs
        if code == OP.VAR_HANDLE:
            handles[int(o.outputs[0])] = _resource(o.builtinOptions)
        elif code == OP.ASSIGN_VARIABLE and ins[0] in handles and \
                (data := ctx.model.buffers[sub.tensors[ins[1]].buffer].data) is not None and len(data):
            t = sub.tensors[ins[1]]
            ctx.initial[handles[ins[0]]] = np.frombuffer(np.asarray(data, np.uint8).tobytes(),
                                                         _dtype(t).np).reshape(_shape(t))
        else:
            raise _Unsupported(f"its subgraph {_text(sub.name)!r} does more than assign constants to resources "
                               f"({_OP_NAMES.get(code, code)})")
    return []


# ---------------------------------------------------------------- file -> graph

def _corrupt(where: str, what: str):
    raise ModelLoadError(f"{where} is corrupt: {what}", _HINT)


def _check_subgraph(sub, buffers, codes, bad, where: str) -> None:
    """Every index and buffer size of one subgraph in range (`bad(what)` raises), and every tensor
    within MAX_TENSOR_BYTES (ResourceLimitError), before anything is allocated."""
    tensors = sub.tensors or []
    for i, t in enumerate(tensors):
        if not 0 <= t.buffer < len(buffers):
            bad(f"tensor {i} points at buffer {t.buffer} of {len(buffers)}")
        if any(d < 0 for d in _shape(t)):
            bad(f"tensor {i} ({_text(t.name)!r}) has a dynamic shape {list(_shape(t))}")
        check_size(_shape(t), _IR_DTYPE[t.type].itemsize if t.type in _IR_DTYPE else 1,
                   f"tensor {i} ({_text(t.name)!r}) of {where}")
        q = t.quantization
        scale, zp = (q.scale, q.zeroPoint) if q is not None else (None, None)
        if scale is not None and len(scale) and not np.all(np.isfinite(scale) & (np.asarray(scale) > 0)):
            bad(f"tensor {i} ({_text(t.name)!r}) has quantization scales {list(scale)[:4]}, not all finite and positive")
        if scale is not None and len(scale) > 1 and not (0 <= q.quantizedDimension < len(_shape(t))
                                                         and len(scale) == _shape(t)[q.quantizedDimension]):
            bad(f"tensor {i} ({_text(t.name)!r}) has {len(scale)} scales for axis {q.quantizedDimension} "
                f"of shape {list(_shape(t))}")
        if zp is not None and len(zp) and len(zp) != (len(scale) if scale is not None else 0):
            bad(f"tensor {i} ({_text(t.name)!r}) has {len(zp)} zero points for "
                f"{len(scale) if scale is not None else 0} scales")
        data_ = buffers[t.buffer].data
        if data_ is not None and len(data_) and t.type in _IR_DTYPE and t.sparsity is None:
            want = int(np.prod(_shape(t), dtype=np.int64)) * _IR_DTYPE[t.type].itemsize
            if len(data_) != want:
                bad(f"tensor {i} ({_text(t.name)!r}) has {len(data_)} bytes of data, its shape needs {want}")
    for k, o in enumerate(sub.operators or []):
        if not 0 <= o.opcodeIndex < len(codes):
            bad(f"operator {k} uses operator code {o.opcodeIndex} of {len(codes)}")
        ins, outs = (list(v) if v is not None else [] for v in (o.inputs, o.outputs))
        if any(not -1 <= i < len(tensors) for i in ins) or any(not 0 <= i < len(tensors) for i in outs):
            bad(f"operator {k} reads or writes a tensor index outside 0..{len(tensors) - 1}")
    if any(not 0 <= i < len(tensors) for i in [*(sub.inputs if sub.inputs is not None else ()),
                                                *(sub.outputs if sub.outputs is not None else ())]):
        bad("a subgraph input or output is not a tensor")


def _parse(data: bytes, where: str) -> fb.ModelT:
    """The model, after checks that turn a truncated or corrupt file into a ModelLoadError."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelLoadError(f"{where} is not a TFLite model (no 'TFL3' file identifier)", _HINT)
    try:
        model = fb.ModelT.InitFromPackedBuf(data, 0)
    except (struct.error, TypeError, ValueError) as err:  # what the reader raises on offsets, numbers, sizes out of range
        raise ModelLoadError(f"{where} is truncated or corrupt ({type(err).__name__}: {err})", _HINT) from None
    if not model.subgraphs:
        raise ModelLoadError(f"{where} has no subgraph", _HINT)
    buffers, codes = model.buffers or [], model.operatorCodes or []
    for k, sub in enumerate(model.subgraphs):  # the model's, then those CALL_ONCE runs
        _check_subgraph(sub, buffers, codes, lambda what, k=k: _corrupt(where, f"subgraph {k}: {what}" if k else what),
                        where)
    return model


def load_tflite(path_or_bytes) -> Graph:
    """A .tflite file (a path, or its bytes) -> Graph with channel-last layout ops."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data, where = bytes(path_or_bytes), "the TFLite data"
    else:
        where = os.fspath(path_or_bytes)
        try:
            with open(where, "rb") as f:
                data = f.read()
        except OSError as err:
            raise ModelLoadError(f"cannot read {where}: {err.strerror}", "check the path") from None
    model = _parse(data, where)
    return _convert(_Ctx(model, model.subgraphs[0], where), where)


def _convert(ctx: _Ctx, where: str) -> Graph:
    model, sub = ctx.model, ctx.model.subgraphs[0]
    try:
        for i in (int(i) for i in sub.inputs):
            ctx.env[i] = ctx.g.add_input(_text(sub.tensors[i].name) or "input", ctx.tensor_type(i))
    except _Unsupported as why:
        raise ModelLoadError(f"{where}: {why}", _HINT) from None
    missing, skipped = [], set()
    for k, o in enumerate(sub.operators or []):
        oc = model.operatorCodes[o.opcodeIndex]
        ctx.code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        name = _OP_NAMES.get(ctx.code, f"op {ctx.code}")
        name = f"CUSTOM {_text(oc.customCode)!r}" if ctx.code == OP.CUSTOM else name
        ctx.op_name = f"operator {k} ({name})"
        ctx.check_operator(o, ctx.code)
        ctx.op_name = _text(sub.tensors[o.outputs[0]].name) if o.outputs else f"{name.lower()}_{k}"
        if any(i in skipped for i in o.inputs):  # fed by a placeholder of a type the IR has not
            skipped.update(o.outputs)
            continue
        try:
            if ctx.code not in IMPORTS:
                raise _Unsupported()
            result = IMPORTS[ctx.code](ctx, o)
            results = result if isinstance(result, (list, tuple)) else [result]
            if result is not None and len(results) != len(o.outputs):  # (VAR_HANDLE's result is a resource)
                raise ctx.corrupt(f"{name} writes {len(o.outputs)} tensors, its IR form has {len(results)} results")
            if result is not None:
                ctx.env.update(zip(o.outputs, results))
        except (_Unsupported, ShapeError) as why:
            reason = why.reason if isinstance(why, ShapeError) else str(why)
            missing.append(UnsupportedItem(name + (f": {reason}" if reason else ""), ctx.op_name))
            for i in o.outputs:  # placeholders, so that the ops after this one are converted (or refused) too
                try:
                    ctx.env[i] = ctx.g.add_input(_text(sub.tensors[i].name) or "placeholder", ctx.tensor_type(i))
                except _Unsupported:
                    skipped.add(i)
    if missing:
        raise UnsupportedOpError(missing, "mcuforge imports the TFLite builtin ops that have an IR equivalent; "
                                          "rewrite or remove these in the source model",
                                 f"{where} uses {len(missing)} op(s) that mcuforge cannot import:")
    for name, read in ctx.reads.items():
        ctx.g.set_state_write(read, ctx.held[name])
    ctx.op_name = "the subgraph outputs"
    try:
        ctx.g.outputs = [ctx.value(int(i)) for i in sub.outputs]
    except _Unsupported as why:
        raise ModelLoadError(f"{where}: a subgraph output {why}", _HINT) from None
    return ctx.g
