"""Fusion of activations and zero padding into the ops before them."""
from __future__ import annotations

import math

from ..ir import ops
from ..ir.graph import Graph
from ..ir.pattern import Pat, Rule, rewrite

TAKES_ACT = ("conv1d", "conv2d", "conv_transpose2d", "linear", "add", "sub", "mul")


def fuse_act(act: str):
    def into_producer(g: Graph, m):
        p, y = m.node("p"), m["p"]
        if p.attrs["act"] != "none":
            return m.miss(f"{p.op} %{p.name} already applies act={p.attrs['act']}")
        if len(y.users) > 1 or g.escapes(y):
            return m.miss(f"%{y.name} ({p.op}) has other users, which need it without {act}")
        return m.replacement(p.op, p.inputs, {**p.attrs, "act": act}, name=p.name, meta=dict(p.meta))
    into_producer.__name__ = f"fused_{act}"
    return into_producer


def fuse_pad(g: Graph, m):
    conv, pad = m.root, m.node("pad")
    rank, pp = len(m["x"].shape), pad.attrs["pads"]
    spatial = ops.spatial_axes(conv.attrs["layout"], rank)
    if pad.attrs["value"] != 0:
        return m.miss(f"pad %{pad.name} pads with {pad.attrs['value']}, convolution padding is zero")
    if any(pp[ax] or pp[rank + ax] for ax in range(rank) if ax not in spatial):
        return m.miss(f"pad %{pad.name} pads the batch or channel axis")
    if min(pp) < 0:
        return m.miss(f"pad %{pad.name} crops (negative pads)")
    cp, nd = conv.attrs["pads"], len(spatial)
    pads = [cp[i] + pp[ax] for i, ax in enumerate(spatial)] + \
           [cp[nd + i] + pp[rank + ax] for i, ax in enumerate(spatial)]
    return m.replacement(conv.op, [m["x"], *conv.inputs[1:]], {**conv.attrs, "pads": pads})


P = Pat(TAKES_ACT, name="p")
RULES = [
    Rule(Pat("relu", [P]), fuse_act("relu")),
    Rule(Pat("relu6", [P]), fuse_act("relu6")),
    Rule(Pat("clamp", [P], attrs={"min": 0, "max": 6}), fuse_act("relu6")),
    Rule(Pat("clamp", [P], attrs={"min": 0, "max": math.inf}), fuse_act("relu")),
    Rule(Pat(("conv1d", "conv2d"), [Pat("pad", [Pat.any("x")], name="pad"), ...]), fuse_pad, "fused_pad"),
]


def fuse(graph: Graph, ctx) -> bool:
    """Fuses activations into the `act` of the op before them, and zero pads into conv padding.

    relu, relu6, clamp(0, 6) and clamp(0, inf) fuse into a conv1d, conv2d, conv_transpose2d,
    linear, add, sub or mul that has no activation yet and whose result has no other user
    (otherwise `ctx.missed` says why). A `pad` fuses into the conv1d/conv2d after it when it
    pads with zero, only spatial axes, by non-negative amounts; the pad stays if it has other
    users. Preconditions: float graph (a quantized pad's zero is its zero point; fuse before
    quantize). Preserves: result types; the producer's name base and meta.
    """
    return rewrite(graph, RULES, ctx)
