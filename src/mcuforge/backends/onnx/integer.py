"""Integer IR -> ONNX computing exactly what the interpreter computes: the "integer" ONNX flavour.

The QDQ flavour (emit.py on the `quantize` pass's QDQ graph) is an interchange format: runtimes
requantize it in float, within 1 LSB of the integer model per layer, and deep models drift. This
flavour lowers the integer graph itself (after `lower-quantized`, any layout) to ONNX ops whose
every step is exact, so onnxruntime reproduces the interpreter, and so TFLite Micro, bit for bit:
- sums of products: float32 Conv/ConvTranspose on integer values, exact because every partial
  sum is an integer of magnitude <= 2^24: the input channels are split into runs (`_runs`, a
  Gather of the input and a slice of the weights each) so that max|x - zp| * sum|w| <= 2^24 per
  output channel and run, and 16-bit inputs into two bytes; qlinear is an int64 MatMul. Weights
  are stored once, as int8 (Cast on load), per-channel parameters as narrow integers: the file
  holds about the int8 weights' bytes;
- requantization (`_mbqm`): TFLite's MultiplyByQuantizedMultiplier in int64 Mul/Div/Where (ONNX's
  integer Div truncates toward zero, like C's); qadd, qsub, qmul and qprelu are made of it;
- element-wise activations (qlogistic, qtanh, qhardswish, qleaky_relu): a Gather on a table of
  every input value (2^8, or 2^16 for int16), computed by the interpreter at export;
- qsoftmax (int8, int16) and qlog_softmax: what each element contributes depends only on its
  difference to the row maximum, so it is a Gather on a table of every difference; the per-row
  fixed-point reciprocal, logarithm or table lookup of the int64 ReduceSum runs step by step in
  int64 ops, one emitter per quant.py helper (`_get_reciprocal`, `_log_x_...`);
- quantize / dequantize of float edges: the interpreter's float32 formulas (ties away from zero);
- data movement that onnxruntime lacks for integer tensors (max pooling, pad, resize, clamp) runs
  in float32, exact on 16-bit values; reshape, transpose, concat, split and slice run as they are.
Limits: an int16 average pool over more than 512 taps, and softmax rows long enough for their sum
of exps to pass 2^31 - 1 (from 4096 int8 elements; TFLite's int32 sum would overflow), are
refused; export those models in the QDQ flavour. Opset: emit.py's (17, or 21 for graphs with
int16 tensors).
"""
from __future__ import annotations

import math

import numpy as np
import onnx

from ...errors import UnsupportedItem, UnsupportedOpError
from ...ir import quant
from ...ir.graph import Graph
from ...ir.interpreter import evaluate, log_softmax8_terms, lookup16, softmax8_exps, softmax16_exps
from ...ir.ops import channel_axis, norm_axis, registrar
from ...ir.quant import INT32_MAX, INT32_MIN
from ..base import write_atomic
from .emit import LOWERINGS, spatial, spatial_in, to_channel_first, to_channel_last, to_onnx

INTEGER_LOWERINGS = dict(LOWERINGS)  # float ops (float islands of a mixed model) keep their lowering
lowers = registrar(INTEGER_LOWERINGS)
EXACT = 1 << 24  # float32 holds every integer of magnitude up to this
F32, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64


def to_integer_onnx(graph: Graph, opset: int | None = None) -> onnx.ModelProto:
    """A checked ONNX model computing integer `graph` bit-exactly (a float graph: emit.py's export)."""
    return to_onnx(graph, opset, INTEGER_LOWERINGS)


def save_integer_onnx(graph: Graph, path, opset: int | None = None) -> str:
    """Write `to_integer_onnx(graph)` to `path` atomically."""
    return write_atomic(path, to_integer_onnx(graph, opset).SerializeToString())


def _refuse(n, why: str):
    raise UnsupportedOpError([UnsupportedItem(n.op, n.name)], f"{why}; export the QDQ flavour (onnx='qdq')",
                             "the exact integer ONNX export cannot lower:")


# ---------------------------------------------------------------- exact integer arithmetic

def _ty(dtype) -> int:
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _c(e, values, shape=None) -> str:
    """An int64 constant, reshaped to `shape` if given (to broadcast per channel, say); several
    values (per-channel parameters) are stored in the narrowest integer type holding them, cast."""
    a = np.asarray(values, np.int64)
    a = a if shape is None else a.reshape(shape)
    for narrow in (np.int8, np.int16, np.int32) if a.size > 1 else ():
        if np.iinfo(narrow).min <= a.min() and a.max() <= np.iinfo(narrow).max:
            return _i64(e, e.const(a.astype(narrow), "c"))
    return e.const(a, "c")


