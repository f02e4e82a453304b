"""Measure a generated C project (a directory `emit_c` wrote): latency on the host, instructions
of one inference on a Cortex-M under QEMU.

- `random_inputs(directory, seed)`: seeded inputs of the shapes and C types in `<prefix>.h`.
- `host_latency(directory, inputs, runs)`: builds `make host` and returns `runs` samples of the
  seconds per inference. One sample is one process running `<prefix>_host -n K`, the mean over K
  back-to-back inferences (K chosen so a sample lasts about 20 ms: single inferences of small
  models are shorter than the clock's resolution). The clock is the process's CPU time, so other
  load on the machine disturbs it less than wall time.
- `qemu_instructions(directory, inputs, board, dsp, mve)`: builds `make cortex-m` and runs the ELF under
  qemu-system-arm as `make qemu` does (`-icount shift=0`): instructions of one inference, deterministic,
  read from SysTick, so a multiple of 40 (the MPS2 boards' 25 MHz tick is 40 instructions at one per
  ns; the MPS3 AN547's 32 MHz tick 31.25).
- `qemu_layers(directory, inputs, board, dsp, mve)`: the instructions of every layer, exactly, from one
  QEMU run of `make profile`'s ELF (a project emitted with `profile=True`). How: the ELF calls a
  marker function before each layer, after the last, and around the call of invoke; QEMU loads
  the project's TCG plugin (qemu_marks.c), which counts every executed instruction outside the
  marker and prints the count at each marker entry. Exact and deterministic, unlike the other
  clocks this QEMU offers a guest: SysTick and the CMSDK timers tick at 25 MHz (40 instructions
  per tick), DWT CYCCNT is not modelled, and semihosting's clocks read the host's time. Each
  difference of consecutive counts includes one marker call (a `bl`), subtracted, so the rows add
  up to the inference from call to return and a layer without code counts 0 (on the M7 build it
  may count 1: the compiler's scheduling can put a neighbour's argument set-up between markers).
  On the Cortex-M55 (`mve`: the Helium kernels) these are instructions, not cycles: a vector
  instruction counts one, whatever beats it takes.
- `tune_layers(graph, plan, target, work)`: `mcuforge bench --tune`: every layer that may run
  specialized (tune.py) measured both ways, from two `qemu_layers` runs (all shared, all
  specialized) and the sizes of the specialized layers' functions in the ELF; the result is
  cached, and the C backend's `optimize` choice reads it from then on.
- `layer_rows(profile, core, clock_mhz, macs)`: a profile as table cells, with estimated cycles
  (instructions x the core's CYCLES_PER_INSTRUCTION: an estimate, QEMU counts instructions, not
  cycles) and milliseconds at a target's clock; `latency_basis` says which apply and why.
Build failures raise RuntimeError with the compiler's output (the generated C should always
build); a missing tool raises UsageError naming it.
"""
from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ...errors import UsageError
from . import tune
from .emit import LAYER_KINDS, CEmitter, emit_c, resolve_plan, tune_key

SAMPLE_SECONDS = 0.02
# Core clock cycles per executed instruction of the generated int8 code, with zero-wait-state
# memory: an estimate (about +-25%) from published figures, not calibrated on a board.
CYCLES_PER_INSTRUCTION = {
    # Cortex-M4 Technical Reference Manual (Arm DDI 0439), "Instruction timings": data processing,
    # MUL/MLA and the DSP multiplies (SMLAD, SMLABB) take 1 cycle, LDR 2 (1 more per further load
    # pipelined back to back), a taken branch 1 + 1..3 for the refill; the kernels' inner loops are
    # about one load in three instructions and one taken branch in ten: ~1.25.
    "cortex-m4": 1.25,
    # The same ISA issued two per cycle where pairs allow: the M4's factor times the ratio of Arm's
    # published CoreMark/MHz, Cortex-M4 3.42 to Cortex-M7 5.01.
    "cortex-m7": 0.85,
}
# QEMU's boards the Makefile builds for (the M3: plain C only, no DSP extension; the M55 alone has MVE)
BOARDS = {"mps2-an386": "cortex-m4", "mps2-an500": "cortex-m7", "mps2-an385": "cortex-m3", "mps3-an547": "cortex-m55"}


