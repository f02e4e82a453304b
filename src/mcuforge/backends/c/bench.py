"""Measure a generated C project (a directory `emit_c` wrote): latency on the host, instructions
of one inference on a Cortex-M under QEMU.

- `random_inputs(directory, seed)`: seeded inputs of the shapes and C types in `<prefix>.h`.
- `host_latency(directory, inputs, runs)`: builds `make host` and returns `runs` samples of the
  seconds per inference. One sample is one process running `<prefix>_host -n K`, the mean over K
  back-to-back inferences (K chosen so a sample lasts about 20 ms: single inferences of small
  models are shorter than the clock's resolution). The clock is the process's CPU time, so other
  load on the machine disturbs it less than wall time.
- `qemu_instructions(directory, inputs, board)`: builds `make cortex-m` and runs the ELF under
  qemu-system-arm as `make qemu` does (`-icount shift=0`): instructions of one inference, deterministic.
Build failures raise RuntimeError with the compiler's output (the generated C should always
build); a missing tool raises UsageError naming it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ...errors import UsageError

SAMPLE_SECONDS = 0.02
_NUMPY = {"int8_t": np.int8, "uint8_t": np.uint8, "int16_t": np.int16, "int32_t": np.int32, "float": np.float32}


def prefix_of(directory) -> str:
    """The prefix of the C project in `directory`: the stem of its one top-level header."""
    headers = sorted(Path(directory).glob("*.h"))
    if len(headers) != 1:
        raise UsageError(f"{directory} is not a C project written by mcuforge (expected one <prefix>.h)",
                         "pass the c/ directory of `mcuforge compile --emit c`, or a model")
    return headers[0].stem


def random_inputs(directory, seed: int = 0) -> list[np.ndarray]:
    """Seeded random inputs as `<prefix>.h` declares them: integers over the type's range, floats N(0, 1)."""
    header = (Path(directory) / f"{prefix_of(directory)}.h").read_text()
    rng, xs = np.random.default_rng(seed), []
    for ctype, shape in re.findall(r'/\* input \d+ "[^"]*": (\w+) \[([\d, ]*)\]', header):
        dims, dt = [int(d) for d in shape.split(",") if d.strip()], _NUMPY[ctype]
        if np.issubdtype(dt, np.integer):
            xs.append(rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, dims, endpoint=True).astype(dt))
        else:
            xs.append(rng.standard_normal(dims).astype(dt))
    return xs


def make(directory, *goals: str, tool: str = "make") -> None:
    """Run `make goals` in `directory`; RuntimeError with its output on failure."""
    for needed in (tool, "make"):
        if shutil.which(needed) is None:
            raise UsageError(f"{needed} is not installed", f"install it (e.g. apt-get install {needed})")
    r = subprocess.run(["make", "-s", *goals], cwd=directory, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"make {' '.join(goals)} failed in {directory}:\n{r.stdout}{r.stderr}")


def host_latency(directory, inputs, runs: int = 20) -> list[float]:
    """`runs` samples of seconds per inference of the host build (see the module docstring)."""
    directory, data = Path(directory), b"".join(np.ascontiguousarray(x).tobytes() for x in inputs)
    make(directory, "host", tool="cc")
    binary = str(directory / f"{prefix_of(directory)}_host")

    def sample(k: int) -> float:
        r = subprocess.run([binary, "-n", str(k)], input=data, capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(f"{binary} failed: {r.stderr.decode(errors='replace')}")
        return float(re.search(rb"([\d.]+) s per inference", r.stderr).group(1))

    k = 2
    while k < 1 << 20 and sample(k) * k < SAMPLE_SECONDS / 4:
        k *= 4
    k = max(2, round(SAMPLE_SECONDS / max(sample(k), 1e-9)))
    return [sample(k) for _ in range(runs)]


def qemu_instructions(directory, inputs, board: str = "mps2-an386") -> int:
    """Instructions of one inference on QEMU's `board` (mps2-an386: Cortex-M4, mps2-an500: M7).
    QEMU runs in a temporary directory (the firmware's input.bin and output.bin live there), so the
    project's own input.bin and output.bin stay as they were."""
    directory = Path(directory).resolve()
    make(directory, "cortex-m", f"TARGET={board}", tool="arm-none-eabi-gcc")
    if shutil.which("qemu-system-arm") is None:
        raise UsageError("qemu-system-arm is not installed", "install it (e.g. apt-get install qemu-system-arm)")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "input.bin").write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for x in inputs))
        r = subprocess.run(["qemu-system-arm", "-M", board, "-nographic", "-monitor", "none", "-serial", "none",
                            "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel",
                            str(directory / f"{prefix_of(directory)}.elf")], cwd=tmp, capture_output=True, text=True,
                           timeout=600)
    found = re.search(r"\((\d+) instructions", r.stdout)
    if r.returncode != 0 or not found:
        raise RuntimeError(f"the QEMU run in {directory} failed:\n{r.stdout}{r.stderr}")
    return int(found.group(1))
