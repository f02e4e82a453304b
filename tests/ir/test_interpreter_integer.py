"""The integer ops of the interpreter against independent computations.

Each op is checked bit for bit against a straightforward re-implementation written from TFLite
Micro's reference kernel loops (scalar Python ints with C's semantics, tiny shapes), the
transcendental ones also against outputs recorded from TFLite Micro itself; and, as a sanity
check, its dequantized result is within 1-2 LSB of the float op on the dequantized inputs. The
ops that run unchanged on integer tensors are checked to keep their dtype and padding semantics.
"""
import itertools
import math

import numpy as np
import pytest

from mcuforge.errors import UsageError, VerifyError
from mcuforge.ir import ops
from mcuforge.ir import quant as Q
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import evaluate, run
from mcuforge.ir.types import DType, QuantParams, TensorType
from mcuforge.ir.verify import verify

MIN, MAX = -(1 << 31), (1 << 31) - 1
CHECKED_HERE = {"requantize", "qconv1d", "qconv2d", "qconv_transpose2d", "qlinear", "qadd", "qsub", "qmul",
                "qavg_pool1d", "qavg_pool2d", "qmean", "qsoftmax", "qlog_softmax", "qlogistic", "qtanh", "qhardswish", "qleaky_relu",
                "qprelu"}


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------- scalar fixed point (common.h, gemmlowp)

