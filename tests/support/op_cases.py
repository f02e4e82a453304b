"""The op cases the ONNX and TFLite backend tests (and the TFLite importer's) share: CASES maps a
name to (input shapes, a builder of the one-op graph and its torch reference, channels last?,
opset); `build(name)` makes the graph. Also `close`, the float comparison they use."""
import numpy as np
import torch
import torch.nn.functional as F

from mcuforge.ir.graph import Graph
from mcuforge.ir.types import TensorType

RNG = np.random.default_rng(0)
L1, L2 = {False: "NCW", True: "NWC"}, {False: "NCHW", True: "NHWC"}
CASES = {}


def rnd(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def T(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def last(a):
    """Channel-first array -> channel-last (also OIHW -> OHWI weights)."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def case(name, *shapes, layouts=False, opset=17):
    """Register `fn(g, *inputs, channel_last) -> (IR result(s), torch function)` on channel-first
    input `shapes`; `layouts` also runs it with channel-last inputs and outputs."""
    def register(fn):
        for cl in (False, True) if layouts else (False,):
            CASES[name + ("-last" if cl else "")] = (shapes, fn, cl, opset)
        return fn
    return register


@case("conv2d", (1, 3, 6, 7), layouts=True)
def _(g, x, cl):
    w, b = rnd(4, 3, 3, 3), rnd(4)
    y = g.op("conv2d", [x, g.const(last(w) if cl else w), g.const(b)],
             dict(stride=[2, 1], pads=[1, 0, 1, 2], dilation=[1, 2], act="relu", layout=L2[cl]))
    return y, lambda x: F.relu(F.conv2d(F.pad(x, (0, 2, 1, 1)), T(w), T(b), stride=(2, 1), dilation=(1, 2)))


@case("conv2d-depthwise", (1, 3, 5, 5), layouts=True)
def _(g, x, cl):
    w = rnd(6, 1, 3, 3)
    y = g.op("conv2d", [x, g.const(last(w) if cl else w)],
             dict(stride=[1, 1], pads=[1, 1, 1, 1], dilation=[1, 1], groups=3, act="relu6", layout=L2[cl]))
    return y, lambda x: F.relu6(F.conv2d(x, T(w), padding=1, groups=3))


@case("conv1d", (1, 4, 11), layouts=True)
def _(g, x, cl):
    w, b = rnd(6, 2, 3), rnd(6)
    y = g.op("conv1d", [x, g.const(last(w) if cl else w), g.const(b)],
             dict(stride=[2], pads=[1, 2], dilation=[2], groups=2, layout=L1[cl]))
    return y, lambda x: F.conv1d(F.pad(x, (1, 2)), T(w), T(b), stride=2, dilation=2, groups=2)


@case("conv_transpose2d", (1, 4, 5, 4), layouts=True)
def _(g, x, cl):
    w, b = rnd(4, 3, 3, 2), rnd(6)  # (I, O/groups, kH, kW), groups 2
    wl = np.ascontiguousarray(w.transpose(1, 2, 3, 0))  # (O/groups, kH, kW, I)
    y = g.op("conv_transpose2d", [x, g.const(wl if cl else w), g.const(b)],
             dict(stride=[2, 3], pads=[1, 0, 1, 0], dilation=[1, 1], groups=2, output_padding=[1, 2],
                  layout=L2[cl]))
    return y, lambda x: F.conv_transpose2d(x, T(w), T(b), stride=(2, 3), padding=(1, 0),
                                           output_padding=(1, 2), groups=2)


@case("linear", (3, 5))
def _(g, x, cl):
    w, b = rnd(4, 5), rnd(4)
    return g.op("linear", [x, g.const(w), g.const(b)], dict(act="relu")), lambda x: F.relu(F.linear(x, T(w), T(b)))


@case("linear-rank3", (2, 3, 5))
def _(g, x, cl):
    w, b = rnd(4, 5), rnd(4)
    return g.op("linear", [x, g.const(w), g.const(b)]), lambda x: F.linear(x, T(w), T(b))


@case("linear-rank3-nobias-dynamic-weight", (2, 3, 5), (4, 5))
def _(g, x, w, cl):
    return g.op("linear", [x, w], dict(act="relu6")), lambda x, w: F.relu6(F.linear(x, w))


@case("matmul", (2, 3, 4), (4, 5))
def _(g, a, b, cl):
    return g.op("matmul", [a, b]), torch.matmul


@case("batch_norm", (2, 3, 4, 4))
def _(g, x, cl):
    p = [rnd(3), rnd(3), rnd(3), np.abs(rnd(3)) + 0.5]
    return (g.op("batch_norm", [x, *map(g.const, p)], dict(eps=1e-3)),
            lambda x: F.batch_norm(x, T(p[2]), T(p[3]), T(p[0]), T(p[1]), eps=1e-3))


@case("batch_norm-axis-last", (2, 4, 5, 3))
def _(g, x, cl):
    p = [rnd(3), rnd(3), rnd(3), np.abs(rnd(3)) + 0.5]
    return (g.op("batch_norm", [x, *map(g.const, p)], dict(axis=-1)),
            lambda x: F.batch_norm(x.movedim(-1, 1), T(p[2]), T(p[3]), T(p[0]), T(p[1])).movedim(1, -1))


@case("layer_norm", (2, 3, 8))
def _(g, x, cl):
    s, b = rnd(8), rnd(8)
    return g.op("layer_norm", [x, g.const(s), g.const(b)]), lambda x: F.layer_norm(x, (8,), T(s), T(b))


@case("layer_norm-2d-noparams", (2, 3, 4))
def _(g, x, cl):
    return g.op("layer_norm", [x], dict(axis=-2, eps=1e-3)), lambda x: F.layer_norm(x, (3, 4), eps=1e-3)


def simple(name, shapes, op, attrs, ref, opset=17):
    """A case of one layout-free op applied to all inputs."""
    case(name, *shapes, opset=opset)(lambda g, *xs: (g.op(op, list(xs[:-1]), attrs), ref))


X = [(2, 3, 5)]
SIMPLE = [  # case name, input shapes, op, attributes, torch reference[, opset]
    ("relu", X, "relu", {}, F.relu), ("relu6", X, "relu6", {}, F.relu6),
    ("leaky_relu", X, "leaky_relu", dict(alpha=0.2), lambda x: F.leaky_relu(x, 0.2)),
    ("clamp", X, "clamp", dict(min=-0.5, max=0.7), lambda x: x.clamp(-0.5, 0.7)),
    ("sigmoid", X, "sigmoid", {}, torch.sigmoid), ("tanh", X, "tanh", {}, torch.tanh),
    ("hardsigmoid", X, "hardsigmoid", {}, F.hardsigmoid), ("silu", X, "silu", {}, F.silu),
    ("softmax", X, "softmax", dict(axis=1), lambda x: x.softmax(1)),
    ("log_softmax", X, "log_softmax", {}, lambda x: x.log_softmax(-1)),
    ("identity", X, "identity", {}, lambda x: x), ("dropout", X, "dropout", dict(p=0.3), lambda x: x),
    # HardSwish is decomposed before opset 14, Gelu before 20
    *((f"hardswish-opset{o}", X, "hardswish", {}, F.hardswish, o) for o in (13, 17)),
    *((f"gelu-opset{o}", X, "gelu", {}, F.gelu, o) for o in (17, 20)),
    *((f"gelu-tanh-opset{o}", X, "gelu", dict(approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"), o)
      for o in (17, 20)),
    *((op, [(2, 3, 4), (3, 1)], op, {}, getattr(torch, op)) for op in ("add", "sub", "mul", "div")),
    ("add-relu", [(2, 3), (3,)], "add", dict(act="relu"), lambda a, b: F.relu(a + b)),
    # ReduceMean takes axes as an attribute before opset 18, as an input from 18
    *((f"mean-opset{o}", [(2, 3, 4, 5)], "mean", dict(axes=[2, -1], keepdims=True),
       lambda x: x.mean((2, -1), keepdim=True), o) for o in (17, 18)),
    ("mean-drop", [(2, 3, 4)], "mean", dict(axes=[1]), lambda x: x.mean(1)),
    ("reshape", [(2, 3, 4)], "reshape", dict(shape=[4, 6]), lambda x: x.reshape(4, 6)),
    ("transpose", [(2, 3, 4)], "transpose", dict(perm=[2, 0, 1]), lambda x: x.permute(2, 0, 1)),
    ("concat", [(2, 3), (2, 5)], "concat", dict(axis=-1), lambda a, b: torch.cat([a, b], -1)),
    ("split", [(2, 5, 3)], "split", dict(axis=1, sizes=[1, 4]), lambda x: x.split([1, 4], 1)),
    ("slice", [(3, 5, 8)], "slice", dict(axes=[1, 2], starts=[1, -6], ends=[3, 100], steps=[1, 2]),
     lambda x: x[:, 1:3, -6:100:2]),
    ("pad", [(1, 2, 3, 4)], "pad", dict(pads=[0, 0, 1, 2, 0, 0, 3, 0], value=0.5),
     lambda x: F.pad(x, (2, 0, 1, 3), value=0.5)),
    ("elu", X, "elu", dict(alpha=0.5), lambda x: F.elu(x, 0.5)), ("softplus", X, "softplus", {}, F.softplus),
    ("exp", X, "exp", {}, torch.exp), ("abs", X, "abs", {}, torch.abs), ("sign", X, "sign", {}, torch.sign),
    ("erf", X, "erf", {}, torch.erf),
    *((op, [(2, 3, 4), (3, 1)], op, {}, getattr(torch, op)) for op in ("maximum", "minimum")),
    # ReduceSum takes axes as an input from opset 13, ReduceMax and ReduceMin from 18
    *((f"reduce-{m}-opset{o}", [(2, 3, 4, 5)], "reduce", dict(axes=[1, -2], keepdims=o == 17, mode=m),
       lambda x, f=f, o=o: f(x, (1, -2), keepdim=o == 17), o)
      for m, f in (("sum", torch.sum), ("max", torch.amax), ("min", torch.amin)) for o in (17, 18)),
    ("tile", [(2, 1, 3)], "tile", dict(repeats=[2, 3, 1]), lambda x: x.tile(2, 3, 1)),
]
for _case in SIMPLE:
    simple(*_case)


for _op in ("log", "sqrt"):  # of |x|: torch and the backends agree on NaN, but the comparison scales by the output
    @case(_op, (2, 3, 5))
    def _(g, x, cl, op=_op):
        return g.op(op, [g.op("abs", [x])]), lambda x: getattr(torch, op)(x.abs())


@case("pow", (2, 3, 4), (3, 1))
def _(g, a, b, cl):
    return g.op("pow", [g.op("abs", [a]), b]), lambda a, b: torch.pow(a.abs(), b)


@case("prelu", (1, 3, 4, 5), layouts=True)  # one slope per channel, torch's nn.PReLU(3)
def _(g, x, cl):
    a = rnd(3)
    return g.op("prelu", [x, g.const(a if cl else a.reshape(3, 1, 1))]), lambda x: F.prelu(x, T(a))


@case("prelu-dynamic-alpha", (2, 3, 5), (5,))
def _(g, x, a, cl):
    return g.op("prelu", [x, a]), lambda x, a: torch.where(x >= 0, x, x * a)


@case("max_pool2d-ceil", (1, 2, 4, 5), layouts=True)  # ceil mode drops a window starting in the padding
def _(g, x, cl):
    y = g.op("max_pool2d", [x], dict(kernel=[2, 2], stride=[3, 2], pads=[1, 1, 1, 1], ceil_mode=True, layout=L2[cl]))
    return y, lambda x: F.max_pool2d(x, 2, (3, 2), 1, ceil_mode=True)


@case("max_pool2d-dilated", (1, 2, 7, 7), layouts=True)
def _(g, x, cl):
    y = g.op("max_pool2d", [x], dict(kernel=[2, 3], stride=[1, 2], pads=[0, 0, 0, 0], dilation=[2, 1], layout=L2[cl]))
    return y, lambda x: F.max_pool2d(x, (2, 3), (1, 2), dilation=(2, 1))


@case("max_pool1d", (1, 3, 9), layouts=True)
def _(g, x, cl):
    y = g.op("max_pool1d", [x], dict(kernel=[3], stride=[2], pads=[1, 1], layout=L1[cl]))
    return y, lambda x: F.max_pool1d(x, 3, 2, 1)


for _cip in (False, True):
    @case(f"avg_pool2d-ceil-cip{int(_cip)}", (1, 2, 6, 6), layouts=True)
    def _(g, x, cl, cip=_cip):
        y = g.op("avg_pool2d", [x], dict(kernel=[3, 3], stride=[2, 2], pads=[1, 1, 1, 1], ceil_mode=True,
                                         count_include_pad=cip, layout=L2[cl]))
        return y, lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=cip)


@case("avg_pool1d", (1, 3, 8), layouts=True)
def _(g, x, cl):
    y = g.op("avg_pool1d", [x], dict(kernel=[2], stride=[2], pads=[0, 0], layout=L1[cl]))
    return y, lambda x: F.avg_pool1d(x, 2, 2)


for _size, _out in [((6, 6), (1, 1)), ((6, 8), (2, 4)), ((5, 7), (3, 2)), ((9,), (4,))]:
    @case(f"adaptive_avg_pool-{_size}-{_out}", (1, 3, *_size), layouts=True)
    def _(g, x, cl, out=_out):
        y = g.op("adaptive_avg_pool", [x], dict(output_size=list(out), layout=(L1 if len(out) == 1 else L2)[cl]))
        return y, lambda x: (F.adaptive_avg_pool1d if len(out) == 1 else F.adaptive_avg_pool2d)(x, out)


@case("resize-nearest", (1, 2, 3, 5), layouts=True)
def _(g, x, cl):
    return (g.op("resize", [x], dict(size=[7, 11], mode="nearest", layout=L2[cl])),
            lambda x: F.interpolate(x, size=(7, 11), mode="nearest"))


for _size in [(7, 11), (1, 3)]:  # an output of size 1 tells half_pixel from pytorch_half_pixel
    for _ac in (False, True):
        @case(f"resize-bilinear-{_size}-ac{int(_ac)}", (1, 2, 4, 5), layouts=True)
        def _(g, x, cl, size=_size, ac=_ac):
            return (g.op("resize", [x], dict(size=list(size), mode="bilinear", align_corners=ac, layout=L2[cl])),
                    lambda x: F.interpolate(x, size=size, mode="bilinear", align_corners=ac))


@case("quantize", (2, 3, 4))
def _(g, x, cl):
    q = g.op("quantize", [x], dict(scale=[0.05], zero_point=[-3], dtype="i8"))
    return (g.op("dequantize", [q], dict(scale=[0.05], zero_point=[-3])),
            lambda x: torch.quantize_per_tensor(x, 0.05, -3, torch.qint8).dequantize())


@case("dequantize-per-axis", (2, 3, 4))
def _(g, x, cl):
    s, zp = [0.02, 0.04, 0.08], [0, 0, 0]
    q = g.op("quantize", [x], dict(scale=s, zero_point=zp, axis=1, dtype="i8"))
    return (g.op("dequantize", [q], dict(scale=s, zero_point=zp, axis=1)),
            lambda x: torch.quantize_per_channel(x, torch.tensor(s, dtype=torch.float64), torch.tensor(zp), 1,
                                                 torch.qint8).dequantize())


def build(name):
    shapes, fn, cl, opset = CASES[name]
    shapes = [tuple(np.moveaxis(np.empty(s), 1, -1).shape) if cl else s for s in shapes]
    g = Graph(name.replace("-", "_"))
    xs = [g.add_input(f"x{i}", TensorType(s)) for i, s in enumerate(shapes)]
    out, ref = fn(g, *xs, cl)
    g.outputs = list(out) if isinstance(out, tuple) else [out]
    return g, ref, cl, opset


FLOAT_CASES = [name for name, (*_, opset) in CASES.items() if opset == 17]  # the ONNX-only opset variants aside
TFLITE_HAS_NO = {"erf": "ERF"}  # cases of ops TFLite has no operator for: the TFLite backend refuses them


def close(actual, expected, rtol=1e-4):
    scale = max(float(np.abs(expected).max()), 1e-6)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)
