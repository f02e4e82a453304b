"""The text form round-trips exactly and rejects malformed text with a located message."""
import numpy as np
import pytest

from mcuforge.errors import ParseError, ShapeError
from mcuforge.ir.graph import Graph
from mcuforge.ir.parser import parse
from mcuforge.ir.printer import print_graph
from mcuforge.ir.types import QuantParams, TensorType


def sample():
    rng = np.random.default_rng(0)
    g = Graph("sample")
    x = g.add_input("x", TensorType((1, 3, 8, 8)))
    w = g.const(rng.standard_normal((4, 3, 3, 3)), "conv.weight")
    b = g.const(rng.standard_normal(4), "conv.bias")
    y = g.op("conv2d", [x, w, b], dict(stride=[1, 1], pads=[1, 0, 1, 2], dilation=[1, 1], act="relu6"),
             name="conv", meta={"source": "net.py:12 in forward"})
    a, c = g.op("split", [y], dict(axis=1, sizes=[1, 3]))
    m = g.op("mean", [c], dict(axes=[1], keepdims=True))
    z = g.op("clamp", [g.op("add", [a, m])], dict(min=-float("inf"), max=0.5))
    q = g.const(np.array([[1, -2], [3, 4]], np.int8), "q", quant=QuantParams([0.5, 0.25], [0, 0], axis=0))
    s = g.const(np.float32(3.0), "scalar")
    g.outputs = [g.op("mul", [z, s]), q]
    return g


@pytest.mark.parametrize("locs", [False, True])
def test_round_trip_is_identical(locs):
    text = print_graph(sample(), locs=locs)
    g = parse(text)
    assert print_graph(g, locs=locs) == text
    assert print_graph(parse(print_graph(g, locs=locs)), locs=locs) == text


def test_round_trip_keeps_exact_values():
    g = sample()
    h = parse(print_graph(g))
    for a, b in zip(g.constants(), h.constants()):
        assert a.name == b.name and a.type == b.type
        np.testing.assert_array_equal(a.data, b.data)
    assert h.constants()[-1].type.quant == QuantParams([0.5, 0.25], [0, 0], axis=0)


def test_output_is_deterministic():
    assert print_graph(sample()) == print_graph(sample())


def test_elided_constants_do_not_parse():
    text = print_graph(sample(), elide=True)
    assert 'sha"' in text
    with pytest.raises(ParseError, match="elided"):
        parse(text)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("%x, %conv.weight", "%nope, %conv.weight"), "used before it is defined"),
    (lambda t: t.replace("conv2d(", "conv9d("), "unknown op"),
    (lambda t: t.replace(": f32[1,4,8,8]", ": f32[1,4,9,8]"), "shape rule gives"),
    (lambda t: t.replace("return", "retrun"), "line"),
    (lambda t: t.replace("groups=1", "groups=1, bogus=2"), "no attribute"),
    (lambda t: t.replace("f32[1,3,8,8]", "q7[1,3,8,8]"), "unknown dtype"),
])
def test_malformed_text_is_rejected_with_location(edit, message):
    with pytest.raises((ParseError, ShapeError), match=message):
        parse(edit(print_graph(sample())))
