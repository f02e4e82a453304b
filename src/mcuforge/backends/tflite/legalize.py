"""What the graph must be before it becomes TFLite: channel-last (`LEGALIZE`, the to-nhwc pass,
which compile() runs before the memory plan), and every convolution or max pool whose padding is
not TFLite's SAME or VALID reading an explicit `pad` op (`explicit_pads`, which `to_tflite` applies
to its own copy: the C backend keeps the padded op, which its kernels run without the copy).
"""
from __future__ import annotations

import numpy as np

from ...ir import ops
from ...ir.graph import Graph, Node
from ...ir.types import DType
from ..base import legalized
from .lower import tflite_padding, window_2d

# TFLite's convolutions, pools and resizes are channel-last: compile() runs these before the plan
LEGALIZE = (("to-nhwc", {}),)


def channel_last(graph: Graph) -> Graph:
    """`graph` when its layout ops are all channel-last, else a copy the legalization ran over."""
    if all(n.attrs.get("layout", "NHWC")[1] != "C" for n in graph.nodes):
        return graph
    return legalized(graph, LEGALIZE)


_PADDED = {"conv1d", "conv2d", "qconv1d", "qconv2d", "max_pool1d", "max_pool2d"}


def _pad_to_split(n: Node) -> bool:
    """Whether `n` pads in a way TFLite's op cannot (not SAME or VALID; any pad on a dilated pool)."""
    if n.op not in _PADDED:
        return False
    a, x, y = n.attrs, n.inputs[0], n.output
    kernel, stride, dil, pads = window_2d(a, a["kernel"] if "pool" in n.op else n.inputs[1].shape[1:-1])
    if "pool" in n.op and dil != [1, 1]:
        return any(pads)
    sizes, outs = ([1, *v.shape[1:-1]][-2:] for v in (x, y))
    return tflite_padding(sizes, outs, kernel, stride, dil, pads) is None


def explicit_pads(graph: Graph) -> Graph:
    """`graph`, or a copy in which each convolution and max pool that pads in a way TFLite cannot
    reads an explicit `pad` op instead (of zero, the zero point, or the lowest value): TFLite runs
    it as PAD then the op, and the padded tensor becomes an IR value the memory planner sees (it
    outlives the input only by the PAD)."""
    if not any(_pad_to_split(n) for n in graph.nodes):
        return graph
    graph = graph.clone()
    for n in graph.nodes:
        if not _pad_to_split(n):
            continue
        a, x, y = n.attrs, n.inputs[0], n.output
        nd = len(a["stride"])
        kernel = a["kernel"] if "pool" in n.op else n.inputs[1].shape[1:-1]
        ends = [max((o - 1) * s + d * (k - 1) + 1 - size - p, 0) for o, s, d, k, size, p in
                zip(y.shape[1:-1], a["stride"], a.get("dilation", [1] * nd), kernel, x.shape[1:-1], a["pads"])]
        if "pool" in n.op:
            value = float(np.finfo(np.float32).min) if x.dtype == DType.f32 else int(np.iinfo(x.dtype.np).min)
        else:
            value = 0.0 if x.dtype == DType.f32 else x.type.quant.zero_point[0]
        padded = graph.op("pad", [x], {"pads": [0, *a["pads"][:nd], 0, 0, *ends, 0], "value": value},
                          name=f"{n.name}.pad", before=n)
        graph.set_input(n, 0, padded)
        n.attrs = {**a, "pads": [0] * (2 * nd), **({"ceil_mode": False} if "ceil_mode" in a else {})}
        assert ops.get(n.op).result_types([v.type for v in n.inputs], n.attrs)[0].shape == y.shape
    return graph