def board_for(target) -> str:
    """The QEMU board with `target`'s core (None, or a core without one: the Cortex-M4's)."""
    return next((b for b, core in BOARDS.items() if core == getattr(target, "core", None)), "mps2-an386")
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


def _qemu(directory: Path, elf: str, inputs, board: str, *extra: str, outputs: list | None = None) -> tuple[str, str]:
    """Run `elf` of the project in `directory` on QEMU's `board` as `make qemu` does, in a temporary
    directory (the firmware's input.bin and output.bin live there, so the project's own stay as
    they were); (stdout, QEMU's log) or RuntimeError with both. `outputs`, a list, gets the bytes
    of output.bin appended."""
    if shutil.which("qemu-system-arm") is None:
        raise UsageError("qemu-system-arm is not installed", "install it (e.g. apt-get install qemu-system-arm)")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "input.bin").write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for x in inputs))
        r = subprocess.run(["qemu-system-arm", "-M", board, "-nographic", "-monitor", "none", "-serial", "none",
                            "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel",
                            str(directory / elf), "-D", "qemu.log", *extra], cwd=tmp, capture_output=True,
                           text=True, timeout=600)
        log = (Path(tmp) / "qemu.log").read_text() if (Path(tmp) / "qemu.log").exists() else ""
        if outputs is not None and r.returncode == 0:
            outputs.append((Path(tmp) / "output.bin").read_bytes())
    if r.returncode != 0:
        raise RuntimeError(f"the QEMU run of {directory / elf} failed:\n{r.stdout}{r.stderr}{log}")
    return r.stdout, log


def _build_goals(board: str, dsp: bool, mve: bool = False) -> list[str]:
    """make arguments for `board`, plain, DSP or MVE; -B because the ELF's name does not say which."""
    if board not in BOARDS:
        raise UsageError(f"unknown QEMU board '{board}'", f"one of {', '.join(BOARDS)}")
    if dsp and BOARDS[board] == "cortex-m3":
        raise UsageError(f"{board} is a Cortex-M3: it has no DSP extension", "build it plain (dsp=False)")
    if mve and BOARDS[board] != "cortex-m55":
        raise UsageError(f"{board} is a {BOARDS[board]}: it has no MVE (Helium)", "build MVE for mps3-an547")
    return ["-B", f"TARGET={board}", *(["DSP=1"] if dsp else []), *(["MVE=1"] if mve else [])]


def qemu_outputs(directory, samples, board: str = "mps2-an386", dsp: bool = False, mve: bool = False,
                 stream: bool = False) -> list[bytes]:
    """The output bytes per sample (a list of input arrays) of QEMU's `board` running the ELF
    (built once): one firmware run per sample, or with `stream` one run over all the samples in
    order, a stateful model's state carried from one to the next."""
    directory = Path(directory).resolve()
    make(directory, "cortex-m", *_build_goals(board, dsp, mve), tool="arm-none-eabi-gcc")
    outputs: list[bytes] = []
    if stream:
        _qemu(directory, f"{prefix_of(directory)}.elf", [x for inputs in samples for x in inputs], board,
              outputs=outputs)
        n = len(outputs[0]) // max(len(samples), 1)
        return [outputs[0][i * n:(i + 1) * n] for i in range(len(samples))]
    for inputs in samples:
        _qemu(directory, f"{prefix_of(directory)}.elf", inputs, board, outputs=outputs)
    return outputs


def qemu_instructions(directory, inputs, board: str = "mps2-an386", dsp: bool = False, mve: bool = False) -> int:
    """Instructions of one inference on QEMU's `board` (mps2-an386: Cortex-M4, mps2-an500: M7,
    mps2-an385: M3, mps3-an547: M55), the kernels built plain, (`dsp`) with the DSP instructions or
    (`mve`) with Helium's; SysTick's count (see the module docstring)."""
    directory = Path(directory).resolve()
    make(directory, "cortex-m", *_build_goals(board, dsp, mve), tool="arm-none-eabi-gcc")
    out, _ = _qemu(directory, f"{prefix_of(directory)}.elf", inputs, board)
    found = re.search(r"\((\d+) instructions", out)
    if not found:
        raise RuntimeError(f"the QEMU run in {directory} printed no instruction count:\n{out}")
    return int(found.group(1))


