"""The reference interpreter against torch, op by op: one-node graphs over the interesting cases."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mcuforge.errors import ShapeError, UsageError
from mcuforge.ir import ops
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import IMPLS, evaluate, run
from mcuforge.ir.types import DType, TensorType
from mcuforge.ir.verify import verify

ACTS = {"none": lambda t: t, "relu": F.relu, "relu6": F.relu6}


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def randn(*shape):
    return torch.randn(shape)


def run_op(op, x, *operands, **attrs):
    """Results of a verified one-node graph: `x` its input, the other operands constants."""
    arrays = [t.numpy() for t in (x, *operands) if t is not None]
    g = Graph(op)
    inputs = [g.add_input("x", TensorType(arrays[0].shape))] + [g.const(a, "c") for a in arrays[1:]]
    out = g.op(op, inputs, attrs)
    g.outputs = list(out) if isinstance(out, tuple) else [out]
    verify(g)
    assert all(r.dtype == np.float32 for r in evaluate(op, arrays, attrs)), "float32 in, float32 out"
    return run(g, arrays[0])


def check(op, expected, x, *operands, rtol=1e-5, atol=1e-5, **attrs):
    got = run_op(op, x, *operands, **attrs)
    expected = list(expected) if isinstance(expected, (list, tuple)) else [expected]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e.numpy(), rtol=rtol, atol=atol)


def channels_last(t):
    return t.movedim(1, -1)


def torch_pad(pads):
    """F.pad's argument (last axis first) for ONNX-style spatial pads."""
    nd = len(pads) // 2
    return tuple(p for i in reversed(range(nd)) for p in (pads[i], pads[nd + i]))


# ---------------------------------------------------------------- convolution and dense

