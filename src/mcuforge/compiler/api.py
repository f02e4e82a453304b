"""The public entry points: `compile` (load, run the pipeline, write the backends' files) and what
it returns (`Artifact`), and thin wrappers over the frontends that keep `import mcuforge` free of
torch and onnx until they are used."""
from __future__ import annotations

import os
import shutil
import signal
import stat
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backends.base import umask
from ..errors import (
    UsageError,
)
from ..ir.graph import Graph
from ..ir.types import DType


def trace(model, example_inputs, name=None) -> Graph:
    """torch.nn.Module + example inputs -> Graph (torch.fx symbolic trace)."""
    from ..frontends.fx import trace as _trace
    return _trace(model, example_inputs, name)


def to_torch(graph: Graph):
    """A float Graph -> torch.fx.GraphModule with real parameters (fine-tune it, trace it again)."""
    from ..frontends.to_torch import to_torch as _to_torch
    return _to_torch(graph)


def qat(model, example_inputs=None, *, calibration, scheme="int8", weights=None, **options):
    """`model` -> a torch module for exact quantization-aware training; `compile` it when trained
    (see `mcuforge.compiler.qat`)."""
    from .qat import qat as _qat
    return _qat(model, example_inputs, calibration=calibration, scheme=scheme, weights=weights, **options)


def distill(teacher, student, data, epochs=1, T=4.0, alpha=0.5, **options) -> list[float]:
    """Fine-tunes `student` against `teacher` on `data` (see `mcuforge.compiler.distill`)."""
    from .distill import distill as _distill
    return _distill(teacher, student, data, epochs, T, alpha, **options)


def _qat_graph(model, io: str, quantize, calibration, weights) -> tuple[Graph | None, Graph | None]:
    """The integer graph of a QAT module and its QDQ form (Nones for any other model)."""
    if "torch" not in sys.modules:  # no torch, no QAT module: an ONNX or TFLite compile stays torch-free
        return None, None
    from ..passes.base import PassContext
    from .qat import QAT
    if not isinstance(model, QAT):
        return None, None
    if quantize is not None or calibration is not None or weights is not None:
        raise UsageError("a QAT module is quantized already: its scheme, ranges and weight format were chosen by "
                         "mcuforge.qat", "compile it without quantize, calibration and weights")
    ctx = PassContext()
    return model.integer_graph(io, ctx), ctx.qdq_graph


def load_onnx(path_or_model, input_shapes=None) -> Graph:
    """An ONNX file or ModelProto -> Graph."""
    from ..frontends.onnx import load_onnx as _load
    return _load(path_or_model, input_shapes=input_shapes)


def load_tflite(path_or_bytes) -> Graph:
    """A .tflite file (float or int8) or its bytes -> Graph."""
    from ..frontends.tflite import load_tflite as _load
    return _load(path_or_bytes)


def load_target(name_or_path):
    from .targets import load_target as _load
    return _load(name_or_path)


def list_targets():
    from .targets import list_targets as _list
    return _list()


@dataclass
class Artifact:
    """What `compile` made: the final graph, the report, the files written, the pass context."""

    graph: Graph
    report: object
    files: dict = field(default_factory=dict)
    ctx: object = None
    target: object = None

    @property
    def plan(self):
        """The MemoryPlan (arena_bytes, lower_bound_bytes, algorithm, offsets), if one was made."""
        return self.ctx.plan if self.ctx is not None else None

    def run(self, *inputs) -> list[np.ndarray]:
        """Run the compiled graph in the reference interpreter (numpy or torch inputs)."""
        from ..ir.interpreter import run
        arrays = [x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x) for x in inputs]
        return run(self.graph, *arrays)

    def session(self):
        """An `interpreter.Session` of the compiled graph: call it frame after frame, its states
        (a streaming model's) carried over; `reset()` starts again."""
        from ..ir.interpreter import Session
        return Session(self.graph)


