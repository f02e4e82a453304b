"""compress-weights: re-quantizes the weights of integer conv and fully connected layers into a
compressed format (power-of-two, binary, ternary, k-means codebook, int4 with group scales).

Input: an integer graph (after `lower-quantized`, any layout). For each `qconv1d`, `qconv2d` and
`qlinear` with int8 weights (only those named in `layers`, if given) it takes the real weights
w_q * s_w, chooses new per-output-channel scales s_c and int8 values that the format can store
(`ir/wformat.py`), recomputes what depends on the weight scales (the int32 bias at s_in * s_c,
the multipliers and shifts) and sets the layer's `wfmt`. Activations, zero points and clamps do
not change. The layer stays an ordinary integer op with int8 weights: the interpreter, TFLite and
ONNX (the QDQ graph in ctx.qdq_graph gets the same weights) compute with them as they are (same
numbers, int8 size); the C backend stores the packed codes and decodes them in its kernels
(smaller flash, same numbers).

Per output channel c, on its row of real weights w (docs/numerics.md, "Compressed weights"):
- pow2: s_c among 8 candidates from max|w| / 64 down by 2^(-1/8) steps (least squared error),
  each weight to the nearest of 0, +-2^0 .. +-2^6;
- binary: s_c = mean |w| (the least-squares scale of sign(w), as XNOR-Net), weight sign(w);
- ternary: threshold 0.7 mean |w| and s_c = mean |w| above it (ternary weight networks);
- kmeansB: s_c = max|w| / 127, then the layer's scaled weights clustered by 1-D k-means into 2^B
  centroids (linear initialization, which Deep Compression found best), rounded to int8;
- int4gG: s_c = max|w| / 126; per group of G weights m = ceil(max|w_g| / (7 s_c)) in 1..18 and
  q = round(w / (m s_c)) in -7..7, the int8 weight m * q.
No retraining: binary and ternary weights lose much accuracy on most models (the report says so);
check the accuracy on held-out data (examples/compress_digits.py).
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..ir import quant, wformat
from ..ir.graph import Graph, Node
from ..ir.interpreter import round_half_away
from ..ir.types import DType, QuantParams

FORMATS = wformat.NAMES[1:]  # the compressed ones: mcuforge.compile(..., weights=name)
COMPRESSIBLE = ("qconv1d", "qconv2d", "qlinear")
WARNING = ("{0} weights without quantization-aware training usually cost much accuracy: measure it on held-out "
           "data before deploying")


def compress_weights(graph: Graph, ctx, format="kmeans4", layers=()) -> bool:
    """Re-quantizes int8 conv / fully connected weights into `format` (one of FORMATS) and marks
    the layers' `wfmt`; `layers`: names of the layers to compress (default: all that can be).

    Preconditions: an integer graph (lower-quantized). Preserves: every op, activation parameter
    and output name; changes weight values, bias, multipliers and shifts of the layers it compresses.
    """
    if format not in FORMATS:
        raise UsageError(f"unknown weight format '{format}'", f"known: {', '.join(FORMATS)}")
    eligible = {n.name: n for n in graph.nodes if n.op in COMPRESSIBLE and n.inputs[1].is_const
                and n.inputs[1].dtype == DType.i8 and n.inputs[1].type.quant and n.attrs["wfmt"] == "int8"}
    unknown = sorted(set(layers) - set(eligible))
    if unknown:
        raise UsageError(f"compress-weights: no compressible layer named {', '.join(unknown)}",
                         f"integer conv / fully connected layers with int8 weights: {', '.join(sorted(eligible))}")
    sizes, weights = {}, {}
    for name, n in eligible.items():
        if layers and name not in layers:
            continue
        w = n.inputs[1]
        sizes[name], weights[name] = (w.type.nbytes, wformat.packed_bytes(format, w.shape)), w.name
        _compress(graph, n, format)
        ctx.stat("compressed")
    graph.dce()
    scheme = wformat.parse(format)[0]
    summary = {"weights": format, "warning": WARNING.format(scheme) if scheme in ("binary", "ternary") else None}
    ctx.weights = {**summary, "layers": sizes}  # name -> (int8 bytes, packed bytes)
    if ctx.quant:
        ctx.quant.update(summary)  # for the report
    qdq = ctx.qdq_graph
    if qdq is not None and not all(_update_qdq(qdq, eligible[name], old) for name, old in weights.items()):
        ctx.qdq_graph = None  # its weights are no longer the model's: no ONNX export
    elif qdq is not None and ctx.quant and ctx.quant_check:
        from ..ir.interpreter import run
        from .quantize import sqnr
        samples, refs = ctx.quant_check  # the quantize pass's float outputs
        ctx.quant["compressed_sqnr"] = sqnr(refs, [run(qdq, *s) for s in samples])
    return bool(sizes)


def _update_qdq(qdq: Graph, n: Node, old: str) -> bool:
    """Gives layer `n`'s counterpart in the QDQ graph (the ONNX export: the layer that dequantizes
    the int8 weight named `old`) its new weight and bias; False if it has none in the same layout."""
    f = next((m for m in qdq.nodes if len(m.inputs) > 1 and m.inputs[1].producer is not None
              and m.inputs[1].producer.inputs[0].name == old), None)
    if f is None or f.attrs.get("layout") != n.attrs.get("layout") or len(f.inputs) != len(n.inputs):
        return False
    for i, v in enumerate(n.inputs[1:], start=1):
        d, q = f.inputs[i].producer, v.type.quant
        if d is None or d.op != "dequantize":
            return False
        qdq.set_input(d, 0, qdq.const(v.data, v.name, quant=q))
        d.attrs.update(scale=list(q.scale), zero_point=list(q.zero_point), axis=0)
    qdq.dce()
    return True


def _compress(g: Graph, n: Node, fmt: str):
    w, layout = n.inputs[1], n.attrs.get("layout", "")
    s_old = np.broadcast_to(np.asarray(w.type.quant.scale, np.float64), (w.shape[0],))
    real = wformat.rows(w.data, n.op, layout).astype(np.float64) * s_old[:, None]
    scheme, bits, group = wformat.parse(fmt)
    q, s = QUANTIZERS[scheme](real, group or bits)
    s = np.where(s > 0, s, np.min(s[s > 0], initial=1.0))  # all-zero rows (binary's +-1 stay small)
    data = wformat.unrows(q.astype(np.int8), w.shape, n.op, layout)
    g.set_input(n, 1, g.const(data, f"{w.name}_{fmt}", quant=QuantParams(s, [0] * len(s), 0)))
    if len(n.inputs) > 2:  # the bias moves to the new scales s_in * s_c
        b = n.inputs[2]
        info = np.iinfo(b.data.dtype)
        data = np.clip(round_half_away(b.data.astype(np.float64) * s_old / s), info.min, info.max).astype(b.data.dtype)
        s_b = n.inputs[0].type.quant.scale[0] * s
        g.set_input(n, 2, g.const(data, f"{b.name}_{fmt}", quant=QuantParams(s_b, [0] * len(s), 0)))
    (s_in, z_in), (s_out, z_out) = ((v.type.quant.scale[0], v.type.quant.zero_point[0])
                                    for v in (n.inputs[0], n.output))
    p = quant.conv_params(s_in, s, s_out, z_in, z_out, "none", n.output.dtype.value)
    n.attrs.update(multiplier=p["multiplier"], shift=p["shift"], wfmt=fmt)


# ---------------------------------------------------------------- quantizers: real rows -> (int rows, scales)

def _nearest(levels: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Each element of `x` replaced by the nearest of the sorted `levels`."""
    i = np.clip(np.searchsorted(levels, x), 1, len(levels) - 1)
    lo, hi = levels[i - 1], levels[i]
    return np.where(x - lo <= hi - x, lo, hi)


