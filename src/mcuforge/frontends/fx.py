"""torch.fx frontend: an `nn.Module` plus example inputs -> an `ir.Graph` with static shapes.

`trace` records the model with `torch.fx` (in eval mode), runs it once on the example inputs with
`ShapeProp` to learn every tensor's shape, then converts node by node through `TABLE`, the one
mapping from what fx records (a module class, a function, or a tensor method's name) to a small
converter `(ctx, node, args, kwargs) -> Value | tuple`. In `args` and `kwargs` earlier tensors
are already IR Values; sizes stay Python ints, since shapes are static.

Parameters and buffers become float32 constants named by their qualified name. Every IR node
carries `meta={"source": "file.py:line in fn", "fx": fx node name}`. Ops without a converter, or
used in a way a converter refuses, are collected and reported together in one
`UnsupportedOpError`; the nodes depending on them are skipped. Each result's shape is checked
against what torch computed, so a converter bug surfaces as a `ShapeError` at its node.
"""
from __future__ import annotations

import math
import operator
import os
import re
import traceback
from functools import partial

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.node import _get_qualified_name, map_arg
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from ..errors import ShapeError, UnsupportedItem, UnsupportedOpError, UsageError
from ..ir.graph import Graph, Value
from ..ir.ops import registrar
from ..ir.types import DType, TensorType
from . import rnn

TABLE: dict = {}
_SKIPPED = object()  # the env entry of a node that was not converted
_LIBRARY_DIRS = (os.path.dirname(torch.__file__), os.path.dirname(os.path.dirname(__file__)))  # torch, mcuforge
_FRAME = re.compile(r'File "(.+?)", line (\d+), in (\S+)')


class _Unsupported(Exception):
    """A converter's refusal: the op is known but used in a way we cannot compile (the reason)."""


_maps = registrar(TABLE)  # keys: module classes, functions, method names


def _where(frames) -> str | None:
    """'file.py:line in fn' of the innermost frame in user code, from (file, line, fn) triples."""
    user = [f for f in frames if not os.path.abspath(f[0]).startswith(_LIBRARY_DIRS)]
    return f"{os.path.basename(user[-1][0])}:{user[-1][1]} in {user[-1][2]}" if user else None


class _Ctx:
    """What a converter sees: the graph being built, the fx node at hand, its module and shapes."""

    def __init__(self, gm: torch.fx.GraphModule, g: Graph):
        self.gm, self.g, self.node = gm, g, None
        self._attrs: dict[str, Value] = {}

    @property
    def module(self) -> nn.Module:
        return self.gm.get_submodule(self.node.target)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape torch computed for the current node's (single) result."""
        return tuple(self.node.meta["tensor_meta"].shape)

    @property
    def meta(self) -> dict:
        return {"source": _where(_FRAME.findall(self.node.stack_trace or "")), "fx": self.node.name}

    def op(self, op: str, inputs, **attrs):
        return self.g.op(op, list(inputs), attrs, name=self.node.name, meta=self.meta)

    def attr(self, qualname: str) -> Value | None:
        """Parameter or buffer `qualname` of the root module as a constant (one Value per tensor)."""
        if qualname not in self._attrs:
            t = operator.attrgetter(qualname)(self.gm)
            if t is None:
                return None
            arr = t.detach().cpu().numpy()
            self._attrs[qualname] = self.g.const(arr.astype(np.float32) if arr.dtype.kind == "f" else arr,
                                                 name=qualname)
        return self._attrs[qualname]

    def param(self, name: str) -> Value | None:
        """Parameter `name` of the current node's module."""
        return self.attr(f"{self.node.target}.{name}")

    def const(self, value, like: Value) -> Value:
        """A Python number (or array) as a constant with the dtype of `like`."""
        return self.g.const(np.asarray(value, dtype=like.dtype.np), name=f"{self.node.name}.c")


def _get(args, kwargs, i, name, default=None):
    """Argument `name`, passed as the i-th positional or as a keyword (`partial` binds the call)."""
    return args[i] if len(args) > i else kwargs.get(name, default)


def _tup(v, n: int) -> list[int]:
    return [int(x) for x in v] if isinstance(v, (tuple, list)) else [int(v)] * n


def _tup_f(v, n: int) -> list[float]:
    return [float(x) for x in v] if isinstance(v, (tuple, list)) else [float(v)] * n


def _const_weight(v, what: str) -> Value:
    if not (isinstance(v, Value) and v.is_const):
        raise _Unsupported(f"{what} computed in forward(); only parameters and buffers are supported")
    return v


# ---------------------------------------------------------------- convolution, linear, normalization

