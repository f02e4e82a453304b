"""Validate the generated C against the original model on the user's own samples (X-CUBE-AI's
`validate`): the original runs in its own framework (torch for a module, onnxruntime for an
.onnx file, LiteRT for a .tflite file, in a subprocess: it may abort), the compiled model runs as
the generated C built for the host (`on="host"`) or for a Cortex-M under QEMU (`on="qemu"`, one
firmware run per sample), and the two are compared per output: max and mean absolute error, SQNR,
top-1 agreement, and accuracy against labels when given. Integer outputs are dequantized with the
output's scale and zero point before comparing; float samples are quantized with the input's.

`thresholds` (min_sqnr dB, min_top1 fraction, max_error) make `ValidationReport.passed` false when
one output misses them; the CLI then exits 5, so a CI job can gate on it.
"""
from __future__ import annotations

import math
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError


@dataclass
class OutputStats:
    name: str
    max_error: float
    mean_error: float
    sqnr_db: float
    top1: float | None  # fraction of samples whose argmax (last axis) agrees; None for one-element outputs
    accuracy: tuple[float, float] | None = None  # (original, generated C) against the labels


@dataclass
class ValidationReport:
    samples: int
    on: str
    outputs: list[OutputStats]
    failures: list[str] = field(default_factory=list)
    worst_layers: list[tuple[str, str, float]] = field(default_factory=list)  # (layer, op, SQNR dB)

    @property
    def passed(self) -> bool:
        return not self.failures

    def rows(self) -> list[list[str]]:
        def acc(o):
            return "-" if o.accuracy is None else f"{o.accuracy[0]:.2%} / {o.accuracy[1]:.2%}"
        return [[o.name, f"{o.max_error:.4g}", f"{o.mean_error:.4g}", f"{o.sqnr_db:.1f}",
                 "-" if o.top1 is None else f"{o.top1:.2%}", acc(o)] for o in self.outputs]

    HEADER = ["output", "max |error|", "mean |error|", "SQNR dB", "top-1 agreement", "accuracy original / C"]