def _along(values, rank: int, axis: int):
    """The shape that broadcasts `values` (one, or one per index of `axis`) on a rank-`rank` tensor."""
    if np.size(values) == 1:
        return ()
    shape = [1] * rank
    shape[axis] = -1
    return shape


def _i64(e, x: str) -> str:
    return e.emit("Cast", [x], to=I64)


def _centered(e, v, zp: int) -> str:
    return e.emit("Sub", [_i64(e, e.name(v)), _c(e, zp)])


def _t(e, v) -> str:
    """A tensor name as it is; an int (or array) as an int64 constant."""
    return v if isinstance(v, str) else _c(e, v)


def _op(e, op_type: str, *operands) -> str:
    """ONNX `op_type` on int64 tensors and int constants."""
    return e.emit(op_type, [_t(e, v) for v in operands])


def _pot(e, k) -> str:
    """2^k for an int or an int64 tensor `k` in 0..62 (a Gather on the powers of two)."""
    if not isinstance(k, str):
        return _c(e, np.int64(1) << np.asarray(k, np.int64))
    return e.emit("Gather", [_c(e, np.int64(1) << np.arange(63, dtype=np.int64)), k])


def _rounded_div(e, x: str, d) -> str:
    """x / d rounded to nearest, ties away from zero (d > 0: a constant or an int64 tensor)."""
    half = e.emit("Div", [d, _c(e, 2)]) if isinstance(d, str) else np.asarray(d, np.int64) // 2
    q = e.emit("Div", [_op(e, "Add", e.emit("Abs", [x]), half), _t(e, d)])
    return e.emit("Mul", [e.emit("Sign", [x]), q])


def _shift_right(e, x: str, k) -> str:
    """x >> k, rounding toward minus infinity (ONNX's Mod takes the divisor's sign)."""
    d = _pot(e, k)
    return e.emit("Div", [e.emit("Sub", [x, e.emit("Mod", [x, d])]), d])


def _srdhm(e, a, b) -> str:
    """quant.saturating_rounding_doubling_high_mul of int32 tensors or constants: a * b / 2^31,
    nearest, ties upward; the one product that does not fit, INT32_MIN * INT32_MIN, saturates
    (a constant operand here is never INT32_MIN, so only two tensors need the check)."""
    ab = _op(e, "Mul", a, b)
    nudge = e.emit("Where", [_op(e, "GreaterOrEqual", ab, 0), _c(e, 1 << 30), _c(e, 1 - (1 << 30))])
    high = _op(e, "Div", e.emit("Add", [ab, nudge]), 1 << 31)  # truncates, as the C division
    if not (isinstance(a, str) and isinstance(b, str)):
        return high
    both = e.emit("And", [_op(e, "Equal", a, INT32_MIN), _op(e, "Equal", b, INT32_MIN)])
    return e.emit("Where", [both, _c(e, INT32_MAX), high])


def _mbqm(e, x: str, multiplier, shift, shape=(), acc64: bool = False) -> str:
    """quant.multiply_by_quantized_multiplier of int64 `x` by constant multipliers and shifts."""
    m, s = (np.asarray(v, np.int64).reshape(shape) for v in (multiplier, shift))
    if acc64:  # 16-bit multiplier, one rounding half up: floor((x * m16 + 2^(t-1)) / 2^t)
        reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
        return _shift_right(e, _op(e, "Add", _op(e, "Mul", x, reduced), np.int64(1) << (14 - s)), 15 - s)
    left, right = np.maximum(s, 0), np.maximum(-s, 0)
    if left.any():
        x = e.emit("Mul", [x, _c(e, np.int64(1) << left)])
    high = _srdhm(e, x, m)  # |x| < 2^32, m < 2^31: no int64 overflow
    return _rounded_div(e, high, np.int64(1) << right) if right.any() else high


def _store(e, y: str, lo: int, hi: int, dtype, out: str | None) -> str:
    """int64 `y` clamped to [lo, hi] and cast to `dtype`."""
    return e.emit("Cast", [e.emit("Clip", [y, _c(e, lo), _c(e, hi)])], out, to=_ty(dtype))


def _saturated(e, y: str, dtype, out: str | None) -> str:
    info = np.iinfo(dtype)
    return _store(e, y, int(info.min), int(info.max), dtype, out)


