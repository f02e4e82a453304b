"""C backend lowerings: for each IR op, which kernel runs it and with which arguments.

`LOWERINGS[op](e, node)` calls `e.call(kernel, *args)` once or more on the emitter
(`emit.CEmitter`), which hands out the C expressions of the node's tensors (`e.ptr`), of
compile-time arrays placed in the weight blob (`e.const`), of parameter structs (`e.struct`) and
of the node's planned scratch buffer (`e.scratch`). A lowering that calls nothing (a reshape that
the planner aliased) costs no code.

Work moves to compile time wherever it can: weights are reordered into the layout each kernel
reads; int8 conv and fully connected biases absorb the input zero point; int8 elementwise
functions (logistic, tanh, hardswish, leaky_relu, int8 -> int8 requantize) become 256-entry
tables computed by the reference interpreter, so they are bit-exact by construction; softmax
gets its exp table the same way. `scratch_bytes(node)` is the scratch each kernel needs
(im2col rows, transposed-conv sums), for the memory planner.

int16 activations (quantize="int16x8", or int16 layers in an int8 model) run on their own kernels
(*_s16.c): int8 weights, int64 biases and sums, no scratch. Pools, mean and add/sub/mul pick the
_s8 or _s16 kernel by type; convs, linear, clamps, leaky relu, logistic, tanh and softmax (the
last three interpolate in ir/quant.py's tables) have their int16 lowerings at the end of this file,
in INT16_LOWERINGS; compressed weights have theirs in packed.py (`emit.lowering` picks).

Limits: weights must be constants; integer log_softmax and hardswish take int8 only (int16x8
keeps them float); matmul broadcasting must collapse to one batch axis; mean, softmax and
quantize axes must be contiguous.
"""
from __future__ import annotations

import math
import re

import numpy as np

from ...errors import UnsupportedItem, UnsupportedOpError
from ...ir import interpreter, ops, quant
from ...ir.graph import Node, Value
from ...ir.types import DType

# kernel -> the file under kernels/ that defines it (a file is shipped when one of its kernels is called)
KERNEL_FILES = {k: f for f, ks in {
    "conv_f32.c": ["mcuforge_conv2d_f32", "mcuforge_dwconv2d_f32", "mcuforge_conv_transpose2d_f32"],
    "fc_f32.c": ["mcuforge_linear_f32", "mcuforge_matmul_f32"],
    "eltwise_f32.c": ["mcuforge_binary_f32", "mcuforge_unary_f32", "mcuforge_affine_f32"],
    "pool_f32.c": ["mcuforge_max_pool_f32", "mcuforge_avg_pool_f32", "mcuforge_adaptive_avg_pool_f32",
                   "mcuforge_mean_f32", "mcuforge_reduce_f32"],
    "norm_f32.c": ["mcuforge_softmax_f32", "mcuforge_layer_norm_f32"],
    "resize_f32.c": ["mcuforge_resize_bilinear_f32"],
    "quant_f32.c": ["mcuforge_quantize_f32", "mcuforge_dequantize_f32"],
    "copy.c": ["mcuforge_copy", "mcuforge_fill", "mcuforge_resize_nearest"],
    "conv_s8.c": ["mcuforge_conv2d_s8", "mcuforge_dwconv2d_s8", "mcuforge_conv_transpose2d_s8"],
    "fc_s8.c": ["mcuforge_linear_s8"],
    "eltwise_s8.c": ["mcuforge_add_s8", "mcuforge_mul_s8", "mcuforge_lut_s8", "mcuforge_clamp_s8",
                     "mcuforge_requantize"],
    "pool_s8.c": ["mcuforge_max_pool_s8", "mcuforge_avg_pool_s8", "mcuforge_mean_s8"],
    "softmax_s8.c": ["mcuforge_softmax_s8"],
    "packed_s8.c": ["mcuforge_conv2d_packed_s8", "mcuforge_dwconv2d_packed_s8", "mcuforge_linear_packed_s8"],
    "log_softmax_s8.c": ["mcuforge_log_softmax_s8"],
    "prelu_s8.c": ["mcuforge_prelu_s8"],
    "conv_s16.c": ["mcuforge_conv2d_s16", "mcuforge_dwconv2d_s16", "mcuforge_conv_transpose2d_s16"],
    "fc_s16.c": ["mcuforge_linear_s16"],
    "eltwise_s16.c": ["mcuforge_add_s16", "mcuforge_mul_s16", "mcuforge_clamp_s16", "mcuforge_leaky_relu_s16"],
    "pool_s16.c": ["mcuforge_max_pool_s16", "mcuforge_avg_pool_s16", "mcuforge_mean_s16"],
    "sigmoid_s16.c": ["mcuforge_logistic_s16", "mcuforge_tanh_s16"],
    "softmax_s16.c": ["mcuforge_softmax_s16"],
}.items() for k in ks}

# Flash bytes of each kernel file for a Cortex-M4 (arm-none-eabi-gcc 12 -O2, libm functions it
# pulls in included, rounded up): the code part of the fit check's flash estimate.
CODE_BYTES = {"conv_f32.c": 3600, "fc_f32.c": 700, "eltwise_f32.c": 9300, "pool_f32.c": 2200, "norm_f32.c": 2500,
              "resize_f32.c": 500, "quant_f32.c": 800, "copy.c": 800, "conv_s8.c": 5300, "fc_s8.c": 2000,
              "eltwise_s8.c": 6200, "pool_s8.c": 3100, "softmax_s8.c": 700, "packed_s8.c": 3000,
              "log_softmax_s8.c": 2400, "prelu_s8.c": 400, "conv_s16.c": 5200, "fc_s16.c": 1200, "eltwise_s16.c": 1800,
              "pool_s16.c": 1500, "sigmoid_s16.c": 300, "softmax_s16.c": 800}
