"""Flash and RAM of a generated C model on its microcontroller, from arm-none-eabi-size.

`measure(c_dir, target, tflite)` compiles `<prefix>.c` and the kernels it uses for the target's
core (-O2, as the Makefile's Cortex-M build) and sums the sections of those objects: flash =
text + data (code, weights, initialized data), RAM = data + bss (the arena, a stateful model's
state buffer and the kernels' state). The startup code, newlib and the caller's own code are not
counted: these are the bytes the model adds to a firmware. A target without an Arm core (the host, an Xtensa part) or no target
is measured for a Cortex-M4, and says so. When the .tflite was emitted too, TFLite Micro's arena
for it (`tflite.runtime.tflm_arena_bytes`, in a subprocess: TFLite Micro may abort) is measured
beside ours.

`kernel_text(c_dir, core, dsp)` is the text of the kernel files alone (the code a kernel change
moves; whole files, before the linker drops the functions the model does not call).

Without arm-none-eabi-gcc (or TFLite Micro) the result carries a note that says what was not
measured and why, shown in the report: never skipped silently.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ...errors import UsageError
from ...ir.cost import human_bytes
from .bench import prefix_of

# Core -> arm-none-eabi-gcc flags (hard float where the core has an FPU; the M0+ and M3 have none).
CORES = {"cortex-m0plus": ["-mcpu=cortex-m0plus", "-mfloat-abi=soft"],
         "cortex-m3": ["-mcpu=cortex-m3", "-mfloat-abi=soft"],
         "cortex-m33": ["-mcpu=cortex-m33", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"],
         "cortex-m4": ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
         "cortex-m7": ["-mcpu=cortex-m7", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"],  # single precision: F7s have no more
         "cortex-m55": ["-mcpu=cortex-m55", "-mfloat-abi=hard"]}
DEFAULT_CORE = "cortex-m4"  # QEMU's mps2-an386, what `make cortex-m` builds


@dataclass
class McuSize:
    """The model's own objects on `core` (bytes), its planned arena, TFLite Micro's, and notes."""

    core: str = ""
    text: int = 0
    data: int = 0
    bss: int = 0
    arena: int = 0
    state: int = 0  # the state buffer of a stateful model, kept between calls
    tflm_arena: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss

    def __str__(self) -> str:
        lines = []
        if self.core:
            lines.append(f"arm-none-eabi-size, {self.core}: flash {self.flash:,} B (text {self.text:,} + data "
                         f"{self.data:,}), RAM {self.ram:,} B (data {self.data:,} + bss {self.bss:,}; "
                         f"planned arena {self.arena:,} B" + (f", state {self.state:,} B" if self.state else "") + ")")
        if self.tflm_arena is not None:
            lines.append(f"TFLite Micro arena for the same model's .tflite: {self.tflm_arena:,} B "
                         f"({human_bytes(self.tflm_arena)})")
        return "\n\n".join(lines + [f"Note: {n}" for n in self.notes])


def measure(c_dir, target=None, tflite=None) -> McuSize:
    """Sizes of the C project in `c_dir` on `target`'s core (see the module docstring)."""
    c_dir = Path(c_dir).resolve()
    prefix = prefix_of(c_dir)
    header = (c_dir / f"{prefix}.h").read_text()
    arena = int(re.search(rf"{prefix.upper()}_ARENA_SIZE (\d+)u", header).group(1))
    state = re.search(rf"{prefix.upper()}_STATE_SIZE (\d+)u", header)
    size, notes = McuSize(arena=arena, state=int(state.group(1)) if state else 0), []
    core = getattr(target, "core", None)
    if core not in CORES:
        notes.append(f"{'no target' if core is None else f'{target.name} has no Arm core ({core})'}: "
                     f"flash and RAM measured for a {DEFAULT_CORE}")
        core = DEFAULT_CORE
    if shutil.which("arm-none-eabi-gcc") and shutil.which("arm-none-eabi-size"):
        sources = [c_dir / f"{prefix}.c", *sorted((c_dir / "kernels").glob("*.c"))]
        with tempfile.TemporaryDirectory() as tmp:
            built = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-mthumb", *CORES[core], "-O2",
                                    "-ffunction-sections", "-fdata-sections", f"-I{c_dir / 'kernels'}", "-c",
                                    *map(str, sources)], cwd=tmp, capture_output=True, text=True)
            out = subprocess.run(["arm-none-eabi-size", "-t", *sorted(str(p) for p in Path(tmp).glob("*.o"))],
                                 capture_output=True, text=True).stdout if built.returncode == 0 else ""
        if out:
            size.core = core
            size.text, size.data, size.bss = (int(v) for v in out.strip().splitlines()[-1].split()[:3])
        else:  # a bug of ours: shown in the report, but the compile's outputs are still written
            notes = [f"flash and RAM on the MCU not measured: arm-none-eabi-gcc failed on the generated C for "
                     f"{core} (please report it): {built.stderr.strip()[:500]}"]
    else:
        notes = ["flash and RAM on the MCU not measured: arm-none-eabi-gcc is not installed "
                 "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"]  # replaces the core's note
    if tflite is not None:  # in a process of its own: TFLite Micro may abort on a file
        from ..tflite.runtime import isolated
        try:
            size.tflm_arena = isolated("tflm_arena_bytes", tflite)
        except RuntimeError as e:
            notes.append(f"TFLite Micro's arena not measured: {e}")
    size.notes = tuple(notes)
    return size


def kernel_text(c_dir, core: str = DEFAULT_CORE, dsp: bool = False, mve: bool = False) -> int:
    """Text bytes of the project's kernels/*.c on `core`, compiled as the Makefile's Cortex-M build
    does (-O2, `dsp`: -DMCUFORGE_USE_DSP, `mve`: with -DMCUFORGE_USE_MVE too), summed by
    arm-none-eabi-size; RuntimeError if they do not build."""
    c_dir = Path(c_dir).resolve()
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size"):
        if shutil.which(tool) is None:
            raise UsageError(f"{tool} is not installed", "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi")
    with tempfile.TemporaryDirectory() as tmp:
        built = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-mthumb", *CORES[core], "-O2", "-ffunction-sections",
                                "-fdata-sections", *(["-DMCUFORGE_USE_DSP"] if dsp or mve else []),
                                *(["-DMCUFORGE_USE_MVE"] if mve else []),
                                f"-I{c_dir / 'kernels'}", "-c", *map(str, sorted((c_dir / "kernels").glob("*.c")))],
                               cwd=tmp, capture_output=True, text=True)
        if built.returncode != 0:
            raise RuntimeError(f"the kernels of {c_dir} do not build for {core}:\n{built.stderr}")
        out = subprocess.run(["arm-none-eabi-size", "-t", *sorted(str(p) for p in Path(tmp).glob("*.o"))],
                             capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])
