"""Two models, one firmware: compile zoo:ds_cnn (as `kws`) and zoo:digits_cnn (as `img`) to int8 C
with `mcuforge compile`, link both into one Cortex-M4 ELF with main.c, run it under QEMU and print
both models' outputs.

    python examples/firmware/build.py [OUT]     (default OUT: build/firmware, from the current directory)

Needs arm-none-eabi-gcc (with newlib) and qemu-system-arm. The inputs are seeded random int8
tensors, written to OUT/kws_input.bin and OUT/img_input.bin.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = {"kws": ("zoo:ds_cnn", (1, 1, 49, 10)), "img": ("zoo:digits_cnn", (1, 1, 8, 8))}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, (model, shape) in MODELS.items():
        calibration = out / f"{prefix}_calibration.npz"
        np.savez(calibration, rng.standard_normal((16, *shape)).astype(np.float32))
        subprocess.run(["mcuforge", "compile", model, "--quantize", "int8", "--calibration", str(calibration),
                        "--emit", "c", "--prefix", prefix, "-o", str(out / prefix), "-q"], check=True)
        (out / f"{prefix}_input.bin").write_bytes(rng.integers(-128, 128, shape, dtype=np.int8).tobytes())
    make = ["make", "-s", "-C", str(HERE), f"KWS={out / 'kws' / 'c'}", f"IMG={out / 'img' / 'c'}", f"OUT={out}"]
    subprocess.run(make, check=True)
    run = subprocess.run([*make, "run"], check=True, capture_output=True, text=True, timeout=300)
    print(run.stdout, end="")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/firmware").resolve())
