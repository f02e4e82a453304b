"""An IR graph back to PyTorch: `to_torch(graph)` is a `torch.fx.GraphModule` with real parameters.

Each node becomes a call of `torch.nn.functional` (or a torch function) with the node's
attributes; `IMPLS` holds one small builder per float op. So a pruned or otherwise rewritten
graph can be fine-tuned in torch, then traced (`mcuforge.trace`) and compiled again, and the
float round trip is exact up to float rounding: `to_torch(g)(x)` equals `interpreter.run(g, x)`.
`print(module.code)` shows the generated forward.

- Conv/linear weights and biases and layer_norm's scale and bias are `nn.Parameter`s; other
  constants are buffers. A batch_norm is a small submodule with torch's parameters (weight, bias)
  and buffers (running_mean, running_var), and dropout an `nn.Dropout`, so that in training mode
  batch norm uses batch statistics and updates its running ones and dropout drops, as in torch.
  Conv weights are stored in torch's layout (OIHW, or (I, O/groups, kH, kW) for a transposed
  conv) whatever the IR layout. `module.sources[name]` gives the IR constant behind each
  parameter or buffer and the axis permutation from its IR layout (None if the same); buffers
  derived from attributes (an average pool's divisors) are not listed.
- Channel-last ops (NHWC, NWC) permute to channel-first around the torch call. Pads that torch
  cannot express (asymmetric, or wider than half a pooling window) become an explicit F.pad (with
  -inf for max pooling); a transposed conv crops its output instead.
- The module comes in eval mode (it computes what the graph does); call `.train()` to fine-tune.
  A reshape that keeps the leading (batch) axis reshapes to -1 there, so the module takes any
  batch size when all of them do; every other size is the graph's static one.
Limits: float graphs only; quantize, dequantize and integer ops raise `UsageError` (all listed).
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..ir import ops
from ..ir.graph import Graph, Node, Value

IMPLS: dict = {}
_PARAMETERS = {"conv1d": (1, 2), "conv2d": (1, 2), "conv_transpose2d": (1, 2), "linear": (1, 2),
               "layer_norm": (1, 2), "prelu": (1,)}  # operand slots that are trainable


def _impl(*names):
    def register(fn):
        for name in names:
            IMPLS[name] = fn
        return fn
    return register


@dataclass(frozen=True)
class Step:
    """What an op builder sees of its node: name, attributes, static shapes, and the builder."""

    name: str
    attrs: dict
    in_shapes: tuple
    out_shapes: tuple
    builder: "_Builder"


class BatchNorm(nn.Module):
    """Batch norm over any axis, with torch's parameter and buffer names."""

    def __init__(self, scale, bias, mean, var, axis: int, rank: int, eps: float):
        super().__init__()
        self.weight, self.bias = nn.Parameter(scale), nn.Parameter(bias)
        self.register_buffer("running_mean", mean)
        self.register_buffer("running_var", var)
        self.eps = eps  # a swap of `axis` and 1 (its own inverse) makes it torch's channel axis
        self.perm = None if axis == 1 else [axis if i == 1 else 1 if i == axis else i for i in range(rank)]

    def forward(self, x):
        y = F.batch_norm(x if self.perm is None else x.permute(self.perm), self.running_mean, self.running_var,
                         self.weight, self.bias, self.training, 0.1, self.eps)
        return y if self.perm is None else y.permute(self.perm)


class _Builder:
    """Appends one fx node (or a few) per IR node to an fx graph rooted at `root`."""

    def __init__(self):
        self.root, self.fx = nn.Module(), torch.fx.Graph()
        self.tracer = torch.fx.proxy.GraphAppendingTracer(self.fx)
        self.sources: dict[str, tuple[str, tuple | None]] = {}
        self.keys: dict[tuple, str] = {}

    def name(self, base: str) -> str:
        key = base = re.sub(r"\W", "_", base)
        for i in itertools.count(1):
            if not hasattr(self.root, key):
                return key
            key = f"{base}_{i}"

    def tensor(self, v: Value, trainable=False, perm: tuple | None = None) -> torch.fx.Proxy:
        """Constant `v` (in torch's layout `perm`) as a parameter or buffer, registered once."""
        if (id(v), perm) not in self.keys:
            data = torch.from_numpy(np.array(v.data if perm is None else v.data.transpose(perm)))
            self.keys[(id(v), perm)] = self.add(v.name, data, trainable)
            self.sources[self.keys[(id(v), perm)]] = (v.name, perm)
        return self.tracer.create_proxy("get_attr", self.keys[(id(v), perm)], (), {})

    def add(self, base: str, data: torch.Tensor, trainable=False) -> str:
        key = self.name(base)
        if trainable and data.is_floating_point():
            self.root.register_parameter(key, nn.Parameter(data))
        else:
            self.root.register_buffer(key, data)
        return key

    def call(self, base: str, module: nn.Module, *args) -> torch.fx.Proxy:
        key = self.name(base)
        self.root.add_module(key, module)
        return self.tracer.create_proxy("call_module", key, args, {})


