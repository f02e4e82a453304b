"""The exact integer ONNX export: onnxruntime running the exported file must reproduce the
interpreter bit for bit, op by op (extreme values, zero points at the ends of the range, shifts
of every sign, per-channel parameters, both layouts) and on every zoo model end to end."""
import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import mcuforge
from mcuforge import zoo
from mcuforge.backends.onnx import integer
from mcuforge.backends.onnx.emit import Emitter
from mcuforge.backends.onnx.integer import I64, INTEGER_LOWERINGS, to_integer_onnx
from mcuforge.compiler.cli import main
from mcuforge.errors import UnsupportedOpError
from mcuforge.ir import interpreter, ops, quant
from mcuforge.ir.graph import Graph
from mcuforge.ir.types import DType, TensorType

RNG = np.random.default_rng(0)
I8, I16 = np.int8, np.int16


def ints(shape, dtype=I8, lo=None, hi=None):
    """Random integers of `dtype` (or in [lo, hi]) whose first and last elements are the extremes."""
    info = np.iinfo(dtype)
    lo, hi = info.min if lo is None else lo, info.max if hi is None else hi
    a = RNG.integers(lo, hi + 1, shape)
    a.flat[0], a.flat[-1] = lo, hi
    return a.astype(dtype)


def multipliers(n):
    return [int(m) for m in RNG.integers(1 << 30, 1 << 31, n)]


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def check(g: Graph, *inputs):
    """onnxruntime on the integer export == the interpreter, exactly (values and dtypes)."""
    theirs = session(to_integer_onnx(g)).run(None, {v.name: a for v, a in zip(g.inputs, inputs)})
    ours = interpreter.run(g, *inputs)
    for t, o in zip(theirs, ours, strict=True):
        assert t.dtype == o.dtype
        np.testing.assert_array_equal(t, o)


def one_op(op, x, attrs, *consts, out_dtype=None, more=()):
    """A graph of one `op` on input array `x` (and input arrays `more`), constants `consts`."""
    g = Graph("g")
    vs = [g.add_input(f"x{i}", TensorType(a.shape, DType.from_numpy(a.dtype))) for i, a in enumerate((x, *more))]
    out_types = None
    if out_dtype is not None:
        shapes = ops.get(op).shape([v.shape for v in vs] + [c.shape for c in consts], ops.get(op).full_attrs(attrs))
        out_types = [TensorType(s, DType.from_numpy(np.dtype(out_dtype))) for s in shapes]
    y = g.op(op, [*vs, *(g.const(c) for c in consts)], attrs, out_types=out_types)
    g.outputs = list(y) if isinstance(y, tuple) else [y]
    return g


