"""Float IR -> ONNX: one lowering per IR op producing ONNX nodes, then a checked ModelProto.

Two layers: `LOWERINGS[op](emitter, node)` turns one IR node into ONNX NodeProtos and
initializers on an `Emitter`; `to_onnx` wraps them into a ModelProto with static input and output
shapes and runs `onnx.checker` (full check, with strict shape inference) before returning it.

ONNX is channel-first, so ops under a channel-last layout (NHWC/NWC) are lowered as
Transpose -> ONNX op -> Transpose, with constant weights transposed ahead of time. A fused `act`
becomes one Relu/Clip after the op. Value names are kept: the ONNX node writing an IR value is
named after it. Limits: float graphs and
their QDQ form (quantize/dequantize), opset >= 13 (layer_norm needs 17; Gelu is native from 20).
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper

from ...errors import UnsupportedItem, UnsupportedOpError, UsageError
from ...ir.graph import Graph, Node, Value
from ...ir.interpreter import evaluate
from ...ir.ops import norm_axis, registrar, spatial_axes
from ...ir.types import DType
from ...version import __version__
from ..base import write_atomic

DEFAULT_OPSET = 17
MIN_OPSET = 13


class Emitter:
    """Collects ONNX nodes and initializers for one graph and hands out unique tensor names;
    `lowerings` is the op table it lowers with (LOWERINGS, or integer.py's)."""

    def __init__(self, graph: Graph, opset: int, lowerings: dict | None = None):
        self.opset = opset
        self.lowerings = LOWERINGS if lowerings is None else lowerings
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._used = {v.name for v in graph.values()}
        self._named: dict[int, str] = {}   # id(constant Value) -> its initializer
        self._target: dict[int, str] = {}  # id(Value) -> where its producer writes (pre-activation)
        self._source: dict[int, str] = {}  # id(Value) -> where its readers read it (see `redirect`)
        self._scalars: dict[float, str] = {}
        self.current = ""  # the IR node being lowered; names what it emits

    def lower(self, n: Node):
        """Emit IR node `n` through LOWERINGS; a fused activation follows as its own node."""
        self.current = n.name
        act = n.attrs.get("act", "none")
        if act != "none":
            self._target[id(n.output)] = self.fresh(f"{n.name}/pre_{act}")
        self.lowerings[n.op](self, n)
        if act != "none":
            _ACTS[act](self, self._target[id(n.output)], n.output.name)

    def fresh(self, base: str) -> str:
        name, n = base, 0
        while name in self._used:
            n += 1
            name = f"{base}_{n}"
        self._used.add(name)
        return name

    def name(self, v: Value) -> str:
        """The ONNX name to read IR value `v` from; a constant becomes an initializer on first use."""
        if v.is_const and id(v) not in self._named:
            self._named[id(v)] = v.name
            self.inits.append(onnx.numpy_helper.from_array(np.asarray(v.data), v.name))
        return self._source.get(id(v), v.name)

    def out(self, v: Value) -> str:
        """The ONNX name a lowering writes IR value `v` to."""
        return self._target.get(id(v), v.name)

    def redirect(self, v: Value, read: str | None = None, write: str | None = None):
        """From now on, lowerings read IR value `v` from `read` / write it to `write` (integer.py
        lowers a float op on a cast copy this way)."""
        for table, name in ((self._source, read), (self._target, write)):
            if name is not None:
                table[id(v)] = name

    def const(self, array, base: str = "const") -> str:
        name = self.fresh(f"{self.current}/{base}")
        self.inits.append(onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def ints(self, values, base: str = "ints") -> str:
        return self.const(np.array(values, dtype=np.int64), base)

    def scalar(self, x: float) -> str:
        """A shared float32 scalar initializer."""
        if x not in self._scalars:
            self._scalars[x] = self.fresh(f"scalar_{x:g}")
            self.inits.append(onnx.numpy_helper.from_array(np.array(x, np.float32), self._scalars[x]))
        return self._scalars[x]

    def emit(self, op_type: str, inputs: list[str], out: str | list[str] | None = None, **attrs):
        """Append one ONNX node; returns its output name (or names when `out` is a list)."""
        outs = [out] if isinstance(out, str) else out or [self.fresh(f"{self.current}/{op_type}")]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=outs[0], **attrs))
        return outs if isinstance(out, list) else outs[0]

    def transposed(self, v: Value, perm) -> str:
        """`v` with axes permuted: a transposed initializer for constants, else a Transpose node."""
        if v.is_const:
            return self.const(np.ascontiguousarray(np.transpose(v.data, perm)), f"{v.name}_t")
        return self.emit("Transpose", [self.name(v)], perm=list(perm))

    def reduce_mean(self, x: str, axes, keepdims: bool, out: str | None = None) -> str:
        if self.opset >= 18:
            return self.emit("ReduceMean", [x, self.ints(axes, "axes")], out, keepdims=int(keepdims))
        return self.emit("ReduceMean", [x], out, axes=list(axes), keepdims=int(keepdims))