def c_div(a, b):
    """C's integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def srdhm(a, b):
    if a == b == MIN:
        return MAX
    ab = a * b
    return c_div(ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30)), 1 << 31)


def rdbpot(x, e):
    mask = (1 << e) - 1
    return (x >> e) + ((x & mask) > (mask >> 1) + (x < 0))


def mbqm(x, m, s):
    return rdbpot(srdhm(x * (1 << max(s, 0)), m), max(-s, 0))


def mbqm64(x, m, s):
    reduced = (m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF
    return (x * reduced + (1 << (14 - s))) >> (15 - s)


def clamp(v, lo, hi):
    return min(max(v, lo), hi)


def dtype_range(dtype):
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


# ---------------------------------------------------------------- helpers

def quantize(x, scale, zp, dtype=np.int8):
    """Float -> integer by the spec (round half away from zero, saturate), written with numpy."""
    q = np.sign(x / scale) * np.floor(np.abs(x / scale) + 0.5) + zp
    return np.clip(q, *dtype_range(dtype)).astype(dtype)


def weights(rng, shape):
    """Random float weights quantized symmetrically per output channel (axis 0) -> (int8, scales)."""
    w = rng.standard_normal(shape).astype(np.float32)
    s = np.abs(w).reshape(shape[0], -1).max(1) / 127
    return quantize(w, s.reshape(-1, *[1] * (len(shape) - 1)), 0), s


def run_q(op, x, *consts, out_quant=None, **attrs):
    """The result of a verified one-node graph: graph input `x`, constant operands `consts`."""
    g = Graph(op)
    inputs = [g.add_input("x", TensorType(x.shape, DType.from_numpy(x.dtype)))]
    inputs += [g.const(c, "c") for c in consts if c is not None]
    g.outputs = [g.op(op, inputs, attrs)]
    verify(g)
    (y,) = run(g, x)
    return y


def close_to_float(q, expected_real, scale, zp, lsb=1):
    """Sanity: the integer result is within `lsb` of the float result requantized."""
    expected = quantize(expected_real, scale, zp, q.dtype)
    assert np.abs(q.astype(np.int64) - expected).max() <= lsb


def nhwc(x):
    return np.moveaxis(x, 1, -1)


def nchw(x):
    return np.moveaxis(x, -1, 1)


# ---------------------------------------------------------------- convolution

def conv_oracle(x, w, b, a):
    """reference_integer_ops::ConvPerChannel on NHWC x and OHWI w (with groups)."""
    n_, h, w_, c = x.shape
    o, kh, kw, ci = w.shape
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = a["stride"], a["dilation"], a["pads"]
    oh, ow = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1, (w_ + pl + pr - dw * (kw - 1) - 1) // sw + 1
    per_group = o // (c // ci)
    acc64 = x.dtype == np.int16 and (b is None or b.dtype == np.int64)
    out = np.zeros((n_, oh, ow, o), np.int64)
    for n, y, xx, oc in itertools.product(range(n_), range(oh), range(ow), range(o)):
        acc, group = 0, oc // per_group
        for ky, kx in itertools.product(range(kh), range(kw)):
            iy, ix = y * sh - pt + dh * ky, xx * sw - pl + dw * kx
            if 0 <= iy < h and 0 <= ix < w_:
                for i in range(ci):
                    acc += int(w[oc, ky, kx, i]) * (int(x[n, iy, ix, group * ci + i]) - a["in_zp"])
        acc += int(b[oc]) if b is not None else 0
        m, s = a["multiplier"][oc % len(a["multiplier"])], a["shift"][oc % len(a["shift"])]
        out[n, y, xx, oc] = clamp((mbqm64 if acc64 else mbqm)(acc, m, s) + a["out_zp"], a["act_min"], a["act_max"])
    return out


CONVS = [  # in ch, out ch, kernel, stride, pads, dilation, groups, act, int16x8, bias
    (4, 5, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1, "none", False, True),
    (4, 5, (3, 2), [2, 1], [0, 1, 2, 0], [1, 2], 1, "relu", False, True),
    (4, 6, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 2, "relu6", False, False),
    (3, 6, (3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 3, "relu", False, True),  # depthwise, multiplier 2
    (4, 5, (3, 3), [1, 1], [2, 1, 0, 1], [2, 1], 1, "relu", True, True),  # int16x8, i64 bias
    (3, 3, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 3, "none", True, False),
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("c,o,k,stride,pads,dilation,groups,act,i16,bias", CONVS)
def test_qconv2d(rng, c, o, k, stride, pads, dilation, groups, act, i16, bias, layout):
    dt, sdt = (np.int16, "i16") if i16 else (np.int8, "i8")
    xf = rng.standard_normal((2, c, 6, 5)).astype(np.float32)
    wq, s_w = weights(rng, (o, c // groups, *k))
    s_in, zp_in = (4 / 32767, 0) if i16 else (0.03, -7)
    s_out, zp_out = (30 / 32767, 0) if i16 else (0.12, 5)
    x = quantize(xf, s_in, zp_in, dt)
    b = np.round(rng.standard_normal(o) / (s_in * s_w)).astype(np.int64 if i16 else np.int32) if bias else None
    attrs = dict(stride=stride, pads=pads, dilation=dilation, groups=groups, layout=layout,
                 **Q.conv_params(s_in, s_w, s_out, zp_in, zp_out, act, sdt))
    xl, wl = (nhwc(x), nhwc(wq)) if layout == "NHWC" else (x, wq)
    y = run_q("qconv2d", xl, wl, b, **attrs)
    y = y if layout == "NHWC" else nhwc(y)
    assert y.dtype == dt
    np.testing.assert_array_equal(y, conv_oracle(nhwc(x), nhwc(wq), b, attrs))
    real_w = (wq * s_w.reshape(-1, 1, 1, 1)).astype(np.float32)
    real_b = None if b is None else (b * s_in * s_w).astype(np.float32)
    real = evaluate("conv2d", [(x.astype(np.float32) - zp_in) * s_in, real_w, real_b],
                    dict(stride=stride, pads=pads, dilation=dilation, groups=groups, act=act))[0]
    close_to_float(y, nhwc(real), s_out, zp_out, lsb=2 if i16 else 1)


def test_qconv2d_padding_is_the_input_zero_point():
    # a 3x3 all-ones kernel over a 1x1 input with pads 1: every output sums the one real pixel
    x = np.full((1, 1, 1, 1), 10, np.int8)
    w = np.ones((1, 1, 3, 3), np.int8)
    y = run_q("qconv2d", x, w, stride=[1, 1], pads=[1, 1, 1, 1], dilation=[1, 1], in_zp=10, out_zp=-3,
              multiplier=[1 << 30], shift=[1], act_min=-128, act_max=127)
    assert y.tolist() == [[[[-3]]]]  # (10 - 10) * 9 taps: the padding adds nothing either


def test_qconv1d_is_qconv2d_on_a_row(rng):
    x = rng.integers(-128, 128, (2, 3, 9)).astype(np.int8)
    w = rng.integers(-127, 128, (4, 3, 3)).astype(np.int8)
    b = rng.integers(-500, 500, 4).astype(np.int32)
    p = Q.conv_params(0.05, [0.01, 0.02, 0.015, 0.03], 0.2, 4, -2, "relu")
    y = run_q("qconv1d", x, w, b, stride=[2], pads=[1, 2], dilation=[1], **p)
    expected = conv_oracle(nhwc(x[:, :, None, :]), nhwc(w[:, :, None, :]), b,
                           dict(p, stride=[1, 2], pads=[0, 1, 0, 2], dilation=[1, 1]))
    np.testing.assert_array_equal(nhwc(y[:, :, None, :]), expected)


def transpose_conv_oracle(x, w, b, a):
    """reference_integer_ops::TransposeConv (scatter into an accumulator, then requantize) on NHWC
    x and (O/groups, kH, kW, I) w, extended to groups and dilation."""
    n_, h, w_, c = x.shape
    og, kh, kw, _ = w.shape
    (sh, sw), (dh, dw), (pt, pl, pb, pr), (oph, opw) = a["stride"], a["dilation"], a["pads"], a["output_padding"]
    groups = a["groups"]
    oh = (h - 1) * sh - pt - pb + dh * (kh - 1) + oph + 1
    ow = (w_ - 1) * sw - pl - pr + dw * (kw - 1) + opw + 1
    acc = np.zeros((n_, oh, ow, og * groups), object)
    for n, iy, ix, ic, ky, kx, j in itertools.product(range(n_), range(h), range(w_), range(c), range(kh), range(kw),
                                                      range(og)):
        oy, ox = iy * sh - pt + ky * dh, ix * sw - pl + kx * dw
        if 0 <= oy < oh and 0 <= ox < ow:
            acc[n, oy, ox, ic // (c // groups) * og + j] += (int(x[n, iy, ix, ic]) - a["in_zp"]) * int(w[j, ky, kx, ic])
    acc64 = x.dtype == np.int16
    out = np.zeros(acc.shape, np.int64)
    for idx in itertools.product(*map(range, acc.shape)):
        v = acc[idx] + (int(b[idx[-1]]) if b is not None else 0)
        m, s = a["multiplier"][idx[-1] % len(a["multiplier"])], a["shift"][idx[-1] % len(a["shift"])]
        out[idx] = clamp((mbqm64 if acc64 else mbqm)(v, m, s) + a["out_zp"], a["act_min"], a["act_max"])
    return out


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("stride,pads,dilation,groups,output_padding,i16", [
    ([2, 2], [0, 0, 0, 0], [1, 1], 1, [0, 0], False),
    ([2, 1], [1, 0, 0, 1], [1, 1], 1, [1, 0], False),
    ([2, 2], [1, 1, 1, 1], [2, 1], 2, [0, 0], False),
    ([2, 2], [0, 0, 0, 0], [1, 1], 1, [0, 0], True),
])
def test_qconv_transpose2d(rng, stride, pads, dilation, groups, output_padding, i16, layout):
    dt, sdt = (np.int16, "i16") if i16 else (np.int8, "i8")
    c, og = 4, 3
    xf = rng.standard_normal((1, c, 3, 4)).astype(np.float32)
    wq, s_w = weights(rng, (og * groups, c // groups, 3, 3))  # OIHW-like for the scales; reshuffled below
    # torch's (I, O/groups, kH, kW) layout
    w_torch = wq.reshape(groups, og, c // groups, 3, 3).transpose(0, 2, 1, 3, 4).reshape(c, og, 3, 3)
    s_in, zp_in, s_out, zp_out = (4 / 32767, 0, 20 / 32767, 0) if i16 else (0.03, 3, 0.1, -4)
    x = quantize(xf, s_in, zp_in, dt)
    b = np.round(rng.standard_normal(og * groups) / (s_in * s_w)).astype(np.int64 if i16 else np.int32)
    attrs = dict(stride=stride, pads=pads, dilation=dilation, groups=groups, output_padding=output_padding,
                 layout=layout, **Q.conv_params(s_in, s_w, s_out, zp_in, zp_out, "none", sdt))
    w_nhwc = np.moveaxis(w_torch, 0, -1)  # (O/g, kH, kW, I)
    y = run_q("qconv_transpose2d", nhwc(x) if layout == "NHWC" else x, w_nhwc if layout == "NHWC" else w_torch, b,
              **attrs)
    y = y if layout == "NHWC" else nhwc(y)
    np.testing.assert_array_equal(y, transpose_conv_oracle(nhwc(x), w_nhwc, b, attrs))
    s_w_per_out = np.asarray(s_w)
    real = evaluate("conv_transpose2d", [(x.astype(np.float32) - zp_in) * s_in,
                                         (w_torch * s_w_per_out.reshape(groups, 1, og, 1, 1).repeat(c // groups, 1)
                                          .reshape(c, og, 1, 1)).astype(np.float32),
                                         (b * s_in * s_w).astype(np.float32)],
                    dict(stride=stride, pads=pads, dilation=dilation, groups=groups, output_padding=output_padding))[0]
    close_to_float(y, nhwc(real), s_out, zp_out, lsb=2 if i16 else 1)


# ---------------------------------------------------------------- dense and elementwise

@pytest.mark.parametrize("per_channel,i16,bias_dtype", [(True, False, np.int32), (False, False, np.int32),
                                                        (True, True, np.int64), (False, True, np.int64),
                                                        (True, True, np.int32), (True, True, None)])
def test_qlinear(rng, per_channel, i16, bias_dtype):
    dt, sdt = (np.int16, "i16") if i16 else (np.int8, "i8")
    xf = rng.standard_normal((2, 3, 7)).astype(np.float32)
    wf = rng.standard_normal((5, 7)).astype(np.float32)
    s_w = np.abs(wf).max(1) / 127 if per_channel else np.array([np.abs(wf).max() / 127])
    wq = quantize(wf, s_w.reshape(-1, 1), 0)
    s_in, zp_in, s_out, zp_out = (4 / 32767, 0, 10 / 32767, 0) if i16 else (0.03, 9, 0.1, -3)
    x = quantize(xf, s_in, zp_in, dt)
    b = None if bias_dtype is None else np.round(rng.standard_normal(5) / (s_in * s_w)).astype(bias_dtype)
    attrs = Q.linear_params(s_in, list(s_w), s_out, zp_in, zp_out, "relu", sdt)
    y = run_q("qlinear", x, wq, b, **attrs)
    assert y.dtype == dt
    acc64 = i16 and bias_dtype != np.int32  # FULLY_CONNECTED's accumulator follows the bias type
    expected = np.zeros(y.shape, np.int64)
    for idx in itertools.product(*map(range, y.shape)):
        acc = sum(int(wq[idx[-1], d]) * (int(x[idx[:-1] + (d,)]) - zp_in) for d in range(7))
        acc += int(b[idx[-1]]) if b is not None else 0
        m, s = attrs["multiplier"][idx[-1] % len(s_w)], attrs["shift"][idx[-1] % len(s_w)]
        expected[idx] = clamp((mbqm64 if acc64 else mbqm)(acc, m, s) + zp_out, attrs["act_min"], attrs["act_max"])
    np.testing.assert_array_equal(y, expected)
    real = evaluate("linear", [(x.astype(np.float32) - zp_in) * s_in, wq * s_w.reshape(-1, 1).astype(np.float32)]
                    + ([] if b is None else [(b * s_in * s_w).astype(np.float32)]), dict(act="relu"))[0]
    close_to_float(y, real, s_out, zp_out, lsb=2 if i16 else 1)


def test_qlinear_int16_bias_type_picks_the_accumulator():
    # 5 * 0.5 * 2^-1 = 1.25: the 32-bit path (i32 bias) rounds twice to 2, the 64-bit one to 1
    x, w = np.array([[5]], np.int16), np.array([[1]], np.int8)
    attrs = dict(in_zp=0, out_zp=0, multiplier=[1 << 30], shift=[-1], act_min=-32768, act_max=32767)
    assert run_q("qlinear", x, w, np.zeros(1, np.int32), **attrs).tolist() == [[2]]
    assert run_q("qlinear", x, w, np.zeros(1, np.int64), **attrs).tolist() == [[1]]


BINARY_CASES = [((2, 3, 4), (2, 3, 4), "none", False), ((2, 3, 4), (1, 3, 1), "relu", False),
                ((3, 1), (4,), "relu6", False), ((2, 3, 4), (2, 3, 4), "none", True), ((2, 1, 4), (3, 1), "relu", True)]


@pytest.mark.parametrize("op", ["qadd", "qsub", "qmul"])
@pytest.mark.parametrize("sa,sb,act,i16", BINARY_CASES)
def test_binary(rng, op, sa, sb, act, i16):
    dt, sdt = (np.int16, "i16") if i16 else (np.int8, "i8")
    af, bf = rng.uniform(-2, 2, sa).astype(np.float32), rng.uniform(-3, 1, sb).astype(np.float32)
    if i16:
        (s_a, zp_a), (s_b, zp_b), (s_out, zp_out) = (2 / 32767, 0), (3 / 32767, 0), (6 / 32767, 0)
    else:
        (s_a, zp_a), (s_b, zp_b), (s_out, zp_out) = (2 / 127, -3), (4 / 255, 64), (6 / 255, -10)
    a, b = quantize(af, s_a, zp_a, dt), quantize(bf, s_b, zp_b, dt)
    params = Q.mul_params if op == "qmul" else Q.add_params
    attrs = params(s_a, zp_a, s_b, zp_b, s_out, zp_out, act, sdt)
    y = run_q(op, a, b, **attrs)
    assert y.dtype == dt
    expected = np.zeros(y.shape, np.int64)
    flat_a, flat_b = (v.reshape(-1) for v in np.broadcast_arrays(a, b))
    for idx, va, vb in zip(itertools.product(*map(range, y.shape)), flat_a, flat_b):
        va, vb = int(va) - zp_a, int(vb) - zp_b
        if op == "qmul":
            raw = mbqm(va * vb, attrs["multiplier"], attrs["shift"])
        else:
            ls = attrs["left_shift"]
            xa = mbqm(va * (1 << ls), attrs["a_multiplier"], attrs["a_shift"])
            xb = mbqm(vb * (1 << ls), attrs["b_multiplier"], attrs["b_shift"])
            raw = mbqm(xa + xb if op == "qadd" else xa - xb, attrs["multiplier"], attrs["shift"])
        expected[idx] = clamp(raw + zp_out, attrs["act_min"], attrs["act_max"])
    np.testing.assert_array_equal(y, expected)
    real_a, real_b = (a.astype(np.float32) - zp_a) * s_a, (b.astype(np.float32) - zp_b) * s_b
    real = evaluate(op[1:], [real_a, real_b], dict(act=act))[0]
    close_to_float(y, real, s_out, zp_out)


def test_qadd_hand_checked():
    # a: scale 0.5, b: scale 0.25, out: scale 1 -> 3 * 0.5 + 6 * 0.25 = 3.0, -3 * 0.5 + 2 * 0.25 = -1.0
    attrs = Q.add_params(0.5, 0, 0.25, 0, 1.0, 1, "none")
    assert run_q("qadd", np.array([3, -3], np.int8), np.array([6, 2], np.int8), **attrs).tolist() == [4, 0]
    attrs = Q.add_params(0.5, 0, 0.25, 0, 1.0, 1, "none")
    assert run_q("qsub", np.array([3, -3], np.int8), np.array([6, 2], np.int8), **attrs).tolist() == [1, -1]


# ---------------------------------------------------------------- pooling and reduction

@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("kernel,stride,pads,ceil_mode,act", [
    ([3, 3], [2, 2], [1, 1, 1, 1], False, "none"),
    ([2, 3], [1, 2], [0, 1, 1, 0], False, "relu"),
    ([3, 3], [2, 2], [0, 0, 0, 0], True, "none"),  # the last window hangs over the input
    ([2, 2], [2, 2], [0, 0, 0, 0], False, "relu6"),
])
def test_qavg_pool2d(rng, kernel, stride, pads, ceil_mode, act, layout):
    x = rng.integers(-128, 128, (2, 3, 7, 6)).astype(np.int8)
    scale, zp = 0.05, -6
    attrs = dict(kernel=kernel, stride=stride, pads=pads, ceil_mode=ceil_mode, layout=layout,
                 **Q.avg_pool_params(scale, zp, act))
    y = run_q("qavg_pool2d", nhwc(x) if layout == "NHWC" else x, **attrs)
    y = nchw(y) if layout == "NHWC" else y
    expected = np.zeros(y.shape, np.int64)
    for n, c, oy, ox in itertools.product(*map(range, y.shape)):
        y0, x0 = oy * stride[0] - pads[0], ox * stride[1] - pads[1]
        taps = [int(x[n, c, iy, ix]) for iy in range(max(y0, 0), min(y0 + kernel[0], 7))
                for ix in range(max(x0, 0), min(x0 + kernel[1], 6))]
        acc, count = sum(taps), len(taps)
        avg = c_div(acc + count // 2, count) if acc > 0 else c_div(acc - count // 2, count)
        expected[n, c, oy, ox] = clamp(avg, attrs["act_min"], attrs["act_max"])
    np.testing.assert_array_equal(y, expected)
    real = evaluate("avg_pool2d", [(x.astype(np.float32) - zp) * scale],
                    dict(kernel=kernel, stride=stride, pads=pads, ceil_mode=ceil_mode, count_include_pad=False))[0]
    lo, hi = attrs["act_min"], attrs["act_max"]
    close_to_float(y, np.clip(real, (lo - zp) * scale, (hi - zp) * scale), scale, zp)


def test_qavg_pool_rounds_half_away_from_zero():
    x = np.array([[[1, 2, -1, -2, 3, 4]]], np.int8)  # averages 1.5, -1.5, 3.5
    y = run_q("qavg_pool1d", x, kernel=[2], stride=[2], pads=[0, 0], act_min=-128, act_max=127)
    assert y.tolist() == [[[2, -2, 4]]]


def test_qavg_pool1d_int16(rng):
    x = rng.integers(-32768, 32768, (1, 6, 4)).astype(np.int16)
    y = run_q("qavg_pool1d", x, kernel=[3], stride=[1], pads=[1, 1], layout="NWC", act_min=-32768, act_max=32767)
    sums = [x[0, max(i - 1, 0):i + 2].astype(np.int64) for i in range(6)]
    expected = [[math.copysign(math.floor(abs(int(v)) / len(s) + 0.5), int(v)) for v in s.sum(0)] for s in sums]
    np.testing.assert_array_equal(y[0], expected)


@pytest.mark.parametrize("axes,keepdims,i16", [([2, 3], True, False), ([1], False, False), ([-1, 0], False, False),
                                               ([1, 2, 3], True, True)])
def test_qmean(rng, axes, keepdims, i16):
    dt = np.int16 if i16 else np.int8
    x = rng.integers(*dtype_range(dt), (2, 3, 5, 4), endpoint=True).astype(dt)
    s_in, zp_in, s_out, zp_out = (1 / 4096, 0, 1 / 8192, 0) if i16 else (0.1, 3, 0.04, -5)
    count = math.prod(x.shape[a] for a in axes)
    attrs = dict(axes=axes, keepdims=keepdims, **Q.mean_params(s_in, zp_in, s_out, zp_out, count))
    y = run_q("qmean", x, **attrs)
    sums = x.astype(object).sum(tuple(axes), keepdims=keepdims)  # exact Python ints
    expected = np.vectorize(lambda v: clamp(mbqm(int(v) - zp_in * count, attrs["multiplier"], attrs["shift"]) + zp_out,
                                            *dtype_range(dt)), otypes=[np.int64])(sums)
    np.testing.assert_array_equal(y, expected)
    close_to_float(y, ((x.astype(np.float64) - zp_in) * s_in).mean(tuple(axes), keepdims=keepdims), s_out, zp_out)


# ---------------------------------------------------------------- softmax and activations

SOFTMAX_X = ((np.arange(64).reshape(4, 16) * 37 + 11) % 256 - 128).astype(np.int8)
# TFLite Micro's SOFTMAX (tflite-micro 0.dev20261023) on SOFTMAX_X, input zero point 3, beta 1
SOFTMAX_TFLM = {
    0.02: [[-127, -126, -125, -121, -113, -97, -63, -127, -126, -124, -121, -112, -95, -59, -127, -126],
           [-125, -121, -114, -98, -66, -127, -126, -125, -121, -113, -96, -62, -127, -126, -124, -120],
           [-116, -102, -74, -127, -127, -125, -122, -115, -101, -71, -127, -126, -125, -121, -114, -99],
           [-65, -127, -126, -125, -121, -113, -96, -61, -127, -126, -124, -120, -112, -94, -128, -127]],
    0.5: [[-128, -128, -128, -128, -128, -128, -81, -128, -128, -128, -128, -128, -128, 81, -128, -128],
          [-128, -128, -128, -128, -81, -128, -128, -128, -128, -128, -128, 81, -128, -128, -128, -128],
          [-128, -128, -81, -128, -128, -128, -128, -128, -128, 81, -128, -128, -128, -128, -128, -128],
          [-81, -128, -128, -128, -128, -128, -128, 81, -128, -128, -128, -128, -128, -128, -128, -128]],
}


def softmax_oracle(x, a):
    """reference_ops::Softmax, int8 -> int8, row by row (gemmlowp's exp and reciprocal from quant.py)."""
    out = np.zeros(x.shape, np.int64)
    for r, row in enumerate(x.astype(int).tolist()):
        top = max(row)
        exps = {c: int(Q.exp_on_negative_values(srdhm((v - top) * (1 << a["shift"]), a["multiplier"]), 5))
                for c, v in enumerate(row) if v - top >= a["diff_min"]}
        recip, bits = (int(v) for v in Q.get_reciprocal(sum(rdbpot(e, 12) for e in exps.values()), 12))
        for c in range(len(row)):
            out[r, c] = clamp(rdbpot(srdhm(recip, exps[c]), bits + 23) - 128, -128, 127) if c in exps else -128
    return out


@pytest.mark.parametrize("scale", sorted(SOFTMAX_TFLM))
def test_qsoftmax_matches_tflite_micro(scale):
    attrs = Q.softmax_params(1.0, scale)
    y = run_q("qsoftmax", SOFTMAX_X, **attrs)
    np.testing.assert_array_equal(y, SOFTMAX_TFLM[scale])
    np.testing.assert_array_equal(y, softmax_oracle(SOFTMAX_X, attrs))


@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_qsoftmax(rng, axis):
    x = rng.integers(-128, 128, (3, 5, 7)).astype(np.int8)
    s_in, beta = 0.07, 1.5
    attrs = dict(axis=axis, **Q.softmax_params(beta, s_in))
    y = run_q("qsoftmax", x, **attrs)
    moved = np.moveaxis(x, axis, -1)
    expected = softmax_oracle(moved.reshape(-1, moved.shape[-1]), attrs).reshape(moved.shape)
    np.testing.assert_array_equal(y, np.moveaxis(expected, -1, axis))
    real = evaluate("softmax", [(x.astype(np.float32) - 0) * s_in * beta], dict(axis=axis))[0]
    close_to_float(y, real, 1 / 256, -128)


def log_softmax_oracle(x, a):
    """reference_ops::LogSoftmax, int8 -> int8, row by row (gemmlowp's exp and TFLite's log from quant.py)."""
    out = np.zeros(x.shape, np.int64)
    for r, row in enumerate(x.astype(int).tolist()):
        top = max(row)
        q5 = {c: mbqm(v - top, a["multiplier"], a["shift"]) for c, v in enumerate(row) if v - top >= a["diff_min"]}
        total = sum(rdbpot(int(Q.exp_on_negative_values(v, 5)), 12) for v in q5.values())
        log_sum = int(Q.log_x_for_x_greater_than_or_equal_to_1(total, 12, 5))
        lowest = max(a["diff_min"] - 1, mbqm(log_sum + MIN, a["reverse_multiplier"], a["reverse_shift"]))
        for c, v in enumerate(row):
            out[r, c] = clamp(rdbpot(q5[c] - log_sum, 22) + 127, -128, 127) if v - top > lowest else -128
    return out


@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("s_in", [0.02, 0.1, 0.7])
def test_qlog_softmax(rng, axis, s_in):
    x = rng.integers(-128, 128, (4, 9)).astype(np.int8)
    attrs = dict(axis=axis, **Q.log_softmax_params(s_in))
    y = run_q("qlog_softmax", x, **attrs)
    moved = np.moveaxis(x, axis, -1)
    np.testing.assert_array_equal(y, np.moveaxis(log_softmax_oracle(moved, attrs), -1, axis))
    real = evaluate("log_softmax", [x.astype(np.float32) * s_in], dict(axis=axis))[0]
    close_to_float(y, real, 16 / 256, 127)


def test_qlog_softmax_hand_computed():
    # output step 1/16 from 127 (0.0) down to -128 (-15.94). n equal values: -log(n)
    equal = np.zeros((3, 16), np.int8) + np.array([[-5], [0], [100]], np.int8)
    assert (run_q("qlog_softmax", equal, **Q.log_softmax_params(0.05)) == 127 - 44).all()  # 16 log 16 = 44.4
    # inputs 0, -127.5, -63.5, -0.5 (scale 0.5) minus log(1 + e^-0.5) = 0.474: -7.6 and -15.6 steps
    # for the first and last, the others below the range
    y = run_q("qlog_softmax", np.array([[127, -128, 0, 126]], np.int8), **Q.log_softmax_params(0.5))
    np.testing.assert_array_equal(y, [[127 - 8, -128, -128, 127 - 16]])


def test_log_x_is_close_to_log():
    a = np.array([1 << 19, 3 << 18, 1 << 20, 123456789, (1 << 31) - 1])  # Q12.19: 1, 1.5, 2, 235.5, 4096
    got = Q.log_x_for_x_greater_than_or_equal_to_1(a, 12, 5) / 2.0 ** 26
    np.testing.assert_allclose(got, np.log(a / 2.0 ** 19), atol=2e-7)


ALL_INT8 = np.arange(-128, 128, dtype=np.int8)
# TFLite Micro's LOGISTIC (input 0.05, zero point 10), TANH (0.03, -7) and HARD_SWISH (0.04, 5 -> 0.03, -20)
# on every int8 value, -128 .. 127
LOGISTIC_TFLM = [-128] * 14 + [-127] * 22 + [-126] * 10 + [-125] * 7 + [-124] * 5 + [-123] * 4 + [-122] * 4 + [
    -121, -121, -120, -120, -120, -119, -119, -118, -118, -117, -117, -116, -116, -115, -115, -114, -113, -113, -112,
    -111, -110, -109, -109, -108, -107, -106, -105, -104, -102, -101, -100, -99, -97, -96, -95, -93, -92, -90, -88, -87,
    -85, -83, -81, -79, -77, -75, -73, -71, -69, -66, -64, -62, -59, -57, -54, -51, -49, -46, -43, -40, -37, -34, -31,
    -28, -25, -22, -19, -16, -13, -10, -6, -3, 0, 3, 6, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37, 40, 43, 46, 49, 51, 54,
    57, 59, 62, 64, 66, 69, 71, 73, 75, 77, 79, 81, 83, 85, 87, 88, 90, 92, 93, 95, 96, 97, 99, 100, 101, 102, 104,
    105, 106, 107, 108, 109, 109, 110, 111, 112, 113, 113, 114, 115, 115, 116, 116, 117, 117, 118, 118, 119, 119, 120,
    120, 120, 121, 121] + [122] * 4 + [123] * 4 + [124] * 5 + [125] * 7 + [126] * 10 + [127] * 15
TANH_TFLM = [-128] * 18 + [-127] * 18 + [-126] * 9 + [-125] * 5 + [-124] * 4 + [-123] * 4 + [-122] * 3 + [
    -121, -121, -120, -120, -119, -119, -118, -118, -117, -117, -116, -115, -114, -114, -113, -112, -111, -110, -109,
    -108, -107, -106, -104, -103, -102, -100, -99, -97, -95, -94, -92, -90, -88, -86, -84, -81, -79, -77, -74, -71,
    -69, -66, -63, -60, -57, -54, -51, -48, -44, -41, -37, -34, -30, -26, -23, -19, -15, -11, -8, -4, 0, 4, 8, 11,
    15, 19, 23, 26, 30, 34, 37, 41, 44, 48, 51, 54, 57, 60, 63, 66, 69, 71, 74, 77, 79, 81, 84, 86, 88, 90, 92, 94,
    95, 97, 99, 100, 102, 103, 104, 106, 107, 108, 109, 110, 111, 112, 113, 114, 114, 115, 116, 117, 117, 118, 118,
    119, 119, 120, 120, 121, 121] + [122] * 3 + [123] * 4 + [124] * 4 + [125] * 5 + [126] * 9 + [127] * 49
HARDSWISH_TFLM = [-20] * 59 + [-21, -21, -22, -23, -23, -24, -24, -25, -25, -26, -26, -27, -27] + [-28] * 3 + [
    -29] * 3 + [-30] * 3 + [-31] * 4 + [-32] * 22 + [-31] * 4 + [-30] * 3 + [-29] * 3 + [-28] * 3 + [
    -27, -27, -26, -26, -25, -25, -24, -24, -23, -23, -22, -21, -21, -20, -19, -19, -18, -17, -16, -16, -15, -14, -13,
    -12, -12, -11, -10, -9, -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 16, 17, 18, 20,
    21, 22, 24, 25, 27, 28, 29, 31, 32, 34, 36, 37, 39, 40, 42, 44, 45, 47, 49, 50, 52, 54, 56, 57, 59, 61, 63, 65,
    66, 68, 70, 72, 74, 76, 78, 80, 81, 83, 84, 85, 87, 88, 89, 91, 92, 93, 95, 96, 97, 99, 100, 101, 103, 104, 105,
    107, 108, 109, 111, 112, 113, 115, 116, 117, 119, 120, 121, 123, 124, 125] + [127] * 13


def sigmoid_oracle(x, a, fixed_point_fn, out_bits, out_zp):
    """reference_integer_ops::Logistic / Tanh, int8 (gemmlowp's function from quant.py)."""
    def one(v):
        d = v - a["in_zp"]
        if d <= -a["range_radius"]:
            return -128
        if d >= a["range_radius"]:
            return 127
        raw = int(fixed_point_fn(mbqm(d, a["multiplier"], a["shift"]), 4))
        return clamp(rdbpot(raw, 31 - out_bits) + out_zp, -128, 127)
    return [one(v) for v in x.tolist()]


@pytest.mark.parametrize("op,s_in,zp_in", [("qlogistic", 0.05, 10), ("qtanh", 0.03, -7)])
def test_qlogistic_qtanh_match_tflite_micro(op, s_in, zp_in):
    attrs = Q.logistic_params(s_in, zp_in)
    y = run_q(op, ALL_INT8, **attrs)
    assert y.tolist() == (LOGISTIC_TFLM if op == "qlogistic" else TANH_TFLM)
    fn, bits, zp = (Q.logistic, 8, -128) if op == "qlogistic" else (Q.tanh, 7, 0)
    assert y.tolist() == sigmoid_oracle(ALL_INT8, attrs, fn, bits, zp)


@pytest.mark.parametrize("op", ["qlogistic", "qtanh"])
@pytest.mark.parametrize("s_in,zp_in", [(0.1, 0), (0.01, -100), (0.3, 50)])
def test_qlogistic_qtanh(op, s_in, zp_in):
    attrs = Q.logistic_params(s_in, zp_in)
    y = run_q(op, ALL_INT8.reshape(4, 64), **attrs).reshape(-1)
    fn, bits, zp, scale, f = (Q.logistic, 8, -128, 1 / 256, "sigmoid") if op == "qlogistic" else \
        (Q.tanh, 7, 0, 1 / 128, "tanh")
    assert y.tolist() == sigmoid_oracle(ALL_INT8, attrs, fn, bits, zp)
    close_to_float(y, evaluate(f, [(ALL_INT8.astype(np.float32) - zp_in) * s_in], {})[0], scale, zp)


def hardswish_oracle(x, a):
    """reference_ops::HardSwish (int8), in its 16-bit fixed point."""
    def srdhm16(p, q):
        if p == q == -32768:
            return 32767
        ab = p * q
        return c_div(ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14)), 1 << 15)

    def sat_shl16(v, n):
        return clamp(v * (1 << n), -32768, 32767)

    def one(v):
        hires = (v - a["in_zp"]) * 128
        pre_out = srdhm16(hires, a["out_multiplier"])
        relu, e = hires, a["relu_shift"]
        if e > 0:
            relu = sat_shl16(relu, e - 1)
        relu = srdhm16(relu, a["relu_multiplier"])
        if e > 0:
            relu = sat_shl16(relu, 1)
        if e < 0:
            relu = rdbpot(relu, -e)
        relu = (relu + (1 << 15)) >> 1
        ab = relu * pre_out
        out = 32767 if relu == pre_out == -32768 else c_div(ab, 1 << 15)
        out = (rdbpot(out, -a["out_shift"]) + a["out_zp"] + 32768) % 65536 - 32768
        return clamp(out, -128, 127)
    return [one(v) for v in x.tolist()]