CONV2D = [  # in channels, out channels, kernel, stride, pads, dilation, groups, bias
    (4, 6, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1, True),
    (4, 6, (3, 2), [2, 2], [0, 0, 0, 0], [1, 1], 1, False),
    (4, 6, (3, 3), [1, 2], [2, 2, 2, 2], [2, 2], 1, True),
    (4, 6, (3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 2, True),
    (4, 8, (3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 4, True),  # depthwise, channel multiplier 2
    (4, 6, (3, 3), [1, 1], [0, 1, 2, 0], [1, 1], 1, True),  # asymmetric pads
    (4, 6, (1, 1), [1, 1], [0, 0, 0, 0], [1, 1], 1, False),
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("act", ops.FUSED_ACTS)
@pytest.mark.parametrize("c,o,k,stride,pads,dilation,groups,bias", CONV2D)
def test_conv2d(c, o, k, stride, pads, dilation, groups, bias, act, layout):
    x, w = randn(2, c, 7, 8), randn(o, c // groups, *k)
    b = randn(o) if bias else None
    expected = ACTS[act](F.conv2d(F.pad(x, torch_pad(pads)), w, b, stride, 0, dilation, groups))
    if layout == "NHWC":
        x, w, expected = channels_last(x), channels_last(w), channels_last(expected)
    check("conv2d", expected, x, w, b, stride=stride, pads=pads, dilation=dilation, groups=groups, act=act,
          layout=layout)


@pytest.mark.parametrize("layout", ["NCW", "NWC"])
@pytest.mark.parametrize("c,o,k,stride,pads,dilation,groups", [
    (3, 5, 3, [1], [1, 1], [1], 1),
    (4, 6, 3, [2], [2, 2], [2], 2),
    (4, 4, 5, [1], [2, 0], [1], 4),
])
def test_conv1d(c, o, k, stride, pads, dilation, groups, layout):
    x, w, b = randn(2, c, 11), randn(o, c // groups, k), randn(o)
    expected = F.relu(F.conv1d(F.pad(x, torch_pad(pads)), w, b, stride, 0, dilation, groups))
    if layout == "NWC":
        x, w, expected = channels_last(x), channels_last(w), channels_last(expected)
    check("conv1d", expected, x, w, b, stride=stride, pads=pads, dilation=dilation, groups=groups, act="relu",
          layout=layout)


CONV_T = [  # in channels, out channels, kernel, stride, pads, dilation, groups, output_padding
    (4, 6, (3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1, [1, 1]),
    (4, 6, (2, 3), [2, 1], [0, 0, 0, 0], [1, 1], 2, [0, 0]),
    (4, 6, (3, 3), [2, 2], [1, 1, 1, 1], [2, 2], 1, [1, 0]),
    (4, 6, (3, 3), [2, 2], [0, 1, 2, 0], [1, 1], 1, [0, 1]),  # asymmetric pads
    (4, 4, (4, 4), [2, 2], [1, 1, 1, 1], [1, 1], 4, [0, 0]),  # depthwise
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("act", ["none", "relu6"])
@pytest.mark.parametrize("c,o,k,stride,pads,dilation,groups,output_padding", CONV_T)
def test_conv_transpose2d(c, o, k, stride, pads, dilation, groups, output_padding, act, layout):
    x, w, b = randn(2, c, 5, 6), randn(c, o // groups, *k), randn(o)
    # torch pads symmetrically: transpose without padding, then crop each side by its pad
    full = F.conv_transpose2d(x, w, b, stride, 0, output_padding, groups, dilation)
    h, wd = full.shape[2:]
    expected = ACTS[act](full[:, :, pads[0]:h - pads[2], pads[1]:wd - pads[3]])
    if layout == "NHWC":
        x, w, expected = channels_last(x), w.movedim(0, -1), channels_last(expected)
    check("conv_transpose2d", expected, x, w, b, stride=stride, pads=pads, dilation=dilation, groups=groups,
          output_padding=output_padding, act=act, layout=layout)


@pytest.mark.parametrize("act", ops.FUSED_ACTS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias, act):
    x, w = randn(2, 3, 5), randn(4, 5)
    b = randn(4) if bias else None
    check("linear", ACTS[act](F.linear(x, w, b)), x, w, b, act=act)


@pytest.mark.parametrize("a,b", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)),
                                 ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul(a, b):
    x, y = randn(*a), randn(*b)
    check("matmul", torch.matmul(x, y), x, y)


@pytest.mark.parametrize("shape,axis", [((2, 3, 4, 5), 1), ((2, 4, 5, 3), -1), ((4, 3), 1)])
def test_batch_norm(shape, axis):
    x = randn(*shape)
    c = shape[axis]
    scale, bias, mean, var = randn(c), randn(c), randn(c), torch.rand(c) + 0.5
    xc = x.movedim(axis, 1)
    expected = F.batch_norm(xc, mean, var, scale, bias, training=False, eps=1e-3).movedim(1, axis)
    check("batch_norm", expected, x, scale, bias, mean, var, eps=1e-3, axis=axis)


@pytest.mark.parametrize("axis,affine", [(-1, True), (-2, True), (1, False)])
def test_layer_norm(axis, affine):
    x = randn(2, 3, 4, 5) * 3 + 1
    norm = x.shape[axis:]
    scale, bias = (randn(*norm), randn(*norm)) if affine else (None, None)
    check("layer_norm", F.layer_norm(x, norm, scale, bias, eps=1e-3), x, scale, bias, eps=1e-3, axis=axis)


# ---------------------------------------------------------------- elementwise

UNARY = [
    ("relu", {}, F.relu),
    ("relu6", {}, F.relu6),
    ("leaky_relu", {}, F.leaky_relu),
    ("leaky_relu", {"alpha": 0.2}, lambda t: F.leaky_relu(t, 0.2)),
    ("clamp", {"min": -0.5, "max": 1.5}, lambda t: t.clamp(-0.5, 1.5)),
    ("sigmoid", {}, torch.sigmoid),
    ("tanh", {}, torch.tanh),
    ("hardswish", {}, F.hardswish),
    ("hardsigmoid", {}, F.hardsigmoid),
    ("silu", {}, F.silu),
    ("gelu", {}, F.gelu),
    ("gelu", {"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh")),
    ("identity", {}, lambda t: t),
    ("dropout", {"p": 0.3}, lambda t: F.dropout(t, 0.3, training=False)),
    ("softmax", {}, lambda t: F.softmax(t, -1)),
    ("softmax", {"axis": 0}, lambda t: F.softmax(t, 0)),
    ("softmax", {"axis": -2}, lambda t: F.softmax(t, -2)),
    ("log_softmax", {}, lambda t: F.log_softmax(t, -1)),
    ("log_softmax", {"axis": 1}, lambda t: F.log_softmax(t, 1)),
    ("elu", {}, F.elu), ("elu", {"alpha": 0.3}, lambda t: F.elu(t, 0.3)), ("softplus", {}, F.softplus),
    *((op, {}, getattr(torch, op)) for op in ("exp", "log", "sqrt", "abs", "sign", "erf")),  # NaN where torch's is
]


@pytest.mark.parametrize("op,attrs,fn", UNARY, ids=[f"{op}{attrs}" for op, attrs, _ in UNARY])
def test_unary(op, attrs, fn):
    x = randn(3, 4, 5) * 4
    x[0, 0] = torch.tensor([-100.0, -3.0, 0.0, 3.0, 100.0])  # saturation, kinks and overflow
    check(op, fn(x), x, **attrs)


@pytest.mark.parametrize("alpha", [(3, 1, 1), (1,), (5,), ()])
def test_prelu(alpha):
    x, a = randn(2, 3, 4, 5), randn(*alpha)
    x[0, 0, 0, :3] = torch.tensor([0.0, -0.0, -1e-30])
    want = F.prelu(x, a.reshape(-1)) if alpha in ((3, 1, 1), (1,)) else torch.where(x >= 0, x, x * a)
    check("prelu", want, x, a)


BINARY = [("add", "none"), ("add", "relu"), ("sub", "relu6"), ("sub", "none"), ("mul", "relu"),
          ("mul", "none"), ("div", None), ("maximum", None), ("minimum", None), ("pow", None)]
TORCH_BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "maximum": torch.maximum,
                "minimum": torch.minimum, "pow": torch.pow}


@pytest.mark.parametrize("a,b", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)),
                                 ((4,), (2, 3, 4)), ((2, 3, 4), ())])
@pytest.mark.parametrize("op,act", BINARY)
def test_binary(op, act, a, b):
    x, y = randn(*a), randn(*b)
    y = y.sign() * (y.abs() + 0.5)  # keep divisors away from zero
    attrs = {} if act is None else {"act": act}
    check(op, ACTS[act or "none"](TORCH_BINARY[op](x, y)), x, y, **attrs)


# ---------------------------------------------------------------- pooling and reduction

def pool_reference(fn, x, pads, fill, **kw):
    """torch pool with ONNX pads: its own padding when symmetric, else F.pad with `fill` first."""
    nd = len(pads) // 2
    if pads[:nd] == pads[nd:]:
        return fn(x, padding=tuple(pads[:nd]), **kw)
    return fn(F.pad(x, torch_pad(pads), value=fill), padding=0, **kw)


MAXPOOL2D = [  # kernel, stride, pads, dilation, ceil_mode
    ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], False),
    ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], True),
    ([2, 3], [1, 2], [0, 1, 0, 1], [1, 1], True),
    ([3, 3], [2, 2], [1, 1, 1, 1], [2, 2], True),
    ([2, 2], [2, 2], [0, 1, 1, 0], [1, 1], False),  # asymmetric pads
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("kernel,stride,pads,dilation,ceil_mode", MAXPOOL2D)
def test_max_pool2d(kernel, stride, pads, dilation, ceil_mode, layout):
    x = randn(2, 3, 8, 9)
    expected = pool_reference(F.max_pool2d, x, pads, -torch.inf, kernel_size=kernel, stride=stride,
                              dilation=dilation, ceil_mode=ceil_mode)
    if layout == "NHWC":
        x, expected = channels_last(x), channels_last(expected)
    check("max_pool2d", expected, x, kernel=kernel, stride=stride, pads=pads, dilation=dilation,
          ceil_mode=ceil_mode, layout=layout)


