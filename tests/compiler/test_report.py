"""The per-layer report: MACs and parameters against hand counts, rendering."""
import numpy as np

from mcuforge.compiler.report import Report
from mcuforge.ir.cost import human_bytes
from mcuforge.ir.graph import Graph
from mcuforge.ir.types import TensorType


def test_counts_by_hand():
    g = Graph("m")
    x = g.add_input("x", TensorType((1, 3, 8, 8)))
    w = g.const(np.zeros((16, 3, 3, 3)), "w")
    b = g.const(np.zeros(16), "b")
    y = g.op("conv2d", [x, w, b], dict(stride=[2, 2], pads=[1, 1, 1, 1], dilation=[1, 1]), name="conv")
    dw = g.op("conv2d", [y, g.const(np.zeros((16, 1, 3, 3)), "dw.weight")],
              dict(stride=[1, 1], pads=[1, 1, 1, 1], dilation=[1, 1], groups=16), name="dw")
    t = g.op("conv_transpose2d", [dw, g.const(np.zeros((16, 4, 2, 2)), "up.weight")],
             dict(stride=[2, 2], pads=[0, 0, 0, 0], dilation=[1, 1]), name="up")
    f = g.op("reshape", [t], dict(shape=[1, 4 * 8 * 8]))
    o = g.op("linear", [f, g.const(np.zeros((10, 256)), "fc.weight")], name="fc")
    g.outputs = [o]
    r = Report.build(g)
    by = {layer.name: layer for layer in r.layers}
    assert by["conv"].macs == 16 * 4 * 4 * 27 and by["conv"].params == 16 * 27 + 16
    assert by["dw"].macs == 16 * 4 * 4 * 9
    assert by["up"].macs == 16 * 4 * 4 * (4 * 2 * 2) and by["up"].shape == (1, 4, 8, 8)
    assert by["fc"].macs == 10 * 256 and by["reshape"].macs == 0
    assert r.flash_bytes == 4 * r.total_params
    assert by["conv"].act_bytes == 16 * 4 * 4 * 4
    text = str(r)
    assert "conv" in text and f"{r.total_macs:,}" in text
    md = r.to_markdown()
    assert md.count("\n|") == len(r.layers) + 3


def test_human_bytes():
    assert [human_bytes(n) for n in (10, 2048, 3 * 1024 ** 2)] == ["10 B", "2.0 KiB", "3.0 MiB"]