@dataclass(frozen=True)
class LayerCount:
    """One layer of a profile: its node, op, `emit.layer_kind` and instructions (None: not run,
    an early exit returned before it)."""

    index: int
    name: str
    op: str
    kind: str
    instructions: int | None


@dataclass(frozen=True)
class LayerProfile:
    """The instructions of one inference, layer by layer, on `board` (plain, `dsp` or `mve` kernels).
    `entry_exit` is invoke's own share (the arena check, the input and output copies, call and
    return); `whole` counts from main's call of invoke to its return: the sum of the layers and
    entry_exit."""

    board: str
    dsp: bool
    layers: tuple[LayerCount, ...]
    entry_exit: int
    whole: int
    mve: bool = False


def qemu_layers(directory, inputs, board: str = "mps2-an386", dsp: bool = False, mve: bool = False) -> LayerProfile:
    """Per-layer instructions of one inference from one QEMU run (see the module docstring);
    `directory` is a C project emitted with `profile=True`."""
    directory = Path(directory).resolve()
    prefix = prefix_of(directory)
    if not (directory / "layers.tsv").is_file():
        raise UsageError(f"{directory} has no layer markers (it was emitted without profile=True)",
                         "emit it with emit_c(..., profile=True), or bench the model: `mcuforge bench MODEL --qemu`")
    rows = [line.split("\t") for line in (directory / "layers.tsv").read_text().splitlines()
            if not line.startswith("#")]
    make(directory, "profile", *_build_goals(board, dsp, mve), tool="arm-none-eabi-gcc")
    elf = f"{prefix}_profile.elf"
    symbols = subprocess.run(["arm-none-eabi-nm", "-S", elf], cwd=directory, capture_output=True, text=True,
                             check=True).stdout
    address, size = re.search(rf"^([0-9a-f]+) ([0-9a-f]+) T {prefix}_profile_mark$", symbols, re.MULTILINE).groups()
    _, log = _qemu(directory, elf, inputs, board, "-d", "plugin", "-plugin",
                   f"{directory / 'qemu_marks.so'},mark=0x{address},size=0x{size}")
    counts = [int(c) for c in re.findall(r"^mark (\d+)$", log, re.MULTILINE)]
    # markers: before invoke, before each of the len(rows) layers, after the last, after invoke;
    # an early exit returns from inside layer k: then the markers after layer k are missing
    if not 3 <= len(counts) <= len(rows) + 3:
        raise RuntimeError(f"{len(counts)} layer markers counted for {len(rows)} layers in {directory}:\n{log}")
    steps = [b - a - 1 for a, b in itertools.pairwise(counts)]  # minus the marker call (a bl) each
    full = len(counts) == len(rows) + 3
    layer_counts = steps[1:-1] if full else steps[1:-1] + [steps[-1]]  # an exit: its return counted in its layer
    layers = tuple(LayerCount(int(i), name, op, kind, layer_counts[int(i)] if int(i) < len(layer_counts) else None)
                   for i, name, op, kind in rows)
    entry_exit = steps[0] + (steps[-1] if full else 0)
    return LayerProfile(board, dsp, layers, entry_exit, sum(steps), mve)


@dataclass(frozen=True)
class Tuning:
    """What `tune_layers` measured: per candidate layer (index, name, op, kind, instructions
    shared, specialized, bytes of its specialized function), the inference's instructions with
    every layer shared, and the cache file the choice now reads."""

    board: str
    dsp: bool
    rows: tuple[tuple[int, str, str, str, int, int, int], ...]
    whole: int
    cache: Path

    def choice(self, optimize: str) -> tuple[int, int, int]:
        """(layers specialized, instructions of the inference, bytes of code added) under `optimize`."""
        chosen = [r for r in self.rows if tune.pays(tune.Variant(r[4] - r[5], r[6], True), optimize)]
        return len(chosen), self.whole - sum(r[4] - r[5] for r in chosen), sum(r[6] for r in chosen)