def cl(a):
    """Channel-first array -> channel-last (OIHW weights -> OHWI)."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


# ---------------------------------------------------------------- convolution and dense

CONVS = {  # name: (dtype, in_zp, x shape, w shape, groups, stride, pads, dilation, bias dtype)
    "int8": (I8, -128, (2, 4, 7, 6), (6, 4, 3, 3), 1, [2, 1], [1, 0, 1, 2], [1, 2], np.int32),
    "int8-zp127-grouped": (I8, 127, (1, 4, 6, 6), (6, 2, 3, 2), 2, [1, 1], [1, 1, 1, 0], [1, 1], np.int32),
    "int8-depthwise": (I8, 5, (1, 3, 5, 5), (6, 1, 3, 3), 3, [1, 1], [1, 1, 1, 1], [1, 1], None),
    "int16x8": (I16, 0, (1, 3, 6, 5), (4, 3, 3, 3), 1, [1, 1], [1, 1, 1, 1], [1, 1], np.int64),
    "int16x8-bias32": (I16, -5, (1, 3, 5, 5), (4, 3, 2, 2), 1, [1, 1], [0, 0, 1, 1], [1, 1], np.int32),
}


@pytest.mark.parametrize("last", [False, True], ids=["NCHW", "NHWC"])
@pytest.mark.parametrize("name", CONVS)
def test_qconv2d(name, last):
    dtype, zp, xs, ws, groups, stride, pads, dil, bdt = CONVS[name]
    x, w = ints(xs, dtype), ints(ws)
    b = [RNG.integers(-5000, 5000, ws[0]).astype(bdt)] if bdt else []
    o = ws[0]
    shifts = [[-12, -1, 0, 1, -20, -31][i % 6] for i in range(o)] if dtype == I8 else [-5] * o
    attrs = dict(stride=stride, pads=pads, dilation=dil, groups=groups, layout="NHWC" if last else "NCHW",
                 in_zp=zp, out_zp=-3, multiplier=multipliers(o), shift=shifts, act_min=-100 if dtype == I8 else -30000,
                 act_max=127 if dtype == I8 else 32767)
    check(one_op("qconv2d", cl(x) if last else x, attrs, cl(w) if last else w, *b), cl(x) if last else x)


@pytest.mark.parametrize("dtype", [I8, I16])
def test_qconv2d_beyond_float32_exact_integers(dtype):
    """Partial sums up to 2048 * 255 * 127 (int8; 2048 * 32768 * 127 for int16) > 2^24 whose total
    is a small odd or even number: one float32 rounding anywhere would change the output."""
    low = int(np.iinfo(dtype).min)
    x = ints((1, 4096, 2, 2), dtype, low, low + 300 if dtype == I16 else low + 20)
    x[:, 2048:] = x[:, :2048]  # what the first half adds, the second subtracts, but for 12 steps
    x[0, 2048 + RNG.integers(0, 2048, 12), RNG.integers(0, 2, 12), RNG.integers(0, 2, 12)] += 1
    w = np.full((2, 4096, 1, 1), 127, I8)
    w[:, 2048:] = -127
    w[1, ::2] = -w[1, ::2]
    attrs = dict(stride=[1, 1], pads=[0, 0, 0, 0], dilation=[1, 1], in_zp=127 if dtype == I8 else 0, out_zp=0,
                 multiplier=[1 << 30] * 2, shift=[0, -11], act_min=low, act_max=int(np.iinfo(dtype).max))
    g = one_op("qconv2d", x, attrs, w)
    assert sum(n.op_type == "Conv" for n in to_integer_onnx(g).graph.node) > 2  # split
    check(g, x)


def stored(model, dtype=None) -> int:
    """Bytes of `model`'s initializers (of ONNX `dtype` only, if given)."""
    return sum(len(t.raw_data) for t in model.graph.initializer if dtype in (None, t.data_type))


SPLITS = {  # name: (op, dtype, x shape, channel-first w shape, groups, pieces stored as)
    "grouped": ("qconv2d", I8, (1, 300, 4, 4), (4, 150, 3, 3), 2, "input channels"),
    "grouped-int16": ("qconv2d", I16, (1, 300, 4, 4), (4, 150, 3, 3), 2, "input channels"),
    "transposed-grouped": ("qconv_transpose2d", I8, (1, 2200, 2, 2), (2200, 1, 3, 3), 2, "input channels"),
    "2000-taps": ("qconv1d", I8, (1, 1, 2100), (2, 1, 2000), 1, "full-size"),
    "transposed-1100-taps": ("qconv_transpose2d", I8, (1, 1, 1, 1200), (1, 2, 1, 1100), 1,
                             "full-size"),
}


