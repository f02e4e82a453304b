"""Output SQNR of every bundled model quantized to int8, against the float model.

    python benchmarks/quant_sqnr.py                    # every zoo model, minmax observer
    python benchmarks/quant_sqnr.py --observer mse     # another observer
    python benchmarks/quant_sqnr.py --quick            # digits_cnn and tiny_cnn (what the tests run)

Calibration data: 128 inputs (`--samples`) drawn from a seeded standard normal (the zoo models'
weights are random too, with BatchNorm statistics measured on such inputs, so these are their
realistic inputs). Fewer undersell the small models: 32 single 640-value inputs give
fc_autoencoder's 128-unit layers too narrow ranges (9.5 dB instead of 20.5).
SQNR is measured on 8 other seeded inputs: the integer graph (float inputs quantized at the edge,
outputs dequantized) against the float graph, both in mcuforge's interpreter. The "float noise
gain" column is the float model's own output SQNR when its input gets 40 dB of noise: deep
random-weight networks amplify any perturbation (chaotic), and no 8-bit scheme can beat that.
Rows below the 20 dB target are marked.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from mcuforge import zoo
from mcuforge.ir.interpreter import run
from mcuforge.passes.manager import PassManager
from mcuforge.passes.pipelines import FLOAT, with_quantization
from mcuforge.passes.quantize import sqnr

QUICK = ["digits_cnn", "tiny_cnn"]
TARGET_DB = 20.0
COLUMNS = ["model", "layers", "float weights", "int8 weights", "SQNR dB", "float noise gain dB", "seconds", ""]


def inputs(shape, n: int, seed: int) -> list[tuple[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape).astype(np.float32),) for _ in range(n)]


def measure(name: str, observer: str, n_calib: int, n_test: int) -> list:
    import mcuforge
    model, example = zoo.get(name)
    graph = mcuforge.trace(model, example)
    PassManager(FLOAT).run(graph)
    float_graph, shape = graph.clone(), graph.inputs[0].shape
    calib, test = inputs(shape, n_calib, seed=1), inputs(shape, n_test, seed=2)
    t0 = time.perf_counter()
    pipeline = with_quantization([], "int8", "float", calibration=calib, observer=observer, quiet=True)
    ctx = PassManager(pipeline).run(graph)
    seconds = time.perf_counter() - t0
    refs = [run(float_graph, *x) for x in test]
    db = sqnr(refs, [run(graph, *x) for x in test])
    rng = np.random.default_rng(3)
    noisy = [(x + 0.01 * rng.standard_normal(x.shape).astype(np.float32),) for (x,) in test]  # 40 dB
    gain = sqnr(refs, [run(float_graph, *x) for x in noisy])
    return [name, len(float_graph), f"{ctx.quant['float_weight_bytes']:,}",
            f"{sum(c.type.nbytes for c in graph.constants()):,}", f"{db:.1f}", f"{gain:.1f}", f"{seconds:.1f}",
            "" if db >= TARGET_DB else f"< {TARGET_DB:.0f} dB"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"only {' and '.join(QUICK)}, 8 calibration inputs")
    ap.add_argument("--observer", default="minmax")
    ap.add_argument("--samples", type=int, default=128, help="calibration inputs per model (default 128)")
    args = ap.parse_args(argv)
    names, samples = (QUICK, 8) if args.quick else (zoo.names(), args.samples)
    rows = [measure(n, args.observer, samples, 4 if args.quick else 8) for n in names]
    widths = [max(len(c), *(len(str(r[i])) for r in rows)) for i, c in enumerate(COLUMNS)]
    for r in [COLUMNS, *rows]:
        print("  ".join(str(c).ljust(w) if i in (0, len(COLUMNS) - 1) else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    below = [r[0] for r in rows if r[-1]]
    print(f"\nint8, {args.observer} observer, calibrated on {samples} seeded standard-normal inputs; "
          f"{len(rows) - len(below)}/{len(rows)} models at or above {TARGET_DB:.0f} dB"
          + (f"; below: {', '.join(below)}" if below else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
