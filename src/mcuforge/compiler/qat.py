"""Exact quantization-aware training: `qat(model, ...)` is a torch module whose forward pass
computes what the compiled integer model computes, bit for bit, and whose backward pass is the
straight-through estimator.

The module keeps the float graph after the float passes (fold-bn, fuse), its calibrated ranges,
and the float weights and biases of its conv and dense layers as parameters. `integer_graph()`
quantizes that graph with the current parameters exactly as `compile(quantize=...)` does (the
quantize pass's QDQ insertion at those ranges, lower-quantized, compress-weights: the same scales,
zero points, rounding, fused clamps, per-channel and compressed weights). The forward pass runs the
integer graph node by node in the reference interpreter and returns its integer results,
dequantized; beside each node a differentiable surrogate runs its float op (`frontends.to_torch`)
on the dequantized operands and the float parameters, then fake-quantizes the result (rounding
with the straight-through estimator, clamping to the integer range). The interpreter's values take
the surrogate's gradient (`_Exact`). `mcuforge.compile(module, ...)` compiles
`module.integer_graph(io)`, so its interpreter and C outputs equal the module's forward pass.

Weight scales follow the weights (max |w| / 127 per channel, or the compressed format's), as after
post-training quantization, so the module starts as the PTQ model. `learn_scales=True` also trains
each activation range (lo, hi), LSQ-style: the step size (hi - lo) / 255 (int16: max(-lo, hi) /
32767) gets the fake quantization's gradient, scaled by 1 / sqrt(elements x q_max), for every
tensor whose parameters come from its own range (not those that take their input's, share a
concat's, or have a kernel's fixed output scale).
Limits: int8 and int16x8, without keep_float or mixed precision; a batch norm that fold-bn cannot
fold is refused; reshapes keep the batch axis free (`to_torch.batch_free`), every other
shape is the traced graph's. Each parameter update costs one re-quantization of the graph.
"""
from __future__ import annotations

import math
import re

import numpy as np
import torch
from torch import nn

from ..analysis.calibrate import calibrate, load_samples
from ..errors import UsageError
from ..frontends.load import load_model
from ..frontends.to_torch import IMPLS, Step, batch_free, torch_layout
from ..ir.graph import Graph, Value
from ..ir.interpreter import evaluate
from ..ir.types import DType
from ..passes.base import PassContext
from ..passes.compress_weights import FORMATS
from ..passes.lower_quantized import WEIGHTED, why_float
from ..passes.manager import PassManager
from ..passes.pipelines import FLOAT
from ..passes.quantize import SCHEMES, insert_qdq, range_params


def qat(model, example_inputs=None, *, calibration, scheme="int8", weights=None, observer="minmax",
        per_channel=True, learn_scales=False) -> QAT:
    """`model` (anything `compile` takes) -> a QAT module starting from its post-training
    quantization with `calibration` data; `scheme` "int8" | "int16x8", `weights` a compressed
    format (passes.compress_weights.FORMATS) or None, `observer` and `per_channel` as in `compile`."""
    if scheme not in SCHEMES:
        raise UsageError(f"unknown quantization scheme '{scheme}'", f"known: {', '.join(SCHEMES)}")
    if weights is not None and weights not in FORMATS:
        raise UsageError(f"unknown weight format '{weights}'", f"known: {', '.join(FORMATS)}")
    graph = load_model(model, example_inputs)
    PassManager(FLOAT).run(graph, PassContext())
    ranges = calibrate(graph, load_samples(calibration, graph), observer, quiet=True)
    return QAT(graph, ranges, SCHEMES[scheme], weights, per_channel, learn_scales)


def _keys(names) -> dict[str, str]:
    """Value names -> distinct torch attribute names (no dots)."""
    keys: dict[str, str] = {}
    for name in names:
        key = re.sub(r"\W", "_", name)
        while key in keys.values():
            key += "_"
        keys[name] = key
    return keys