def tune_layers(graph, plan, target, work, exits=None) -> Tuning:
    """Measure every layer that may run specialized, shared and specialized, on `target`'s QEMU
    board and build (see the module docstring); cache the result for `optimize`. The code a
    layer's specialization adds is the growth of the ELF's text with that layer alone specialized
    (its function and the clones of helpers the compiler made for its constants). `work`: a
    directory for the builds."""
    board, dsp, mve = board_for(target), bool(getattr(target, "dsp", False)), bool(getattr(target, "mve", False))
    goals = _build_goals(board, dsp, mve)

    def build(variant: str, layers, profile: bool = True) -> Path:
        return emit_c(graph, Path(work) / variant, target=target, plan=plan, exits=exits, profile=profile,
                      fit_check=False, specialized=layers)

    def text(directory: Path) -> int:
        make(directory, "cortex-m", *goals, tool="arm-none-eabi-gcc")
        out = subprocess.run(["arm-none-eabi-size", f"{prefix_of(directory)}.elf"], cwd=directory, capture_output=True,
                             text=True, check=True).stdout
        return int(out.splitlines()[1].split()[0])

    shared_dir, special_dir = build("shared", ()), build("specialized", [n.name for n in graph.nodes])
    xs = random_inputs(shared_dir)
    shared, special = (qemu_layers(d, xs, board, dsp, mve) for d in (shared_dir, special_dir))
    prefix, base = prefix_of(special_dir), text(shared_dir)
    symbols = subprocess.run(["arm-none-eabi-nm", f"{prefix}_profile.elf"], cwd=special_dir, capture_output=True,
                             text=True, check=True).stdout
    candidates = {int(i) for i in re.findall(rf" [tT] {prefix}_layer(\d+)$", symbols, re.MULTILINE)}
    rows = tuple((i, a.name, a.op, a.kind, a.instructions, b.instructions, text(build("one", [a.name], False)) - base)
                 for i, (a, b) in enumerate(zip(shared.layers, special.layers))
                 if i in candidates and a.instructions is not None and b.instructions is not None)
    e = CEmitter(graph, resolve_plan(graph, plan))
    e.lower_all()
    cache = tune.store(tune_key(e, target), {r[1]: tune.Variant(r[4] - r[5], r[6], True) for r in rows})
    return Tuning(board, dsp, rows, shared.whole, cache)


def latency_basis(core: str, target) -> tuple[float | None, str]:
    """(clock in MHz for milliseconds or None, the caption that says how the estimate is made and
    what is missing) for counts of a `core` build on `target` (None: no target given)."""
    cpi = CYCLES_PER_INSTRUCTION.get(core)
    if cpi is None:
        return None, f"no cycle estimate for {core}"
    basis = (f"est. = estimate: cycles = instructions x {cpi} ({core}; see "
             "mcuforge.backends.c.bench.CYCLES_PER_INSTRUCTION)")
    if target is None:
        return None, basis + "; no --target: no clock for milliseconds"
    if target.core != core:
        return None, basis + f"; no milliseconds: the counts are of a {core} build, {target.name} is a {target.core}"
    return target.clock_mhz, basis + f", ms at {target.name}'s {target.clock_mhz} MHz"


@dataclass(frozen=True)
class Latency:
    """A compile's latency estimate on its target (`compile(latency=True)`, Report.latency): the
    per-layer counts of one QEMU run of the board with the target's core (a Cortex-M4 board for
    other cores), the cycles-per-instruction factor and clock that turn them into cycles and
    milliseconds where they apply, and the caption saying how the estimate is made."""

    board: str
    dsp: bool
    profile: LayerProfile
    cycles_per_instruction: float | None
    clock_mhz: float | None
    caption: str

    def cycles(self, instructions: int | None) -> float | None:
        cpi = self.cycles_per_instruction
        return None if cpi is None or instructions is None else instructions * cpi

    def ms(self, instructions: int | None) -> float | None:
        cycles = self.cycles(instructions)
        return None if cycles is None or self.clock_mhz is None else cycles / (self.clock_mhz * 1e3)