@pytest.mark.parametrize("name", SPLITS)
def test_qconv_split_beyond_float32_exact_integers(name):
    """Half of each group's input channels (of the taps) add 127 * (x - zp), the other half
    subtract it from equal values: partial sums beyond 2^24 (in onnxruntime's order too) for
    totals of 0 or +-127 (two values moved by 1), halved (an odd total rounds away from 0), so
    one float32 rounding would change the output. The pieces are runs of each group's input
    channels, storing the weights once, or, where one input channel's taps alone pass 2^24,
    full-size tensors zero outside their run of taps."""
    op, dtype, xs, ws, groups, kind = SPLITS[name]
    low = int(np.iinfo(dtype).min)
    if dtype == I16:  # low bytes 230..254 (high byte -128)
        x = ints(xs, dtype, low + 230, low + 254)
    else:
        x = ints(xs, dtype, low, low + 20)
    w = np.full(ws, 127, I8)
    if kind == "full-size":  # one input channel
        half = ws[-1] // 2
        w[..., half:] = -127
        x[...] = np.resize(x[..., :half], x.shape)  # periodic
    else:
        per_group = ws[0] // groups if op == "qconv_transpose2d" else ws[1]
        second = np.arange(per_group) >= per_group // 2
        if op == "qconv_transpose2d":
            w[np.tile(second, groups)] = -127
        else:
            w[:, second] = -127
            w[1::2] = -w[1::2]
        x[:, np.tile(second, groups)] = x[:, np.tile(~second, groups)]
    x.flat[RNG.integers(0, x.size, 2)] += 1
    o = ws[1] * groups if op == "qconv_transpose2d" else ws[0]
    nd = len(ws) - 2
    attrs = dict(stride=[1] * nd, pads=[0] * 2 * nd, dilation=[1] * nd, in_zp=127 if dtype == I8 else 0, out_zp=0,
                 multiplier=[1 << 30] * o, shift=[0] * o, act_min=low, act_max=int(np.iinfo(dtype).max))
    g = one_op(op, x, attrs | (dict(groups=groups) if nd == 2 else {}), w)
    model = to_integer_onnx(g)
    convs = sum(n.op_type in ("Conv", "ConvTranspose") for n in model.graph.node)
    assert convs > (2 if dtype == I16 else 1)  # split (16-bit values: into two bytes, each into runs)
    assert (stored(model, onnx.TensorProto.INT8) == w.nbytes) == (kind == "input channels")
    check(g, x)


@pytest.mark.parametrize("last", [False, True], ids=["NCW", "NWC"])
def test_qconv1d(last):
    x, w, b = ints((2, 4, 9)), ints((5, 4, 3)), RNG.integers(-900, 900, 5).astype(np.int32)
    attrs = dict(stride=[2], pads=[1, 2], dilation=[2], layout="NWC" if last else "NCW", in_zp=17, out_zp=4,
                 multiplier=multipliers(5), shift=[-10, -9, -8, -11, -7], act_min=-128, act_max=127)
    check(one_op("qconv1d", cl(x) if last else x, attrs, cl(w) if last else w, b), cl(x) if last else x)


@pytest.mark.parametrize("last", [False, True], ids=["NCHW", "NHWC"])
def test_qconv_transpose2d(last):
    x, w, b = ints((1, 4, 4, 3)), ints((4, 3, 3, 2)), RNG.integers(-900, 900, 6).astype(np.int32)
    attrs = dict(stride=[2, 2], pads=[1, 0, 0, 1], dilation=[1, 1], groups=2, output_padding=[1, 0],
                 layout="NHWC" if last else "NCHW", in_zp=-20, out_zp=1, multiplier=multipliers(6),
                 shift=[-9, -10, -8, 0, -9, -12], act_min=0, act_max=127)
    wl = np.ascontiguousarray(np.moveaxis(w, 0, -1)) if last else w  # (O/g, kH, kW, I)
    check(one_op("qconv_transpose2d", cl(x) if last else x, attrs, wl, b), cl(x) if last else x)


@pytest.mark.parametrize("dtype,per_channel", [(I8, True), (I8, False), (I16, True)])
def test_qlinear(dtype, per_channel):
    x, w = ints((2, 3, 20), dtype), ints((7, 20))
    b = RNG.integers(-9000, 9000, 7).astype(np.int64 if dtype == I16 else np.int32)
    n = 7 if per_channel else 1
    info = np.iinfo(dtype)
    attrs = dict(in_zp=-128 if dtype == I8 else 0, out_zp=9, multiplier=multipliers(n),
                 shift=[-9, -10, 1, 0, -3, -8, -31][:n] if dtype == I8 else [-14] * n,
                 act_min=int(info.min), act_max=int(info.max))
    check(one_op("qlinear", x, attrs, w, b), x)


# ---------------------------------------------------------------- elementwise

@pytest.mark.parametrize("op", ["qadd", "qsub", "qmul"])
@pytest.mark.parametrize("dtype", [I8, I16])
def test_binary(op, dtype):
    d = "i16" if dtype == I16 else "i8"
    za, zb, zo = (0, 0, 0) if dtype == I16 else (127, -128, -5)
    if op == "qmul":
        attrs = quant.mul_params(0.05, za, 0.02, zb, 0.001, zo, "none", d)
    else:
        attrs = quant.add_params(0.05, za, 0.02, zb, 0.06, zo, "relu", d)
    a, b = ints((2, 3, 4, 5), dtype), ints((1, 3, 1, 5), dtype)
    check(one_op(op, a, attrs, more=(b,)), a, b)