AVGPOOL2D = [  # kernel, stride, pads, ceil_mode
    ([3, 3], [2, 2], [1, 1, 1, 1], False),
    ([3, 3], [2, 2], [1, 1, 1, 1], True),
    ([2, 2], [2, 2], [0, 0, 0, 0], True),
    ([3, 2], [1, 2], [1, 0, 1, 0], True),
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kernel,stride,pads,ceil_mode", AVGPOOL2D)
def test_avg_pool2d(kernel, stride, pads, ceil_mode, count_include_pad, layout):
    x = randn(2, 3, 8, 9)
    expected = pool_reference(F.avg_pool2d, x, pads, 0.0, kernel_size=kernel, stride=stride, ceil_mode=ceil_mode,
                              count_include_pad=count_include_pad)
    if layout == "NHWC":
        x, expected = channels_last(x), channels_last(expected)
    check("avg_pool2d", expected, x, kernel=kernel, stride=stride, pads=pads, ceil_mode=ceil_mode,
          count_include_pad=count_include_pad, layout=layout)


def test_avg_pool2d_asymmetric_pads_count_the_padding():
    x = randn(1, 2, 6, 7)
    expected = F.avg_pool2d(F.pad(x, (1, 0, 0, 2)), 3, 2)
    check("avg_pool2d", expected, x, kernel=[3, 3], stride=[2, 2], pads=[0, 1, 2, 0])


@pytest.mark.parametrize("layout", ["NCW", "NWC"])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool1d(ceil_mode, layout):
    x = randn(2, 3, 10)
    cl = channels_last if layout == "NWC" else (lambda t: t)
    common = dict(kernel=[3], stride=[2], pads=[1, 1], ceil_mode=ceil_mode, layout=layout)
    check("max_pool1d", cl(F.max_pool1d(x, 3, 2, 1, 2, ceil_mode)), cl(x), dilation=[2], **common)
    for cip in (True, False):
        check("avg_pool1d", cl(F.avg_pool1d(x, 3, 2, 1, ceil_mode, cip)), cl(x), count_include_pad=cip, **common)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("size", [(1, 1), (3, 4), (7, 10), (9, 4)])
def test_adaptive_avg_pool(size, layout):
    x = randn(2, 3, 7, 10)
    expected = F.adaptive_avg_pool2d(x, size)
    if layout == "NHWC":
        x, expected = channels_last(x), channels_last(expected)
    check("adaptive_avg_pool", expected, x, output_size=list(size), layout=layout)


@pytest.mark.parametrize("mode,fn", [("sum", torch.sum), ("max", torch.amax), ("min", torch.amin)])
@pytest.mark.parametrize("axes,keepdims", [([2, 3], True), ([-1], False), ([0, 2], False)])
def test_reduce(mode, fn, axes, keepdims):
    x = randn(2, 3, 4, 5)
    check("reduce", fn(x, axes, keepdims), x, axes=axes, keepdims=keepdims, mode=mode)


def test_tile():
    x = randn(2, 1, 3)
    check("tile", x.tile(3, 2, 1), x, repeats=[3, 2, 1])


@pytest.mark.parametrize("layout", ["NCW", "NWC"])
def test_adaptive_avg_pool1d(layout):
    x = randn(2, 3, 10)
    cl = channels_last if layout == "NWC" else (lambda t: t)
    check("adaptive_avg_pool", cl(F.adaptive_avg_pool1d(x, 4)), cl(x), output_size=[4], layout=layout)


@pytest.mark.parametrize("axes,keepdims", [([2, 3], True), ([-1], False), ([0, 2], False)])
def test_mean(axes, keepdims):
    x = randn(2, 3, 4, 5)
    check("mean", x.mean(axes, keepdims), x, axes=axes, keepdims=keepdims)


# ---------------------------------------------------------------- data movement

def test_reshape_and_transpose():
    x = randn(2, 3, 4)
    check("reshape", x.reshape(4, 3, 2), x, shape=[4, 3, 2])
    check("transpose", x.permute(2, 0, 1), x, perm=[2, 0, 1])


@pytest.mark.parametrize("axis", [1, -1])
def test_concat(axis):
    x, y, z = randn(2, 3, 4), randn(2, 3, 4), randn(2, 3, 4)
    check("concat", torch.cat([x, y, z], axis), x, y, z, axis=axis)


@pytest.mark.parametrize("axis,sizes", [(-1, [1, 2, 3]), (1, [2, 1]), (0, [2])])
def test_split(axis, sizes):
    x = randn(2, 3, 6)
    check("split", torch.split(x, sizes, axis), x, axis=axis, sizes=sizes)


@pytest.mark.parametrize("axes,starts,ends,steps,index", [
    ([0], [1], [3], [1], np.s_[1:3]),
    ([-1], [-5], [100], [2], np.s_[..., -5:100:2]),
    ([1, 2], [0, -3], [-1, 2 ** 62], [3, 1], np.s_[:, 0:-1:3, -3:]),
    ([0], [10], [20], [1], np.s_[10:20]),
])
def test_slice(axes, starts, ends, steps, index):
    x = randn(4, 6, 8)
    check("slice", x[index], x, axes=axes, starts=starts, ends=ends, steps=steps)


@pytest.mark.parametrize("pads,value", [([0, 1, 2, 0, 0, 1], 1.5), ([0, 0, -1, 0, 1, -2], 0.0)])
def test_pad(pads, value):
    x = randn(2, 3, 4)
    check("pad", F.pad(x, torch_pad(pads), value=value), x, pads=pads, value=value)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("mode,align_corners", [("nearest", False), ("bilinear", False), ("bilinear", True)])
@pytest.mark.parametrize("size", [(10, 12), (3, 4), (7, 11), (5, 6), (1, 4)])
def test_resize(size, mode, align_corners, layout):
    x = randn(2, 3, 5, 6)
    kw = {} if mode == "nearest" else {"align_corners": align_corners}
    expected = F.interpolate(x, size=size, mode=mode, **kw)
    if layout == "NHWC":
        x, expected = channels_last(x), channels_last(expected)
    check("resize", expected, x, size=list(size), mode=mode, align_corners=align_corners, layout=layout)


@pytest.mark.parametrize("layout", ["NCW", "NWC"])
def test_resize1d_nearest(layout):
    x = randn(2, 3, 5)
    cl = channels_last if layout == "NWC" else (lambda t: t)
    check("resize", cl(F.interpolate(x, size=8)), cl(x), size=[8], layout=layout)


# ---------------------------------------------------------------- coverage and graph-level behaviour

CHECKED_ABOVE = {op for op, _, _ in UNARY} | {op for op, _ in BINARY} | {
    "conv1d", "conv2d", "conv_transpose2d", "linear", "matmul", "batch_norm", "layer_norm", "max_pool1d",
    "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool", "mean", "reshape", "transpose", "concat",
    "split", "slice", "pad", "resize", "quantize", "dequantize", "prelu", "reduce", "tile"}


@pytest.mark.parametrize("per_channel", [False, True])
def test_quantize_dequantize_match_torch(per_channel):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 4, 5)) * 4).astype(np.float32)
    if per_channel:
        scale, zp = [0.02, 0.05, 0.1], [0, 0, 0]
        tq = torch.quantize_per_channel(torch.from_numpy(x), torch.tensor(scale, dtype=torch.float64),
                                        torch.tensor(zp), 0, torch.qint8)
    else:
        scale, zp = [0.037], [-5]
        tq = torch.quantize_per_tensor(torch.from_numpy(x), scale[0], zp[0], torch.qint8)
    (q,) = evaluate("quantize", [x], dict(scale=scale, zero_point=zp, axis=0))
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, tq.int_repr().numpy())
    (d,) = evaluate("dequantize", [q], dict(scale=scale, zero_point=zp, axis=0))
    np.testing.assert_allclose(d, tq.dequantize().numpy(), rtol=1e-6)


