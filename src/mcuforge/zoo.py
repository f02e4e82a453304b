"""A zoo of small reference models with seeded random weights, for tests, examples and benchmarks.

Every model is written here in plain `torch.nn` (no torchvision, no downloads), uses only ops that
the IR has, and traces with `torch.fx.symbolic_trace`: no data-dependent control flow, no shape
queries (channel shuffle uses `unflatten`/`flatten` with static ints).

Two families:
- the MLPerf Tiny reference architectures (keyword spotting DS-CNN, visual wake words
  MobileNetV1 0.25, image classification ResNet-8, anomaly detection FC autoencoder), with the
  reference's layer sizes and conv biases; where Keras pads 'same' asymmetrically, torch's
  symmetric padding is used when it gives the same output shape, and an explicit pad otherwise.
  They return logits: the reference's final softmax is left out so outputs compare at full
  resolution.
- common mobile architectures (MobileNetV2 0.35, ResNet-18, SqueezeNet 1.1, ShuffleNetV2 x0.5,
  MnasNet 0.5) at 1000 classes, so their parameter counts can be checked against published
  ones, fed a small input to stay fast.

`get(name, seed)` returns the model in eval mode with deterministic random weights and
BatchNorm statistics measured on random data (so folding them is a real, non-trivial rewrite and
activations stay well scaled through deep nets), plus a seeded example input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .errors import UsageError

# ---------------------------------------------------------------- building blocks

def _conv(cin, cout, k, stride=1, groups=1, bias=False, bn=True, act=nn.ReLU, padding=None):
    """Conv2d, then BatchNorm2d if `bn`, then `act()` if given; padding k//2 unless given."""
    pad = k // 2 if padding is None else padding
    layers = [nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=bias)]
    layers += [nn.BatchNorm2d(cout)] if bn else []
    layers += [act()] if act else []
    return nn.Sequential(*layers)


