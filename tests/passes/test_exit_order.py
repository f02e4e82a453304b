"""exit-order: an early exit's head scheduled before the layers only the later exits need."""
import numpy as np
import torch
from torch import nn

import mcuforge
from mcuforge.ir.early_exit import resolve
from mcuforge.ir.interpreter import run
from mcuforge.passes.base import PassContext
from mcuforge.passes.manager import PassManager


class LateHead(nn.Module):
    """The cheap head is written last, so the traced order computes the deep branch first."""

    def __init__(self):
        super().__init__()
        self.stem, self.deep, self.cheap = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 8, 3), nn.Linear(4 * 16, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        deep = self.deep(h).mean((2, 3))
        return deep, self.cheap(h.flatten(1))


def test_moves_the_cheap_head_first_and_keeps_the_numbers():
    torch.manual_seed(0)
    model, x = LateHead().eval(), torch.randn(1, 1, 6, 6)
    g = mcuforge.trace(model, (x,))
    ops_before = [n.op for n in g.nodes]
    assert ops_before.index("linear") > ops_before.index("mean")
    ctx = PassContext()
    PassManager([("exit-order", {})], debug=True).run(g, ctx)  # no exits: nothing to do
    assert [n.op for n in g.nodes] == ops_before
    ctx.exits = resolve(g, {1: 0.9, 0: None})
    PassManager([("exit-order", {})], debug=True).run(g, ctx)
    ops_after = [n.op for n in g.nodes]
    assert ops_after.index("linear") < ops_after.index("conv2d", 1) and sorted(ops_after) == sorted(ops_before)
    assert ctx.stats["exit-order.macs_to_exit0"] == 16 * 4 * 9 + 64 * 3  # stem, then the cheap head
    assert ctx.stats["exit-order.macs_to_exit1"] == 16 * 4 * 9 + 64 * 3 + 4 * 8 * 36
    with torch.no_grad():
        for got, want in zip(run(g, x.numpy()), model(x), strict=True):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