MAX_RANK = 6  # MCUFORGE_MAX_RANK: axes of a strided copy or broadcast after collapsing
CALL_BYTES = 40  # per kernel call in the generated invoke function, plus its parameter struct

CTYPES = {DType.f32: "float", DType.i8: "int8_t", DType.u8: "uint8_t", DType.i16: "int16_t",
          DType.i32: "int32_t", DType.i64: "int64_t", DType.bool: "uint8_t"}
TYPE_CODES = {DType.i8: "MCUFORGE_I8", DType.u8: "MCUFORGE_U8", DType.i16: "MCUFORGE_I16", DType.i32: "MCUFORGE_I32"}


def unsupported(n: Node, why: str):
    raise UnsupportedOpError([UnsupportedItem(n.op, n.name, n.meta.get("location"))],
                             f"the C backend cannot run it: {why}", "the C backend cannot emit:")


def c_text(text: str) -> str:
    """Model-given text (value, node and graph names come from the user's files) as it may appear
    in a generated C comment or string literal: printable ASCII without quotes, backslashes, '*'
    (no comment can end or nest), '?' (no trigraph) or line breaks; anything else becomes '_'."""
    return re.sub(r"[^A-Za-z0-9 _.,:;%=+<>()\[\]{}#&|^~!/-]", "_", text)


def flt(x: float) -> str:
    """A float32 C literal that reads back as exactly the same float32."""
    if math.isinf(x):
        return "INFINITY" if x > 0 else "-INFINITY"
    text = str(np.float32(x))  # the shortest decimal that reads back as this float32
    return f"{text}f" if "e" in text or "." in text else f"{text}.0f"


def _act(n: Node) -> list[str]:
    """[act_min, act_max] of a fused activation (float kernels)."""
    return {"none": ["-INFINITY", "INFINITY"], "relu": ["0.0f", "INFINITY"],
            "relu6": ["0.0f", "6.0f"]}[n.attrs.get("act", "none")]


def check_int8(n: Node, *values: Value):
    """Refuse `n` (UnsupportedOpError) unless every one of `values` is int8."""
    for v in values:
        if v.dtype != DType.i8:
            unsupported(n, f"its integer kernel takes int8 tensors, %{v.name} is {v.dtype.value} "
                           "(quantize with scheme='int8')")


def _int_kernel(n: Node, kernel: str, *values: Value) -> str:
    """`kernel`_s8 or `kernel`_s16, for `values` all int8 or all int16."""
    for v in values:
        if v.dtype not in (DType.i8, DType.i16) or v.dtype != values[0].dtype:
            unsupported(n, f"its integer kernels take int8 or int16 tensors of one type, %{v.name} is "
                           f"{v.dtype.value} and %{values[0].name} {values[0].dtype.value}")
    return kernel + ("_s8" if values[0].dtype == DType.i8 else "_s16")


def check_const_weights(n: Node, *values: Value):
    """Refuse `n` unless every one of `values` (its weights, bias) is a constant."""
    for v in values:
        if not v.is_const:
            unsupported(n, f"its weight %{v.name} is computed at run time; the kernels read constant weights")


def check_int8_weighted(n: Node):
    """The checks of an int8 conv / linear: constant weights and bias, int8 input and output."""
    x, w, *b = n.inputs
    check_const_weights(n, w, *b)
    check_int8(n, x, n.output)


# ---------------------------------------------------------------- geometry helpers

def _nchw(shape, layout: str) -> tuple[int, int, int, int]:
    """(n, c, h, w) of an activation under `layout` (1-D layouts have h = 1)."""
    if layout[1] == "C":
        n, c, *sp = shape
    else:
        n, *sp, c = shape
    return (n, c, 1, sp[0]) if len(sp) == 1 else (n, c, sp[0], sp[1])


def _two(values, one_d_default):
    """A per-axis attribute as (h, w); 1-D ops get `one_d_default` for h."""
    return (one_d_default, values[0]) if len(values) == 1 else tuple(values)


def conv_weight(n: Node) -> np.ndarray:
    """The conv's weight as [out_c][k_h][k_w][in_c / groups] (conv) or [in_c][k_h][k_w][out_c /
    groups] (transposed conv), whatever the IR layout."""
    w, layout = n.inputs[1].data, n.attrs["layout"]
    if w.ndim == 3:  # 1-D: add k_h = 1
        w = w[:, :, None, :] if layout[1] == "C" else w[:, None, :, :]
    if n.op.endswith("conv_transpose2d"):  # (I, O/g, kh, kw) under NCHW, (O/g, kh, kw, I) under NHWC
        return np.transpose(w, (0, 2, 3, 1) if layout[1] == "C" else (3, 1, 2, 0))
    return np.transpose(w, (0, 2, 3, 1)) if layout[1] == "C" else w


def conv_geometry(n: Node) -> dict:
    x, y, a = n.inputs[0], n.output, n.attrs
    (bn, c, h, w), (_, oc, oh, ow) = _nchw(x.shape, a["layout"]), _nchw(y.shape, a["layout"])
    ws = n.inputs[1].shape  # spatial axes after (O, I) channels first, between them channels last
    k = _two(ws[2:] if a["layout"][1] == "C" else ws[1:-1], 1)
    nd = len(a["stride"])
    sh, sw = _two(a["stride"], 1)
    dh, dw = _two(a["dilation"], 1)
    pt, pl = _two(a["pads"][:nd], 0)
    return dict(n=bn, in_h=h, in_w=w, in_c=c, out_h=oh, out_w=ow, out_c=oc, k_h=k[0], k_w=k[1], stride_h=sh,
                stride_w=sw, dil_h=dh, dil_w=dw, pad_top=pt, pad_left=pl, groups=a["groups"],
                nhwc=int(a["layout"][1] != "C"))