def _cf(e, n) -> str:
    """Node `n`'s first operand, channel-first."""
    x = e.name(n.inputs[0])
    if n.attrs["layout"][1] == "C":
        return x
    return e.emit("Transpose", [x], perm=to_channel_first(n.inputs[0].type.rank))


def _store_cf(e, n, y: str, lo: int, hi: int):
    """Channel-first int64 result `y` of `n`, clamped, cast and laid out as `n`'s output."""
    if n.attrs["layout"][1] == "C":
        return _store(e, y, lo, hi, n.output.dtype.np, e.out(n.output))
    y = _store(e, y, lo, hi, n.output.dtype.np, None)
    e.emit("Transpose", [y], e.out(n.output), perm=to_channel_last(n.output.type.rank))


# ---------------------------------------------------------------- convolution and dense

def _pieces(e, x: str, zp: int, dtype) -> list[tuple[int, str, int]]:
    """float32 x - zp as (factor, piece, max |piece|) with sum(factor * piece) == x - zp: itself
    for 8-bit values, its high and low byte for 16-bit ones (each sum of products stays exact)."""
    info = np.iinfo(dtype)
    xc = e.emit("Sub", [e.emit("Cast", [x], to=F32), e.scalar(float(zp))])
    big = max(int(info.max) - zp, zp - int(info.min))
    if big <= 255:
        return [(1, xc, big)]
    high = e.emit("Floor", [e.emit("Mul", [xc, e.scalar(1 / 256)])])
    low = e.emit("Sub", [xc, e.emit("Mul", [high, e.scalar(256.0)])])
    return [(256, high, max(abs((int(info.min) - zp) // 256), abs((int(info.max) - zp) // 256))), (1, low, 255)]


def _runs(cost: np.ndarray, big: int) -> list[tuple[int, int]] | None:
    """The reduction's input channels (columns of `cost`: output channel x input channel, sum |w|
    over the taps) in consecutive runs [start, stop) with big * sum over the run <= 2^24 in every
    row, greedily; None where one input channel alone passes that bound."""
    if cost.max(initial=0) * big > EXACT:
        return None
    starts, total = [0], np.zeros(len(cost), np.int64)
    for c, column in enumerate(cost.T):
        total += column
        if (total * big > EXACT).any():
            starts.append(c)
            total = column.copy()
    return list(zip(starts, starts[1:] + [cost.shape[1]]))


def _chunks(rows: np.ndarray, big: int) -> list[np.ndarray]:
    """Weights `rows` (output channel, reduction) split into pieces, zero elsewhere, summing to
    `rows`, with big * sum|piece| <= 2^24 in every row: consecutive runs of the reduction."""
    a = np.abs(rows.astype(np.int64))
    limit = EXACT // big - int(a.max(initial=0))  # a run overshoots its limit by less than one weight
    ids = (np.cumsum(a, 1) - a) // limit
    return [np.where(ids == k, rows, 0).astype(rows.dtype) for k in range(int(ids.max(initial=0)) + 1)]


def _weight_pieces(wd: np.ndarray, groups: int, transposed: bool, big: int) -> list[tuple]:
    """Channel-first weights `wd` as (input channels or None for all, weights) pieces whose sums of
    products stay within 2^24: a run of each group's input channels and the weights reading them,
    so the pieces store the weights once. Where one input channel's taps alone pass the bound (more
    than 518 taps of int8 weights on 8-bit values or bytes), pieces of the whole weight tensor, zero
    outside their run of the reduction."""
    per_group = len(wd) // groups if transposed else wd.shape[1]
    taps = np.abs(wd.astype(np.int64)).reshape(*wd.shape[:2], -1).sum(2)
    if transposed:  # (I, O/g) -> output channel (group, j) x input channel of the group
        taps = taps.reshape(groups, per_group, -1).swapaxes(1, 2).reshape(-1, per_group)
    runs = _runs(taps, big)
    if runs is not None:
        channels = [(np.arange(groups)[:, None] * per_group + np.arange(*r)).ravel() for r in runs]
        return [(c if len(runs) > 1 else None, wd[c] if transposed else wd[:, slice(*r)])
                for c, r in zip(channels, runs)]
    if transposed:  # rows: output channel (group, j) x (input channel of the group, tap)
        og = wd.shape[1]
        rows = wd.reshape(groups, per_group, og, -1).swapaxes(1, 2).reshape(groups * og, -1)
        return [(None, r.reshape(groups, og, per_group, -1).swapaxes(1, 2).reshape(wd.shape))
                for r in _chunks(rows, big)]
    return [(None, r.reshape(wd.shape)) for r in _chunks(wd.reshape(len(wd), -1), big)]


@lowers("qconv1d", "qconv2d", "qconv_transpose2d")
def _qconv(e, n):
    a, (x, w, *b) = n.attrs, n.inputs
    transposed = n.op == "qconv_transpose2d"
    wd = w.data
    if a["layout"][1] != "C":  # OHWI -> OIHW; transposed (O/g, kH, kW, I) -> (I, O/g, kH, kW)
        wd = np.transpose(wd, [3, 0, 1, 2] if transposed else to_channel_first(wd.ndim))
    pieces = _pieces(e, _cf(e, n), a["in_zp"], x.dtype.np)
    weights = [(c if c is None else e.ints(c, "channels"), e.emit("Cast", [e.const(wk, "w")], to=F32))
               for c, wk in _weight_pieces(wd, a["groups"], transposed, max(p[2] for p in pieces))]
    attrs = dict(strides=a["stride"], pads=a["pads"], dilations=a["dilation"], group=a["groups"])
    if transposed:
        attrs["output_padding"] = a["output_padding"]
    acc = None
    for factor, xp, _ in pieces:
        for channels, wf in weights:
            xk = xp if channels is None else e.emit("Gather", [xp, channels], axis=1)
            y = _i64(e, e.emit("ConvTranspose" if transposed else "Conv", [xk, wf], **attrs))
            y = e.emit("Mul", [y, _c(e, factor)]) if factor != 1 else y
            acc = y if acc is None else e.emit("Add", [acc, y])
    rank = n.output.type.rank
    if b:
        acc = e.emit("Add", [acc, _c(e, b[0].data, _along(b[0].data, rank, 1))])
    acc64 = x.dtype.np == np.int16 and (not b or b[0].data.dtype != np.int32)  # as the interpreter
    y = _mbqm(e, acc, a["multiplier"], a["shift"], _along(a["multiplier"], rank, 1), acc64)
    _store_cf(e, n, e.emit("Add", [y, _c(e, a["out_zp"])]), a["act_min"], a["act_max"])


@lowers("qlinear")
def _qlinear(e, n):
    a, (x, w, *b) = n.attrs, n.inputs
    acc = e.emit("MatMul", [_centered(e, x, a["in_zp"]), _i64(e, e.const(w.data.T, "w"))])
    if b:
        acc = e.emit("Add", [acc, _c(e, b[0].data)])
    acc64 = x.dtype.np == np.int16 and (not b or b[0].data.dtype != np.int32)
    y = _mbqm(e, acc, a["multiplier"], a["shift"], _along(a["multiplier"], 1, 0), acc64)
    _store(e, e.emit("Add", [y, _c(e, a["out_zp"])]), a["act_min"], a["act_max"], x.dtype.np, e.out(n.output))


# ---------------------------------------------------------------- elementwise

@lowers("qadd", "qsub")
def _qadd(e, n):
    a = n.attrs
    sa, sb = (_mbqm(e, e.emit("Mul", [_centered(e, v, a[f"{k}_zp"]), _c(e, 1 << a["left_shift"])]),
                    a[f"{k}_multiplier"], a[f"{k}_shift"]) for v, k in zip(n.inputs, "ab"))
    y = _mbqm(e, e.emit("Add" if n.op == "qadd" else "Sub", [sa, sb]), a["multiplier"], a["shift"])
    _store(e, e.emit("Add", [y, _c(e, a["out_zp"])]), a["act_min"], a["act_max"], n.output.dtype.np,
           e.out(n.output))


@lowers("qmul")
def _qmul(e, n):
    a, (x, y) = n.attrs, n.inputs
    product = e.emit("Mul", [_centered(e, x, a["a_zp"]), _centered(e, y, a["b_zp"])])
    r = _mbqm(e, product, a["multiplier"], a["shift"])
    _store(e, e.emit("Add", [r, _c(e, a["out_zp"])]), a["act_min"], a["act_max"], n.output.dtype.np,
           e.out(n.output))


@lowers("qprelu")
def _qprelu(e, n):
    """x - in_zp >= 0: its requantization; below: that of its product with alpha - alpha_zp."""
    a, (x, alpha) = n.attrs, n.inputs
    d = _centered(e, x, a["in_zp"])
    positive = _mbqm(e, d, a["id_multiplier"], a["id_shift"])
    negative = _mbqm(e, e.emit("Mul", [d, _centered(e, alpha, a["alpha_zp"])]), a["alpha_multiplier"], a["alpha_shift"])
    y = e.emit("Where", [_op(e, "GreaterOrEqual", d, 0), positive, negative])
    _saturated(e, e.emit("Add", [y, _c(e, a["out_zp"])]), n.output.dtype.np, e.out(n.output))


@lowers("requantize")
def _requantize(e, n):
    a = n.attrs
    (m,), (s,) = a["multiplier"], a["shift"]
    y = _mbqm(e, _centered(e, n.inputs[0], a["in_zp"]), m, s)
    _saturated(e, e.emit("Add", [y, _c(e, a["out_zp"])]), n.output.dtype.np, e.out(n.output))


@lowers("qlogistic", "qtanh", "qhardswish", "qleaky_relu")
def _table(e, n):
    """A Gather on the op's result for every input value, computed by the interpreter."""
    x = n.inputs[0]
    info = np.iinfo(x.dtype.np)
    (table,) = evaluate(n.op, [np.arange(info.min, info.max + 1).astype(x.dtype.np)], n.attrs)
    index = e.emit("Sub", [_i64(e, e.name(x)), _c(e, info.min)])
    e.emit("Gather", [e.const(table.astype(n.output.dtype.np), "table"), index], e.out(n.output))


# ---------------------------------------------------------------- pooling and reduction

@lowers("qavg_pool1d", "qavg_pool2d")
def _qavg_pool(e, n):
    """The window sum (a float32 depthwise Conv of ones, exact below 2^24) divided by the number
    of taps inside the input, rounded half away from zero."""
    a, x = n.attrs, n.inputs[0]
    k, nd = a["kernel"], len(a["kernel"])
    info = np.iinfo(x.dtype.np)
    if math.prod(k) * -int(info.min) > EXACT:
        _refuse(n, f"a {k} window of {x.dtype.value} values can sum beyond float32's exact integers")
    sizes, outs = spatial_in(n), spatial(a["layout"], n.output.shape)
    pads, count = list(a["pads"]), np.ones((), np.int64)
    for i in range(nd):  # the end padding reaches exactly the end of the last window (ceil_mode)
        start = np.arange(outs[i]) * a["stride"][i] - a["pads"][i]
        pads[nd + i] = max(int(start[-1]) + k[i] - sizes[i], 0)
        count = np.multiply.outer(count, np.minimum(start + k[i], sizes[i]) - np.maximum(start, 0))
    c = x.shape[channel_axis(a["layout"])]
    one = onnx.helper.make_tensor("one", F32, [1], [1])
    ones = e.emit("ConstantOfShape", [e.ints([c, 1, *k], "shape")], value=one)
    total = e.emit("Conv", [e.emit("Cast", [_cf(e, n)], to=F32), ones], group=c, kernel_shape=k,
                   strides=a["stride"], pads=pads)
    _store_cf(e, n, _rounded_div(e, _i64(e, total), count), a["act_min"], a["act_max"])


@lowers("qmean")
def _qmean(e, n):
    a, x = n.attrs, n.inputs[0]
    axes = sorted({norm_axis(ax, x.type.rank) for ax in a["axes"]})
    count = math.prod(x.shape[ax] for ax in axes)
    total = e.emit("ReduceSum", [_i64(e, e.name(x)), e.ints(axes, "axes")], keepdims=int(a["keepdims"]))
    y = _mbqm(e, e.emit("Sub", [total, _c(e, a["in_zp"] * count)]), a["multiplier"], a["shift"])
    _saturated(e, e.emit("Add", [y, _c(e, a["out_zp"])]), n.output.dtype.np, e.out(n.output))


# ---------------------------------------------------------------- softmax
# The per-row functions of the sum of exps: one emitter per quant.py helper, named after it, on
# int64 tensors that hold int32 values (as quant.py's numpy arrays do).

def _rounding_divide_by_pot(e, x: str, exponent) -> str:
    """quant.rounding_divide_by_pot by an int or an int64 tensor `exponent` >= 0."""
    return _rounded_div(e, x, _pot(e, exponent) if isinstance(exponent, str) else 1 << exponent)


def _shift_left(e, x: str, exponent) -> str:
    """quant._shift_left (exponent >= 0, an int or an int64 tensor): x * 2^exponent saturated to int32."""
    return _op(e, "Clip", e.emit("Mul", [x, _pot(e, exponent)]), INT32_MIN, INT32_MAX)


def _saturating_rounding_multiply_by_pot(e, x: str, exponent: int) -> str:
    return _shift_left(e, x, exponent) if exponent > 0 else _rounding_divide_by_pot(e, x, -exponent)


def _clz(e, x: str) -> str:
    """quant.clz of an int64 tensor in [0, 2^31): 32 minus how many of 2^0..2^30 it reaches."""
    reached = e.emit("GreaterOrEqual", [e.emit("Unsqueeze", [x, e.ints([-1])]), _pot(e, np.arange(31))])
    return _op(e, "Sub", 32, e.emit("ReduceSum", [_i64(e, reached), e.ints([-1])], keepdims=0))


def _rounding_half_sum(e, a: str, b) -> str:
    s = _op(e, "Add", a, b)
    s = e.emit("Add", [s, e.emit("Where", [_op(e, "GreaterOrEqual", s, 0), _c(e, 1), _c(e, -1)])])
    return _op(e, "Div", s, 2)  # truncates, as sign(s) * (|s| >> 1)


def _newton_reciprocal(e, a: str) -> str:
    half_denominator = _rounding_half_sum(e, a, INT32_MAX)
    x = _op(e, "Add", 1515870810, _srdhm(e, half_denominator, -1010580540))  # quant's 48/17, -32/17
    for _ in range(3):
        one_minus = _op(e, "Sub", 1 << 29, _srdhm(e, half_denominator, x))
        x = e.emit("Add", [x, _saturating_rounding_multiply_by_pot(e, _srdhm(e, x, one_minus), 2)])
    return x


def _one_over_one_plus_x_for_x_in_0_1(e, a: str) -> str:
    return _saturating_rounding_multiply_by_pot(e, _newton_reciprocal(e, a), 1)


def _get_reciprocal(e, x: str, integer_bits: int) -> tuple[str, str]:
    """quant.get_reciprocal of an int64 tensor in [1, 2^31): (reciprocal, num_bits_over_unit)."""
    headroom_plus_one = _clz(e, x)
    shifted_minus_one = _op(e, "Sub", e.emit("Mul", [x, _pot(e, headroom_plus_one)]), 1 << 31)
    return (_one_over_one_plus_x_for_x_in_0_1(e, shifted_minus_one),
            _op(e, "Sub", integer_bits, headroom_plus_one))


def _log_x_for_x_greater_than_or_equal_to_1(e, a: str, input_bits: int, output_bits: int) -> str:
    """quant.log_x_for_x_greater_than_or_equal_to_1 of an int64 tensor in [1, 2^31)."""
    accum = output_bits + 1
    quarter = int(quant.rounding_divide_by_pot(1 << 29, accum))

    def exponent(headroom):  # input_bits - headroom in Q(accum)
        return _shift_left(e, _op(e, "Sub", input_bits, headroom), 31 - accum)
    headroom_a = _clz(e, a)
    r_a = _shift_left(e, _srdhm(e, _shift_left(e, a, _op(e, "Sub", headroom_a, 1)), quant._SQRT_HALF), 1)
    z_a = _op(e, "Min", _op(e, "Add", exponent(headroom_a), quarter), INT32_MAX)
    headroom_b = _op(e, "Sub", _clz(e, _srdhm(e, a, quant._SQRT_HALF)), 1)
    r_b = _shift_left(e, a, headroom_b)
    z_b = _op(e, "Max", _op(e, "Sub", exponent(headroom_b), quarter), INT32_MIN)
    r, z = e.emit("Min", [r_a, r_b]), e.emit("Max", [z_a, z_b])
    p = _rounding_half_sum(e, r, quant._SQRT_SQRT_HALF)
    q = _op(e, "Mul", _op(e, "Sub", r, quant._SQRT_SQRT_HALF), 2)
    q2 = _srdhm(e, q, q)
    num = e.emit("Add", [_srdhm(e, q, r), _srdhm(e, _srdhm(e, q, q2), quant._ALPHA_N)])
    denominator = _op(e, "Add", _op(e, "Add", q, quant._ALPHA_I), _srdhm(e, quant._ALPHA_D, q2))
    denom_minus_one = e.emit("Add", [_srdhm(e, p, denominator), _srdhm(e, quant._ALPHA_F, q)])
    log_r = _srdhm(e, _rounding_divide_by_pot(e, num, accum), _one_over_one_plus_x_for_x_in_0_1(e, denom_minus_one))
    log = e.emit("Add", [_srdhm(e, z, quant._LOG_2), log_r])
    return _saturating_rounding_multiply_by_pot(e, log, accum - output_bits)


def _differences(e, n) -> tuple[str, int]:
    """Softmax node `n`'s input minus its row maximum (int64), and the row's axis."""
    x = n.inputs[0]
    axis = norm_axis(n.attrs["axis"], x.type.rank)
    xi = _i64(e, e.name(x))
    if e.opset >= 18:  # ReduceMax takes its axes as an input from opset 18
        top = e.emit("ReduceMax", [xi, e.ints([axis], "axes")], keepdims=1)
    else:
        top = e.emit("ReduceMax", [xi], axes=[axis], keepdims=1)
    return e.emit("Sub", [xi, top]), axis


def _lookup(e, table: np.ndarray, index: str) -> str:
    """int64 table[index]; int16 softmax's 2^16-entry tables are stored as int16."""
    small = int(np.abs(table).max()) < 1 << 15
    return _i64(e, e.emit("Gather", [e.const(table.astype(np.int16 if small else np.int64), "table"), index]))


def _row_sum(e, n, axis: int, terms: str, table: np.ndarray) -> str:
    """The row sums of `terms` (entries of `table`), refused where they could pass INT32_MAX: there
    TFLite's int32 sum overflows and quant's per-row helpers are undefined."""
    length = n.inputs[0].shape[axis]
    if length * int(table.max()) > INT32_MAX:
        _refuse(n, f"its sum of exps over rows of {length} elements can overflow int32")
    return e.emit("ReduceSum", [terms, e.ints([axis], "axes")], keepdims=1)


@lowers("qsoftmax")
def _qsoftmax(e, n):
    (_qsoftmax16 if n.inputs[0].dtype.np == np.int16 else _qsoftmax8)(e, n)


def _qsoftmax8(e, n):
    """Each element's exp (Q0.31) and its share of the sum (Q12.19) are table entries of its difference
    to the row maximum, 0 below diff_min (which then gives -128: 0 times the reciprocal)."""
    a, d = n.attrs, np.arange(-255, 1)  # every difference to the row maximum
    exps = softmax8_exps(d, a["multiplier"], a["shift"], a["diff_min"])
    diff, axis = _differences(e, n)
    index = _op(e, "Sub", diff, d[0])
    shares = quant.rounding_divide_by_pot(exps, 12)
    reciprocal, bits_over_unit = _get_reciprocal(e, _row_sum(e, n, axis, _lookup(e, shares, index), shares), 12)
    y = _srdhm(e, reciprocal, _lookup(e, exps, index))
    y = _rounding_divide_by_pot(e, y, _op(e, "Add", bits_over_unit, 23))
    _store(e, _op(e, "Sub", y, 128), -128, 127, np.int8, e.out(n.output))


def _qsoftmax16(e, n):
    """Each element's exp is a table entry of its difference to the row maximum (a 2^16-entry table of
    interpreter.softmax16_exps); the normalized row sum's reciprocal is one too (on
    RECIPROCAL_LUT16, over every int16)."""
    a, d = n.attrs, np.arange(-65535, 1)
    exps = softmax16_exps(d, a["multiplier"], a["shift"])
    diff, axis = _differences(e, n)
    ex = _lookup(e, exps, _op(e, "Sub", diff, d[0]))
    total = _row_sum(e, n, axis, ex, exps)
    headroom = _clz(e, total)
    shifted = e.emit("Mul", [total, _pot(e, _op(e, "Sub", headroom, 1))])  # in [2^30, 2^31)
    normalized = _shift_right(e, _op(e, "Add", shifted, 1 << 13), 14)
    index = _op(e, "Add", _op(e, "Clip", _op(e, "Sub", normalized, 3 << 15), -32768, 32767), 32768)
    reciprocal = _lookup(e, lookup16(np.arange(-32768, 32768), quant.RECIPROCAL_LUT16), index)
    right = _op(e, "Sub", 31, headroom)
    y = _op(e, "Add", e.emit("Mul", [ex, reciprocal]), _pot(e, _op(e, "Sub", right, 1)))
    _store(e, _shift_right(e, y, right), 0, 32767, np.int16, e.out(n.output))


@lowers("qlog_softmax")
def _qlog_softmax(e, n):
    """Each element's difference to the row maximum in Q5.26 and its exp's share of the sum (Q12.19)
    are table entries of that difference; the row's log of the sum is emulated step by step."""
    a, d = n.attrs, np.arange(-255, 1)
    scaled, shares = log_softmax8_terms(d, a["multiplier"], a["shift"], a["diff_min"])
    diff, axis = _differences(e, n)
    index = _op(e, "Sub", diff, d[0])
    log_sum = _log_x_for_x_greater_than_or_equal_to_1(e, _row_sum(e, n, axis, _lookup(e, shares, index), shares), 12, 5)
    reverse = _mbqm(e, _op(e, "Add", log_sum, INT32_MIN), a["reverse_multiplier"], a["reverse_shift"])
    adjusted_min = _op(e, "Max", reverse, a["diff_min"] - 1)
    y = _rounding_divide_by_pot(e, e.emit("Sub", [_lookup(e, scaled, index), log_sum]), 22)
    y = e.emit("Where", [e.emit("Greater", [diff, adjusted_min]), _op(e, "Add", y, 127), _c(e, -128)])
    _store(e, y, -128, 127, np.int8, e.out(n.output))


# ---------------------------------------------------------------- quantization at float edges

def _per_axis(e, values, axis: int, rank: int, dtype) -> str:
    return e.const(np.asarray(values, dtype).reshape(_along(values, rank, axis)), "q")


@lowers("quantize")
def _quantize(e, n):
    """round_half_away(x / scale) + zero point, saturated: the interpreter's float32 steps."""
    a, x = n.attrs, n.inputs[0]
    v = e.emit("Div", [e.name(x), _per_axis(e, a["scale"], a["axis"], x.type.rank, np.float32)])
    r = e.emit("Mul", [e.emit("Sign", [v]), e.emit("Floor", [e.emit("Add", [e.emit("Abs", [v]), e.scalar(0.5)])])])
    r = _i64(e, e.emit("Clip", [r, e.scalar(-2.0 ** 31), e.scalar(2.0 ** 31)]))  # a defined cast
    q = e.emit("Add", [r, _per_axis(e, a["zero_point"], a["axis"], x.type.rank, np.int64)])
    _saturated(e, q, n.output.dtype.np, e.out(n.output))


@lowers("dequantize")
def _dequantize(e, n):
    a, x = n.attrs, n.inputs[0]
    if x.is_const:  # a float island's weights: folded by the interpreter
        (real,) = evaluate("dequantize", [x.data], a)
        return e.emit("Identity", [e.const(real, "real")], e.out(n.output))
    zp = _per_axis(e, a["zero_point"], a["axis"], x.type.rank, np.int64)
    d = e.emit("Cast", [e.emit("Sub", [_i64(e, e.name(x)), zp])], to=F32)
    e.emit("Mul", [d, _per_axis(e, a["scale"], a["axis"], x.type.rank, np.float32)], e.out(n.output))


# ---------------------------------------------------------------- data movement on integers

@lowers("clamp")
def _clamp(e, n):
    x = n.inputs[0]
    if x.dtype.np.kind == "f":
        return LOWERINGS["clamp"](e, n)
    info = np.iinfo(x.dtype.np)  # the interpreter's integer bounds
    lo = math.ceil(np.clip(n.attrs["min"], info.min, info.max))
    hi = math.floor(np.clip(n.attrs["max"], info.min, info.max))
    y = e.emit("Clip", [e.emit("Cast", [e.name(x)], to=F32), e.scalar(float(lo)), e.scalar(float(hi))])
    e.emit("Cast", [y], e.out(n.output), to=_ty(x.dtype.np))


def _through_float(lower):
    """`lower` (a float lowering) run on a float32 copy of an integer operand, cast back."""
    def lowered(e, n):
        x, y = n.inputs[0], n.output
        if x.dtype.np.kind == "f":
            return lower(e, n)
        source, target = e.name(x), e.out(y)
        e.redirect(x, read=e.emit("Cast", [source], to=F32))
        e.redirect(y, write=e.fresh(f"{n.name}/float"))
        lower(e, n)
        e.emit("Cast", [e.out(y)], target, to=_ty(y.dtype.np))
        e.redirect(x, read=source)
        e.redirect(y, write=target)
    return lowered


for _moved in ("max_pool1d", "max_pool2d", "pad", "resize"):
    INTEGER_LOWERINGS[_moved] = _through_float(LOWERINGS[_moved])