def compile(model, example_inputs=None, *, target=None, emit=("onnx",), out_dir=None, passes=None,
            debug=False, instrumentations=(), input_shapes=None, quantize=None, calibration=None,
            observer="minmax", io="int8", prefix="model", weights=None, exits=None,
            tflite_offline_plan=None, keep_float=(), keep_int16=(), auto_mixed=None, mixed="float",
            onnx="qdq", per_channel=True, fit_check=True, prune=None, latency=False, state=None,
            optimize="balanced") -> Artifact:
    """Trace or load `model`, run the pipeline, and write the requested outputs.

    `model` is an nn.Module (with `example_inputs`), a Graph, an `.onnx` path, `file.py:factory`,
    `zoo:NAME`, or a module from `mcuforge.qat` (its integer graph, with its trained parameters). `passes` is a pipeline name ("float"), a textual spec ("fold-bn,fuse") or a
    list; None runs the default pipeline. `emit` names backends; files go to `out_dir`, written
    atomically (on failure nothing is left there). `debug=True` verifies the IR after every pass.
    `quantize="int8"|"int16x8"` adds calibrated quantization after the float passes: it needs
    `calibration` data (see `analysis.calibrate`); `observer` picks the range estimator;
    `per_channel=False` quantizes weights per tensor (TFLite Micro then keeps no per-channel
    multipliers in its arena, 8 B per output channel); `io="int8"` makes the model's inputs and
    outputs integer, "float" keeps them float. The onnx backend writes a quantized model in its
    QDQ form, or with `onnx="integer"` the integer model itself in exact integer ONNX arithmetic
    that onnxruntime runs bit-exactly like the interpreter (a float model: the float export either
    way; docs/numerics.md). Mixed precision (int8 only): `keep_float` / `keep_int16` name layers to
    keep float / run int16x8, `auto_mixed=dB` keeps the most sensitive layers at `mixed` ("float"
    or "int16x8") while each gains that much output SQNR (`passes.quantize`). `prefix` names the
    outputs (model.onnx, model.c, ...) and the C backend's symbols (model_invoke), so that two
    models can share one firmware.
    `weights` (with `quantize`) compresses the integer layers' weights into one of
    `passes.compress_weights.FORMATS` ("pow2", "binary", "ternary", "kmeans2".."kmeans8",
    "int4g32"/"int4g64"/"int4g128"; docs/numerics.md, "Compressed weights").
    `exits={"exit1": 0.9, "out": None}` makes an early-exit model: the graph outputs, in the order
    tried, with confidence thresholds; the C code returns at the first confident one (see
    `mcuforge.ir.early_exit`). `tflite_offline_plan` says whether the .tflite carries our memory
    plan as TFLite Micro's offline plan (None: when the memory-plan pass ran; False: TFLite
    Micro plans itself; True: planned for the file even without the pass).
    `prune=0.5` (or {layer: fraction}) removes that fraction of the channels of every channel
    group after the float passes (the prune-channels pass; `art.ctx.pruning` has its table).
    With a `target`, a model whose arena exceeds its SRAM or whose weights exceed its flash raises
    DoesNotFitError before anything is written, whatever is emitted (the C backend then also
    counts its runtime RAM and kernel code); `fit_check=False` writes the files anyway.
    `latency=True` (with a target) runs the model's C once under QEMU with markers between layers
    and adds each layer's estimated cycles and milliseconds at the target's clock to the report
    (`backends.c.bench.estimate_latency`: an estimate, instructions times a per-core factor).
    `optimize` ("size", "balanced", "speed") trades the C code's flash for speed: which layers run
    kernels specialized with their constants (`backends.c.tune`; measured by `mcuforge bench --tune`).
    `state={"h_in": "h_out"}` makes input h_in a state fed back from output h_out (a hidden state
    the model takes and returns; `frontends.load.with_states`): `art.session()` and the C code
    carry it from call to call. A .tflite file's resource variables are states without it.
    """
    from ..backends import get as backend
    from ..backends.c.tune import check as check_optimize
    from ..backends.onnx import OnnxOptions
    from ..frontends.load import load_model
    from ..passes.base import PassContext
    from ..passes.manager import PassManager
    from ..passes.pipelines import resolve, with_legalization, with_pruning
    from .html_report import render_html
    from .report import Report
    check_optimize(optimize)
    emit = (emit,) if isinstance(emit, str) else tuple(emit or ())
    backends = {name: backend(name) for name in emit}
    options = {"onnx": OnnxOptions(format=onnx)}
    for name in ("c", "project"):
        if name in backends:
            options[name] = backends[name].options(fit_check=fit_check, optimize=optimize)
    if "tflite" in backends:
        options["tflite"] = backends["tflite"].options(offline_plan=tflite_offline_plan)
    if emit and out_dir is None:
        raise UsageError("emitting files needs out_dir", "pass out_dir=... (CLI: -o DIR), or emit=()")
    tgt = load_target(target) if target is not None else None
    def stage(name):
        for h in instrumentations:
            h.stage(name)

    stage("load")
    graph, qdq = _qat_graph(model, io, quantize, calibration, weights)
    graph = graph if graph is not None else load_model(model, example_inputs, input_shapes=input_shapes, state=state)
    pipeline = resolve(passes, emit)
    if prune is not None:
        pipeline = with_pruning(pipeline, prune)
    for b in backends.values():  # what the backends need the graph to be, before the schedule and the plan
        pipeline = with_legalization(pipeline, b.legalize)
    if quantize is not None:
        from ..passes.pipelines import with_quantization
        pipeline = with_quantization(pipeline, quantize, io, weights, calibration=calibration, observer=observer,
                                     keep_float=tuple(keep_float), keep_int16=tuple(keep_int16), auto_mixed=auto_mixed,
                                     mixed=mixed, per_channel=per_channel)
    elif calibration is not None or weights is not None:
        raise UsageError("calibration data or compressed weights given without quantize",
                         "pass quantize='int8' (CLI: --quantize int8)")
    if exits:  # scheduled for by the exit-order pass, tested by the C code
        from ..ir.early_exit import resolve as resolve_exits
        from ..passes.pipelines import with_exit_order
        exits, pipeline = resolve_exits(graph, exits), with_exit_order(pipeline)
    pm = PassManager(pipeline, debug=debug, instrumentations=list(instrumentations))
    # The plan reserves the kernel scratch of the backend whose arena it is: the C code's, else the
    # .tflite file's (TFLite Micro follows it); the other backend checks the plan covers it.
    planned = next((backends[b] for b in PLANNED_FOR if b in backends), None)
    ctx = PassContext(target=tgt, debug=debug, exits=exits or None, scratch=planned and planned.scratch,
                      overlap=planned and planned.overlap, qdq_graph=qdq)
    ctx = pm.run(graph, ctx)
    report = Report.build(graph, pm.records, ctx.missed, ctx.stats, quant=ctx.quant, plan=ctx.plan)
    if tgt is not None and fit_check and not {"c", "project"} & set(backends):  # theirs adds runtime and code
        from ..analysis.fit import check_fit
        is_float = any(v.dtype == DType.f32 for n in graph.nodes for v in n.outputs)
        check_fit(tgt, ctx.plan, report.flash_bytes, is_float=is_float)
    if latency:
        if tgt is None:
            raise UsageError("a latency estimate is made for a target", "pass target=... (CLI: --target NAME)")
        from ..backends.c.bench import estimate_latency
        stage("estimate the latency (one QEMU run with layer markers)")
        report.latency = estimate_latency(graph, ctx.plan, ctx.exits, tgt)
    art = Artifact(graph, report, ctx=ctx, target=tgt)
    if emit:
        written = {}
        with atomic_dir(out_dir) as tmp:
            for name, b in backends.items():
                stage(f"emit {name}")
                written[name] = b.emit(graph, tmp, ctx, options.get(name), prefix)
            if "c" in emit:  # flash and RAM of the model's objects, built for the target's core
                from ..backends.c.size import measure
                stage("measure the C build (arm-none-eabi-size)")
                report.mcu = measure(written["c"], tgt, written.get("tflite"))
            written["report_md"] = tmp / "report.md"
            written["report_md"].write_text(report.to_markdown())
            written["report"] = tmp / "report.html"
            written["report"].write_text(render_html(report, ctx.plan, tgt))
        art.files = {k: Path(out_dir) / p.relative_to(tmp) for k, p in written.items()}
    return art


