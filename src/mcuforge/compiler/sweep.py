"""Accuracy against size: one model compiled under several schemes, each scored by the user.

`sweep(model, schemes, evaluate, executor=...)` compiles `model` once per scheme (no files
written), measures its flash (weight bytes) and arena, and calls `evaluate(runner)`, where
`runner(*float_inputs) -> float outputs` runs the compiled graph in the reference interpreter
(int8 inputs are quantized and int8 outputs dequantized for you, so one evaluation function
serves every scheme). The jobs go to any `concurrent.futures.Executor`: a process pool whose
workers are spawned, not forked (torch's thread pools do not survive a fork; the CLI's `--jobs N`
spawns), or a cluster's (Ray's and Dask's provide one). The model is loaded (traced) once here
and its graph sent to the jobs, so the evaluation function (or its "file.py:fn" reference) and
the calibration data must be picklable. With no executor the jobs run here, one after the other,
under one progress bar. On a Dask cluster: `sweep(..., executor=distributed.Client(address).get_executor())`
(CLI: `--scheduler ADDRESS`); its workers must be able to import what the evaluation reference names.

Schemes are names looked up in `SCHEMES` (compile options; add entries to plug in more):
"float", "int8", "int16x8", and "int8+FORMAT" for every compressed-weight format of
`ir.wformat` (pow2, kmeans4, int4g32, ...). `format_table` and `render_html` (accuracy against
flash as a hand-written SVG scatter plot, and the table) present the result.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

from ..errors import UsageError
from ..ir import wformat

SCHEMES: dict[str, dict] = {"float": {}, "int8": {"quantize": "int8"}, "int16x8": {"quantize": "int16x8"},
                            **{f"int8+{f}": {"quantize": "int8", "weights": f} for f in wformat.NAMES[1:]}}


@dataclass
class Point:
    scheme: str
    flash_bytes: int
    arena_bytes: int
    accuracy: float


def make_runner(graph):
    """`runner(*float_inputs) -> list of float outputs` of `graph` in the interpreter."""
    from ..ir.early_exit import quantize_input
    from ..ir.interpreter import dequantize, run

    def runner(*inputs):
        outs = run(graph, *(quantize_input(v, x) for v, x in zip(graph.inputs, inputs, strict=True)))
        return [o if (q := v.type.quant) is None else dequantize(o, scale=q.scale, zero_point=q.zero_point, axis=q.axis)
                for v, o in zip(graph.outputs, outs)]
    return runner


def load_function(ref: str):
    """`path/to/file.py:fn` -> the function."""
    from pathlib import Path

    from ..frontends.load import import_file
    file, _, name = ref.rpartition(":")
    if not Path(file).is_file():
        raise UsageError(f"evaluation file {file or ref} does not exist", "give --eval path/to/file.py:function")
    fn = getattr(import_file(Path(file)), name, None)
    if not callable(fn):
        raise UsageError(f"{ref} is not a function", "it takes runner (runner(*inputs) -> outputs) and returns a score")
    return fn


def evaluate_scheme(graph, scheme: str, evaluate, calibration=None) -> Point:
    """Compiles `graph` under `scheme` and scores it (one job of the sweep)."""
    from rich import get_console

    import mcuforge
    evaluate = load_function(evaluate) if isinstance(evaluate, str) else evaluate
    options = dict(SCHEMES[scheme])
    if "quantize" in options:
        options["calibration"] = calibration
    console, was_quiet = get_console(), get_console().quiet
    console.quiet = True  # no calibration bar per job: the sweep shows one bar over the schemes
    try:
        art = mcuforge.compile(graph, emit=(), **options)
    finally:
        console.quiet = was_quiet
    arena = art.plan.arena_bytes if art.plan is not None else 0
    return Point(scheme, art.report.flash_bytes, arena, float(evaluate(make_runner(art.graph))))


def sweep(model, schemes, evaluate, *, executor=None, example_inputs=None, calibration=None,
          input_shapes=None, quiet=False) -> list[Point]:
    """One `Point` per scheme, in the order given (see the module docstring), with a progress bar
    over the schemes on a terminal (stderr) unless `quiet`."""
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown:
        raise UsageError(f"unknown scheme(s): {', '.join(unknown)}", f"known: {', '.join(SCHEMES)}")
    if calibration is None and any("quantize" in SCHEMES[s] for s in schemes):
        raise UsageError("quantized schemes need calibration data", "pass calibration= (CLI: --calibration FILE.npz)")
    from ..frontends.load import load_model
    graph = load_model(model, example_inputs, input_shapes=input_shapes)  # traced once, compiled per scheme
    args = [(graph, s, evaluate, calibration) for s in schemes]
    from concurrent.futures import as_completed

    from rich.console import Console
    from rich.progress import Progress
    # submitted before the bar's refresh thread starts: a process pool forks its workers on submit
    futures = None if executor is None else [executor.submit(evaluate_scheme, *a) for a in args]
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=quiet or not console.is_terminal) as bar:
        task = bar.add_task(f"sweep over {len(schemes)} schemes", total=len(schemes))
        if futures is None:  # one after the other, here
            points = []
            for a in args:
                points.append(evaluate_scheme(*a))
                bar.advance(task)
            return points
        for _ in as_completed(futures):
            bar.advance(task)
    return [f.result() for f in futures]


def format_table(points: list[Point]) -> str:
    rows = [("scheme", "flash B", "arena B", "accuracy")] + [
        (p.scheme, f"{p.flash_bytes:,}", f"{p.arena_bytes:,}", f"{p.accuracy:.4g}") for p in points]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def plot_svg(points: list[Point], width: int = 560, height: int = 360) -> str:
    """Accuracy (y) against flash bytes (x, from 0) as an SVG scatter plot with labelled points."""
    m = 60  # margin for the axes' labels
    x_max = max(p.flash_bytes for p in points) * 1.1 or 1
    accs = [p.accuracy for p in points]
    lo, hi = min(accs), max(accs)
    lo, hi = (lo - 1, hi + 1) if hi == lo else (lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))

    def xy(p):
        return (m + (width - 1.5 * m) * p.flash_bytes / x_max,
                height - m - (height - 1.5 * m) * (p.accuracy - lo) / (hi - lo))
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11"><rect width="100%" height="100%" fill="white"/>'),
             f'<line x1="{m}" y1="{height - m}" x2="{width - m / 2}" y2="{height - m}" stroke="black"/>',
             f'<line x1="{m}" y1="{m / 2}" x2="{m}" y2="{height - m}" stroke="black"/>',
             f'<text x="{width / 2}" y="{height - 15}" text-anchor="middle">flash (weight bytes), 0 to {x_max:,.0f}</text>',
             (f'<text x="15" y="{height / 2}" transform="rotate(-90 15 {height / 2})" text-anchor="middle">'
             f'accuracy, {lo:.3g} to {hi:.3g}</text>')]
    for p in points:
        x, y = xy(p)
        parts += [(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="steelblue"><title>{html.escape(p.scheme)}: '
                  f'{p.flash_bytes:,} B, {p.accuracy:.4g}</title></circle>'),
                  f'<text x="{x + 6:.1f}" y="{y - 6:.1f}">{html.escape(p.scheme)}</text>']
    return "\n".join(parts + ["</svg>"])


def render_html(points: list[Point], title: str) -> str:
    rows = "".join(f"<tr><td>{html.escape(p.scheme)}</td><td>{p.flash_bytes:,}</td><td>{p.arena_bytes:,}</td>"
                   f"<td>{p.accuracy:.4g}</td></tr>" for p in points)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}: accuracy against flash</h1>{plot_svg(points)}<table border='1'>"
            f"<tr><th>scheme</th><th>flash B</th><th>arena B</th><th>accuracy</th></tr>{rows}</table></body></html>\n")
