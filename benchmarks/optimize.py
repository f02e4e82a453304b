"""Flash against speed: each `optimize` mode of the C backend, measured, per zoo model.

    python benchmarks/optimize.py                 # ds_cnn, mobilenet_v1, resnet8
    python benchmarks/optimize.py --quick         # tiny_cnn (what the tests run)
    python benchmarks/optimize.py digits_cnn      # any zoo models

Each model is compiled once (deploy pipeline, int8, calibrated on seeded standard-normal inputs,
for the stm32f446re: a Cortex-M4 with the DSP extension), then `bench.tune_layers` measures every
layer that may run specialized both ways under QEMU (the counts `mcuforge bench --tune` caches), and
the C is emitted in each mode, which now chooses from those counts. Per mode: the layers
specialized, one inference's instructions on the M4 DSP build (QEMU -icount, SysTick's count), the
ELF's text (arm-none-eabi-size: kernels, model code and weights), the text against every layer
shared (what the mode adds), and whether its output bytes equal the interpreter's.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import mcuforge
from mcuforge import zoo
from mcuforge.backends.c import bench, tune
from mcuforge.backends.c.emit import emit_c
from mcuforge.compiler.targets import load_target
from mcuforge.ir.interpreter import run

MODELS, QUICK, TARGET = ["ds_cnn", "mobilenet_v1", "resnet8"], ["tiny_cnn"], "stm32f446re"
COLUMNS = ["model", "optimize", "specialized", "M4 DSP instr.", "vs size", "text B", "vs shared B", "exact"]


def text_of(directory: Path) -> int:
    """The text bytes of the project's model.elf (built)."""
    out = subprocess.run(["arm-none-eabi-size", "model.elf"], cwd=directory, capture_output=True, text=True, check=True)
    return int(out.stdout.splitlines()[1].split()[0])


def measure(name: str, work: Path) -> list[list[str]]:
    model, example = zoo.get(name)
    rng = np.random.default_rng(1)
    calibration = [rng.standard_normal(zoo.MODELS[name].input_shape).astype(np.float32) for _ in range(8)]
    art = mcuforge.compile(model, example, emit=(), passes="deploy", quantize="int8", calibration=calibration)
    target = load_target(TARGET)
    bench.tune_layers(art.graph, art.plan, target, work / name / "tune")
    xs = bench.random_inputs(emit_c(art.graph, work / name / "inputs", plan=art.plan, optimize="size"))
    want = b"".join(np.ascontiguousarray(y).tobytes() for y in run(art.graph, *xs))
    shared = emit_c(art.graph, work / name / "shared", plan=art.plan, target=target, specialized=(), fit_check=False)
    bench.make(shared, "cortex-m", "TARGET=mps2-an386", "DSP=1", tool="arm-none-eabi-gcc")
    results = {}
    for mode in tune.OPTIMIZE:
        d = emit_c(art.graph, work / name / mode, plan=art.plan, target=target, optimize=mode, fit_check=False)
        instructions = bench.qemu_instructions(d, xs, "mps2-an386", dsp=True)
        exact = bench.qemu_outputs(d, [xs], "mps2-an386", dsp=True) == [want]
        results[mode] = ((d / "model.c").read_text().count("_special("), instructions, text_of(d), exact)
    base = text_of(shared)
    return [[name, mode, str(n), f"{instructions:,}", f"{instructions / results['size'][1]:.3f}", f"{text:,}",
             f"{text - base:+,}", "yes" if exact else "NO"] for mode, (n, instructions, text, exact) in results.items()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("models", nargs="*", help=f"zoo models (default: {', '.join(MODELS)})")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [r for name in (args.models or (QUICK if args.quick else MODELS)) for r in measure(name, Path(tmp))]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    for r in [COLUMNS, *rows]:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    print(f"\nint8 for {TARGET} (Cortex-M4 DSP build, QEMU mps2-an386); each mode chose from `bench --tune` counts; "
          f"balanced: layers saving >= {tune.BALANCED} instructions per inference per byte of code they add")
    return 0 if all(r[-1] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