# The backends whose kernels' scratch the memory plan reserves, in order of preference (one arena).
PLANNED_FOR = ("c", "project", "tflite")


class atomic_dir:
    """Context manager: yields a fresh temporary directory beside `path` and moves it to `path`
    only when the block succeeds, replacing an earlier output directory; on failure (Ctrl-C
    included) it is removed. The replacement holds a lock on the parent directory, so compiles
    into the same `path` at once replace it one after the other, each with a whole output; Ctrl-C
    waits until the replacement or the removal is done, so neither is left half-way."""

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        try:  # one look (another compile may be replacing the directory right now)
            is_dir = stat.S_ISDIR(self.path.stat().st_mode)
        except OSError:
            is_dir = True  # absent (or unreadable: mkdtemp below says so)
        if not is_dir:
            raise UsageError(f"output path {self.path} exists and is not a directory",
                             "choose another -o/out_dir, or remove the file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
            self.tmp.chmod(0o777 & ~umask())  # what the umask gives a new directory (mkdtemp's is 0700)
        except OSError as e:
            raise UsageError(f"cannot write the output directory {self.path}: {e.strerror}",
                             "choose a directory you can write to, whose parents are directories") from None
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        with _sigint_held():
            if exc_type is None:
                self._replace()
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def _replace(self):
        import fcntl
        old = self.path.with_name(self.tmp.name + ".old")
        lock = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.path.is_dir():
                self.path.rename(old)
            self.tmp.rename(self.path)
        except OSError as e:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise UsageError(f"cannot replace the output directory {self.path}: {e.strerror}",
                             "check that nothing else writes there") from None
        finally:
            os.close(lock)  # and with it the lock
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _sigint_held():
    """SIGINT (Ctrl-C) held back in this thread while the block runs, delivered after it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