def is_depthwise(n: Node) -> bool:
    g = n.attrs["groups"]
    return (n.op in ("conv1d", "conv2d", "qconv1d", "qconv2d") and g > 1
            and g == _nchw(n.inputs[0].shape, n.attrs["layout"])[1])


def is_pointwise(n: Node) -> bool:
    """A 1x1, stride 1, unpadded, ungrouped conv: its input pixels are the im2col columns (int8
    kernels need the channels-last layout for that)."""
    g = conv_geometry(n)
    return (g["k_h"] == g["k_w"] == g["stride_h"] == g["stride_w"] == g["groups"] == 1 and not any(n.attrs["pads"])
            and (n.op in ("conv1d", "conv2d") or g["nhwc"] == 1))


def scratch_bytes(n: Node) -> int:
    """Arena bytes the node's kernel needs besides its operands (the memory planner's `scratch`)."""
    if n.inputs[0].dtype == DType.i16:  # the int16 kernels loop over the taps directly
        return 0
    if n.op in ("conv1d", "conv2d", "qconv1d", "qconv2d") and not is_depthwise(n) and not is_pointwise(n):
        g = conv_geometry(n)
        return g["out_w"] * g["k_h"] * g["k_w"] * (g["in_c"] // g["groups"]) * n.inputs[0].dtype.itemsize
    if n.op == "qconv_transpose2d":
        g = conv_geometry(n)
        return g["out_h"] * g["out_w"] * g["out_c"] * 4
    return 0


def overlap_lag(n: Node) -> int | None:
    """The fewest bytes by which int8 conv `n`'s input may start after its output inside one
    buffer (the memory planner's `overlap`), from the order its kernel reads and writes: None when
    the kernel must keep its input whole. Channels-last int8, one image. Depthwise (one output per
    input channel): channel blocks one after the other, each over the output pixels in order, a
    pixel's inputs read before its bytes are written; a write over input pixel q (a whole number
    of pixels behind) must come after the last output pixel that reads q. A conv through im2col
    (groups 1): an output row is written after its columns are read; the rows above the next
    output row's window are dead by then."""
    if n.op not in ("qconv1d", "qconv2d") or n.inputs[0].dtype != DType.i8 or n.attrs.get("wfmt", "int8") != "int8":
        return None
    g = conv_geometry(n)
    if g["n"] != 1 or not g["nhwc"]:
        return None
    if is_depthwise(n) and g["out_c"] == g["in_c"]:
        first_row = np.maximum(np.arange(g["out_h"]) * g["stride_h"] - g["pad_top"], 0)
        first_col = np.maximum(np.arange(g["out_w"]) * g["stride_w"] - g["pad_left"], 0)
        needs = (first_row[:, None] * g["in_w"] + first_col[None, :]).ravel()  # each output pixel's first input
        later = np.minimum.accumulate(needs[::-1])[::-1][1:]  # the first input any later pixel reads
        behind = int(np.max(np.arange(len(later)) - later + 1, initial=0))
        return max(behind, 0) * g["in_c"]
    if g["groups"] == 1 and scratch_bytes(n) > 0:
        rows = np.arange(1, g["out_h"])  # the output rows written before each next one
        next_row = np.maximum(rows * g["stride_h"] - g["pad_top"], 0)
        row_in, row_out = g["in_w"] * g["in_c"], g["out_w"] * g["out_c"]
        return max(int(np.max(rows * row_out - next_row * row_in, initial=0)), 0)
    return None


def pool_geometry(n: Node) -> dict:
    x, y, a = n.inputs[0], n.output, n.attrs
    (bn, c, h, w), (_, _, oh, ow) = _nchw(x.shape, a["layout"]), _nchw(y.shape, a["layout"])
    geo = dict(n=bn, in_h=h, in_w=w, c=c, out_h=oh, out_w=ow, nhwc=int(a["layout"][1] != "C"))
    if "kernel" in a:
        nd = len(a["kernel"])
        (kh, kw), (sh, sw) = _two(a["kernel"], 1), _two(a["stride"], 1)
        (dh, dw), (pt, pl) = _two(a.get("dilation", [1] * nd), 1), _two(a["pads"][:nd], 0)
        pb, pr = _two(a["pads"][nd:], 0)
        geo.update(k_h=kh, k_w=kw, stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw, pad_top=pt, pad_left=pl,
                   pad_bottom=pb, pad_right=pr, count_include_pad=int(a.get("count_include_pad", False)))
    return geo


def _strides(shape) -> list[int]:
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= d
    return out[::-1]


def collapse(shape, *strides) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 axes and merge neighbours that every operand walks contiguously; returns the
    shape and each operand's strides (at least one axis)."""
    dims = [(d, [s[i] for s in strides]) for i, d in enumerate(shape) if d != 1]
    out: list = []
    for d, ss in dims:
        if out and all(p == q * d for p, q in zip(out[-1][1], ss)):
            out[-1] = (out[-1][0] * d, ss)
        else:
            out.append((d, ss))
    out = out or [(1, [1] * len(strides))]
    return [d for d, _ in out], [[ss[j] for _, ss in out] for j in range(len(strides))]


def _bcast(n: Node, a: Value, b: Value) -> dict:
    y = n.output.shape
    strides = []
    for v in (a, b):
        shape = (1,) * (len(y) - v.type.rank) + tuple(v.shape)
        strides.append([0 if d == 1 else s for d, s in zip(shape, _strides(shape))])
    shape, (_, sa, sb) = collapse(y, _strides(y), *strides)
    if len(shape) > MAX_RANK:
        unsupported(n, f"broadcasting over more than {MAX_RANK} axes")
    return dict(rank=len(shape), outer=math.prod(shape[:-1]), shape=shape, a_stride=sa, b_stride=sb)


def _split_axes(n: Node, shape, axes) -> tuple[int, int, int]:
    """(outer, reduced, inner) element counts of `shape` around the contiguous run `axes`."""
    axes = sorted({ops.norm_axis(ax, len(shape)) for ax in axes})
    big = [i for i, d in enumerate(shape) if d != 1]
    run = [i for i in big if i in axes]
    if run and run != big[big.index(run[0]):big.index(run[0]) + len(run)]:
        unsupported(n, f"axes {axes} of shape {list(shape)} are not contiguous")
    lo, hi = (run[0], run[-1] + 1) if run else (len(shape), len(shape))
    return math.prod(shape[:lo]), math.prod(shape[lo:hi]), math.prod(shape[hi:])


def copy(e, n: Node, src: str, dst: str, shape, src_strides, dst_strides, elem: int):
    """A strided copy of `shape` elements, collapsed to as few axes as possible."""
    shape, (ss, ds) = collapse(shape, src_strides, dst_strides)
    if len(shape) > MAX_RANK:
        unsupported(n, f"it moves data along more than {MAX_RANK} axes")
    e.call("mcuforge_copy", e.struct("mcuforge_copy_shape", rank=len(shape), elem=elem, shape=shape, src_stride=ss,
                                     dst_stride=ds), src, dst)


# ---------------------------------------------------------------- lowerings

LOWERINGS: dict = {}  # op -> its lowering for float and int8 tensors with plain int8 weights
lowers = ops.registrar(LOWERINGS)


@lowers("conv1d", "conv2d")
def _conv(e, n):
    x, w, *b = n.inputs
    check_const_weights(n, w, *b)
    geo, wt, bias = conv_geometry(n), conv_weight(n), e.ptr(b[0]) if b else "NULL"
    if is_depthwise(n):  # [k_h][k_w][out_c]
        return e.call("mcuforge_dwconv2d_f32", e.struct("mcuforge_conv", **geo), e.ptr(x),
                      e.const(np.transpose(wt[..., 0], (1, 2, 0)), f"{w.name} as [kh][kw][out]"), bias, e.ptr(n.output),
                      *_act(n))
    e.call("mcuforge_conv2d_f32", e.struct("mcuforge_conv", **geo), e.ptr(x),
           e.const(wt, f"{w.name} as [out][kh][kw][in]"), bias, e.ptr(n.output), e.scratch(n, "float"), *_act(n))


@lowers("conv_transpose2d")
def _conv_transpose(e, n):
    x, w, *b = n.inputs
    check_const_weights(n, w, *b)
    e.call("mcuforge_conv_transpose2d_f32", e.struct("mcuforge_conv", **conv_geometry(n)), e.ptr(x),
           e.const(conv_weight(n), f"{w.name} as [in][kh][kw][out/groups]"), e.ptr(b[0]) if b else "NULL",
           e.ptr(n.output), *_act(n))


def requant_args(e, n, out_c: int) -> list[str]:
    """The requant struct and the per-channel multiplier and shift arrays of an int8 conv/linear."""
    a = n.attrs
    mult = np.broadcast_to(np.asarray(a["multiplier"], np.int32), (out_c,))
    shift = np.broadcast_to(np.asarray(a["shift"], np.int32), (out_c,))
    return [e.struct("mcuforge_requant", in_zp=a["in_zp"], out_zp=a["out_zp"], act_min=a["act_min"],
                     act_max=a["act_max"]),
            e.const(mult, f"{n.name} multipliers"), e.const(shift, f"{n.name} shifts")]


def bias_minus_zp(n: Node, w: np.ndarray, b: list[Value]) -> np.ndarray:
    """bias - in_zp * (sum of each output's weights): the sums over (x - in_zp) * w become
    bias + x . w when padding reads as in_zp."""
    bias = b[0].data.astype(np.int64) if b else np.zeros(w.shape[0], np.int64)
    out = bias - n.attrs["in_zp"] * w.reshape(w.shape[0], -1).astype(np.int64).sum(1)
    if np.abs(out).max(initial=0) >= 2 ** 31:
        unsupported(n, "its bias minus the input zero point times the weight sums overflows int32")
    return out.astype(np.int32)


@lowers("qconv1d", "qconv2d")
def _qconv(e, n):
    x, w, *b = n.inputs
    check_int8_weighted(n)
    geo, wt = conv_geometry(n), conv_weight(n)
    p, (rq, mult, shift) = e.struct("mcuforge_conv", **geo), requant_args(e, n, geo["out_c"])
    if is_depthwise(n):
        dw = e.const(np.transpose(wt[..., 0], (1, 2, 0)), f"{w.name} as [kh][kw][out]")
        return e.call("mcuforge_dwconv2d_s8", p, rq, e.ptr(x), dw, e.ptr(b[0]) if b else "NULL", mult, shift,
                      e.ptr(n.output))
    bias = e.const(bias_minus_zp(n, wt, b), f"{n.name} bias - in_zp * weight sums")
    e.call("mcuforge_conv2d_s8", p, rq, e.ptr(x), e.const(wt, f"{w.name} as [out][kh][kw][in]"), bias, mult, shift,
           e.ptr(n.output), e.scratch(n, "int8_t"))


@lowers("qconv_transpose2d")
def _qconv_transpose(e, n):
    x, w, *b = n.inputs
    check_int8_weighted(n)
    geo = conv_geometry(n)
    p, (rq, mult, shift) = e.struct("mcuforge_conv", **geo), requant_args(e, n, geo["out_c"])
    wt = e.const(conv_weight(n), f"{w.name} as [in][kh][kw][out/groups]")
    e.call("mcuforge_conv_transpose2d_s8", p, rq, e.ptr(x), wt, e.ptr(b[0]) if b else "NULL", mult, shift,
           e.ptr(n.output), e.scratch(n, "int32_t"))


@lowers("linear")
def _linear(e, n):
    x, w, *b = n.inputs
    check_const_weights(n, w)
    o, k = w.shape
    e.call("mcuforge_linear_f32", e.ptr(x), e.ptr(w), e.ptr(b[0]) if b else "NULL", e.ptr(n.output),
           x.type.numel // k, k, o, *_act(n))


@lowers("qlinear")
def _qlinear(e, n):
    x, w, *b = n.inputs
    check_int8_weighted(n)
    o, k = w.shape
    rq, mult, shift = requant_args(e, n, o)
    bias = e.const(bias_minus_zp(n, w.data, b), f"{n.name} bias - in_zp * weight sums")
    e.call("mcuforge_linear_s8", rq, e.ptr(x), e.ptr(w), bias, mult, shift, e.ptr(n.output), x.type.numel // k, k, o)


@lowers("matmul")
def _matmul(e, n):
    a, b = n.inputs
    sa = (1, *a.shape) if a.type.rank == 1 else tuple(a.shape)
    sb = (*b.shape, 1) if b.type.rank == 1 else tuple(b.shape)
    (m, k), nn = sa[-2:], sb[-1]
    batch = ops.broadcast_shapes(sa[:-2], sb[:-2])
    strides = []
    for s, size in ((sa, m * k), (sb, k * nn)):
        s = (1,) * (len(batch) - len(s) + 2) + s[:-2]
        strides.append([0 if d == 1 else st * size for d, st in zip(s, _strides(s))])
    shape, (ba, bb, _) = collapse(batch, *strides, _strides(batch))
    if len(shape) > 1:
        unsupported(n, f"broadcasting batch shapes {list(sa[:-2])} and {list(sb[:-2])} do not collapse to one axis")
    e.call("mcuforge_matmul_f32", e.struct("mcuforge_matmul", batch=shape[0], m=m, k=k, n=nn, a_batch_stride=ba[0],
                                           b_batch_stride=bb[0]), e.ptr(a), e.ptr(b), e.ptr(n.output))


@lowers("add", "sub", "mul", "div", "prelu", "maximum", "minimum", "pow")
def _binary(e, n):
    a, b = n.inputs
    e.call("mcuforge_binary_f32", f"MCUFORGE_{n.op.upper()}", e.struct("mcuforge_bcast", **_bcast(n, a, b)),
           e.ptr(a), e.ptr(b), e.ptr(n.output), *_act(n))


@lowers("qadd", "qsub", "qmul")
def _qbinary(e, n):
    a, b = n.inputs
    kernel = _int_kernel(n, "mcuforge_mul" if n.op == "qmul" else "mcuforge_add", a, b, n.output)
    attrs = {k: n.attrs.get(k, 0) for k in ("a_zp", "b_zp", "out_zp", "left_shift", "a_multiplier", "a_shift",
                                            "b_multiplier", "b_shift", "multiplier", "shift", "act_min", "act_max")}
    q = e.struct("mcuforge_qadd", **attrs, subtract=int(n.op == "qsub"))
    e.call(kernel, e.struct("mcuforge_bcast", **_bcast(n, a, b)), q, e.ptr(a), e.ptr(b), e.ptr(n.output))


@lowers("qprelu")
def _qprelu(e, n):
    x, alpha = n.inputs
    check_int8(n, x, alpha, n.output)
    q = e.struct("mcuforge_qprelu", **{k: n.attrs[k] for k in ("in_zp", "alpha_zp", "out_zp", "id_multiplier",
                                                                "id_shift", "alpha_multiplier", "alpha_shift")})
    e.call("mcuforge_prelu_s8", e.struct("mcuforge_bcast", **_bcast(n, x, alpha)), q, e.ptr(x), e.ptr(alpha),
           e.ptr(n.output))


_UNARY = {"relu": (0, 0), "relu6": (0, 0), "leaky_relu": ("alpha", 0), "clamp": ("min", "max"), "sigmoid": (0, 0),
          "tanh": (0, 0), "hardswish": (0, 0), "hardsigmoid": (0, 0), "silu": (0, 0), "gelu": (0, 0),
          "elu": ("alpha", 0), **{f: (0, 0) for f in ("softplus", "exp", "log", "sqrt", "abs", "sign", "erf")}}


@lowers(*_UNARY)
def _unary(e, n):
    x = n.inputs[0]
    if x.dtype == DType.i8 and n.op in ("relu", "relu6", "clamp"):  # integer bounds, as numpy clips int8
        lo, hi = {"relu": (0, 127), "relu6": (0, 6)}.get(n.op) or (n.attrs["min"], n.attrs["max"])
        lo, hi = (int(np.clip(np.trunc(v), -128, 127)) for v in (lo, hi))
        return e.call("mcuforge_clamp_s8", e.ptr(x), e.ptr(n.output), x.type.numel, lo, hi)
    if x.dtype != DType.f32:
        unsupported(n, f"no {x.dtype.value} kernel for {n.op}")
    op = "GELU_TANH" if n.op == "gelu" and n.attrs["approximate"] == "tanh" else n.op.upper()
    alpha, beta = (flt(n.attrs[k]) if k else "0.0f" for k in _UNARY[n.op])
    e.call("mcuforge_unary_f32", f"MCUFORGE_{op}", e.ptr(x), e.ptr(n.output), x.type.numel, alpha, beta)


@lowers("qlogistic", "qtanh", "qhardswish", "qleaky_relu", "requantize")
def _table(e, n):
    """int8 -> int8 functions as a 256-entry table made by the reference interpreter."""
    x = n.inputs[0]
    if x.dtype == DType.i8 and n.output.dtype == DType.i8:
        table = interpreter.evaluate(n.op, [np.arange(-128, 128, dtype=np.int8)], n.attrs)[0].astype(np.int8)
        return e.call("mcuforge_lut_s8", e.ptr(x), e.ptr(n.output), x.type.numel, e.const(table, f"{n.name} table"))
    if n.op != "requantize" or x.dtype not in TYPE_CODES or n.output.dtype not in TYPE_CODES:
        unsupported(n, f"no kernel for {n.op} from {x.dtype.value} to {n.output.dtype.value}")
    a = n.attrs
    e.call("mcuforge_requantize", e.ptr(x), TYPE_CODES[x.dtype], e.ptr(n.output), TYPE_CODES[n.output.dtype],
           x.type.numel, a["in_zp"], a["out_zp"], a["multiplier"][0], a["shift"][0])


@lowers("batch_norm")
def _batch_norm(e, n):
    x, *params = n.inputs
    check_const_weights(n, *params)
    scale, bias, mean, var = (np.asarray(p.data, np.float32) for p in params)
    alpha = scale / np.sqrt(var + np.float32(n.attrs["eps"]))  # as the interpreter computes it
    outer, c, inner = _split_axes(n, x.shape, [n.attrs["axis"]])
    e.call("mcuforge_affine_f32", e.ptr(x), e.const(alpha, f"{n.name} scale"),
           e.const(bias - mean * alpha, f"{n.name} shift"), e.ptr(n.output), outer, c, inner)


@lowers("layer_norm")
def _layer_norm(e, n):
    x, *p = n.inputs
    axis = ops.norm_axis(n.attrs["axis"], x.type.rank)
    e.call("mcuforge_layer_norm_f32", e.ptr(x), *(e.ptr(v) for v in p), *["NULL"] * (2 - len(p)), e.ptr(n.output),
           math.prod(x.shape[:axis]), math.prod(x.shape[axis:]), flt(n.attrs["eps"]))


@lowers("softmax", "log_softmax")
def _softmax(e, n):
    x = n.inputs[0]
    outer, k, inner = _split_axes(n, x.shape, [n.attrs["axis"]])
    e.call("mcuforge_softmax_f32", e.ptr(x), e.ptr(n.output), outer, k, inner, int(n.op == "log_softmax"))


@lowers("qsoftmax", "qlog_softmax")
def _qsoftmax(e, n):
    x, a = n.inputs[0], n.attrs
    check_int8(n, x, n.output)
    outer, k, inner = _split_axes(n, x.shape, [a["axis"]])
    if inner != 1:
        unsupported(n, f"integer {n.op[1:]} runs along the last axis")
    # exp(d * scale) in Q0.31 for every difference d to the row maximum
    diffs = np.arange(-255, 1, dtype=np.int64)
    scaled = quant.saturating_rounding_doubling_high_mul(diffs << a["shift"], a["multiplier"])
    exps = e.const(quant.exp_on_negative_values(scaled, 5).astype(np.int32), f"{n.name} exps")
    if n.op == "qsoftmax":
        e.call("mcuforge_softmax_s8", e.ptr(x), e.ptr(n.output), outer, k, exps, a["diff_min"])
    else:
        e.call("mcuforge_log_softmax_s8", e.ptr(x), e.ptr(n.output), outer, k, exps, a["multiplier"], a["shift"],
               a["diff_min"], a["reverse_multiplier"], a["reverse_shift"])


@lowers("max_pool1d", "max_pool2d")
def _max_pool(e, n):
    x = n.inputs[0]
    kernel = {DType.f32: "mcuforge_max_pool_f32", DType.i8: "mcuforge_max_pool_s8",
              DType.i16: "mcuforge_max_pool_s16"}.get(x.dtype)
    if kernel is None:
        unsupported(n, f"no {x.dtype.value} max pool kernel")
    e.call(kernel, e.struct("mcuforge_pool", **pool_geometry(n)), e.ptr(x), e.ptr(n.output))


@lowers("avg_pool1d", "avg_pool2d")
def _avg_pool(e, n):
    e.call("mcuforge_avg_pool_f32", e.struct("mcuforge_pool", **pool_geometry(n)), e.ptr(n.inputs[0]), e.ptr(n.output))


@lowers("qavg_pool1d", "qavg_pool2d")
def _qavg_pool(e, n):
    e.call(_int_kernel(n, "mcuforge_avg_pool", n.inputs[0], n.output), e.struct("mcuforge_pool", **pool_geometry(n)),
           e.ptr(n.inputs[0]), e.ptr(n.output), n.attrs["act_min"], n.attrs["act_max"])


@lowers("adaptive_avg_pool")
def _adaptive_avg_pool(e, n):
    x, layout = n.inputs[0], n.attrs["layout"]
    if all(o == 1 for o in n.attrs["output_size"]):  # a mean over the spatial axes
        return e.call("mcuforge_mean_f32", e.ptr(x), e.ptr(n.output),
                      *_split_axes(n, x.shape, ops.spatial_axes(layout, x.type.rank)))
    e.call("mcuforge_adaptive_avg_pool_f32", e.struct("mcuforge_pool", **pool_geometry(n)), e.ptr(x), e.ptr(n.output))


@lowers("mean")
def _mean(e, n):
    x = n.inputs[0]
    e.call("mcuforge_mean_f32", e.ptr(x), e.ptr(n.output), *_split_axes(n, x.shape, n.attrs["axes"]))


@lowers("reduce")
def _reduce(e, n):
    x = n.inputs[0]
    if x.dtype != DType.f32:
        unsupported(n, f"no {x.dtype.value} kernel")
    e.call("mcuforge_reduce_f32", f"MCUFORGE_REDUCE_{n.attrs['mode'].upper()}", e.ptr(x), e.ptr(n.output),
           *_split_axes(n, x.shape, n.attrs["axes"]))


@lowers("qmean")
def _qmean(e, n):
    x, a = n.inputs[0], n.attrs
    e.call(_int_kernel(n, "mcuforge_mean", x, n.output), e.ptr(x), e.ptr(n.output), *_split_axes(n, x.shape, a["axes"]),
           a["in_zp"], a["out_zp"], a["multiplier"], a["shift"])


@lowers("quantize", "dequantize")
def _quantize(e, n):
    x, a = n.inputs[0], n.attrs
    integer = n.output if n.op == "quantize" else x
    if integer.dtype not in TYPE_CODES:
        unsupported(n, f"no kernel for {integer.dtype.value} tensors")
    split = _split_axes(n, x.shape, [a["axis"]]) if len(a["scale"]) > 1 else (1, 1, x.type.numel)
    scale = e.const(np.asarray(a["scale"], np.float32), f"{n.name} scales")
    zp = e.const(np.asarray(a["zero_point"], np.int32), f"{n.name} zero points")
    if n.op == "quantize":
        return e.call("mcuforge_quantize_f32", e.ptr(x), e.ptr(n.output), TYPE_CODES[integer.dtype], *split, scale, zp)
    e.call("mcuforge_dequantize_f32", e.ptr(x), TYPE_CODES[integer.dtype], e.ptr(n.output), *split, scale, zp)


# ---------------------------------------------------------------- data movement (any dtype)

@lowers("reshape", "identity", "dropout")
def _alias(e, n):
    x = n.inputs[0]
    if e.same_bytes(x, n.output):  # the planner aliased it: nothing to do
        return
    copy(e, n, e.ptr(x), e.ptr(n.output), [x.type.numel], [1], [1], x.dtype.itemsize)


@lowers("transpose")
def _transpose(e, n):
    x = n.inputs[0]
    s = _strides(x.shape)
    copy(e, n, e.ptr(x), e.ptr(n.output), n.output.shape, [s[p] for p in n.attrs["perm"]], _strides(n.output.shape),
         x.dtype.itemsize)


@lowers("concat")
def _concat(e, n):
    y = n.output
    axis, start = ops.norm_axis(n.attrs["axis"], y.type.rank), 0
    ys = _strides(y.shape)
    for v in n.inputs:
        dst = e.ptr(y, start * ys[axis] * y.dtype.itemsize)
        if not e.same_bytes(v, y, start * ys[axis] * y.dtype.itemsize):  # else the planner put it in place
            copy(e, n, e.ptr(v), dst, v.shape, _strides(v.shape), ys, y.dtype.itemsize)
        start += v.shape[axis]


@lowers("split")
def _split(e, n):
    x = n.inputs[0]
    axis, start = ops.norm_axis(n.attrs["axis"], x.type.rank), 0
    xs = _strides(x.shape)
    for v in n.outputs:
        copy(e, n, e.ptr(x, start * xs[axis] * x.dtype.itemsize), e.ptr(v), v.shape, xs, _strides(v.shape),
             x.dtype.itemsize)
        start += v.shape[axis]


@lowers("slice")
def _slice(e, n):
    x, a = n.inputs[0], n.attrs
    xs, step, offset = _strides(x.shape), list(_strides(x.shape)), 0
    for ax, st, _, sp in zip(a["axes"], a["starts"], a["ends"], a["steps"]):
        ax = ops.norm_axis(ax, x.type.rank)
        offset += slice(st, None, sp).indices(x.shape[ax])[0] * xs[ax]
        step[ax] = xs[ax] * sp
    copy(e, n, e.ptr(x, offset * x.dtype.itemsize), e.ptr(n.output), n.output.shape, step, _strides(n.output.shape),
         x.dtype.itemsize)


@lowers("tile")
def _tile(e, n):
    """One strided copy: output axis i as (repeat, input index), reading the input with stride 0
    across repeats."""
    x, reps = n.inputs[0], n.attrs["repeats"]
    xs, ys = _strides(x.shape), _strides(n.output.shape)
    shape = [v for r, d in zip(reps, x.shape) for v in (r, d)]
    src = [v for s in xs for v in (0, s)]
    dst = [v for d, s in zip(x.shape, ys) for v in (d * s, s)]
    copy(e, n, e.ptr(x), e.ptr(n.output), shape, src, dst, x.dtype.itemsize)


@lowers("pad")
def _pad(e, n):
    x, y, pads = n.inputs[0], n.output, n.attrs["pads"]
    r, elem = x.type.rank, x.dtype.itemsize
    value = np.asarray([n.attrs["value"]]).astype(x.dtype.np)
    e.call("mcuforge_fill", e.ptr(y), e.const(value, f"{n.name} pad value"), elem, y.type.numel)
    xs, ys = _strides(x.shape), _strides(y.shape)
    src = sum(max(-pads[i], 0) * xs[i] for i in range(r))  # negative pads crop
    dst = sum(max(pads[i], 0) * ys[i] for i in range(r))
    shape = [d - max(-pads[i], 0) - max(-pads[r + i], 0) for i, d in enumerate(x.shape)]
    if all(d > 0 for d in shape):
        copy(e, n, e.ptr(x, src * elem), e.ptr(y, dst * elem), shape, xs, ys, elem)


@lowers("resize")
def _resize(e, n):
    x, a = n.inputs[0], n.attrs
    bn, c, h, w = _nchw(x.shape, a["layout"])
    oh, ow = _nchw(n.output.shape, a["layout"])[2:]
    geo = e.struct("mcuforge_resize", n=bn, c=c, in_h=h, in_w=w, out_h=oh, out_w=ow, nhwc=int(a["layout"][1] != "C"),
                   elem=x.dtype.itemsize)
    if a["mode"] == "nearest":  # torch: src = floor(dst * in / out), in float32
        tables = [np.minimum(np.floor(np.arange(o, dtype=np.float32) * (np.float32(i) / np.float32(o))), i - 1)
                  for i, o in ((h, oh), (w, ow))]
        return e.call("mcuforge_resize_nearest", geo, e.ptr(x), e.ptr(n.output),
                      *(e.const(t.astype(np.int32), f"{n.name} source {ax}") for t, ax in zip(tables, "yx")))
    if x.dtype != DType.f32:
        unsupported(n, "bilinear resize runs on float32 only")
    args = []
    for i, o, ax in ((h, oh, "y"), (w, ow, "x")):  # the interpreter's source coordinates
        dst = np.arange(o, dtype=np.float32)
        if a["align_corners"]:
            src = dst * (np.float32(i - 1) / np.float32(max(o - 1, 1)))
        else:
            src = np.maximum((dst + np.float32(0.5)) * (np.float32(i) / np.float32(o)) - np.float32(0.5), 0)
        i0 = src.astype(np.int32)
        args += [e.const(i0, f"{n.name} {ax}0"), e.const(np.minimum(i0 + 1, i - 1).astype(np.int32), f"{n.name} {ax}1"),
                 e.const((src - i0).astype(np.float32), f"{n.name} {ax} weights")]
    e.call("mcuforge_resize_bilinear_f32", geo, e.ptr(x), e.ptr(n.output), *args)


# ---------------------------------------------------------------- int16 activations (int16x8)

INT16_LOWERINGS: dict = {}  # op -> its lowering when the op's first input is int16 (`emit.lowering` picks)
int16_form = ops.registrar(INT16_LOWERINGS)


def _int16(n: Node, *values: Value):
    for v in values:
        if v.dtype != DType.i16:
            unsupported(n, f"its int16 kernel takes int16 tensors, %{v.name} is {v.dtype.value}")


def _int16_weighted(n: Node):
    """The checks of an int16 conv / linear: int16 output, constant plain int8 weights, an int64 bias."""
    _, w, *b = n.inputs
    check_const_weights(n, w, *b)
    _int16(n, n.output)
    if n.attrs.get("wfmt", "int8") != "int8":
        unsupported(n, f"the int16 kernels read plain int8 weights, not {n.attrs['wfmt']}")
    if b and b[0].dtype != DType.i64:
        unsupported(n, f"int16 activations take an int64 bias (TFLite's int16x8), %{b[0].name} is {b[0].dtype.value}")


@int16_form("qconv1d", "qconv2d", "qconv_transpose2d")
def _qconv_s16(e, n):
    x, w, *b = n.inputs
    _int16_weighted(n)
    geo, wt = conv_geometry(n), conv_weight(n)
    p, (rq, mult, shift) = e.struct("mcuforge_conv", **geo), requant_args(e, n, geo["out_c"])
    if n.op == "qconv_transpose2d":
        kernel, wc = "mcuforge_conv_transpose2d_s16", e.const(wt, f"{w.name} as [in][kh][kw][out/groups]")
    elif is_depthwise(n):
        kernel, wc = "mcuforge_dwconv2d_s16", e.const(np.transpose(wt[..., 0], (1, 2, 0)), f"{w.name} as [kh][kw][out]")
    else:
        kernel, wc = "mcuforge_conv2d_s16", e.const(wt, f"{w.name} as [out][kh][kw][in]")
    e.call(kernel, p, rq, e.ptr(x), wc, e.ptr(b[0]) if b else "NULL", mult, shift, e.ptr(n.output))


@int16_form("qlinear")
def _qlinear_s16(e, n):
    x, w, *b = n.inputs
    _int16_weighted(n)
    o, k = w.shape
    rq, mult, shift = requant_args(e, n, o)
    e.call("mcuforge_linear_s16", rq, e.ptr(x), e.ptr(w), e.ptr(b[0]) if b else "NULL", mult, shift, e.ptr(n.output),
           x.type.numel // k, k, o)


@int16_form("relu", "relu6", "clamp")
def _clamp_s16(e, n):
    x = n.inputs[0]  # integer bounds, as the interpreter clamps integers
    lo, hi = {"relu": (0, math.inf), "relu6": (0, 6)}.get(n.op) or (n.attrs["min"], n.attrs["max"])
    e.call("mcuforge_clamp_s16", e.ptr(x), e.ptr(n.output), x.type.numel, math.ceil(max(lo, -32768)),
           math.floor(min(hi, 32767)))


@int16_form("qleaky_relu")
def _qleaky_relu_s16(e, n):
    x, a = n.inputs[0], n.attrs
    _int16(n, n.output)
    params = [a[k] for k in ("in_zp", "out_zp", "alpha_multiplier", "alpha_shift", "id_multiplier", "id_shift")]
    e.call("mcuforge_leaky_relu_s16", e.ptr(x), e.ptr(n.output), x.type.numel,
           e.const(np.asarray(params, np.int32), f"{n.name} parameters"))


@int16_form("qlogistic", "qtanh")
def _sigmoid_s16(e, n):
    x, a = n.inputs[0], n.attrs
    _int16(n, n.output)
    e.call(f"mcuforge_{n.op[1:]}_s16", e.ptr(x), e.ptr(n.output), x.type.numel,
           e.const(quant.SIGMOID_TABLE.astype(np.int32), "sigmoid(i / 24) in Q0.16"), a["multiplier"], a["shift"])


@int16_form("qsoftmax")
def _qsoftmax_s16(e, n):
    x, a = n.inputs[0], n.attrs
    _int16(n, n.output)
    outer, k, inner = _split_axes(n, x.shape, [a["axis"]])
    if inner != 1:
        unsupported(n, "integer softmax runs along the last axis")
    e.call("mcuforge_softmax_s16", e.ptr(x), e.ptr(n.output), outer, k,
           e.const(quant.EXP_LUT16.astype(np.int16), "exp on [-10, 0]"),
           e.const(quant.RECIPROCAL_LUT16.astype(np.int16), "1 / (1 + x) on [0, 1]"), a["multiplier"], a["shift"])
