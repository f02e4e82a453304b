"""Per-layer kernel variants of the C code and the choice between them (`optimize`).

A layer runs its kernel shared (the library function that every layer of that op calls) or
specialized: the layer gets its own function, which calls an always-inline copy of the kernel
(kernels/mcuforge.h, MCUFORGE_KERNEL) with the layer's `static const` parameters, so that the
compiler folds its shapes, strides and offsets in as constants: loops of known trip counts
unrolled, branches for other shapes dropped. Same source, same bytes out; more code, fewer
instructions. What it buys, measured on the MLPerf Tiny models (Cortex-M4 DSP build, QEMU):
transposes 62% of their instructions, first convolutions on 1-3 channels 12-25% (the im2col loops
unrolled), average pools 20-50%, the other kxk convolutions 0-4%, 1x1 and depthwise convolutions
and fully connected layers within 1%, sometimes worse.

`optimize` picks per layer:
- "size": the smallest code: every layer shared (one copy of each kernel), except those whose
  specialization alone makes the code smaller (no other layer calls that kernel, so the shared
  copy goes) and costs no instructions;
- "balanced" (the default): the layers that save at least BALANCED instructions per inference for
  each byte of code they add;
- "speed": every layer that saves instructions at all.
The savings and code bytes are the measurements of `mcuforge bench --tune` where this model's C
for this core was measured (`measure` in bench.py; cached per model, core and build, see
`cache_file`), else the cost model `estimate`. The candidates are the layers whose kernels are
all defined with MCUFORGE_KERNEL (SPECIALIZABLE: the int8 convolutions, fully connected, pools and
element-wise kernels, and the data movement of copy.c).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ...errors import UsageError
from ...ir.cost import macs
from ...ir.graph import Node
from ...version import __version__

OPTIMIZE = ("size", "balanced", "speed")
BALANCED = 16  # instructions saved per inference per byte of added code, at least
KERNELS_DIR = Path(__file__).with_name("kernels")
# kernel -> its file, for the kernels defined with MCUFORGE_KERNEL (every kernel of such a file is)
SPECIALIZABLE = {name: f.name for f in sorted(KERNELS_DIR.glob("*.c"))
                 for name in re.findall(r"^MCUFORGE_KERNEL\((\w+)\)", f.read_text(), re.MULTILINE)}


@dataclass(frozen=True)
class Variant:
    """What specializing one layer does: instructions per inference saved (negative: it costs),
    bytes of code added, and whether that was measured (`bench --tune`) or estimated."""

    saved: int
    code_bytes: int
    measured: bool


def estimate(n: Node, kind: str) -> Variant:
    """The cost model: the savings of the measurements in the module docstring, per element moved
    (a transpose: 14 of its 24 instructions per element), per MAC (a first convolution on at most
    4 channels: 0.4; other kxk convolutions: 0.02) and per output (pools: 4), against the code of
    one inlined kernel (the sizes of the specialized layer functions in those builds)."""
    if n.op == "transpose" and n.attrs["perm"][-1] != len(n.attrs["perm"]) - 1:
        return Variant(14 * n.output.type.numel, 700, False)
    if kind == "kxk conv" and n.op.startswith("q"):
        few = n.inputs[0].shape[1 if n.attrs["layout"][1] == "C" else -1] <= 4
        return Variant(int((0.4 if few else 0.02) * macs(n)), 1800, False)
    if kind == "pool" and n.op in ("qavg_pool2d", "qmax_pool2d"):
        return Variant(4 * n.output.type.numel, 300, False)
    return Variant(0, 0, False)


def check(optimize: str) -> None:
    if optimize not in OPTIMIZE:
        raise UsageError(f"unknown optimize '{optimize}'", f"one of {', '.join(OPTIMIZE)}")


def pays(v: Variant, optimize: str) -> bool:
    if optimize == "size":
        return v.code_bytes < 0 and v.saved >= 0
    if v.saved <= 0:
        return False
    return optimize == "speed" or v.code_bytes <= 0 or v.saved >= BALANCED * v.code_bytes


def cache_key(code: str, core: str, dsp: bool) -> str:
    """The key of a model's measurements: its C (the shared variant of every layer), the kernels'
    sources, the core and the build; a change to any of them measures again."""
    h = hashlib.sha256(f"{__version__}\n{core}\n{dsp}\n{code}".encode())
    for f in sorted(set(SPECIALIZABLE.values())):
        h.update((KERNELS_DIR / f).read_bytes())
    return h.hexdigest()[:32]


def cache_file(key: str) -> Path:
    """$MCUFORGE_CACHE, else $XDG_CACHE_HOME/mcuforge, else ~/.cache/mcuforge; tune/<key>.json."""
    root = os.environ.get("MCUFORGE_CACHE") or \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mcuforge"
    return Path(root) / "tune" / f"{key}.json"


def load(key: str) -> dict[str, Variant] | None:
    """The cached measurements (layer name -> Variant), or None (none, or unreadable)."""
    try:
        return {k: Variant(**v) for k, v in json.loads(cache_file(key).read_text()).items()}
    except (OSError, ValueError, TypeError):
        return None


def store(key: str, variants: dict[str, Variant]) -> Path:
    path = cache_file(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in variants.items()}, indent=1))
    tmp.replace(path)  # atomic: a concurrent reader sees the old file or the new one
    return path