def test_qhardswish_matches_tflite_micro():
    attrs = Q.hardswish_params(0.04, 5, 0.03, -20)
    y = run_q("qhardswish", ALL_INT8, **attrs)
    assert y.tolist() == HARDSWISH_TFLM
    assert y.tolist() == hardswish_oracle(ALL_INT8, attrs)


@pytest.mark.parametrize("s_in,zp_in,s_out,zp_out", [(0.1, 0, 0.05, -30), (0.005, 40, 0.004, 0), (0.02, -50, 0.03, 10),
                                                     (0.2, 10, 0.5, -100)])
def test_qhardswish(s_in, zp_in, s_out, zp_out):
    attrs = Q.hardswish_params(s_in, zp_in, s_out, zp_out)
    assert attrs["relu_shift"] != 0  # both shift directions of the relu-ish factor are covered
    y = run_q("qhardswish", ALL_INT8, **attrs)
    assert y.tolist() == hardswish_oracle(ALL_INT8, attrs)
    close_to_float(y, evaluate("hardswish", [(ALL_INT8.astype(np.float32) - zp_in) * s_in], {})[0], s_out, zp_out)


@pytest.mark.parametrize("alpha,i16", [(0.1, False), (-0.7, False), (2.5, False), (0.2, True)])
def test_qleaky_relu(alpha, i16):
    dt = np.int16 if i16 else np.int8
    x = np.arange(-128, 128, dtype=dt) * (200 if i16 else 1)
    s_in, zp_in, s_out, zp_out = (1 / 1024, 0, 1 / 700, 0) if i16 else (0.05, -8, 0.04, 12)
    attrs = Q.leaky_relu_params(s_in, zp_in, s_out, zp_out, alpha)
    y = run_q("qleaky_relu", x, **attrs)

    def one(v):
        d = v - zp_in
        if d >= 0:
            return clamp(zp_out + mbqm(d, attrs["id_multiplier"], attrs["id_shift"]), *dtype_range(dt))
        scaled = mbqm(d, abs(attrs["alpha_multiplier"]), attrs["alpha_shift"])
        return clamp(zp_out + (-scaled if attrs["alpha_multiplier"] < 0 else scaled), *dtype_range(dt))
    assert y.tolist() == [one(v) for v in x.tolist()]
    real = evaluate("leaky_relu", [(x.astype(np.float32) - zp_in) * s_in], dict(alpha=alpha))[0]
    close_to_float(y, real, s_out, zp_out)