def _conv(ctx, x, w, b, stride, padding, dilation, groups):
    nd = len(w.shape) - 2
    stride, dilation = _tup(stride, nd), _tup(dilation, nd)
    if padding == "same":  # torch puts the odd element of the padding at the end
        total = [d * (k - 1) for d, k in zip(dilation, w.shape[2:])]
        pads = [t // 2 for t in total] + [t - t // 2 for t in total]
    else:
        pads = _tup(0 if padding == "valid" else padding, nd) * 2
    return ctx.op(f"conv{nd}d", [x, w] + ([b] if b is not None else []),
                  stride=stride, pads=pads, dilation=dilation, groups=int(groups))


@_maps(nn.Conv1d, nn.Conv2d)
def _conv_module(ctx, n, args, kwargs):
    m = ctx.module
    if m.padding_mode != "zeros":
        raise _Unsupported(f"padding_mode={m.padding_mode!r}")
    return _conv(ctx, args[0], ctx.param("weight"), ctx.param("bias"), m.stride, m.padding, m.dilation, m.groups)


@_maps(F.conv1d, F.conv2d)
def _conv_fn(ctx, n, args, kwargs):
    g = partial(_get, args, kwargs)
    return _conv(ctx, args[0], _const_weight(g(1, "weight"), "weight"), g(2, "bias"), g(3, "stride", 1),
                 g(4, "padding", 0), g(5, "dilation", 1), g(6, "groups", 1))


def _conv_transpose(ctx, x, w, b, stride, padding, output_padding, groups, dilation):
    if isinstance(padding, str):
        raise _Unsupported(f"padding={padding!r}")
    return ctx.op("conv_transpose2d", [x, w] + ([b] if b is not None else []), stride=_tup(stride, 2),
                  pads=_tup(padding, 2) * 2, output_padding=_tup(output_padding, 2),
                  dilation=_tup(dilation, 2), groups=int(groups))


@_maps(nn.ConvTranspose2d)
def _conv_transpose_module(ctx, n, args, kwargs):
    m = ctx.module
    if m.padding_mode != "zeros" or _get(args, kwargs, 1, "output_size") is not None:
        raise _Unsupported("padding_mode other than 'zeros' or an output_size argument")
    return _conv_transpose(ctx, args[0], ctx.param("weight"), ctx.param("bias"), m.stride, m.padding,
                           m.output_padding, m.groups, m.dilation)


@_maps(F.conv_transpose2d)
def _conv_transpose_fn(ctx, n, args, kwargs):
    g = partial(_get, args, kwargs)
    return _conv_transpose(ctx, args[0], _const_weight(g(1, "weight"), "weight"), g(2, "bias"), g(3, "stride", 1),
                           g(4, "padding", 0), g(5, "output_padding", 0), g(6, "groups", 1), g(7, "dilation", 1))


@_maps(nn.Linear)
def _linear_module(ctx, n, args, kwargs):
    b = ctx.param("bias")
    return ctx.op("linear", [args[0], ctx.param("weight")] + ([b] if b is not None else []))


@_maps(F.linear)
def _linear_fn(ctx, n, args, kwargs):
    b = _get(args, kwargs, 2, "bias")
    return ctx.op("linear", [args[0], _const_weight(_get(args, kwargs, 1, "weight"), "weight")]
                  + ([b] if b is not None else []))


def _batch_norm(ctx, x, mean, var, scale, bias, eps):
    if mean is None or var is None:
        raise _Unsupported("batch statistics (no running mean/var); only inference with running stats")
    c = x.shape[1]
    scale = scale if scale is not None else ctx.const(np.ones(c), x)
    bias = bias if bias is not None else ctx.const(np.zeros(c), x)
    return ctx.op("batch_norm", [x, scale, bias, mean, var], eps=float(eps), axis=1)


@_maps(nn.BatchNorm1d, nn.BatchNorm2d)
def _batch_norm_module(ctx, n, args, kwargs):
    return _batch_norm(ctx, args[0], ctx.param("running_mean"), ctx.param("running_var"),
                       ctx.param("weight"), ctx.param("bias"), ctx.module.eps)


@_maps(F.batch_norm)
def _batch_norm_fn(ctx, n, args, kwargs):
    g = partial(_get, args, kwargs)
    if g(5, "training", False):
        raise _Unsupported("training=True")
    return _batch_norm(ctx, args[0], g(1, "running_mean"), g(2, "running_var"), g(3, "weight"), g(4, "bias"),
                       g(7, "eps", 1e-5))


def _layer_norm(ctx, x, normalized_shape, scale, bias, eps):
    if scale is None and bias is not None:
        scale = ctx.const(np.ones(bias.shape), x)
    operands = [v for v in (scale, bias) if v is not None]
    return ctx.op("layer_norm", [x, *operands], eps=float(eps), axis=-len(_tup(normalized_shape, 1)))


@_maps(nn.LayerNorm)
def _layer_norm_module(ctx, n, args, kwargs):
    m = ctx.module
    return _layer_norm(ctx, args[0], m.normalized_shape, ctx.param("weight"), ctx.param("bias"), m.eps)


@_maps(F.layer_norm)
def _layer_norm_fn(ctx, n, args, kwargs):
    g = partial(_get, args, kwargs)
    return _layer_norm(ctx, args[0], g(1, "normalized_shape"), g(2, "weight"), g(3, "bias"), g(4, "eps", 1e-5))


def _torch_cell(m: nn.Module, suffix: str = "") -> rnn.Cell:
    """Module `m`'s weights as an rnn.Cell: a cell's, or a layer's of the layer and direction that
    `suffix` names ("_l1_reverse")."""
    kind = {nn.LSTM: "lstm", nn.LSTMCell: "lstm", nn.GRU: "gru", nn.GRUCell: "gru"}.get(type(m)) or \
        f"rnn_{m.nonlinearity}"
    w = [getattr(m, f"{p}{suffix}", None) for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return rnn.Cell(kind, *(None if t is None else t.detach().cpu().numpy().astype(np.float32) for t in w))


@_maps(nn.LSTM, nn.GRU, nn.RNN)
def _recurrent(ctx, n, args, kwargs):
    """Unrolled over the sequence (rnn.py); each layer's output sequence feeds the next layer."""
    m, x, hx = ctx.module, args[0], _get(args, kwargs, 1, "hx")
    if len(x.shape) != 3:
        raise _Unsupported("an unbatched (2-D) input; give the input a batch axis")
    if getattr(m, "proj_size", 0):
        raise _Unsupported("proj_size > 0 (an LSTM with projections)")
    lstm = isinstance(m, nn.LSTM)
    h0, c0 = hx if lstm and hx is not None else (hx, None)
    time_axis, dirs = int(m.batch_first), 1 + m.bidirectional

    def state(s, k):  # layer-direction k's (B, H) state of s (layers x dirs, B, H); None for zeros
        return None if s is None else ctx.op("reshape", [ctx.op("slice", [s], axes=[0], starts=[k], ends=[k + 1],
                                                                steps=[1])], shape=list(s.shape[1:]))

    h_n, c_n = [], []
    for layer in range(m.num_layers):
        seqs = []
        for d in range(dirs):
            sfx, k = f"_l{layer}" + "_reverse" * d, layer * dirs + d
            hs, h, c = rnn.direction(ctx.op, ctx.g, f"{n.target}{sfx}", x, time_axis, _torch_cell(m, sfx),
                                     state(h0, k), state(c0, k), bool(d))
            seqs.append(rnn.stack(ctx.op, hs, time_axis))
            h_n.append(h), c_n.append(c)
        x = seqs[0] if dirs == 1 else ctx.op("concat", seqs, axis=-1)
    h_n = rnn.stack(ctx.op, h_n, 0)
    return (x, (h_n, rnn.stack(ctx.op, c_n, 0))) if lstm else (x, h_n)


@_maps(nn.LSTMCell, nn.GRUCell, nn.RNNCell)
def _recurrent_cell(ctx, n, args, kwargs):
    """One step of the layer's form, on a sequence of length 1."""
    m, x, hx = ctx.module, args[0], _get(args, kwargs, 1, "hx")
    if len(x.shape) != 2:
        raise _Unsupported("an unbatched (1-D) input; give the input a batch axis")
    lstm = isinstance(m, nn.LSTMCell)
    h0, c0 = hx if lstm and hx is not None else (hx, None)
    seq = ctx.op("reshape", [x], shape=[1, *x.shape])
    _, h, c = rnn.direction(ctx.op, ctx.g, n.target, seq, 0, _torch_cell(m), h0, c0)
    return (h, c) if lstm else h


# ---------------------------------------------------------------- activations

def _simple(op):
    """Converter of an op with one tensor operand and no attributes."""
    return lambda ctx, n, args, kwargs: ctx.op(op, [args[0]])


for _op, _keys in {
    "relu": (nn.ReLU, F.relu, torch.relu, "relu"),
    "relu6": (nn.ReLU6, F.relu6),
    "sigmoid": (nn.Sigmoid, torch.sigmoid, "sigmoid"),  # F.sigmoid and F.tanh call the methods
    "tanh": (nn.Tanh, torch.tanh, "tanh"),
    "hardswish": (nn.Hardswish, F.hardswish),
    "hardsigmoid": (nn.Hardsigmoid, F.hardsigmoid),
    "silu": (nn.SiLU, F.silu),
    "identity": (nn.Identity,),
    "exp": (torch.exp, "exp"), "log": (torch.log, "log"), "sqrt": (torch.sqrt, "sqrt"),
    "abs": (torch.abs, operator.abs, "abs"), "sign": (torch.sign, "sign"), "erf": (torch.erf, torch.special.erf, "erf"),
}.items():
    _maps(*_keys)(_simple(_op))


def _clamp(ctx, x, lo, hi):
    if isinstance(lo, Value) or isinstance(hi, Value):
        raise _Unsupported("tensor bounds")
    if (lo, hi) == (0, 6):
        return ctx.op("relu6", [x])
    if lo == 0 and hi is None:
        return ctx.op("relu", [x])
    return ctx.op("clamp", [x], min=-math.inf if lo is None else float(lo), max=math.inf if hi is None else float(hi))


@_maps(nn.Hardtanh)
def _hardtanh_module(ctx, n, args, kwargs):
    return _clamp(ctx, args[0], ctx.module.min_val, ctx.module.max_val)


@_maps(F.hardtanh)
def _hardtanh_fn(ctx, n, args, kwargs):
    return _clamp(ctx, args[0], _get(args, kwargs, 1, "min_val", -1.0), _get(args, kwargs, 2, "max_val", 1.0))


@_maps(torch.clamp, torch.clip, "clamp", "clip")
def _clamp_fn(ctx, n, args, kwargs):
    return _clamp(ctx, args[0], _get(args, kwargs, 1, "min"), _get(args, kwargs, 2, "max"))


@_maps(nn.LeakyReLU, F.leaky_relu)
def _leaky_relu(ctx, n, args, kwargs):
    slope = ctx.module.negative_slope if n.op == "call_module" else _get(args, kwargs, 1, "negative_slope", 0.01)
    return ctx.op("leaky_relu", [args[0]], alpha=float(slope))


@_maps(nn.PReLU, F.prelu, torch.prelu)
def _prelu(ctx, n, args, kwargs):
    """torch's weight holds one slope, or one per channel (axis 1): as alpha it broadcasts on x."""
    x = args[0]
    w = ctx.param("weight") if n.op == "call_module" else _get(args, kwargs, 1, "weight")
    if w.type.numel > 1 and len(x.shape) > 2:
        shape = [w.type.numel] + [1] * (len(x.shape) - 2)
        w = ctx.g.const(w.data.reshape(shape), name=w.name) if w.is_const else ctx.op("reshape", [w], shape=shape)
    return ctx.op("prelu", [x, w])


@_maps(nn.ELU, F.elu)
def _elu(ctx, n, args, kwargs):
    alpha = ctx.module.alpha if n.op == "call_module" else _get(args, kwargs, 1, "alpha", 1.0)
    return ctx.op("elu", [args[0]], alpha=float(alpha))


@_maps(nn.Softplus, F.softplus)
def _softplus(ctx, n, args, kwargs):
    beta = ctx.module.beta if n.op == "call_module" else _get(args, kwargs, 1, "beta", 1.0)
    if beta != 1:  # torch's threshold (20) changes no float32 result when beta is 1
        raise _Unsupported(f"beta={beta}")
    return ctx.op("softplus", [args[0]])


@_maps(nn.GELU, F.gelu)
def _gelu(ctx, n, args, kwargs):
    approximate = ctx.module.approximate if n.op == "call_module" else kwargs.get("approximate", "none")
    return ctx.op("gelu", [args[0]], approximate=approximate)


def _softmax(op):
    def convert(ctx, n, args, kwargs):
        x = args[0]
        dim = ctx.module.dim if n.op == "call_module" else _get(args, kwargs, 1, "dim")
        if dim is None:  # torch's legacy implicit dim
            dim = 0 if len(x.shape) in (0, 1, 3) else 1
        return ctx.op(op, [x], axis=int(dim))
    return convert


_maps(nn.Softmax, F.softmax, torch.softmax, "softmax")(_softmax("softmax"))
_maps(nn.LogSoftmax, F.log_softmax, torch.log_softmax, "log_softmax")(_softmax("log_softmax"))


@_maps(nn.Dropout, nn.Dropout1d, nn.Dropout2d, F.dropout)
def _dropout(ctx, n, args, kwargs):
    p = ctx.module.p if n.op == "call_module" else _get(args, kwargs, 1, "p", 0.5)
    return ctx.op("dropout", [args[0]], p=float(p))


# ---------------------------------------------------------------- pooling and resizing

def _pool(ctx, kind, x, kernel, stride, padding, ceil_mode, **extra):
    nd = len(x.shape) - 2
    kernel = _tup(kernel, nd)
    stride = _tup(stride, nd) if stride not in (None, [], ()) else kernel
    return ctx.op(f"{kind}_pool{nd}d", [x], kernel=kernel, stride=stride, pads=_tup(padding, nd) * 2,
                  ceil_mode=bool(ceil_mode), **extra)


@_maps(nn.MaxPool1d, nn.MaxPool2d)
def _max_pool_module(ctx, n, args, kwargs):
    m = ctx.module
    if m.return_indices:
        raise _Unsupported("return_indices=True")
    return _pool(ctx, "max", args[0], m.kernel_size, m.stride, m.padding, m.ceil_mode,
                 dilation=_tup(m.dilation, len(args[0].shape) - 2))


@_maps(F.max_pool1d, F.max_pool2d)
def _max_pool_fn(ctx, n, args, kwargs):
    g = partial(_get, args, kwargs)
    if g(6, "return_indices", False):
        raise _Unsupported("return_indices=True")
    return _pool(ctx, "max", args[0], g(1, "kernel_size"), g(2, "stride"), g(3, "padding", 0), g(5, "ceil_mode"),
                 dilation=_tup(g(4, "dilation", 1), len(args[0].shape) - 2))


def _avg_pool(ctx, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    if divisor_override is not None:
        raise _Unsupported(f"divisor_override={divisor_override}")
    return _pool(ctx, "avg", x, kernel, stride, padding, ceil_mode, count_include_pad=bool(count_include_pad))


@_maps(nn.AvgPool1d, nn.AvgPool2d)
def _avg_pool_module(ctx, n, args, kwargs):
    m = ctx.module
    return _avg_pool(ctx, args[0], m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                     getattr(m, "divisor_override", None))


@_maps(F.avg_pool1d, F.avg_pool2d)
def _avg_pool_fn(ctx, n, args, kwargs):
    g = partial(_get, args, kwargs)
    return _avg_pool(ctx, args[0], g(1, "kernel_size"), g(2, "stride"), g(3, "padding", 0), g(4, "ceil_mode", False),
                     g(5, "count_include_pad", True), g(6, "divisor_override"))


_LAYOUT = {3: "NCW", 4: "NCHW"}


@_maps(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d)
def _adaptive_avg_pool(ctx, n, args, kwargs):
    x = args[0]  # the output size comes from torch's result, which resolves `None` entries
    return ctx.op("adaptive_avg_pool", [x], output_size=list(ctx.shape[2:]), layout=_LAYOUT[len(x.shape)])


def _resize(ctx, x, scale_factor, mode, align_corners, antialias=False, recompute=None):
    mode = "bilinear" if mode == "linear" and len(x.shape) == 3 else mode  # the IR's bilinear on one axis
    if mode not in ("nearest", "bilinear") or antialias:
        raise _Unsupported(f"mode={mode!r}" + (", antialias=True" if antialias else ""))
    size = ctx.shape[2:]
    if scale_factor is not None and not recompute and any(
            o != i * s for o, i, s in zip(size, x.shape[2:], _tup_f(scale_factor, len(size)))):
        raise _Unsupported(f"scale_factor={scale_factor} that does not give a whole output size")
    return ctx.op("resize", [x], size=list(size), mode=mode, align_corners=bool(align_corners),
                  layout=_LAYOUT[len(x.shape)])


@_maps(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
def _upsample(ctx, n, args, kwargs):
    m = ctx.module
    return _resize(ctx, args[0], m.scale_factor, m.mode, m.align_corners, recompute=m.recompute_scale_factor)


@_maps(F.interpolate)
def _interpolate(ctx, n, args, kwargs):
    g = partial(_get, args, kwargs)
    return _resize(ctx, args[0], g(2, "scale_factor"), g(3, "mode", "nearest"), g(4, "align_corners"),
                   g(6, "antialias", False), g(5, "recompute_scale_factor"))


def _pad(ctx, x, pad, mode, value):
    """torch lists pads last dim first, (begin, end) per dim; ours are all begins then all ends."""
    if mode != "constant":
        raise _Unsupported(f"mode={mode!r}")
    r = len(x.shape)
    begins, ends = [0] * r, [0] * r
    for i in range(len(pad) // 2):
        begins[r - 1 - i], ends[r - 1 - i] = int(pad[2 * i]), int(pad[2 * i + 1])
    return ctx.op("pad", [x], pads=begins + ends, value=float(value or 0.0))


@_maps(F.pad)
def _pad_fn(ctx, n, args, kwargs):
    g = partial(_get, args, kwargs)
    return _pad(ctx, args[0], g(1, "pad"), g(2, "mode", "constant"), g(3, "value"))


@_maps(nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)
def _pad_module(ctx, n, args, kwargs):
    return _pad(ctx, args[0], ctx.module.padding, "constant", ctx.module.value)


# ---------------------------------------------------------------- arithmetic

def _binary(op):
    def convert(ctx, n, args, kwargs):
        a, b = args[0], _get(args, kwargs, 1, "other")
        if kwargs.get("rounding_mode") is not None:
            raise _Unsupported(f"rounding_mode={kwargs['rounding_mode']!r}")
        alpha = kwargs.get("alpha", 1)  # torch.add/sub compute a + alpha * b
        if alpha != 1:
            b = ctx.op("mul", [b, ctx.const(alpha, b)]) if isinstance(b, Value) else b * alpha
        like = a if isinstance(a, Value) else b
        return ctx.op(op, [v if isinstance(v, Value) else ctx.const(v, like) for v in (a, b)])
    return convert


# fx records `x += y` as operator.add (proxies have no __iadd__), so the in-place operators never appear
_maps(operator.add, torch.add, "add")(_binary("add"))
_maps(operator.sub, torch.sub, "sub")(_binary("sub"))
_maps(operator.mul, torch.mul, "mul")(_binary("mul"))
_maps(operator.truediv, torch.div, "div")(_binary("div"))
_maps(torch.maximum, "maximum")(_binary("maximum"))
_maps(torch.minimum, "minimum")(_binary("minimum"))
_maps(operator.pow, torch.pow, "pow")(_binary("pow"))


@_maps(operator.neg, torch.neg, "neg")
def _neg(ctx, n, args, kwargs):
    return ctx.op("mul", [args[0], ctx.const(-1, args[0])])


@_maps(torch.matmul, torch.bmm, operator.matmul, "matmul", "bmm")
def _matmul(ctx, n, args, kwargs):
    return ctx.op("matmul", [args[0], _get(args, kwargs, 1, "other", kwargs.get("mat2"))])


@_maps(torch.mean, "mean", torch.sum, "sum", torch.amax, "amax", torch.amin, "amin")
def _mean(ctx, n, args, kwargs):
    x, dim = args[0], _get(args, kwargs, 1, "dim")
    axes = list(range(len(x.shape))) if dim is None else _tup(dim, 1)
    keep = bool(_get(args, kwargs, 2, "keepdim", False))
    if n.target in (torch.mean, "mean"):
        return ctx.op("mean", [x], axes=axes, keepdims=keep)
    return ctx.op("reduce", [x], axes=axes, keepdims=keep, mode=getattr(n.target, "__name__", n.target)[-3:])


@_maps(torch.tile, "tile", "repeat")
def _tile(ctx, n, args, kwargs):
    x, reps = args[0], args[1:] or [kwargs.get("dims", kwargs.get("repeats"))]
    reps = _tup(reps[0] if len(reps) == 1 else reps, 1)  # tile((2, 3)) or repeat(2, 3)
    if len(reps) > len(x.shape):  # torch prepends axes of size 1
        x = ctx.op("reshape", [x], shape=[1] * (len(reps) - len(x.shape)) + list(x.shape))
    return ctx.op("tile", [x], repeats=[1] * (len(x.shape) - len(reps)) + reps)


# ---------------------------------------------------------------- shape manipulation

@_maps(nn.Flatten, nn.Unflatten, torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze,
       "flatten", "unflatten", "view", "reshape", "squeeze", "unsqueeze")
def _reshape(ctx, n, args, kwargs):
    return ctx.op("reshape", [args[0]], shape=list(ctx.shape))  # torch's result resolves -1 and squeezes


@_maps("contiguous")
def _no_op(ctx, n, args, kwargs):
    return args[0]


@_maps(torch.permute, "permute")
def _permute(ctx, n, args, kwargs):
    x = args[0]
    dims = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:] or kwargs["dims"]
    return ctx.op("transpose", [x], perm=[d % len(x.shape) for d in dims])


@_maps(torch.transpose, "transpose")
def _transpose(ctx, n, args, kwargs):
    x = args[0]
    perm = list(range(len(x.shape)))
    a, b = (_get(args, kwargs, 1, "dim0") % len(perm), _get(args, kwargs, 2, "dim1") % len(perm))
    perm[a], perm[b] = perm[b], perm[a]
    return ctx.op("transpose", [x], perm=perm)


@_maps(torch.cat, torch.concat, torch.concatenate)
def _concat(ctx, n, args, kwargs):
    xs = _get(args, kwargs, 0, "tensors")
    return ctx.op("concat", list(xs), axis=int(_get(args, kwargs, 1, "dim", kwargs.get("axis", 0))))  # numpy name


@_maps(torch.chunk, torch.split, "chunk", "split")
def _split(ctx, n, args, kwargs):
    x = args[0]
    axis = _get(args, kwargs, 2, "dim", 0) % len(x.shape)
    sizes = [int(m.shape[axis]) for m in n.meta["tensor_meta"]]  # torch's result holds the chunk sizes
    out = ctx.op("split", [x], axis=axis, sizes=sizes)
    return out if isinstance(out, tuple) else (out,)


def _index(ctx, x: Value, index):
    """Basic tensor indexing (ints, slices, `...`, None) as a `slice`, then a `reshape` if needed."""
    index = index if isinstance(index, tuple) else (index,)
    if not all(i is None or i is Ellipsis or type(i) in (int, slice) for i in index):
        raise _Unsupported("indexing with tensors or lists (only ints, slices, ... and None)")
    if any(i is Ellipsis for i in index):
        k = next(j for j, i in enumerate(index) if i is Ellipsis)
        fill = len(x.shape) - sum(i is not None and i is not Ellipsis for i in index)
        index = index[:k] + (slice(None),) * fill + index[k + 1:]
    axes, starts, ends, steps = [], [], [], []
    for axis, item in enumerate(i for i in index if i is not None):  # None adds a dim: left to reshape
        size = x.shape[axis]
        start, end, step = (item % size, item % size + 1, 1) if isinstance(item, int) else item.indices(size)
        if (start, end, step) != (0, size, 1):
            axes.append(axis), starts.append(start), ends.append(end), steps.append(step)
    y = ctx.op("slice", [x], axes=axes, starts=starts, ends=ends, steps=steps) if axes else x
    return y if y.shape == ctx.shape else ctx.op("reshape", [y], shape=list(ctx.shape))


@_maps(operator.getitem)
def _getitem(ctx, n, args, kwargs):
    seq, index = args
    return _index(ctx, seq, index) if isinstance(seq, Value) else seq[index]


@_maps(getattr)
def _getattr(ctx, n, args, kwargs):
    x, name = args
    if name != "shape":
        raise _Unsupported(f"attribute '{name}'")
    return tuple(x.shape)


@_maps("size")
def _size(ctx, n, args, kwargs):
    dim = _get(args, kwargs, 1, "dim")
    return tuple(args[0].shape) if dim is None else args[0].shape[dim]


@_maps("dim")
def _dim(ctx, n, args, kwargs):
    return len(args[0].shape)


# ---------------------------------------------------------------- the driver

def _op_name(gm: torch.fx.GraphModule, n: torch.fx.Node) -> str:
    if n.op == "call_module":
        cls = type(gm.get_submodule(n.target))
        return f"torch.nn.{cls.__name__}" if getattr(nn, cls.__name__, None) is cls else cls.__qualname__
    if n.op == "call_method":
        return f"Tensor.{n.target}"
    name = _get_qualified_name(n.target)
    m = re.fullmatch(r"torch\._C\._(\w+)\.(?:\1_)?(\w+)", name)  # torch._C._fft.fft_fft is torch.fft.fft
    return f"torch.{'nn.functional' if m[1] == 'nn' else m[1]}.{m[2]}" if m else name


def _shapes(x) -> list[tuple[int, ...]]:
    """Tensor shapes in a (nested) result, whether IR Values or torch's TensorMetadata."""
    if isinstance(x, Value):
        return [x.shape]
    if isinstance(x, TensorMetadata):
        return [tuple(x.shape)]
    if isinstance(x, (tuple, list)):
        return [s for i in x for s in _shapes(i)]
    return []


def _flatten(x) -> list:
    if isinstance(x, (tuple, list)):
        return [v for i in x for v in _flatten(i)]
    if isinstance(x, dict):
        return _flatten(list(x.values()))
    return [x]


def _is_python(n: torch.fx.Node, args, kwargs) -> bool:
    """An operator or builtin applied to Python values only (sizes): evaluated, not converted."""
    return (n.op == "call_function" and getattr(n.target, "__module__", None) in ("_operator", "builtins")
            and not any(isinstance(v, Value) for v in _flatten([args, list(kwargs.values())])))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _trace(model: nn.Module) -> torch.fx.GraphModule:
    tracer = torch.fx.Tracer()
    tracer.record_stack_traces = True  # gives each node the source line that created it
    # a bare nn.Conv2d & co: record it as one call, not its forward()
    root = nn.Sequential(model) if tracer.is_leaf_module(model, "") else model
    try:
        graph = tracer.trace(root)
        return torch.fx.GraphModule(tracer.root, graph)
    except Exception as e:  # tracing runs user code: any exception means it cannot be traced
        frames = [(f.f_code.co_filename, line, f.f_code.co_name) for f, line in traceback.walk_tb(e.__traceback__)]
        raise UnsupportedOpError(
            [UnsupportedItem(_first_line(e), type(model).__name__, _where(frames))],
            title=f"the model {type(model).__name__} cannot be traced by torch.fx:",
            hint="fx records forward() with symbolic tensors, so Python control flow on tensor values "
                 "(`if x.sum() > 0:`, loops over data) cannot be captured; make such decisions "
                 "static (a constructor argument) or move them out of forward()") from None


def trace(model: nn.Module, example_inputs: tuple | torch.Tensor, name: str | None = None) -> Graph:
    """Convert `model` into an IR graph whose shapes are those of `example_inputs`.

    The model runs in eval mode (its mode is restored afterwards), so batch norm uses running
    statistics and dropout is recorded as a `dropout` op for `canonicalize` to remove. Raises
    `UnsupportedOpError` for a model fx cannot trace or ops we cannot map (all of them at once),
    and `UsageError` when the model does not run on `example_inputs`.
    """
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    was_training = model.training
    model.eval()
    try:
        gm = _trace(model)
        with torch.no_grad():
            try:
                gm(*inputs)  # ShapeProp would print the traceback of a failure; this run does not
            except Exception as e:
                raise UsageError(f"running the model on the example inputs failed: {_first_line(e)}",
                                 hint="pass example_inputs that forward() accepts: their number, shapes "
                                      "and dtypes") from None
            ShapeProp(gm).propagate(*inputs)
    finally:
        model.train(was_training)
    return _convert(gm, name or type(model).__name__)


def _convert(gm: torch.fx.GraphModule, name: str) -> Graph:
    g = Graph(name)
    ctx = _Ctx(gm, g)
    env: dict[torch.fx.Node, object] = {}
    missing: list[UnsupportedItem] = []
    for n in gm.graph.nodes:
        ctx.node = n
        if n.op == "placeholder":
            tm = n.meta["tensor_meta"]
            dtype = DType.from_numpy(torch.empty(0, dtype=tm.dtype).numpy().dtype)
            env[n] = g.add_input(n.name, TensorType(tuple(tm.shape), dtype))
        elif n.op == "get_attr":
            env[n] = ctx.attr(n.target)
        elif n.op == "output" and not missing:
            outs = _flatten(map_arg(n.args[0], env.__getitem__))
            g.outputs = [v if isinstance(v, Value) else g.const(np.asarray(v, np.float32), name="output")
                         for v in outs]
        elif n.op != "output":
            skipped = any(env[d] is _SKIPPED for d in n.all_input_nodes)
            args, kwargs = map_arg(n.args, env.__getitem__), map_arg(n.kwargs, env.__getitem__)
            if not skipped and _is_python(n, args, kwargs):
                env[n] = n.target(*args, **kwargs)  # arithmetic on static sizes, e.g. x.size(1) * 2
                continue
            convert = TABLE.get(type(ctx.module) if n.op == "call_module" else n.target)
            if convert is None:
                missing.append(UnsupportedItem(_op_name(gm, n), n.name, ctx.meta["source"]))
            if convert is None or skipped:
                env[n] = _SKIPPED
                continue
            try:
                env[n] = convert(ctx, n, args, kwargs)
            except _Unsupported as e:
                missing.append(UnsupportedItem(f"{_op_name(gm, n)} ({e})", n.name, ctx.meta["source"]))
                env[n] = _SKIPPED
                continue
            except ShapeError as e:
                raise ShapeError(n.name, f"{_op_name(gm, n)} at {ctx.meta['source']}: {e.reason}") from None
            got, want = _shapes(env[n]), _shapes(n.meta.get("tensor_meta"))
            if got != want:
                raise ShapeError(n.name, f"the converter of {_op_name(gm, n)} made shape(s) {got}, torch gives {want}",
                                 hint="this is a bug in mcuforge's fx frontend; please report it with the model")
    if missing:
        raise UnsupportedOpError(missing)
    return g