# ---------------------------------------------------------------- layout helpers

def to_channel_first(r: int) -> list[int]:
    """The Transpose perm taking a rank-`r` channel-last tensor to channel-first."""
    return [0, r - 1, *range(1, r - 1)]


def to_channel_last(r: int) -> list[int]:
    """The Transpose perm taking a rank-`r` channel-first tensor to channel-last."""
    return [0, *range(2, r), 1]


def _channel_first_op(e: Emitter, node: Node, op_type: str, rest=(), x: str | None = None, **attrs):
    """Emit `op_type` on node's first operand (or `x` in its place) seen channel-first, writing
    node's result."""
    x, r = x or e.name(node.inputs[0]), node.inputs[0].type.rank
    if node.attrs["layout"][1] == "C":
        return e.emit(op_type, [x, *rest], e.out(node.output), **attrs)
    y = e.emit(op_type, [e.emit("Transpose", [x], perm=to_channel_first(r)), *rest], **attrs)
    return e.emit("Transpose", [y], e.out(node.output), perm=to_channel_last(r))


def spatial(layout: str, shape) -> tuple[int, ...]:
    """The spatial dimensions of `shape` under `layout`."""
    return tuple(shape[2:]) if layout[1] == "C" else tuple(shape[1:-1])


def spatial_in(node: Node) -> tuple[int, ...]:
    """The spatial dimensions of `node`'s first input."""
    return spatial(node.attrs["layout"], node.inputs[0].shape)


# ---------------------------------------------------------------- lowerings

LOWERINGS: dict = {}


lowers = registrar(LOWERINGS)


@lowers("conv1d", "conv2d", "conv_transpose2d")
def _conv(e, n):
    a, w = n.attrs, n.inputs[1]
    transposed = n.op == "conv_transpose2d"
    if a["layout"][1] == "C":
        wname = e.name(w)
    else:  # OHWI -> OIHW; transposed (O/g, kH, kW, I) -> (I, O/g, kH, kW)
        wname = e.transposed(w, [3, 0, 1, 2] if transposed else to_channel_first(w.type.rank))
    extra = dict(output_padding=a["output_padding"]) if transposed else {}
    _channel_first_op(e, n, "ConvTranspose" if transposed else "Conv",
                      [wname, *(e.name(b) for b in n.inputs[2:])], strides=a["stride"], pads=a["pads"],
                      dilations=a["dilation"], group=a["groups"], **extra)


@lowers("linear")
def _linear(e, n):
    x, w, *b = n.inputs
    if x.type.rank == 2:
        return e.emit("Gemm", [e.name(x), e.name(w), *(e.name(v) for v in b)], e.out(n.output), transB=1)
    y = e.emit("MatMul", [e.name(x), e.transposed(w, (1, 0))], None if b else e.out(n.output))
    if b:
        e.emit("Add", [y, e.name(b[0])], e.out(n.output))


@lowers("batch_norm")
def _batch_norm(e, n):
    x, r = n.inputs[0], n.inputs[0].type.rank
    params = [e.name(v) for v in n.inputs[1:]]
    axis = norm_axis(n.attrs["axis"], r)
    if axis == 1:
        return e.emit("BatchNormalization", [e.name(x), *params], e.out(n.output), epsilon=n.attrs["eps"])
    perm = [0, axis, *(i for i in range(1, r) if i != axis)]  # BatchNormalization normalizes axis 1
    t = e.emit("Transpose", [e.name(x)], perm=perm)
    y = e.emit("BatchNormalization", [t, *params], epsilon=n.attrs["eps"])
    e.emit("Transpose", [y], e.out(n.output), perm=list(np.argsort(perm)))