def estimate_latency(graph, plan, exits, target) -> Latency:
    """`graph`'s C with layer markers, run once under QEMU on seeded inputs (qemu_layers), as the
    Latency of `target` (on `board_for(target)`; the DSP or MVE build where the target has the extension)."""
    from .emit import emit_c
    board = board_for(target)
    mve = target.mve and BOARDS[board] == "cortex-m55"
    with tempfile.TemporaryDirectory() as tmp:
        c_dir = emit_c(graph, Path(tmp) / "c", plan=plan, exits=exits, profile=True, fit_check=False)
        profile = qemu_layers(c_dir, random_inputs(c_dir, seed=0), board, target.dsp, mve)
    clock, caption = latency_basis(BOARDS[board], target)
    return Latency(board, target.dsp, profile, CYCLES_PER_INSTRUCTION.get(BOARDS[board]), clock,
                   f"one QEMU run on {board} ({'MVE' if mve else 'DSP' if target.dsp else 'plain'} build); {caption}")


class LayerTable(NamedTuple):
    """A LayerProfile as table cells: a row per layer then invoke's share and the total, a row per
    layer kind, and per layer a record (for JSON)."""

    header: list[str]
    rows: list[list[str]]
    kind_header: list[str]
    kind_rows: list[list[str]]
    records: list[dict]


def layer_rows(profile: LayerProfile, core: str, clock_mhz: float | None,
               macs: dict[str, int] | None = None) -> LayerTable:
    """`profile` as a LayerTable: estimated cycles when `core` has a factor, milliseconds when also
    `clock_mhz` (the target's), instructions per MAC when `macs` (node -> MACs) is given."""
    cpi = CYCLES_PER_INSTRUCTION.get(core)
    ms = cpi is not None and clock_mhz is not None

    def cells(instructions, n_macs):
        if instructions is None:
            return ["not run"] + ["-"] * (1 + (macs is not None) + (cpi is not None) + ms)
        return [f"{instructions:,}", *([f"{instructions / n_macs:.2f}" if n_macs else "-"] if macs is not None else []),
                f"{instructions / profile.whole:.1%}", *([f"{instructions * cpi:,.0f}"] if cpi is not None else []),
                *([f"{instructions * cpi / (clock_mhz * 1e3):.3f}"] if ms else [])]

    values = ["instructions", *(["instr./MAC"] if macs is not None else []), "share",
              *(["est. cycles"] if cpi is not None else []), *(["est. ms"] if ms else [])]
    m = macs or {}
    header = ["#", "layer", "op", "kind", *(["MACs"] if macs is not None else []), *values]
    rows, kinds, records = [], {}, []
    for layer in profile.layers:
        n = m.get(layer.name, 0)
        rows.append([str(layer.index), layer.name, layer.op, layer.kind, *([f"{n:,}"] if macs is not None else []),
                     *cells(layer.instructions, n)])
        k = kinds.setdefault(layer.kind, [0, 0, 0])
        k[0], k[1], k[2] = k[0] + 1, k[1] + n, k[2] + (layer.instructions or 0)
        records.append(dict(name=layer.name, op=layer.op, kind=layer.kind, instructions=layer.instructions,
                            est_cycles=None if cpi is None or layer.instructions is None else layer.instructions * cpi,
                            est_ms=layer.instructions * cpi / (clock_mhz * 1e3)
                            if ms and layer.instructions is not None else None))
    blank = [""] * (macs is not None)
    rows.append(["", "(invoke: checks, copies)", "", "", *blank, *cells(profile.entry_exit, 0)])
    rows.append(["", "total", "", "", *([f"{sum(m.values()):,}"] if macs is not None else []),
                 *cells(profile.whole, sum(m.values()))])
    kind_rows = [[kind, str(n), *([f"{k_macs:,}"] if macs is not None else []), *cells(instr, k_macs)]
                 for kind, (n, k_macs, instr) in sorted(kinds.items(), key=lambda kv: LAYER_KINDS.index(kv[0]))]
    return LayerTable(header, rows, ["kind", "layers", *header[4:]], kind_rows, records)
