"""What a backend is to `compile`: a name, the passes the graph must have been through before it
emits (its legalization), the scratch its kernels need beside the tensors (for the memory plan),
its typed options, and the function that writes its files.

`compile` adds every emitted backend's legalization to the pipeline, before the schedule and the
memory plan (`passes.pipelines.with_legalization`), so the plan is made for the graph the backend
emits and the pass manager, not the backend, runs those passes. A backend called directly on a
graph that has not been through them (`to_tflite(graph)`) gets them the same way, through
`legalized` and `plan_for`, on a copy.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..passes.base import PassContext
from ..passes.manager import PassManager

if TYPE_CHECKING:
    from ..analysis.memory import MemoryPlan
    from ..ir.graph import Graph, Node


@dataclass(frozen=True)
class Backend:
    """`emit(graph, directory, ctx, options, prefix) -> path written`: `ctx` is the pipeline's
    PassContext (target, plan, exits, the QDQ graph), `options` an instance of `options` (or None)."""

    name: str
    emit: Callable[..., Path]
    legalize: tuple[tuple[str, dict], ...] = ()
    scratch: Callable[[Node], int] | None = None
    options: type | None = None
    overlap: Callable[[Node], int | None] | None = None  # how far an input may overlap its node's output


def legalized(graph: Graph, steps) -> Graph:
    """A copy of `graph` that the pipeline `steps` (a backend's legalization) ran over."""
    graph = graph.clone()
    PassManager(list(steps)).run(graph, PassContext())
    return graph


def plan_for(graph: Graph, scratch: Callable[[Node], int] | None, alignment: int = 16,
             overlap: Callable[[Node], int | None] | None = None) -> MemoryPlan:
    """The memory-plan pass's plan of `graph` in its node order, with `scratch` per node (and a
    backend's `overlap` rule)."""
    ctx = PassContext(scratch=scratch, overlap=overlap)
    PassManager([("memory-plan", {"alignment": alignment})]).run(graph, ctx)
    return ctx.plan


def umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_files(directory, files: dict[str, bytes]) -> Path:
    """Write `files` (relative name -> content) under `directory`, creating folders; returns it."""
    directory = Path(directory)
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return directory


def write_atomic(path, data: bytes) -> str:
    """Write `data` to `path` through a temporary file beside it, so a failure leaves nothing.
    The file gets the permissions the umask gives a new file (mkstemp's would be 0600)."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path