@lowers("layer_norm")
def _layer_norm(e, n):
    if e.opset < 17:
        raise UsageError(f"layer_norm {n.name} needs ONNX opset >= 17 (LayerNormalization), got {e.opset}",
                         "export with opset=17 or newer")
    x, *p = n.inputs
    scale = e.name(p[0]) if p else e.const(np.ones(x.shape[norm_axis(n.attrs["axis"], x.type.rank):],
                                                   np.float32), "ones")
    e.emit("LayerNormalization", [e.name(x), scale, *(e.name(v) for v in p[1:])], e.out(n.output),
           axis=n.attrs["axis"], epsilon=n.attrs["eps"])


def _simple(op_type, **fixed):
    return lambda e, n: e.emit(op_type, [e.name(v) for v in n.inputs], e.out(n.output), **fixed)


for _op, _onnx in [("matmul", "MatMul"), ("relu", "Relu"), ("sigmoid", "Sigmoid"), ("tanh", "Tanh"),
                   ("identity", "Identity"), ("dropout", "Identity"), ("add", "Add"), ("sub", "Sub"),
                   ("mul", "Mul"), ("div", "Div"), ("prelu", "PRelu"), ("softplus", "Softplus"), ("exp", "Exp"),
                   ("log", "Log"), ("sqrt", "Sqrt"), ("abs", "Abs"), ("sign", "Sign"), ("erf", "Erf"),
                   ("maximum", "Max"), ("minimum", "Min"), ("pow", "Pow")]:
    LOWERINGS[_op] = _simple(_onnx)
LOWERINGS["elu"] = lambda e, n: e.emit("Elu", [e.name(n.inputs[0])], e.out(n.output), alpha=n.attrs["alpha"])
LOWERINGS["tile"] = lambda e, n: e.emit("Tile", [e.name(n.inputs[0]), e.ints(n.attrs["repeats"], "repeats")],
                                        e.out(n.output))
LOWERINGS["hardsigmoid"] = _simple("HardSigmoid", alpha=1 / 6, beta=0.5)  # torch's relu6(x + 3) / 6


@lowers("relu6", "clamp")
def _clip(e, n):
    lo, hi = (0.0, 6.0) if n.op == "relu6" else (n.attrs["min"], n.attrs["max"])
    e.emit("Clip", [e.name(n.inputs[0]), e.scalar(lo), e.scalar(hi)], e.out(n.output))


@lowers("leaky_relu")
def _leaky_relu(e, n):
    e.emit("LeakyRelu", [e.name(n.inputs[0])], e.out(n.output), alpha=n.attrs["alpha"])


@lowers("hardswish")
def _hardswish(e, n):
    x = e.name(n.inputs[0])
    if e.opset >= 14:
        return e.emit("HardSwish", [x], e.out(n.output))
    e.emit("Mul", [x, e.emit("HardSigmoid", [x], alpha=1 / 6, beta=0.5)], e.out(n.output))


@lowers("silu")
def _silu(e, n):
    x = e.name(n.inputs[0])
    e.emit("Mul", [x, e.emit("Sigmoid", [x])], e.out(n.output))


@lowers("gelu")
def _gelu(e, n):
    x, approx = e.name(n.inputs[0]), n.attrs["approximate"]
    if e.opset >= 20:
        return e.emit("Gelu", [x], e.out(n.output), approximate=approx)
    if approx == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = e.emit("Mul", [e.emit("Mul", [x, x]), x])
        inner = e.emit("Add", [x, e.emit("Mul", [cube, e.scalar(0.044715)])])
        t = e.emit("Tanh", [e.emit("Mul", [inner, e.scalar(math.sqrt(2 / math.pi))])])
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        t = e.emit("Erf", [e.emit("Div", [x, e.scalar(math.sqrt(2))])])
    half_x = e.emit("Mul", [x, e.scalar(0.5)])
    e.emit("Mul", [half_x, e.emit("Add", [t, e.scalar(1.0)])], e.out(n.output))


@lowers("softmax", "log_softmax")
def _softmax(e, n):
    e.emit("Softmax" if n.op == "softmax" else "LogSoftmax", [e.name(n.inputs[0])], e.out(n.output),
           axis=n.attrs["axis"])


