"""Arena bytes per bundled model against the lower bound, before and after scheduling, and TFLite Micro.

    python benchmarks/memory.py            # every zoo model, TFLite Micro column included
    python benchmarks/memory.py --quick    # three small models, no TFLite Micro (what the tests run)
    python benchmarks/memory.py --quantize int8

Each model goes through the default float pipeline (with `--quantize`, then quantize and
lower-quantized, calibrated on the example input), then to-nhwc, schedule and memory-plan. Columns: peak live bytes (the lower bound of
any plan) in the traced order and in the scheduled order, how the order was found, our arena, the
winning placement algorithm, arena / lower bound, and TFLite Micro's arena for our .tflite with
its own planner (the planned tensors and kernel scratch, its "head"; persistent structs
excluded), in the scheduled order; and the C backend's arena for the same order (its kernels'
scratch planned too, inputs overlapping their node's output where its kernels allow: int8
depthwise and im2col convs). The last line times scheduling and planning a 10,000-node chain.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import mcuforge
from mcuforge import zoo
from mcuforge.analysis import scheduling
from mcuforge.analysis.memory import check_plan, plan_memory
from mcuforge.backends.c.ops import overlap_lag, scratch_bytes
from mcuforge.errors import Error
from mcuforge.ir.graph import Graph
from mcuforge.ir.types import TensorType
from mcuforge.passes.manager import PassManager
from mcuforge.passes.pipelines import FLOAT, with_quantization

PIPELINE = FLOAT + [("to-nhwc", {}), ("schedule", {}), ("memory-plan", {})]
QUICK = ["tiny_cnn", "resnet8", "unet_tiny"]
COLUMNS = ["model", "nodes", "peak traced", "peak sched.", "order", "arena", "algorithm", "arena/bound", "TFLM arena",
           "TFLM/ours", "C arena", "TFLM/C"]


def tflite_micro_arena(graph: Graph) -> int:
    """Bytes TFLite Micro plans for `graph` (tensors and scratch) with its own planner, on the
    .tflite our TFLite backend writes without an offline plan."""
    from mcuforge.backends.tflite.emit import to_tflite
    from mcuforge.backends.tflite.runtime import tflm_arena_usage
    return tflm_arena_usage(to_tflite(graph, offline_plan=False))["head"]


def measure(name: str, tflm: bool, quantize: str | None) -> list:
    model, inputs = zoo.get(name)
    graph = mcuforge.trace(model, inputs)
    pipeline = PIPELINE if quantize is None else \
        with_quantization(PIPELINE, quantize, calibration=[[x.numpy() for x in inputs]], quiet=True)
    ctx = PassManager(pipeline).run(graph)
    schedule, plan = ctx.schedule, ctx.plan
    check_plan(plan)
    row = [name, len(graph), schedule.input_peak, schedule.peak, schedule.method + ("" if schedule.optimal else "?"),
           plan.arena_bytes, plan.algorithm, f"{plan.arena_bytes / plan.lower_bound_bytes:.3f}"]
    c_plan = plan_memory(graph, scratch=scratch_bytes, overlap=overlap_lag)  # the C backend's: its kernels' scratch
    check_plan(c_plan)  # and inputs overlapping their outputs where the kernels allow
    c = [c_plan.arena_bytes]
    if not tflm:
        return row + ["-", "-", *c, "-"]
    try:
        theirs = tflite_micro_arena(graph)
    except Error as e:  # an op the TFLite backend cannot emit
        return row + [f"n/a ({type(e).__name__})", "-", *c, "-"]
    return row + [theirs, f"{theirs / plan.arena_bytes:.3f}", *c, f"{theirs / c_plan.arena_bytes:.3f}"]


def chain_seconds(n: int = 10_000) -> tuple[float, int]:
    """(seconds to schedule and plan a chain of `n` dense layers, its arena bytes)."""
    g = Graph()
    x = g.add_input("x", TensorType((1, 64)))
    w = g.const(np.ones((64, 64), np.float32), "w")
    for _ in range(n):
        x = g.op("linear", [x, w])
    g.outputs = [x]
    t0 = time.perf_counter()
    g.reorder(scheduling.schedule(g).order)
    plan = plan_memory(g)
    return time.perf_counter() - t0, plan.arena_bytes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}; no TFLite Micro")
    ap.add_argument("--tflm", action=argparse.BooleanOptionalAction, default=None,
                    help="add TFLite Micro's arena (default: on unless --quick)")
    ap.add_argument("--quantize", choices=["int8", "int16x8"], help="quantize first (calibrated on the example input)")
    args = ap.parse_args(argv)
    tflm = not args.quick if args.tflm is None else args.tflm

    rows = [COLUMNS] + [measure(name, tflm, args.quantize) for name in (QUICK if args.quick else zoo.names())]
    widths = [max(len(f"{r[i]:,}" if isinstance(r[i], int) else str(r[i])) for r in rows) for i in range(len(COLUMNS))]
    for r in rows:
        cells = [f"{c:,}" if isinstance(c, int) else str(c) for c in r]
        print("  ".join(c.ljust(w) if i in (0, 4, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    seconds, arena = chain_seconds()
    print(f"\nscheduling and planning a 10,000-node chain: {seconds:.2f} s (arena {arena:,} B)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