@pytest.mark.parametrize("s_in,zp_in,s_a,zp_a,s_out,zp_out", [(0.05, -8, 0.01, 20, 0.04, 12),
                                                              (0.02, 100, 0.004, -128, 0.01, -120),
                                                              (0.1, 0, 0.5, 0, 0.02, 0)])
def test_qprelu(rng, s_in, zp_in, s_a, zp_a, s_out, zp_out):
    """Every int8 input against each of 4 alphas (broadcast per channel), element by element as
    TFLite's reference kernel: the identity multiplier at or above the zero point, the alpha one below."""
    x = np.tile(ALL_INT8.reshape(1, 256, 1), (2, 1, 4))
    alpha = rng.integers(-128, 128, 4).astype(np.int8)
    attrs = Q.prelu_params(s_in, zp_in, s_a, zp_a, s_out, zp_out)
    assert attrs["id_shift"] != attrs["alpha_shift"]
    y = run_q("qprelu", x, alpha, **attrs)

    def one(v, a):
        d = v - zp_in
        r = mbqm(d, attrs["id_multiplier"], attrs["id_shift"]) if d >= 0 else \
            mbqm(d * (a - zp_a), attrs["alpha_multiplier"], attrs["alpha_shift"])
        return clamp(r + zp_out, -128, 127)
    assert y.tolist() == [[[one(v, a) for v, a in zip(row, alpha.tolist())] for row in b] for b in x.tolist()]
    real = evaluate("prelu", [(x.astype(np.float32) - zp_in) * s_in, (alpha.astype(np.float32) - zp_a) * s_a], {})[0]
    close_to_float(y, real, s_out, zp_out)


