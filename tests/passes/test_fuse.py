"""fuse: activations into the op before them, zero pads into conv padding; checked against torch."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mcuforge.ir.graph import Graph
from mcuforge.ir.types import TensorType

rng = np.random.default_rng(0)


def rand(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def producer(kind, g, x):
    """`kind` applied to graph input x (shape from SHAPES) -> (IR value, torch function of x)."""
    T = torch.from_numpy
    w, b = {"conv1d": (rand(3, 2, 3), None), "conv2d": (rand(3, 2, 3, 3), rand(3)),
            "conv_transpose2d": (rand(2, 3, 3, 3), rand(3)), "linear": (rand(3, 4), rand(3))}.get(kind, (rand(3), None))
    ops = [x, g.const(w, "w")] + ([g.const(b, "b")] if b is not None else [])
    conv = dict(stride=[1], pads=[1, 0], dilation=[1]) if kind == "conv1d" else \
        dict(stride=[2, 2], pads=[1, 1, 1, 1], dilation=[1, 1])
    attrs = {"linear": {}, "conv1d": conv, "conv2d": conv, "conv_transpose2d": dict(conv, output_padding=[1, 1])}
    fn = {"conv1d": lambda t: F.conv1d(F.pad(t, (1, 0)), T(w)),
          "conv2d": lambda t: F.conv2d(t, T(w), T(b), stride=2, padding=1),
          "conv_transpose2d": lambda t: F.conv_transpose2d(t, T(w), T(b), stride=2, padding=1, output_padding=1),
          "linear": lambda t: F.linear(t, T(w), T(b)),
          "add": lambda t: t + T(w), "sub": lambda t: t - T(w), "mul": lambda t: t * T(w)}[kind]
    return g.op(kind, ops, attrs.get(kind, {})), fn


SHAPES = {"conv1d": (1, 2, 7), "conv2d": (1, 2, 5, 5), "conv_transpose2d": (1, 2, 3, 3), "linear": (2, 4),
          "add": (2, 3), "sub": (2, 3), "mul": (2, 3)}
ACTS = {"relu": ("relu", {}, torch.relu), "relu6": ("relu6", {}, lambda t: t.clamp(0, 6)),
        "clamp06": ("clamp", {"min": 0.0, "max": 6.0}, lambda t: t.clamp(0, 6)),
        "clamp0inf": ("clamp", {"min": 0.0, "max": math.inf}, torch.relu)}
FUSED = {"relu": "relu", "relu6": "relu6", "clamp06": "relu6", "clamp0inf": "relu"}


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("kind", SHAPES)
def test_activation_fuses_into_producer(apply, kind, act):
    g = Graph()
    x = g.add_input("x", TensorType(SHAPES[kind]))
    y, fn = producer(kind, g, x)
    op, attrs, act_fn = ACTS[act]
    g.outputs = [g.op(op, [y], attrs)]
    a = rand(*SHAPES[kind]) * 4  # large enough for relu6 to clip
    ctx, (out,) = apply(g, "fuse", a)
    assert g.count() == {kind: 1} and g.nodes[0].attrs["act"] == FUSED[act] and not ctx.missed
    assert ctx.stats[f"fuse.fused_{FUSED[act]}"] == 1
    np.testing.assert_allclose(out, act_fn(fn(torch.from_numpy(a))).numpy(), rtol=1e-5, atol=1e-5)


def refusal(kind):
    g = Graph()
    x = g.add_input("x", TensorType((2, 3)))
    y = g.op("add", [x, g.const(rand(3), "c")], {"act": "relu" if kind == "act" else "none"})
    r = g.op("relu6", [y])
    g.outputs = {"act": [r], "users": [r, g.op("sigmoid", [y])], "output": [r, y]}[kind]
    return g


@pytest.mark.parametrize("kind, reason", [("act", "already applies act=relu"), ("users", "has other users"),
                                          ("output", "has other users")])
def test_activation_refusals_say_why(apply, kind, reason):
    g = refusal(kind)
    before = g.count()
    ctx, _ = apply(g, "fuse", rand(2, 3) * 4)
    assert g.count() == before
    (missed,) = ctx.missed
    assert missed.op == "relu6" and reason in missed.reason


def test_nothing_to_fuse_into_is_not_a_miss(apply):
    g = Graph()
    x = g.add_input("x", TensorType((1, 2, 4, 4)))
    pool = g.op("max_pool2d", [x], dict(kernel=[2, 2], stride=[2, 2], pads=[0, 0, 0, 0]))
    g.outputs = [g.op("relu", [g.op("div", [pool, g.const(np.float32(2), "two")])])]
    ctx, _ = apply(g, "fuse", rand(1, 2, 4, 4))
    assert g.count() == {"div": 1, "max_pool2d": 1, "relu": 1} and not ctx.missed


def conv_after_pad(pads, layout="NCHW", value=0.0, pad_used_twice=False):
    nhwc, nd = layout in ("NHWC", "NWC"), len(layout) - 2
    shape = {"NCW": (1, 2, 6), "NCHW": (1, 2, 5, 6), "NHWC": (1, 5, 6, 2)}[layout]
    g = Graph()
    x = g.add_input("x", TensorType(shape))
    p = g.op("pad", [x], {"pads": pads, "value": value})
    rank = len(shape)
    ch = rank - 1 if nhwc else 1
    w = rand(3, shape[ch] + pads[ch] + pads[rank + ch], *[3] * nd)  # fits a padded channel axis too
    conv = g.op(f"conv{nd}d", [p, g.const(np.moveaxis(w, 1, -1) if nhwc else w, "w")],
                dict(stride=[1] * nd, pads=[1] * (2 * nd), dilation=[1] * nd, layout=layout))
    g.outputs = [conv, g.op("relu", [p])] if pad_used_twice else [conv]
    return g, w


@pytest.mark.parametrize("layout, pads, conv_pads", [
    ("NCHW", [0, 0, 1, 2, 0, 0, 2, 0], [2, 3, 3, 1]),
    ("NCW", [0, 0, 2, 0, 0, 1], [3, 2]),
    ("NHWC", [0, 1, 2, 0, 0, 2, 0, 0], [2, 3, 3, 1]),
])
def test_zero_pad_fuses_into_conv(apply, layout, pads, conv_pads):
    g, w = conv_after_pad(pads, layout)
    a = rand(*g.inputs[0].shape)
    ctx, (out,) = apply(g, "fuse", a)
    op = "conv1d" if layout == "NCW" else "conv2d"
    assert g.count() == {op: 1} and g.nodes[0].attrs["pads"] == conv_pads and ctx.stats["fuse.fused_pad"] == 1
    t = torch.from_numpy(a)
    if layout == "NHWC":
        t = t.permute(0, 3, 1, 2)
    nd = len(layout) - 2
    sp = [pads[ax] for ax in range(len(pads) // 2)], [pads[len(pads) // 2 + ax] for ax in range(len(pads) // 2)]
    spatial = range(1, 1 + nd) if layout == "NHWC" else range(2, 2 + nd)
    torch_pad = [v for ax in reversed(spatial) for v in (sp[0][ax], sp[1][ax])]  # last axis first
    ref = (F.conv1d if nd == 1 else F.conv2d)(F.pad(t, torch_pad), torch.from_numpy(w), padding=1)
    np.testing.assert_allclose(out, ref.permute(0, 2, 3, 1).numpy() if layout == "NHWC" else ref.numpy(),
                               rtol=1e-5, atol=1e-5)


def test_pad_with_other_users_fuses_and_stays(apply):
    g, _ = conv_after_pad([0, 0, 1, 1, 0, 0, 1, 1], pad_used_twice=True)
    apply(g, "fuse", rand(1, 2, 5, 6))
    assert g.count() == {"conv2d": 1, "pad": 1, "relu": 1}
    conv = next(n for n in g.nodes if n.op == "conv2d")
    assert conv.inputs[0] is g.inputs[0] and conv.attrs["pads"] == [2, 2, 2, 2]


@pytest.mark.parametrize("pads, value, reason", [
    ([0, 0, 1, 1, 0, 0, 1, 1], 1.0, "pads with 1.0"),
    ([0, 1, 1, 1, 0, 0, 1, 1], 0.0, "batch or channel axis"),
    ([0, 0, 1, -1, 0, 0, 1, 1], 0.0, "crops"),
])
def test_pad_refusals_say_why(apply, pads, value, reason):
    g, _ = conv_after_pad(pads, value=value)
    ctx, _ = apply(g, "fuse", rand(*g.inputs[0].shape))
    assert g.count() == {"conv2d": 1, "pad": 1}
    (missed,) = ctx.missed
    assert missed.op == "conv2d" and reason in missed.reason
