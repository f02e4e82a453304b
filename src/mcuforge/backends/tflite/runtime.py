"""Run .tflite bytes in LiteRT and in TFLite Micro, and measure TFLite Micro's arena.

For tests and benchmarks: `run_litert` and `run_tflm` take one numpy array per model input and
return the outputs (`run_tflm_frames`: per frame of a sequence, a stateful model's state carried); `tflm_arena_bytes` is the arena TFLite Micro's allocator used (its recording
allocator's "Arena allocation total": planned tensors plus persistent data; `tflm_arena_usage`
splits it). TFLite Micro comes from the `tflite-micro` package (the `test` extra).

Where the compiler itself calls a runtime on the user's behalf (the compile report's TFLite Micro
arena), it goes through `isolated`: TFLite Micro aborts or crashes the process on some files
(a failed check in a kernel's Prepare, a corrupt buffer), and the user's process must survive it.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile

import numpy as np

from ...errors import UsageError


def _tflm():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise UsageError("TFLite Micro's Python interpreter is not installed",
                         "pip install tflite-micro (or mcuforge[test])") from None
    return runtime


LITERT_KERNELS = {"default": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "reference": "BUILTIN_REF"}


def run_litert(data: bytes, *inputs, kernels: str = "default") -> list[np.ndarray]:
    """Outputs of LiteRT's interpreter with one of its kernel sets: "default" (its optimized
    kernels, XNNPACK included, as users run it), "builtin" (its optimized kernels without XNNPACK:
    ruy and its own) or "reference" (its reference kernels)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    it = Interpreter(model_content=data, experimental_op_resolver_type=getattr(OpResolverType, LITERT_KERNELS[kernels]))
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs, strict=True):
        it.set_tensor(d["index"], np.asarray(x, d["dtype"]))
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def _interpreter(data: bytes):
    """TFLite Micro's interpreter on an arena surely large enough: every activation tensor at 8
    bytes an element without any reuse, plus room for its bookkeeping."""
    from ai_edge_litert import schema_py_generated as fb
    model = fb.Model.GetRootAs(data)
    sub = model.Subgraphs(0)
    tensors = [sub.Tensors(i) for i in range(sub.TensorsLength())]
    activations = sum(int(np.prod(t.ShapeAsNumpy())) * 8 for t in tensors if not model.Buffers(t.Buffer()).DataLength())
    return _tflm().Interpreter.from_bytes(data, arena_size=activations + (1 << 20))


def run_tflm(data: bytes, *inputs) -> list[np.ndarray]:
    """Outputs of TFLite Micro's interpreter (its reference kernels)."""
    return run_tflm_frames(data, [inputs])[0]


def run_tflm_frames(data: bytes, frames) -> list[list[np.ndarray]]:
    """Outputs of one TFLite Micro interpreter invoked once per frame (a sequence of input lists),
    in order: a stateful model's resource variables are carried from one frame to the next."""
    it, results = _interpreter(data), []
    for inputs in frames:
        for i, x in enumerate(inputs):
            it.set_input(np.asarray(x, it.get_input_details(i)["dtype"]), i)
        it.invoke()
        results.append([it.get_output(i).copy() for i in range(_io_counts(data)[1])])
    return results


def tflm_arena_usage(data: bytes) -> dict[str, int]:
    """TFLite Micro's arena use for `data` after one inference, from its recording allocator's
    report (printed to stderr): "total", "head" (the planned tensors and scratch buffers) and
    "tail" (persistent data: tensor structs, kernel parameters) in bytes."""
    it = _interpreter(data)
    for i in range(_io_counts(data)[0]):
        d = it.get_input_details(i)
        it.set_input(np.zeros(d["shape"], d["dtype"]), i)
    it.invoke()
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            it.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        report = f.read().decode(errors="replace")
    usage = {k: int(v) for k, v in re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", report)}
    if set(usage) != {"total", "head", "tail"}:
        raise RuntimeError(f"unexpected TFLite Micro allocation report:\n{report}")
    return usage


def tflm_arena_bytes(data: bytes) -> int:
    """Bytes of arena TFLite Micro uses for `data`: the total of `tflm_arena_usage`."""
    return tflm_arena_usage(data)["total"]


def _io_counts(data: bytes) -> tuple[int, int]:
    from ai_edge_litert import schema_py_generated as fb
    sub = fb.Model.GetRootAs(data).Subgraphs(0)
    return sub.InputsLength(), sub.OutputsLength()


def isolated(function: str, path, timeout: float = 300):
    """`function(bytes of the file at path)` of this module, run in a fresh Python process; its
    result (JSON) is returned. RuntimeError says how the process ended when it did not return:
    the signal that killed it, the timeout, or the error it printed."""
    code = ("import json, sys\nfrom mcuforge.backends.tflite import runtime\n"
            f"print(json.dumps(runtime.{function}(open(sys.argv[1], 'rb').read())))")
    try:
        done = subprocess.run([sys.executable, "-c", code, os.fspath(path)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{function} did not finish in {timeout:.0f} s") from None
    if done.returncode < 0:
        raise RuntimeError(f"{function} was killed by {signal.Signals(-done.returncode).name}")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"{function} failed: {last[:300]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
