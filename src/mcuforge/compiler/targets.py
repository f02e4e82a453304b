"""Microcontroller profiles kept as data: one TOML file per target under `targets/`.

A profile gives the core, clock (and where that figure comes from), SRAM and flash sizes, the
instruction-set features kernels may use and, for parts a firmware project can be made for, the
memory map (and a QEMU board that emulates the part, where there is one). Users add a profile by passing a path to their own TOML
file, or override sizes on the command line (`--sram 96K --flash 512K`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import tomllib

from ..errors import UsageError

_DIR = Path(__file__).with_name("targets")
_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2}


def parse_size(text: str | int) -> int:
    """`"96K"` -> 98304; `"2M"` -> 2097152; plain ints pass through."""
    if isinstance(text, int):
        return text
    s = str(text).strip().upper().removesuffix("B").removesuffix("I")
    unit = s[-1] if s and s[-1] in _UNITS else ""
    try:
        return int(float(s[: len(s) - len(unit)]) * _UNITS[unit])
    except ValueError:
        raise UsageError(f"cannot read size '{text}'", "write sizes like 262144, 256K or 2M") from None


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    core: str
    clock_mhz: int
    sram: int
    flash: int
    fpu: bool = False
    dsp: bool = False
    mve: bool = False
    clock_source: str = ""  # the datasheet (or "nominal") clock_mhz is taken from: latency estimates use it
    # the memory map a flashable project (--emit project) links for: where flash and SRAM start,
    # the bytes at the start of flash a boot stage owns, the document it comes from
    flash_origin: int | None = None
    sram_origin: int | None = None
    boot_reserved: int = 0
    memory_source: str = ""
    qemu_machine: str = ""  # a QEMU board with this part, which runs the project's firmware

    def with_sizes(self, sram=None, flash=None) -> "Target":
        return dataclasses.replace(self, sram=parse_size(sram) if sram else self.sram,
                                   flash=parse_size(flash) if flash else self.flash)


def _load(path: Path) -> Target:
    try:
        data = tomllib.loads(path.read_text())
        data["sram"], data["flash"] = parse_size(data["sram"]), parse_size(data["flash"])
        return Target(**{"name": path.stem, **data})
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as e:
        raise UsageError(f"target file {path} is not a valid profile: {e}",
                         f"see the bundled profiles in {_DIR} for the fields") from None


def list_targets() -> list[Target]:
    return [_load(p) for p in sorted(_DIR.glob("*.toml"))]


def load_target(name_or_path: "str | Target") -> Target:
    """A bundled profile by name, or a profile TOML file by path."""
    if isinstance(name_or_path, Target):
        return name_or_path
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.exists():
        return _load(p)
    bundled = _DIR / f"{name_or_path}.toml"
    if bundled.exists():
        return _load(bundled)
    raise UsageError(f"unknown target '{name_or_path}'",
                     f"known targets: {', '.join(t.name for t in list_targets())}; or pass a .toml profile")
