"""C backend on Cortex-M: `make cortex-m` builds an ELF for QEMU's MPS2 and MPS3 boards with
arm-none-eabi-gcc, our startup code and linker script and newlib semihosting; `make qemu` runs
it under qemu-system-arm, reading input.bin and writing output.bin. Here: int8 models on the M4,
the M4 with the DSP build, the Cortex-M7 board, the Cortex-M3 (mps2-an385: no DSP extension, no
FPU) and the Cortex-M55 with the Helium kernels (mps3-an547, MVE=1), bit for bit against the
reference interpreter
(every zoo model, float and int8, runs on the M4 in test_c_qemu_zoo.py).

Also checked with arm-none-eabi-size: the RAM of the model's own objects (data + bss) is its
planned arena plus at most a few hundred bytes. The flash/RAM figures, and the instructions of
one inference (SysTick under -icount), are printed (pytest -s); nothing asserts on speed.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from support.cbuild import qemu_make, qemu_run

import mcuforge
from mcuforge import zoo
from mcuforge.backends.c.emit import emit_c
from mcuforge.ir.interpreter import run

# (zoo model, pipeline): channels-last int8 exercises the 1x1 fast path
MODELS = [("ds_cnn", None), ("resnet8", None), ("mobilenet_v1", "float,to-nhwc")]
# (build name, make arguments)
BUILDS = {"m4": ["TARGET=mps2-an386"], "m4_dsp": ["TARGET=mps2-an386", "DSP=1"],
          "m7_dsp": ["TARGET=mps2-an500", "DSP=1"], "m3": ["TARGET=mps2-an385"],
          "m55_mve": ["TARGET=mps3-an547", "MVE=1"]}
ARM = ["arm-none-eabi-gcc", "-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2",
       "-ffunction-sections", "-fdata-sections", "-Ikernels", "-c"]


def _model_sizes(directory) -> tuple[int, int, int]:
    """(text, data, bss) of the model's own objects: model.c and its kernels, compiled for the M4."""
    sources = ["model.c", *sorted(f"kernels/{p.name}" for p in (directory / "kernels").glob("*.c"))]
    objects = []
    for src in sources:
        objects.append(str(directory / (src.replace("/", "_") + ".o")))
        subprocess.run([*ARM, src, "-o", objects[-1]], cwd=directory, check=True)
    sizes = subprocess.run(["arm-none-eabi-size", "-t", *objects], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in sizes.strip().splitlines()[-1].split()[:3])
    return text, data, bss


@pytest.mark.parametrize("name,passes", MODELS, ids=[m[0] for m in MODELS])
def test_qemu(tmp_path, name, passes):
    model, example = zoo.get(name)
    rng = np.random.default_rng(1)
    graph = mcuforge.compile(model, example, emit=(), passes=passes, quantize="int8",
                             calibration=[rng.standard_normal(zoo.MODELS[name].input_shape).astype(np.float32)
                                          for _ in range(4)]).graph
    emit_c(graph, tmp_path / "m4")
    for build in BUILDS:
        if build != "m4":
            shutil.copytree(tmp_path / "m4", tmp_path / build, copy_function=os.link)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(qemu_make, [tmp_path / b for b in BUILDS], BUILDS.values()))

    rng = np.random.default_rng(0)
    xs = [rng.integers(-128, 128, v.shape).astype(np.int8) for v in graph.inputs]
    (want,) = run(graph, *xs)
    for build in BUILDS:
        out, log = qemu_run(tmp_path / build, xs, BUILDS[build][0].removeprefix("TARGET="))
        assert out == want.tobytes(), build
        instructions = int(re.search(r"\((\d+) instructions", log).group(1))
        print(f"\n{name} [{build}]: {instructions:,} instructions per inference")

    # arm-none-eabi-size: the RAM of the model's own objects is its planned arena + a few hundred B
    text, data, bss = _model_sizes(tmp_path / "m4")
    arena = int(re.search(r"MODEL_ARENA_SIZE (\d+)u", (tmp_path / "m4" / "model.h").read_text()).group(1))
    assert arena <= data + bss <= arena + 256
    elf = subprocess.run(["arm-none-eabi-size", str(tmp_path / "m4" / "model.elf")], capture_output=True, text=True,
                         check=True).stdout.splitlines()[-1].split()
    target = mcuforge.load_target("nrf52840")
    print(f"{name}: model flash {text + data:,} B, RAM {data + bss:,} B (arena {arena:,}); whole ELF flash "
          f"{int(elf[0]) + int(elf[1]):,} B, RAM {int(elf[1]) + int(elf[2]):,} B; {target.name} has "
          f"{target.flash:,} B flash, {target.sram:,} B SRAM")
