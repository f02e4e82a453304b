"""fold-bn: batch_norm folded into conv1d/conv2d/conv_transpose2d/linear, checked against torch."""
import numpy as np
import pytest
import torch
from torch import nn

from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import TensorType
from mcuforge.passes.manager import PassManager

OPS = {nn.Conv1d: "conv1d", nn.Conv2d: "conv2d", nn.ConvTranspose2d: "conv_transpose2d", nn.Linear: "linear"}


def to_last(a):  # channels first -> channels last
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def build(mod, bn, x_shape, channels_last=False, act="none", weight_input=False):
    """The IR of `bn(mod(x))` with the torch modules' parameters; returns (graph, conv node)."""
    g = Graph()
    x = g.add_input("x", TensorType((x_shape[0], *x_shape[2:], x_shape[1]) if channels_last else x_shape))
    op, w = OPS[type(mod)], mod.weight.detach().numpy()
    attrs = {"act": act}
    if op != "linear":
        nd = w.ndim - 2
        layout = ("NWC" if nd == 1 else "NHWC") if channels_last else ("NCW" if nd == 1 else "NCHW")
        attrs.update(stride=list(mod.stride), pads=list(mod.padding) * 2, dilation=list(mod.dilation),
                     groups=mod.groups, layout=layout)
        if op == "conv_transpose2d":
            attrs["output_padding"] = list(mod.output_padding)
        if channels_last:  # OIHW -> OHWI; (I, O/g, kH, kW) -> (O/g, kH, kW, I)
            w = np.moveaxis(w, 0 if op == "conv_transpose2d" else 1, -1)
    wv = g.add_input("w", TensorType(w.shape)) if weight_input else g.const(w, "w")
    operands = [x, wv] + ([g.const(mod.bias.detach().numpy(), "b")] if mod.bias is not None else [])
    y = g.op(op, operands, attrs)
    params = [g.const(t.detach().numpy(), n) for t, n in
              zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), ("scale", "shift", "mean", "var"))]
    g.outputs = [g.op("batch_norm", [y, *params], {"eps": bn.eps, "axis": -1 if channels_last else 1})]
    return g, y.producer


def bn_for(c, rank):
    bn = nn.BatchNorm1d(c) if rank < 4 else nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    return bn.eval()


CASES = {
    "conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1), 4, (1, 3, 6, 6)),
    "conv2d-nobias": (lambda: nn.Conv2d(3, 4, 3, bias=False), 4, (1, 3, 6, 6)),
    "conv2d-groups": (lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2), 6, (1, 4, 5, 5)),
    "depthwise": (lambda: nn.Conv2d(4, 4, 3, groups=4, bias=False), 4, (2, 4, 5, 5)),
    "conv1d": (lambda: nn.Conv1d(3, 5, 3, stride=2), 5, (2, 3, 11)),
    "linear": (lambda: nn.Linear(6, 5), 5, (4, 6)),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), 6, (1, 4, 4, 4)),
    "conv_transpose2d-groups": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2, bias=False), 6, (1, 4, 3, 3)),
}


@pytest.mark.parametrize("case, channels_last", [(c, last) for c in CASES for last in (False, True)
                                                 if not (last and c == "linear")])  # linear has one layout
def test_folds_like_torch(apply, case, channels_last):
    make, c, x_shape = CASES[case]
    torch.manual_seed(0)
    mod, bn = make(), bn_for(c, len(x_shape))
    x = torch.randn(x_shape)
    ref = bn(mod(x)).detach().numpy()
    g, conv = build(mod, bn, x_shape, channels_last)
    a = to_last(x.numpy()) if channels_last else x.numpy()
    ctx, (out,) = apply(g, "fold-bn", a)
    assert g.count() == {conv.op: 1} and ctx.stats["fold-bn.folded"] == 1 and not ctx.missed
    assert len(g.nodes[0].inputs) == 3  # a bias, created if the conv had none
    np.testing.assert_allclose(np.moveaxis(out, -1, 1) if channels_last else out, ref, rtol=1e-4, atol=1e-5)


def test_folded_then_fused_is_one_conv():
    torch.manual_seed(0)
    mod, bn = nn.Conv2d(3, 4, 3), bn_for(4, 4)
    g, _ = build(mod, bn, (1, 3, 6, 6))
    g.outputs = [g.op("relu", g.outputs)]
    PassManager("fold-bn,fuse", debug=True).run(g)
    assert g.count() == {"conv2d": 1} and g.nodes[0].attrs["act"] == "relu"
    x = torch.randn(1, 3, 6, 6)
    np.testing.assert_allclose(run(g, x.numpy())[0], torch.relu(bn(mod(x))).detach().numpy(), rtol=1e-4, atol=1e-5)


def refusal(kind):
    torch.manual_seed(0)
    if kind == "axis":  # linear over (N, L, features) normalizes features on axis 2, the bn axis 1
        g, _ = build(nn.Linear(6, 5), bn_for(5, 3), (2, 5, 6))
        return g
    if kind == "not-a-conv":
        g = Graph()
        y = g.op("relu", [g.add_input("x", TensorType((1, 4, 3, 3)))])
        ps = [g.const(np.full(4, v, np.float32), "p") for v in (2.0, 0.5, 0.1, 1.5)]
        g.outputs = [g.op("batch_norm", [y, *ps])]
        return g
    g, conv = build(nn.Conv2d(3, 4, 3), bn_for(4, 4), (1, 3, 5, 5), act="relu" if kind == "act" else "none",
                    weight_input=kind == "weights")
    if kind == "users":
        g.outputs = [*g.outputs, g.op("sigmoid", [conv.output])]
    return g


@pytest.mark.parametrize("kind, reason", [
    ("users", "has other users"), ("act", "already applies act=relu"), ("weights", "not constants: %w"),
    ("axis", "normalizes axis 1, but the channels of linear %linear are on axis 2"),
    ("not-a-conv", "not the result of"),
])
def test_refusals_leave_the_batch_norm_and_say_why(apply, kind, reason):
    g = refusal(kind)
    before = g.count()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs]
    ctx, _ = apply(g, "fold-bn", *inputs)
    assert g.count() == before and g.count("batch_norm") == 1
    (missed,) = ctx.missed
    bn = next(n for n in g.nodes if n.op == "batch_norm")
    assert (missed.pass_name, missed.node, missed.op) == ("fold-bn", bn.name, "batch_norm")
    assert reason in missed.reason