def test_quantize_rounds_ties_away_from_zero_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1000.0, -1000.0, 1e30, -3e38, np.inf], np.float32)
    (q,) = evaluate("quantize", [x], dict(scale=[1.0], zero_point=[0]))
    assert q.tolist() == [1, 2, 3, -1, -2, -3, 127, -128, 127, -128, 127]  # TFLite rounding; torch/numpy: to even
    (q16,) = evaluate("quantize", [x], dict(scale=[0.25], zero_point=[0], dtype="i16"))
    assert q16.dtype == np.int16 and q16.tolist() == [2, 6, 10, -2, -6, -10, 4000, -4000, 32767, -32768, 32767]


def test_every_op_has_semantics_and_a_torch_check():
    assert set(IMPLS) == set(ops.OPS)
    assert CHECKED_ABOVE == set(ops.OPS) - ops.with_tag("integer")  # those: test_interpreter_integer.py


def small_cnn():
    """conv+relu -> max pool -> residual block -> global pool -> linear, and its torch twin."""
    rng = np.random.default_rng(0)
    w1, w2, fc = (rng.standard_normal(s, dtype=np.float32) * 0.3 for s in [(4, 3, 3, 3), (4, 4, 3, 3), (5, 4)])
    conv = dict(stride=[1, 1], pads=[1, 1, 1, 1], dilation=[1, 1])
    g = Graph("cnn")
    x = g.add_input("image", TensorType((1, 3, 8, 8)))
    h = g.op("conv2d", [x, g.const(w1, "w1")], dict(conv, act="relu"), name="conv1")
    h = g.op("max_pool2d", [h], dict(kernel=[2, 2], stride=[2, 2], pads=[0, 0, 0, 0]), name="pool")
    r = g.op("conv2d", [h, g.const(w2, "w2")], conv, name="conv2")
    h = g.op("add", [r, h], dict(act="relu"), name="residual")
    h = g.op("adaptive_avg_pool", [h], dict(output_size=[1, 1]), name="gap")
    h = g.op("reshape", [h], dict(shape=[1, 4]), name="flat")
    g.outputs = [g.op("linear", [h, g.const(fc, "fc.w")], name="fc")]

    def reference(t):
        t = F.max_pool2d(F.relu(F.conv2d(t, torch.from_numpy(w1), padding=1)), 2)
        t = F.relu(F.conv2d(t, torch.from_numpy(w2), padding=1) + t)
        return F.linear(F.adaptive_avg_pool2d(t, 1).flatten(1), torch.from_numpy(fc))
    return g, x, reference


