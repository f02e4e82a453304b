"""The torch.fx frontend: every mapping entry converted and run by the interpreter against torch,
plus its errors (all unsupported ops at once, untraceable models, bad inputs, converter bugs)."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mcuforge.errors import ShapeError, UnsupportedOpError, UsageError
from mcuforge.frontends import fx as frontend_fx
from mcuforge.frontends.fx import trace
from mcuforge.ir.interpreter import run
from mcuforge.ir.verify import verify

# torch warns about two cases that are tested on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'", "ignore:Implicit dimension choice")


class One(nn.Module):
    """forward(x) = fn(self, x), with tensors given as keyword arguments registered as parameters."""

    def __init__(self, fn, **params):
        super().__init__()
        self.fn = fn
        for k, v in params.items():
            self.register_parameter(k, nn.Parameter(v))

    def forward(self, x):
        return self.fn(self, x)


class Two(One):
    def forward(self, x, y):
        return self.fn(self, x, y)


def fn(f, **params):
    return One(f, **params)


def fn2(f, **params):
    return Two(f, **params)


def bn(module):
    """A batch norm with non-trivial running statistics (and affine parameters if it has them)."""
    g = torch.Generator().manual_seed(1)
    c = module.num_features
    module.running_mean.copy_(torch.randn(c, generator=g))
    module.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    if module.affine:
        module.weight.data.copy_(torch.randn(c, generator=g))
        module.bias.data.copy_(torch.randn(c, generator=g))
    return module


def r(*shape):
    return torch.randn(*shape)


def prelu(module):
    """A PReLU with slopes of both signs, one per channel (torch starts them all at 0.25)."""
    with torch.no_grad():
        module.weight.copy_(torch.linspace(-0.5, 1.5, module.num_parameters))
    return module


X4, X3 = (2, 3, 8, 8), (2, 3, 10)
torch.manual_seed(0)  # the parameters created below

# (model, input shapes, ops the IR must contain)
CASES = {
    # convolutions, linear, normalization
    "Conv1d": (nn.Conv1d(3, 4, 3, padding=1), [X3], "conv1d"),
    "Conv1d-same-dil": (nn.Conv1d(3, 4, 4, padding="same", dilation=2), [X3], "conv1d"),
    "Conv2d-stride-tuple": (nn.Conv2d(3, 4, 3, stride=2, padding=(1, 2)), [X4], "conv2d"),
    "Conv2d-groups": (nn.Conv2d(4, 6, 3, groups=2, bias=False), [(1, 4, 6, 6)], "conv2d"),
    "Conv2d-same-even": (nn.Conv2d(3, 4, (4, 2), padding="same"), [X4], "conv2d"),
    "Conv2d-valid": (nn.Conv2d(3, 4, 3, padding="valid", dilation=2), [X4], "conv2d"),
    "ConvTranspose2d": (nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), [X4], "conv_transpose2d"),
    "ConvTranspose2d-groups": (nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2), [(1, 4, 3, 3)], "conv_transpose2d"),
    "Linear": (nn.Linear(6, 5), [(2, 6)], "linear"),
    "Linear-3d-nobias": (nn.Linear(6, 5, bias=False), [(2, 3, 6)], "linear"),
    "BatchNorm1d-2d": (bn(nn.BatchNorm1d(4)), [(3, 4)], "batch_norm"),
    "BatchNorm1d-3d": (bn(nn.BatchNorm1d(4)), [(2, 4, 5)], "batch_norm"),
    "BatchNorm2d": (bn(nn.BatchNorm2d(3, eps=1e-3)), [X4], "batch_norm"),
    "BatchNorm2d-noaffine": (bn(nn.BatchNorm2d(3, affine=False)), [X4], "batch_norm"),
    "LayerNorm": (nn.LayerNorm(10), [X3], "layer_norm"),
    "LayerNorm-2d": (nn.LayerNorm((3, 10)), [X3], "layer_norm"),
    "LayerNorm-noaffine": (nn.LayerNorm(10, elementwise_affine=False), [X3], "layer_norm"),
    "LayerNorm-nobias": (nn.LayerNorm(10, bias=False), [X3], "layer_norm"),
    "F.conv1d": (fn(lambda m, x: F.conv1d(x, m.w, m.b, 2, 1), w=r(4, 3, 3), b=r(4)), [X3], "conv1d"),
    "F.conv2d": (fn(lambda m, x: F.conv2d(x, m.w, padding="same", groups=3), w=r(6, 1, 3, 3)), [X4], "conv2d"),
    "F.conv_transpose2d": (fn(lambda m, x: F.conv_transpose2d(x, m.w, m.b, stride=2), w=r(3, 2, 2, 2), b=r(2)),
                           [X4], "conv_transpose2d"),
    "F.linear": (fn(lambda m, x: F.linear(x, m.w, m.b), w=r(5, 10), b=r(5)), [X3], "linear"),
    "F.layer_norm": (fn(lambda m, x: F.layer_norm(x, (10,), m.w, m.b, 1e-3), w=r(10), b=r(10)), [X3], "layer_norm"),
    "F.layer_norm-biasonly": (fn(lambda m, x: F.layer_norm(x, (10,), None, m.b), b=r(10)), [X3], "layer_norm"),
    "F.batch_norm": (fn(lambda m, x: F.batch_norm(x, m.mean, m.var, m.w, m.b, False, 0.1, 1e-3),
                        mean=r(3), var=torch.rand(3) + 0.5, w=r(3), b=r(3)), [X4], "batch_norm"),
    # activations
    "ReLU": (nn.ReLU(), [X4], "relu"),
    "ReLU6": (nn.ReLU6(), [X4], "relu6"),
    "LeakyReLU": (nn.LeakyReLU(0.2), [X4], "leaky_relu"),
    "PReLU": (prelu(nn.PReLU(3)), [X4], "prelu"),
    "PReLU-one-slope": (prelu(nn.PReLU()), [X3], "prelu"),
    "PReLU-2d": (prelu(nn.PReLU(6)), [(4, 6)], "prelu"),
    "Hardtanh": (nn.Hardtanh(), [X4], "clamp"),
    "Hardtanh-0-6": (nn.Hardtanh(0.0, 6.0), [X4], "relu6"),
    "Hardtanh-custom": (nn.Hardtanh(-0.5, 0.25), [X4], "clamp"),
    "Sigmoid": (nn.Sigmoid(), [X4], "sigmoid"),
    "Tanh": (nn.Tanh(), [X4], "tanh"),
    "Hardswish": (nn.Hardswish(), [X4], "hardswish"),
    "Hardsigmoid": (nn.Hardsigmoid(), [X4], "hardsigmoid"),
    "SiLU": (nn.SiLU(), [X4], "silu"),
    "GELU": (nn.GELU(), [X4], "gelu"),
    "GELU-tanh": (nn.GELU("tanh"), [X4], "gelu"),
    "Softmax": (nn.Softmax(1), [X4], "softmax"),
    "Softmax-implicit": (nn.Softmax(), [X4], "softmax"),
    "LogSoftmax": (nn.LogSoftmax(-1), [X4], "log_softmax"),
    "Dropout": (nn.Dropout(0.3), [X4], "dropout"),
    "Dropout2d": (nn.Dropout2d(), [X4], "dropout"),
    "Dropout1d": (nn.Dropout1d(), [X3], "dropout"),
    "Identity": (nn.Identity(), [X4], "identity"),
    "F.relu": (fn(lambda m, x: F.relu(x) + torch.relu(-x) + x.relu()), [X4], "relu"),
    "F.relu6": (fn(lambda m, x: F.relu6(x * 4)), [X4], "relu6"),
    "F.hardtanh": (fn(lambda m, x: F.hardtanh(x, -0.5, 0.5)), [X4], "clamp"),
    "F.leaky_relu": (fn(lambda m, x: F.leaky_relu(x, 0.1)), [X4], "leaky_relu"),
    "F.prelu": (fn(lambda m, x: F.prelu(x, m.w), w=r(3)), [X4], "prelu"),
    "F.prelu-one-slope": (fn(lambda m, x: F.prelu(x, weight=m.w), w=r(1)), [X3], "prelu"),
    "F.gelu": (fn(lambda m, x: F.gelu(x, approximate="tanh") + F.gelu(x)), [X4], "gelu"),
    "F.silu": (fn(lambda m, x: F.silu(x)), [X4], "silu"),
    "sigmoid": (fn(lambda m, x: F.sigmoid(x) + torch.sigmoid(x * 2) + x.sigmoid()), [X4], "sigmoid"),
    "tanh": (fn(lambda m, x: torch.tanh(x) + F.tanh(x * 2) + x.tanh()), [X4], "tanh"),
    "F.hard": (fn(lambda m, x: F.hardswish(x * 3) + F.hardsigmoid(x * 3)), [X4], "hardswish hardsigmoid"),
    "softmax": (fn(lambda m, x: F.softmax(x, dim=1) + torch.softmax(x, 2) + x.softmax(-1)), [X4], "softmax"),
    "log_softmax": (fn(lambda m, x: F.log_softmax(x, 1) + x.log_softmax(dim=-1) + torch.log_softmax(x, 0)), [X4],
                    "log_softmax"),
    "F.dropout": (fn(lambda m, x: F.dropout(x, 0.2, m.training)), [X4], "dropout"),
    "clamp": (fn(lambda m, x: torch.clamp(x, -0.5, 0.5) + torch.clip(x, max=0.1) + x.clamp(min=0.2) + x.clip(-1, 1)),
              [X4], "clamp"),
    "clamp-relu": (fn(lambda m, x: torch.clip(x, min=0) + x.clamp(0, 6)), [X4], "relu relu6"),
    # pooling, resizing, padding
    "MaxPool1d": (nn.MaxPool1d(2), [X3], "max_pool1d"),
    "MaxPool2d": (nn.MaxPool2d(3, 2, 1), [X4], "max_pool2d"),
    "MaxPool2d-ceil": (nn.MaxPool2d(3, 2, ceil_mode=True), [X4], "max_pool2d"),
    "MaxPool2d-dil": (nn.MaxPool2d(2, dilation=2), [X4], "max_pool2d"),
    "AvgPool1d": (nn.AvgPool1d(3, 2, 1), [X3], "avg_pool1d"),
    "AvgPool2d-nopad-count": (nn.AvgPool2d(3, 2, 1, count_include_pad=False), [X4], "avg_pool2d"),
    "AvgPool2d-ceil": (nn.AvgPool2d(3, 2, 1, ceil_mode=True), [(1, 2, 7, 7)], "avg_pool2d"),
    "AvgPool2d": (nn.AvgPool2d(2), [X4], "avg_pool2d"),
    "AdaptiveAvgPool1d": (nn.AdaptiveAvgPool1d(3), [X3], "adaptive_avg_pool"),
    "AdaptiveAvgPool2d-none": (nn.AdaptiveAvgPool2d((3, None)), [X4], "adaptive_avg_pool"),
    "AdaptiveAvgPool2d-1": (nn.AdaptiveAvgPool2d(1), [X4], "adaptive_avg_pool"),
    "F.max_pool": (fn(lambda m, x: F.max_pool2d(x, 2, 1, 1, ceil_mode=True)), [X4], "max_pool2d"),
    "F.max_pool1d": (fn(lambda m, x: F.max_pool1d(x, 3, stride=2)), [X3], "max_pool1d"),
    "F.avg_pool": (fn(lambda m, x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)), [X4], "avg_pool2d"),
    "F.avg_pool1d": (fn(lambda m, x: F.avg_pool1d(x, 2)), [X3], "avg_pool1d"),
    "F.adaptive_avg_pool": (fn(lambda m, x: F.adaptive_avg_pool2d(x, (3, 5))), [X4], "adaptive_avg_pool"),
    "F.adaptive_avg_pool1d": (fn(lambda m, x: F.adaptive_avg_pool1d(x, 4)), [X3], "adaptive_avg_pool"),
    "Upsample": (nn.Upsample(scale_factor=2), [X4], "resize"),
    "Upsample-bilinear-size": (nn.Upsample(size=(5, 11), mode="bilinear"), [X4], "resize"),
    "UpsamplingBilinear2d": (nn.UpsamplingBilinear2d(scale_factor=2), [X4], "resize"),
    "UpsamplingNearest2d": (nn.UpsamplingNearest2d(size=(12, 4)), [X4], "resize"),
    "F.interpolate": (fn(lambda m, x: F.interpolate(x, scale_factor=(2, 3))), [X4], "resize"),
    "F.interpolate-bilinear": (fn(lambda m, x: F.interpolate(x, size=(6, 10), mode="bilinear", align_corners=True)),
                               [X4], "resize"),
    "F.interpolate-1d": (fn(lambda m, x: F.interpolate(x, scale_factor=1.5)), [X3], "resize"),
    "F.pad": (fn(lambda m, x: F.pad(x, (1, 2))), [X4], "pad"),
    "F.pad-3dims": (fn(lambda m, x: F.pad(x, (1, 0, 2, 1, 0, 1), value=1.5)), [X4], "pad"),
    "F.pad-crop": (fn(lambda m, x: F.pad(x, (-1, 2, 0, -3))), [X4], "pad"),
    "ZeroPad2d": (nn.ZeroPad2d((1, 2, 0, 1)), [X4], "pad"),
    "ConstantPad1d": (nn.ConstantPad1d(2, 0.5), [X3], "pad"),
    "ConstantPad2d": (nn.ConstantPad2d((0, 1, 2, 0), -1.0), [X4], "pad"),
    # arithmetic
    "operators": (fn2(lambda m, x, y: (x + y) * (2 - x) / (y * y + 1) - x / 3 + 1.0), [X4, X4], "add sub mul div"),
    "broadcast": (fn2(lambda m, x, y: x * y + y), [X4, (3, 1, 8)], "mul add"),
    "iadd": (fn2(lambda m, x, y: _iadd(x, y)), [X4, X4], "add"),
    "neg": (fn(lambda m, x: -x + torch.neg(x * 2) + x.neg()), [X4], "mul"),
    "torch.add-alpha": (fn2(lambda m, x, y: torch.add(x, y, alpha=2) + torch.sub(x, 1.5, alpha=3)), [X4, X4],
                        "add sub"),
    "torch.mul-div": (fn2(lambda m, x, y: torch.mul(x, y) + torch.div(x, torch.sigmoid(y) + 1)), [X4, X4], "mul div"),
    "methods-arith": (fn2(lambda m, x, y: x.add(y).mul(2).sub(y).div(3)), [X4, X4], "add mul sub div"),
    "matmul": (fn2(lambda m, x, y: torch.matmul(x, y) + x @ y + x.matmul(y)), [(2, 3, 4), (4, 5)], "matmul"),
    "matmul-param": (fn(lambda m, x: x @ m.w, w=r(10, 3)), [X3], "matmul"),
    "bmm": (fn2(lambda m, x, y: torch.bmm(x, y) + x.bmm(y)), [(2, 3, 4), (2, 4, 5)], "matmul"),
    "mean": (fn(lambda m, x: torch.mean(x, (2, 3), keepdim=True)), [X4], "mean"),
    "mean-method": (fn(lambda m, x: x.mean(-1) + x.mean()), [X4], "mean"),
    # shapes
    "cat": (fn2(lambda m, x, y: torch.cat([x, y, x], 1) + torch.concat((y, x, x), dim=-3)
                                     + torch.concatenate([x, x, y], axis=1)), [X4, X4], "concat"),
    "Flatten": (nn.Flatten(), [X4], "reshape"),
    "Unflatten": (nn.Unflatten(-1, (2, 5)), [X3], "reshape"),
    "unflatten-method": (fn(lambda m, x: x.unflatten(1, (2, -1)).transpose(1, 2).flatten(1, 2)), [(1, 4, 3, 3)], "reshape"),
    "flatten": (fn(lambda m, x: torch.flatten(x, 1, 2).flatten()), [X4], "reshape"),
    "view-size": (fn(lambda m, x: x.view(x.size(0), x.size(1) * x.size(2), -1) + x.size(-1)), [X4], "reshape"),
    "reshape-shape": (fn(lambda m, x: torch.reshape(x, (x.shape[0], -1)) + x.reshape(-1, 96).dim()), [X4],
                      "reshape"),
    "squeeze": (fn(lambda m, x: torch.squeeze(x, 1) + x.squeeze()), [(2, 1, 3)], "reshape"),
    "unsqueeze": (fn(lambda m, x: torch.unsqueeze(x, 0) + x.unsqueeze(-1).permute(2, 0, 1)), [(2, 3)], "reshape"),
    "transpose": (fn(lambda m, x: torch.transpose(x, 1, 2) + x.transpose(-1, 0).transpose(0, 2)), [(2, 3, 3)],
                  "transpose"),
    "permute": (fn(lambda m, x: torch.permute(x, (0, 2, 1)) + x.permute(0, -1, 1).contiguous()), [X3], "transpose"),
    "chunk": (fn(lambda m, x: torch.chunk(x, 3, 1)), [X4], "split"),
    "chunk-uneven": (fn(lambda m, x: x.chunk(2, -1)[1]), [X3], "split"),
    "split": (fn(lambda m, x: torch.split(x, [1, 2], 1)[0] * x.split(2, dim=1)[1]), [X4], "split"),
    "getitem-slice": (fn(lambda m, x: (x[:, 1:3], x[..., ::2], x[1:2, ..., 3:])), [X4], "slice"),
    "getitem-int": (fn(lambda m, x: (x[:, 1], x[0, :, -1], x[-1])), [X4], "slice reshape"),
    "getitem-none": (fn(lambda m, x: x[:, None, 2:]), [X3], "slice reshape"),
}


def _iadd(x, y):
    z = x * 2
    z += y
    return z


def _flat(out):
    return [t for o in out for t in _flat(o)] if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize("name", CASES)
def test_matches_torch(name):
    model, shapes, ops = CASES[name]
    torch.manual_seed(0)
    inputs = tuple(torch.randn(*s) for s in shapes)
    g = trace(model, inputs)
    verify(g)
    counts = g.count()
    assert all(op in counts for op in ops.split()), counts
    with torch.no_grad():
        want = _flat(model.eval()(*inputs))
    got = run(g, *(t.numpy() for t in inputs))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-5)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = bn(nn.BatchNorm2d(4))
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4, 2)

    def forward(self, image, bias):
        y = self.drop(torch.relu(self.bn(self.conv(image))))
        return self.fc(y.mean((2, 3))) + bias, self.conv.weight * 2


def test_names_meta_constants_and_mode():
    model = Net().train()
    x, b = torch.randn(2, 3, 6, 6), torch.randn(2)
    g = trace(model, (x, b), name="net")
    assert model.training  # restored
    assert g.name == "net" and [v.name for v in g.inputs] == ["image", "bias"]
    names = {c.name for c in g.constants()}
    assert {"conv.weight", "conv.bias", "bn.running_mean", "fc.weight"} <= names
    conv = g.find("conv")
    assert conv.meta["fx"] == "conv" and conv.meta["source"].startswith("test_fx.py:")
    assert conv.meta["source"].endswith("in forward")
    assert all(n.meta["fx"] for n in g.nodes)
    with torch.no_grad():
        want = model.eval()(x, b)[0]
    np.testing.assert_allclose(run(g, x.numpy(), b.numpy())[0], want.numpy(), rtol=1e-5, atol=1e-5)


def test_shared_parameter_is_one_constant():
    lin = nn.Linear(4, 4)
    g = trace(nn.Sequential(lin, nn.ReLU(), lin), torch.randn(1, 4))
    assert len(g.constants()) == 2 and g.count("linear") == 2


class Unsupported(nn.Module):
    def forward(self, x):
        return torch.fft.fft(x), torch.sort(x)[0] + 1, torch.cumsum(x, 1).relu()


def test_lists_every_unsupported_op():
    with pytest.raises(UnsupportedOpError) as e:
        trace(Unsupported(), torch.randn(2, 4))
    items = e.value.items
    assert len(items) == 3  # the getitem, add and relu after them are skipped, not reported
    assert ["fft" in items[0].op, "sort" in items[1].op, "cumsum" in items[2].op] == [True] * 3
    assert [i.node for i in items] == ["fft_fft", "sort", "cumsum"]
    assert all(i.location.startswith("test_fx.py:") for i in items)
    assert "3 unsupported op(s)" in str(e.value) and "hint:" in str(e.value)


class Refused(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect")
        self.pool = nn.AvgPool2d(2, divisor_override=3)

    def forward(self, x):
        return (self.conv(x).relu() + 1, self.pool(x), F.pad(x, (1, 1, 1, 1), mode="replicate"),
                F.interpolate(x, scale_factor=1.5), x.relu())


def test_refused_arguments_are_listed():
    with pytest.raises(UnsupportedOpError) as e:
        trace(Refused(), torch.randn(1, 3, 7, 7))
    ops = [i.op for i in e.value.items]
    assert len(ops) == 4, ops  # the relu and add after the conv are skipped, not reported
    assert "padding_mode='reflect'" in ops[0] and "divisor_override=3" in ops[1]
    assert "mode='replicate'" in ops[2] and "scale_factor=1.5" in ops[3]


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


def test_untraceable_model():
    with pytest.raises(UnsupportedOpError) as e:
        trace(DataDependent(), torch.randn(2))
    msg = str(e.value)
    assert "cannot be traced by torch.fx" in msg and "DataDependent" in msg
    assert "test_fx.py:" in msg and "in forward" in msg and "hint:" in msg
    assert "Traceback" not in msg and "File \"" not in msg


def test_bad_example_inputs():
    with pytest.raises(UsageError, match="example inputs"):
        trace(nn.Linear(4, 2), torch.randn(1, 5))


def test_converter_shape_bug_is_caught(monkeypatch):
    monkeypatch.setitem(frontend_fx.TABLE, nn.ReLU,
                        lambda ctx, n, args, kwargs: ctx.op("mean", [args[0]], axes=[1]))
    with pytest.raises(ShapeError) as e:
        trace(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), torch.randn(2, 4))
    assert e.value.node == "_1" and "torch gives [(2, 4)]" in str(e.value)