def _divisible(v: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of `divisor`, never more than 10% down."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


class _Residual(nn.Module):
    """act(body(x) + shortcut(x)); no shortcut module means identity, no act means none."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None, act: nn.Module | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Sequential()  # empty = identity
        self.act = act if act is not None else nn.Sequential()

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class _Classifier(nn.Module):
    """features -> global pool -> flatten -> head: how every classifier in the zoo ends."""

    def __init__(self, features: nn.Module, pool: nn.Module, head: nn.Module):
        super().__init__()
        self.features, self.pool, self.head = features, pool, head

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


class _GlobalMean(nn.Module):
    """Global average pooling written as a `mean` over H, W (exercises the IR's `mean`)."""

    def forward(self, x):
        return x.mean((2, 3), keepdim=True)


def _basic_block(cin, cout, stride, keras=False):
    """ResNet basic block. `keras`: MLPerf's variant, conv biases and a plain 1x1 conv shortcut."""
    body = nn.Sequential(_conv(cin, cout, 3, stride, bias=keras), _conv(cout, cout, 3, bias=keras, act=None))
    if stride == 1 and cin == cout:
        shortcut = None
    elif keras:
        shortcut = nn.Conv2d(cin, cout, 1, stride)
    else:
        shortcut = _conv(cin, cout, 1, stride, act=None)
    return _Residual(body, shortcut, nn.ReLU())


def _inverted_residual(cin, cout, stride, expand, k, act):
    """MobileNetV2 / MnasNet block: 1x1 expand, kxk depthwise, linear 1x1 project (+ x if same shape)."""
    mid = cin * expand
    layers = [_conv(cin, mid, 1, act=act)] if expand != 1 else []
    layers += [_conv(mid, mid, k, stride, groups=mid, act=act), _conv(mid, cout, 1, act=None)]
    body = nn.Sequential(*layers)
    return _Residual(body) if stride == 1 and cin == cout else body


class _Fire(nn.Module):
    """SqueezeNet fire module: 1x1 squeeze, then 1x1 and 3x3 expands concatenated on channels."""

    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = _conv(cin, squeeze, 1, bias=True, bn=False)
        self.expand1 = _conv(squeeze, expand, 1, bias=True, bn=False)
        self.expand3 = _conv(squeeze, expand, 3, bias=True, bn=False)

    def forward(self, x):
        x = self.squeeze(x)
        return torch.cat([self.expand1(x), self.expand3(x)], 1)


class _ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit: half the channels pass through (stride 1) or both halves are convolved
    (stride 2); the halves are concatenated and their channels interleaved (shuffle, 2 groups)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        half = cout // 2
        self.stride = stride  # a python int: the branch below is resolved at trace time
        if stride > 1:
            self.left = nn.Sequential(_conv(cin, cin, 3, stride, groups=cin, act=None), _conv(cin, half, 1))
        self.right = nn.Sequential(_conv(cin if stride > 1 else half, half, 1),
                                   _conv(half, half, 3, stride, groups=half, act=None), _conv(half, half, 1))

    def forward(self, x):
        if self.stride == 1:
            left, x = x.chunk(2, dim=1)
        else:
            left = self.left(x)
        y = torch.cat([left, self.right(x)], 1)
        # (N, 2, C/2, H, W) -> swap the two channel axes -> (N, C, H, W); static ints only
        return y.unflatten(1, (2, -1)).transpose(1, 2).flatten(1, 2)


# ---------------------------------------------------------------- MLPerf Tiny

def ds_cnn(num_classes=12):
    """Keyword spotting DS-CNN: 10x4/2 conv, four 64-channel depthwise-separable blocks."""
    c = 64
    # Keras 'same' for a 10x4 kernel at stride 2 on 49x10 pads 4/5 rows, 1/1 columns: asymmetric.
    layers = [nn.ZeroPad2d((1, 1, 4, 5)), _conv(1, c, (10, 4), 2, bias=True, padding=0), nn.Dropout(0.2)]
    for _ in range(4):
        layers += [_conv(c, c, 3, groups=c, bias=True), _conv(c, c, 1, bias=True)]
    layers.append(nn.Dropout(0.4))
    return _Classifier(nn.Sequential(*layers), nn.AvgPool2d((25, 5)), nn.Linear(c, num_classes))


def mobilenet_v1(width=0.25, num_classes=2):
    """Visual wake words MobileNetV1 (width 0.25, 96x96): a conv then 13 depthwise-separable blocks."""
    cin = int(32 * width)
    layers = [_conv(3, cin, 3, 2, bias=True)]
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for c, stride in plan:
        cout = int(c * width)
        layers += [_conv(cin, cin, 3, stride, groups=cin, bias=True), _conv(cin, cout, 1, bias=True)]
        cin = cout
    return _Classifier(nn.Sequential(*layers), nn.AvgPool2d(3), nn.Linear(cin, num_classes))


def resnet8(num_classes=10):
    """Image classification ResNet-8 (32x32): a conv then three residual stacks of 16/32/64."""
    layers, cin = [_conv(3, 16, 3, bias=True)], 16
    for cout, stride in [(16, 1), (32, 2), (64, 2)]:
        layers.append(_basic_block(cin, cout, stride, keras=True))
        cin = cout
    return _Classifier(nn.Sequential(*layers), nn.AvgPool2d(8), nn.Linear(64, num_classes))


def fc_autoencoder(n_in=640, hidden=128, bottleneck=8):
    """Anomaly detection autoencoder: 4 dense-BN-ReLU of 128, bottleneck of 8, 4 more, dense 640."""
    sizes = [n_in] + [hidden] * 4 + [bottleneck] + [hidden] * 4
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, n_in))


# ---------------------------------------------------------------- mobile architectures

def mobilenet_v2(width=0.35, num_classes=1000):
    """MobileNetV2: inverted residual blocks with ReLU6 and linear bottlenecks."""
    cin = _divisible(32 * width)
    layers = [_conv(3, cin, 3, 2, act=nn.ReLU6)]
    # (expansion, channels, repeats, first stride) per stage
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        cout = _divisible(c * width)
        for i in range(n):
            layers.append(_inverted_residual(cin, cout, s if i == 0 else 1, t, 3, nn.ReLU6))
            cin = cout
    layers.append(_conv(cin, 1280, 1, act=nn.ReLU6))  # the last width is not scaled down
    return _Classifier(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1),
                       nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes)))


