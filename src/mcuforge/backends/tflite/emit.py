"""IR -> TFLite flatbuffer: one lowering per IR op producing TFLite tensors and operators, then bytes.

Two layers, like the ONNX backend: `LOWERINGS[op](emitter, node)` turns one IR node into tensors
and operators of the TFLite schema's Python object API (`ai_edge_litert.schema_py_generated`,
shipped with LiteRT), and `to_tflite` packs the `ModelT` into a flatbuffer (buffers deduplicated
and 16-byte aligned, our version and a description in the metadata) and checks it by loading it
into LiteRT's interpreter (the flatbuffer verifier, then every kernel's Prepare).

Before lowering, the graph is made channel-last (the to-nhwc pass) and every convolution or max
pool whose padding is not TFLite's SAME or VALID reads an explicit `pad` op (`explicit_pads`).
Where TFLite lacks a form the IR has, a lowering composes builtins: 1-D ops run as 2-D ones on a
reshaped (N, 1, W, C) view, grouped transposed convolutions per group, and a few float ops
decomposed (layer_norm, batch_norm, hardsigmoid, silu, clamp, dilated max pool). Integer ops map
to the same builtins on int8/int16 tensors: TFLite keeps only the tensors' scales and zero points
and recomputes the kernel parameters from them (which is why TFLite Micro running the file is the
test of our integer semantics); the emitter checks that our output clamps are the fused
activation TFLite will derive.

With a memory plan, the file carries TFLite Micro's "OfflineMemoryAllocation" metadata: an arena
offset for every activation, the temporaries the lowerings add included (see `to_tflite`).
"""
from __future__ import annotations

import math

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ...errors import Error, UnsupportedItem, UnsupportedOpError
from ...frontends.tflite import DTYPES
from ...ir import ops, quant
from ...ir.graph import Graph, Node, Value
from ...ir.ops import norm_axis
from ...ir.types import DType, QuantParams
from ...version import __version__
from ..base import legalized, plan_for, write_atomic

OP = fb.BuiltinOperator
SAME, VALID = fb.Padding.SAME, fb.Padding.VALID
_ACTS = {"none": fb.ActivationFunctionType.NONE, "relu": fb.ActivationFunctionType.RELU,
         "relu6": fb.ActivationFunctionType.RELU6}
OFFLINE_PLAN = "OfflineMemoryAllocation"  # the metadata name TFLite Micro reads (micro_allocation_info.cc)
OFFLINE_PLAN_VERSION = 1


class _Unsupported(Exception):
    """A lowering's refusal: the reason TFLite cannot express this node."""


class Emitter:
    """Collects the tensors, buffers and operators of one TFLite subgraph.

    Besides the tensors of IR values, lowerings make temporaries (a padded input, a reshaped
    view); `temps` lists them per IR node and `views` the (source, result) tensor pairs of the
    reshapes, for the offline memory plan."""

    def __init__(self):
        self.tensors: list[fb.TensorT] = []
        self.nbytes: list[int] = []  # per tensor
        self.operators: list[fb.OperatorT] = []
        self.opcodes: list[fb.OperatorCodeT] = []
        self.buffers = [fb.BufferT()]  # buffer 0 is empty: every activation tensor points at it
        self._buffer_of: dict[bytes, int] = {}  # buffer contents -> index (deduplication)
        self._opcode_of: dict[int, int] = {}
        self._index: dict[int, int] = {}  # id(Value) -> tensor index
        self.values: set[int] = set()  # tensors of non-constant IR values
        self.outputs: set[int] = set()  # id() of the graph's outputs
        self.temps: dict[str, list[int]] = {}  # IR node -> the temporaries its lowering made
        self.views: list[tuple[int, int]] = []  # (source, result) tensors of each RESHAPE
        self.node_ops: dict[str, list[fb.OperatorT]] = {}  # IR node -> its operators
        self._names: set[str] = set()
        self.current = ""  # the IR node being lowered; names the temporaries it makes

    # ------------------------------------------------------------ tensors
    def tensor(self, v: Value) -> int:
        """The tensor of IR value `v` (made on first use; a constant gets its buffer)."""
        if id(v) not in self._index:
            self._index[id(v)] = self._add(v.name, v.shape, v.dtype, v.type.quant, v.data)
            if not v.is_const:
                self.values.add(self._index[id(v)])
        return self._index[id(v)]

    def _add(self, name, shape, dtype: DType, quant: QuantParams | None = None, data=None) -> int:
        t = fb.TensorT(shape=[int(d) for d in shape], type=DTYPES[dtype], name=name)
        if quant is not None:
            t.quantization = fb.QuantizationParametersT(scale=list(quant.scale), zeroPoint=list(quant.zero_point),
                                                        quantizedDimension=quant.axis or 0)
        if data is not None:
            t.buffer = self.buffer(np.asarray(data, dtype.np))
        self.tensors.append(t)
        self.nbytes.append(math.prod(t.shape) * dtype.itemsize)
        return len(self.tensors) - 1

    def fresh(self, base: str) -> str:
        """A new tensor name under the current node's (a '/' never appears in IR names)."""
        name, n = f"{self.current}/{base}", 0
        while name in self._names:
            n += 1
            name = f"{self.current}/{base}_{n}"
        self._names.add(name)
        return name

    def temp(self, like: Value, shape, base: str = "t") -> int:
        """A fresh activation tensor of `shape` with `like`'s dtype and quantization."""
        t = self._add(self.fresh(base), shape, like.dtype, like.type.quant)
        self.temps.setdefault(self.current, []).append(t)
        return t

    def const(self, array, base: str = "const", quant: QuantParams | None = None) -> int:
        a = np.asarray(array)
        return self._add(self.fresh(base), a.shape, DType.from_numpy(a.dtype), quant, a)

    def ints(self, values, base: str = "ints") -> int:
        return self.const(np.array(values, np.int32), base)

    def like_const(self, like: Value, array, base: str = "const") -> int:
        """A constant of `like`'s dtype and quantization (a pad value, a clamp bound)."""
        return self._add(self.fresh(base), np.shape(array), like.dtype, like.type.quant,
                         np.asarray(array, like.dtype.np))

    def buffer(self, array: np.ndarray) -> int:
        data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        key = data.tobytes()
        if key not in self._buffer_of:
            self._buffer_of[key] = len(self.buffers)
            self.buffers.append(fb.BufferT(data=data))
        return self._buffer_of[key]

    # ------------------------------------------------------------ operators
    def op(self, code: int, inputs, outputs, options=None):
        """Append one TFLite operator; `options` is the builtin's options object (e.g. Conv2DOptionsT)."""
        if code not in self._opcode_of:
            self._opcode_of[code] = len(self.opcodes)
            self.opcodes.append(fb.OperatorCodeT(deprecatedBuiltinCode=min(code, OP.PLACEHOLDER_FOR_GREATER_OP_CODES),
                                                 builtinCode=code, version=1))
        o = fb.OperatorT(opcodeIndex=self._opcode_of[code], inputs=list(inputs), outputs=list(outputs))
        if options is not None:
            o.builtinOptionsType = getattr(fb.BuiltinOptions, type(options).__name__[:-1])
            o.builtinOptions = options
        self.operators.append(o)
        self.node_ops.setdefault(self.current, []).append(o)
        return outputs[0] if len(outputs) == 1 else outputs

    def unary(self, code, x: int, like: Value, shape, options=None, out: int | None = None) -> int:
        return self.op(code, [x], [self.temp(like, shape) if out is None else out], options)

    def reshape(self, x: int, like: Value, shape, out: int | None = None) -> int:
        out = self.temp(like, shape, "reshaped") if out is None else out
        self.views.append((x, out))
        return self.op(OP.RESHAPE, [x, self.ints(shape, "shape")], [out])

    def transpose(self, x: int, like: Value, shape, perm, out: int | None = None) -> int:
        """TRANSPOSE of tensor `x` (of `shape`) by `perm`."""
        out = self.temp(like, [shape[p] for p in perm], "transposed") if out is None else out
        return self.op(OP.TRANSPOSE, [x, self.ints(perm, "perm")], [out])

    def lower(self, n: Node):
        self.current = n.name
        LOWERINGS[n.op](self, n)