def test_run_matches_torch_on_a_network_and_traces_every_computed_value():
    g, x, reference = small_cnn()
    k = g.const(np.arange(4, dtype=np.float32), "k")
    g.outputs = [*g.outputs, x, k]
    image = np.random.default_rng(1).standard_normal((1, 3, 8, 8), dtype=np.float32)
    trace = {}
    out, same, const = run(g, image, trace=trace)
    np.testing.assert_allclose(out, reference(torch.from_numpy(image)).numpy(), rtol=1e-5, atol=1e-5)
    assert list(trace) == ["conv1", "pool", "conv2", "residual", "gap", "flat", "fc"]
    np.testing.assert_array_equal(out, trace["fc"])
    assert trace["pool"].shape == (1, 4, 4, 4)
    assert same is image and const is k.data


def test_run_casts_results_to_the_declared_dtype():
    g = Graph()
    x = g.add_input("x", TensorType((2, 3)))
    g.outputs = [g.add_node("relu", [x], out_types=[TensorType((2, 3), DType.f16)]).output]
    (y,) = run(g, np.array([[-1.5] * 3, [1.5] * 3], np.float32))
    assert y.dtype == np.float16 and y.tolist() == [[0, 0, 0], [1.5, 1.5, 1.5]]


def test_bad_graph_inputs_raise_named_errors():
    g, *_ = small_cnn()
    ok = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(UsageError, match=r"takes 1 input\(s\) \(%image\), got 2"):
        run(g, ok, ok)
    with pytest.raises(UsageError, match="takes 1 input"):
        run(g)
    with pytest.raises(ShapeError, match=r"%image has shape \[1, 3, 8, 8\], got .* \[1, 3, 8, 9\]"):
        run(g, np.zeros((1, 3, 8, 9), np.float32))
    with pytest.raises(UsageError, match="%image has dtype f32, got an array of float64") as e:
        run(g, ok.astype(np.float64))
    assert "astype(np.float32)" in str(e.value)