def resnet18(num_classes=1000):
    """ResNet-18: 7x7/2 stem and max pool, four stages of two basic blocks (64..512)."""
    layers, cin = [_conv(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)], 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [_basic_block(cin, cout, stride), _basic_block(cout, cout, 1)]
        cin = cout
    return _Classifier(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), nn.Linear(512, num_classes))


def squeezenet1_1(num_classes=1000):
    """SqueezeNet 1.1: no BatchNorm; fire modules, ceil-mode max pools, a 1x1 conv classifier."""
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
    features = nn.Sequential(
        _conv(3, 64, 3, 2, bias=True, bn=False, padding=0), pool(),
        _Fire(64, 16, 64), _Fire(128, 16, 64), pool(),
        _Fire(128, 32, 128), _Fire(256, 32, 128), pool(),
        _Fire(256, 48, 192), _Fire(384, 48, 192), _Fire(384, 64, 256), _Fire(512, 64, 256),
        nn.Dropout(0.5), _conv(512, num_classes, 1, bias=True, bn=False))
    return _Classifier(features, nn.AdaptiveAvgPool2d(1), nn.Sequential())  # empty head: identity


def shufflenet_v2(num_classes=1000):
    """ShuffleNetV2 x0.5: stages of 4/8/4 shuffle units with 48/96/192 channels."""
    layers, cin = [_conv(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)], 24
    for cout, repeats in [(48, 4), (96, 8), (192, 4)]:
        layers += [_ShuffleUnit(cin, cout, 2)] + [_ShuffleUnit(cout, cout, 1) for _ in range(repeats - 1)]
        cin = cout
    layers.append(_conv(cin, 1024, 1))
    return _Classifier(nn.Sequential(*layers), _GlobalMean(), nn.Linear(1024, num_classes))


def mnasnet(width=0.5, num_classes=1000):
    """MnasNet (B1 search result) at width 0.5: inverted residuals with 3x3 and 5x5 depthwise convs."""
    d = [_divisible(c * width) for c in (32, 16, 24, 40, 80, 96, 192, 320)]
    layers = [_conv(3, d[0], 3, 2), _conv(d[0], d[0], 3, groups=d[0]), _conv(d[0], d[1], 1, act=None)]
    # (kernel, first stride, expansion, repeats) per stage
    stages = [(3, 2, 3, 3), (5, 2, 3, 3), (5, 2, 6, 3), (3, 1, 6, 2), (5, 2, 6, 4), (3, 1, 6, 1)]
    for cin, cout, (k, s, t, n) in zip(d[1:], d[2:], stages):
        layers += [_inverted_residual(cin if i == 0 else cout, cout, s if i == 0 else 1, t, k, nn.ReLU)
                   for i in range(n)]
    layers.append(_conv(d[-1], 1280, 1))
    return _Classifier(nn.Sequential(*layers), _GlobalMean(),
                       nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes)))


# ---------------------------------------------------------------- tiny models for fast tests

def digits_cnn(num_classes=10):
    """For scikit-learn's 8x8 digits: two 3x3 conv-BN-ReLU, a 2x2 max pool, a dense layer."""
    features = nn.Sequential(_conv(1, 8, 3), _conv(8, 16, 3), nn.MaxPool2d(2))
    return _Classifier(features, nn.Sequential(), nn.Linear(16 * 4 * 4, num_classes))  # no pool: flatten 4x4


def tiny_cnn(num_classes=10):
    """The smallest useful CNN: conv-BN-ReLU, max pool, conv-BN-ReLU, global pool, dense."""
    features = nn.Sequential(_conv(3, 8, 3), nn.MaxPool2d(2), _conv(8, 16, 3))
    return _Classifier(features, nn.AdaptiveAvgPool2d(1), nn.Linear(16, num_classes))


