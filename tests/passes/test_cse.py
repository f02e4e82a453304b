"""cse: equal nodes and equal constants merge; anything that differs stays apart."""
import numpy as np
import torch
import torch.nn.functional as F

from mcuforge.ir.graph import Graph
from mcuforge.ir.parser import parse
from mcuforge.ir.printer import print_graph
from mcuforge.ir.types import TensorType
from mcuforge.passes.manager import PassManager

CONV = dict(stride=[1, 1], pads=[1, 1, 1, 1], dilation=[1, 1])
rng = np.random.default_rng(0)


def test_equal_nodes_and_constants_merge(apply):
    g = Graph()
    x = g.add_input("x", TensorType((1, 2, 5, 5)))
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    # the same weights in two constants, the second conv also spelled with a tuple attribute
    c1 = g.op("conv2d", [x, g.const(w, "w1")], CONV)
    c2 = g.op("conv2d", [x, g.const(w.copy(), "w2")], dict(CONV, stride=(1, 1)))
    r1, r2 = g.op("relu", [c1]), g.op("relu", [c2])
    g.outputs = [g.op("add", [r1, r2])]
    a = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    ctx, (out,) = apply(g, "cse", a)
    assert g.count() == {"add": 1, "conv2d": 1, "relu": 1}
    assert ctx.stats["cse.constants"] == 1 and ctx.stats["cse.nodes"] == 2
    add = g.nodes[-1]
    assert add.inputs[0] is add.inputs[1]
    ref = 2 * F.relu(F.conv2d(torch.from_numpy(a), torch.from_numpy(w), padding=1))
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_differences_keep_nodes_apart(apply):
    g = Graph()
    x, y = g.add_input("x", TensorType((2, 3))), g.add_input("y", TensorType((2, 3)))
    outs = [
        g.op("add", [x, y]), g.op("add", [y, x]),  # no commutativity
        g.op("add", [x, y], {"act": "relu"}),  # other attributes
        g.op("mul", [x, g.const(np.ones(3, np.float32), "a")]),
        g.op("mul", [x, g.const(np.ones((1, 3), np.float32), "b")]),  # same bytes, other shape
        g.op("mul", [x, g.const(np.full(3, 2, np.float32), "c")]),
    ]
    g.outputs = [g.op("concat", outs, {"axis": 0})]
    before = g.count()
    a, b = rng.standard_normal((2, 2, 3)).astype(np.float32)
    ctx, _ = apply(g, "cse", a, b)
    assert g.count() == before and len(g.constants()) == 3
    assert not ctx.stats["cse.nodes"] and not ctx.stats["cse.constants"]


def test_two_graph_outputs_are_not_merged(apply):
    g = Graph()
    x = g.add_input("x", TensorType((4,)))
    g.outputs = [g.op("relu", [x]), g.op("relu", [x])]
    apply(g, "cse", np.arange(4, dtype=np.float32) - 2)
    assert g.count("relu") == 2 and g.outputs[0] is not g.outputs[1]


def test_before_and_after_in_text_form():
    """The pass on a graph written in the IR's text form, and what it leaves, in the same form."""
    g = parse("""
graph @g(%x: f32[2,5]) -> (%add) {
  %relu = relu(%x) : f32[2,5]
  %relu_1 = relu(%x) : f32[2,5]
  %add = add(%relu, %relu_1) {act="none"} : f32[2,5]
  return %add
}
""")
    PassManager("cse", debug=True).run(g)
    assert print_graph(g) == """graph @g(%x: f32[2,5]) -> (%add) {
  %relu = relu(%x) : f32[2,5]
  %add = add(%relu, %relu) {act="none"} : f32[2,5]
  return %add
}
"""