def sqnr(reference: np.ndarray, got: np.ndarray) -> float:
    """10 log10(signal power / error power) in dB; inf when they are equal."""
    noise = float(np.sum((reference.astype(np.float64) - got) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(max(float(np.sum(reference.astype(np.float64) ** 2)), 1e-30)
                                                         / noise)


def reference_outputs(model, samples: list[tuple[np.ndarray, ...]], example_inputs=None) -> list[list[np.ndarray]]:
    """The original model's outputs for each sample, from its own framework."""
    text = str(model) if isinstance(model, (str, Path)) else None
    if text is not None and text.endswith(".onnx"):
        import onnxruntime as ort
        session = ort.InferenceSession(text, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return [session.run(None, dict(zip(names, s))) for s in samples]
    if text is not None and text.endswith(".tflite"):
        return _litert_isolated(Path(text), samples)
    import torch
    if text is not None:
        from ..frontends.load import resolve_reference
        if text.startswith("zoo:"):
            from .. import zoo
            model = zoo.get(text[4:])[0]
        else:
            model = resolve_reference(text)[0]
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"cannot run a {type(model).__name__} as the original model",
                         "validate an nn.Module, file.py:factory, zoo:NAME, an .onnx or a .tflite file")
    model.eval()
    outs = []
    with torch.no_grad():
        for s in samples:
            y = model(*(torch.from_numpy(np.ascontiguousarray(x)) for x in s))
            outs.append([t.numpy() for t in (y if isinstance(y, (tuple, list)) else (y,))])
    return outs


def _litert_isolated(path: Path, samples) -> list[list[np.ndarray]]:
    """LiteRT's outputs for `samples`, computed in a subprocess (LiteRT may abort on a file)."""
    import sys
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "in.npz", **{f"s{i}_{j}": x for i, s in enumerate(samples) for j, x in enumerate(s)})
        code = ("import sys, numpy as np\nfrom mcuforge.backends.tflite.runtime import run_litert\n"
                "d = np.load(sys.argv[2]); n = int(sys.argv[3]); k = int(sys.argv[4]); out = {}\n"
                "for i in range(n):\n    ys = run_litert(open(sys.argv[1], 'rb').read(), *[d[f's{i}_{j}'] for j in range(k)])\n"
                "    out.update({f'o{i}_{j}': y for j, y in enumerate(ys)})\nnp.savez(sys.argv[5], **out)\n")
        done = subprocess.run([sys.executable, "-c", code, str(path), str(Path(tmp) / "in.npz"), str(len(samples)),
                               str(len(samples[0])), str(Path(tmp) / "out.npz")], capture_output=True, text=True)
        if done.returncode != 0:
            raise UsageError(f"LiteRT could not run {path} (exit {done.returncode}): "
                             f"{(done.stderr.strip().splitlines() or ['no message'])[-1][:300]}",
                             "check the file with LiteRT's interpreter")
        out = np.load(Path(tmp) / "out.npz")
        return [[out[k] for k in sorted((k for k in out.files if k.startswith(f"o{i}_")),
                                        key=lambda k: int(k.split("_")[1]))] for i in range(len(samples))]


def _as_input(v, x: np.ndarray) -> np.ndarray:
    from ..ir.early_exit import quantize_input
    return quantize_input(v, x) if v.dtype.np != np.float32 else np.asarray(x, np.float32)


def _as_real(v, raw: bytes) -> np.ndarray:
    y = np.frombuffer(raw, v.dtype.np).reshape(v.shape)
    q = v.type.quant
    if q is None or v.dtype.np == np.float32:
        return y.astype(np.float32)
    return ((y.astype(np.float64) - q.zero_point[0]) * q.scale[0]).astype(np.float32)


def c_outputs(c_dir: Path, graph, samples, on: str = "host", board: str = "mps2-an386") -> list[list[np.ndarray]]:
    """The generated C's outputs for each sample (dequantized), built for the host or run on QEMU."""
    from ..backends.c import bench
    sizes = [v.type.nbytes for v in graph.outputs]
    feeds = [[_as_input(v, x) for v, x in zip(graph.inputs, s)] for s in samples]
    if on == "host":
        bench.make(c_dir, "host", tool="cc")
        data = b"".join(np.ascontiguousarray(x).tobytes() for f in feeds for x in f)
        done = subprocess.run([str(c_dir / f"{bench.prefix_of(c_dir)}_host"), "-b"], input=data, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"the host build failed on the samples: {done.stderr.decode(errors='replace')}")
        raws = [done.stdout[i * sum(sizes):(i + 1) * sum(sizes)] for i in range(len(samples))]
    elif on == "qemu":
        raws = bench.qemu_outputs(c_dir, feeds, board)
    else:
        raise UsageError(f"cannot validate on '{on}'", "on='host' or on='qemu'")
    return [[_as_real(v, raw[sum(sizes[:k]):sum(sizes[:k + 1])]) for k, v in enumerate(graph.outputs)] for raw in raws]


def validate(model, data, *, labels=None, example_inputs=None, on: str = "host", min_sqnr: float | None = None,
             min_top1: float | None = None, max_error: float | None = None, out_dir=None,
             **compile_options) -> ValidationReport:
    """Compile `model` to C (with `compile_options`, as `mcuforge.compile` takes them), run the
    original and the C on the samples in `data` (an .npz, an array or input tuples, as calibration
    data), compare them per output, and check the thresholds (see the module docstring)."""
    from ..analysis.calibrate import load_samples
    from ..backends.c.bench import board_for
    from .api import compile as compile_model
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(out_dir) if out_dir is not None else Path(tmp) / "out"
        art = compile_model(model, example_inputs, emit=("c",), out_dir=out, **compile_options)
        if art.graph.states:  # the references run sample by sample, each from a fresh model
            raise UsageError(f"validate compares independent samples, and {art.graph.name} keeps state between "
                             "calls", "compare a stream of frames: art.session() against the C's `-b` mode")
        float_graph = compile_model(model, example_inputs, passes="none", emit=()).graph
        samples = load_samples(data, float_graph)
        board = board_for(art.target)
        got = c_outputs(art.files["c"], art.graph, samples, on, board)
    want = reference_outputs(model, samples, example_inputs)
    labels = None if labels is None else np.asarray(np.load(labels) if isinstance(labels, (str, Path)) else labels)
    stats = []
    for k, v in enumerate(art.graph.outputs):
        ref = np.stack([w[k].reshape(v.shape) for w in want])
        c = np.stack([g[k] for g in got])
        err = np.abs(ref.astype(np.float64) - c)
        top1 = None
        if ref.shape[-1] > 1:
            top1 = float(np.mean(ref.reshape(len(samples), -1, ref.shape[-1]).argmax(-1)
                                 == c.reshape(len(samples), -1, c.shape[-1]).argmax(-1)))
        accuracy = None
        if labels is not None and k == 0 and top1 is not None:
            flat = labels.reshape(len(samples))
            accuracy = (float(np.mean(ref.reshape(len(samples), -1).argmax(-1) == flat)),
                        float(np.mean(c.reshape(len(samples), -1).argmax(-1) == flat)))
        stats.append(OutputStats(v.name, float(err.max()), float(err.mean()), sqnr(ref, c), top1, accuracy))
    failures = []
    for o in stats:
        if min_sqnr is not None and o.sqnr_db < min_sqnr:
            failures.append(f"{o.name}: SQNR {o.sqnr_db:.1f} dB is below {min_sqnr} dB")
        if min_top1 is not None and o.top1 is not None and o.top1 < min_top1:
            failures.append(f"{o.name}: top-1 agreement {o.top1:.2%} is below {min_top1:.2%}")
        if max_error is not None and o.max_error > max_error:
            failures.append(f"{o.name}: max |error| {o.max_error:.4g} is above {max_error}")
    worst = sorted(((layer.name, layer.op, layer.sqnr) for layer in art.report.layers if layer.sqnr is not None),
                   key=lambda t: t[2])[:5]
    return ValidationReport(len(samples), on, stats, failures, worst)