@pytest.mark.parametrize("in_dtype,out_dtype", [(np.int8, "i8"), (np.int8, "i16"), (np.int16, "i8"), (np.int8, "u8")])
def test_requantize(rng, in_dtype, out_dtype):
    x = rng.integers(*dtype_range(in_dtype), 50, endpoint=True).astype(in_dtype)
    s_in, zp_in = (0.02, -9) if in_dtype == np.int8 else (1 / 2048, 0)
    s_out, zp_out = {"i8": (0.03, 17), "i16": (1 / 4096, 0), "u8": (0.015, 128)}[out_dtype]
    attrs = Q.requantize_params(s_in, zp_in, s_out, zp_out, out_dtype)
    y = run_q("requantize", x, **attrs)
    assert y.dtype == DType(out_dtype).np
    lo, hi = dtype_range(DType(out_dtype).np)
    assert y.tolist() == [clamp(mbqm(v - zp_in, attrs["multiplier"][0], attrs["shift"][0]) + zp_out, lo, hi)
                          for v in x.tolist()]
    close_to_float(y, (x.astype(np.float64) - zp_in) * s_in, s_out, zp_out)


def test_int8_only_kernels_refuse_int16():
    with pytest.raises(UsageError, match="qlog_softmax is defined for int8"):
        evaluate("qlog_softmax", [np.zeros(4, np.int16)], dict(multiplier=1 << 30, shift=20, diff_min=-100,
                                                                reverse_multiplier=1 << 30, reverse_shift=-1))


