"""The one op table: every op's name, operands, attributes with defaults, and shape rule.

An op's meaning lives in `interpreter.py`; its lowerings live in one file per backend. Adding an
op touches this table, the interpreter, and one lowering per backend, and nothing else.

Conventions that hold for every op:
- Shapes are static. Layout-sensitive ops carry `layout`: "NCHW" (torch's, the default) or
  "NHWC" for 2-D ops, "NCW" or "NWC" for 1-D ones. Convolution weights are OIHW under NCHW
  (torch's; OIW for 1-D) and OHWI under NHWC (OWI for 1-D); transposed-convolution weights are
  torch's (I, O/groups, kH, kW) under NCHW and (O/groups, kH, kW, I) under NHWC.
- Padding lists are ONNX-style: all begins, then all ends (`[top, left, bottom, right]`).
- Ops that can absorb an activation carry `act`, one of `FUSED_ACTS`, applied to their result.
- Binary elementwise ops broadcast like numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import ShapeError
from . import wformat
from .types import DType, QuantParams, TensorType

REQUIRED = object()  # marks an attribute without a default
FUSED_ACTS = ("none", "relu", "relu6")

Shape = tuple[int, ...]


@dataclass(frozen=True)
class OpDef:
    """Schema of one op.

    `inputs` names the operands; a trailing '?' marks an optional one (it may be absent from the
    end of the operand list), a leading '*' a variadic tail. `num_outputs` is an int or a
    function of the attributes. `shape(in_shapes, attrs)` returns the output shapes and raises
    `ShapeError` on operands it cannot accept. `tags` group ops for passes (see `with_tag`);
    `choices` lists the values an enumerated attribute may take (checked by the verifier).
    `types` gives result dtypes (and quant parameters) for ops whose results do not take the
    first operand's dtype.
    """

    name: str
    inputs: tuple[str, ...]
    attrs: dict = field(default_factory=dict)
    shape: Callable | None = None
    num_outputs: int | Callable = 1
    tags: frozenset = frozenset()
    choices: dict = field(default_factory=dict)  # attribute -> the values it may take
    types: Callable | None = None  # (in_types, attrs, shapes) -> result TensorTypes

    def result_types(self, in_types: list[TensorType], attrs: dict) -> list[TensorType]:
        """Result types: the shape rule's shapes with the first operand's dtype, unless the op
        has its own `types` rule (quantize, dequantize). A non-integer op (max_pool, reshape, ...)
        keeps a per-tensor quantized operand's parameters, as it runs unchanged on its integers;
        an integer op's result parameters are the caller's to give."""
        shapes = self.shape([t.shape for t in in_types], attrs)
        if self.types is not None:
            return self.types(in_types, attrs, shapes)
        q = in_types[0].quant
        keep = q if q is not None and q.axis is None and "integer" not in self.tags else None
        return [TensorType(s, in_types[0].dtype, keep) for s in shapes]

    def arity(self) -> tuple[int, float]:
        """(min, max) number of operands."""
        required = [i for i in self.inputs if not i.endswith("?") and not i.startswith("*")]
        if any(i.startswith("*") for i in self.inputs):
            return len(required), math.inf
        return len(required), len(self.inputs)

    def n_outputs(self, attrs: dict) -> int:
        return self.num_outputs(attrs) if callable(self.num_outputs) else self.num_outputs

    def full_attrs(self, attrs: dict) -> dict:
        """`attrs` completed with defaults; raises KeyError naming an unknown or missing one."""
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise KeyError(f"op {self.name} has no attribute(s) {sorted(unknown)}; "
                           f"known: {sorted(self.attrs)}")
        out = {}
        for k, default in self.attrs.items():
            if k in attrs:
                out[k] = attrs[k]
            elif default is REQUIRED:
                raise KeyError(f"op {self.name} needs attribute '{k}'")
            else:
                out[k] = default
        return out


def registrar(table: dict):
    """Decorator factory for the per-op tables (interpreter, lowerings, importers): the decorator
    it returns, called with names, stores the decorated function in `table` under each name."""
    def names(*keys):
        def register(fn):
            for k in keys:
                table[k] = fn
            return fn
        return register
    return names


# ---------------------------------------------------------------- shape helpers

def _check(cond: bool, msg: str):
    if not cond:
        raise ShapeError(None, msg)


def channel_axis(layout: str) -> int:
    """Channel axis of an activation under `layout` (1 for NC..., -1 for N...C)."""
    return 1 if layout[1] == "C" else -1


def spatial_axes(layout: str, rank: int) -> list[int]:
    return list(range(2, rank)) if layout[1] == "C" else list(range(1, rank - 1))


def window_out(size, k, stride, pb, pe, dil=1, ceil_mode=False):
    _check(stride > 0 and dil > 0 and k > 0, f"window {k}, stride {stride} and dilation {dil} must be positive")
    eff = dil * (k - 1) + 1
    span = size + pb + pe - eff
    _check(span >= 0, f"window {eff} larger than padded input {size + pb + pe}")
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pb:
        out -= 1  # the last window must start inside the input or the begin padding
    return out


def _spatial_rank(layout):
    return len(layout) - 2


def _conv_shape(s, a):
    x, w = s[0], s[1]
    nd = _spatial_rank(a["layout"])
    _check(len(x) == nd + 2 and len(w) == nd + 2, f"expected rank-{nd + 2} input and weight, got {x} and {w}")
    sp = spatial_axes(a["layout"], len(x))
    c_in = x[channel_axis(a["layout"])]
    nhwc = a["layout"][1] != "C"
    c_out, w_cin, ks = (w[0], w[-1], w[1:-1]) if nhwc else (w[0], w[1], w[2:])
    g = a["groups"]
    _check(g > 0 and c_in == w_cin * g, f"input has {c_in} channels, weight expects {w_cin} x groups {g}")
    _check(c_out % g == 0, f"{c_out} output channels not divisible by groups {g}")
    if len(s) > 2:
        _check(tuple(s[2]) == (c_out,), f"bias shape {s[2]} != ({c_out},)")
    out = [window_out(x[ax], ks[i], a["stride"][i], a["pads"][i], a["pads"][i + nd], a["dilation"][i])
           for i, ax in enumerate(sp)]
    return [(x[0], *out, c_out) if nhwc else (x[0], c_out, *out)]


def _conv_transpose_shape(s, a):
    x, w = s[0], s[1]
    _check(len(x) == 4 and len(w) == 4, "conv_transpose2d takes rank-4 input and weight")
    nhwc = a["layout"] == "NHWC"
    c_in = x[-1] if nhwc else x[1]
    g = a["groups"]
    w_cin, c_out, ks = (w[-1], w[0] * g, w[1:3]) if nhwc else (w[0], w[1] * g, w[2:])
    _check(c_in == w_cin, f"input has {c_in} channels, weight expects {w_cin}")
    if len(s) > 2:
        _check(tuple(s[2]) == (c_out,), f"bias shape {s[2]} != ({c_out},)")
    sp = x[1:3] if nhwc else x[2:]
    out = [(sp[i] - 1) * a["stride"][i] - a["pads"][i] - a["pads"][i + 2]
           + a["dilation"][i] * (ks[i] - 1) + a["output_padding"][i] + 1 for i in range(2)]
    _check(all(o > 0 for o in out), f"output size {out} is not positive")
    return [(x[0], *out, c_out) if nhwc else (x[0], c_out, *out)]


def _pool_shape(s, a):
    x = s[0]
    nd = _spatial_rank(a["layout"])
    _check(len(x) == nd + 2, f"expected rank-{nd + 2} input, got {x}")
    out = list(x)
    for i, ax in enumerate(spatial_axes(a["layout"], len(x))):
        out[ax] = window_out(x[ax], a["kernel"][i], a["stride"][i], a["pads"][i], a["pads"][i + nd],
                              a.get("dilation", [1] * nd)[i], a["ceil_mode"])
    return [tuple(out)]


def _spatial_from(key):
    """Shape rule of ops whose attribute `key` gives the output's spatial sizes."""
    def rule(s, a):
        x = s[0]
        sp = spatial_axes(a["layout"], len(x))
        _check(len(sp) == len(a[key]), f"{key} {a[key]} does not match input {x}")
        out = list(x)
        for ax, o in zip(sp, a[key]):
            out[ax] = o
        return [tuple(out)]
    return rule