@pytest.mark.parametrize("src,dst,params", [
    (I8, I8, (0.1, 3, 0.05, -2)), (I8, I16, (0.1, -128, 0.0001, 0)), (I16, I8, (0.001, 0, 0.2, 127)),
    (I8, I8, (0.1, 127, 0.7, -128))])
def test_requantize(src, dst, params):
    x = ints((3, 50), src)
    attrs = quant.requantize_params(*params, "i16" if dst == I16 else "i8")
    assert attrs["shift"][0] != 0 or params[0] == params[2]
    check(one_op("requantize", x, attrs), x)


@pytest.mark.parametrize("op,attrs", [
    ("qlogistic", quant.logistic_params(0.1, -3)), ("qtanh", quant.tanh_params(0.05, 10)),
    ("qhardswish", quant.hardswish_params(0.05, 5, 0.03, -10)),
    ("qleaky_relu", quant.leaky_relu_params(0.05, 5, 0.04, -3, 0.1)),
    ("qleaky_relu", quant.leaky_relu_params(0.05, 127, 0.04, -128, -0.3))])
def test_table_ops(op, attrs):
    x = np.arange(-128, 128, dtype=I8).reshape(2, 128)
    check(one_op(op, x, attrs), x)


@pytest.mark.parametrize("dynamic", [False, True])
def test_qprelu(dynamic):
    """Every int8 input against constant per-channel alphas, or against a computed alpha."""
    x = np.tile(np.arange(-128, 128, dtype=I8).reshape(256, 1), (1, 6))
    alpha = ints((6,), I8)
    attrs = quant.prelu_params(0.05, 7, 0.01, -20, 0.04, -3)
    g = one_op("qprelu", x, attrs, more=(alpha,)) if dynamic else one_op("qprelu", x, attrs, alpha)
    check(g, *((x, alpha) if dynamic else (x,)))


def test_qleaky_relu_int16():
    x = ints((4, 300), I16)
    check(one_op("qleaky_relu", x, quant.leaky_relu_params(0.001, 0, 0.002, 0, 0.2)), x)


# ---------------------------------------------------------------- pooling and reduction