# ---------------------------------------------------------------- float ops that run on integers unchanged

@pytest.mark.parametrize("dt", [np.int8, np.int16])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_max_pool_pads_with_the_lowest_value(rng, dt, layout):
    x = np.full((1, 2, 5, 5), np.iinfo(dt).min + 1, dt)
    x[0, 1] = rng.integers(*dtype_range(dt), (5, 5))
    attrs = dict(kernel=[3, 3], stride=[2, 2], pads=[1, 1, 1, 1], ceil_mode=True, layout=layout)
    y = run_q("max_pool2d", nhwc(x) if layout == "NHWC" else x, **attrs)
    y = nchw(y) if layout == "NHWC" else y
    assert y.dtype == dt
    expected = [[[max(int(x[0, c, i, j]) for i in range(max(2 * oy - 1, 0), min(2 * oy + 2, 5))
                      for j in range(max(2 * ox - 1, 0), min(2 * ox + 2, 5))) for ox in range(3)] for oy in range(3)]
                for c in range(2)]
    assert y[0].tolist() == expected


def test_data_movement_keeps_integer_dtypes(rng):
    x = rng.integers(-128, 128, (2, 3, 4, 5)).astype(np.int8)
    cases = [("reshape", dict(shape=[6, 20])), ("transpose", dict(perm=[0, 2, 3, 1])),
             ("slice", dict(axes=[1, 3], starts=[1, 0], ends=[3, 5], steps=[1, 2])),
             ("pad", dict(pads=[0, 1, 0, 2, 0, 0, 1, 0], value=-7)),
             ("resize", dict(size=[7, 3], layout="NCHW")), ("clamp", dict(min=-5, max=100)),
             ("clamp", dict(min=0, max=math.inf))]
    for op, attrs in cases:
        (y,) = evaluate(op, [x], attrs)
        (f,) = evaluate(op, [x.astype(np.float32)], attrs)
        assert y.dtype == np.int8, op
        np.testing.assert_array_equal(y, f)
    assert evaluate("clamp", [x], dict(min=-1000, max=1000))[0].tolist() == x.tolist()
    (y,) = evaluate("clamp", [x], dict(min=-math.inf, max=6.5))  # real bounds: the integers inside them
    assert y.dtype == np.int8 and y.max() == 6 and y.min() == x.min()
    assert evaluate("pad", [x], dict(pads=[0, 0, 0, 1, 0, 0, 0, 0], value=-7))[0][..., 0].min() == -7
    parts = evaluate("split", [x], dict(axis=2, sizes=[1, 3]))
    assert [p.dtype for p in parts] == [np.int8, np.int8]
    assert evaluate("concat", parts, dict(axis=2))[0].tolist() == x.tolist()


