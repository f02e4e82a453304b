"""The numpy reference semantics of every op: the definition that every backend is compared with.

`IMPLS` maps each op name to a function `fn(*operands, **attrs)` taking numpy arrays and the
node's complete attributes and returning an array, or a tuple of arrays for multi-result ops.
`evaluate` applies one op (constant folding calls it); `run` evaluates a whole graph once;
`Session` runs a graph with states (`Graph.states`) call after call, carrying them over.

Float ops compute in float32 as torch does (the oracle of the float tests). Integer ops (ops.py's
"integer ops") compute bit for bit what TFLite Micro's reference kernels compute; the ops that
also run unchanged on integer tensors (max_pool, pad, concat, clamp, ...) keep their dtype.
Layout-sensitive ops are written for channel-first tensors; under a channel-last layout they move
the channel axis (and the weights' input-channel axis) to the front, compute, and move it back.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ShapeError, UsageError
from . import ops, quant
from .types import DType

IMPLS: dict[str, Callable] = {}


impl = ops.registrar(IMPLS)  # @impl("conv1d", "conv2d"): the semantics of those ops


def evaluate(op: str, arrays: list, attrs: dict) -> list[np.ndarray]:
    """Apply `op` to `arrays` with `attrs` (missing defaults filled in) -> its results, as a list."""
    out = IMPLS[op](*arrays, **ops.get(op).full_attrs(attrs))
    return [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]


def run(graph, *inputs, trace: dict | None = None, until: Callable | None = None, state: dict | None = None) -> list:
    """Evaluate `graph` on `inputs` (one array per graph input, in order) -> its outputs.

    Each result is cast to its Value's dtype. If `trace` is a dict, every computed value is stored
    in it under its name, for per-layer comparisons. `until(node, value)` is called after each node
    with a function reading any computed Value; when it returns True evaluation stops there, and
    the outputs not computed yet are None (early exits run a graph this way). A graph's states
    start from `state` (state name -> array), which gets their writes afterwards; without it,
    from their initial values (one invocation of a freshly reset model).
    """
    if len(inputs) != len(graph.inputs):
        names = ", ".join(f"%{v.name}" for v in graph.inputs)
        raise UsageError(f"graph '{graph.name}' takes {len(graph.inputs)} input(s) ({names}), got {len(inputs)}",
                         "pass one array per graph input, in the order of graph.inputs")
    env = {id(v): _bind(v, a) for v, a in zip(graph.inputs, inputs)}
    env |= {id(s.read): s.init if state is None else state[s.read.name] for s in graph.states}

    def value(v):
        return v.data if v.is_const else env.get(id(v))

    for node in graph.nodes:
        results = evaluate(node.op, [value(v) for v in node.inputs], node.attrs)
        for v, r in zip(node.outputs, results, strict=True):
            env[id(v)] = r.astype(v.dtype.np, copy=False)
            if trace is not None:
                trace[v.name] = env[id(v)]
        if until is not None and until(node, value):
            break
    if state is not None:
        state.update({s.read.name: value(s.write) for s in graph.states if value(s.write) is not None})
    return [value(v) for v in graph.outputs]


class Session:
    """A graph run invocation after invocation with its states carried from one to the next (what
    the generated C's state buffer does); `reset()` puts them back to their initial values."""

    def __init__(self, graph):
        self.graph = graph
        self.reset()

    def reset(self):
        self.state = {s.read.name: s.init for s in self.graph.states}

    def __call__(self, *inputs, trace: dict | None = None) -> list:
        return run(self.graph, *inputs, trace=trace, state=self.state)


def _bind(v, array) -> np.ndarray:
    """`array` checked against graph input `v`."""
    a = np.asarray(array)
    if a.shape != v.shape:
        raise ShapeError(None, f"graph input %{v.name} has shape {list(v.shape)}, got an array of shape "
                               f"{list(a.shape)}",
                         "shapes are static: pass an array of the shape the model was built with, or rebuild "
                         "it from an example input of the new shape")
    if a.dtype != v.dtype.np:
        raise UsageError(f"graph input %{v.name} has dtype {v.dtype.value}, got an array of {a.dtype}",
                         f"convert it first, e.g. array.astype(np.{v.dtype.np})")
    return a


# ---------------------------------------------------------------- helpers

def _fused(y, act: str):
    """Apply a fused activation (one of `ops.FUSED_ACTS`) with the standalone op's semantics."""
    return y if act == "none" else IMPLS[act](y)


def _to_cf(x, layout: str):
    """`x` under `layout` -> channel-first (N, C, *spatial)."""
    return x if layout[1] == "C" else np.moveaxis(x, -1, 1)


def _from_cf(y, layout: str):
    return y if layout[1] == "C" else np.moveaxis(y, 1, -1)


def _pad(x, begins, ends, value=0.0):
    """`x` padded by `begins`/`ends` per axis with `value`; negative amounts crop (torch, ONNX)."""
    x = np.pad(x, [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends)], constant_values=value)
    return x[tuple(slice(max(-b, 0), n - max(-e, 0)) for n, b, e in zip(x.shape, begins, ends))]