def to_torch(graph: Graph) -> torch.fx.GraphModule:
    """`graph` (float) as a torch module with real parameters (see the module docstring). A torch
    module keeps no state between calls here: the graph's states become inputs after its own and
    outputs after its own (the caller feeds each write back), as `compile(state=...)` takes them."""
    bad = [n for n in graph.nodes if n.op not in IMPLS or n.op == "batch_norm" and not all(
        v.is_const for v in n.inputs[1:])]
    if bad:
        raise UsageError("to_torch takes float graphs; these nodes are not float ops: "
                         + ", ".join(f"%{n.name} ({n.op})" for n in bad), "convert the float graph, before `quantize`")
    b = _Builder()
    env = {id(v): b.tracer.create_proxy("placeholder", re.sub(r"\W", "_", v.name), (), {})
           for v in [*graph.inputs, *(s.read for s in graph.states)]}
    for n in graph.nodes:  # (a batch_norm gets its constants as such: they go into its submodule)
        args = [env[id(v)] if not v.is_const else v if n.op == "batch_norm"
                else b.tensor(v, i in _PARAMETERS.get(n.op, ()), torch_layout(n, i)) for i, v in enumerate(n.inputs)]
        step = Step(n.name, n.attrs, tuple(v.shape for v in n.inputs), tuple(v.shape for v in n.outputs), b)
        out = IMPLS[n.op](step, *args)
        env.update(zip(map(id, n.outputs), out if isinstance(out, tuple) else (out,)))
    outs = [b.tensor(v) if v.is_const else env[id(v)] for v in [*graph.outputs, *(s.write for s in graph.states)]]
    b.fx.output(outs[0].node if len(outs) == 1 else tuple(o.node for o in outs))
    module = torch.fx.GraphModule(b.root, b.fx, class_name=re.sub(r"\W", "_", graph.name) or "GraphModule")
    module.sources = b.sources
    return module.eval()


def torch_layout(node: Node, slot: int) -> tuple | None:
    """Permutation from the IR layout of a conv weight to torch's, or None if they agree."""
    if slot != 1 or node.op not in ("conv1d", "conv2d", "conv_transpose2d") or node.attrs["layout"][1] == "C":
        return None
    rank = len(node.inputs[1].shape)
    if node.op == "conv_transpose2d":  # (O/g, kH, kW, I) -> (I, O/g, kH, kW)
        return (3, 0, 1, 2)
    return (0, rank - 1, *range(1, rank - 1))  # O[H]WI -> OI[H]W


# ---------------------------------------------------------------- helpers

def _act(y, act: str):
    return F.relu(y) if act == "relu" else F.relu6(y) if act == "relu6" else y


def _first(x, s: Step):
    """Operand `x` of `s` under its layout -> channel-first."""
    rank = len(s.in_shapes[0])
    return x if s.attrs["layout"][1] == "C" else x.permute(0, rank - 1, *range(1, rank - 1))


def _back(y, s: Step):
    """Channel-first `y` -> the result of `s` under its layout."""
    rank = len(s.out_shapes[0])
    return y if s.attrs["layout"][1] == "C" else y.permute(0, *range(2, rank), 1)


def _torch_pads(begins, ends) -> list[int]:
    """Our begins/ends of the trailing axes -> F.pad's order (last axis first, begin then end)."""
    return [p for i in reversed(range(len(begins))) for p in (begins[i], ends[i])]


def _padding(x, pads, fits: bool, value: float = 0.0):
    """(x, padding for the torch op): symmetric pads that the op accepts stay with it."""
    nd = len(pads) // 2
    begins, ends = list(pads[:nd]), list(pads[nd:])
    if begins == ends and fits:
        return x, begins
    return F.pad(x, _torch_pads(begins, ends), value=value), [0] * nd