@lowers("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d")
def _pool(e, n):
    """Pools with ceil_mode written as extra end padding: ONNX's ceil_mode keeps a last window that
    starts in the end padding where torch drops it, so its shapes differ."""
    a, nd = n.attrs, len(n.attrs["kernel"])
    dil = a.get("dilation", [1] * nd)
    sizes, outs = spatial_in(n), spatial(n.attrs["layout"], n.output.shape)
    pads = list(a["pads"])
    for i in range(nd):
        reach = (outs[i] - 1) * a["stride"][i] + dil[i] * (a["kernel"][i] - 1) + 1
        pads[nd + i] = max(pads[nd + i], reach - sizes[i] - pads[i])
    common = dict(kernel_shape=a["kernel"], strides=a["stride"])
    if n.op.startswith("max"):
        return _channel_first_op(e, n, "MaxPool", dilations=dil, pads=pads, **common)
    x = None
    if a["count_include_pad"] and pads != a["pads"]:
        # torch counts the given padding in the divisor but not the overhang of ceil mode: pad with
        # zeros explicitly, then let the pool ignore what is left.
        r = n.inputs[0].type.rank
        full = [0] * (2 * r)
        for i, ax in enumerate(spatial_axes(a["layout"], r)):
            full[ax], full[r + ax] = a["pads"][i], a["pads"][nd + i]
        x = e.emit("Pad", [e.name(n.inputs[0]), e.ints(full, "pads")], mode="constant")
        pads = [0] * nd + [p - q for p, q in zip(pads[nd:], a["pads"][nd:])]
    _channel_first_op(e, n, "AveragePool", x=x, pads=pads, count_include_pad=int(x is None and a["count_include_pad"]),
                      **common)


