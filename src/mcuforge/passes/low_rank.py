"""Low-rank factorization: a linear or conv2d layer split into two thinner ones by truncated SVD."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..ir.cost import macs
from ..ir.graph import Graph, Node
from ..ir.types import DType


@dataclass
class Factored:
    """One layer the pass looked at: its rank, parameters and MACs before and after."""

    layer: str
    kind: str  # "matrix" (linear, 1x1 conv) or "kxk" (k x k conv -> k x 1 conv, then 1 x k conv)
    rank: int
    full_rank: int
    energy: float  # fraction of the squared singular values kept
    params: tuple[int, int]  # (before, after), weights only (the bias stays as it is)
    macs: tuple[int, int]
    done: bool = True


def pick_rank(s: np.ndarray, rank=None, energy: float = 0.95) -> int:
    """`rank` (clipped to [1, len(s)]) if given, else the smallest r keeping `energy` of sum(s^2)."""
    if rank is not None:
        return max(1, min(int(rank), len(s)))
    kept = np.cumsum(s ** 2) / max(float(np.sum(s ** 2)), 1e-30)
    return min(int(np.searchsorted(kept, energy - 1e-9)) + 1, len(s))


def _matrix(n: Node) -> np.ndarray:
    """The weight as a matrix M, rows on the input side, columns on the output side, so that
    M = A @ B splits the layer into `first` (weights from A) then `second` (weights from B). For a
    conv2d, M[(i, y), (o, x)] = W[o, i, y, x]: A is a k x 1 conv to r channels, B a 1 x k conv."""
    w = n.inputs[1].data.astype(np.float64)
    if n.op == "linear":
        return w.T
    w = w if n.attrs["layout"] == "NCHW" else w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
    o, i, kh, kw = w.shape
    return w.transpose(1, 2, 0, 3).reshape(i * kh, o * kw)


def _split(g: Graph, n: Node, a: np.ndarray, b: np.ndarray) -> tuple[Node, Node]:
    """The two nodes computing `n` with the factors A (rows x r) and B (r x columns), before `n`."""
    x, dtype, r = n.inputs[0], n.inputs[1].dtype, a.shape[1]
    bias = n.inputs[2:]
    if n.op == "linear":
        first = g.add_node("linear", [x, g.const(a.T, f"{n.name}.w_in", dtype)], name=f"{n.name}.in", before=n,
                           meta=dict(n.meta))
        second_w, attrs2 = b.T, {}
    else:
        at, shape = n.attrs, n.inputs[1].shape
        o, i, kh, kw = shape if at["layout"] == "NCHW" else (shape[0], shape[3], shape[1], shape[2])
        w1 = a.T.reshape(r, i, kh, 1)
        w2 = b.reshape(r, o, kw).transpose(1, 0, 2)[:, :, None, :]
        if at["layout"] == "NHWC":
            w1, w2 = w1.transpose(0, 2, 3, 1), w2.transpose(0, 2, 3, 1)
        (sh, sw), (dh, dw), (pt, pl, pb, pr) = at["stride"], at["dilation"], at["pads"]
        attrs1 = dict(at, stride=[sh, 1], dilation=[dh, 1], pads=[pt, 0, pb, 0], act="none")
        attrs2 = dict(at, stride=[1, sw], dilation=[1, dw], pads=[0, pl, 0, pr])
        first = g.add_node("conv2d", [x, g.const(w1, f"{n.name}.w_in", dtype)], attrs1, name=f"{n.name}.in",
                           before=n, meta=dict(n.meta))
        second_w = w2
    second = g.add_node(n.op, [first.output, g.const(second_w, f"{n.name}.w_out", dtype), *bias],
                        {**n.attrs, **attrs2}, name=f"{n.name}.out", before=n, meta=dict(n.meta))
    return first, second


def _samples(graph: Graph, data) -> list[tuple]:
    """`data` as a list of input tuples: one array, an array of N stacked batch-1 samples, a list
    of arrays or of tuples; None gives 4 standard normal samples."""
    if data is None:
        rng = np.random.default_rng(0)
        return [tuple(rng.standard_normal(v.shape).astype(np.float32) for v in graph.inputs) for _ in range(4)]
    if isinstance(data, np.ndarray):
        data = [data] if data.shape == graph.inputs[0].shape else [x[None] for x in data]
    return [x if isinstance(x, tuple) else (x,) for x in data]


def why_not(n: Node) -> str:
    """Why `n` cannot be factorized, or "" when it can."""
    if n.op not in ("linear", "conv2d"):
        return f"{n.op} is not linear or conv2d"
    w = n.inputs[1]
    if not w.is_const or w.dtype not in (DType.f32, DType.f16) or w.type.quant is not None:
        return "its weights are not float constants (factorize before quantize)"
    if n.op == "conv2d" and n.attrs["groups"] != 1:
        return f"grouped conv (groups={n.attrs['groups']}): each group is already thin"
    return ""


def low_rank(graph: Graph, ctx, rank=None, energy: float = 0.95, layers=(), data=None) -> bool:
    """Factorizes linear and conv2d layers into two thinner layers by truncated SVD.

    A linear y = W x + b, W (O, I) ~ U_r S_r V_r^T, becomes linear(linear(x, S^1/2 V^T), U S^1/2, b)
    through r channels. A conv2d (groups 1) with a k_h x k_w kernel becomes a k_h x 1 conv to r
    channels (vertical stride, dilation and padding, no bias) then a 1 x k_w conv (horizontal
    ones, the bias and the fused activation): the SVD of the weight as a matrix over (input
    channel, row) x (output channel, column). For a 1x1 conv that is the plain channel
    bottleneck. At full rank the result equals the original; truncated, the weight error in
    Frobenius norm is sqrt(sum of the dropped s_i^2) (Eckart-Young).

    Options: `rank` (the same r everywhere, clipped to each layer's full rank) or else `energy`
    (per layer the smallest r keeping that fraction of sum(s_i^2)); `layers` limits the pass to
    those node names; `data` (an input array, or a list of tuples of them) is what the output
    SQNR is measured on (default: 4 standard normal samples). A layer is split only when both
    its weight count and its MACs drop; otherwise `ctx.missed` says by how much they would not
    (a k x k split pays off only when r < k*I*O / (I + O), and a horizontal stride makes the
    first conv compute every column). Records `ctx.low_rank` (a `Factored` per
    layer), and stats `layers`, `params_saved`, `macs_saved`, `output_sqnr_db` (float model vs
    factorized, on `data`). Preconditions: float weights (before quantize). Preserves: graph
    inputs and outputs; each split layer's result keeps its name.
    """
    from ..ir.interpreter import run
    if rank is not None and not (isinstance(rank, int) and rank >= 1):
        raise UsageError(f"low-rank: rank={rank!r} must be a positive integer")
    if not 0 < energy <= 1:
        raise UsageError(f"low-rank: energy={energy!r} must be in (0, 1]", "e.g. energy=0.95")
    unknown = set(layers) - {n.name for n in graph.nodes}
    if unknown:
        raise UsageError(f"low-rank: no layer named {', '.join(sorted(unknown))}", "name linear/conv2d nodes")
    before = graph.clone()
    records = []
    for n in graph.nodes:
        if (layers and n.name not in layers) or n.op not in ("linear", "conv2d"):
            continue
        why = why_not(n)
        if why:
            ctx.miss(n, f"not factorized: {why}")
            continue
        u, s, vt = np.linalg.svd(_matrix(n), full_matrices=False)
        r = pick_rank(s, rank, energy)
        root = np.sqrt(s[:r])
        first, second = _split(graph, n, u[:, :r] * root, root[:, None] * vt[:r])
        w = n.inputs[1].shape
        square = n.op == "linear" or (w[2:] if n.attrs["layout"] == "NCHW" else w[1:3]) == (1, 1)
        rec = Factored(n.name, "matrix" if square else "kxk", r, len(s),
                       float(np.sum(s[:r] ** 2) / max(np.sum(s ** 2), 1e-30)),
                       (n.inputs[1].type.numel, first.inputs[1].type.numel + second.inputs[1].type.numel),
                       (macs(n), macs(first) + macs(second)))
        records.append(rec)
        if rec.params[1] < rec.params[0] and rec.macs[1] < rec.macs[0]:
            out = n.output
            graph.replace_node(n, [second.output])
            graph.rename(second.output, out.name)
            ctx.stat("layers")
            ctx.stat("params_saved", rec.params[0] - rec.params[1])
            ctx.stat("macs_saved", rec.macs[0] - rec.macs[1])
        else:
            rec.done = False
            graph.erase(second)
            graph.erase(first)
            ctx.miss(n, f"not factorized: rank {r} of {len(s)} would take {rec.params[1]:,} weights and "
                        f"{rec.macs[1]:,} MACs against {rec.params[0]:,} and {rec.macs[0]:,}")
    ctx.low_rank = records
    if not any(r.done for r in records):
        return False
    graph.dce()
    ref, got = (np.concatenate([np.ravel(y) for x in _samples(graph, data) for y in run(g, *x)]).astype(np.float64)
                for g in (before, graph))
    ctx.stats[f"{ctx.current_pass}.output_sqnr_db"] = round(10 * np.log10(np.sum(ref ** 2) / max(np.sum((ref - got) ** 2),
                                                                                      1e-30)), 1)
    return True
