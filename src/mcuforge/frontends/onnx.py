"""ONNX frontend: an ONNX model (a file or a ModelProto) -> an `ir.Graph` with static shapes.

`load_onnx` checks the model with `onnx.checker`, fixes dynamic input dimensions from
`input_shapes`, runs ONNX shape inference, then converts node by node through `IMPORTS`, the one
table from an ONNX op_type to a converter `(ctx, node) -> Value | list[Value]` (one per ONNX
output). Initializers and Constant nodes become IR constants. A node whose inputs are all
constants, and any Shape (shapes are static), is folded to a constant by onnx's reference
evaluator, so the Shape -> Gather -> Concat -> Reshape chains exporters write disappear. IR values
are named after the ONNX nodes (op_type + index when unnamed). Exporter idioms that are one IR op
become it: MatMul + Add of a bias (linear), x * Sigmoid(x) (silu), x * HardSigmoid(x) (hardswish).
Composite ONNX ops become IR ops where that is exact up to float32 rounding (3-D convolutions and
pools over depth taps, LRN, InstanceNormalization, reflect/edge Pad, DepthToSpace, ...); a
sequence (positions constant) is a tuple of Values while importing.

Ops without a converter, or used in a way a converter refuses, are collected and reported in one
`UnsupportedOpError`; their results become placeholders of the types shape inference gives them,
so the nodes after them are converted (and refused) too, and skipped only where those types are
unknown (then a node is still listed if its op has no converter). Each result's shape is checked
against ONNX shape inference where that knows it. Models older than opset 13 are first converted
to opset 13 by onnx's version converter (which also turns Upsample into Resize).
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, version_converter
from onnx.reference import ReferenceEvaluator

from ..errors import ModelLoadError, ShapeError, UnsupportedItem, UnsupportedOpError, UsageError
from ..ir.graph import Graph, Value
from ..ir.ops import norm_axis, registrar
from ..ir.types import DType, TensorType
from . import rnn

IMPORTS: dict = {}
MIN_OPSET = 13  # older models are converted to it first
FOLD_LIMIT = 1 << 24  # elements a folded node may make: sizes in a file must not make us allocate gigabytes
_SKIPPED = object()  # the env entry of a tensor that was not converted


class _Unsupported(Exception):
    """A refusal to convert a node: the reason, or "" for an op type without a converter."""


imports = registrar(IMPORTS)


class _Ctx:
    """What a converter sees: the graph being built, the ONNX node at hand and its operands."""

    def __init__(self, g: Graph, opset: int, uses: Counter):
        self.g, self.opset, self.uses = g, opset, uses
        self.source_opset = opset  # the model's own, before the conversion to MIN_OPSET
        self.known: dict[str, tuple | None] = {}  # the static shapes ONNX's shape inference gives
        self.env: dict[str, object] = {}
        self.node: onnx.NodeProto | None = None
        self.name = ""
        self.attrs: dict = {}

    def has(self, i: int) -> bool:
        return len(self.node.input) > i and self.node.input[i] != ""

    def x(self, i: int) -> Value:
        """Operand i, which the converter needs: an absent one (an empty name) is a corrupt node."""
        if not self.has(i):
            raise ModelLoadError(f"node {self.name} ({self.node.op_type}) has no input {i}, which it needs",
                                 "the file is corrupt or written by a broken exporter; export it again")
        return self.env[self.node.input[i]]

    def const(self, i: int, default=None):
        """Operand i as a numpy array (`default` when absent); refuses a computed one."""
        if not self.has(i):
            return default
        v = self.x(i)
        if not v.is_const:
            raise _Unsupported(f"input {i} ({self.node.input[i]}) must be a constant")
        return v.data

    def attr(self, name: str, default=None):
        return self.attrs.get(name, default)

    def op(self, op: str, inputs, **attrs) -> Value:
        return self.g.op(op, list(inputs), attrs, name=self.name)

    def c(self, array) -> Value:
        return self.g.const(np.asarray(array, np.float32), name=f"{self.name}.c")

    def sole_user(self, i: int, op: str):
        """The IR node of `op` producing operand i, when the current node is its only user."""
        p = self.x(i).producer
        return p if p is not None and p.op == op and self.uses[self.node.input[i]] == 1 else None


def _ints(v) -> list[int]:
    return [int(a) for a in np.asarray(v).reshape(-1)]


def _axes(ctx, input_index: int) -> list[int] | None:
    """Axes given as an attribute (ReduceMean before opset 18) or as input `input_index`."""
    a = ctx.attr("axes")
    return list(a) if a is not None else (_ints(ctx.const(input_index)) if ctx.has(input_index) else None)


def _fits(shape, target) -> bool:
    """Whether `shape` broadcasts to `target` without growing it."""
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def _sole_output(ctx):
    if any(o and ctx.uses[o] for o in ctx.node.output[1:]):
        raise _Unsupported("its extra outputs are used (training statistics, masks or indices)")


# ---------------------------------------------------------------- convolution, linear, normalization

def _pads(ctx, sizes, kernel, strides, dilations) -> list[int]:
    """ONNX-style pads, resolving auto_pad SAME_* / VALID against the input sizes."""
    nd, auto = len(kernel), ctx.attr("auto_pad", "NOTSET")
    if auto == "NOTSET":
        return _ints(ctx.attr("pads", [0] * 2 * nd))
    if auto == "VALID":
        return [0] * 2 * nd
    total = [max((-(-s // st) - 1) * st + (k - 1) * d + 1 - s, 0)
             for s, k, st, d in zip(sizes, kernel, strides, dilations)]
    small, big = [t // 2 for t in total], [t - t // 2 for t in total]
    return small + big if auto == "SAME_UPPER" else big + small


@imports("Conv")
def _conv(ctx, n):
    x, w = ctx.x(0), ctx.x(1)
    nd = w.type.rank - 2
    if nd not in (1, 2, 3):
        raise _Unsupported(f"{nd}-D convolution")
    strides, dil = _ints(ctx.attr("strides", [1] * nd)), _ints(ctx.attr("dilations", [1] * nd))
    pads = _pads(ctx, x.shape[2:], w.shape[2:], strides, dil)
    attrs = dict(stride=strides, pads=pads, dilation=dil, groups=ctx.attr("group", 1))
    if nd == 3:
        return _conv3d(ctx, x, w, ctx.x(2) if ctx.has(2) else None, **attrs)
    return ctx.op(f"conv{nd}d", [ctx.x(i) for i in range(3) if ctx.has(i)], **attrs)


def _depth_taps(ctx, x, k, stride, dil, pads, fill):
    """The `k` views of channel-first 5-D `x` (padded in depth with `fill`) that a window of `k`
    taps along the depth axis reads at each output depth: tap i is x[:, :, i * dil :: stride]."""
    if pads[0] or pads[3]:
        x = ctx.op("pad", [x], pads=[0, 0, pads[0], 0, 0, 0, 0, pads[3], 0, 0], value=fill)
    out = (x.shape[2] - dil * (k - 1) - 1) // stride + 1
    if out < 1:
        raise ShapeError(None, f"a depth window of {dil * (k - 1) + 1} is larger than the padded depth {x.shape[2]}")
    return [ctx.op("slice", [x], axes=[2], starts=[i * dil], ends=[i * dil + (out - 1) * stride + 1], steps=[stride])
            for i in range(k)], out


def _conv3d(ctx, x, w, b, stride, pads, dilation, groups):
    """A 3-D convolution as one 2-D convolution over (batch x output depth) images whose channels
    are (input channel, depth tap): the weight (O, C/g, kD, kH, kW) is then (O, C/g * kD, kH, kW)."""
    if not w.is_const:
        raise _Unsupported("a computed 3-D convolution weight")
    (nn, c), (o, cg, kd, kh, kw) = x.shape[:2], w.shape
    taps, d = _depth_taps(ctx, x, kd, stride[0], dilation[0], pads, 0.0)
    taps = [ctx.op("reshape", [t], shape=[nn, c, 1, d, *x.shape[3:]]) for t in taps]
    t = ctx.op("transpose", [ctx.op("concat", taps, axis=2)], perm=[0, 3, 1, 2, 4, 5])
    t = ctx.op("reshape", [t], shape=[nn * d, c * kd, *x.shape[3:]])
    y = ctx.op("conv2d", [t, ctx.c(w.data.reshape(o, cg * kd, kh, kw)), *([b] if b is not None else [])],
               stride=stride[1:], pads=[pads[1], pads[2], pads[4], pads[5]], dilation=dilation[1:], groups=groups)
    y = ctx.op("reshape", [y], shape=[nn, d, o, *y.shape[2:]])
    return ctx.op("transpose", [y], perm=[0, 2, 1, 3, 4])


@imports("ConvTranspose")
def _conv_transpose(ctx, n):
    if ctx.x(1).type.rank != 4 or ctx.attr("output_shape") or ctx.attr("auto_pad", "NOTSET") != "NOTSET":
        raise _Unsupported("only 2-D, with explicit pads (no output_shape, no auto_pad)")
    return ctx.op("conv_transpose2d", [ctx.x(i) for i in range(3) if ctx.has(i)],
                  stride=_ints(ctx.attr("strides", [1, 1])), pads=_ints(ctx.attr("pads", [0] * 4)),
                  dilation=_ints(ctx.attr("dilations", [1, 1])), groups=ctx.attr("group", 1),
                  output_padding=_ints(ctx.attr("output_padding", [0, 0])))


def _scaled(ctx, v: Value, s: float) -> Value:
    if s == 1:
        return v
    return ctx.c(v.data * s) if v.is_const else ctx.op("mul", [v, ctx.c(s)])


@imports("Gemm")
def _gemm(ctx, n):
    a, b = ctx.x(0), ctx.x(1)
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    if ctx.attr("transA", 0):
        a = ctx.op("transpose", [a], perm=[1, 0])
    c = _scaled(ctx, ctx.x(2), beta) if ctx.has(2) else None
    if not b.is_const:
        y = _scaled(ctx, ctx.op("matmul", [a, ctx.op("transpose", [b], perm=[1, 0]) if ctx.attr("transB", 0) else b]),
                    alpha)
        return ctx.op("add", [y, c]) if c is not None else y
    w = (b.data if ctx.attr("transB", 0) else b.data.T) * alpha
    if c is not None and not _fits(c.shape, (a.shape[0], w.shape[0])):
        raise ShapeError(None, f"C of shape {c.shape} does not broadcast to the result {(a.shape[0], w.shape[0])}")
    as_bias = c is not None and c.is_const and _fits(c.shape, (1, w.shape[0]))
    bias = [ctx.c(np.broadcast_to(c.data, (1, w.shape[0])).reshape(-1))] if as_bias else []
    y = ctx.op("linear", [a, ctx.c(w), *bias])
    return ctx.op("add", [y, c]) if c is not None and not as_bias else y


@imports("MatMul")
def _matmul(ctx, n):
    a, b = ctx.x(0), ctx.x(1)
    if b.is_const and b.type.rank == 2:  # x @ W is a linear layer with weight W^T
        return ctx.op("linear", [a, ctx.c(b.data.T)])
    return ctx.op("matmul", [a, b])


@imports("BatchNormalization")
def _batch_norm(ctx, n):
    _sole_output(ctx)
    if ctx.attr("training_mode", 0):
        raise _Unsupported("training_mode=1")
    return ctx.op("batch_norm", [ctx.x(i) for i in range(5)], eps=ctx.attr("epsilon", 1e-5), axis=1)


@imports("LayerNormalization")
def _layer_norm(ctx, n):
    _sole_output(ctx)
    return ctx.op("layer_norm", [ctx.x(i) for i in range(3) if ctx.has(i)], eps=ctx.attr("epsilon", 1e-5),
                  axis=ctx.attr("axis", -1))


def _per_channel(ctx, v: Value, rank: int) -> Value:
    """A vector of one value per channel, shaped to broadcast against a channel-first tensor."""
    return ctx.op("reshape", [v], shape=[v.type.numel, *[1] * (rank - 2)])


@imports("InstanceNormalization")
def _instance_norm(ctx, n):
    """layer_norm over the spatial axes, then the per-channel scale and bias."""
    x = ctx.x(0)
    y = ctx.op("layer_norm", [x], eps=ctx.attr("epsilon", 1e-5), axis=2)
    y = ctx.op("mul", [y, _per_channel(ctx, ctx.x(1), x.type.rank)])
    return ctx.op("add", [y, _per_channel(ctx, ctx.x(2), x.type.rank)])


@imports("LRN")
def _lrn(ctx, n):
    """x / (bias + alpha / size * (sum of x^2 over `size` neighbouring channels))^beta, the sum an
    average pool (which counts the padding, so divides by `size`) over the channel axis."""
    x, size = ctx.x(0), ctx.attr("size")
    if x.type.rank != 4:
        raise _Unsupported(f"rank-{x.type.rank} input")
    nn, c, h, w = x.shape
    sq = ctx.op("reshape", [ctx.op("mul", [x, x])], shape=[nn, 1, c, h * w])
    lo = (size - 1) // 2
    avg = ctx.op("avg_pool2d", [sq], kernel=[size, 1], stride=[1, 1], pads=[lo, 0, size - 1 - lo, 0],
                 count_include_pad=True)
    t = ctx.op("add", [ctx.op("mul", [ctx.op("reshape", [avg], shape=list(x.shape)), ctx.c(ctx.attr("alpha", 1e-4))]),
                       ctx.c(ctx.attr("bias", 1.0))])
    return ctx.op("div", [x, ctx.op("pow", [t, ctx.c(ctx.attr("beta", 0.75))])])


_GATE_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}  # ONNX's gate blocks (iofc, zrh) in torch's order
_ACTIVATIONS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"], "RNN": ["tanh"]}


@imports("LSTM", "GRU", "RNN")
def _recurrent(ctx, n):
    """Unrolled over the sequence (rnn.py), one rnn.Cell per direction; Y, Y_h (and Y_c) in ONNX's layout."""
    x, layout, op = ctx.x(0), ctx.attr("layout", 0), n.op_type
    dirs = 1 + (ctx.attr("direction", "forward") == "bidirectional")
    acts = [a.lower() for a in ctx.attr("activations", _ACTIVATIONS[op] * dirs)]
    kind = "rnn_relu" if op == "RNN" and acts == ["relu"] * dirs else "rnn_tanh" if op == "RNN" else op.lower()
    if acts != _ACTIVATIONS[op] * dirs and kind != "rnn_relu":
        raise _Unsupported(f"activations {ctx.attr('activations')}; only the defaults {_ACTIVATIONS[op]} "
                           "(or Relu for RNN)")
    if ctx.attr("clip") is not None or ctx.attr("input_forget", 0) or op == "LSTM" and np.any(ctx.const(7, 0)):
        raise _Unsupported("cell clipping, input_forget or peepholes (P); export the layer without them")
    steps = x.shape[layout]
    if ctx.has(4) and not (ctx.x(4).is_const and np.all(ctx.x(4).data == steps)):
        raise _Unsupported(f"sequence_lens other than a constant {steps} for every batch item (the unrolled "
                           "layer runs every step); pad the sequences to full length and export without sequence_lens")
    hidden = ctx.attr("hidden_size")
    blocks = lambda a: None if a is None else np.concatenate(  # noqa: E731
        [a[k * hidden:(k + 1) * hidden] for k in _GATE_ORDER[op]])
    w, r, b, lbr = ctx.const(1), ctx.const(2), ctx.const(3), bool(ctx.attr("linear_before_reset", 0))

    def state(i, d):  # direction d's (B, H) slice of initial state i; None for absent or all-zero
        s = ctx.x(i) if ctx.has(i) else None
        if s is None or s.is_const and not s.data.any():
            return None
        s = ctx.op("slice", [s], axes=[layout], starts=[d], ends=[d + 1], steps=[1])
        return ctx.op("reshape", [s], shape=[x.shape[1 - layout], hidden])

    ys, hs, cs = [], [], []
    for d in range(dirs):
        bw, br = (None, None) if b is None else (b[d, :b.shape[1] // 2], b[d, b.shape[1] // 2:])
        cell = rnn.Cell(kind, blocks(w[d]), blocks(r[d]), blocks(bw), blocks(br), lbr)
        reverse = ctx.attr("direction", "forward") == "reverse" or d == 1
        seq, h, c = rnn.direction(ctx.op, ctx.g, f"{ctx.name}.{d}", x, layout, cell, state(5, d), state(6, d), reverse)
        seq = rnn.stack(ctx.op, seq, layout)
        ys.append(ctx.op("reshape", [seq], shape=[*seq.shape[:1 + layout], 1, *seq.shape[1 + layout:]]))
        hs.append(h), cs.append(c)
    y = ys[0] if dirs == 1 else ctx.op("concat", ys, axis=1 + layout)
    return [y, rnn.stack(ctx.op, hs, layout)] + ([rnn.stack(ctx.op, cs, layout)] if op == "LSTM" else [])


# ---------------------------------------------------------------- activations and elementwise

def _unary(op):
    return lambda ctx, n: ctx.op(op, [ctx.x(0)])


for _t, _op in [("Relu", "relu"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("HardSwish", "hardswish"),
                ("Identity", "identity"), ("Exp", "exp"), ("Log", "log"), ("Sqrt", "sqrt"), ("Abs", "abs"),
                ("Sign", "sign"), ("Softplus", "softplus"), ("Erf", "erf")]:
    IMPORTS[_t] = _unary(_op)
# composites of IR ops, exact up to float32 rounding
IMPORTS["Neg"] = lambda ctx, n: ctx.op("mul", [ctx.x(0), ctx.c(-1.0)])
IMPORTS["Reciprocal"] = lambda ctx, n: ctx.op("div", [ctx.c(1.0), ctx.x(0)])
IMPORTS["Softsign"] = lambda ctx, n: ctx.op("div", [ctx.x(0), ctx.op("add", [ctx.op("abs", [ctx.x(0)]), ctx.c(1.0)])])
IMPORTS["Elu"] = lambda ctx, n: ctx.op("elu", [ctx.x(0)], alpha=ctx.attr("alpha", 1.0))
IMPORTS["Selu"] = lambda ctx, n: ctx.op("mul", [ctx.op("elu", [ctx.x(0)], alpha=ctx.attr("alpha", 1.67326319217681884765625)),
                                                ctx.c(ctx.attr("gamma", 1.05070102214813232421875))])
IMPORTS["Pow"] = lambda ctx, n: ctx.op("pow", [ctx.x(0), ctx.x(1)])


@imports("Sum", "Max", "Min")
def _variadic(ctx, n):
    op = {"Sum": "add", "Max": "maximum", "Min": "minimum"}[n.op_type]
    y = ctx.x(0)
    for i in range(1, len(n.input)):
        y = ctx.op(op, [y, ctx.x(i)])
    return y if len(n.input) > 1 else ctx.op("identity", [y])


@imports("Shrink")
def _shrink(ctx, n):
    lambd, bias = ctx.attr("lambd", 0.5), ctx.attr("bias", 0.0)
    if lambd != bias:
        raise _Unsupported(f"bias {bias} other than lambd {lambd} (only softshrink)")
    return ctx.op("sub", [ctx.x(0), ctx.op("clamp", [ctx.x(0)], min=-lambd, max=lambd)])


@imports("Clip")
def _clip(ctx, n):
    lo, hi = float(ctx.const(1, -math.inf)), float(ctx.const(2, math.inf))
    if (lo, hi) in ((0, 6), (0, math.inf)):
        return ctx.op("relu6" if hi == 6 else "relu", [ctx.x(0)])
    return ctx.op("clamp", [ctx.x(0)], min=lo, max=hi)


@imports("QuantizeLinear", "DequantizeLinear")
def _qdq(ctx, n):
    scale = np.asarray(ctx.const(1), np.float32).reshape(-1)
    zp = ctx.const(2, np.zeros(scale.shape, np.uint8))  # ONNX's default zero point is uint8
    attrs = dict(scale=scale.tolist(), zero_point=_ints(zp), axis=int(ctx.attr("axis", 1)))
    if n.op_type == "DequantizeLinear":
        return ctx.op("dequantize", [ctx.x(0)], **attrs)
    dtype = {np.dtype(np.int8): "i8", np.dtype(np.uint8): "u8", np.dtype(np.int16): "i16"}.get(np.asarray(zp).dtype)
    if dtype is None:
        raise _Unsupported(f"quantizes to {np.asarray(zp).dtype}")
    return ctx.op("quantize", [ctx.x(0)], **attrs, dtype=dtype)


@imports("LeakyRelu")
def _leaky_relu(ctx, n):
    return ctx.op("leaky_relu", [ctx.x(0)], alpha=ctx.attr("alpha", 0.01))


@imports("PRelu")
def _prelu(ctx, n):
    x, slope = ctx.x(0), ctx.x(1)
    if ctx.source_opset < 7 and slope.type.rank == 1 and x.type.rank > 2 and not _fits(slope.shape, x.shape):
        slope = _per_channel(ctx, slope, x.type.rank)  # before opset 7, one slope per channel
    return ctx.op("prelu", [x, slope])


@imports("HardSigmoid")
def _hardsigmoid(ctx, n):
    alpha, beta = ctx.attr("alpha", 0.2), ctx.attr("beta", 0.5)
    if np.isclose(alpha, 1 / 6, rtol=1e-6) and np.isclose(beta, 0.5):  # torch's relu6(x + 3) / 6
        return ctx.op("hardsigmoid", [ctx.x(0)])
    return ctx.op("clamp", [ctx.op("add", [ctx.op("mul", [ctx.x(0), ctx.c(alpha)]), ctx.c(beta)])], min=0.0, max=1.0)


@imports("Gelu")
def _gelu(ctx, n):
    return ctx.op("gelu", [ctx.x(0)], approximate=ctx.attr("approximate", "none"))


@imports("Softmax", "LogSoftmax")
def _softmax(ctx, n):
    return ctx.op("softmax" if n.op_type == "Softmax" else "log_softmax", [ctx.x(0)], axis=ctx.attr("axis", -1))


@imports("Dropout")
def _dropout(ctx, n):
    _sole_output(ctx)
    return ctx.op("dropout", [ctx.x(0)], p=float(ctx.const(1, 0.5)))


@imports("Add", "Sub", "Mul", "Div")
def _binary(ctx, n):
    a, b = ctx.x(0), ctx.x(1)
    if n.op_type == "Add":  # MatMul + Add of a per-output bias (how torch exports nn.Linear on rank > 2)
        for i, bias in ((0, b), (1, a)):
            lin = ctx.sole_user(i, "linear")
            out = lin.output.shape if lin else ()
            if lin and len(lin.inputs) == 2 and bias.is_const and _fits(bias.shape, (1,) * (len(out) - 1) + out[-1:]):
                ctx.g.set_inputs(lin, [*lin.inputs, ctx.c(bias.data.reshape(-1))])
                return lin.output
    if n.op_type == "Mul":  # x * Sigmoid(x) and x * HardSigmoid(x) (HardSwish before opset 14)
        for i, x in ((0, b), (1, a)):
            for gate, op in (("sigmoid", "silu"), ("hardsigmoid", "hardswish")):
                p = ctx.sole_user(i, gate)
                if p and p.inputs[0] is x:
                    ctx.g.erase(p)
                    return ctx.op(op, [x])
    return ctx.op(n.op_type.lower(), [a, b])


# ---------------------------------------------------------------- pooling and reductions

_LAYOUTS = {3: "NCW", 4: "NCHW"}  # ONNX is channel-first


def _pool(ctx, n, op):
    x = ctx.x(0)
    nd = x.type.rank - 2
    if nd not in (1, 2, 3):
        raise _Unsupported(f"{nd}-D pooling")
    kernel, strides = _ints(ctx.attr("kernel_shape")), _ints(ctx.attr("strides", [1] * nd))
    dil = _ints(ctx.attr("dilations", [1] * nd))
    pads = _pads(ctx, x.shape[2:], kernel, strides, dil)
    ceil = bool(ctx.attr("ceil_mode", 0))
    if nd == 3:
        return _pool3d(ctx, x, op, kernel, strides, dil, pads, ceil)
    for i in range(nd):  # ONNX's ceil mode keeps a last window that starts in the end padding, torch's does not
        span = x.shape[2 + i] + pads[i] + pads[nd + i] - dil[i] * (kernel[i] - 1) - 1
        if ceil and -(-span // strides[i]) * strides[i] >= x.shape[2 + i] + pads[i]:
            raise _Unsupported("ceil_mode with a last window starting in the padding")
    attrs = dict(kernel=kernel, stride=strides, pads=pads, ceil_mode=ceil, layout=_LAYOUTS[x.type.rank])
    if op == "max_pool":
        return ctx.op(f"max_pool{nd}d", [x], dilation=dil, **attrs)
    if dil != [1] * nd:
        raise _Unsupported("dilated average pooling")
    return ctx.op(f"avg_pool{nd}d", [x], count_include_pad=bool(ctx.attr("count_include_pad", 0)), **attrs)


def _pool3d(ctx, x, op, kernel, strides, dil, pads, ceil):
    """Pooling is separable: the depth window first (a maximum, or a sum divided by the taps that
    count), then a 2-D pool over (channel x output depth) images."""
    if ceil:
        raise _Unsupported("3-D pooling with ceil_mode")
    cip = bool(ctx.attr("count_include_pad", 0))
    taps, d = _depth_taps(ctx, x, kernel[0], strides[0], dil[0], pads, -math.inf if op == "max_pool" else 0.0)
    y = taps[0]
    for t in taps[1:]:
        y = ctx.op("maximum" if op == "max_pool" else "add", [y, t])
    if op == "avg_pool":
        if dil[0] != 1:
            raise _Unsupported("dilated average pooling")
        start = np.arange(d) * strides[0] - pads[0]
        count = np.minimum(start + kernel[0], x.shape[2] + (pads[3] if cip else 0)) - np.maximum(start, -pads[0] * cip)
        y = ctx.op("mul", [y, ctx.c((1 / count).reshape(d, 1, 1))])
    (nn, c), hw = x.shape[:2], [pads[1], pads[2], pads[4], pads[5]]
    y = ctx.op("reshape", [y], shape=[nn, c * d, *x.shape[3:]])
    attrs = dict(kernel=kernel[1:], stride=strides[1:], pads=hw)
    y = ctx.op("max_pool2d", [y], dilation=dil[1:], **attrs) if op == "max_pool" else \
        ctx.op("avg_pool2d", [y], count_include_pad=cip, **attrs)
    return ctx.op("reshape", [y], shape=[nn, c, d, *y.shape[2:]])


@imports("MaxPool")
def _max_pool(ctx, n):
    _sole_output(ctx)
    return _pool(ctx, n, "max_pool")


@imports("AveragePool")
def _avg_pool(ctx, n):
    return _pool(ctx, n, "avg_pool")


@imports("GlobalAveragePool")
def _global_avg_pool(ctx, n):
    x = ctx.x(0)
    if x.type.rank not in (3, 4):
        raise _Unsupported(f"rank-{x.type.rank} input")
    return ctx.op("adaptive_avg_pool", [x], output_size=[1] * (x.type.rank - 2), layout=_LAYOUTS[x.type.rank])


@imports("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def _reduce(ctx, n):
    x, axes = ctx.x(0), _axes(ctx, 1)
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return ctx.op("identity", [x])
        axes = list(range(x.type.rank))
    keep = bool(ctx.attr("keepdims", 1))
    if n.op_type == "ReduceMean":
        return ctx.op("mean", [x], axes=axes, keepdims=keep)
    return ctx.op("reduce", [x], axes=axes, keepdims=keep, mode=n.op_type[6:].lower())


# ---------------------------------------------------------------- shapes and data movement

@imports("Flatten")
def _flatten(ctx, n):
    x = ctx.x(0)
    axis = norm_axis(ctx.attr("axis", 1), x.type.rank + 1)
    return ctx.op("reshape", [x], shape=[math.prod(x.shape[:axis]), math.prod(x.shape[axis:])])


@imports("Reshape")
def _reshape(ctx, n):
    x, shape = ctx.x(0), _ints(ctx.const(1))
    if not ctx.attr("allowzero", 0):  # 0 copies the input's dimension
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    if -1 in shape:
        shape[shape.index(-1)] = x.type.numel // max(1, -math.prod(shape))
    return ctx.op("reshape", [x], shape=shape)


@imports("Squeeze", "Unsqueeze")
def _squeeze(ctx, n):
    x, axes = ctx.x(0), _axes(ctx, 1)
    shape = list(x.shape)
    if n.op_type == "Squeeze":
        drop = {norm_axis(a, len(shape)) for a in axes} if axes else {i for i, d in enumerate(shape) if d == 1}
        return ctx.op("reshape", [x], shape=[d for i, d in enumerate(shape) if i not in drop])
    for a in sorted(norm_axis(a, len(shape) + len(axes)) for a in axes):
        shape.insert(a, 1)
    return ctx.op("reshape", [x], shape=shape)


@imports("Transpose")
def _transpose(ctx, n):
    x = ctx.x(0)
    return ctx.op("transpose", [x], perm=_ints(ctx.attr("perm", range(x.type.rank)[::-1])))


@imports("Concat")
def _concat(ctx, n):
    return ctx.op("concat", [ctx.x(i) for i in range(len(n.input))], axis=ctx.attr("axis"))


@imports("Split")
def _split(ctx, n):
    x, axis = ctx.x(0), ctx.attr("axis", 0)
    sizes = _ints(ctx.const(1)) if ctx.has(1) else None
    if sizes is None:  # equal parts; opset 18's num_outputs makes the last one smaller when needed
        dim, k = x.shape[norm_axis(axis, x.type.rank)], len(n.output)
        part = -(-dim // k)
        sizes = [part] * (k - 1) + [dim - part * (k - 1)]
    out = ctx.op("split", [x], axis=axis, sizes=_ints(sizes))
    return list(out) if isinstance(out, tuple) else [out]


@imports("Slice")
def _slice(ctx, n):
    x = ctx.x(0)
    starts, ends = _ints(ctx.const(1)), _ints(ctx.const(2))
    axes = _ints(ctx.const(3, range(len(starts))))
    steps = _ints(ctx.const(4, [1] * len(starts)))
    if any(s <= 0 for s in steps):
        raise _Unsupported("negative steps")
    return ctx.op("slice", [x], axes=axes, starts=starts, ends=ends, steps=steps)


@imports("Pad")
def _pad(ctx, n):
    x = ctx.x(0)
    r, mode = x.type.rank, ctx.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise _Unsupported(f"mode={mode}")
    pads = _ints(ctx.const(1))
    if ctx.has(3):  # opset 18: pads for the listed axes only
        full = [0] * 2 * r
        for i, ax in enumerate(_ints(ctx.const(3))):
            full[norm_axis(ax, r)], full[r + norm_axis(ax, r)] = pads[i], pads[len(pads) // 2 + i]
        pads = full
    if any(p < 0 for p in pads):
        raise _Unsupported("negative pads (cropping)")
    if mode != "constant":
        return _pad_from_slices(ctx, x, pads, mode)
    value = ctx.const(2, np.zeros(()))
    return ctx.op("pad", [x], pads=pads, value=float(value) if value.size else 0.0)


def _pad_from_slices(ctx, x, pads, mode):
    """Reflect and edge padding as concatenated slices of x (an edge row tiled), axis by axis."""
    r = x.type.rank
    for ax in range(r):
        b, e, size = pads[ax], pads[r + ax], x.shape[ax]
        if not b and not e:
            continue
        if mode == "reflect" and max(b, e) >= size:
            raise _Unsupported(f"reflect padding {max(b, e)} not smaller than the axis size {size}")

        def row(i, count=1):
            s = ctx.op("slice", [x], axes=[ax], starts=[i], ends=[i + 1], steps=[1])
            return ctx.op("tile", [s], repeats=[count if a == ax else 1 for a in range(r)]) if count > 1 else s
        if mode == "edge":
            parts = [row(0, b)] * bool(b) + [x] + [row(size - 1, e)] * bool(e)
        else:
            parts = [row(i) for i in range(b, 0, -1)] + [x] + [row(size - 2 - i) for i in range(e)]
        x = ctx.op("concat", parts, axis=ax)
    return x


@imports("Tile")
def _tile(ctx, n):
    return ctx.op("tile", [ctx.x(0)], repeats=_ints(ctx.const(1)))


@imports("Expand")
def _expand(ctx, n):
    x, shape = ctx.x(0), _ints(ctx.const(1))
    out = np.broadcast_shapes(x.shape, tuple(shape))
    if len(out) > x.type.rank:
        x = ctx.op("reshape", [x], shape=[1] * (len(out) - x.type.rank) + list(x.shape))
    if out == x.shape:
        return ctx.op("identity", [x])
    return ctx.op("tile", [x], repeats=[o // d for o, d in zip(out, x.shape)])


@imports("ConstantOfShape")
def _constant_of_shape(ctx, n):
    """Only the ones too big to fold (whole layers' weights in the onnx test models)."""
    shape, value = _ints(ctx.const(0)), ctx.attr("value")
    value = onnx.numpy_helper.to_array(value).reshape(()) if value is not None else np.float32(0)
    if math.prod(shape) > 16 * FOLD_LIMIT:
        raise _Unsupported(f"a constant of shape {shape}: more than {16 * FOLD_LIMIT} elements")
    return ctx.g.const(np.full(shape, value, value.dtype), name=ctx.name)


@imports("DepthToSpace", "SpaceToDepth")
def _depth_to_space(ctx, n):
    """The reshape, transpose, reshape that the ONNX operator definitions spell out."""
    x, b = ctx.x(0), ctx.attr("blocksize")
    if x.type.rank != 4:
        raise _Unsupported(f"rank-{x.type.rank} input")
    nn, c, h, w = x.shape
    if n.op_type == "SpaceToDepth":
        t = ctx.op("reshape", [x], shape=[nn, c, h // b, b, w // b, b])
        t = ctx.op("transpose", [t], perm=[0, 3, 5, 1, 2, 4])
        return ctx.op("reshape", [t], shape=[nn, c * b * b, h // b, w // b])
    crd = ctx.attr("mode", "DCR") == "CRD"
    t = ctx.op("reshape", [x], shape=[nn, c // (b * b), b, b, h, w] if crd else [nn, b, b, c // (b * b), h, w])
    t = ctx.op("transpose", [t], perm=[0, 1, 4, 2, 5, 3] if crd else [0, 3, 4, 1, 5, 2])
    return ctx.op("reshape", [t], shape=[nn, c // (b * b), h * b, w * b])


@imports("Gather")
def _gather(ctx, n):
    """Constant indices: one slice for an evenly spaced run, else a concatenation of slices."""
    x, idx = ctx.x(0), np.asarray(ctx.const(1))
    ax = norm_axis(ctx.attr("axis", 0), x.type.rank)
    flat = [int(i) % x.shape[ax] for i in idx.reshape(-1)]
    step = flat[1] - flat[0] if len(flat) > 1 else 1
    if flat and step > 0 and flat == list(range(flat[0], flat[0] + step * len(flat), step)):
        y = ctx.op("slice", [x], axes=[ax], starts=[flat[0]], ends=[flat[-1] + 1], steps=[step])
    elif flat:
        y = ctx.op("concat", [ctx.op("slice", [x], axes=[ax], starts=[i], ends=[i + 1], steps=[1]) for i in flat],
                   axis=ax)
    else:
        raise _Unsupported("no indices")
    return ctx.op("reshape", [y], shape=[*x.shape[:ax], *idx.shape, *x.shape[ax + 1:]])


@imports("Resize")
def _resize(ctx, n):
    x, scales, sizes = ctx.x(0), ctx.const(2), ctx.const(3)
    if x.type.rank != 4:
        raise _Unsupported(f"rank-{x.type.rank} input")
    if sizes is not None and sizes.size:
        given, sizes = _ints(sizes), list(x.shape)
        for i, ax in enumerate(ctx.attr("axes") or range(x.type.rank)):  # opset 18: only the listed axes
            sizes[norm_axis(ax, x.type.rank)] = given[i]
    else:
        exact = [d * float(s) for d, s in zip(x.shape, scales.reshape(-1))]
        if any(e != int(e) for e in exact):
            raise _Unsupported(f"scales {_ints(scales)} that do not give whole sizes")
        sizes = [int(e) for e in exact]
    if tuple(sizes[:2]) != x.shape[:2]:
        raise _Unsupported("resizing the batch or channel axis")
    mode, ctm = ctx.attr("mode", "nearest"), ctx.attr("coordinate_transformation_mode", "half_pixel")
    nearest = ctx.attr("nearest_mode", "round_prefer_floor")
    whole = all(o % i == 0 for o, i in zip(sizes[2:], x.shape[2:]))
    # torch's nearest is asymmetric + floor; half_pixel rounding agrees with it on whole upscales
    if mode == "nearest" and (ctm == "asymmetric" and nearest == "floor" or ctm == "half_pixel" and whole
                              and nearest in ("round_prefer_floor", "round_prefer_ceil")):
        return ctx.op("resize", [x], size=sizes[2:], mode="nearest")
    # pytorch_half_pixel is torch's bilinear except for outputs of size 1, which it samples at 0
    if mode == "linear" and (ctm == "half_pixel" or ctm == "pytorch_half_pixel" and 1 not in sizes[2:]):
        return ctx.op("resize", [x], size=sizes[2:], mode="bilinear", align_corners=False)
    if mode == "linear" and ctm == "align_corners":
        return ctx.op("resize", [x], size=sizes[2:], mode="bilinear", align_corners=True)
    raise _Unsupported(f"mode={mode}, coordinate_transformation_mode={ctm}, nearest_mode={nearest}")


# ---------------------------------------------------------------- sequences: tuples of Values at import

def _position(ctx, i: int, seq: tuple, insert=False) -> int:
    pos = int(ctx.const(i, len(seq) if insert else -1))
    if not -len(seq) <= pos < len(seq) + insert:
        raise ShapeError(None, f"position {pos} is outside a sequence of {len(seq)} tensors")
    return pos + len(seq) if pos < 0 else pos  # -1 is the last tensor, for an insertion too


IMPORTS["SequenceEmpty"] = lambda ctx, n: ()
IMPORTS["SequenceConstruct"] = lambda ctx, n: tuple(ctx.x(i) for i in range(len(n.input)))
IMPORTS["SequenceAt"] = lambda ctx, n: ctx.op("identity", [ctx.x(0)[_position(ctx, 1, ctx.x(0))]])
IMPORTS["SequenceLength"] = lambda ctx, n: ctx.g.const(np.array(len(ctx.x(0)), np.int64), name=ctx.name)


@imports("SequenceInsert", "SequenceErase")
def _sequence_edit(ctx, n):
    seq = list(ctx.x(0))
    if n.op_type == "SequenceErase":
        del seq[_position(ctx, 1, ctx.x(0))]
    else:
        seq.insert(_position(ctx, 2, ctx.x(0), insert=True), ctx.x(1))
    return tuple(seq)


@imports("ConcatFromSequence")
def _concat_from_sequence(ctx, n):
    seq, axis = ctx.x(0), ctx.attr("axis")
    if ctx.attr("new_axis", 0):
        axis = norm_axis(axis, seq[0].type.rank + 1)
        seq = [ctx.op("reshape", [v], shape=[*v.shape[:axis], 1, *v.shape[axis:]]) for v in seq]
    return ctx.op("concat", list(seq), axis=axis)


# ---------------------------------------------------------------- loading

def _convert(ctx, n, op_type) -> list[Value]:
    """Fold a node of constants (or a Shape) to constants, else convert it through IMPORTS."""
    outs = [o for o in n.output if o]
    sizes = [math.prod(ctx.known[o]) for o in outs if ctx.known.get(o) is not None]
    bounded = len(sizes) == len(outs) and sum(sizes) <= FOLD_LIMIT  # a result of unknown size is not folded
    if n.op_type == "Shape" or all(getattr(ctx.env[i], "is_const", False) for i in n.input if i) and bounded:
        try:
            arrays = _fold(ctx, n)
            # a result of another shape than ONNX infers: the evaluator broadcast operands the op refuses
            if all(ctx.known.get(o) in (None, a.shape) for o, a in zip(n.output, arrays)):
                return [ctx.g.const(a, name=ctx.name) for a in arrays]
        except Exception:
            pass  # the reference evaluator cannot run it: convert it like any other node
    if op_type not in IMPORTS:
        raise _Unsupported()
    out = IMPORTS[op_type](ctx, n)
    return out if isinstance(out, list) else [out]


def _fold(ctx, n) -> list[np.ndarray]:
    if n.op_type == "Shape":
        shape = ctx.x(0).shape
        return [np.array(shape[ctx.attr("start", 0):ctx.attr("end", len(shape))], np.int64)]
    feeds = {i: ctx.env[i].data for i in n.input if i}
    return ReferenceEvaluator(n, opsets={"": ctx.opset}).run(None, feeds)


def _read(model) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        return model, "the ONNX model"
    path = Path(model)
    if not path.is_file():
        raise UsageError(f"ONNX file {path} does not exist", "check the path")
    try:
        model = onnx.load(path)
    except Exception as e:
        raise ModelLoadError(f"{path} is not a readable ONNX model: {type(e).__name__}: {e}",
                             "the file may be truncated or not ONNX at all; export it again") from None
    return model, str(path)


def _utf8(message) -> bool:
    """Whether every string field of a protobuf message is text (protobuf hands invalid UTF-8
    back as bytes, which onnx.checker lets through)."""
    for field, value in message.ListFields():
        items = value if field.is_repeated else [value]
        if field.type == field.TYPE_MESSAGE and not all(_utf8(m) for m in items) or \
                field.type == field.TYPE_STRING and any(isinstance(v, bytes) for v in items):
            return False
    return True


def _fix_input_shapes(graph: onnx.GraphProto, input_shapes: dict | None, where: str):
    """Write `input_shapes` into the graph inputs; refuse inputs left with dynamic dimensions."""
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    shapes = dict(input_shapes or {})
    unknown = set(shapes) - {i.name for i in inputs}
    if unknown:
        raise UsageError(f"input_shapes names {sorted(unknown)}, but {where} has inputs "
                         f"{[i.name for i in inputs]}")
    dynamic = []
    for i in inputs:
        dims = _dims(i) or []
        if i.name in shapes:
            want = [int(d) for d in shapes[i.name]]
            if len(want) != len(dims) or any(isinstance(d, int) and d != w for d, w in zip(dims, want)):
                raise UsageError(f"input_shapes gives {i.name} the shape {want}, but {where} declares {dims}")
            for d, w in zip(i.type.tensor_type.shape.dim, want):
                d.dim_value = w
        elif _static_shape(i) is None:
            dynamic.append(f"{i.name}: [{', '.join(map(str, dims))}]")
    if dynamic:
        example = inputs[0].name if inputs else "input"
        raise UsageError(f"{where} has inputs with dynamic dimensions ({'; '.join(dynamic)}); "
                         "microcontroller code needs static shapes",
                         "pass the shapes to compile for, e.g. "
                         f"load_onnx(path, input_shapes={{'{example}': (1, 3, 32, 32)}}) (CLI: --input-shape)")
    return inputs


def _dims(vi: onnx.ValueInfoProto) -> list | None:
    """Dimensions as ints, or the symbolic name ('?' if none) where one is dynamic; None if unknown."""
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in t.shape.dim]


def _static_shape(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    dims = _dims(vi)
    return tuple(dims) if dims is not None and all(isinstance(d, int) for d in dims) else None


def _placeholder(g: Graph, vi: onnx.ValueInfoProto | None):
    """A stand-in graph input for the result `vi` of a node that was not converted, of the type
    shape inference gives it (only for reporting the nodes after it); _SKIPPED if that is unknown."""
    shape = _static_shape(vi) if vi is not None else None
    try:
        dtype = DType.from_numpy(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
    except (AttributeError, KeyError, ValueError):
        return _SKIPPED
    return _SKIPPED if shape is None else g.add_input(vi.name, TensorType(shape, dtype))


def load_onnx(path_or_model, *, input_shapes: dict | None = None, name: str | None = None) -> Graph:
    """Read an ONNX file or ModelProto into an IR graph.

    `input_shapes={input name: shape}` fixes dynamic input dimensions (and must agree with the
    static ones). Raises ModelLoadError for unreadable or invalid files, UsageError for missing
    files or dynamic shapes, UnsupportedOpError listing every op that cannot be converted.
    """
    model, where = _read(path_or_model)
    if not _utf8(model):
        raise ModelLoadError(f"{where} has names that are not UTF-8 text", "the file is corrupt; export it again")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise ModelLoadError(f"{where} fails onnx.checker: {str(e).strip()}",
                             "the file may be truncated or written by a broken exporter; export it again") from None
    opset = source_opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    if opset < MIN_OPSET:  # older forms (Upsample, attribute operands) are rewritten by onnx
        try:
            model, opset = version_converter.convert_version(model, MIN_OPSET), MIN_OPSET
        except Exception as e:
            raise ModelLoadError(f"{where} uses opset {opset}, and converting it to {MIN_OPSET} failed: {e}",
                                 f"export the model with opset {MIN_OPSET} or newer") from None
    else:
        model = onnx.ModelProto.FromString(model.SerializeToString())  # a copy: input_shapes edits it
    inputs = _fix_input_shapes(model.graph, input_shapes, where)
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as e:
        raise ModelLoadError(f"ONNX shape inference failed on {where}: {e}", "check the input shapes") from None
    graph = model.graph
    infos = {vi.name: vi for vi in [*graph.value_info, *graph.output]}
    known = {name: _static_shape(vi) for name, vi in infos.items()}
    uses = Counter(i for n in graph.node for i in n.input) + Counter(o.name for o in graph.output)
    g = Graph(name or graph.name or "main")
    ctx = _Ctx(g, opset, uses)
    ctx.source_opset = source_opset
    ctx.known = known
    missing: list[UnsupportedItem] = []  # unsupported element types, then ops: reported together
    for t in graph.initializer:
        array = _initializer(t, where)
        if array is None:
            missing.append(UnsupportedItem(f"initializer of type {_type_name(t.data_type)}", t.name))
        ctx.env[t.name] = _SKIPPED if array is None else g.const(array, name=t.name)
    for i in inputs:
        dtype = _ir_dtype(i.type.tensor_type.elem_type, f"input {i.name!r} of {where}")
        if dtype is None:
            missing.append(UnsupportedItem(f"input of type {_type_name(i.type.tensor_type.elem_type)}", i.name))
        ctx.env[i.name] = _SKIPPED if dtype is None else g.add_input(i.name, TensorType(_static_shape(i), dtype))
    for idx, n in enumerate(graph.node):
        ctx.node, ctx.name = n, n.name or f"{n.op_type}_{idx}"
        ctx.attrs = {a.name: _attr(a) for a in n.attribute}
        op_type = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        if any(ctx.env[i] is _SKIPPED for i in n.input if i):  # depends on an unsupported node
            if op_type not in IMPORTS:
                missing.append(UnsupportedItem(op_type, ctx.name))
            ctx.env.update({o: _SKIPPED for o in n.output})
            continue
        try:
            results = _convert(ctx, n, op_type)
        except _Unsupported as e:
            missing.append(UnsupportedItem(f"{op_type} ({e})" if str(e) else op_type, ctx.name))
            ctx.env.update({o: _placeholder(g, infos.get(o)) for o in n.output})
            continue
        except ShapeError as e:  # shapes that ONNX's checker and shape inference let through
            raise ModelLoadError(f"{where} is inconsistent at node {ctx.name} ({op_type}): {e.reason}",
                                 "the file is corrupt or written by a broken exporter; export it again") from None
        for o, v in zip(n.output, results):
            if o and known.get(o) is not None and known[o] != v.shape:
                raise ShapeError(ctx.name, f"the converter of {op_type} made shape {v.shape} for {o}, ONNX "
                                           f"infers {known[o]}", hint="this is a bug in mcuforge's ONNX frontend; "
                                                                      "please report it with the model")
            ctx.env[o] = v
    if missing:
        raise UnsupportedOpError(missing)
    g.outputs = [ctx.env[o.name] for o in graph.output]
    return g


def _type_name(code: int) -> str:
    return onnx.TensorProto.DataType.Name(code)


def _ir_dtype(code: int, what: str) -> DType | None:
    """The IR dtype of ONNX element type `code`, None for one the IR has not; ModelLoadError for a
    code that is no ONNX type."""
    if code not in onnx.TensorProto.DataType.values() or code == onnx.TensorProto.UNDEFINED:
        raise ModelLoadError(f"{what} has element type {code}, which ONNX has not", "the file is corrupt; export it again")
    try:
        return DType.from_numpy(helper.tensor_dtype_to_np_dtype(code))
    except (ValueError, TypeError):
        return None


def _initializer(t: onnx.TensorProto, where: str) -> np.ndarray | None:
    """An initializer's values (None for an element type the IR has not), after checking that its
    data holds the elements its dims give: a corrupt size is refused before anything is allocated."""
    what = f"initializer {t.name!r} of {where}"
    dtype = _ir_dtype(t.data_type, what)
    if dtype is None:
        return None
    raw = t.HasField("raw_data")
    have = len(t.raw_data) if raw else len(getattr(t, helper.tensor_dtype_to_field(t.data_type)))
    want = math.prod(t.dims) * (dtype.itemsize if raw else 1)
    if any(d < 0 for d in t.dims) or have != want:
        raise ModelLoadError(f"{what} has {have} {'bytes' if raw else 'values'} of data, its dims {list(t.dims)} "
                             f"need {want}", "the file is corrupt; export it again")
    return onnx.numpy_helper.to_array(t)


def _attr(a: onnx.AttributeProto):
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, list):
        return [x.decode(errors="replace") if isinstance(x, bytes) else x for x in v]
    return v