@lowers("adaptive_avg_pool")
def _adaptive_avg_pool(e, n):
    """GlobalAveragePool, an AveragePool when every size divides, else a mean per output bin."""
    sizes, outs = spatial_in(n), n.attrs["output_size"]
    if all(o == 1 for o in outs):
        return _channel_first_op(e, n, "GlobalAveragePool")
    if all(s % o == 0 for s, o in zip(sizes, outs)):
        k = [s // o for s, o in zip(sizes, outs)]
        return _channel_first_op(e, n, "AveragePool", kernel_shape=k, strides=k)
    # Bins are products of 1-D bins [floor(i*s/o), ceil((i+1)*s/o)), so pool one axis at a time.
    cf = n.attrs["layout"][1] == "C"
    y = e.name(n.inputs[0])
    for i, (s, o) in enumerate(zip(sizes, outs)):
        ax, last = (i + 2 if cf else i + 1), i == len(sizes) - 1
        bins = [e.reduce_mean(e.emit("Slice", [y, e.ints([j * s // o]), e.ints([-(-(j + 1) * s // o)]),
                                               e.ints([ax])]), [ax], True) for j in range(o)]
        y = e.emit("Concat", bins, e.out(n.output) if last else None, axis=ax)


@lowers("mean")
def _mean(e, n):
    e.reduce_mean(e.name(n.inputs[0]), n.attrs["axes"], n.attrs["keepdims"], e.out(n.output))


@lowers("reduce")
def _reduce(e, n):
    x, a, op = e.name(n.inputs[0]), n.attrs, f"Reduce{n.attrs['mode'].capitalize()}"
    if e.opset >= (13 if a["mode"] == "sum" else 18):  # axes became an operand
        return e.emit(op, [x, e.ints(a["axes"], "axes")], e.out(n.output), keepdims=int(a["keepdims"]))
    e.emit(op, [x], e.out(n.output), axes=list(a["axes"]), keepdims=int(a["keepdims"]))


@lowers("reshape")
def _reshape(e, n):
    e.emit("Reshape", [e.name(n.inputs[0]), e.ints(n.attrs["shape"], "shape")], e.out(n.output))


@lowers("transpose")
def _transpose(e, n):
    e.emit("Transpose", [e.name(n.inputs[0])], e.out(n.output), perm=list(n.attrs["perm"]))


@lowers("concat")
def _concat(e, n):
    e.emit("Concat", [e.name(v) for v in n.inputs], e.out(n.output), axis=n.attrs["axis"])


@lowers("split")
def _split(e, n):
    e.emit("Split", [e.name(n.inputs[0]), e.ints(n.attrs["sizes"], "sizes")], [e.out(v) for v in n.outputs],
           axis=n.attrs["axis"])


@lowers("slice")
def _slice(e, n):
    a = n.attrs
    e.emit("Slice", [e.name(n.inputs[0]), *(e.ints(a[k], k) for k in ("starts", "ends", "axes", "steps"))],
           e.out(n.output))


@lowers("pad")
def _pad(e, n):
    e.emit("Pad", [e.name(n.inputs[0]), e.ints(n.attrs["pads"], "pads"), e.scalar(n.attrs["value"])],
           e.out(n.output), mode="constant")


@lowers("resize")
def _resize(e, n):
    a, x = n.attrs, n.inputs[0]
    sizes = [*x.shape[:2], *a["size"]] if a["layout"][1] == "C" else [x.shape[0], x.shape[-1], *a["size"]]
    if a["mode"] == "nearest":  # torch: src = floor(dst * in / out)
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:  # torch's bilinear is half_pixel (pytorch_half_pixel differs for outputs of size 1)
        attrs = dict(mode="linear", coordinate_transformation_mode="align_corners" if a["align_corners"]
                     else "half_pixel")
    _channel_first_op(e, n, "Resize", ["", "", e.ints(sizes, "sizes")], **attrs)


@lowers("quantize", "dequantize")
def _qdq(e, n):
    """QuantizeLinear / DequantizeLinear (QDQ form). ONNX rounds ties to even where the IR rounds
    them away from zero, so exact ties may differ by one step."""
    a = n.attrs
    if n.op == "dequantize" and n.inputs[0].is_const and n.inputs[0].dtype == DType.i64:
        # an int16x8 bias: ONNX has no int64 DequantizeLinear, so the real bias is stored
        (real,) = evaluate("dequantize", [n.inputs[0].data], a)
        return e.emit("Identity", [e.const(real, "bias")], e.out(n.output))
    per_axis = len(a["scale"]) > 1
    shape = (len(a["scale"]),) if per_axis else ()
    dtype = (n.output if n.op == "quantize" else n.inputs[0]).dtype.np
    scale = e.const(np.array(a["scale"], np.float32).reshape(shape), "scale")
    zp = e.const(np.array(a["zero_point"], dtype).reshape(shape), "zero_point")
    op_type = "QuantizeLinear" if n.op == "quantize" else "DequantizeLinear"
    e.emit(op_type, [e.name(n.inputs[0]), scale, zp], e.out(n.output), **({"axis": a["axis"]} if per_axis else {}))


_ACTS = {"relu": lambda e, x, out: e.emit("Relu", [x], out),
         "relu6": lambda e, x, out: e.emit("Clip", [x, e.scalar(0.0), e.scalar(6.0)], out)}


# ---------------------------------------------------------------- graph -> model

def _value_info(v: Value) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(v.name, helper.np_dtype_to_tensor_dtype(v.dtype.np), list(v.shape))


def to_onnx(graph: Graph, opset: int | None = None, lowerings: dict | None = None) -> onnx.ModelProto:
    """Lower a float IR graph to a checked ONNX model (default opset 17; 21, the first with int16
    QuantizeLinear, for a QDQ graph with int16 tensors). `lowerings` replaces LOWERINGS (the exact
    integer flavour, integer.py). ONNX has no state: a graph's states become inputs after its own
    (their reads) and outputs after its own (their writes), the pairs `compile(state=...)` takes."""
    if opset is None:
        opset = 21 if any(v.dtype == DType.i16 for n in graph.nodes for v in n.outputs) else DEFAULT_OPSET
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise UsageError(f"cannot emit ONNX opset {opset}",
                         f"choose an opset in {MIN_OPSET}..{onnx.defs.onnx_opset_version()}")
    e = Emitter(graph, opset, lowerings)
    missing = [UnsupportedItem(n.op, n.name) for n in graph.nodes if n.op not in e.lowerings]
    if missing:
        raise UnsupportedOpError(missing, "the ONNX backend lowers float ops only; use the tflite or c backend",
                                 "the ONNX backend cannot emit:")
    for n in graph.nodes:
        e.lower(n)
    outputs = [*graph.outputs, *(s.write for s in graph.states)]
    for v in outputs:
        e.name(v)  # a constant output needs its initializer
    g = helper.make_graph(e.nodes, graph.name, [_value_info(v) for v in [*graph.inputs, *(s.read for s in graph.states)]],
                          [_value_info(v) for v in outputs], e.inits)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(g, opset_imports=opsets, producer_name="mcuforge", producer_version=__version__,
                              doc_string=f"graph {graph.name} exported by mcuforge {__version__}",
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model, full_check=True)
    return model


def save_onnx(graph: Graph, path, opset: int | None = None, lowerings: dict | None = None) -> str:
    """Write `to_onnx(graph)` to `path` atomically (nothing is left behind on failure)."""
    data = to_onnx(graph, opset, lowerings).SerializeToString()
    return write_atomic(path, data)