# ---------------------------------------------------------------- helpers

def _act(n: Node) -> int:
    """The TFLite fused activation of `n`: its `act`, or for an integer op the activation whose
    clamp TFLite derives from the output's scale and zero point, which must be our act_min/act_max."""
    if "act" in n.attrs:
        return _ACTS[n.attrs["act"]]
    y = n.output
    act = quant.fused_activation(n.attrs["act_min"], n.attrs["act_max"], y.type.quant.scale[0],
                                 y.type.quant.zero_point[0], y.dtype.value)
    if act is None:
        raise _Unsupported(f"output clamp [{n.attrs['act_min']}, {n.attrs['act_max']}] is not one TFLite derives "
                           "from a fused activation")
    return _ACTS[act]


def _padding(sizes, outs, kernel, stride, dilation, pads, same_ok=True):
    """SAME or VALID when TFLite's rule for it gives the IR's windows, else None."""
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if all(p == 0 and o == (n - k) // s + 1 for n, o, k, s, p in zip(sizes, outs, eff, stride, pads)):
        return VALID
    if same_ok and all(o == -(-n // s) and p == max((o - 1) * s + k - n, 0) // 2
                       for n, o, k, s, p in zip(sizes, outs, eff, stride, pads)):
        return SAME
    return None


def _window_2d(a: dict, kernel):
    """(kernel, stride, dilation, pads) of a 1-D or 2-D window op, as those of the 2-D op on
    (N, H, W, C) = (N, 1, W, C) for 1-D ones."""
    if len(a["stride"]) == 2:
        return list(kernel), list(a["stride"]), list(a.get("dilation", [1, 1])), list(a["pads"])
    return [1, *kernel], [1, *a["stride"]], [1, *a.get("dilation", [1])], [0, a["pads"][0], 0, a["pads"][1]]


def _padded(e: Emitter, x: Value, xt: int, outs, kernel, stride, pads) -> int:
    """NHWC `x` zero-padded (PAD: the zero point of a quantized tensor) so that VALID windows are
    the IR's: by the begin pads, and at the end as far as the last window reaches."""
    table = [[0, 0], *([p, max((o - 1) * s + k - n - p, 0)]
                       for o, s, k, n, p in zip(outs, stride, kernel, x.shape[1:3], pads)), [0, 0]]
    shape = [d + b + a for d, (b, a) in zip(x.shape, table)]
    return e.op(OP.PAD, [xt, e.ints(table, "paddings")], [e.temp(x, shape, "padded")])


def _require_channel_last(n: Node):
    if n.attrs["layout"][1] == "C":
        raise _Unsupported(f"layout {n.attrs['layout']}: TFLite is channel-last (run the to-nhwc pass)")


def _view(v: Value, shape) -> Value:
    """A stand-in for `v` with another shape (what the 2-D form of a 1-D op sees)."""
    return Value(v.name, v.type.with_shape(shape))


def _as_2d(e: Emitter, n: Node, lower_2d):
    """Lower `n` through its 2-D form `lower_2d(x4: Value, x4_tensor, y4: Value, y4_tensor)`; a 1-D
    (NWC) op is reshaped to (N, 1, W, C) and back, the way TFLite's converter lowers conv1d."""
    _require_channel_last(n)
    x, y = n.inputs[0], n.output
    if x.type.rank == 4:
        return lower_2d(x, e.tensor(x), y, e.tensor(y))
    x4, y4 = _view(x, [x.shape[0], 1, *x.shape[1:]]), _view(y, [y.shape[0], 1, *y.shape[1:]])
    out = lower_2d(x4, e.reshape(e.tensor(x), x, x4.shape), y4, e.temp(y, y4.shape, "out_2d"))
    e.reshape(out, y, y.shape, out=e.tensor(y))


# ---------------------------------------------------------------- lowerings

LOWERINGS: dict = {}


lowers = ops.registrar(LOWERINGS)


def _bias(e: Emitter, n: Node, cout: int) -> int:
    """The bias tensor; zeros (float, or int32 for integer ops) when the node has none."""
    if len(n.inputs) > 2:
        return e.tensor(n.inputs[2])
    x = n.inputs[0]
    if x.dtype == DType.f32:
        return e.const(np.zeros(cout, np.float32), "bias")
    wq = n.inputs[1].type.quant
    scales = [x.type.quant.scale[0] * s for s in wq.scale]
    return e.const(np.zeros(cout, np.int64 if x.dtype == DType.i16 else np.int32), "bias",
                   QuantParams(scales, [0] * len(scales), 0 if len(scales) > 1 else None))


@lowers("conv1d", "conv2d", "qconv1d", "qconv2d")
def _conv(e, n):
    """CONV_2D (grouped when the filter has fewer input channels than the input), or
    DEPTHWISE_CONV_2D when every group is one input channel (filter [1, kH, kW, C_out],
    per-channel parameters on axis 3)."""
    w, a = n.inputs[1], n.attrs

    def lower_2d(x, xt, y, yt):
        kernel, stride, dil, pads = _window_2d(a, w.shape[1:-1])
        padding = _padding(x.shape[1:3], y.shape[1:3], kernel, stride, dil, pads)
        if padding is None:
            raise _Unsupported(f"pads {a['pads']} are neither SAME nor VALID (run `explicit_pads` first)")
        cin, cout, g, wq = x.shape[-1], w.shape[0], a["groups"], w.type.quant
        common = dict(padding=padding, strideH=stride[0], strideW=stride[1], dilationHFactor=dil[0],
                      dilationWFactor=dil[1], fusedActivationFunction=_act(n))
        if g != cin or g == 1:  # CONV_2D takes groups as filter input channels < input channels
            wt = e.tensor(w) if w.type.rank == 4 else e.const(w.data.reshape(cout, *kernel, cin // g), "filter", wq)
            return e.op(OP.CONV_2D, [xt, wt, _bias(e, n, cout)], [yt], fb.Conv2DOptionsT(**common))
        q = None if wq is None else QuantParams(wq.scale, wq.zero_point, 3 if wq.axis is not None else None)
        wt = e.const(np.ascontiguousarray(w.data.reshape(cout, *kernel).transpose(1, 2, 0)[None]), "filter", q)
        return e.op(OP.DEPTHWISE_CONV_2D, [xt, wt, _bias(e, n, cout)], [yt],
                    fb.DepthwiseConv2DOptionsT(depthMultiplier=cout // cin, **common))
    _as_2d(e, n, lower_2d)


@lowers("conv_transpose2d", "qconv_transpose2d")
def _conv_transpose2d(e, n):
    """TRANSPOSE_CONV, VALID, on an output grown by output_padding beyond the last input's reach
    (those rows get the bias only, as in torch), then cropped by the pads (STRIDED_SLICE). Groups
    (float only) become one TRANSPOSE_CONV per group on a SPLIT of the input, concatenated."""
    _require_channel_last(n)
    x, w, y, a = n.inputs[0], n.inputs[1], n.output, n.attrs
    g, cout = a["groups"], y.shape[-1]
    if a["dilation"] != [1, 1]:
        raise _Unsupported(f"dilation {a['dilation']}: TRANSPOSE_CONV has none")
    full = [(s - 1) * st + k for s, st, k in zip(x.shape[1:3], a["stride"], w.shape[1:3])]
    grown = [y.shape[0], *(max(f, a["pads"][i] + y.shape[1 + i]) for i, f in enumerate(full)), cout]
    cropped = grown[1:3] != list(y.shape[1:3])
    out = e.temp(y, grown, "full") if cropped else e.tensor(y)
    opts = fb.TransposeConvOptionsT(padding=VALID, strideH=a["stride"][0], strideW=a["stride"][1],
                                    fusedActivationFunction=_act(n))
    if g == 1:
        e.op(OP.TRANSPOSE_CONV, [e.ints(grown, "output_shape"), e.tensor(w), e.tensor(x), _bias(e, n, cout)],
             [out], opts)
    elif x.dtype != DType.f32:
        raise _Unsupported(f"{g} groups: TRANSPOSE_CONV has none, and the split form is float only")
    else:
        ci, co = x.shape[-1] // g, cout // g
        b = n.inputs[2].data if len(n.inputs) > 2 else np.zeros(cout, np.float32)
        xs = e.op(OP.SPLIT, [e.const(np.int32(3), "axis"), e.tensor(x)],
                  [e.temp(x, [*x.shape[:3], ci], "group") for _ in range(g)], fb.SplitOptionsT(numSplits=g))
        parts = [e.op(OP.TRANSPOSE_CONV, [e.ints([*grown[:3], co], "output_shape"),
                                          e.const(np.ascontiguousarray(w.data[..., j * ci:(j + 1) * ci]), "filter"),
                                          xs[j], e.const(b[j * co:(j + 1) * co], "bias")],
                      [e.temp(y, [*grown[:3], co], "group_out")], opts) for j in range(g)]
        e.op(OP.CONCATENATION, parts, [out], fb.ConcatenationOptionsT(axis=3))
    if cropped:
        begin = [0, a["pads"][0], a["pads"][1], 0]
        _strided_slice(e, out, begin, [b + d for b, d in zip(begin, y.shape)], [1] * 4, e.tensor(y))


@lowers("linear", "qlinear")
def _linear(e, n):
    x, w, y = n.inputs[0], n.inputs[1], n.output
    opts = fb.FullyConnectedOptionsT(fusedActivationFunction=_act(n), keepNumDims=x.type.rank > 2)
    e.op(OP.FULLY_CONNECTED, [e.tensor(x), e.tensor(w), _bias(e, n, w.shape[0])], [e.tensor(y)], opts)


@lowers("matmul")
def _matmul(e, n):
    """BATCH_MATMUL; a vector operand is a (1, k) or (k, 1) matrix, reshaped there and back."""
    a, b, y = n.inputs[0], n.inputs[1], n.output
    a2 = a.shape if a.type.rank > 1 else (1, *a.shape)
    b2 = b.shape if b.type.rank > 1 else (*b.shape, 1)
    full = ops.get("matmul").shape([a2, b2], {})[0]
    out = e.tensor(y) if full == y.shape else e.temp(y, full)
    e.op(OP.BATCH_MATMUL, [e.tensor(a) if a2 == a.shape else e.reshape(e.tensor(a), a, a2),
                           e.tensor(b) if b2 == b.shape else e.reshape(e.tensor(b), b, b2)], [out],
         fb.BatchMatMulOptionsT())
    if full != y.shape:
        e.reshape(out, y, y.shape, out=e.tensor(y))


def _broadcast_const(e: Emitter, array, axis: int, rank: int, base: str) -> int:
    shape = [1] * rank
    shape[axis] = -1
    return e.const(np.asarray(array, np.float32).reshape(shape), base)


@lowers("batch_norm")
def _batch_norm(e, n):
    """x * alpha + (bias - mean * alpha) with alpha = scale / sqrt(var + eps), as MUL and ADD."""
    x = n.inputs[0]
    if any(v.data is None for v in n.inputs[1:]):
        raise _Unsupported("batch_norm with non-constant parameters")
    scale, bias, mean, var = (v.data for v in n.inputs[1:])
    ax, r = norm_axis(n.attrs["axis"], x.type.rank), x.type.rank
    alpha = scale / np.sqrt(var + np.float32(n.attrs["eps"]))
    t = e.op(OP.MUL, [e.tensor(x), _broadcast_const(e, alpha, ax, r, "alpha")], [e.temp(x, x.shape)],
             fb.MulOptionsT())
    e.op(OP.ADD, [t, _broadcast_const(e, bias - mean * alpha, ax, r, "beta")], [e.tensor(n.output)], fb.AddOptionsT())


@lowers("layer_norm")
def _layer_norm(e, n):
    """(x - mean) * rsqrt(mean((x - mean)^2) + eps) * scale + bias over the trailing axes."""
    x, *p = n.inputs
    axes = list(range(norm_axis(n.attrs["axis"], x.type.rank), x.type.rank))
    red = [1 if i in axes else d for i, d in enumerate(x.shape)]
    axes_t = e.ints(axes, "axes")
    keep = fb.ReducerOptionsT(keepDims=True)
    d = e.op(OP.SUB, [e.tensor(x), e.op(OP.MEAN, [e.tensor(x), axes_t], [e.temp(x, red, "mean")], keep)],
             [e.temp(x, x.shape, "centered")], fb.SubOptionsT())
    var = e.op(OP.MEAN, [e.op(OP.MUL, [d, d], [e.temp(x, x.shape, "sq")], fb.MulOptionsT()), axes_t],
               [e.temp(x, red, "var")], keep)
    eps = e.op(OP.ADD, [var, e.const(np.array(n.attrs["eps"], np.float32), "eps")], [e.temp(x, red)], fb.AddOptionsT())
    y = e.op(OP.MUL, [d, e.unary(OP.RSQRT, eps, x, red)], [e.temp(x, x.shape, "normed") if p else e.tensor(n.output)],
             fb.MulOptionsT())
    for i, (v, code, opts) in enumerate(zip(p, (OP.MUL, OP.ADD), (fb.MulOptionsT(), fb.AddOptionsT()))):
        y = e.op(code, [y, e.tensor(v)], [e.tensor(n.output) if i == len(p) - 1 else e.temp(x, x.shape)], opts)


def _simple(code, options=None):
    return lambda e, n: e.op(code, [e.tensor(v) for v in n.inputs], [e.tensor(n.output)],
                             options() if options else None)


for _op, _code in [("relu", OP.RELU), ("relu6", OP.RELU6), ("sigmoid", OP.LOGISTIC), ("tanh", OP.TANH),
                   ("hardswish", OP.HARD_SWISH), ("qlogistic", OP.LOGISTIC), ("qtanh", OP.TANH),
                   ("qhardswish", OP.HARD_SWISH), ("quantize", OP.QUANTIZE), ("dequantize", OP.DEQUANTIZE),
                   ("requantize", OP.QUANTIZE)]:
    LOWERINGS[_op] = _simple(_code)
LOWERINGS["div"] = _simple(OP.DIV, fb.DivOptionsT)


@lowers("leaky_relu")
def _leaky_relu(e, n):
    e.op(OP.LEAKY_RELU, [e.tensor(n.inputs[0])], [e.tensor(n.output)], fb.LeakyReluOptionsT(alpha=n.attrs["alpha"]))


@lowers("qleaky_relu")
def _qleaky_relu(e, n):
    """LEAKY_RELU stores alpha where we store its multipliers: the float32 alpha nearest to what
    they encode for which TFLite derives the same ones (quant.leaky_relu_params)."""
    x, y, a = n.inputs[0], n.output, n.attrs
    (s_in, zp_in), (s_out, zp_out) = ((v.type.quant.scale[0], v.type.quant.zero_point[0]) for v in (x, y))
    alpha = np.float32(a["alpha_multiplier"] * 2.0 ** (a["alpha_shift"] - 31) * s_out / s_in)
    for step in range(64):  # alpha, then its float32 neighbours outwards
        c = alpha if step == 0 else alpha + (-1) ** step * ((step + 1) // 2) * np.spacing(alpha)
        params = quant.leaky_relu_params(s_in, zp_in, s_out, zp_out, float(c))
        if all(params[k] == a[k] for k in params):
            return e.op(OP.LEAKY_RELU, [e.tensor(x)], [e.tensor(y)], fb.LeakyReluOptionsT(alpha=float(c)))
    raise _Unsupported(f"no float32 alpha gives alpha multiplier {a['alpha_multiplier']} (shift {a['alpha_shift']})")


@lowers("identity", "dropout")
def _identity(e, n):
    x = n.inputs[0]
    e.op(OP.RESHAPE, [e.tensor(x), e.ints(x.shape, "shape")], [e.tensor(n.output)])


@lowers("clamp")
def _clamp(e, n):
    x = n.inputs[0]
    lo = e.op(OP.MAXIMUM, [e.tensor(x), e.like_const(x, n.attrs["min"], "min")], [e.temp(x, x.shape)])
    e.op(OP.MINIMUM, [lo, e.like_const(x, n.attrs["max"], "max")], [e.tensor(n.output)])


@lowers("hardsigmoid")
def _hardsigmoid(e, n):
    """relu6(x + 3) / 6 as ADD (fused RELU6) and MUL."""
    x = n.inputs[0]
    t = e.op(OP.ADD, [e.tensor(x), e.const(np.float32(3), "three")], [e.temp(x, x.shape)],
             fb.AddOptionsT(fusedActivationFunction=_ACTS["relu6"]))
    e.op(OP.MUL, [t, e.const(np.float32(1 / 6), "sixth")], [e.tensor(n.output)], fb.MulOptionsT())


@lowers("silu")
def _silu(e, n):
    x = n.inputs[0]
    e.op(OP.MUL, [e.tensor(x), e.unary(OP.LOGISTIC, e.tensor(x), x, x.shape)], [e.tensor(n.output)], fb.MulOptionsT())


@lowers("gelu")
def _gelu(e, n):
    e.op(OP.GELU, [e.tensor(n.inputs[0])], [e.tensor(n.output)],
         fb.GeluOptionsT(approximate=n.attrs["approximate"] == "tanh"))


def _on_last_axis(e: Emitter, n: Node, axis: int, code: int, options):
    """`code` (which works on the last axis) applied along `axis`, transposing there and back."""
    x, y = n.inputs[0], n.output
    r, ax = x.type.rank, norm_axis(axis, x.type.rank)
    if ax == r - 1:
        return e.op(code, [e.tensor(x)], [e.tensor(y)], options)
    perm = [*(i for i in range(r) if i != ax), ax]
    t = e.transpose(e.tensor(x), x, x.shape, perm)
    t = e.op(code, [t], [e.temp(y, [y.shape[p] for p in perm])], options)
    e.transpose(t, y, [y.shape[p] for p in perm], list(np.argsort(perm)), out=e.tensor(y))


@lowers("softmax", "log_softmax", "qsoftmax", "qlog_softmax")
def _softmax(e, n):
    code, opts = (OP.LOG_SOFTMAX, fb.LogSoftmaxOptionsT()) if n.op.endswith("log_softmax") else \
        (OP.SOFTMAX, fb.SoftmaxOptionsT(beta=1.0))
    _on_last_axis(e, n, n.attrs["axis"], code, opts)


_BINARY = {"add": (OP.ADD, fb.AddOptionsT), "sub": (OP.SUB, fb.SubOptionsT), "mul": (OP.MUL, fb.MulOptionsT)}


@lowers("add", "sub", "mul", "qadd", "qsub", "qmul")
def _binary(e, n):
    code, options = _BINARY[n.op.removeprefix("q")]
    e.op(code, [e.tensor(v) for v in n.inputs], [e.tensor(n.output)], options(fusedActivationFunction=_act(n)))


@lowers("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "qavg_pool1d", "qavg_pool2d")
def _pool(e, n):
    """MAX_POOL_2D / AVERAGE_POOL_2D. A dilated max pool is the MAXIMUM of its taps, each a strided
    slice of the input. A float average pool whose padding TFLite cannot express pads with zeros
    and rescales each output by (window size / torch's divisor) with a constant MUL."""
    a = n.attrs
    is_max = n.op.startswith("max")
    code = OP.MAX_POOL_2D if is_max else OP.AVERAGE_POOL_2D

    def lower_2d(x, xt, y, yt):
        kernel, stride, dil, pads = _window_2d(a, a["kernel"])
        sizes, outs = x.shape[1:3], y.shape[1:3]
        if dil != [1, 1]:
            if any(pads):
                raise _Unsupported("a padded dilated max pool (run `explicit_pads` first)")
            taps = [_strided_slice(e, xt, [0, i * dil[0], j * dil[1], 0],
                                   [y.shape[0], i * dil[0] + (outs[0] - 1) * stride[0] + 1,
                                    j * dil[1] + (outs[1] - 1) * stride[1] + 1, y.shape[-1]],
                                   [1, *stride, 1], e.temp(y, y.shape, "tap"))
                    for i in range(kernel[0]) for j in range(kernel[1])]
            for k, t in enumerate(taps[1:], 2):
                taps[0] = e.op(OP.MAXIMUM, [taps[0], t], [yt if k == len(taps) else e.temp(y, y.shape, "max")])
            return taps[0]

        def pool(p, xt, yt):
            return e.op(code, [xt], [yt], fb.Pool2DOptionsT(
                padding=p, strideH=stride[0], strideW=stride[1], filterHeight=kernel[0], filterWidth=kernel[1],
                fusedActivationFunction=_act(n) if "act_min" in a else _ACTS["none"]))
        cip = a.get("count_include_pad", False) and any(pads)
        padding = _padding(sizes, outs, kernel, stride, dil, pads, same_ok=is_max or not cip)
        if padding is not None:
            return pool(padding, xt, yt)
        if is_max or x.dtype != DType.f32:
            raise _Unsupported(f"pads {a['pads']} are neither SAME nor VALID (run `explicit_pads` first)")
        count = np.ones((), np.float32)  # torch's divisor: the window clipped to the padded input, or the input
        for i, size in enumerate(sizes):
            start = np.arange(outs[i]) * stride[i] - pads[i]
            end = np.minimum(start + kernel[i], size + pads[2 + i])
            if not a["count_include_pad"]:
                start, end = np.maximum(start, 0), np.minimum(end, size)
            count = np.multiply.outer(count, (end - start).astype(np.float32))
        avg = pool(VALID, _padded(e, x, xt, outs, kernel, stride, pads), e.temp(y, y.shape, "avg"))
        rescale = (kernel[0] * kernel[1] / count).reshape(1, *outs, 1).astype(np.float32)
        return e.op(OP.MUL, [avg, e.const(rescale, "rescale")], [yt], fb.MulOptionsT())
    _as_2d(e, n, lower_2d)


@lowers("adaptive_avg_pool")
def _adaptive_avg_pool(e, n):
    """MEAN for a global pool, AVERAGE_POOL_2D when the sizes divide, else a FULLY_CONNECTED per
    spatial axis whose constant weights average torch's bins (the axis moved last and back)."""
    _require_channel_last(n)
    x, y = n.inputs[0], n.output
    sizes, outs = list(x.shape[1:-1]), n.attrs["output_size"]
    axes = list(range(1, x.type.rank - 1))
    if all(o == 1 for o in outs):
        return e.op(OP.MEAN, [e.tensor(x), e.ints(axes, "axes")], [e.tensor(y)], fb.ReducerOptionsT(keepDims=True))
    if len(sizes) == 2 and all(s % o == 0 for s, o in zip(sizes, outs)):
        k = [s // o for s, o in zip(sizes, outs)]
        return e.op(OP.AVERAGE_POOL_2D, [e.tensor(x)], [e.tensor(y)],
                    fb.Pool2DOptionsT(padding=VALID, strideH=k[0], strideW=k[1], filterHeight=k[0], filterWidth=k[1]))
    if x.dtype != DType.f32:
        raise _Unsupported(f"integer adaptive pool from {sizes} to {outs}")
    t, shape = e.tensor(x), list(x.shape)
    for i, (ax, s, o) in enumerate(zip(axes, sizes, outs)):
        j, k = np.arange(o)[:, None], np.arange(s)
        bins = (k >= j * s // o) & (k < -(-(j + 1) * s // o))
        perm = [*(d for d in range(x.type.rank) if d != ax), ax]
        t = e.transpose(t, x, shape, perm)
        moved = [shape[p] for p in perm]
        fc = fb.FullyConnectedOptionsT(keepNumDims=True)
        t = e.op(OP.FULLY_CONNECTED, [t, e.const((bins / bins.sum(1, keepdims=True)).astype(np.float32), "bins"),
                                      e.const(np.zeros(o, np.float32), "bias")], [e.temp(x, [*moved[:-1], o])], fc)
        shape[ax] = o
        t = e.transpose(t, x, [*moved[:-1], o], list(np.argsort(perm)), out=e.tensor(y) if i == len(axes) - 1 else None)


@lowers("mean", "qmean")
def _mean(e, n):
    x = n.inputs[0]
    axes = sorted(norm_axis(a, x.type.rank) for a in n.attrs["axes"])
    e.op(OP.MEAN, [e.tensor(x), e.ints(axes, "axes")], [e.tensor(n.output)],
         fb.ReducerOptionsT(keepDims=n.attrs["keepdims"]))


@lowers("reshape")
def _reshape(e, n):
    """RESHAPE; none to a matrix only linear layers read: FULLY_CONNECTED flattens its input
    itself, so the matrix is the computed tensor (which the memory plan aliases it to)."""
    x, y = n.inputs[0], n.output
    if not x.is_const and y.type.rank == 2 and y.users and id(y) not in e.outputs and all(
            u.op in ("linear", "qlinear") and all(v is not y for v in u.inputs[1:]) for u in y.users):
        e._index[id(y)] = e.tensor(x)
        return
    e.op(OP.RESHAPE, [e.tensor(n.inputs[0]), e.ints(n.attrs["shape"], "shape")], [e.tensor(n.output)],
         fb.ReshapeOptionsT(newShape=list(n.attrs["shape"])))


@lowers("transpose")
def _transpose(e, n):
    x = n.inputs[0]
    e.transpose(e.tensor(x), x, x.shape, n.attrs["perm"], out=e.tensor(n.output))


@lowers("concat")
def _concat(e, n):
    axis = norm_axis(n.attrs["axis"], n.output.type.rank)
    e.op(OP.CONCATENATION, [e.tensor(v) for v in n.inputs], [e.tensor(n.output)], fb.ConcatenationOptionsT(axis=axis))


@lowers("split")
def _split(e, n):
    x, sizes = n.inputs[0], n.attrs["sizes"]
    axis = np.array(norm_axis(n.attrs["axis"], x.type.rank), np.int32)
    outs = [e.tensor(v) for v in n.outputs]
    if len(set(sizes)) == 1:
        return e.op(OP.SPLIT, [e.const(axis, "axis"), e.tensor(x)], outs, fb.SplitOptionsT(numSplits=len(sizes)))
    e.op(OP.SPLIT_V, [e.tensor(x), e.ints(sizes, "sizes"), e.const(axis, "axis")], outs,
         fb.SplitVOptionsT(numSplits=len(sizes)))


def _strided_slice(e: Emitter, x: int, begin, end, strides, out: int) -> int:
    return e.op(OP.STRIDED_SLICE, [x, e.ints(begin, "begin"), e.ints(end, "end"), e.ints(strides, "strides")],
                [out], fb.StridedSliceOptionsT())


@lowers("slice")
def _slice(e, n):
    x, a = n.inputs[0], n.attrs
    begin, end, strides = [0] * x.type.rank, list(x.shape), [1] * x.type.rank
    for ax, st, en, sp in zip(a["axes"], a["starts"], a["ends"], a["steps"]):
        ax = norm_axis(ax, x.type.rank)
        begin[ax], end[ax], strides[ax] = slice(st, en, sp).indices(x.shape[ax])
    _strided_slice(e, e.tensor(x), begin, end, strides, e.tensor(n.output))


@lowers("pad")
def _pad(e, n):
    """PAD (zeros, or the zero point of a quantized tensor) or PADV2 (another value); negative pads
    (crops) become a STRIDED_SLICE after padding by the positive ones."""
    x, y, p, r = n.inputs[0], n.output, n.attrs["pads"], n.inputs[0].type.rank
    table = [[max(p[i], 0), max(p[r + i], 0)] for i in range(r)]
    q = x.type.quant
    value = n.attrs["value"]
    default = value == (q.zero_point[0] if q is not None else 0)
    crop = min(p) < 0
    shape = [d + b + a for d, (b, a) in zip(x.shape, table)]
    out = e.temp(x, shape, "padded") if crop else e.tensor(y)
    inputs = [e.tensor(x), e.ints(table, "paddings")] + ([] if default else [e.like_const(x, np.array([value]))])
    e.op(OP.PAD if default else OP.PADV2, inputs, [out])
    if crop:
        begin = [max(-p[i], 0) for i in range(r)]
        _strided_slice(e, out, begin, [b + d for b, d in zip(begin, y.shape)], [1] * r, e.tensor(y))


@lowers("resize")
def _resize(e, n):
    a = n.attrs
    if a["mode"] == "nearest":  # torch's nearest: src = floor(dst * in / out)
        code, opts = OP.RESIZE_NEAREST_NEIGHBOR, fb.ResizeNearestNeighborOptionsT()
    else:  # torch's bilinear is half-pixel unless align_corners
        code = OP.RESIZE_BILINEAR
        opts = fb.ResizeBilinearOptionsT(alignCorners=a["align_corners"], halfPixelCenters=not a["align_corners"])
    _as_2d(e, n, lambda x, xt, y, yt: e.op(code, [xt, e.ints(y.shape[1:3], "size")], [yt], opts))


# ---------------------------------------------------------------- graph -> model

# TFLite's convolutions, pools and resizes are channel-last: compile() runs these before the plan
LEGALIZE = (("to-nhwc", {}),)


def _channel_last(graph: Graph) -> Graph:
    """`graph` when its layout ops are all channel-last, else a copy the legalization ran over."""
    if all(n.attrs.get("layout", "NHWC")[1] != "C" for n in graph.nodes):
        return graph
    return legalized(graph, LEGALIZE)


_PADDED = {"conv1d", "conv2d", "qconv1d", "qconv2d", "max_pool1d", "max_pool2d"}


def _pad_to_split(n: Node) -> bool:
    """Whether `n` pads in a way TFLite's op cannot (not SAME or VALID; any pad on a dilated pool)."""
    if n.op not in _PADDED:
        return False
    a, x, y = n.attrs, n.inputs[0], n.output
    kernel, stride, dil, pads = _window_2d(a, a["kernel"] if "pool" in n.op else n.inputs[1].shape[1:-1])
    if "pool" in n.op and dil != [1, 1]:
        return any(pads)
    sizes, outs = ([1, *v.shape[1:-1]][-2:] for v in (x, y))
    return _padding(sizes, outs, kernel, stride, dil, pads) is None


def explicit_pads(graph: Graph) -> Graph:
    """`graph`, or a copy in which each convolution and max pool that pads in a way TFLite cannot
    reads an explicit `pad` op instead (of zero, the zero point, or the lowest value): TFLite runs
    it as PAD then the op, and the padded tensor becomes an IR value the memory planner sees (it
    outlives the input only by the PAD)."""
    if not any(_pad_to_split(n) for n in graph.nodes):
        return graph
    graph = graph.clone()
    for n in graph.nodes:
        if not _pad_to_split(n):
            continue
        a, x, y = n.attrs, n.inputs[0], n.output
        nd = len(a["stride"])
        kernel = a["kernel"] if "pool" in n.op else n.inputs[1].shape[1:-1]
        ends = [max((o - 1) * s + d * (k - 1) + 1 - size - p, 0) for o, s, d, k, size, p in
                zip(y.shape[1:-1], a["stride"], a.get("dilation", [1] * nd), kernel, x.shape[1:-1], a["pads"])]
        if "pool" in n.op:
            value = float(np.finfo(np.float32).min) if x.dtype == DType.f32 else int(np.iinfo(x.dtype.np).min)
        else:
            value = 0.0 if x.dtype == DType.f32 else x.type.quant.zero_point[0]
        padded = graph.op("pad", [x], {"pads": [0, *a["pads"][:nd], 0, 0, *ends, 0], "value": value},
                          name=f"{n.name}.pad", before=n)
        graph.set_input(n, 0, padded)
        n.attrs = {**a, "pads": [0] * (2 * nd), **({"ceil_mode": False} if "ceil_mode" in a else {})}
        assert ops.get(n.op).result_types([v.type for v in n.inputs], n.attrs)[0].shape == y.shape
    return graph


def _tflm_scratch(e: Emitter, o: fb.OperatorT) -> list[int]:
    """Bytes of the scratch buffers TFLite Micro's kernel for operator `o` asks for in the arena
    (the Prepare of transpose_conv.cc and reduce_common.cc): the plan leaves room for them."""
    code, out, x = e.opcodes[o.opcodeIndex].builtinCode, e.tensors[o.outputs[0]], e.tensors[o.inputs[0]]
    integer = {fb.TensorType.INT8: 4, fb.TensorType.INT16: 8}
    if code == OP.TRANSPOSE_CONV and e.tensors[o.inputs[2]].type in integer:
        return [math.prod(out.shape) * integer[e.tensors[o.inputs[2]].type]]  # int32/int64 accumulators
    if code == OP.MEAN:
        return [4 * len(x.shape), 4 * math.prod(e.tensors[o.inputs[1]].shape)] + \
            ([4 * math.prod(out.shape)] if x.type in integer else [])
    return []


def _temp_layout(e: Emitter, node: str, alignment: int = 16) -> tuple[dict[int, int], dict[int, int], int]:
    """Where the temporaries of IR node `node` go in the arena: a reshape of (or into) an IR value
    shares its bytes (TFLite Micro's RESHAPE copies nothing then); the others are packed, aligned,
    into the node's scratch buffer, followed by room for TFLite Micro's own kernel scratch.
    -> ({temp: IR value's tensor}, {temp: offset in the scratch buffer}, scratch bytes)."""
    shared, packed, size = {}, {}, 0
    for t in e.temps.get(node, []):
        other = next((b if a == t else a for a, b in e.views if t in (a, b) and (b if a == t else a) in e.values), None)
        if other is not None:
            shared[t] = other
        else:
            packed[t], size = size, size + -(-e.nbytes[t] // alignment) * alignment
    kernel = [b for o in e.node_ops.get(node, []) for b in _tflm_scratch(e, o)]
    return shared, packed, size + sum(-(-b // alignment) * alignment for b in kernel)


def scratch_bytes(node: Node) -> int:
    """Arena bytes the TFLite form of `node` needs besides the IR's values: the temporaries its
    lowering adds and TFLite Micro's kernel scratch. As the memory planner's `scratch` function
    (the backend's `scratch`, for the memory-plan pass), it makes plans `to_tflite` uses as they are."""
    e = Emitter()
    try:
        e.lower(node)
    except _Unsupported:
        return 0
    return _temp_layout(e, node.name)[2]


def offline_plan_offsets(e: Emitter, graph: Graph, plan) -> list[int]:
    """One int32 per TFLite tensor: the planned arena offset of each IR value and of each
    temporary (in its node's scratch buffer, or on the IR value it is a reshape of); -1 (TFLite
    Micro's to plan) for constants, which stay in the flatbuffer."""
    offsets = [-1] * len(e.tensors)
    for v in graph.values():
        if not v.is_const and id(v) in e._index and v.name in plan.offsets:
            offsets[e._index[id(v)]] = plan.offsets[v.name]
    for n in graph.nodes:
        shared, packed, _ = _temp_layout(e, n.name, plan.alignment)
        for t, v in shared.items():
            offsets[t] = offsets[v]
        for t, off in packed.items():
            offsets[t] = plan.offsets[f"{n.name}.scratch"] + off
    return offsets


class _AlignedBuilder(flatbuffers.Builder):
    """A Builder writing byte vectors (buffer data) 16-byte aligned, as the schema's force_align
    asks and TFLite Micro expects (it reads weights and the offline plan in place)."""

    def CreateNumpyVector(self, x):
        if x.dtype != np.uint8:
            return super().CreateNumpyVector(x)
        self.StartVector(1, x.size, 16)
        self.head -= x.size
        self.Bytes[self.head:self.head + x.size] = x.tobytes()
        return self.EndVector()


def to_tflite(graph: Graph, plan=None, offline_plan: bool | None = None) -> bytes:
    """Lower `graph` to a checked .tflite flatbuffer.

    With `plan` (a MemoryPlan), the file carries an offline memory plan that TFLite Micro follows
    (`offline_plan=False`: it does not; `offline_plan=True` without a plan: one is made). The
    offsets are `plan`'s when it was made for the graph as TFLite runs it (the same nodes after
    `explicit_pads`, planned with `scratch_bytes`); otherwise the memory-plan pass plans that graph, in
    the same order and with the same alignment.
    """
    graph = explicit_pads(_channel_last(graph))
    e, missing = Emitter(), []
    e.outputs = {id(v) for v in graph.outputs}
    for n in graph.nodes:
        try:
            if n.op not in LOWERINGS:
                raise _Unsupported("no TFLite lowering")
            e.lower(n)
        except _Unsupported as why:
            missing.append(UnsupportedItem(f"{n.op}: {why}", n.name))
    if missing:
        raise UnsupportedOpError(missing, "rewrite these parts of the model, or use the c backend",
                                 "the TFLite backend cannot emit:")
    sub = fb.SubGraphT(tensors=e.tensors, operators=e.operators, name=graph.name,
                       inputs=[e.tensor(v) for v in graph.inputs], outputs=[e.tensor(v) for v in graph.outputs])
    metadata = [fb.MetadataT(name="mcuforge_version", buffer=e.buffer(np.frombuffer(__version__.encode(), np.uint8)))]
    if offline_plan or (offline_plan is None and plan is not None):
        if not _plans(plan, graph, e):
            plan = plan_for(graph, lambda n: _temp_layout(e, n.name)[2], plan.alignment if plan else 16)
        # the layout TFLite Micro reads: version, subgraph index, tensor count, one offset per tensor
        words = np.array([OFFLINE_PLAN_VERSION, 0, len(e.tensors), *offline_plan_offsets(e, graph, plan)], np.int32)
        e.buffers.append(fb.BufferT(data=words.view(np.uint8)))  # not shared: TFLite Micro reads it alone
        metadata.append(fb.MetadataT(name=OFFLINE_PLAN, buffer=len(e.buffers) - 1))
    model = fb.ModelT(version=3, operatorCodes=e.opcodes, subgraphs=[sub], buffers=e.buffers, metadata=metadata,
                      description=f"graph {graph.name} compiled by mcuforge {__version__}")
    builder = _AlignedBuilder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    data = bytes(builder.Output())
    _check(data, graph)
    return data


def _plans(plan, graph: Graph, e: Emitter) -> bool:
    """Whether `plan` places every activation of `graph` as emitted into `e`: the same nodes in
    the same order, and a large enough scratch buffer wherever a lowering made temporaries."""
    return plan is not None and plan.schedule == [n.name for n in graph.nodes] and all(
        plan.sizes.get(f"{n.name}.scratch", 0) >= _temp_layout(e, n.name, plan.alignment)[2] for n in graph.nodes)


def _check(data: bytes, graph: Graph):
    """Load `data` into LiteRT's interpreter: its flatbuffer verifier and every kernel's Prepare."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    try:
        no_delegates = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        Interpreter(model_content=data, experimental_op_resolver_type=no_delegates).allocate_tensors()
    except (RuntimeError, ValueError) as err:
        raise Error(f"LiteRT rejects the TFLite file emitted for graph {graph.name}: {err}",
                    "this is a bug in mcuforge's TFLite backend; please report it with the model") from None


def save_tflite(graph: Graph, path, plan=None, offline_plan: bool | None = None) -> str:
    """Write `to_tflite(graph, plan)` to `path` atomically (nothing is left behind on failure)."""
    data = to_tflite(graph, plan, offline_plan)
    return write_atomic(path, data)
