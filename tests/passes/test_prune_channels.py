"""prune-channels: half the channels of every zoo model removed (verified IR, torch agrees with the
interpreter, parameters and MACs counted by torch drop by what the report says), round_to,
protect, per-layer ratios, and each importance checked against scores computed in torch."""
import numpy as np
import pytest
import torch
from rich.console import Console
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import mcuforge
from mcuforge import zoo
from mcuforge.errors import UsageError
from mcuforge.ir.interpreter import run
from mcuforge.passes.manager import PassManager
from mcuforge.passes.prune_channels import kept


def prune(g, **options):
    return PassManager([("prune-channels", options)], debug=True).run(g)  # verifies the IR after the pass


def torch_counts(g, x) -> tuple[int, int]:
    """(parameters and buffers, MACs) of the graph as torch counts them on `to_torch(g)`."""
    module = mcuforge.to_torch(g)
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        module(torch.from_numpy(x))
    return sum(t.numel() for t in [*module.parameters(), *module.buffers()]), flops.get_total_flops() // 2


@pytest.mark.parametrize("name", zoo.names())
def test_half_of_every_zoo_model(float_zoo, name):
    g, (x,) = float_zoo(name)
    params, macs = torch_counts(g, x)
    ctx = prune(g, ratio=0.5)
    report = ctx.pruning
    module = mcuforge.to_torch(g)
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    want = run(g, x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))
    params_after, macs_after = torch_counts(g, x)
    assert (report.before.params, report.before.macs) == (params, macs)
    assert (report.after.params, report.after.macs) == (params_after, macs_after) and macs_after < macs
    pruned = [r for r in report.groups if r.removed]
    assert pruned and ctx.stats["prune-channels.groups"] == len(pruned)
    assert ctx.stats["prune-channels.channels"] == sum(len(r.removed) for r in pruned)
    for field in ("params", "macs", "flash", "arena"):  # per-group savings add up to the total
        assert sum(getattr(r.saved, field) for r in report.groups) == getattr(report.before - report.after, field)
    for r in pruned:
        assert r.after == kept(r.before, 0.5, 8) and len(r.removed) == r.before - r.after


def test_kept_counts():
    assert [kept(24, 0.5, 8), kept(3, 0.5, 8), kept(16, 0.99, 8), kept(10, 0.3, 1), kept(64, 0.3, 8)] == [16, 3, 8, 7, 48]


def conv_channels(g):
    return {n.name: n.output.shape[1] for n in g.nodes if n.op == "conv2d"}


def test_round_to_protect_and_per_layer_ratio(float_zoo):
    g, _ = float_zoo("resnet8")
    before = conv_channels(g)
    prune(g, ratio=0.3, round_to=8)
    after = conv_channels(g)
    assert all(c % 8 == 0 for c in after.values()) and after != before
    g, _ = float_zoo("resnet8")
    ctx = prune(g, ratio=0.5, round_to=1, protect=["features_2_shortcut"])
    after = conv_channels(g)
    assert after["features_2_shortcut"] == after["features_2_body_1_0"] == 32  # the protected group
    assert after["features_3_body_0_0"] == 32 and after["features_0_0"] == 8
    (record,) = [r for r in ctx.pruning.groups if "features_2_shortcut" in r.layers]
    assert record.reason == "protected" and not record.removed
    g, _ = float_zoo("resnet8")
    prune(g, ratio={"features_1_body_0_0": 0.5, "features_3_body_0_0": 0.25}, round_to=1)
    assert conv_channels(g) == {**before, "features_1_body_0_0": 8, "features_3_body_0_0": 48}


class Net(nn.Module):
    """conv-(bn)-relu, conv-relu, global mean, linear: two prunable groups (a, b)."""

    def __init__(self, bn=False):
        super().__init__()
        self.a, self.b, self.head = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Linear(8, 4)
        self.bn = nn.BatchNorm2d(8) if bn else nn.Identity()

    def forward(self, x):
        y = torch.relu(self.b(torch.relu(self.bn(self.a(x)))))
        return self.head(y.mean((2, 3)))


def net(bn=False, seed=0):
    torch.manual_seed(seed)
    model = Net(bn).eval()
    if bn:
        with torch.no_grad():
            model.bn.weight.uniform_(0.1, 2), model.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 8, 8)
    g = mcuforge.trace(model, (x,))
    PassManager("canonicalize").run(g)  # batch norm not folded
    return model, g


def removed(ctx) -> dict[str, list[int]]:
    return {r.layers[0]: r.removed for r in ctx.pruning.groups if r.removed}