def _windows(x, kernel, stride, dilation, pads_begin, out, fill):
    """Channel-first `x` as a (N, C, *out, *kernel) view of its sliding windows.

    The input is padded with `fill` by `pads_begin` and at the end exactly as far as the last of
    the `out` windows reaches (cropped if the end padding is not reached).
    """
    spatial = x.shape[2:]
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    ends = [(o - 1) * s + w - n - b for o, s, w, n, b in zip(out, stride, span, spatial, pads_begin)]
    x = _pad(x, [0, 0, *pads_begin], [0, 0, *ends], fill)
    win = sliding_window_view(x, span, axis=tuple(range(2, x.ndim)))
    return win[(..., *(slice(None, None, s) for s in stride), *(slice(None, None, d) for d in dilation))]


def _conv(x, w, stride, pads, dilation, groups):
    """Channel-first convolution (torch's conv without bias) as one matrix product per group."""
    nd, (n, c), (o, _, *kernel) = x.ndim - 2, x.shape[:2], w.shape
    out = [(x.shape[2 + i] + pads[i] + pads[nd + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
           for i in range(nd)]
    win = _windows(x, kernel, stride, dilation, pads[:nd], out, 0.0)  # (N, C, *out, *kernel)
    # im2col: rows are (image, output position), columns (input channel, kernel offset), per group
    win = win.reshape(n, groups, c // groups, *win.shape[2:])
    cols = win.transpose(1, 0, *range(3, 3 + nd), 2, *range(3 + nd, 3 + 2 * nd))
    cols = cols.reshape(groups, n * math.prod(out), -1)
    # float64 sums, so that every output channel rounds alike: BLAS's blocking sums channels in
    # different orders, which a softmax of large logits turns into visibly different classes
    acc = np.float64 if x.dtype == np.float32 else x.dtype
    y = (cols.astype(acc) @ w.astype(acc).reshape(groups, o // groups, -1).transpose(0, 2, 1)).astype(x.dtype)
    y = y.reshape(groups, n, *out, o // groups)
    return np.moveaxis(y, 0, -2).reshape(n, *out, o).transpose(0, nd + 1, *range(1, nd + 1))


def _finish_conv(y, b, act, layout):
    if b is not None:
        y = y + b.reshape(-1, *[1] * (y.ndim - 2))
    return _from_cf(_fused(y, act), layout)


def _pool_windows(x, kernel, stride, pads, dilation, ceil_mode, fill):
    """Pooling windows of channel-first `x`, as many as torch's output size (ceil_mode) asks."""
    nd = len(kernel)
    out = [ops.window_out(x.shape[2 + i], kernel[i], stride[i], pads[i], pads[nd + i], dilation[i], ceil_mode)
           for i in range(nd)]
    return _windows(x, kernel, stride, dilation, pads[:nd], out, fill)


# ---------------------------------------------------------------- convolution and dense

@impl("conv1d", "conv2d")
def conv(x, w, b=None, *, stride, pads, dilation, groups, act, layout):
    if layout[1] != "C":
        w = np.moveaxis(w, -1, 1)  # OHWI -> OIHW
    y = _conv(_to_cf(x, layout), w, stride, pads, dilation, groups)
    return _finish_conv(y, b, act, layout)


@impl("conv_transpose2d")
def conv_transpose(x, w, b=None, *, stride, pads, dilation, groups, output_padding, act, layout):
    # A transposed convolution is a stride-1 convolution of the input spread out by `stride` (zeros
    # between pixels) with the spatially flipped kernel whose in/out channels are swapped per group.
    x = _to_cf(x, layout)
    if layout[1] != "C":
        w = np.moveaxis(w, -1, 0)  # (O/G, kH, kW, I) -> (I, O/G, kH, kW)
    nd, (i, og, *kernel) = x.ndim - 2, w.shape
    spread = np.zeros((*x.shape[:2], *((n - 1) * s + 1 for n, s in zip(x.shape[2:], stride))), x.dtype)
    spread[(..., *(slice(None, None, s) for s in stride))] = x
    w = w.reshape(groups, i // groups, og, *kernel).swapaxes(1, 2).reshape(groups * og, i // groups, *kernel)
    w = w[(..., *[slice(None, None, -1)] * nd)]
    full = [d * (k - 1) for d, k in zip(dilation, kernel)]
    conv_pads = [f - p for f, p in zip(full, pads[:nd])] + \
                [f - p + op for f, p, op in zip(full, pads[nd:], output_padding)]
    y = _conv(spread, w, [1] * nd, conv_pads, dilation, groups)
    return _finish_conv(y, b, act, layout)


@impl("linear")
def linear(x, w, b=None, *, act):
    y = x @ w.T
    return _fused(y if b is None else y + b, act)


@impl("matmul")
def matmul(a, b):
    return np.matmul(a, b)


@impl("batch_norm")
def batch_norm(x, scale, bias, mean, var, *, eps, axis):
    shape = [1] * x.ndim
    shape[ops.norm_axis(axis, x.ndim)] = -1
    alpha = scale / np.sqrt(var + eps)  # torch's inference form, and the one fold-bn uses
    return x * alpha.reshape(shape) + (bias - mean * alpha).reshape(shape)


@impl("layer_norm")
def layer_norm(x, scale=None, bias=None, *, eps, axis):
    axes = tuple(range(ops.norm_axis(axis, x.ndim), x.ndim))
    centered = x - x.mean(axes, keepdims=True)
    y = centered / np.sqrt(np.square(centered).mean(axes, keepdims=True) + eps)
    if scale is not None:
        y = y * scale
    return y if bias is None else y + bias


# ---------------------------------------------------------------- elementwise

@impl("relu")
def relu(x):
    return np.maximum(x, 0)


@impl("relu6")
def relu6(x):
    return np.clip(x, 0, 6)


@impl("leaky_relu")
def leaky_relu(x, *, alpha):
    return np.where(x > 0, x, x * alpha)


@impl("prelu")
def prelu(x, alpha):
    return np.where(x >= 0, x, x * alpha)


@impl("clamp")
def clamp(x, *, min, max):
    if x.dtype.kind in "iu":  # integer bounds, within the dtype's range (so ±inf are fine)
        info = np.iinfo(x.dtype)
        min, max = math.ceil(np.clip(min, info.min, info.max)), math.floor(np.clip(max, info.min, info.max))
    return np.clip(x, min, max)


@impl("sigmoid")
def sigmoid(x):
    with np.errstate(over="ignore"):  # exp(-x) -> inf gives the right limit 0
        return 1 / (1 + np.exp(-x))


@impl("tanh")
def tanh(x):
    return np.tanh(x)


@impl("hardswish")
def hardswish(x):
    return x * np.clip(x + 3, 0, 6) / 6


@impl("hardsigmoid")
def hardsigmoid(x):
    return np.clip(x + 3, 0, 6) / 6


@impl("silu")
def silu(x):
    return x * sigmoid(x)


_erf = np.vectorize(math.erf, otypes=[np.float64])  # numpy has no erf; exact in float64


@impl("gelu")
def gelu(x, *, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return (0.5 * x * (1 + _erf(x * math.sqrt(0.5)))).astype(x.dtype)


@impl("erf")
def erf(x):
    return _erf(x).astype(x.dtype)


@impl("elu")
def elu(x, *, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


@impl("softplus")
def softplus(x):
    return np.logaddexp(np.zeros((), x.dtype), x)


_MATH = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs, "sign": np.sign,
         "maximum": np.maximum, "minimum": np.minimum, "pow": np.power}
for _op, _fn in _MATH.items():
    IMPLS[_op] = lambda *xs, fn=_fn: _quiet(fn, *xs)


def _quiet(fn, *xs):
    with np.errstate(all="ignore"):  # inf and nan are the IEEE results, as in torch
        return fn(*xs)


@impl("identity")
def identity(x):
    return x


@impl("dropout")
def dropout(x, *, p):
    return x  # inference: dropout is the identity


@impl("softmax")
def softmax(x, *, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


@impl("log_softmax")
def log_softmax(x, *, axis):
    shifted = x - x.max(axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis, keepdims=True))


@impl("add")
def add(a, b, *, act):
    return _fused(a + b, act)


@impl("sub")
def sub(a, b, *, act):
    return _fused(a - b, act)


@impl("mul")
def mul(a, b, *, act):
    return _fused(a * b, act)


@impl("div")
def div(a, b):
    return a / b


# ---------------------------------------------------------------- pooling and reduction

@impl("max_pool1d", "max_pool2d")
def max_pool(x, *, kernel, stride, pads, dilation, ceil_mode, layout):
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min  # padding never wins
    win = _pool_windows(_to_cf(x, layout), kernel, stride, pads, dilation, ceil_mode, lowest)
    return _from_cf(win.max(tuple(range(-len(kernel), 0))), layout)


@impl("avg_pool1d", "avg_pool2d")
def avg_pool(x, *, kernel, stride, pads, ceil_mode, count_include_pad, layout):
    x, nd = _to_cf(x, layout), len(kernel)
    total = _pool_windows(x, kernel, stride, pads, [1] * nd, ceil_mode, 0.0).sum(tuple(range(-nd, 0)))
    # torch's divisor: the window clipped to the padded input, or to the input itself
    count = np.ones((), x.dtype)
    for i, n in enumerate(x.shape[2:]):
        start = np.arange(total.shape[2 + i]) * stride[i] - pads[i]
        end = np.minimum(start + kernel[i], n + pads[nd + i])
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        count = np.multiply.outer(count, (end - start).astype(x.dtype))
    return _from_cf(total / count, layout)


@impl("adaptive_avg_pool")
def adaptive_avg_pool(x, *, output_size, layout):
    x = _to_cf(x, layout)
    for ax, o in enumerate(output_size, start=2):
        n = x.shape[ax]
        # torch's bins: output j averages inputs floor(j*n/o) .. ceil((j+1)*n/o) - 1
        j = np.arange(o)[:, None]
        i = np.arange(n)
        bins = (i >= j * n // o) & (i < -(-(j + 1) * n // o))
        weights = (bins / bins.sum(1, keepdims=True)).astype(x.dtype)
        x = np.moveaxis(np.tensordot(x, weights, axes=(ax, 1)), -1, ax)
    return _from_cf(x, layout)


@impl("mean")
def mean(x, *, axes, keepdims):
    return x.mean(tuple(axes), keepdims=keepdims)


@impl("reduce")
def reduce(x, *, axes, keepdims, mode):
    return {"sum": np.sum, "max": np.max, "min": np.min}[mode](x, tuple(axes), keepdims=keepdims)


# ---------------------------------------------------------------- data movement

@impl("reshape")
def reshape(x, *, shape):
    return x.reshape(shape)


@impl("transpose")
def transpose(x, *, perm):
    return x.transpose(perm)


@impl("concat")
def concat(*xs, axis):
    return np.concatenate(xs, axis)


@impl("split")
def split(x, *, axis, sizes):
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis))


@impl("slice")
def slice_(x, *, axes, starts, ends, steps):
    index = [slice(None)] * x.ndim
    for ax, start, end, step in zip(axes, starts, ends, steps):
        index[ax] = slice(start, end, step)
    return x[tuple(index)]


@impl("pad")
def pad(x, *, pads, value):
    return _pad(x, pads[:x.ndim], pads[x.ndim:], value)


@impl("tile")
def tile(x, *, repeats):
    return np.tile(x, repeats)


@impl("resize")
def resize(x, *, size, mode, align_corners, layout):
    # torch's F.interpolate source coordinates, computed in float32 as torch does; bilinear is
    # separable, done last axis first like torch's kernel
    x = _to_cf(x, layout)
    for ax, o in reversed(list(enumerate(size, start=2))):
        n, dst = x.shape[ax], np.arange(o, dtype=np.float32)
        if mode == "nearest":
            x = np.take(x, np.minimum(np.floor(dst * (np.float32(n) / np.float32(o))).astype(int), n - 1), ax)
            continue
        if mode != "bilinear":
            raise ValueError(f"resize mode '{mode}' is not one of 'nearest', 'bilinear'")
        if align_corners:
            src = dst * (np.float32(n - 1) / np.float32(max(o - 1, 1)))
        else:
            src = np.maximum((dst + np.float32(0.5)) * (np.float32(n) / np.float32(o)) - np.float32(0.5), 0)
        i0 = src.astype(int)  # src >= 0, so this is floor
        frac = (src - i0).astype(x.dtype).reshape(-1, *[1] * (x.ndim - 1 - ax))
        x = np.take(x, i0, ax) * (1 - frac) + np.take(x, np.minimum(i0 + 1, n - 1), ax) * frac
    return _from_cf(x, layout)


# ---------------------------------------------------------------- quantization

def round_half_away(x):
    """Round to nearest, ties away from zero (TFLite's rounding; numpy's round goes to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _per_axis(values, axis, rank, dtype):
    v = np.asarray(values, dtype=dtype)
    if v.size == 1:
        return v.reshape(())
    shape = [1] * rank
    shape[axis % rank] = v.size
    return v.reshape(shape)


@impl("quantize")
def quantize(x, *, scale, zero_point, axis, dtype):
    info = np.iinfo(np.dtype({"i8": "int8", "u8": "uint8", "i16": "int16", "i32": "int32"}[dtype]))
    s = _per_axis(scale, axis, x.ndim, np.float32)
    zp = _per_axis(zero_point, axis, x.ndim, np.int64)
    with np.errstate(over="ignore"):  # a huge x / s saturates like any value beyond the range
        q = np.clip(round_half_away(x.astype(np.float32) / s), -2.0 ** 31, 2.0 ** 31).astype(np.int64) + zp
    return np.clip(q, info.min, info.max).astype(info.dtype)


@impl("dequantize")
def dequantize(x, *, scale, zero_point, axis):
    s = _per_axis(scale, axis, x.ndim, np.float32)
    zp = _per_axis(zero_point, axis, x.ndim, np.int64)
    return ((x.astype(np.int64) - zp).astype(np.float32) * s).astype(np.float32)


# ---------------------------------------------------------------- integer ops
# Bit-exact to TFLite Micro's reference kernels (reference/integer_ops/*.h and the kernels they
# share with float), the fixed-point steps in quant.py. Sums are exact: int64, or float64 for the
# matrix products (BLAS speed; partial sums of int8/int16 x int8 products stay far below 2^53).

def _int8_only(x, op: str):
    if x.dtype != np.int8:
        raise UsageError(f"{op} is defined for int8 tensors, got {x.dtype}", "TFLite Micro's kernels for it take int8 "
                         "(softmax, logistic and tanh also int16); quantize this op to int8")


def _centered(x, zero_point):
    """x - zero_point (in float64): convolving it with zero padding is TFLite's skipping of the
    taps outside the input, i.e. padding with the input zero point."""
    return x.astype(np.float64) - zero_point


def _requantize_acc(acc, b, x, multiplier, shift, out_zp, act_min, act_max, axis):
    """Conv/linear epilogue: + bias, requantization per output channel (on `axis`), + output
    zero point, clamp. int16 activations accumulate and requantize in 64 bits unless the bias is
    i32, as TFLite Micro does."""
    shape = [1] * acc.ndim
    shape[axis] = -1
    acc = np.rint(acc).astype(np.int64)
    if b is not None:
        acc = acc + b.astype(np.int64).reshape(shape)
    acc64 = x.dtype == np.int16 and (b is None or b.dtype != np.int32)
    m, s = (np.asarray(v, np.int64).reshape(shape) for v in (multiplier, shift))
    y = quant.multiply_by_quantized_multiplier(acc, m, s, acc64) + out_zp
    return np.clip(y, act_min, act_max).astype(x.dtype)


def _saturate(y, dtype):
    info = np.iinfo(dtype)
    return np.clip(y, info.min, info.max).astype(dtype)


@impl("requantize")
def requantize(x, *, in_zp, out_zp, multiplier, shift, dtype):
    (m,), (s,) = multiplier, shift  # TFLite's QUANTIZE requantizes per tensor
    y = quant.multiply_by_quantized_multiplier(x.astype(np.int64) - in_zp, m, s) + out_zp
    return _saturate(y, DType(dtype).np)


@impl("qconv1d", "qconv2d")
def qconv(x, w, b=None, *, stride, pads, dilation, groups, layout, in_zp, out_zp, multiplier, shift, act_min,
          act_max, wfmt):  # wfmt: how w is stored (wformat.py); w holds its values
    acc = conv(_centered(x, in_zp), w.astype(np.float64), stride=stride, pads=pads, dilation=dilation,
               groups=groups, act="none", layout=layout)
    return _requantize_acc(acc, b, x, multiplier, shift, out_zp, act_min, act_max, ops.channel_axis(layout))


@impl("qconv_transpose2d")
def qconv_transpose(x, w, b=None, *, stride, pads, dilation, groups, output_padding, layout, in_zp, out_zp,
                    multiplier, shift, act_min, act_max):
    acc = conv_transpose(_centered(x, in_zp), w.astype(np.float64), stride=stride, pads=pads, dilation=dilation,
                         groups=groups, output_padding=output_padding, act="none", layout=layout)
    return _requantize_acc(acc, b, x, multiplier, shift, out_zp, act_min, act_max, ops.channel_axis(layout))


@impl("qlinear")
def qlinear(x, w, b=None, *, in_zp, out_zp, multiplier, shift, act_min, act_max, wfmt):
    acc = _centered(x, in_zp) @ w.astype(np.float64).T
    return _requantize_acc(acc, b, x, multiplier, shift, out_zp, act_min, act_max, -1)


def _rescaled_sum(a, b, sign, *, a_zp, b_zp, out_zp, left_shift, a_multiplier, a_shift, b_multiplier, b_shift,
                  multiplier, shift, act_min, act_max):
    """ADD / SUB: each input moved to a common scale with `left_shift` bits of headroom, then the
    sum (difference) rescaled to the output."""
    mbqm = quant.multiply_by_quantized_multiplier
    sa = mbqm((a.astype(np.int64) - a_zp) << left_shift, a_multiplier, a_shift)
    sb = mbqm((b.astype(np.int64) - b_zp) << left_shift, b_multiplier, b_shift)
    y = mbqm(sa + sign * sb, multiplier, shift) + out_zp
    return np.clip(y, act_min, act_max).astype(a.dtype)


@impl("qadd")
def qadd(a, b, **attrs):
    return _rescaled_sum(a, b, 1, **attrs)


@impl("qsub")
def qsub(a, b, **attrs):
    return _rescaled_sum(a, b, -1, **attrs)


@impl("qmul")
def qmul(a, b, *, a_zp, b_zp, out_zp, multiplier, shift, act_min, act_max):
    product = (a.astype(np.int64) - a_zp) * (b.astype(np.int64) - b_zp)
    y = quant.multiply_by_quantized_multiplier(product, multiplier, shift) + out_zp
    return np.clip(y, act_min, act_max).astype(a.dtype)


@impl("qavg_pool1d", "qavg_pool2d")
def qavg_pool(x, *, kernel, stride, pads, ceil_mode, layout, act_min, act_max):
    # the sum of the taps inside the input (raw values: input and output share the zero point)
    # divided by their number, ties away from zero
    xc, nd = _to_cf(x, layout).astype(np.int64), len(kernel)
    axes, ones = tuple(range(-nd, 0)), [1] * nd
    total = _pool_windows(xc, kernel, stride, pads, ones, ceil_mode, 0).sum(axes)
    count = _pool_windows(np.ones_like(xc), kernel, stride, pads, ones, ceil_mode, 0).sum(axes)
    avg = np.sign(total) * ((np.abs(total) + count // 2) // count)
    return _from_cf(np.clip(avg, act_min, act_max).astype(x.dtype), layout)


@impl("qmean")
def qmean(x, *, axes, keepdims, in_zp, out_zp, multiplier, shift):
    axes = tuple({ops.norm_axis(a, x.ndim) for a in axes})
    count = math.prod(x.shape[a] for a in axes)  # `multiplier` already includes 1 / count
    total = x.astype(np.int64).sum(axes, keepdims=keepdims) - in_zp * count
    return _saturate(quant.multiply_by_quantized_multiplier(total, multiplier, shift) + out_zp, x.dtype)


def lookup16(x, table):
    """TFLite's int16 LUTLookup: the entry of x's top 9 bits plus the slope to the next times its
    low 7 bits, rounded."""
    i = 256 + (x >> 7)
    return table[i] + (((table[i + 1] - table[i]) * (x & 0x7F) + 64) >> 7)


def softmax16_exps(diff, multiplier, shift):
    """int16 qsoftmax's exp of each difference to the row maximum: rescaled to steps of 10/65535
    and looked up in quant.EXP_LUT16 (also the exact ONNX export's table of every difference)."""
    scaled = quant.multiply_by_quantized_multiplier(diff, multiplier, shift)
    return lookup16(np.clip(scaled + 32767, -32768, 32767), quant.EXP_LUT16)


def softmax8_exps(diff, multiplier, shift, diff_min):
    """int8 qsoftmax's exp (Q0.31) of each difference to the row maximum, its input in Q5.26; 0
    below diff_min, where the element neither counts in the sum nor gets more than -128."""
    counted = diff >= diff_min
    scaled = quant.saturating_rounding_doubling_high_mul(np.where(counted, diff, 0) << shift, multiplier)
    return np.where(counted, quant.exp_on_negative_values(scaled, 5), 0)


def log_softmax8_terms(diff, multiplier, shift, diff_min):
    """int8 qlog_softmax's terms of each difference to the row maximum: the difference in Q5.26,
    and its exp's share of the row sum in Q12.19 (0 below diff_min)."""
    counted = diff >= diff_min
    scaled = quant.multiply_by_quantized_multiplier(np.where(counted, diff, 0), multiplier, shift)
    return scaled, np.where(counted, quant.rounding_divide_by_pot(quant.exp_on_negative_values(scaled, 5), 12), 0)


def _softmax16(x, multiplier, shift):
    """int16 -> int16 softmax on the last axis (scale 1/32768, zero point 0): each difference to the
    row maximum rescaled to steps of 10/65535 and looked up in quant.EXP_LUT16; the sum of those
    exps normalized to [1, 2) with 15 fraction bits, its reciprocal from quant.RECIPROCAL_LUT16,
    and each exp times it, shifted back by the normalization."""
    exps = softmax16_exps(x - x.max(-1, keepdims=True), multiplier, shift)
    total = exps.sum(-1, keepdims=True)
    headroom = quant.clz(total)
    normalized = (((total << (headroom - 1)) + (1 << 13)) >> 14) - (1 << 15) - (1 << 16)  # (sum - 1), centered
    reciprocal = lookup16(np.clip(normalized, -32768, 32767), quant.RECIPROCAL_LUT16)
    right = 31 - headroom
    return np.clip((exps * reciprocal + (np.int64(1) << (right - 1))) >> right, 0, 32767)


@impl("qsoftmax")
def qsoftmax(x, *, axis, multiplier, shift, diff_min):
    if x.dtype == np.int16:  # diff_min is -65535: every difference counts
        y = _softmax16(np.moveaxis(x.astype(np.int64), axis, -1), multiplier, shift)
        return np.moveaxis(y, -1, axis).astype(np.int16)
    # int8 -> int8 (scale 1/256, zero point -128): exp of each difference to the row maximum in
    # Q5.26 -> Q0.31, their sum in Q12.19, times its reciprocal; differences below diff_min count 0
    _int8_only(x, "qsoftmax")
    srdhm, rdbpot = quant.saturating_rounding_doubling_high_mul, quant.rounding_divide_by_pot
    x = np.moveaxis(x.astype(np.int64), axis, -1)
    exps = softmax8_exps(x - x.max(-1, keepdims=True), multiplier, shift, diff_min)
    reciprocal, bits_over_unit = quant.get_reciprocal(rdbpot(exps, 12).sum(-1, keepdims=True), 12)
    y = np.clip(rdbpot(srdhm(reciprocal, exps), bits_over_unit + 23) - 128, -128, 127)
    return np.moveaxis(y, -1, axis).astype(np.int8)


@impl("qlog_softmax")
def qlog_softmax(x, *, axis, multiplier, shift, diff_min, reverse_multiplier, reverse_shift):
    # int8 -> int8 (scale 16/256, zero point 127): differences to the row maximum in Q5.26 minus the
    # log of their exps' sum (Q12.19 -> Q5.26); the ones below the adjusted diff_min give -128
    _int8_only(x, "qlog_softmax")
    mbqm = quant.multiply_by_quantized_multiplier
    x = np.moveaxis(x.astype(np.int64), axis, -1)
    diff = x - x.max(-1, keepdims=True)
    scaled, shares = log_softmax8_terms(diff, multiplier, shift, diff_min)
    log_sum = quant.log_x_for_x_greater_than_or_equal_to_1(shares.sum(-1, keepdims=True), 12, 5)
    adjusted_min = np.maximum(diff_min - 1, mbqm(log_sum + quant.INT32_MIN, reverse_multiplier, reverse_shift))
    y = np.clip(quant.rounding_divide_by_pot(scaled - log_sum, 22) + 127, -128, 127)
    return np.moveaxis(np.where(diff > adjusted_min, y, -128), -1, axis).astype(np.int8)


def _sigmoid_like(x, fn, out_bits, out_zp, in_zp, range_radius, multiplier, shift):
    """int8 Logistic / Tanh: inputs beyond ±range_radius saturate, the others go to Q4.27, through
    gemmlowp's fixed-point `fn`, and to `out_bits` fractional bits."""
    d = x.astype(np.int64) - in_zp
    inside = np.abs(d) < range_radius
    q4 = quant.multiply_by_quantized_multiplier(np.where(inside, d, 0), multiplier, shift)
    y = np.clip(quant.rounding_divide_by_pot(fn(q4, 4), 31 - out_bits) + out_zp, -128, 127)
    return np.where(inside, y, np.where(d > 0, 127, -128)).astype(np.int8)


def _sigmoid16(x, multiplier, shift, tanh: bool):
    """int16 Logistic / Tanh (output scale 1/32768, zero point 0): the input in steps of 1/12288
    (times `multiplier`, right shift by `shift` rounding half up), its magnitude interpolated in
    quant.SIGMOID_TABLE (9 fraction bits per entry; tanh(x) = 2 sigmoid(2x) - 1 reads it with 8),
    saturating from entry 255, mirrored for negative inputs and rounded to Q0.15."""
    bits, table = 8 if tanh else 9, quant.SIGMOID_TABLE
    v = (x.astype(np.int64) * multiplier + (1 << shift >> 1)) >> shift
    a = np.abs(v)
    i = np.minimum(a >> bits, 254)
    t = np.where(a >> bits >= 255, 0xFFFF << 8 if tanh else 0x7FFF << 10,
                 (table[i] << bits) + (a & ((1 << bits) - 1)) * (table[i + 1] - table[i]))
    if tanh:
        return (np.where(v >= 0, t - (1 << 23) + (1 << 7), (1 << 23) - t + (1 << 7) - 1) >> 8).astype(np.int16)
    return (np.where(v >= 0, t + (1 << 9), (1 << 25) - t + (1 << 9) - 1) >> 10).astype(np.int16)


@impl("qlogistic")
def qlogistic(x, *, in_zp, range_radius, multiplier, shift):
    if x.dtype == np.int16:
        return _sigmoid16(x, multiplier, shift, tanh=False)
    _int8_only(x, "qlogistic")
    return _sigmoid_like(x, quant.logistic, 8, -128, in_zp, range_radius, multiplier, shift)  # 1/256, -128


@impl("qtanh")
def qtanh(x, *, in_zp, range_radius, multiplier, shift):
    if x.dtype == np.int16:
        return _sigmoid16(x, multiplier, shift, tanh=True)
    _int8_only(x, "qtanh")
    return _sigmoid_like(x, quant.tanh, 7, 0, in_zp, range_radius, multiplier, shift)  # 1/128, 0


@impl("qhardswish")
def qhardswish(x, *, in_zp, out_zp, relu_multiplier, relu_shift, out_multiplier, out_shift):
    # x * relu6(x + 3) / 6 in 16-bit fixed point: x (at 1/128 of its scale) times a "relu-ish"
    # factor in [0, 1], the factor's left shift split to saturate only at the last bit
    _int8_only(x, "qhardswish")
    srdhm = quant.saturating_rounding_doubling_high_mul
    hires = (x.astype(np.int64) - in_zp) * 128
    relu = hires
    if relu_shift > 0:
        relu = np.clip(relu << (relu_shift - 1), -32768, 32767)
    relu = srdhm(relu, relu_multiplier, 16)
    if relu_shift > 0:
        relu = np.clip(relu << 1, -32768, 32767)
    if relu_shift < 0:
        relu = quant.rounding_divide_by_pot(relu, -relu_shift)
    relu = (relu + (1 << 15)) >> 1
    y = quant.saturating_doubling_high_mul16(relu, srdhm(hires, out_multiplier, 16))
    y = (quant.rounding_divide_by_pot(y, -out_shift) + out_zp + 32768) % 65536 - 32768  # an int16 in C
    return np.clip(y, -128, 127).astype(np.int8)


@impl("qleaky_relu")
def qleaky_relu(x, *, in_zp, out_zp, alpha_multiplier, alpha_shift, id_multiplier, id_shift):
    mbqm = quant.multiply_by_quantized_multiplier
    d = x.astype(np.int64) - in_zp
    negative = mbqm(d, abs(alpha_multiplier), alpha_shift) * (-1 if alpha_multiplier < 0 else 1)
    return _saturate(out_zp + np.where(d >= 0, mbqm(d, id_multiplier, id_shift), negative), x.dtype)


@impl("qprelu")
def qprelu(x, alpha, *, in_zp, alpha_zp, out_zp, id_multiplier, id_shift, alpha_multiplier, alpha_shift):
    # TFLite's PRELU: two requantizations, of x - in_zp (x >= in_zp) and of (x - in_zp) * (alpha - alpha_zp)
    _int8_only(x, "qprelu")
    mbqm = quant.multiply_by_quantized_multiplier
    d = x.astype(np.int64) - in_zp
    negative = mbqm(d * (alpha.astype(np.int64) - alpha_zp), alpha_multiplier, alpha_shift)
    return _saturate(out_zp + np.where(d >= 0, mbqm(d, id_multiplier, id_shift), negative), x.dtype)
