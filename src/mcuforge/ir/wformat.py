"""Compressed weight formats: how the int8 weights of an integer conv or fully connected layer are stored.

A compressed layer is an ordinary `qconv1d`/`qconv2d`/`qlinear` whose int8 weights are restricted
to a small set of values; its `wfmt` attribute names the set and so the storage. The integer
weights ARE the layer's meaning: the interpreter, TFLite and ONNX read them as int8 weights, and
the C backend stores them as the packed codes below and decodes them in its kernels, bit-exactly.
Formats (docs/numerics.md, "Compressed weights"):

- `pow2`: 0 or +-2^k, k in 0..6; a 4-bit code: 0 for zero, else sign (bit 3) and k + 1 (bits 0..2).
- `binary`: +-1; one bit, 1 for +1.
- `ternary`: -1, 0 or +1; a 2-bit two's complement code.
- `kmeansB` (B = 2..8): at most 2^B distinct values in the layer, its codebook (sorted); B-bit
  indices into it.
- `int4gG` (G = 32, 64, 128): each group of G consecutive weights of an output channel's row is
  m * q with q in -7..7 (a 4-bit two's complement code) and m in 1..127, the group's multiplier;
  m is the gcd of the group's values, so it is recovered from the weights themselves.

Rows: every output channel's weights in the order [k_h][k_w][in / groups] (whatever the IR
layout), codes packed least significant bit first, each row starting on a byte. `aux` holds the
codebook (kmeans) or the group multipliers [out][groups] (int4), as int8.
"""
from __future__ import annotations

import math

import numpy as np

NAMES = ("int8", "pow2", "binary", "ternary", *(f"kmeans{b}" for b in range(2, 9)),
         *(f"int4g{g}" for g in (32, 64, 128)))
BITS = {"pow2": 4, "binary": 1, "ternary": 2, "int4": 4}


def parse(name: str) -> tuple[str, int, int]:
    """`name` -> (scheme, bits per weight, group); ValueError if it is not one of NAMES."""
    if name not in NAMES:
        raise ValueError(f"unknown weight format '{name}'; known: {', '.join(NAMES)}")
    if name.startswith("kmeans"):
        return "kmeans", int(name[6:]), 0
    if name.startswith("int4g"):
        return "int4", 4, int(name[5:])
    return name, BITS.get(name, 8), 0


def rows(w: np.ndarray, op: str, layout: str = "") -> np.ndarray:
    """An IR weight as [out][k] rows in the kernels' order [k_h][k_w][in / groups]."""
    if op != "qlinear" and layout[1] == "C":  # OI(H)W -> O(H)WI
        w = np.moveaxis(w, 1, -1)
    return w.reshape(w.shape[0], -1)


def unrows(r: np.ndarray, shape, op: str, layout: str = "") -> np.ndarray:
    """The inverse of `rows`: [out][k] rows -> the IR weight of `shape`."""
    if op != "qlinear" and layout[1] == "C":
        return np.moveaxis(r.reshape(shape[0], *shape[2:], shape[1]), -1, 1)
    return r.reshape(shape)


def codes(name: str, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes [out][k], aux int8) of int8 rows `r` in format `name`; ValueError naming the first
    value (or group) the format cannot hold."""
    scheme, bits, group = parse(name)
    v = r.astype(np.int64)

    def bad(mask, what):
        if mask.any():
            raise ValueError(f"weight value {int(v[mask][0])} is not {what} (format {name})")
    if scheme == "pow2":
        mag = np.abs(v)
        bad((mag > 64) | (mag & (mag - 1)).astype(bool), "0 or +-2^k with k <= 6")
        k = np.log2(np.maximum(mag, 1)).astype(np.int64)
        return np.where(mag == 0, 0, (k + 1) | np.where(v < 0, 8, 0)), np.zeros(0, np.int8)
    if scheme == "binary":
        bad(np.abs(v) != 1, "+-1")
        return (v > 0).astype(np.int64), np.zeros(0, np.int8)
    if scheme == "ternary":
        bad(np.abs(v) > 1, "-1, 0 or +1")
        return v & 3, np.zeros(0, np.int8)
    if scheme == "kmeans":
        book = np.unique(v)
        if book.size > 1 << bits:
            raise ValueError(f"{book.size} distinct weight values, format {name} holds {1 << bits}")
        return np.searchsorted(book, v), np.pad(book, (0, (1 << bits) - book.size), mode="edge").astype(np.int8)
    n_groups = -(-v.shape[1] // group)
    padded = np.pad(v, ((0, 0), (0, n_groups * group - v.shape[1]))).reshape(v.shape[0], n_groups, group)
    m = np.maximum(np.gcd.reduce(np.abs(padded), axis=2), 1)
    q = (padded // m[..., None]).reshape(v.shape[0], -1)[:, :v.shape[1]]
    wrong = (np.abs(q) > 7) | np.repeat(m > 127, group, axis=1)[:, :v.shape[1]]
    if wrong.any():
        o, j = np.argwhere(wrong)[0]
        raise ValueError(f"group {j // group} of output channel {o} is not m * q with q in -7..7, m <= 127 "
                         f"(format {name})")
    return q & 15, m.astype(np.int8)


def pack(c: np.ndarray, bits: int) -> np.ndarray:
    """Codes [out][k] of `bits` bits -> uint8 [out][row bytes], least significant bit first."""
    out, k = c.shape
    stream = ((c[..., None] >> np.arange(bits)) & 1).reshape(out, k * bits).astype(np.uint8)
    stream = np.pad(stream, ((0, 0), (0, -(k * bits) % 8)))
    return np.packbits(stream, axis=1, bitorder="little")


def packed_bytes(name: str, shape) -> int:
    """Flash bytes of a weight of `shape` stored in format `name`: packed rows plus aux."""
    out, k = shape[0], math.prod(shape[1:])
    if name == "int8":
        return out * k
    scheme, bits, group = parse(name)
    aux = {"kmeans": 1 << bits, "int4": out * -(-k // max(group, 1))}.get(scheme, 0)
    return out * -(-k * bits // 8) + aux
