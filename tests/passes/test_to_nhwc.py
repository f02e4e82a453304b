"""to-nhwc: channel-last convolutions and pools, followers in between, transposes only where needed.

Numbers: the `apply` fixture compares the interpreter before and after the pass (the float
pipeline before it is checked against torch in test_zoo_e2e).
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuforge import zoo
from mcuforge.errors import UsageError
from mcuforge.ir import ops
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import TensorType
from mcuforge.passes.manager import PassManager
from mcuforge.passes.to_nhwc import _follow

rng = np.random.default_rng(0)

# Transposes left in each model, and why. Default 1: the NCHW input of several channels (a
# 1-channel input becomes a free reshape). Global pools end in 1x1 maps, so the flatten before
# the classifier needs none.
TRANSPOSES = {
    "ds_cnn": 0,  # 1-channel input
    "fc_autoencoder": 0,  # no convolutions: unchanged
    "digits_cnn": 1,  # 1-channel input, but the flatten of a 4x4 map mixes channels and space
    "shufflenet_v2": 17,  # the input, and its 16 channel shuffles, as many as before
    "unet_tiny": 2,  # the input and the NCHW segmentation map
}


def rand(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def conv(g, x, cout, k=3, layout="NCHW", **kw):
    nd = len(layout) - 2
    cin = x.shape[1] if layout[1] == "C" else x.shape[-1]
    w = rand(cout, cin // kw.get("groups", 1), *[k] * nd)
    attrs = dict(stride=[1] * nd, pads=[k // 2] * 2 * nd, dilation=[1] * nd, layout=layout, **kw)
    return g.op(f"conv{nd}d", [x, g.const(w, "w"), g.const(rand(cout), "b")], attrs)


def layouts(g):
    return {n.attrs["layout"] for n in g.nodes if n.op in ops.with_tag("layout")}


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_models_go_channel_last(apply, float_zoo, name):
    g, xs = float_zoo(name)
    names = [v.name for v in g.outputs]
    assert g.count("transpose") == (16 if name == "shufflenet_v2" else 0)
    apply(g, "to-nhwc", *xs)
    assert layouts(g) <= {"NHWC", "NWC"}
    assert g.count("transpose") == TRANSPOSES.get(name, 1), g.count()
    assert [v.name for v in g.outputs] == names


def test_io_nhwc_leaves_no_transpose_at_the_edges(float_zoo):
    g, (x,) = float_zoo("unet_tiny")
    (before,) = run(g, x)
    PassManager([("to-nhwc", {"io": "nhwc"})], debug=True).run(g)
    assert g.count("transpose") == 0 and g.inputs[0].shape == (1, 32, 32, 3) and g.outputs[0].shape == (1, 32, 32, 2)
    (after,) = run(g, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(after, before.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


def test_transposes_around_convs_are_absorbed(apply):
    """An NHWC model imported as transpose -> NCHW convs -> transpose needs no transpose at all."""
    g = Graph()
    x = g.add_input("x", TensorType((1, 6, 6, 3)))
    y = conv(g, g.op("transpose", [x], {"perm": [0, 3, 1, 2]}), 4)
    g.outputs = [g.op("transpose", [g.op("relu", [conv(g, y, 5)])], {"perm": [0, 2, 3, 1]})]
    ctx, _ = apply(g, "to-nhwc", rand(1, 6, 6, 3))
    assert g.count() == {"conv2d": 2, "relu": 1} and layouts(g) == {"NHWC"}
    assert ctx.stats["to-nhwc.transposes_absorbed"] == 2 and not ctx.missed


def test_followers_stay_channel_last_with_their_axes_remapped(apply):
    g = Graph()
    x = g.add_input("x", TensorType((1, 4, 6, 6)))
    c = g.op("batch_norm", [conv(g, x, 8), *(g.const(rand(8) ** 2 + 0.5, n) for n in ("s", "b", "m", "v"))])
    gate = g.op("sigmoid", [g.op("mean", [c], {"axes": [2, 3], "keepdims": True})])  # squeeze-excite
    c = g.op("add", [g.op("mul", [c, gate]), g.const(rand(8, 1, 1), "bias")])
    c = g.op("pad", [c], {"pads": [0, 0, 1, 0, 0, 0, 0, 2]})  # (1, 8, 7, 8)
    a, b = g.op("split", [c], {"axis": 1, "sizes": [3, 5]})
    c = g.op("concat", [b, g.op("relu6", [a])], {"axis": -3})
    c = g.op("slice", [c], {"axes": [2], "starts": [1], "ends": [7], "steps": [2]})  # (1, 8, 3, 8)
    c = g.op("softmax", [c], {"axis": 1})
    g.outputs = [conv(g, c, 2), g.op("mean", [c], {"axes": [1, -1], "keepdims": False})]
    apply(g, "to-nhwc", rand(1, 4, 6, 6))
    assert g.count("transpose") == 2, g.count()  # the input, and the NCHW conv result
    axis = {n.op: n.attrs.get("axis") for n in g.nodes}
    assert axis["batch_norm"] == axis["split"] == axis["concat"] == axis["softmax"] == 3
    pad, slc, means = (n for n in g.nodes if n.op == "pad"), (n for n in g.nodes if n.op == "slice"), \
        [n.attrs["axes"] for n in g.nodes if n.op == "mean"]
    assert next(pad).attrs["pads"] == [0, 1, 0, 0, 0, 0, 2, 0] and next(slc).attrs["axes"] == [1]
    assert means == [[1, 2], [2, 3]]


def test_reshapes_follow_when_they_keep_channels_apart(apply):
    """(N, C, H, W) -> (N, C, H*W) for a conv1d follows; a flatten of a 2x2 map needs a transpose."""
    g = Graph()
    x = g.add_input("x", TensorType((1, 3, 4, 4)))
    seq = g.op("reshape", [conv(g, x, 4)], {"shape": [1, 4, 16]})
    pooled = g.op("max_pool1d", [conv(g, seq, 6, layout="NCW")], dict(kernel=[2], stride=[2], pads=[0, 0]))
    y = g.op("adaptive_avg_pool", [g.op("reshape", [pooled], {"shape": [1, 6, 2, 4]})],
             {"output_size": [2, 2]})
    flat = g.op("reshape", [y], {"shape": [1, 24]})
    g.outputs = [g.op("linear", [flat, g.const(rand(3, 24), "w")])]
    ctx, _ = apply(g, "to-nhwc", rand(1, 3, 4, 4))
    assert layouts(g) == {"NHWC", "NWC"} and g.count("transpose") == 2
    edge, flatten = ctx.missed
    assert edge.op == "conv2d" and "io='nhwc'" in edge.reason
    assert flatten.op == "reshape" and "another axis order" in flatten.reason and "io=" not in flatten.reason


def test_transposed_conv_resize_and_pools_take_channel_last_weights(apply):
    g = Graph()
    x = g.add_input("x", TensorType((1, 4, 5, 5)))
    w = rand(4, 3, 2, 2)  # torch's (I, O/groups, kH, kW)
    up = g.op("conv_transpose2d", [x, g.const(w, "w")], dict(stride=[2, 2], pads=[0, 0, 0, 0], dilation=[1, 1]))
    y = g.op("resize", [up], {"size": [12, 12], "mode": "bilinear"})
    y = g.op("avg_pool2d", [y], dict(kernel=[3, 3], stride=[2, 2], pads=[1, 1, 1, 1], count_include_pad=False))
    g.outputs = [g.op("max_pool2d", [y], dict(kernel=[2, 2], stride=[2, 2], pads=[0, 0, 0, 0], ceil_mode=True))]
    apply(g, "to-nhwc", rand(1, 4, 5, 5))
    (ct,) = [n for n in g.nodes if n.op == "conv_transpose2d"]
    np.testing.assert_array_equal(ct.inputs[1].data, w.transpose(1, 2, 3, 0))  # (O/groups, kH, kW, I)
    assert layouts(g) == {"NHWC"} and g.count("transpose") == 2


def test_per_channel_quantization_axis_follows(apply):
    g = Graph()
    x = g.add_input("x", TensorType((1, 3, 4, 4)))
    q = dict(scale=[0.05, 0.1, 0.2], zero_point=[0, 3, -2], axis=1)
    y = g.op("dequantize", [g.op("quantize", [conv(g, x, 3)], q)], {k: q[k] for k in ("scale", "zero_point", "axis")})
    g.outputs = [conv(g, y, 2)]
    apply(g, "to-nhwc", rand(1, 3, 4, 4))
    (qn,) = [n for n in g.nodes if n.op == "quantize"]
    assert qn.attrs["axis"] == 3 and qn.output.type.quant.axis == 3 and g.count("transpose") == 2


def test_unknown_io_layout_is_refused():
    g = Graph()
    x = g.add_input("x", TensorType((1, 3, 4, 4)))
    g.outputs = [conv(g, x, 2)]
    with pytest.raises(UsageError, match="io='nwhc'"):
        PassManager([("to-nhwc", {"io": "nwhc"})]).run(g)


@st.composite
def reshapes(draw):
    """(a, q, b): shapes a and b grouping the same factors differently, with 1s here and there,
    and an axis order q for a."""
    factors = draw(st.lists(st.integers(2, 3), min_size=1, max_size=4))

    def group():
        cuts = sorted(draw(st.sets(st.integers(1, len(factors) - 1))) if len(factors) > 1 else set())
        dims = [int(np.prod(factors[i:j])) for i, j in zip([0, *cuts], [*cuts, len(factors)])]
        for _ in range(draw(st.integers(0, 2))):
            dims.insert(draw(st.integers(0, len(dims))), 1)
        return tuple(dims)
    a, b = group(), group()
    return a, tuple(draw(st.permutations(range(len(a))))), b


@settings(max_examples=200, deadline=None)
@given(reshapes())
def test_reshape_follows_exactly_when_some_axis_order_works(case):
    a, q, b = case
    x = np.arange(int(np.prod(a)))
    stored = x.reshape(a).transpose(q)

    def works(r):
        return np.array_equal(stored.reshape([b[i] for i in r]), x.reshape(b).transpose(r))
    r = _follow(a, q, b)
    assert works(r) if r is not None else not any(works(r) for r in itertools.permutations(range(len(b))))