@pytest.mark.parametrize("ceil", [False, True])
@pytest.mark.parametrize("last", [False, True], ids=["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [I8, I16])
def test_qavg_pool2d(ceil, last, dtype):
    x = ints((1, 3, 6, 7), dtype)
    attrs = dict(kernel=[3, 2], stride=[2, 2], pads=[1, 0, 1, 1], ceil_mode=ceil, layout="NHWC" if last else "NCHW",
                 act_min=-100, act_max=int(np.iinfo(dtype).max))
    check(one_op("qavg_pool2d", cl(x) if last else x, attrs), cl(x) if last else x)


def test_qavg_pool1d():
    x = ints((2, 3, 10))
    check(one_op("qavg_pool1d", x, dict(kernel=[4], stride=[3], pads=[2, 1], ceil_mode=True, layout="NCW",
                                        act_min=-128, act_max=127)), x)


@pytest.mark.parametrize("axes,keepdims,dtype", [([2, 3], True, I8), ([-1], False, I8), ([1, 2], False, I16)])
def test_qmean(axes, keepdims, dtype):
    x = ints((2, 3, 4, 5), dtype)
    count = int(np.prod([x.shape[a] for a in axes]))
    attrs = dict(axes=axes, keepdims=keepdims, **quant.mean_params(0.1, 0 if dtype == I16 else 3, 0.05,
                                                                    0 if dtype == I16 else -4, count))
    check(one_op("qmean", x, attrs), x)


# ---------------------------------------------------------------- quantization at float edges

@pytest.mark.parametrize("dtype,per_axis", [("i8", False), ("i8", True), ("i16", False)])
def test_quantize(dtype, per_axis):
    scale, zp = ([0.1, 0.03, 0.7], [3, -128, 127]) if per_axis else ([0.05], [0 if dtype == "i16" else -7])
    x = (RNG.standard_normal((2, 3, 40)) * 10).astype(np.float32)
    x[0, :, :8] = (np.arange(-4, 4) + 0.5) * np.array(scale, np.float32).reshape(-1, 1)  # ties
    x[1, :, :4] = [[1e9, -1e9, 3e15, -3.5]] * 3  # saturating
    check(one_op("quantize", x, dict(scale=scale, zero_point=zp, axis=1, dtype=dtype)), x)


@pytest.mark.parametrize("per_axis", [False, True])
def test_dequantize(per_axis):
    scale, zp = ([0.1, 0.03, 0.7], [3, -128, 127]) if per_axis else ([0.0123], [-7])
    x = ints((2, 3, 40))
    check(one_op("dequantize", x, dict(scale=scale, zero_point=zp, axis=1)), x)


# ---------------------------------------------------------------- data movement on integers

@pytest.mark.parametrize("dtype", [I8, I16])
def test_data_movement(dtype):
    """max pooling, pad, nearest resize, clamp, concat, split, slice, transpose, reshape on integers."""
    g = Graph("g")
    x = g.add_input("x", TensorType((1, 5, 6, 4), DType.from_numpy(np.dtype(dtype))))
    p = g.op("max_pool2d", [x], dict(kernel=[2, 3], stride=[2, 2], pads=[1, 1, 0, 1], ceil_mode=True,
                                     layout="NHWC"))
    p = g.op("pad", [p], dict(pads=[0, 1, 0, 0, 0, 0, 2, 0], value=-7.0))
    r = g.op("resize", [x], dict(size=[7, 9], layout="NHWC"))
    c = g.op("clamp", [r], dict(min=-3.5, max=float("inf")))
    c2 = g.op("clamp", [x], dict(min=-1e9, max=100.2))
    a, b = g.op("split", [c2], dict(axis=3, sizes=[1, 3]))
    s = g.op("slice", [c], dict(axes=[1, 2], starts=[1, 0], ends=[6, 9], steps=[2, 3]))
    t = g.op("reshape", [g.op("transpose", [s], dict(perm=[0, 3, 1, 2]))], dict(shape=[4, 9]))
    g.outputs = [p, g.op("concat", [b, a], dict(axis=3)), t]
    check(g, ints((1, 5, 6, 4), dtype))


# ---------------------------------------------------------------- softmax

def rows(n, dtype=I8):
    """Rows of length n: random (first and last at the extremes), all equal, one maximum among
    minima, and random within the top 1/8 of the range."""
    info = np.iinfo(dtype)
    x = ints((4, n), dtype)
    x[1], x[2] = 7, info.min
    x[2, n // 2] = info.max
    x[3] = RNG.integers(info.max - (info.max >> 2), info.max + 1, n)
    return x


# int8 input scales: diff_min -15872 (every difference counts), -248 (the lowest 7 do not), -31, 0
@pytest.mark.parametrize("n", [1, 2, 10, 1000])
@pytest.mark.parametrize("scale", [0.001, 0.1, 0.5, 20.0])
@pytest.mark.parametrize("op", ["qsoftmax", "qlog_softmax"])
def test_softmax_int8(op, scale, n):
    x = rows(n)
    params = quant.softmax_params(1.0, scale) if op == "qsoftmax" else quant.log_softmax_params(scale)
    check(one_op(op, x, dict(axis=-1, **params)), x)


# int16 input scales: shifts -3, 3, 11 and 15 (the largest TFLite takes), differences saturating the table
@pytest.mark.parametrize("n", [1, 2, 10, 1000])
@pytest.mark.parametrize("scale", [1e-5, 0.001, 0.3, 4.0])
def test_softmax_int16(scale, n):
    x = rows(n, I16)
    check(one_op("qsoftmax", x, dict(axis=-1, **quant.softmax_params(1.0, scale, "i16"))), x)


@pytest.mark.parametrize("op,dtype,axis", [("qsoftmax", I8, 1), ("qsoftmax", I16, 0), ("qlog_softmax", I8, -3)])
def test_softmax_other_axis(op, dtype, axis):
    x = ints((3, 5, 4, 6), dtype)
    params = dict(qsoftmax=quant.softmax_params(1.0, 0.05, "i16" if dtype == I16 else "i8"),
                  qlog_softmax=quant.log_softmax_params(0.05))[op]
    check(one_op(op, x, dict(axis=axis, **params)), x)


@pytest.mark.parametrize("op,dtype,n", [("qsoftmax", I8, 4095), ("qlog_softmax", I8, 4095), ("qsoftmax", I16, 65536)])
def test_softmax_longest_rows(op, dtype, n):
    """Rows as long as the export takes (int8: 4095 * 2^19, the largest sum of exps, is just below
    2^31), all equal and random."""
    x = np.stack([np.full(n, 3, dtype), ints(n, dtype)])
    params = dict(qsoftmax=quant.softmax_params(1.0, 0.001, "i16" if dtype == I16 else "i8"),
                  qlog_softmax=quant.log_softmax_params(0.001))[op]
    check(one_op(op, x, dict(axis=-1, **params)), x)


@pytest.mark.parametrize("helper", ["get_reciprocal", "log"])
def test_row_function_emitters(helper):
    """integer.py's emitters of the per-row fixed-point functions == quant.py's helpers on sums of
    exps of every magnitude (Q12.19; the logarithm's domain starts at 1.0): every power of two,
    its neighbours and random values, below 2^31."""
    p = np.int64(1) << np.arange(31)
    x = np.unique(np.concatenate([p - 1, p, p + 1, RNG.integers(1, 1 << 31, 20000)]))
    x = x[(x >= (1 << 19 if helper == "log" else 1)) & (x < 1 << 31)]
    e = Emitter(Graph("g"), 17, INTEGER_LOWERINGS)
    if helper == "get_reciprocal":
        ours, outs = quant.get_reciprocal(x, 12), integer._get_reciprocal(e, "x", 12)
    else:
        ours = [quant.log_x_for_x_greater_than_or_equal_to_1(x, 12, 5)]
        outs = [integer._log_x_for_x_greater_than_or_equal_to_1(e, "x", 12, 5)]
    graph = onnx.helper.make_graph(e.nodes, "g", [onnx.helper.make_tensor_value_info("x", I64, x.shape)],
                                   [onnx.helper.make_tensor_value_info(o, I64, x.shape) for o in outs], e.inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    for t, o in zip(session(model).run(None, {"x": x}), ours, strict=True):
        np.testing.assert_array_equal(t, o)


@pytest.mark.parametrize("out,quantize", [("softmax", "int8"), ("log_softmax", "int8"), ("softmax", "int16x8")])
def test_model_ending_in_softmax_bit_exact(out, quantize, tmp_path):
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10),
                              torch.nn.Softmax(-1) if out == "softmax" else torch.nn.LogSoftmax(-1)).eval()
    calibration = [RNG.standard_normal((3, 16)).astype(np.float32) * 4 for _ in range(2)]
    art = mcuforge.compile(mlp, (torch.from_numpy(calibration[0]),), out_dir=tmp_path, quantize=quantize,
                           calibration=calibration, passes="float", onnx="integer")
    assert art.graph.count(f"q{out}") == 1
    v = art.graph.inputs[0]
    x = ints(v.shape, v.dtype.np)
    (theirs,) = session_file(art.files["onnx"]).run(None, {v.name: x})
    np.testing.assert_array_equal(theirs, art.run(x)[0])


# ---------------------------------------------------------------- coverage and errors

def test_every_integer_op_is_lowered():
    assert ops.with_tag("integer") <= set(INTEGER_LOWERINGS)


@pytest.mark.parametrize("op,x,attrs", [
    ("qsoftmax", ints((1, 4096)), dict(axis=-1, **quant.softmax_params(1.0, 0.1))),  # 4096 * 2^19 = 2^31
    ("qavg_pool2d", ints((1, 1, 23, 23), I16), dict(kernel=[23, 23], stride=[1, 1], pads=[0, 0, 0, 0], ceil_mode=False,
                                                    act_min=-32768, act_max=32767))], ids=["long-softmax", "avg-pool"])
def test_refused_op_names_it_and_leaves_no_output(op, x, attrs, tmp_path):
    g = one_op(op, x, attrs)
    with pytest.raises(UnsupportedOpError, match=rf"{op}(.|\n)*onnx='qdq'"):
        to_integer_onnx(g)
    out = tmp_path / "out"
    with pytest.raises(UnsupportedOpError, match=op):
        mcuforge.compile(g, emit=("onnx",), out_dir=out, passes="none", onnx="integer")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_float_model_exports_the_float_graph(tmp_path):
    model, inputs = zoo.get("tiny_cnn")
    files = [mcuforge.compile(model, inputs, out_dir=tmp_path / f, onnx=f).files["onnx"] for f in ("qdq", "integer")]
    assert files[0].read_bytes() == files[1].read_bytes()


# ---------------------------------------------------------------- zoo models end to end

def samples(name, n):
    shape = zoo.get(name)[1][0].shape
    rng = np.random.default_rng(1)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


@functools.cache
def compiled(name, tmp, deploy):
    """The zoo model quantized to int8 (int8 io), exported in the integer flavour by `compile`;
    `deploy` runs the channel-last deploy pipeline."""
    return mcuforge.compile(f"zoo:{name}", out_dir=f"{tmp}/{name}", quantize="int8", calibration=samples(name, 1),
                            passes="float,to-nhwc" if deploy else "float", onnx="integer")


def zoo_compiled(name, tmp_path_factory):
    """`compiled` on every other zoo model with the deploy pipeline."""
    return compiled(name, str(tmp_path_factory.getbasetemp()), zoo.names().index(name) % 2 == 1)


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_bit_exact(name, tmp_path_factory):
    art = zoo_compiled(name, tmp_path_factory)
    x = ints(art.graph.inputs[0].shape)
    theirs = session_file(art.files["onnx"]).run(None, {art.graph.inputs[0].name: x})
    for t, o in zip(theirs, art.run(x), strict=True):
        np.testing.assert_array_equal(t, o)


@pytest.mark.parametrize("name", ["resnet8", "mobilenet_v2", "resnet18"])
def test_zoo_model_stores_its_weights_about_once(name, tmp_path_factory):
    """The file (run bit-exactly by test_zoo_model_bit_exact) holds within 10% of the model's int8
    weight bytes: no convolution stores its weights twice, per-channel parameters are narrow."""
    art = zoo_compiled(name, tmp_path_factory)
    weights = sum(v.data.nbytes for v in art.graph.values() if v.is_const and v.dtype.np == I8)
    assert weights <= stored(onnx.load(art.files["onnx"])) <= 1.1 * weights


@pytest.mark.parametrize("options", [dict(quantize="int16x8"), dict(quantize="int8", weights="kmeans4"),
                                     dict(quantize="int8", keep_float=("features_2_0",), io="float")],
                         ids=["int16x8", "kmeans4-weights", "float-island"])
def test_quantization_variants_bit_exact(options, tmp_path):
    art = mcuforge.compile("zoo:tiny_cnn", out_dir=tmp_path, calibration=samples("tiny_cnn", 2),
                           passes="float,to-nhwc", onnx="integer", **options)
    v = art.graph.inputs[0]
    x = ints(v.shape, v.dtype.np) if v.dtype.np.kind == "i" else samples("tiny_cnn", 1)[0]
    (theirs,) = session_file(art.files["onnx"]).run(None, {v.name: x})
    np.testing.assert_array_equal(theirs, art.run(x)[0])


def session_file(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_cli_onnx_format_integer(tmp_path, tmp_path_factory):
    np.savez(tmp_path / "calib.npz", np.stack(samples("tiny_cnn", 1)))
    assert main(["compile", "zoo:tiny_cnn", "-o", str(tmp_path / "out"), "--quantize", "int8", "--passes", "float",
                 "--calibration", str(tmp_path / "calib.npz"), "--onnx-format", "integer", "-q"]) == 0
    art = compiled("tiny_cnn", str(tmp_path_factory.getbasetemp()), False)
    x = ints(art.graph.inputs[0].shape)
    (theirs,) = session_file(tmp_path / "out" / "model.onnx").run(None, {art.graph.inputs[0].name: x})
    np.testing.assert_array_equal(theirs, art.run(x)[0])
