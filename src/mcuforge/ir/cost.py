"""What a layer costs: multiply-accumulates, the flash bytes of its constants, and a byte count
for people. Reports, passes (low-rank, early exits, pruning) and backends measure with these.

MACs count multiply-accumulates of the ops that have them (convolutions, linear, matmul);
elementwise work is not counted.
"""
from __future__ import annotations

import math

from . import wformat
from .graph import Node


def macs(node: Node) -> int:
    x, out = node.inputs[0], node.outputs[0]
    op = node.op[1:] if node.op in ("qconv1d", "qconv2d", "qconv_transpose2d", "qlinear") else node.op
    if op in ("conv1d", "conv2d"):
        w = node.inputs[1]
        return out.type.numel * (w.type.numel // w.shape[0])
    if op == "conv_transpose2d":
        w = node.inputs[1]
        c_in = x.shape[1] if node.attrs["layout"] == "NCHW" else x.shape[-1]
        return x.type.numel * (w.type.numel // c_in)
    if op == "linear":
        return out.type.numel * node.inputs[1].shape[1]
    if node.op == "matmul":
        return out.type.numel * x.shape[-1]
    return 0


def stored_bytes(n: Node, v) -> int:
    """Flash bytes of constant operand `v` of `n`: its packed size if it is a compressed weight."""
    fmt = n.attrs.get("wfmt", "int8")
    return wformat.packed_bytes(fmt, v.shape) if fmt != "int8" and v is n.inputs[1] else v.type.nbytes


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    exp = min(int(math.log(n, 1024)), 3)
    return f"{n / 1024 ** exp:.1f} {'BKMG'[exp]}{'iB' if exp else ''}"
