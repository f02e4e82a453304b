"""Torch models of the op families the zoo does not use, which the C backend tests compile in
every scheme and layout: OPS maps a name to (module class, input shape)."""
import torch
import torch.nn.functional as F
from torch import nn


class Ops2d(nn.Module):
    """The 2-D op families the zoo does not use: dilated depthwise with a multiplier, grouped and
    transposed convs, padded ceil-mode pools, every activation (PReLU too), broadcasting binary ops, resizes,
    pad, slice, split, adaptive pooling, softmaxes, mean, unfolded batch norm, layer norm."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(16, 32, 3, stride=2, padding=2, dilation=2, groups=16)
        self.grouped = nn.Conv2d(34, 8, 3, padding=(1, 0), groups=2)
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.ln = nn.LayerNorm(6)
        self.prelu = nn.PReLU(4)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
            self.prelu.weight.copy_(torch.tensor([-0.5, 0.1, 0.9, 2.0]))

    def forward(self, x):
        y = F.relu(self.conv(x))
        z = torch.cat([F.avg_pool2d(y, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                       F.max_pool2d(y, 3, 2, 1, ceil_mode=True)], 1)
        u, v = self.dw(z).chunk(2, 1)
        w = torch.sigmoid(u) * torch.tanh(v) - F.hardswish(u) / (F.hardsigmoid(v) + 1.0)
        w = self.grouped(torch.cat([w, F.leaky_relu(u, 0.1), x[:, :2, ::3, ::3]], 1))  # x's scale: a requantize
        w = F.silu(w) + F.gelu(w) + F.gelu(w, approximate="tanh") + torch.clamp(w, -0.5, 0.7)
        t = self.up(w)
        t = self.bn(self.prelu(t) + F.relu6(t))
        r = F.interpolate(t, scale_factor=2, mode="nearest")[:, :, 1:15:2, ::2]
        b = F.interpolate(t, size=(7, 4), mode="bilinear", align_corners=False)
        c = F.interpolate(t, size=(7, 4), mode="bilinear", align_corners=True)
        s = F.adaptive_avg_pool2d(F.pad(r + b - c, (1, 0, 2, 1)), (3, 2))
        p = s.permute(0, 2, 3, 1).reshape(1, 6, 4)
        q = torch.softmax(p, -1) + torch.log_softmax(p, 1) + s.mean((2, 3), keepdim=True).reshape(1, 1, 4)
        return self.ln(q.transpose(1, 2)), F.adaptive_avg_pool2d(t, 1)


class Ops1d(nn.Module):
    """1-D convs and pools, a linear layer on a 3-D input, matmuls, per-channel broadcasting."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 5, stride=2, padding=2)
        self.c2 = nn.Conv1d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8, 6)
        self.scale = nn.Parameter(torch.randn(1, 8, 1))

    def forward(self, x):
        y = F.relu(self.c1(x))
        y = self.c2(y) * self.scale - y
        y = F.max_pool1d(y, 2) + F.avg_pool1d(y, 3, 2, 1)
        h = self.fc(y.transpose(1, 2))
        return torch.softmax(h @ h.transpose(1, 2), -1) @ h, torch.tanh(h).mean(1)


class OpsMath(nn.Module):
    """The math the ONNX test models use: exp, log, sqrt, pow, abs, sign, erf, elu, softplus, maximum
    and minimum, sums, maxima and minima over axes, tiles."""

    def forward(self, x):
        a = torch.log(x.abs() + 0.5) + torch.sqrt(x.abs()) - torch.pow(x.abs() + 0.1, torch.tanh(x))
        b = torch.maximum(F.elu(x, 0.7), F.softplus(x)) - torch.minimum(torch.exp(x), torch.sign(x)) * torch.erf(x)
        s = a.sum((1, 2), keepdim=True) + b.amax(1, keepdim=True).tile(1, 3, 1, 1) - b.amin(-1, keepdim=True)
        return s, x.repeat(1, 1, 2, 1)


OPS = {"ops2d": (Ops2d, (1, 3, 12, 12)), "ops1d": (Ops1d, (1, 4, 32)), "opsmath": (OpsMath, (1, 3, 4, 5))}
