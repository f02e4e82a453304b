"""low-rank: linear and conv2d layers split by truncated SVD, checked against torch.

Oracles: torch runs the original module (weights of exact low rank: the split is lossless) and
`torch.linalg.svdvals` gives the Eckart-Young bound the truncated weights must meet exactly."""
import numpy as np
import pytest
import torch
from torch import nn

import mcuforge
from mcuforge.errors import UsageError
from mcuforge.ir.interpreter import run
from mcuforge.passes.manager import PassManager
from mcuforge.passes.pipelines import FLOAT

torch.manual_seed(0)


def low_rank_(shape, r):
    """A random weight of `shape` whose matrix (first axis vs the rest) has rank r."""
    return torch.randn(shape[0], r) @ torch.randn(r, int(np.prod(shape[1:]))) / 4


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, stride=(2, 1), padding=(1, 2), dilation=(1, 2))
        self.pw = nn.Conv2d(16, 24, 1)
        self.fc = nn.Linear(24 * 4 * 6, 32)

    def forward(self, x):
        return self.fc(torch.relu(self.pw(torch.relu(self.conv(x)))).flatten(1))


def float_graph(model, x):
    g = mcuforge.trace(model.eval(), (x,))
    PassManager(FLOAT).run(g)
    return g


def conv_matrix(w):  # OIHW -> M[(i, y), (o, x)], the matrix the kxk split factorizes
    o, i, kh, kw = w.shape
    return w.permute(1, 2, 0, 3).reshape(i * kh, o * kw)


def test_exact_when_weights_have_low_rank(apply):
    model, x = Net(), torch.randn(1, 8, 8, 6)
    with torch.no_grad():  # ranks 3 (conv as (i,y) x (o,x)), 5 (pointwise), 7 (linear)
        model.conv.weight.copy_(conv_matrix_inverse(torch.randn(24, 3) @ torch.randn(3, 48), 16, 8, 3, 3))
        model.pw.weight.copy_(low_rank_((24, 16, 1, 1), 5).reshape(24, 16, 1, 1))
        model.fc.weight.copy_(low_rank_((32, 576), 7))
    g = float_graph(model, x)
    ctx, (y,) = apply(g, "low-rank", x.numpy(), energy=1.0)
    with torch.no_grad():
        np.testing.assert_allclose(y, model(x).numpy(), rtol=1e-4, atol=1e-4)
    recs = {r.layer: r for r in ctx.low_rank}
    assert [(r.kind, r.rank, r.done) for r in recs.values()] == [("kxk", 3, True), ("matrix", 5, True),
                                                                 ("matrix", 7, True)]
    assert g.count("conv2d") == 4 and g.count("linear") == 2
    # params and MACs by hand: conv 8x3 -> 3 ch (k x 1), 3 -> 16 ch (1 x 3); output 4x6, middle 4x6 (the unpadded width)
    conv = next(r for r in recs.values() if r.kind == "kxk")
    assert conv.params == (16 * 8 * 9, 3 * 8 * 3 + 16 * 3 * 3)
    assert conv.macs == (4 * 6 * 16 * 8 * 9, 4 * 6 * 3 * 8 * 3 + 4 * 6 * 16 * 3 * 3)
    assert ctx.stats["low-rank.params_saved"] == sum(r.params[0] - r.params[1] for r in recs.values())
    assert ctx.stats["low-rank.output_sqnr_db"] > 80


def conv_matrix_inverse(m, o, i, kh, kw):  # M[(i, y), (o, x)] -> OIHW
    return m.reshape(i, kh, o, kw).permute(2, 0, 1, 3).contiguous()


