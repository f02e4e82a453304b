"""The two ONNX exports of every bundled model in onnxruntime against mcuforge's interpreter, end to end.

    python benchmarks/qdq_onnx.py            # every zoo model
    python benchmarks/qdq_onnx.py --quick    # digits_cnn and tiny_cnn

Each model is quantized to int8 (io float) on 4 seeded standard-normal inputs and run on them by
onnxruntime (basic optimizations, session.x64quantprecision=1) and by the interpreter on the QDQ
graph; the output is compared in integer steps of its scale. "max, ties to even" is the largest
difference once the interpreter's quantize rounds exact ties to even as ONNX's QuantizeLinear does
(ours round them away from zero, as TFLite does; docs/numerics.md): 0 where "max" is 1 means the
whole difference is such ties. Where it differs by more than 1 LSB, "first difference" names the
first quantized tensor (in graph order) where they differ on that input and by how many elements,
and "after forcing it" is the largest difference of any later quantized tensor once the
interpreter is given onnxruntime's value of that one tensor: 0 or 1 means the whole difference
grew from those few float roundings (docs/numerics.md). "integer ONNX" is the share of output
elements that onnxruntime computes bit-exactly from the integer flavour (backends/onnx/integer.py:
the integer graph in exact integer arithmetic) compared with the interpreter on the integer graph;
"QDQ bytes" and "integer bytes" are the sizes of the two files.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

import numpy as np
import onnxruntime as ort

from mcuforge import trace, zoo
from mcuforge.backends.onnx.emit import to_onnx
from mcuforge.backends.onnx.integer import to_integer_onnx
from mcuforge.ir import interpreter
from mcuforge.ir.interpreter import run
from mcuforge.passes.manager import PassManager
from mcuforge.passes.pipelines import FLOAT

QUICK = ["digits_cnn", "tiny_cnn"]
COLUMNS = ["model", "elements", "within 1 LSB", "max", "max, ties to even", "first difference", "after forcing it",
           "QDQ bytes", "integer bytes", "integer ONNX"]


def session(model: bytes):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def quantize_ties_to_even(x, *, scale, zero_point, axis, dtype):
    """ONNX's QuantizeLinear: the interpreter's quantize (x / scale in float32, plus the zero point,
    saturated) with exact ties rounded to even instead of away from zero."""
    shape = [-1 if len(scale) > 1 and i == axis % x.ndim else 1 for i in range(x.ndim)]
    s, zp = np.asarray(scale, np.float32).reshape(shape), np.asarray(zero_point, np.int64).reshape(shape)
    info = np.iinfo({"i8": np.int8, "u8": np.uint8, "i16": np.int16, "i32": np.int32}[dtype])
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.rint(np.clip(x.astype(np.float32) / s, -2.0 ** 31, 2.0 ** 31)) + zp
    return np.clip(q, info.min, info.max).astype(info.dtype)


@contextmanager
def ties_to_even():
    """The interpreter's quantize rounding as ONNX's QuantizeLinear does, inside the block."""
    ours = interpreter.IMPLS["quantize"]
    interpreter.IMPLS["quantize"] = quantize_ties_to_even
    try:
        yield
    finally:
        interpreter.IMPLS["quantize"] = ours


def measure(name: str) -> list:
    model, inputs = zoo.get(name)
    graph = trace(model, inputs)
    PassManager(FLOAT).run(graph)
    rng = np.random.default_rng(0)
    samples = [(rng.standard_normal(inputs[0].shape).astype(np.float32),) for _ in range(4)]
    ctx = PassManager([("quantize", {"calibration": samples, "quiet": True}),
                       ("lower-quantized", {"io": "float"})]).run(graph)
    qdq = ctx.qdq_graph
    every = qdq.clone()  # every quantized tensor an output, the model's own first
    quantized = [n.output for n in every.nodes if n.op == "quantize"]
    every.outputs = [*every.outputs, *quantized]
    s, scale = session(to_onnx(every).SerializeToString()), graph.outputs[0].producer.attrs["scale"][0]
    steps, even, first, forced = [], [], "", ""
    for (x,) in samples:
        theirs = s.run(None, {qdq.inputs[0].name: x})
        ours = {}
        run(qdq, x, trace=ours)
        steps.append(np.abs(np.rint((theirs[0] - ours[qdq.outputs[0].name]) / scale)).ravel())
        with ties_to_even():
            even.append(np.abs(np.rint((theirs[0] - run(qdq, x)[0]) / scale)).ravel())
        if steps[-1].max() > 1 and not first:
            theirs = dict(zip((v.name for v in quantized), theirs[len(qdq.outputs):]))
            v = next(v for v in quantized if np.any(theirs[v.name] != ours[v.name]))
            first = f"{v.producer.inputs[0].name}: {int(np.sum(theirs[v.name] != ours[v.name]))}"
            g = qdq.clone()  # that tensor a graph input, given onnxruntime's value
            q = next(n for n in g.nodes if n.output.name == v.name)
            g.replace_all_uses(q.output, g.add_input(f"{v.name}_in", q.output.type))
            g.dce()
            again = {}
            run(g, x, theirs[v.name], trace=again)
            forced = str(max(int(np.abs(again[k].astype(int) - theirs[k].astype(int)).max())
                             for k in theirs if k in again))
    d = np.concatenate(steps)
    integer = to_integer_onnx(graph).SerializeToString()  # `graph` is the integer one (lower-quantized)
    exact = session(integer)
    same = np.concatenate([exact.run(None, {graph.inputs[0].name: x})[0].ravel() == run(graph, x)[0].ravel()
                           for (x,) in samples])
    return [name, f"{d.size:,}", f"{np.mean(d <= 1):.2%}", f"{d.max():.0f}", f"{np.concatenate(even).max():.0f}",
            first, forced, f"{len(to_onnx(qdq).SerializeToString()):,}", f"{len(integer):,}", f"{np.mean(same):.2%}"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"only {' and '.join(QUICK)}")
    args = ap.parse_args(argv)
    rows = [measure(n) for n in (QUICK if args.quick else zoo.names())]
    widths = [max(len(c), *(len(str(r[i])) for r in rows)) for i, c in enumerate(COLUMNS)]
    for r in [COLUMNS, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