def _same(s, a):
    return [tuple(s[0])]


def broadcast_shapes(*shapes) -> Shape:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(None, f"shapes {' and '.join(map(str, shapes))} do not broadcast") from None


def _broadcast(s, a):
    return [broadcast_shapes(*s)]


def _prelu_shape(s, a):
    """PReLU: alpha broadcasts to x (numpy's rules, ONNX's "unidirectional"), x's shape results."""
    _check(broadcast_shapes(*s) == tuple(s[0]), f"alpha of shape {s[1]} does not broadcast to x of shape {s[0]}")
    return [tuple(s[0])]


def norm_axis(axis: int, rank: int) -> int:
    _check(-rank <= axis < max(rank, 1), f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def _linear_shape(s, a):
    x, w = s[0], s[1]
    _check(len(w) == 2 and x[-1] == w[1], f"input {x} does not fit weight {w}")
    if len(s) > 2:
        _check(tuple(s[2]) == (w[0],), f"bias shape {s[2]} != ({w[0]},)")
    return [(*x[:-1], w[0])]


def _matmul_shape(s, a):
    x, y = s
    _check(len(x) >= 1 and len(y) >= 1, "matmul of scalars")
    xs, ys = (1, *x) if len(x) == 1 else x, (*y, 1) if len(y) == 1 else y
    _check(xs[-1] == ys[-2], f"matmul inner dims differ: {x} @ {y}")
    out = (*broadcast_shapes(xs[:-2], ys[:-2]), xs[-2], ys[-1])
    if len(x) == 1:
        out = out[:-2] + out[-1:]
    if len(y) == 1:
        out = out[:-1]
    return [out]


def _batch_norm_shape(s, a):
    c = s[0][norm_axis(a["axis"], len(s[0]))]
    _check(all(tuple(p) == (c,) for p in s[1:]), f"parameters {s[1:]} do not match {c} channels")
    return [tuple(s[0])]


def _layer_norm_shape(s, a):
    x = s[0]
    norm = x[norm_axis(a["axis"], len(x)):]
    _check(all(tuple(p) == tuple(norm) for p in s[1:]), f"parameters {s[1:]} do not match {norm}")
    return [tuple(x)]


def _axis_same(s, a):
    norm_axis(a["axis"], len(s[0]))
    return [tuple(s[0])]


def _mean_shape(s, a):
    x = s[0]
    axes = {norm_axis(ax, len(x)) for ax in a["axes"]}
    if a["keepdims"]:
        return [tuple(1 if i in axes else d for i, d in enumerate(x))]
    return [tuple(d for i, d in enumerate(x) if i not in axes)]


def _reshape_shape(s, a):
    shape = tuple(a["shape"])
    _check(all(d >= 0 for d in shape), f"reshape target {shape} must be static and non-negative")
    _check(math.prod(shape) == math.prod(s[0]), f"cannot reshape {s[0]} to {shape}")
    return [shape]


def _transpose_shape(s, a):
    x, perm = s[0], a["perm"]
    _check(sorted(perm) == list(range(len(x))), f"perm {perm} is not a permutation of rank {len(x)}")
    return [tuple(x[p] for p in perm)]


def _concat_shape(s, a):
    _check(len(s) > 0, "a concat of no tensors")
    ax = norm_axis(a["axis"], len(s[0]))
    for t in s[1:]:
        _check(len(t) == len(s[0]) and all(t[i] == s[0][i] for i in range(len(t)) if i != ax),
               f"cannot concatenate {s[0]} and {t} on axis {a['axis']}")
    out = list(s[0])
    out[ax] = sum(t[ax] for t in s)
    return [tuple(out)]


def _split_shape(s, a):
    x = s[0]
    ax = norm_axis(a["axis"], len(x))
    _check(sum(a["sizes"]) == x[ax], f"split sizes {a['sizes']} do not add up to {x[ax]}")
    return [tuple(n if i == ax else d for i, d in enumerate(x)) for n in a["sizes"]]


def slice_range(size, start, end, step):
    """Normalized python-slice bounds along one axis -> element count."""
    return len(range(*slice(start, end, step).indices(size)))


def _slice_shape(s, a):
    out = list(s[0])
    _check(len(a["axes"]) == len(a["starts"]) == len(a["ends"]) == len(a["steps"]),
           "slice axes/starts/ends/steps differ in length")
    for ax, st, en, sp in zip(a["axes"], a["starts"], a["ends"], a["steps"]):
        _check(sp > 0, f"slice step {sp} must be positive")
        ax = norm_axis(ax, len(out))
        out[ax] = slice_range(out[ax], st, en, sp)
    return [tuple(out)]


def _pad_shape(s, a):
    x, p = s[0], a["pads"]
    _check(len(p) == 2 * len(x), f"pad needs {2 * len(x)} values (begins then ends), got {len(p)}")
    return [tuple(d + p[i] + p[i + len(x)] for i, d in enumerate(x))]


def _tile_shape(s, a):
    _check(len(a["repeats"]) == len(s[0]) and min(a["repeats"], default=1) >= 1,
           f"tile needs one positive repeat count per axis of {tuple(s[0])}, got {a['repeats']}")
    return [tuple(d * r for d, r in zip(s[0], a["repeats"]))]


def _per_axis(s, a):
    """quantize / dequantize: a zero point per scale, and per-axis scales one per element of the axis."""
    n, axis = len(a["scale"]), a["axis"]
    _check(len(a["zero_point"]) == n, f"{n} scales but {len(a['zero_point'])} zero points")
    _check(n == 1 or -len(s[0]) <= axis < len(s[0]) and s[0][axis] == n, f"{n} scales for axis {axis} of {tuple(s[0])}")
    return [tuple(s[0])]


def _quantize_types(t, a, shapes):
    q = QuantParams(a["scale"], a["zero_point"], a["axis"] if len(a["scale"]) > 1 else None)
    return [TensorType(shapes[0], DType(a["dtype"]), q)]


def _dequantize_types(t, a, shapes):
    return [TensorType(shapes[0], DType.f32)]


# ---------------------------------------------------------------- the table

_LAYOUT_2D, _LAYOUT_1D = {"layout": ("NCHW", "NHWC")}, {"layout": ("NCW", "NWC")}
_CONV_ATTRS = dict(stride=REQUIRED, pads=REQUIRED, dilation=REQUIRED, groups=1, act="none")
_POOL_ATTRS = dict(kernel=REQUIRED, stride=REQUIRED, pads=REQUIRED, ceil_mode=False)

ELEMENTWISE = frozenset({"elementwise"})
ACTIVATION = frozenset({"elementwise", "activation"})
BINARY = frozenset({"elementwise", "binary"})

_DEFS = [
    OpDef("conv1d", ("x", "w", "b?"), dict(_CONV_ATTRS, layout="NCW"), _conv_shape, tags=frozenset({"conv", "layout"}),
          choices=_LAYOUT_1D),
    OpDef("conv2d", ("x", "w", "b?"), dict(_CONV_ATTRS, layout="NCHW"), _conv_shape, tags=frozenset({"conv", "layout"}),
          choices=_LAYOUT_2D),
    OpDef("conv_transpose2d", ("x", "w", "b?"),
          dict(_CONV_ATTRS, output_padding=[0, 0], layout="NCHW"), _conv_transpose_shape,
          tags=frozenset({"conv", "layout"}), choices=_LAYOUT_2D),
    OpDef("linear", ("x", "w", "b?"), dict(act="none"), _linear_shape),
    OpDef("matmul", ("a", "b"), {}, _matmul_shape),
    OpDef("batch_norm", ("x", "scale", "bias", "mean", "var"), dict(eps=1e-5, axis=1), _batch_norm_shape),
    OpDef("layer_norm", ("x", "scale?", "bias?"), dict(eps=1e-5, axis=-1), _layer_norm_shape),

    OpDef("relu", ("x",), {}, _same, tags=ACTIVATION),
    OpDef("relu6", ("x",), {}, _same, tags=ACTIVATION),
    OpDef("leaky_relu", ("x",), dict(alpha=0.01), _same, tags=ACTIVATION),
    OpDef("clamp", ("x",), dict(min=REQUIRED, max=REQUIRED), _same, tags=ACTIVATION),
    OpDef("sigmoid", ("x",), {}, _same, tags=ACTIVATION),
    OpDef("tanh", ("x",), {}, _same, tags=ACTIVATION),
    OpDef("hardswish", ("x",), {}, _same, tags=ACTIVATION),
    OpDef("hardsigmoid", ("x",), {}, _same, tags=ACTIVATION),
    OpDef("silu", ("x",), {}, _same, tags=ACTIVATION),
    OpDef("gelu", ("x",), dict(approximate="none"), _same, tags=ACTIVATION,
          choices={"approximate": ("none", "tanh")}),
    OpDef("elu", ("x",), dict(alpha=1.0), _same, tags=ACTIVATION),
    OpDef("softplus", ("x",), {}, _same, tags=ACTIVATION),  # log(1 + exp(x))
    *(OpDef(f, ("x",), {}, _same, tags=ELEMENTWISE) for f in ("exp", "log", "sqrt", "abs", "sign", "erf")),
    OpDef("identity", ("x",), {}, _same, tags=ELEMENTWISE),
    OpDef("dropout", ("x",), dict(p=0.5), _same, tags=ELEMENTWISE),
    OpDef("softmax", ("x",), dict(axis=-1), _axis_same),
    OpDef("log_softmax", ("x",), dict(axis=-1), _axis_same),

    OpDef("add", ("a", "b"), dict(act="none"), _broadcast, tags=BINARY),
    OpDef("sub", ("a", "b"), dict(act="none"), _broadcast, tags=BINARY),
    OpDef("mul", ("a", "b"), dict(act="none"), _broadcast, tags=BINARY),
    OpDef("div", ("a", "b"), {}, _broadcast, tags=BINARY),
    OpDef("prelu", ("x", "alpha"), {}, _prelu_shape, tags=BINARY),  # x if x >= 0 else alpha * x
    *(OpDef(f, ("a", "b"), {}, _broadcast, tags=BINARY) for f in ("maximum", "minimum", "pow")),

    OpDef("max_pool1d", ("x",), dict(_POOL_ATTRS, dilation=[1], layout="NCW"), _pool_shape, tags=frozenset({"pool", "layout"}),
          choices=_LAYOUT_1D),
    OpDef("max_pool2d", ("x",), dict(_POOL_ATTRS, dilation=[1, 1], layout="NCHW"), _pool_shape, tags=frozenset({"pool", "layout"}),
          choices=_LAYOUT_2D),
    OpDef("avg_pool1d", ("x",), dict(_POOL_ATTRS, count_include_pad=True, layout="NCW"), _pool_shape, tags=frozenset({"pool", "layout"}),
          choices=_LAYOUT_1D),
    OpDef("avg_pool2d", ("x",), dict(_POOL_ATTRS, count_include_pad=True, layout="NCHW"), _pool_shape, tags=frozenset({"pool", "layout"}),
          choices=_LAYOUT_2D),
    OpDef("adaptive_avg_pool", ("x",), dict(output_size=REQUIRED, layout="NCHW"), _spatial_from("output_size"),
          tags=frozenset({"pool", "layout"}), choices={"layout": ("NCW", "NWC", "NCHW", "NHWC")}),
    OpDef("mean", ("x",), dict(axes=REQUIRED, keepdims=False), _mean_shape),
    OpDef("reduce", ("x",), dict(axes=REQUIRED, keepdims=False, mode=REQUIRED), _mean_shape,
          choices={"mode": ("sum", "max", "min")}),

    OpDef("reshape", ("x",), dict(shape=REQUIRED), _reshape_shape, tags=frozenset({"view"})),
    OpDef("transpose", ("x",), dict(perm=REQUIRED), _transpose_shape),
    OpDef("concat", ("*xs",), dict(axis=REQUIRED), _concat_shape),
    OpDef("split", ("x",), dict(axis=REQUIRED, sizes=REQUIRED), _split_shape,
          num_outputs=lambda a: len(a["sizes"])),
    OpDef("slice", ("x",), dict(axes=REQUIRED, starts=REQUIRED, ends=REQUIRED, steps=REQUIRED), _slice_shape),
    OpDef("pad", ("x",), dict(pads=REQUIRED, value=0.0), _pad_shape),
    OpDef("tile", ("x",), dict(repeats=REQUIRED), _tile_shape),  # numpy's tile, one repeat count per axis

    # Affine quantization (DESIGN.md "Numeric semantics"): q = clamp(round_half_away(x / scale) + zp)
    # and x = (q - zp) * scale; one scale/zero point, or one per index of `axis`.
    OpDef("quantize", ("x",), dict(scale=REQUIRED, zero_point=REQUIRED, axis=0, dtype="i8"), _per_axis,
          choices={"dtype": ("i8", "u8", "i16", "i32")}, types=_quantize_types, tags=frozenset({"quant"})),
    OpDef("dequantize", ("x",), dict(scale=REQUIRED, zero_point=REQUIRED, axis=0), _per_axis,
          types=_dequantize_types, tags=frozenset({"quant"})),
    OpDef("resize", ("x",), dict(size=REQUIRED, mode="nearest", align_corners=False, layout="NCHW"),
          _spatial_from("size"), tags=frozenset({"layout"}),
          choices={"mode": ("nearest", "bilinear"), "layout": ("NCW", "NWC", "NCHW", "NHWC")}),
]

# Integer ops: TFLite Micro's reference int8 (and int16x8: i16 activations with zero point 0, i8
# weights, i64 bias) kernels, bit for bit; quant.py computes their attributes from the scales and
# zero points. `multiplier` is a Q31 int, `shift` TFLite's exponent (> 0 shifts left); conv and
# linear carry one per output channel (or one for all); act_min/act_max clamp the integer result.
# Operand and weight layouts are the float ops'. qsoftmax/qlogistic (output 1/256, -128), qtanh
# (1/128, 0), qlog_softmax (16/256, 127), qhardswish and qprelu are int8 only, except qsoftmax, qlogistic
# and qtanh on int16 (output 1/32768, 0; TFLite's table kernels: qsoftmax's diff_min is -65535,
# qlogistic's and qtanh's `multiplier` < 2^15 with a right `shift`, in_zp and range_radius 0).
# Ops not listed here (max_pool, reshape, pad with the zero point, ...) run unchanged on integer tensors.
_QOUT = dict(out_zp=REQUIRED, multiplier=REQUIRED, shift=REQUIRED)
_QCONV = dict(stride=REQUIRED, pads=REQUIRED, dilation=REQUIRED, groups=1, in_zp=REQUIRED, **_QOUT,
              act_min=REQUIRED, act_max=REQUIRED)
_QMUL = dict(a_zp=REQUIRED, b_zp=REQUIRED, **_QOUT, act_min=REQUIRED, act_max=REQUIRED)
_QADD = dict(_QMUL, left_shift=REQUIRED, a_multiplier=REQUIRED, a_shift=REQUIRED, b_multiplier=REQUIRED,
             b_shift=REQUIRED)
_QSIGMOID = dict(in_zp=REQUIRED, range_radius=REQUIRED, multiplier=REQUIRED, shift=REQUIRED)
_QPOOL = dict(_POOL_ATTRS, act_min=REQUIRED, act_max=REQUIRED)
INTEGER = frozenset({"integer"})
Q_ELEMENTWISE = frozenset({"integer", "elementwise"})
Q_BINARY = frozenset({"integer", "elementwise", "binary"})
Q_CONV, Q_POOL = frozenset({"integer", "conv", "layout"}), frozenset({"integer", "pool", "layout"})
_WFMT = {"wfmt": wformat.NAMES}  # how the int8 weights are stored (C backend), see wformat.py

_DEFS += [
    OpDef("requantize", ("x",), dict(in_zp=REQUIRED, **_QOUT, dtype="i8"), _same, tags=Q_ELEMENTWISE,
          choices={"dtype": ("i8", "u8", "i16", "i32")},
          types=lambda t, a, shapes: [TensorType(shapes[0], DType(a["dtype"]))]),
    OpDef("qconv1d", ("x", "w", "b?"), dict(_QCONV, layout="NCW", wfmt="int8"), _conv_shape, tags=Q_CONV,
          choices={**_LAYOUT_1D, **_WFMT}),
    OpDef("qconv2d", ("x", "w", "b?"), dict(_QCONV, layout="NCHW", wfmt="int8"), _conv_shape, tags=Q_CONV,
          choices={**_LAYOUT_2D, **_WFMT}),
    OpDef("qconv_transpose2d", ("x", "w", "b?"), dict(_QCONV, output_padding=[0, 0], layout="NCHW"),
          _conv_transpose_shape, tags=Q_CONV, choices=_LAYOUT_2D),
    OpDef("qlinear", ("x", "w", "b?"), dict(in_zp=REQUIRED, **_QOUT, act_min=REQUIRED, act_max=REQUIRED, wfmt="int8"),
          _linear_shape, tags=INTEGER, choices=_WFMT),
    OpDef("qadd", ("a", "b"), _QADD, _broadcast, tags=Q_BINARY),
    OpDef("qsub", ("a", "b"), _QADD, _broadcast, tags=Q_BINARY),
    OpDef("qmul", ("a", "b"), _QMUL, _broadcast, tags=Q_BINARY),
    OpDef("qavg_pool1d", ("x",), dict(_QPOOL, layout="NCW"), _pool_shape, tags=Q_POOL, choices=_LAYOUT_1D),
    OpDef("qavg_pool2d", ("x",), dict(_QPOOL, layout="NCHW"), _pool_shape, tags=Q_POOL, choices=_LAYOUT_2D),
    OpDef("qmean", ("x",), dict(axes=REQUIRED, keepdims=False, in_zp=REQUIRED, **_QOUT), _mean_shape, tags=INTEGER),
    OpDef("qsoftmax", ("x",), dict(axis=-1, multiplier=REQUIRED, shift=REQUIRED, diff_min=REQUIRED), _axis_same,
          tags=INTEGER),
    OpDef("qlog_softmax", ("x",), dict(axis=-1, multiplier=REQUIRED, shift=REQUIRED, diff_min=REQUIRED,
                                       reverse_multiplier=REQUIRED, reverse_shift=REQUIRED), _axis_same, tags=INTEGER),
    OpDef("qlogistic", ("x",), _QSIGMOID, _same, tags=Q_ELEMENTWISE),
    OpDef("qtanh", ("x",), _QSIGMOID, _same, tags=Q_ELEMENTWISE),
    OpDef("qhardswish", ("x",), dict(in_zp=REQUIRED, out_zp=REQUIRED, relu_multiplier=REQUIRED, relu_shift=REQUIRED,
                                     out_multiplier=REQUIRED, out_shift=REQUIRED), _same, tags=Q_ELEMENTWISE),
    OpDef("qleaky_relu", ("x",), dict(in_zp=REQUIRED, out_zp=REQUIRED, alpha_multiplier=REQUIRED,
                                      alpha_shift=REQUIRED, id_multiplier=REQUIRED, id_shift=REQUIRED),
          _same, tags=Q_ELEMENTWISE),
    OpDef("qprelu", ("x", "alpha"), dict(in_zp=REQUIRED, alpha_zp=REQUIRED, out_zp=REQUIRED, id_multiplier=REQUIRED,
                                         id_shift=REQUIRED, alpha_multiplier=REQUIRED, alpha_shift=REQUIRED),
          _prelu_shape, tags=Q_BINARY),
]

OPS: dict[str, OpDef] = {d.name: d for d in _DEFS}


def get(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown op '{name}'") from None


def with_tag(tag: str) -> frozenset[str]:
    """Names of the ops carrying `tag` ("activation", "binary", "conv", "pool", "layout", ...)."""
    return frozenset(n for n, d in OPS.items() if tag in d.tags)
