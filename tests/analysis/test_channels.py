"""Channel dependency groups: the couplings of residual adds, inverted residuals, concats, channel
shuffles, grouped convs and flattens, the groups that must stay and why, and removals checked
against an independent oracle: the unpruned graph with the removed channels zeroed."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mcuforge
from mcuforge.analysis.channels import analyze, remove_channels
from mcuforge.ir.graph import Graph
from mcuforge.ir.interpreter import run
from mcuforge.ir.types import TensorType
from mcuforge.ir.verify import verify
from mcuforge.passes.manager import PassManager


def member(groups, value_name, axis=1):
    """(group, member) holding axis `axis` of the value named `value_name`."""
    found = [(g, m) for g in groups for m in g.members if m.value.name == value_name and m.axis == axis]
    assert found, f"%{value_name}[{axis}] is in no group"
    return found


def rows(group, value_name, axis=1) -> list[list[int]]:
    (m,) = [m for m in group.members if m.value.name == value_name and m.axis == axis]
    return m.index.tolist()


def nodes(g, op):
    return [n for n in g.nodes if n.op == op]


def check_removals(g, x, seed=0):
    """Remove a random half of every free group's channels; the result must compute what the
    original computes with those channels zeroed (every weight, bias and statistic slice of them
    set to 0, so they carry exact zeros through relu, pooling and adds)."""
    zeroed = g.clone()
    groups, twins = analyze(g), analyze(zeroed)
    rng = np.random.default_rng(seed)
    removed = 0
    for group, twin in zip(groups, twins):
        if group.frozen or group.size < 2:
            continue
        drop = np.sort(rng.choice(group.size, group.size // 2, replace=False))
        for m in twin.members:
            if m.value.is_const:
                data = m.value.data.copy()
                data[(slice(None),) * m.axis + (m.index[drop].ravel(),)] = 0
                m.value.data = data
        remove_channels(g, group, drop, groups)
        removed += len(drop)
    verify(g)
    assert removed > 0
    np.testing.assert_allclose(run(g, x)[0], run(zeroed, x)[0], rtol=1e-5, atol=1e-5)


def test_resnet8_residual_adds(float_zoo):
    g, (x,) = float_zoo("resnet8")
    groups = analyze(g)
    for add in nodes(g, "add"):  # both operands and the sum are one set of channels, in the same order
        (group, _), = member(groups, add.name)
        for v in [*add.inputs, add.output]:
            assert rows(group, v.name) == [[c] for c in range(group.size)]
    (stage1, _), = member(groups, "add")
    assert stage1.layers == ["features_0_0", "features_1_body_1_0"] and not stage1.frozen
    names = {(m.value.name, m.axis) for m in stage1.members}  # readers of the sum lose input channels
    assert {("features.2.body.0.0.weight_1", 1), ("features.2.shortcut.weight", 1)} <= names
    (stage2, _), = member(groups, "add_1")
    assert stage2.layers == ["features_2_body_1_0", "features_2_shortcut"]
    check_removals(g, x)


def test_mobilenet_v2_inverted_residuals(float_zoo):
    g, (x,) = float_zoo("mobilenet_v2")
    groups = analyze(g)
    depthwise = [n for n in nodes(g, "conv2d") if n.attrs["groups"] > 1]
    assert len(depthwise) == 17
    for dw in depthwise:  # expand output = depthwise input = depthwise output = project input
        (group, _), = member(groups, dw.name)
        assert rows(group, dw.inputs[0].name) == rows(group, dw.name) == [[c] for c in range(group.size)]
        (project,) = dw.output.users
        assert rows(group, project.inputs[1].name) == [[c] for c in range(group.size)]
    sums = nodes(g, "add")
    assert len(sums) == 10
    for add in sums:
        (group, _), = member(groups, add.name)
        assert {add.inputs[0].name, add.inputs[1].name} <= {m.value.name for m in group.members}
    (stage, _), = member(groups, sums[1].name)  # the 32-channel stage: three project convs, two adds
    assert len(stage.layers) == 3 and stage.size == 16
    check_removals(g, x)


def test_squeezenet_concat_slices(float_zoo):
    g, (x,) = float_zoo("squeezenet1_1")
    groups = analyze(g)
    cats = nodes(g, "concat")
    assert len(cats) == 8
    for cat in cats:
        e1, e3 = cat.inputs
        (g1, _), = member(groups, e1.name)
        (g3, _), = member(groups, e3.name)
        assert g1 is not g3
        n = e1.shape[1]  # a channel of an input is a channel of the concat, after the ones before it
        assert rows(g1, cat.name) == [[c] for c in range(n)]
        assert rows(g3, cat.name) == [[n + c] for c in range(n)]
        reader = cat.output.users[0]  # the next squeeze conv (or the max pool before it)
        while reader.op != "conv2d":
            (reader,) = reader.output.users
        assert rows(g3, reader.inputs[1].name) == [[n + c] for c in range(n)]
    check_removals(g, x)


def test_shufflenet_channel_shuffle(float_zoo):
    g, (x,) = float_zoo("shufflenet_v2")
    groups = analyze(g)
    shuffles = [n for n in nodes(g, "transpose")]
    assert len(shuffles) == 16
    for t in shuffles:
        cat, out = t.inputs[0].producer.inputs[0], t.output.users[0].output  # reshape, transpose, reshape
        half = cat.shape[1] // 2
        covered = []
        for group, _ in member(groups, cat.name):
            for before, after in zip(rows(group, cat.name), rows(group, out.name)):
                # channel k of each half go together and land side by side (a unit may hold several
                # such pairs, tied by earlier shuffles)
                ks = [k for k in before if k < half]
                assert before == ks + [half + k for k in ks]
                assert after == sorted(c for k in ks for c in (2 * k, 2 * k + 1))
                covered += ks
        assert sorted(covered) == list(range(half))
    check_removals(g, x)


class Mixed(nn.Module):
    """Unfolded batch norm, a grouped conv (2 in, 3 out per group), slices swapped by a concat, a
    grouped transposed conv (3 in, 2 out per group), a pad, a global mean before a linear layer."""

    def __init__(self):
        super().__init__()
        self.a, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.g = nn.Conv2d(8, 12, 3, padding=1, groups=4)
        self.t = nn.ConvTranspose2d(12, 8, 2, stride=2, groups=4)
        self.c, self.head = nn.Conv2d(8, 6, 1), nn.Linear(6, 5)

    def forward(self, x):
        y = self.g(torch.relu(self.bn(self.a(x))))
        y = torch.cat([y[:, 6:], y[:, :6]], 1) * 0.5
        y = self.c(torch.relu(F.pad(self.t(y), (1, 1, 1, 1))))
        return self.head(y.mean((2, 3)))


@pytest.fixture
def mixed():
    torch.manual_seed(0)
    model = Mixed().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1), model.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 6, 6)
    g = mcuforge.trace(model, (x,))
    PassManager("canonicalize").run(g)
    return g, x.numpy()


def test_grouped_convs_lose_whole_groups(mixed):
    g, x = mixed
    groups = analyze(g)
    # g has 4 groups of 2 input and 3 output channels: 4 units; the halves of its output take
    # different slices, so they form two groups of 2 units
    (first, _), (second, _) = member(groups, "g")
    assert first.layers == second.layers == ["a", "g", "t"] and first.size == second.size == 2
    assert rows(first, "relu") == [[0, 1], [2, 3]] and rows(second, "relu") == [[4, 5], [6, 7]]
    assert rows(first, "g") == [[0, 1, 2], [3, 4, 5]] and rows(second, "g") == [[6, 7, 8], [9, 10, 11]]
    assert rows(first, "cat") == [[6, 7, 8], [9, 10, 11]] and rows(second, "cat") == [[0, 1, 2], [3, 4, 5]]
    assert rows(first, "t") == [[4, 5], [6, 7]] and rows(second, "t") == [[0, 1], [2, 3]]  # t's groups follow
    check_removals(g, x)
    assert g.find("g").attrs["groups"] == 2 and g.find("t").attrs["groups"] == 2


def test_removals_in_channel_last_layout(float_zoo):
    for name in ("resnet8", "unet_tiny"):
        g, (x,) = float_zoo(name)
        PassManager("to-nhwc").run(g)
        check_removals(g, x)


def test_flatten_before_linear_maps_blocks(float_zoo):
    g, _ = float_zoo("digits_cnn")  # (1, 16, 4, 4) flattened to 256 features
    (group, _), = member(analyze(g), "features_1_0")
    blocks = [list(range(16 * c, 16 * c + 16)) for c in range(16)]
    assert rows(group, "flatten") == rows(group, "head.weight") == blocks


def conv_then(build):
    """x -> conv (6 channels) -> build(graph, conv result) -> conv (4 channels) -> output."""
    g = Graph()
    x = g.add_input("x", TensorType((1, 3, 2, 2)))
    attrs = dict(stride=[1, 1], pads=[0, 0, 0, 0], dilation=[1, 1])
    y = g.op("conv2d", [x, g.const(np.ones((6, 3, 1, 1)), "w")], attrs, name="conv")
    z = build(g, y)
    g.outputs = [g.op("conv2d", [z, g.const(np.ones((4, z.shape[1], 1, 1)), "w2")], attrs, name="out")]
    return g


@pytest.mark.parametrize("build, reason", [
    (lambda g, y: g.op("softmax", [y], {"axis": 1}), "softmax %softmax mixes the channels on axis 1"),
    (lambda g, y: g.op("mean", [y], {"axes": [1], "keepdims": True}), "mean %mean mixes the channels on axis 1"),
    (lambda g, y: g.op("slice", [y], dict(axes=[1], starts=[0], ends=[6], steps=[2])),
     "slice %slice steps over channels by 2"),
    (lambda g, y: g.op("reshape", [g.op("reshape", [y], {"shape": [1, 4, 6]})], {"shape": [1, 6, 2, 2]}),
     "reshape %reshape mixes channels in a way that cannot be followed"),
    (lambda g, y: g.op("matmul", [y, g.const(np.ones((2, 2)), "m")]),
     "matmul %matmul is not followed by the channel analysis"),
])
def test_frozen_groups_say_why(build, reason):
    g = conv_then(build)
    groups = analyze(g)
    (first, _), = member(groups, "x")
    assert first.frozen == ["comes from graph input %x"]
    (last, _), = member(groups, "out")
    assert last.frozen == ["reaches graph output %out"]
    (mid, _), = member(groups, "conv")
    assert mid.frozen == [reason] and mid.layers == ["conv"]


def test_a_free_group_has_no_reasons(float_zoo):
    g, _ = float_zoo("tiny_cnn")
    states = [(grp.layers, grp.frozen) for grp in analyze(g)]
    assert states == [([], ["comes from graph input %x"]), (["features_0_0"], []), (["features_2_0"], []),
                      (["head"], ["reaches graph output %head"])]