# ---------------------------------------------------------------- graphs, the verifier, coverage

def quantized(shape, scale, zp, dtype=DType.i8):
    return TensorType(shape, dtype, QuantParams([scale], [zp]))


def test_integer_graph_runs_and_verifier_checks_zero_points_and_multipliers(rng):
    g = Graph("q")
    x = g.add_input("x", quantized((1, 3, 4, 4), 0.05, 3))
    w = g.const(rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8), "w")
    conv = Q.conv_params(0.05, [0.01] * 4, 0.1, 3, -2, "relu")
    h = g.op("qconv2d", [x, w], dict(stride=[1, 1], pads=[1, 1, 1, 1], dilation=[1, 1], **conv),
             out_types=[quantized((1, 4, 4, 4), 0.1, -2)])
    r = g.op("requantize", [h], Q.requantize_params(0.1, -2, 0.2, 0), out_types=[quantized((1, 4, 4, 4), 0.2, 0)])
    g.outputs = [g.op("qsoftmax", [r], dict(axis=1, **Q.softmax_params(1.0, 0.2)),
                      out_types=[quantized((1, 4, 4, 4), 1 / 256, -128)])]
    verify(g)
    (y,) = run(g, rng.integers(-128, 128, (1, 3, 4, 4)).astype(np.int8))
    assert y.dtype == np.int8 and y.shape == (1, 4, 4, 4)
    h.producer.attrs["out_zp"] = 0
    with pytest.raises(VerifyError, match="out_zp=0 but %.* has zero point \\[-2\\]"):
        verify(g)
    h.producer.attrs["out_zp"] = -2
    r.producer.attrs["in_zp"] = 7
    with pytest.raises(VerifyError, match="in_zp=7"):
        verify(g)
    r.producer.attrs["in_zp"] = -2
    r.type = quantized((1, 4, 4, 4), 0.25, 0)  # a new scale without new kernel parameters
    with pytest.raises(VerifyError, match=r"multiplier=\[\d+\] but the scales of its operands and result give"):
        verify(g)


def test_requantize_result_type_is_its_dtype():
    g = Graph()
    x = g.add_input("x", quantized((4,), 0.1, 0))
    y = g.op("requantize", [x], Q.requantize_params(0.1, 0, 0.001, 0, "i16"),
             out_types=[quantized((4,), 0.001, 0, DType.i16)])
    g.outputs = [y]
    verify(g)
    y.type = quantized((4,), 0.001, 0)
    with pytest.raises(VerifyError, match="dtype i8, requantize gives i16"):
        verify(g)


def test_every_integer_op_is_tested_here():
    assert CHECKED_HERE == ops.with_tag("integer")