def _pow2(w, _):
    amax, levels = np.abs(w).max(1), np.array([0.0] + [2.0 ** k for k in range(7)])
    best_err = np.full(len(w), np.inf)
    q, s = np.zeros_like(w), np.ones(len(w))
    for f in 2.0 ** (-np.arange(8) / 8):
        sc = np.where(amax > 0, amax * f / 64, 1.0)
        qc = np.sign(w) * _nearest(levels, np.abs(w) / sc[:, None])
        err = ((qc * sc[:, None] - w) ** 2).sum(1)
        better = err < best_err
        q[better], s[better], best_err[better] = qc[better], sc[better], err[better]
    return q, s


def _binary(w, _):
    return np.where(w >= 0, 1, -1), np.abs(w).mean(1)


def _ternary(w, _):
    big = np.abs(w) > 0.7 * np.abs(w).mean(1, keepdims=True)
    s = (np.abs(w) * big).sum(1) / np.maximum(big.sum(1), 1)
    return np.sign(w) * big, s


def _kmeans(w, bits):
    s = np.abs(w).max(1) / 127
    v = (w / np.where(s > 0, s, 1.0)[:, None]).ravel()
    centers = np.linspace(v.min(), v.max(), 1 << bits)
    for _ in range(30):  # Lloyd's iterations; in 1-D the clusters are the intervals between midpoints
        label = np.searchsorted((centers[1:] + centers[:-1]) / 2, v)
        counts = np.bincount(label, minlength=len(centers))
        sums = np.bincount(label, weights=v, minlength=len(centers))
        new = np.where(counts > 0, sums / np.maximum(counts, 1), centers)
        if np.allclose(new, centers):
            break
        centers = new
    book = np.unique(np.clip(round_half_away(centers), -127, 127))
    return _nearest(book, v).reshape(w.shape), s


def _int4(w, group):
    out, k = w.shape
    s = np.abs(w).max(1) / 126
    n_groups = -(-k // group)
    grouped = np.pad(w, ((0, 0), (0, n_groups * group - k))).reshape(out, n_groups, group)
    scaled = grouped / np.where(s > 0, s, 1.0)[:, None, None]
    m = np.clip(np.ceil(np.abs(scaled).max(2, keepdims=True) / 7 - 1e-9), 1, 18)
    q = np.clip(round_half_away(scaled / m), -7, 7)
    return (m * q).reshape(out, -1)[:, :k], s


QUANTIZERS = {"pow2": _pow2, "binary": _binary, "ternary": _ternary, "kmeans": _kmeans, "int4": _int4}
