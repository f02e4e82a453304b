"""Batch-norm folding into the convolution or linear layer before it."""
from __future__ import annotations

import numpy as np

from ..ir import ops
from ..ir.graph import Graph, Node
from ..ir.pattern import Pat, Rule, rewrite
from ..ir.types import DType

FOLDS_INTO = ("conv1d", "conv2d", "conv_transpose2d", "linear")


def can_fold_bn(bn: Node, graph: Graph) -> tuple[bool, str]:
    """Whether batch_norm `bn` can fold into the node producing its input: (True, "") or (False, why)."""
    x = bn.inputs[0]
    conv = x.producer
    if conv is None or conv.op not in FOLDS_INTO:
        return False, f"its input %{x.name} is not the result of a {'/'.join(FOLDS_INTO)}"
    if len(x.users) > 1 or graph.escapes(x):
        return False, f"%{x.name} ({conv.op}) has other users, which need it unnormalized"
    if conv.attrs["act"] != "none":
        return False, f"{conv.op} %{conv.name} already applies act={conv.attrs['act']}"
    params = [*conv.inputs[1:], *bn.inputs[1:]]
    if not all(v.is_const for v in params):
        names = ", ".join("%" + v.name for v in params if not v.is_const)
        return False, f"weights or statistics are not constants: {names}"
    if any(v.dtype not in (DType.f32, DType.f16) or v.type.quant for v in params):
        return False, "weights are not float (fold before quantizing)"
    rank = len(x.shape)
    channels = rank - 1 if conv.op == "linear" else ops.channel_axis(conv.attrs["layout"]) % rank
    axis = ops.norm_axis(bn.attrs["axis"], rank)
    if axis != channels:
        return False, f"it normalizes axis {axis}, but the channels of {conv.op} %{conv.name} are on axis {channels}"
    return True, ""


def scale_out_channels(node: Node, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """`w` (the weight of `node`) with the weights of each output channel c multiplied by s[c]."""
    if node.op != "conv_transpose2d":
        return w * s.reshape(-1, *[1] * (w.ndim - 1))  # O first: OI[H]W, O[H]WI, linear's (O, I)
    g = node.attrs["groups"]
    if node.attrs["layout"] == "NCHW":  # (I, O/g, kH, kW); group k holds input rows k*I/g.. and outputs k*O/g..
        i, og, kh, kw = w.shape
        return (w.reshape(g, i // g, og, kh, kw) * s.reshape(g, 1, og, 1, 1)).reshape(w.shape)
    og, kh, kw, i = w.shape  # (O/g, kH, kW, I)
    return (w.reshape(og, kh, kw, g, i // g) * s.reshape(g, og).T.reshape(og, 1, 1, g, 1)).reshape(w.shape)


def fold(g: Graph, m):
    bn = m.root
    ok, why = can_fold_bn(bn, g)
    if not ok:
        return m.miss(why)
    conv = bn.inputs[0].producer
    gamma, beta, mean, var = (v.data.astype(np.float64) for v in bn.inputs[1:])
    s = gamma / np.sqrt(var + bn.attrs["eps"])
    w = conv.inputs[1]
    b = conv.inputs[2].data.astype(np.float64) if len(conv.inputs) > 2 else np.zeros_like(s)
    b_name = conv.inputs[2].name if len(conv.inputs) > 2 else f"{conv.name}.bias"
    new_w = g.const(scale_out_channels(conv, w.data.astype(np.float64), s), w.name, w.dtype)
    new_b = g.const((b - mean) * s + beta, b_name, w.dtype)
    return m.replacement(conv.op, [conv.inputs[0], new_w, new_b], conv.attrs, name=conv.name, meta=dict(conv.meta))


RULES = [Rule(Pat("batch_norm"), fold, "folded")]


def fold_bn(graph: Graph, ctx) -> bool:
    """Folds batch_norm into the conv1d/conv2d/conv_transpose2d/linear that feeds it.

    y = (conv(x) - mean) / sqrt(var + eps) * scale + bias becomes conv'(x) with every output
    channel's weights scaled by scale / sqrt(var + eps) and the bias shifted (a bias is created if
    the conv has none). Both weight layouts (NCHW and NHWC conventions) and grouped transposed
    convolutions are handled. Legality is `can_fold_bn`: the conv's result must feed only the
    batch_norm, carry no fused activation, have constant float weights, and the batch_norm must
    normalize the conv's channel axis. A batch_norm that cannot fold stays, and `ctx.missed`
    says why. Preconditions: float weights (run before quantize). Preserves: the batch_norm's
    result type; the conv's name base and meta. Computes in float64, stores the weights' dtype.
    """
    return rewrite(graph, RULES, ctx)