class _Exact(torch.autograd.Function):
    """Forward: the exact (interpreter) value; backward: the gradient, to the surrogate."""

    @staticmethod
    def forward(ctx, surrogate, exact):
        return exact.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def _fake_quant(x, scale, zero_point: int, dtype: DType):
    """x on the grid scale * (q - zero_point), q in `dtype`'s range: rounding with the
    straight-through estimator, no gradient where clamped, LSQ's gradient for a learned scale."""
    info = np.iinfo(dtype.np)
    t = x / scale
    q = torch.clamp(t + (torch.round(t) - t).detach() + zero_point, int(info.min), int(info.max))
    return (q - zero_point) * scale


def _dequantized(a: np.ndarray, v: Value) -> np.ndarray:
    """The interpreter's dequantize of `a`, the data of integer value `v` (float data as it is)."""
    q = v.type.quant
    if q is None or v.dtype == DType.f32:
        return a
    return evaluate("dequantize", [a], {"scale": list(q.scale), "zero_point": list(q.zero_point), "axis": q.axis})[0]


class QAT(nn.Module):
    """The fake-quantized, trainable model (see the module docstring); `integer_graph(io)` is the
    integer graph it computes. Parameters: `params` (conv/dense weights in torch's layout and
    biases, by constant name) and `ranges` ((lo, hi) per tensor, trained with learn_scales)."""

    def __init__(self, graph: Graph, ranges: dict, dtype: str, weights: str | None, per_channel: bool,
                 learn_scales: bool):
        super().__init__()
        bad = [n for n in graph.nodes if n.op not in IMPLS or n.op == "batch_norm"]  # (its torch form is a module)
        if bad:
            raise UsageError("QAT cannot train through " + ", ".join(f"%{n.name} ({n.op})" for n in bad),
                             "put each batch norm right after a conv or linear layer, where fold-bn folds it")
        self.graph, self.dtype, self.weights, self.per_channel = graph, dtype, weights, per_channel
        self.nodes = {n.name: n for n in graph.nodes}
        trained = {n.inputs[i].name: torch_layout(n, i) for n in graph.nodes if n.op in WEIGHTED
                   for i in (1, 2) if i < len(n.inputs) and n.inputs[i].is_const}
        self.param_keys, self.perms = _keys(trained), trained
        consts = {v.name: v for v in graph.constants()}
        self.params = nn.ParameterDict({key: nn.Parameter(torch.from_numpy(np.array(
            consts[name].data if trained[name] is None else consts[name].data.transpose(trained[name]))))
            for name, key in self.param_keys.items()})
        self.range_keys = _keys(ranges)
        self.ranges = nn.ParameterDict({key: nn.Parameter(torch.tensor(ranges[name], dtype=torch.float64),
                                                          requires_grad=learn_scales)
                                        for name, key in self.range_keys.items()})
        self._cache = (None, None)

    def _range(self, name: str) -> tuple[float, float]:
        lo, hi = (float(x) for x in self.ranges[self.range_keys[name]].detach())
        return min(lo, 0.0), max(hi, 0.0)

    def integer_graph(self, io: str = "int8", ctx: PassContext | None = None) -> Graph:
        """The integer graph of the current parameters (lower-quantized's `io`: "int8" | "float");
        `ctx` gets its QDQ form (ctx.qdq_graph, the ONNX backend's export, as after `quantize`)."""
        g, ctx = self.graph.clone(), ctx or PassContext()
        for v in g.constants():
            if v.name in self.param_keys:
                data, perm = self.params[self.param_keys[v.name]].detach().cpu().numpy(), self.perms[v.name]
                v.data = np.ascontiguousarray(data if perm is None else data.transpose(np.argsort(perm)))
        for n in g.nodes:
            reason = why_float(n, self.dtype)
            if reason:
                n.meta["float"] = reason
        insert_qdq(g, {name: self._range(name) for name in self.range_keys}, self.dtype, self.per_channel,
                   lambda n: "float" not in n.meta)
        ctx.qdq_graph = g.clone()  # compress-weights gives it the compressed weights
        steps = [("lower-quantized", {"io": io})] + [("compress-weights", {"format": self.weights})] * bool(self.weights)
        PassManager(steps).run(g, ctx)
        return g

    def _current(self) -> Graph:
        """integer_graph("int8"), made again only after a parameter changed."""
        version = tuple((id(p), p._version) for p in self.parameters())  # counts in-place updates (optimizers)
        if self._cache[0] != version:
            self._cache = (version, self.integer_graph())
        return self._cache[1]

    def _scale(self, v: Value):
        """Integer value v's scale for the surrogate: a function of its range where v's parameters
        are that range's (learn_scales), else a constant."""
        r = self.ranges[self.range_keys[v.name]] if v.name in self.range_keys else None
        s = v.type.quant.scale[0]
        if r is None or not r.requires_grad or range_params(*self._range(v.name), v.dtype.value) != v.type.quant:
            return s
        lo, hi = torch.clamp(r[0], max=0.0), torch.clamp(r[1], min=0.0)
        s = ((hi - lo) / 255 if v.dtype == DType.i8 else torch.maximum(-lo, hi) / 32767).float()
        g = 1 / math.sqrt(v.type.numel * np.iinfo(v.dtype.np).max)  # LSQ's gradient scale, 1 / sqrt(N q_max)
        return s * g + (s * (1 - g)).detach()

    def _operand(self, f, i: int, v: Value, env: dict):
        """Operand `i` of the float node `f` (None: quantize, requantize, dequantize) for its surrogate."""
        if not v.is_const:
            return env[id(v)][0]
        exact = _dequantized(v.data, v)
        name = f.inputs[i].name if f is not None and f.op in WEIGHTED else None
        if name not in self.param_keys:
            return torch.from_numpy(np.array(exact))
        perm = self.perms[name]
        exact = torch.from_numpy(np.ascontiguousarray(exact if perm is None else exact.transpose(perm)))
        return _Exact.apply(self.params[self.param_keys[name]], exact)

    def forward(self, *inputs):
        g = self._current()
        env = {}  # id(value) -> (dequantized value carrying the surrogate's gradient, exact array)
        for v, x in zip(g.inputs, inputs, strict=True):
            x = torch.as_tensor(x, dtype=torch.float32)
            q = v.type.quant
            a = evaluate("quantize", [x.detach().cpu().numpy()], {"scale": list(q.scale), "zero_point":
                                                                    list(q.zero_point), "dtype": v.dtype.value})[0]
            env[id(v)] = (_Exact.apply(_fake_quant(x, self._scale(v), q.zero_point[0], v.dtype),
                                       torch.from_numpy(_dequantized(a, v))), a)
        for n in g.nodes:
            attrs = {**n.attrs, "shape": batch_free(n.attrs["shape"], n.inputs[0].shape)} if n.op == "reshape" else n.attrs
            results = evaluate(n.op, [v.data if v.is_const else env[id(v)][1] for v in n.inputs], attrs)
            f = self.nodes[n.name] if n.op not in ("quantize", "requantize", "dequantize") else None
            xs = [self._operand(f, i, v, env) for i, v in enumerate(n.inputs)]
            if f is None:
                ys = xs[:1]
            else:
                step = Step(f.name, f.attrs, tuple(v.shape for v in f.inputs), tuple(v.shape for v in f.outputs), None)
                ys = IMPLS[f.op](step, *xs)
                ys = ys if isinstance(ys, tuple) else (ys,)
            for v, a, y in zip(n.outputs, results, ys, strict=True):
                a = a.astype(v.dtype.np, copy=False)
                if v.dtype != DType.f32:
                    y = _fake_quant(y, self._scale(v), v.type.quant.zero_point[0], v.dtype)
                env[id(v)] = (_Exact.apply(y, torch.from_numpy(np.array(_dequantized(a, v)))), a)
        outs = [env[id(v)][0] for v in g.outputs]
        return outs[0] if len(outs) == 1 else tuple(outs)