class _UNet(nn.Module):
    """A small U-Net: two 2x2 max-pool downsamplings, upsampling by a transposed conv and by a
    nearest resize, and skip connections concatenated on channels after a 1x1 conv that halves
    them (written where the decoder uses them, the natural place; computing them early frees
    the wide encoder features sooner, which the `schedule` pass finds)."""

    def __init__(self, cin=3, classes=2, c=16):
        super().__init__()
        self.enc1 = nn.Sequential(_conv(cin, c, 3), _conv(c, c, 3))
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), _conv(c, 2 * c, 3))
        self.mid = nn.Sequential(nn.MaxPool2d(2), _conv(2 * c, 4 * c, 3))
        self.skip1, self.skip2 = _conv(c, c // 2, 1), _conv(2 * c, c, 1)
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
        self.dec2 = _conv(3 * c, 2 * c, 3)
        self.up1 = nn.Sequential(nn.Upsample(scale_factor=2), _conv(2 * c, c, 1))
        self.dec1 = nn.Sequential(_conv(c + c // 2, c, 3), nn.Conv2d(c, classes, 1))

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        d2 = self.dec2(torch.cat([self.up2(self.mid(e2)), self.skip2(e2)], 1))
        return self.dec1(torch.cat([self.up1(d2), self.skip1(e1)], 1))


def unet_tiny(num_classes=2):
    """Segmentation U-Net for 32x32 images: 16/32/64 channels, skips through 1x1 convs."""
    return _UNet(3, num_classes)


# ---------------------------------------------------------------- registry

@dataclass(frozen=True)
class ZooEntry:
    """A model of the zoo: its factory, the input it expects and the output it gives."""

    name: str
    factory: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    description: str
    mlperf: bool = False


MODELS: dict[str, ZooEntry] = {e.name: e for e in [
    ZooEntry("ds_cnn", ds_cnn, (1, 1, 49, 10), (1, 12), "MLPerf Tiny keyword spotting DS-CNN", True),
    ZooEntry("mobilenet_v1", mobilenet_v1, (1, 3, 96, 96), (1, 2),
             "MLPerf Tiny visual wake words MobileNetV1 0.25", True),
    ZooEntry("resnet8", resnet8, (1, 3, 32, 32), (1, 10), "MLPerf Tiny image classification ResNet-8", True),
    ZooEntry("fc_autoencoder", fc_autoencoder, (1, 640), (1, 640),
             "MLPerf Tiny anomaly detection dense autoencoder", True),
    ZooEntry("mobilenet_v2", mobilenet_v2, (1, 3, 96, 96), (1, 1000), "MobileNetV2 width 0.35"),
    ZooEntry("resnet18", resnet18, (1, 3, 64, 64), (1, 1000), "ResNet-18"),
    ZooEntry("squeezenet1_1", squeezenet1_1, (1, 3, 96, 96), (1, 1000), "SqueezeNet 1.1"),
    ZooEntry("shufflenet_v2", shufflenet_v2, (1, 3, 96, 96), (1, 1000), "ShuffleNetV2 x0.5"),
    ZooEntry("mnasnet", mnasnet, (1, 3, 96, 96), (1, 1000), "MnasNet 0.5"),
    ZooEntry("digits_cnn", digits_cnn, (1, 1, 8, 8), (1, 10), "tiny CNN for scikit-learn's 8x8 digits"),
    ZooEntry("tiny_cnn", tiny_cnn, (1, 3, 16, 16), (1, 10), "tiny conv/bn/relu/pool/linear net for tests"),
    ZooEntry("unet_tiny", unet_tiny, (1, 3, 32, 32), (1, 2, 32, 32), "small U-Net with skip concats"),
]}


def names() -> list[str]:
    """Names of the zoo's models, MLPerf Tiny ones first."""
    return list(MODELS)


def _randomize(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Draw weights and biases (He-scaled, so nets without BatchNorm keep their activation scale),
    random BN gamma/beta, then set BN running statistics to those of a random batch."""
    bns = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.uniform_(m.bias, -0.1, 0.1)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.25, 0.25)
            bns.append(m)
    # One training-mode pass (BN layers only, dropout stays off) with momentum None stores the
    # batch's exact statistics; a batch > 1 because BatchNorm1d needs more than one value.
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    with torch.no_grad():
        model(torch.randn(16, *input_shape[1:]))
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def get(name: str, seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """(model in eval mode, example inputs) for `name`, deterministic in `seed`.

    Leaves the caller's global torch RNG state untouched.
    """
    if name not in MODELS:
        raise UsageError(f"unknown zoo model '{name}'", f"known models: {', '.join(MODELS)}")
    entry = MODELS[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = entry.factory()
        _randomize(model, entry.input_shape)
        example = (torch.randn(entry.input_shape),)
    return model, example