def _fits(a: dict) -> bool:
    """Whether torch's pooling accepts the pads (at most half the kernel)."""
    return all(p <= k // 2 for p, k in zip(a["pads"], a["kernel"] * 2))


def _crop(y, s: Step, explicit: bool):
    """Channel-first `y` cut to the node's spatial size: with its pads made `explicit`, a ceil-mode
    pooling may start one more window in the end padding, which the op's shape rule excludes."""
    if not (explicit and s.attrs["ceil_mode"]):
        return y
    out = s.out_shapes[0]
    sizes = out[1:-1] if s.attrs["layout"][1] != "C" else out[2:]
    return y[(slice(None), slice(None), *(slice(0, n) for n in sizes))]


# ---------------------------------------------------------------- convolution and dense

@_impl("conv1d", "conv2d")
def _conv(s, x, w, b=None):
    a = s.attrs
    x, pad = _padding(_first(x, s), a["pads"], True)
    y = (F.conv1d if len(pad) == 1 else F.conv2d)(x, w, b, a["stride"], pad, a["dilation"], a["groups"])
    return _back(_act(y, a["act"]), s)


@_impl("conv_transpose2d")
def _conv_transpose(s, x, w, b=None):
    a, pads = s.attrs, s.attrs["pads"]
    symmetric = pads[:2] == pads[2:]
    y = F.conv_transpose2d(_first(x, s), w, b, a["stride"], pads[:2] if symmetric else 0,
                           a["output_padding"], a["groups"], a["dilation"])
    if not symmetric:  # crop what the pads remove from the full output
        out = s.out_shapes[0][1:3] if a["layout"] == "NHWC" else s.out_shapes[0][2:]
        y = y[:, :, pads[0]:pads[0] + out[0], pads[1]:pads[1] + out[1]]
    return _back(_act(y, a["act"]), s)


@_impl("linear")
def _linear(s, x, w, b=None):
    return _act(F.linear(x, w, b), s.attrs["act"])


@_impl("batch_norm")
def _batch_norm(s, x, *params):
    rank = len(s.in_shapes[0])
    bn = BatchNorm(*(torch.from_numpy(np.array(v.data)) for v in params), ops.norm_axis(s.attrs["axis"], rank), rank,
                   s.attrs["eps"])
    y = s.builder.call(s.name, bn, x)
    for attr, v in zip(("weight", "bias", "running_mean", "running_var"), params):
        s.builder.sources[f"{y.node.target}.{attr}"] = (v.name, None)
    return y


@_impl("layer_norm")
def _layer_norm(s, x, scale=None, bias=None):
    shape = s.in_shapes[0][ops.norm_axis(s.attrs["axis"], len(s.in_shapes[0])):]
    return F.layer_norm(x, shape, scale, bias, s.attrs["eps"])


@_impl("dropout")
def _dropout(s, x):
    return s.builder.call(s.name, nn.Dropout(s.attrs["p"]), x)


# ---------------------------------------------------------------- elementwise

for _name, _fn in {"relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                   "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "silu": F.silu,
                   "identity": lambda x: x, "softplus": F.softplus, "exp": torch.exp, "log": torch.log,
                   "sqrt": torch.sqrt, "abs": torch.abs, "sign": torch.sign, "erf": torch.erf}.items():
    IMPLS[_name] = lambda s, x, fn=_fn: fn(x)
for _name, _fn in {"add": torch.add, "sub": torch.sub, "mul": torch.mul}.items():
    IMPLS[_name] = lambda s, a, b, fn=_fn: _act(fn(a, b), s.attrs["act"])
for _name, _fn in {"maximum": torch.maximum, "minimum": torch.minimum, "pow": torch.pow}.items():
    IMPLS[_name] = lambda s, a, b, fn=_fn: fn(a, b)
IMPLS.update({
    "leaky_relu": lambda s, x: F.leaky_relu(x, s.attrs["alpha"]),
    "elu": lambda s, x: F.elu(x, s.attrs["alpha"]),
    "tile": lambda s, x: torch.tile(x, s.attrs["repeats"]),
    "clamp": lambda s, x: torch.clamp(x, s.attrs["min"], s.attrs["max"]),
    "gelu": lambda s, x: F.gelu(x, approximate=s.attrs["approximate"]),
    "softmax": lambda s, x: F.softmax(x, s.attrs["axis"]),
    "log_softmax": lambda s, x: F.log_softmax(x, s.attrs["axis"]),
    "div": lambda s, a, b: torch.div(a, b),
    "matmul": lambda s, a, b: torch.matmul(a, b),
})


@_impl("prelu")
def _prelu(s, x, alpha):
    """F.prelu where alpha is what torch's weight can be (one slope, or one per channel of axis 1);
    elsewhere relu(x) - alpha * relu(-x), which computes the same numbers."""
    xs, a = s.in_shapes
    a = (1,) * (len(xs) - len(a)) + tuple(a)
    if math.prod(a) == 1 or (len(xs) > 1 and a[1] == xs[1] and math.prod(a) == xs[1]):
        return F.prelu(x, alpha.reshape(-1))
    return F.relu(x) - alpha * F.relu(-x)


# ---------------------------------------------------------------- pooling and reduction

@_impl("max_pool1d", "max_pool2d")
def _max_pool(s, x):
    a, x = s.attrs, _first(x, s)
    xp, pad = _padding(x, a["pads"], _fits(a), -math.inf)
    y = (F.max_pool1d if len(pad) == 1 else F.max_pool2d)(xp, a["kernel"], a["stride"], pad, a["dilation"],
                                                          a["ceil_mode"])
    return _back(_crop(y, s, xp is not x), s)


@_impl("avg_pool1d", "avg_pool2d")
def _avg_pool(s, x):
    a = s.attrs
    pool = F.avg_pool1d if len(a["kernel"]) == 1 else F.avg_pool2d
    x = _first(x, s)
    xp, pad = _padding(x, a["pads"], _fits(a))
    y = pool(xp, a["kernel"], a["stride"], pad, a["ceil_mode"], a["count_include_pad"] or xp is not x)
    if xp is not x and not a["count_include_pad"]:  # divide by the inputs in each window, not the pads
        sizes = s.in_shapes[0][1:-1] if a["layout"][1] != "C" else s.in_shapes[0][2:]
        ones, _ = _padding(torch.ones((1, 1, *sizes)), a["pads"], False)
        share = pool(ones, a["kernel"], a["stride"], 0, a["ceil_mode"], True)
        y = y / s.builder.tracer.create_proxy("get_attr", s.builder.add(f"{s.name}_share", share), (), {})
    return _back(_crop(y, s, xp is not x), s)


@_impl("adaptive_avg_pool")
def _adaptive_avg_pool(s, x):
    size = s.attrs["output_size"]
    return _back((F.adaptive_avg_pool1d if len(size) == 1 else F.adaptive_avg_pool2d)(_first(x, s), size), s)


IMPLS["mean"] = lambda s, x: torch.mean(x, s.attrs["axes"], s.attrs["keepdims"])
IMPLS["reduce"] = lambda s, x: {"sum": torch.sum, "max": torch.amax, "min": torch.amin}[s.attrs["mode"]](
    x, s.attrs["axes"], s.attrs["keepdims"])


# ---------------------------------------------------------------- data movement

def batch_free(shape, x_shape) -> list[int]:
    """A reshape's target `shape` with -1 on the leading axis where it keeps the leading (batch)
    axis of the input's static `x_shape`, so that any batch size works."""
    shape = list(shape)
    if shape and x_shape and shape[0] == x_shape[0] and math.prod(shape[1:]) == math.prod(x_shape[1:]):
        shape[0] = -1
    return shape


IMPLS["reshape"] = lambda s, x: torch.reshape(x, batch_free(s.attrs["shape"], s.in_shapes[0]))


@_impl("slice")
def _slice(s, x):
    index = [slice(None)] * len(s.in_shapes[0])
    for ax, start, end, step in zip(*(s.attrs[k] for k in ("axes", "starts", "ends", "steps"))):
        index[ax] = slice(start, end, step)
    return x[tuple(index)]


@_impl("split")
def _split(s, x):
    parts = torch.split(x, s.attrs["sizes"], s.attrs["axis"])
    return tuple(parts[i] for i in range(len(s.attrs["sizes"])))


@_impl("pad")
def _pad(s, x):
    rank, pads = len(s.in_shapes[0]), s.attrs["pads"]
    return F.pad(x, _torch_pads(pads[:rank], pads[rank:]), value=s.attrs["value"])


@_impl("resize")
def _resize(s, x):
    a = s.attrs
    linear = a["mode"] == "bilinear"  # separable: "linear" along one axis
    y = F.interpolate(_first(x, s), size=list(a["size"]),
                      mode=("linear" if len(a["size"]) == 1 else "bilinear") if linear else "nearest",
                      align_corners=a["align_corners"] if linear else None)
    return _back(y, s)


IMPLS["transpose"] = lambda s, x: torch.permute(x, s.attrs["perm"])
IMPLS["concat"] = lambda s, *xs: torch.cat(xs, s.attrs["axis"])
