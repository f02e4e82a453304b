"""Recurrent layers (LSTM, GRU, simple RNN) unrolled into IR ops over their static sequence length.

Every frontend hands a layer here in one form, a `Cell` per direction: the input weight W
(G*H, I), the recurrent weight R (G*H, H) and their biases, gates in torch's order (LSTM i, f, g,
o; GRU r, z, n). The input side of all time steps is one batched `linear`, split per step; each
step is then a `linear` of the hidden state and elementwise ops (sigmoid, tanh, mul, add), so the
interpreter, every backend and the int8 quantizer run recurrent models with no kernel of their
own. A zero initial state (None) drops the terms it multiplies, and a recurrent bias that only
adds is folded into the input bias. Limits, which the frontends refuse: default activations
(tanh or relu for the simple RNN), no peepholes, projections, cell clipping or per-batch lengths.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.graph import Value

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


@dataclass
class Cell:
    """One direction of one recurrent layer, as float32 arrays; a bias of None is zero."""

    kind: str  # a key of GATES
    w: np.ndarray
    r: np.ndarray
    bw: np.ndarray | None = None
    br: np.ndarray | None = None
    linear_before_reset: bool = True  # GRU: n = tanh(W x + r * (R h + b_Rn)), torch's form; else R (r * h)


def direction(op, g, name: str, x: Value, time_axis: int, cell: Cell, h: Value | None = None,
              c: Value | None = None, reverse: bool = False) -> tuple[list[Value], Value, Value | None]:
    """Run `cell` over `x` (time on axis `time_axis`, batch on the other of axes 0 and 1, features
    last) from the states `h`, `c` of shape (batch, hidden) (None: zeros), last step first when
    `reverse`. Returns the hidden state of every step in time order, and the final h and c
    (c None unless an LSTM). `op(op, inputs, **attrs)` adds a node to the frontend's graph `g`."""
    hidden, kind = cell.r.shape[1], cell.kind
    const = lambda a, what: g.const(np.asarray(a, np.float32), name=f"{name}.{what}")  # noqa: E731
    n_part = slice((GATES[kind] - 1) * hidden, None)  # a GRU's n gate rows
    b_rn = None
    bias = [b for b in (cell.bw, cell.br) if b is not None]
    if cell.br is not None and kind == "gru" and cell.linear_before_reset:  # b_Rn is inside r * (...)
        b_rn = cell.br[n_part]
        bias = [b.copy() for b in bias]
        bias[-1][n_part] = 0
    xw = op("linear", [x, const(cell.w, "w")] + ([const(sum(bias), "b")] if bias else []))
    steps = x.shape[time_axis]
    per_step = op("split", [xw], axis=time_axis, sizes=[1] * steps)
    per_step = per_step if isinstance(per_step, tuple) else (per_step,)
    recur = _recurrence(op, const, cell, hidden, b_rn)
    hs = [None] * steps
    for t in reversed(range(steps)) if reverse else range(steps):
        gates = op("reshape", [per_step[t]], shape=[x.shape[1 - time_axis], GATES[kind] * hidden])
        h, c = recur(gates, h, c)
        hs[t] = h
    return hs, h, c


def _recurrence(op, const, cell: Cell, hidden: int, b_rn):
    """The step function (gates, h, c) -> (h, c) of `cell`, its recurrent weights made constants once."""
    split = lambda v, k: op("split", [v], axis=-1, sizes=[hidden] * k)  # noqa: E731
    if cell.kind == "gru":
        r_rz, r_n = const(cell.r[:2 * hidden], "r_rz"), const(cell.r[2 * hidden:], "r_n")
        lbr, b_rn = cell.linear_before_reset, (const(b_rn, "b_rn") if b_rn is not None and b_rn.any() else None)

        def gru(gates, h, c):
            xr, xz, xn = split(gates, 3)
            if h is None:
                r, z, hn = op("sigmoid", [xr]), op("sigmoid", [xz]), b_rn if lbr else None
            else:
                hr, hz = split(op("linear", [h, r_rz]), 2)
                r, z = op("sigmoid", [op("add", [xr, hr])]), op("sigmoid", [op("add", [xz, hz])])
                hn = op("linear", [h, r_n] + ([b_rn] if b_rn is not None else [])) if lbr else \
                    op("linear", [op("mul", [r, h]), r_n])
            n = op("tanh", [xn if hn is None else op("add", [xn, op("mul", [r, hn]) if lbr else hn])])
            return (op("sub", [n, op("mul", [z, n])]) if h is None  # (1 - z) n + z h
                    else op("add", [n, op("mul", [z, op("sub", [h, n])])])), None
        return gru
    r = const(cell.r, "r")

    def with_h(gates, h):
        return gates if h is None else op("add", [gates, op("linear", [h, r])])

    if cell.kind == "lstm":
        def lstm(gates, h, c):
            i, f, g, o = split(with_h(gates, h), 4)
            ig = op("mul", [op("sigmoid", [i]), op("tanh", [g])])
            c = ig if c is None else op("add", [op("mul", [op("sigmoid", [f]), c]), ig])
            return op("mul", [op("sigmoid", [o]), op("tanh", [c])]), c
        return lstm
    return lambda gates, h, c: (op(cell.kind[4:], [with_h(gates, h)]), None)


def stack(op, hs: list[Value], axis: int) -> Value:
    """States of shape (B, H) as one tensor with a new axis `axis` (0 or 1) of len(hs)."""
    shape = list(hs[0].shape)
    shape.insert(axis, 1)
    parts = [op("reshape", [h], shape=shape) for h in hs]
    return op("concat", parts, axis=axis) if len(parts) > 1 else parts[0]
