"""The C backend: portable C99 (model.c/.h, the kernels it calls, a Makefile) whose static arena is
the memory plan (emit.py, ops.py, packed.py, exits.py, templates/, kernels/); bench.py and
size.py build it to measure latency, instructions, flash and RAM."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base import Backend
from .emit import emit_c
from .ops import overlap_lag, scratch_bytes


@dataclass(frozen=True)
class COptions:
    fit_check: bool = True  # refuse a model that exceeds the target's SRAM or flash (DoesNotFitError)
    optimize: str = "balanced"  # which layers run specialized kernels: size, balanced, speed (tune.py)


def write(graph, out: Path, ctx, options: COptions, prefix: str) -> Path:
    return emit_c(graph, out / "c", prefix=prefix, target=ctx.target, plan=ctx.plan, exits=ctx.exits,
                  fit_check=options.fit_check, optimize=options.optimize)


BACKEND = Backend("c", write, scratch=scratch_bytes, options=COptions, overlap=overlap_lag)
