"""dce: unused nodes go, everything that reaches an output stays."""
import numpy as np
import torch

from mcuforge.ir.graph import Graph
from mcuforge.ir.types import TensorType
from mcuforge.passes.manager import PassManager


def test_dead_chain_is_erased(apply):
    g = Graph()
    x = g.add_input("x", TensorType((2, 5)))
    unused_input = g.add_input("unused", TensorType((1,)))
    y = g.op("relu", [x])
    dead = g.op("sigmoid", [g.op("mul", [y, g.const(np.full(5, 3.0, np.float32), "three")])])
    g.op("tanh", [dead])
    g.outputs = [g.op("add", [y, x])]
    a = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    ctx, (out,) = apply(g, "dce", a, np.zeros(1, np.float32))
    assert g.count() == {"add": 1, "relu": 1}
    assert ctx.stats["dce.erased"] == 3
    assert g.inputs == [x, unused_input]  # the interface stays
    assert [c.name for c in g.constants()] == []
    t = torch.from_numpy(a)
    np.testing.assert_allclose(out, (torch.relu(t) + t).numpy(), rtol=1e-6)
    ctx, _ = apply(g, "dce", a, np.zeros(1, np.float32))
    assert not ctx.stats["dce.erased"]


def test_nothing_dead_means_unchanged(apply):
    g = Graph()
    x = g.add_input("x", TensorType((3,)))
    a, b = g.op("split", [x], {"axis": 0, "sizes": [1, 2]})  # b unused, but its node is live
    g.outputs = [a]
    pm = PassManager("dce")
    pm.run(g)
    assert pm.records[0].changed is False and g.count() == {"split": 1}
