"""RAM of the four streaming microWakeWord models (the `pymicro-wakeword` wheel's .tflite files) in
our C against TFLite Micro running the same files.

    python benchmarks/streaming.py                 # fetches the wheel with pip into a temporary folder
    python benchmarks/streaming.py --wheel FILE    # reads the models out of a wheel you have

Each file is imported (its resource variables become states) and compiled with the default
pipeline for the C backend. Columns: the states and their bytes (the C code's state buffer, kept
between calls), our arena, arena + state (every byte the model's tensors take in RAM), the RAM
arm-none-eabi-size counts for the model's objects on a Cortex-M4 (arena, state and the kernels'
statics), TFLite Micro's arena for the original file ("total": its planned tensors, "head", plus
its persistent part: the resource variables' buffers, tensor structs and kernel data) and its
head alone, and TFLite Micro's total over our arena + state.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import mcuforge
from mcuforge.backends.c.emit import emit_c
from mcuforge.backends.c.size import measure
from mcuforge.backends.tflite.runtime import isolated

NAMES = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")
COLUMNS = ["model", "states", "state B", "arena B", "arena+state B", "C RAM (size)", "TFLM total B", "TFLM head B",
           "TFLM/ours"]


def row(name: str, data: bytes, tmp: Path) -> list:
    art = mcuforge.compile(mcuforge.load_tflite(data), emit=())
    plan, file = art.plan, tmp / f"{name}.tflite"
    file.write_bytes(data)
    ram = measure(emit_c(art.graph, tmp / name, plan=plan)).ram
    tflm = isolated("tflm_arena_usage", file)  # in a process of its own: TFLite Micro may abort
    ours = plan.arena_bytes + plan.state_bytes
    return [name, len(art.graph.states), plan.state_bytes, plan.arena_bytes, ours, ram or "-", tflm["total"],
            tflm["head"], f"{tflm['total'] / ours:.2f}"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", type=Path, help="a pymicro-wakeword wheel (default: pip download it)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "pymicro-wakeword", "--no-deps", "-q", "-d", tmp],
                           check=True)
            wheel = next(Path(tmp).glob("pymicro_wakeword-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            models = {n: z.read(f"pymicro_wakeword/models/{n}.tflite") for n in NAMES}
        rows = [COLUMNS] + [row(n, data, Path(tmp)) for n, data in models.items()]
    widths = [max(len(f"{r[i]:,}" if isinstance(r[i], int) else str(r[i])) for r in rows) for i in range(len(COLUMNS))]
    for r in rows:
        cells = [f"{c:,}" if isinstance(c, int) else str(c) for c in r]
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
