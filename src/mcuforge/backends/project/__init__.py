"""The firmware-project backend (`--emit project`): the C backend's model as a library, with what
it takes to build it for the target part, run it there and drop it into the usual embedded build
systems. Into `project/`:

- `src/`: the model (`<prefix>.c/.h`) and the kernels it calls, flat (Arduino compiles `src/`);
- `example/`: a firmware that runs one test vector (inputs drawn from a seeded generator, the
  expected outputs from the reference interpreter) and prints PASS or FAIL, the cycles where the
  core counts them and the output bytes; its startup code and a linker script from the target
  profile's memory map, so the part's real flash and SRAM are enforced at link time;
- `CMakeLists.txt` and `cmake/arm-none-eabi.toolchain.cmake` (the core's flags);
- `zephyr/` (module.yml, CMakeLists.txt, Kconfig), `library.json` (PlatformIO) and
  `library.properties` (Arduino) for the library alone; a README saying how to build, flash and run.

Output goes through newlib's `_write`: `-DMCUFORGE_SEMIHOSTING=ON` prints through semihosting (a
debugger, or QEMU: the tests run the firmware on QEMU's netduinoplus2, an STM32F405); otherwise the
user's UART `_write` replaces the one that drops the bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from ...errors import UsageError
from ...ir.interpreter import run
from ...ir.types import DType
from ...version import __version__
from ..base import Backend, write_files
from ..c import ops
from ..c.emit import RUNTIME_RAM, render_c
from ..c.size import CORES

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                          lstrip_blocks=True)
STACK_BYTES = RUNTIME_RAM  # what the linker keeps free for the stack above .bss: the fit check's budget
_DWT = ("cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")  # cores with the DWT cycle counter


@dataclass(frozen=True)
class ProjectOptions:
    fit_check: bool = True  # refuse a model that exceeds the target's SRAM or flash (DoesNotFitError)
    optimize: str = "balanced"  # which layers run specialized kernels (backends/c/tune.py)
    seed: int = 0  # of the test vector's inputs


def _check_target(target):
    if target is None:
        raise UsageError("a firmware project is made for a target part",
                         "pass target=... (CLI: --target NAME; `mcuforge targets` lists them)")
    if target.core not in CORES or target.flash_origin is None or target.sram_origin is None:
        raise UsageError(f"target {target.name} ({target.core}) has no Arm Cortex-M memory map to link a project for",
                         "choose an Arm target from `mcuforge targets`, or add flash_origin and sram_origin "
                         "to your profile .toml")


def _c_array(data: bytes) -> str:
    return ",\n".join("    " + ", ".join(f"0x{b:02x}" for b in data[i:i + 16]) for i in range(0, len(data), 16))


def example_vector(graph, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Inputs drawn from a seeded generator (integers over their type's range, floats standard
    normal) and the reference interpreter's outputs for them."""
    rng = np.random.default_rng(seed)
    xs = []
    for v in graph.inputs:
        dtype = v.dtype.np
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            xs.append(rng.integers(info.min, int(info.max) + 1, v.shape).astype(dtype))
        else:
            xs.append(rng.standard_normal(v.shape).astype(dtype))
    return xs, [np.ascontiguousarray(y) for y in run(graph, *xs)]


def render_project(graph, target, *, prefix: str = "model", plan=None, exits=None, fit_check: bool = True,
                   seed: int = 0, optimize: str = "balanced") -> dict[str, bytes]:
    """File name -> content of the firmware project (see the module docstring)."""
    _check_target(target)
    c_files = render_c(graph, prefix=prefix, target=target, plan=plan, exits=exits, fit_check=fit_check,
                       optimize=optimize)
    library = {f"src/{Path(name).name}": data for name, data in c_files.items()
               if name.startswith("kernels/") or name in (f"{prefix}.c", f"{prefix}.h")}
    xs, ys = example_vector(graph, seed)
    outputs = [dict(index=i, bytes=y.nbytes, data=_c_array(y.tobytes()), ctype=ops.CTYPES[v.dtype],
                    exact=v.dtype != DType.f32) for i, (v, y) in enumerate(zip(graph.outputs, ys))]
    inputs = [dict(index=i, bytes=x.nbytes, data=_c_array(x.tobytes())) for i, x in enumerate(xs)]
    sources = sorted(name.removeprefix("src/") for name in library if name.endswith(".c"))
    ctx = dict(version=__version__, prefix=prefix, PREFIX=prefix.upper(), target=target, sources=sources,
               cpu_flags=" ".join(["-mthumb", *CORES[target.core]]), dsp=target.dsp, fpu=target.fpu,
               flash_origin=target.flash_origin + target.boot_reserved, flash_bytes=target.flash - target.boot_reserved,
               stack_bytes=STACK_BYTES, inputs=inputs, outputs=outputs, cycles=target.core in _DWT,
               compare=not exits)
    templates = {"CMakeLists.txt": "CMakeLists.txt.j2", "cmake/arm-none-eabi.toolchain.cmake": "toolchain.cmake.j2",
                 "example/main.c": "main.c.j2", "example/startup.c": "startup.c.j2",
                 f"example/{target.name}.ld": "linker.ld.j2", "example/test_vector.h": "test_vector.h.j2",
                 "zephyr/module.yml": "module.yml.j2", "zephyr/CMakeLists.txt": "zephyr.cmake.j2",
                 "zephyr/Kconfig": "Kconfig.j2", "library.json": "library.json.j2",
                 "library.properties": "library.properties.j2", "README.md": "README.md.j2"}
    return library | {name: _ENV.get_template(t).render(**ctx).encode() for name, t in templates.items()}


def write(graph, out: Path, ctx, options: ProjectOptions, prefix: str) -> Path:
    options = options or ProjectOptions()
    files = render_project(graph, ctx.target, prefix=prefix, plan=ctx.plan, exits=ctx.exits,
                           fit_check=options.fit_check, seed=options.seed, optimize=options.optimize)
    return write_files(out / "project", files)


BACKEND = Backend("project", write, scratch=ops.scratch_bytes, options=ProjectOptions, overlap=ops.overlap_lag)
