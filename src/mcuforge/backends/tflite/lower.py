"""IR -> TFLite operators: one lowering per IR op (`LOWERINGS[op](emitter, node)`), producing
tensors and operators through the `Emitter` (schema.py).

Where TFLite lacks a form the IR has, a lowering composes builtins: 1-D ops run as 2-D ones on a
reshaped (N, 1, W, C) view, grouped transposed convolutions per group, and a few float ops
decomposed (layer_norm, batch_norm, hardsigmoid, silu, clamp, dilated max pool). Integer ops map
to the same builtins on int8/int16 tensors: TFLite keeps only the tensors' scales and zero points
and recomputes the kernel parameters from them (which is why TFLite Micro running the file is the
test of our integer semantics); the lowering checks that our output clamps are the fused
activation TFLite will derive. The graph must be channel-last and padded the ways TFLite can
express (legalize.py).
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ...ir import ops, quant
from ...ir.graph import Node, Value
from ...ir.ops import norm_axis
from ...ir.types import DType, QuantParams
from .schema import ACTS, OP, SAME, VALID, Emitter, Unsupported

# ---------------------------------------------------------------- helpers

def _act(n: Node) -> int:
    """The TFLite fused activation of `n`: its `act`, or for an integer op the activation whose
    clamp TFLite derives from the output's scale and zero point, which must be our act_min/act_max."""
    if "act" in n.attrs:
        return ACTS[n.attrs["act"]]
    y = n.output
    act = quant.fused_activation(n.attrs["act_min"], n.attrs["act_max"], y.type.quant.scale[0],
                                 y.type.quant.zero_point[0], y.dtype.value)
    if act is None:
        raise Unsupported(f"output clamp [{n.attrs['act_min']}, {n.attrs['act_max']}] is not one TFLite derives "
                           "from a fused activation")
    return ACTS[act]


def tflite_padding(sizes, outs, kernel, stride, dilation, pads, same_ok=True):
    """SAME or VALID when TFLite's rule for it gives the IR's windows, else None."""
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if all(p == 0 and o == (n - k) // s + 1 for n, o, k, s, p in zip(sizes, outs, eff, stride, pads)):
        return VALID
    if same_ok and all(o == -(-n // s) and p == max((o - 1) * s + k - n, 0) // 2
                       for n, o, k, s, p in zip(sizes, outs, eff, stride, pads)):
        return SAME
    return None


def window_2d(a: dict, kernel):
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
        raise Unsupported(f"layout {n.attrs['layout']}: TFLite is channel-last (run the to-nhwc pass)")


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
        kernel, stride, dil, pads = window_2d(a, w.shape[1:-1])
        padding = tflite_padding(x.shape[1:3], y.shape[1:3], kernel, stride, dil, pads)
        if padding is None:
            raise Unsupported(f"pads {a['pads']} are neither SAME nor VALID (run `explicit_pads` first)")
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
        raise Unsupported(f"dilation {a['dilation']}: TRANSPOSE_CONV has none")
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
        raise Unsupported(f"{g} groups: TRANSPOSE_CONV has none, and the split form is float only")
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
        raise Unsupported("batch_norm with non-constant parameters")
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
                   ("requantize", OP.QUANTIZE), ("prelu", OP.PRELU), ("qprelu", OP.PRELU), ("exp", OP.EXP),
                   ("log", OP.LOG), ("sqrt", OP.SQRT), ("abs", OP.ABS), ("sign", OP.SIGN), ("maximum", OP.MAXIMUM),
                   ("minimum", OP.MINIMUM), ("pow", OP.POW)]:
    LOWERINGS[_op] = _simple(_code)
LOWERINGS["tile"] = lambda e, n: e.op(OP.TILE, [e.tensor(n.inputs[0]), e.ints(n.attrs["repeats"], "repeats")],
                                      [e.tensor(n.output)])
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
    raise Unsupported(f"no float32 alpha gives alpha multiplier {a['alpha_multiplier']} (shift {a['alpha_shift']})")


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
             fb.AddOptionsT(fusedActivationFunction=ACTS["relu6"]))
    e.op(OP.MUL, [t, e.const(np.float32(1 / 6), "sixth")], [e.tensor(n.output)], fb.MulOptionsT())


def _exp_minus_one(e, x: Value, t: int) -> int:
    """exp(t) - 1 for a tensor t of x's shape."""
    return e.op(OP.SUB, [e.unary(OP.EXP, t, x, x.shape), e.const(np.float32(1), "one")], [e.temp(x, x.shape)],
                fb.SubOptionsT())