@pytest.mark.parametrize("layer", ["fc", "conv"])
def test_truncated_error_is_the_svd_bound(layer):
    model, x = Net(), torch.randn(1, 8, 8, 6)
    g = float_graph(model, x)
    ctx = PassManager([("low-rank", {"rank": 4, "layers": [n.name for n in g.nodes
                                                            if n.op == ("linear" if layer == "fc" else "conv2d")][:1]})
                       ], debug=True).run(g)
    (rec,) = [r for r in ctx.low_rank if r.done]
    first, second = g.find(f"{rec.layer}.in"), g.find(rec.layer)
    w1, w2 = (torch.from_numpy(np.array(n.inputs[1].data, np.float64)) for n in (first, second))
    w = getattr(model, layer).weight.detach().double()
    if layer == "fc":
        s, eff = torch.linalg.svdvals(w), w2 @ w1
    else:  # W_eff[o, i, y, x] = sum_r w1[r, i, y, 0] w2[o, r, 0, x]
        s, eff = torch.linalg.svdvals(conv_matrix(w)), torch.einsum("riy,orx->oiyx", w1[..., 0], w2[:, :, 0])
    assert torch.linalg.norm(eff - w).item() == pytest.approx(torch.sqrt((s[4:] ** 2).sum()).item(), rel=1e-6)
    assert rec.energy == pytest.approx(((s[:4] ** 2).sum() / (s ** 2).sum()).item(), rel=1e-6)
    # the factorized layer computes exactly torch's layer with the truncated weight
    trace = {}
    run(g, x.numpy(), trace=trace)
    m = getattr(model, layer)
    with torch.no_grad():
        if layer == "fc":
            h = torch.relu(model.pw(torch.relu(model.conv(x)))).flatten(1)
            want = torch.nn.functional.linear(h.double(), eff, m.bias.double())
        else:
            want = torch.relu(torch.nn.functional.conv2d(x.double(), eff, m.bias.double(), m.stride, m.padding,
                                                         m.dilation))
    np.testing.assert_allclose(trace[rec.layer], want.numpy(), rtol=1e-4, atol=1e-4)


def test_energy_picks_the_smallest_rank_and_channels_last():
    model, x = Net(), torch.randn(1, 8, 8, 6)
    with torch.no_grad():  # rank 4 plus noise
        model.conv.weight.copy_(conv_matrix_inverse(torch.randn(24, 4) @ torch.randn(4, 48), 16, 8, 3, 3) / 4 +
                                0.05 * torch.randn(16, 8, 3, 3))
    g = mcuforge.compile(model, (x,), emit=(), passes="float,to-nhwc").graph
    w = next(n for n in g.nodes if n.op == "conv2d").inputs[1].data  # OHWI
    s = torch.linalg.svdvals(conv_matrix(torch.from_numpy(w.transpose(0, 3, 1, 2).copy())))
    want = int(np.argmax(np.cumsum(s.numpy() ** 2) / (s ** 2).sum().item() >= 0.9)) + 1
    before = g.clone()
    ctx = PassManager([("low-rank", {"energy": 0.9, "data": x.numpy()})], debug=True).run(g)
    rec = ctx.low_rank[0]
    assert (rec.kind, rec.rank) == ("kxk", want)
    assert rec.done
    (a,), (b,) = run(before, x.numpy()), run(g, x.numpy())
    sqnr = 10 * np.log10((a ** 2).sum() / ((a - b) ** 2).sum())
    assert 5 < sqnr < 60  # lossy, not broken
    assert ctx.stats["low-rank.output_sqnr_db"] == pytest.approx(sqnr, abs=0.06)


def test_refusals_say_why():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.Conv2d(4, 6, 1), nn.Flatten(), nn.Linear(6 * 16, 16))
    g = float_graph(model, torch.randn(1, 4, 6, 6))
    ctx = PassManager([("low-rank", {"rank": 3})]).run(g)
    reasons = [m.reason for m in ctx.missed]
    assert any("grouped conv (groups=4)" in r for r in reasons)
    assert any("rank 3 of 4 would take 30 weights and 480 MACs against 24 and 384" in r for r in reasons)
    assert g.count("conv2d") == 2 and g.count("linear") == 2  # only the linear (96 -> 16) is split
    with pytest.raises(UsageError, match="energy"):
        PassManager([("low-rank", {"energy": 1.5})]).run(g)
    with pytest.raises(UsageError, match="no layer named nope"):
        PassManager([("low-rank", {"layers": ["nope"]})]).run(g)


def test_pipeline_text_and_report():
    model, x = Net(), torch.randn(1, 8, 8, 6)
    plain = mcuforge.compile(model, (x,), emit=())
    art = mcuforge.compile(model, (x,), emit=(), passes="float,low-rank{rank=2},planned")
    saved = art.ctx.stats["low-rank.macs_saved"]
    assert saved > 0 and plain.report.total_macs - art.report.total_macs == saved
    assert art.report.total_params < plain.report.total_params
    assert f"| low-rank.macs_saved | {saved:,} |" in art.report.to_markdown()