def lowest(score, n_removed=3) -> list[int]:
    return sorted(np.argsort(score.detach().numpy(), kind="stable")[:n_removed].tolist())


def test_l1_and_l2_sum_over_producer_and_consumer_weights():
    model, g = net()
    a, b, head = model.a.weight, model.b.weight, model.head.weight
    for p, importance in ((1, "l1"), (2, "l2")):
        scores = {"a": (a.abs() ** p).sum((1, 2, 3)) + (b.abs() ** p).sum((0, 2, 3)),
                  "b": (b.abs() ** p).sum((1, 2, 3)) + (head.abs() ** p).sum(0)}
        _, g = net()
        got = removed(prune(g, ratio=0.375, round_to=1, importance=importance))
        assert got == {k: lowest(s) for k, s in scores.items()}, importance
    _, g1 = net()
    _, g2 = net()
    assert removed(prune(g1, ratio=0.375, round_to=1)) != removed(prune(g2, ratio=0.375, round_to=1, importance="l2"))


def test_bn_scale_uses_the_batch_norm_and_falls_back_to_l1():
    model, g = net(bn=True)
    ctx = prune(g, ratio=0.375, round_to=1, importance="bn_scale")
    assert removed(ctx)["a"] == lowest(model.bn.weight.abs())
    by_layer = {r.layers[0]: r.importance for r in ctx.pruning.groups if r.removed}
    assert by_layer == {"a": "bn_scale", "b": "l1"}  # b has no batch norm


def test_taylor_matches_torch_autograd():
    model, g = net(seed=1)
    torch.manual_seed(2)
    data = [(torch.randn(4, 3, 8, 8), torch.randint(0, 4, (4,))) for _ in range(3)]
    scores = {"a": torch.zeros(8), "b": torch.zeros(8)}
    for x, y in data:  # Molchanov et al. 2019: (sum over a channel's weights of w * dL/dw)^2, summed over batches
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        wg = {k: (m.weight * m.weight.grad).detach() for k, m in (("a", model.a), ("b", model.b), ("h", model.head))}
        scores["a"] += (wg["a"].sum((1, 2, 3)) + wg["b"].sum((0, 2, 3))) ** 2
        scores["b"] += (wg["b"].sum((1, 2, 3)) + wg["h"].sum(0)) ** 2
    expected = {k: lowest(s) for k, s in scores.items()}
    nhwc = g.clone()
    assert removed(prune(g, ratio=0.375, round_to=1, importance="taylor", data=data)) == expected
    PassManager("to-nhwc").run(nhwc)  # weights in OHWI: gradients are mapped back from torch's OIHW
    assert removed(prune(nhwc, ratio=0.375, round_to=1, importance="taylor", data=data)) == expected


def test_text_pipeline_stats_missed_and_report(float_zoo):
    g, _ = float_zoo("tiny_cnn")
    ctx = PassManager("prune-channels{ratio=0.5,importance=l2,round_to=4}", debug=True).run(g)
    assert dict(ctx.stats) == {"prune-channels.groups": 2, "prune-channels.channels": 12}
    assert [(m.node, m.reason) for m in ctx.missed] == [
        ("head", "channels not pruned: reaches graph output %head")]
    report = ctx.pruning
    text, md = str(report), report.to_markdown()
    assert "8 -> 4" in text and "16 -> 8" in text and f"{report.after.macs:,}" in text
    assert "| 1 | features_0_0 | 8 -> 4 | l2 |" in md and "reaches graph output %head" in md
    console = Console(record=True, width=150)
    console.print(report.to_rich())
    text = console.export_text()
    assert "channel pruning" in text and f"{report.before.params:,}" in text


@pytest.mark.parametrize("options, message", [
    (dict(importance="l3"), "unknown importance 'l3'"),
    (dict(importance="taylor"), "needs calibration data with targets"),
    (dict(ratio=1.0), "must be a number in [0, 1)"),
    (dict(round_to=0), "round_to=0 must be a positive integer"),
    (dict(protect=["nope"]), "no layer named nope"),
    (dict(ratio={"head2": 0.5}), "layers whose output channels can be named: features_0_0, features_2_0, head"),
])
def test_bad_options(float_zoo, options, message):
    g, _ = float_zoo("tiny_cnn")
    with pytest.raises(UsageError) as e:
        prune(g, **options)
    assert message in str(e.value)


def test_quantized_graphs_are_refused(float_zoo):
    g, (x,) = float_zoo("tiny_cnn")
    art = mcuforge.compile(g, emit=(), quantize="int8", calibration=x, io="float")
    with pytest.raises(UsageError, match="prune before `quantize`"):
        prune(art.graph)
