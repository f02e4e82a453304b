"""C lowering of integer conv / depthwise / fully connected layers with compressed weights.

A layer whose `wfmt` is not "int8" (see ir/wformat.py) gets its weights into the blob as packed
codes plus the codebook or the group multipliers, and calls the kernels of kernels/packed_s8.c,
which decode them on the fly: the flash holds only the compressed bytes. Biases, multipliers and
scratch are those of the int8 kernels (`ops.requant_args`, `ops.bias_minus_zp`).
"""
from __future__ import annotations

import numpy as np

from ...ir import wformat
from . import ops

SCHEMES = {"pow2": 1, "binary": 2, "ternary": 3, "kmeans": 4, "int4": 5}  # MCUFORGE_W_* in mcuforge.h


def lower_packed(e, n):
    """A conv, depthwise conv or linear layer with compressed weights."""
    x, w, *b = n.inputs
    ops.check_int8_weighted(n)
    fmt, layout = n.attrs["wfmt"], n.attrs.get("layout", "")
    scheme, bits, group = wformat.parse(fmt)
    rows = wformat.rows(w.data, n.op, layout)
    codes, aux = wformat.codes(fmt, rows)
    packed = wformat.pack(codes, bits)
    f = e.struct("mcuforge_wpack", scheme=SCHEMES[scheme], bits=bits, group=group, row_bytes=packed.shape[1],
                 aux_row=aux.shape[1] if aux.ndim == 2 else 0)
    weights = [e.const(packed, f"{w.name} as {fmt} codes [out][row bytes]"),
               e.const(aux if aux.size else np.zeros(1, np.int8), f"{w.name} {fmt} codebook / group multipliers")]
    rq, mult, shift = ops.requant_args(e, n, rows.shape[0])
    if n.op == "qlinear":
        o, k = rows.shape
        bias = e.const(ops.bias_minus_zp(n, rows, b), f"{n.name} bias - in_zp * weight sums")
        return e.call("mcuforge_linear_packed_s8", f, rq, e.ptr(x), *weights, bias, mult, shift, e.ptr(n.output),
                      x.type.numel // k, k, o)
    p = e.struct("mcuforge_conv", **ops.conv_geometry(n))
    if ops.is_depthwise(n):
        return e.call("mcuforge_dwconv2d_packed_s8", p, f, rq, e.ptr(x), *weights, e.ptr(b[0]) if b else "NULL",
                      mult, shift, e.ptr(n.output))
    bias = e.const(ops.bias_minus_zp(n, rows, b), f"{n.name} bias - in_zp * weight sums")
    e.call("mcuforge_conv2d_packed_s8", p, f, rq, e.ptr(x), *weights, bias, mult, shift, e.ptr(n.output),
           e.scratch(n, "int8_t"))


LOWERINGS = dict.fromkeys(("qconv1d", "qconv2d", "qlinear"), lower_packed)