@lowers("elu")
def _elu(e, n):
    """relu(x) + alpha * (exp(min(x, 0)) - 1)"""
    x = n.inputs[0]
    neg = e.op(OP.MINIMUM, [e.tensor(x), e.const(np.float32(0), "zero")], [e.temp(x, x.shape)])
    t = e.op(OP.MUL, [_exp_minus_one(e, x, neg), e.const(np.float32(n.attrs["alpha"]), "alpha")],
             [e.temp(x, x.shape)], fb.MulOptionsT())
    e.op(OP.ADD, [e.unary(OP.RELU, e.tensor(x), x, x.shape), t], [e.tensor(n.output)], fb.AddOptionsT())


@lowers("softplus")
def _softplus(e, n):
    """relu(x) + log(1 + exp(-|x|)), which does not overflow"""
    x = n.inputs[0]
    t = e.unary(OP.NEG, e.unary(OP.ABS, e.tensor(x), x, x.shape), x, x.shape)
    t = e.op(OP.ADD, [e.unary(OP.EXP, t, x, x.shape), e.const(np.float32(1), "one")], [e.temp(x, x.shape)],
             fb.AddOptionsT())
    e.op(OP.ADD, [e.unary(OP.RELU, e.tensor(x), x, x.shape), e.unary(OP.LOG, t, x, x.shape)], [e.tensor(n.output)],
         fb.AddOptionsT())


@lowers("silu")
def _silu(e, n):
    x = n.inputs[0]
    e.op(OP.MUL, [e.tensor(x), e.unary(OP.LOGISTIC, e.tensor(x), x, x.shape)], [e.tensor(n.output)], fb.MulOptionsT())


@lowers("erf")
def _erf(e, n):
    raise Unsupported("TFLite has no ERF operator (GELU, which TFLite has, is imported whole from torch and ONNX "
                      "Gelu); keep it in the c or onnx backend")


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
        kernel, stride, dil, pads = window_2d(a, a["kernel"])
        sizes, outs = x.shape[1:3], y.shape[1:3]
        if dil != [1, 1]:
            if any(pads):
                raise Unsupported("a padded dilated max pool (run `explicit_pads` first)")
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
                fusedActivationFunction=_act(n) if "act_min" in a else ACTS["none"]))
        cip = a.get("count_include_pad", False) and any(pads)
        padding = tflite_padding(sizes, outs, kernel, stride, dil, pads, same_ok=is_max or not cip)
        if padding is not None:
            return pool(padding, xt, yt)
        if is_max or x.dtype != DType.f32:
            raise Unsupported(f"pads {a['pads']} are neither SAME nor VALID (run `explicit_pads` first)")
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
        raise Unsupported(f"integer adaptive pool from {sizes} to {outs}")
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


@lowers("reduce")
def _reduce(e, n):
    x = n.inputs[0]
    code = {"sum": OP.SUM, "max": OP.REDUCE_MAX, "min": OP.REDUCE_MIN}[n.attrs["mode"]]
    e.op(code, [e.tensor(x), e.ints(sorted(norm_axis(a, x.type.rank) for a in n.attrs["axes"]), "axes")],
         [e.tensor(n.output)], fb.ReducerOptionsT(keepDims=n.attrs["keepdims"]))


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


CONCAT_INPUTS = 10  # TFLite Micro's CONCATENATION takes at most this many (kMaxInputNum)


@lowers("concat")
def _concat(e, n):
    """CONCATENATION; more inputs than TFLite Micro takes (an unrolled RNN's sequence) are first
    concatenated in groups into temporaries of the output's type."""
    y, axis = n.output, norm_axis(n.attrs["axis"], n.output.type.rank)
    opts = fb.ConcatenationOptionsT(axis=axis)
    parts = [(e.tensor(v), v.shape[axis]) for v in n.inputs]
    while len(parts) > CONCAT_INPUTS:
        groups, parts = [parts[i:i + CONCAT_INPUTS] for i in range(0, len(parts), CONCAT_INPUTS)], []
        for group in groups:
            size = sum(k for _, k in group)
            if len(group) > 1:
                t = e.temp(y, [size if i == axis else d for i, d in enumerate(y.shape)], "part")
                group = [(e.op(OP.CONCATENATION, [p for p, _ in group], [t], opts), size)]
            parts += group
    e.op(OP.CONCATENATION, [p for p, _ in parts], [e.tensor(y)], opts)


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


def lower(e: Emitter, n: Node):
    """Lower IR node `n` into `e` (Unsupported when TFLite cannot express it)."""
    if n.op not in LOWERINGS:
        raise Unsupported("no TFLite lowering")
    e.current = n.name
    LOWERINGS[n.op](e, n)
