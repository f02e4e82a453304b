"""The C backend: portable C99 (model.c/.h, the kernels it calls, a Makefile) whose static arena is
the memory plan (emit.py, ops.py, packed.py, exits.py, templates/, kernels/); bench.py and
size.py build it to measure latency, instructions, flash and RAM."""
from __future__ import annotations

from pathlib import Path

from ..base import Backend
from .emit import emit_c
from .ops import scratch_bytes


def write(graph, out: Path, ctx, options, prefix: str) -> Path:
    return emit_c(graph, out / "c", prefix=prefix, target=ctx.target, plan=ctx.plan, exits=ctx.exits)


BACKEND = Backend("c", write, scratch=scratch_bytes)
