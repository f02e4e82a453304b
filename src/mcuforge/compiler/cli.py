"""The `mcuforge` command line.

Exit codes: 0 ok, 1 internal error, 2 usage error, 3 unsupported or unreadable model, 4 model
does not fit the target. Errors print one paragraph with a hint; `--debug` adds the traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

import rich
from rich.console import Console
from rich.text import Text

from ..errors import Error, UsageError
from ..ir import wformat
from ..passes.manager import Instrumentation
from ..version import __version__

EXAMPLES = """examples:
  mcuforge compile zoo:resnet8 -o build/resnet8
  mcuforge compile model.onnx -o build/ --passes canonicalize,fold-bn,fuse --print-after fuse
  mcuforge compile nets.py:make_net --input-shape 1,3,32,32 -o build/ --time-passes
  mcuforge inspect zoo:ds_cnn
  mcuforge compile zoo:ds_cnn -o build/ --quantize int8 --calibration calib.npz --observer mse
  mcuforge bench zoo:ds_cnn --quantize int8 --calibration calib.npz --qemu
  mcuforge targets
exit codes: 0 ok, 1 internal error, 2 usage, 3 unsupported model, 4 does not fit the target
"""


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a shape like 1,3,32,32") from None


def _model_args(p: argparse.ArgumentParser):
    p.add_argument("model", help="an .onnx file, path/to/file.py:factory, or zoo:NAME")
    p.add_argument("--input-shape", type=_shape, action="append", metavar="D0,D1,...",
                   help="shape of a model input (repeat for several inputs)")
    p.add_argument("--passes", metavar="SPEC", help="pipeline name or spec, e.g. 'canonicalize,fold-bn,fuse'")
    p.add_argument("--target", help="target name (see `mcuforge targets`) or a profile .toml")
    p.add_argument("--sram", help="override the target's SRAM size, e.g. 96K")
    p.add_argument("--flash", help="override the target's flash size, e.g. 512K")
    p.add_argument("--no-fit-check", action="store_true",
                   help="write the outputs even when the model exceeds the target's SRAM or flash (else exit 4)")
    p.add_argument("--prune", type=float, metavar="RATIO",
                   help="remove this fraction of every channel group's channels (the prune-channels pass)")
    p.add_argument("--debug", action="store_true", help="verify the IR after every pass; show tracebacks")
    p.add_argument("--exit", action="append", metavar="OUTPUT[=THRESH]", dest="exits",
                   help="early exit: a graph output (name or index) and its confidence threshold, in the order "
                        "tried; repeat for each output, the last without a threshold")
    p.add_argument("--state", action="append", metavar="INPUT=OUTPUT", dest="states",
                   help="a hidden state: the input fed back from the output at the next call (repeat for several)")
    q = p.add_argument_group("quantization")
    q.add_argument("--quantize", choices=["int8", "int16x8"], help="post-training quantization scheme")
    q.add_argument("--calibration", metavar="FILE.npz", help="calibration inputs: arrays named after the model "
                   "inputs (or arr_0, ... in input order), leading axis = samples")
    q.add_argument("--observer", default="minmax", choices=["minmax", "moving_minmax", "percentile", "mse", "entropy"],
                   help="how calibration picks each tensor's range (default minmax)")
    q.add_argument("--per-tensor", dest="per_channel", action="store_false",
                   help="weights per tensor, not per output channel (TFLite Micro's arena then holds no "
                        "per-channel multipliers)")
    q.add_argument("--io", default="int8", choices=["int8", "float"],
                   help="int8: integer model inputs/outputs; float: quantize/dequantize at the edges")
    q.add_argument("--keep-float", action="append", default=[], metavar="LAYER", help="leave LAYER float (repeatable)")
    q.add_argument("--keep-int16", action="append", default=[], metavar="LAYER",
                   help="run LAYER with int16 activations in an int8 model (repeatable)")
    q.add_argument("--auto-mixed", type=float, metavar="DB", help="keep the most sensitive layers at --mixed "
                   "precision while each raises the output SQNR by DB dB")
    q.add_argument("--mixed", default="float", choices=["float", "int16x8"],
                   help="precision of the layers --auto-mixed keeps (default float)")
    q.add_argument("--weights", metavar="FORMAT", choices=wformat.NAMES[1:],
                   help="compress the int8 weights: pow2, binary, ternary, kmeans2..kmeans8, int4g32/64/128")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help with the examples laid out as written and each option's default, where it has one."""

    def _get_help_string(self, action):
        text = action.help or ""
        shown = action.default not in (None, argparse.SUPPRESS, [], ()) and not isinstance(action.default, bool)
        if shown and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mcuforge", description="Compile PyTorch and ONNX models for microcontrollers.",
                                 epilog=EXAMPLES, formatter_class=HelpFormatter)
    ap.add_argument("--version", action="version", version=f"mcuforge {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile a model and write the outputs", epilog=EXAMPLES,
                       formatter_class=HelpFormatter)
    _model_args(c)
    c.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory (written atomically)")
    c.add_argument("--emit", default="onnx", help="comma-separated backends (onnx, tflite, c, project: a firmware project for --target)")
    c.add_argument("--prefix", default="model", help="name of the outputs and of the generated C symbols "
                   "(default: model)")
    c.add_argument("--onnx-format", choices=("qdq", "integer"), default="qdq",
                   help="a quantized model's .onnx: qdq (QuantizeLinear/DequantizeLinear around float ops, the "
                   "interchange form) or integer (exact integer arithmetic, bit-exact with the interpreter)")
    c.add_argument("--tflite-offline-plan", action=argparse.BooleanOptionalAction, default=None,
                   help="write our memory plan into the .tflite for TFLite Micro (default: when memory-plan ran)")
    c.add_argument("--print-after", action="append", metavar="PASS", help="print the IR after PASS ('all' for every pass)")
    c.add_argument("--print-changed", action="store_true", help="with --print-after: only when the pass changed the IR")
    c.add_argument("--time-passes", action="store_true", help="print the time each pass took")
    c.add_argument("--optimize", choices=("size", "balanced", "speed"), default="balanced",
                   help="the C code's flash against speed: which layers run kernels specialized with their "
                   "constants (balanced: where the gain per byte is large; measured by `bench --tune`)")
    c.add_argument("--latency", action="store_true", help="add each layer's estimated cycles and ms on --target to "
                   "the report (one QEMU run of the model's C)")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    c.add_argument("--json", action="store_true", help="print a machine-readable summary")

    i = sub.add_parser("inspect", help="print the per-layer table of a compiled model",
                       formatter_class=HelpFormatter)
    _model_args(i)
    i.add_argument("--ir", action="store_true", help="also print the IR (constants elided)")
    i.add_argument("--memory", action="store_true", help="also print the memory plan as a timeline")
    i.add_argument("--latency", action="store_true", help="estimate each layer's cycles and ms on --target from "
                   "one QEMU run of its C (an estimate: instructions times a per-core factor)")

    b = sub.add_parser("bench", help="build the generated C and measure its latency (host) and instructions (QEMU)",
                       formatter_class=HelpFormatter)
    _model_args(b)  # MODEL may also be a directory of generated C (`compile --emit c`'s out/ or out/c/)
    b.add_argument("-o", "--out", metavar="DIR", help="keep the compiled model here (default: a temporary "
                   "directory); with --qemu its C has the layer markers, compiled in only by `make profile`")
    b.add_argument("--runs", type=int, default=20, help="latency samples on the host (default 20)")
    b.add_argument("--qemu", action="store_true", help="also count the instructions of one inference on QEMU's "
                   "Cortex-M4 (mps2-an386; a cortex-m7 target: mps2-an500; DSP build when the target has DSP), "
                   "layer by layer, with estimated cycles and ms at the target's clock")
    b.add_argument("--optimize", choices=("size", "balanced", "speed"), default="balanced",
                   help="the C code's flash against speed: which layers run kernels specialized with their "
                   "constants (balanced: where the gain per byte is large; measured by `bench --tune`)")
    b.add_argument("--tune", action="store_true", help="measure every layer's kernel shared and specialized on "
                   "QEMU (the target's core and build) and cache it: --optimize chooses from these counts from then on")
    b.add_argument("--data", metavar="FILE.npz", help="with --exit: inputs (as for --calibration) over which to "
                   "report the average MACs when inference stops at the first confident exit")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress, only the table")
    b.add_argument("--json", action="store_true", help="print a machine-readable summary")

    w = sub.add_parser("sweep", help="accuracy against flash over several quantization schemes",
                       formatter_class=HelpFormatter)
    w.add_argument("model", help="an .onnx file, path/to/file.py:factory, or zoo:NAME")
    w.add_argument("--eval", required=True, metavar="FILE.py:FN", help="FN(runner) -> accuracy; runner(*inputs) "
                   "runs the compiled model (float inputs and outputs)")
    w.add_argument("--schemes", default="float,int8,int16x8", help="comma-separated, from: float, int8, int16x8, "
                   "int8+FORMAT (FORMAT a compressed-weight format, e.g. int8+pow2); default float,int8,int16x8")
    w.add_argument("--calibration", metavar="FILE.npz", help="calibration inputs for the quantized schemes")
    w.add_argument("--input-shape", type=_shape, action="append", metavar="D0,D1,...", help="shape of a model input")
    w.add_argument("--jobs", type=int, default=1, help="processes to run the schemes in (default 1: in this one)")
    w.add_argument("--scheduler", metavar="ADDRESS", help="run the schemes on a Dask cluster: the address of its "
                   "dask.distributed scheduler, e.g. tcp://10.0.0.5:8786 (pip install 'mcuforge[dask]')")
    w.add_argument("-o", "--out", metavar="FILE.html", help="write the plot (SVG) and the table to this HTML file")

    v = sub.add_parser("validate", help="run the original model and the generated C on your samples and compare",
                       formatter_class=HelpFormatter)
    _model_args(v)
    v.add_argument("--data", required=True, metavar="FILE.npz", help="the samples (arrays as for --calibration)")
    v.add_argument("--labels", metavar="FILE.npy", help="a label per sample: accuracy of the original and the C")
    v.add_argument("--on", choices=("host", "qemu"), default="host",
                   help="run the C built for the host, or for a Cortex-M under QEMU (one run per sample)")
    v.add_argument("--per-layer", action="store_true", help="also list the layers that lose the most (their "
                   "output SQNR in the quantized model, measured by the quantize pass on the calibration data)")
    v.add_argument("--min-sqnr", type=float, metavar="DB", help="exit 5 when an output's SQNR is below DB")
    v.add_argument("--min-top1", type=float, metavar="FRACTION", help="exit 5 when an output's top-1 agreement "
                   "is below FRACTION")
    v.add_argument("--max-error", type=float, metavar="X", help="exit 5 when an output's max |error| is above X")
    v.add_argument("--json", action="store_true", help="print a machine-readable summary")

    sub.add_parser("targets", help="list the bundled MCU profiles")
    sub.add_parser("passes", help="list the registered passes and named pipelines")
    sub.add_parser("ops", help="list the ops of the IR")
    comp = sub.add_parser("completion", help="print a shell completion script",
                          description="enable with: eval \"$(mcuforge completion bash)\" (bash or zsh)")
    comp.add_argument("shell", choices=["bash", "zsh"])
    return ap


def completion_script(ap: argparse.ArgumentParser, shell: str) -> str:
    """A bash completion function built from the parser: subcommands, then each one's options,
    then file names; zsh loads it through bashcompinit."""
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    cases = "\n".join(f"    {name}) opts=\"{' '.join(o for a in p._actions for o in a.option_strings)}\" ;;"
                      for name, p in sub.choices.items())
    body = f"""_mcuforge() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "{' '.join(sub.choices)} --help --version" -- "$cur")); return
  fi
  case "${{COMP_WORDS[1]}}" in
{cases}
  esac
  if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}}
complete -o filenames -F _mcuforge mcuforge
"""
    return ("autoload -U +X bashcompinit && bashcompinit\n" if shell == "zsh" else "") + body


def _target(args):
    if not args.target and not (args.sram or args.flash):
        return None
    from .targets import load_target
    return load_target(args.target or "host").with_sizes(args.sram, args.flash)


def _options(args) -> dict:
    """compile()'s keyword arguments from the model and quantization options."""
    return dict(passes=args.passes, target=_target(args), debug=args.debug, input_shapes=args.input_shape,
                quantize=args.quantize, calibration=args.calibration, observer=args.observer, io=args.io,
                keep_float=args.keep_float, keep_int16=args.keep_int16, auto_mixed=args.auto_mixed, mixed=args.mixed,
                prefix=getattr(args, "prefix", "model"), weights=getattr(args, "weights", None),
                tflite_offline_plan=getattr(args, "tflite_offline_plan", None), exits=_exits(args),
                onnx=getattr(args, "onnx_format", "qdq"), per_channel=getattr(args, "per_channel", True),
                fit_check=not args.no_fit_check, prune=args.prune, latency=getattr(args, "latency", False),
                state=_states(args), optimize=getattr(args, "optimize", "balanced"))


def _compile(args, emit, out, instrumentations=()):
    import mcuforge
    return mcuforge.compile(args.model, emit=emit, out_dir=out, instrumentations=instrumentations, **_options(args))


def _states(args) -> dict | None:
    """--state IN=OUT ... -> {input name: output name}."""
    pairs = [s.partition("=") for s in getattr(args, "states", None) or ()]
    if any(not i or not o for i, _, o in pairs):
        raise UsageError(f"--state {' '.join(args.states)}: give INPUT=OUTPUT", "e.g. --state h_in=h_out")
    return {i: o for i, _, o in pairs} or None


def _exits(args) -> dict | None:
    """--exit NAME=THRESH ... -> {name or index: threshold or None}."""
    def key(name):
        return int(name) if name.isdigit() else name
    try:
        return {key(k): float(t) if t else None for k, _, t in (e.partition("=") for e in args.exits)} \
            if getattr(args, "exits", None) else None
    except ValueError:
        raise UsageError(f"--exit {' '.join(args.exits)}: a threshold is not a number", "e.g. --exit 0=0.9 --exit 1")


def cmd_compile(args, console: Console) -> int:
    from ..passes.manager import PrintIR
    hooks: list[Instrumentation] = []
    if args.print_after:
        names = None if "all" in args.print_after else set(args.print_after)
        hooks.append(PrintIR(names, only_changed=args.print_changed, stream=sys.stdout))
    emit = [e.strip() for e in args.emit.split(",") if e.strip()]
    t0 = time.perf_counter()
    with StatusHook(console, args.model, quiet=args.quiet or args.json, lazy=bool(args.quantize)) as status:
        art = _compile(args, emit, args.out, hooks + [status])
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"model": art.graph.name, "seconds": round(seconds, 3), "layers": len(art.report.layers),
                          "macs": art.report.total_macs, "params": art.report.total_params,
                          "flash_bytes": art.report.flash_bytes,
                          "files": {k: str(v) for k, v in art.files.items()}}, indent=2))
        return 0
    if args.time_passes:
        from rich.table import Table
        t = Table(title="pass timings")
        for col in ("pass", "changed", "ms", "nodes"):
            t.add_column(col)
        for r in art.report.passes:
            t.add_row(r.name, "yes" if r.changed else "no", f"{r.seconds * 1e3:.2f}", f"{r.nodes_before} -> {r.nodes_after}")
        console.print(t)
    if not args.quiet:
        console.print(art.report.to_rich())
        if art.report.mcu is not None:
            console.print(str(art.report.mcu), markup=False, highlight=False)
        for m in art.report.missed:
            console.print(Text.assemble(("not done ", "yellow"), f"{m.pass_name}: {m.node} ({m.op}): {m.reason}"))
        for k, v in art.files.items():
            console.print(f"[green]wrote[/] {k}: {v}")
        console.print(f"compiled in {seconds:.2f} s")
    return 0


def cmd_sweep(args, console: Console) -> int:
    from concurrent.futures import ProcessPoolExecutor

    from ..errors import UsageError
    from .sweep import format_table, render_html, sweep
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    import multiprocessing
    # spawned, not forked: torch's and OpenMP's thread pools do not survive a fork (the jobs hang)
    client = None
    if args.scheduler:
        if args.jobs > 1:
            raise UsageError("--jobs and --scheduler both say where the schemes run", "give one of them")
        try:
            from distributed import Client
        except ImportError:
            raise UsageError("--scheduler needs dask.distributed", "pip install 'mcuforge[dask]'") from None
        try:
            client = Client(args.scheduler, timeout=15)
        except OSError as e:
            raise UsageError(f"cannot reach the Dask scheduler at {args.scheduler}: {e}",
                             "check the address (dask scheduler prints it) and that its port is open") from None
        executor = client.get_executor()
    else:
        executor = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) if args.jobs > 1 \
            else None
    try:
        points = sweep(args.model, schemes, args.eval, executor=executor, calibration=args.calibration,
                       input_shapes=args.input_shape)
    finally:
        if client is not None:
            client.close()
        elif executor is not None:
            executor.shutdown()
    console.print(format_table(points), markup=False, highlight=False)
    if args.out:
        from pathlib import Path
        Path(args.out).write_text(render_html(points, args.model))
    return 0


def cmd_validate(args, console: Console) -> int:
    from rich.table import Table

    from .validate import validate
    with StatusHook(console, args.model, quiet=args.json, lazy=bool(args.quantize)) as status:
        report = validate(args.model, args.data, labels=args.labels, on=args.on, min_sqnr=args.min_sqnr,
                          min_top1=args.min_top1, max_error=args.max_error, instrumentations=[status],
                          **_options(args))
    if args.json:
        print(json.dumps({"samples": report.samples, "on": report.on, "passed": report.passed,
                          "failures": report.failures, "outputs": [vars(o) for o in report.outputs],
                          "worst_layers": report.worst_layers}))
    else:
        table = Table(title=f"{args.model}: the generated C ({report.on}) against the original, "
                            f"{report.samples} samples")
        for col in report.HEADER:
            table.add_column(col, justify="left" if col == "output" else "right")
        for row in report.rows():
            table.add_row(*row)
        console.print(table)
        if args.per_layer and report.worst_layers:
            console.print("layers that lose the most (output SQNR in the quantized model): " + ", ".join(
                f"{name} ({op}) {db:.1f} dB" for name, op, db in report.worst_layers))
        for f in report.failures:
            console.print(f"[red]FAILED[/] {f}")
    return 0 if report.passed else 5


def cmd_inspect(args, console: Console) -> int:
    art = _compile(args, (), None)
    if args.ir:
        from ..ir.printer import print_graph
        console.print(print_graph(art.graph, elide=True, locs=True), markup=False, highlight=False)
    console.print(art.report.to_rich())
    if args.memory:
        from ..analysis.memory import format_timeline
        from ..errors import UsageError
        if art.plan is None:
            raise UsageError("the pipeline made no memory plan", "drop --passes, or end it with schedule,memory-plan")
        console.print(format_timeline(art.plan), markup=False, highlight=False)
    return 0


def cmd_bench(args, console: Console) -> int:
    import tempfile
    from pathlib import Path

    from ..backends.c import bench
    from ..errors import UsageError
    from ..ir.cost import macs
    if args.runs < 1:
        raise UsageError(f"--runs {args.runs} is not a positive number", "e.g. --runs 20")
    if args.data and not args.exits:
        raise UsageError("--data measures early exits, but no --exit was given", "e.g. --exit 0=0.9 --exit 1")
    if args.tune:
        return _tune(args, console)
    with tempfile.TemporaryDirectory(prefix="mcuforge-bench-") as tmp, \
            StatusHook(console, args.model, quiet=args.quiet or args.json, lazy=bool(args.quantize)) as status:
        given, exits = Path(args.model), None
        if given.is_dir():
            if args.data:
                raise UsageError("--data needs the model, not a directory of generated C", "give MODEL as for compile")
            c_dir = given / "c" if (given / "c" / "Makefile").is_file() else given
        else:
            art = _compile(args, ["c"], args.out or tmp, [status])
            c_dir = art.files["c"]
            if args.data:
                from ..analysis.calibrate import load_samples
                from ..ir.early_exit import run_dataset
                status.update(f"{args.model}: early exits over {args.data}")
                exits = run_dataset(art.graph, load_samples(args.data, art.graph), art.ctx.exits)
        xs = bench.random_inputs(c_dir, seed=0)
        status.update(f"{args.model}: make host, {args.runs} latency samples")
        seconds = sorted(bench.host_latency(c_dir, xs, args.runs))
        target = _target(args)
        instructions, board = None, bench.board_for(target)
        dsp, profile, node_macs = bool(getattr(target, "dsp", False)), None, None
        mve = bool(getattr(target, "mve", False)) and bench.BOARDS[board] == "cortex-m55"
        if args.qemu:
            status.update(f"{args.model}: make cortex-m, one inference on qemu-system-arm {board}")
            instructions = bench.qemu_instructions(c_dir, xs, board, dsp, mve)
            if not given.is_dir():  # the same C with layer markers (compiled in only by `make profile`)
                from ..backends.c.emit import emit_c
                emit_c(art.graph, c_dir, plan=art.plan, exits=art.ctx.exits, profile=True)
                node_macs = {n.name: macs(n) for n in art.graph.nodes}
            if (c_dir / "layers.tsv").is_file():
                status.update(f"{args.model}: make profile, per-layer counts on qemu-system-arm {board}")
                profile = bench.qemu_layers(c_dir, xs, board, dsp, mve)
    stats = {"median_s": seconds[len(seconds) // 2], "p90_s": seconds[min(int(0.9 * len(seconds)), len(seconds) - 1)],
             "min_s": seconds[0]}
    if exits is not None:
        stats.update(average_macs=exits.average_macs, full_macs=exits.full_macs, exits_taken=exits.taken)
    core = bench.BOARDS[board]
    clock, caption = bench.latency_basis(core, target)
    layers = bench.layer_rows(profile, core, clock, node_macs) if profile else None
    if args.json:
        print(json.dumps({"model": args.model, "runs": args.runs, **stats, "qemu_board": board if args.qemu else None,
                          "qemu_dsp": dsp if args.qemu else None, "qemu_mve": mve if args.qemu else None, "instructions": instructions,
                          "layers": layers.records if layers else None, "layer_total": profile and profile.whole,
                          "estimate": profile and {"core": core, "clock_mhz": clock, "note": caption,
                                                   "cycles_per_instruction": bench.CYCLES_PER_INSTRUCTION.get(core)}},
                         indent=2))
        return 0
    from rich.table import Table
    t = Table(title=f"{args.model}: {args.runs} host samples (each the mean of many inferences)")
    build = "MVE" if mve else "DSP" if dsp else "plain"
    for col in ("median", "p90", "min") + ((f"instructions (QEMU {board}{'' if build == 'plain' else ' ' + build})",)
                                           if args.qemu else ()):
        t.add_column(col, justify="right")
    t.add_row(*(f"{stats[k] * 1e6:,.1f} µs" for k in ("median_s", "p90_s", "min_s")),
              *((f"{instructions:,}",) if args.qemu else ()))
    console.print(t)
    if layers:
        for title, header, rows in ((f"{args.model}: per layer, one QEMU run ({board}, {build} "
                                     "build), exact instruction counts", layers.header, layers.rows),
                                    (f"{args.model}: by layer type", layers.kind_header, layers.kind_rows)):
            lt = Table(title=title)
            for col in header:
                lt.add_column(col, justify="left" if col in ("layer", "op", "kind") else "right",
                              no_wrap=col == "layer")
            for row in rows:
                lt.add_row(*row, end_section=row[1] == "(invoke: checks, copies)")
            console.print(lt)
        console.print(caption)
    elif args.qemu:
        console.print(f"no per-layer counts: {c_dir} has no layer markers (emitted without profile=True)")
    if exits is not None:
        console.print(f"early exits over {len(exits.exits)} samples of {args.data}: average "
                      f"{exits.average_macs:,.0f} MACs of {exits.full_macs:,} "
                      f"({exits.average_macs / exits.full_macs:.1%}); taken per exit: {exits.taken}")
    return 0


def _tune(args, console: Console) -> int:
    """`bench --tune`: every candidate layer measured shared and specialized (bench.tune_layers),
    the table, and what each --optimize then chooses."""
    import tempfile
    from pathlib import Path

    from ..backends.c import bench, tune
    if Path(args.model).is_dir():
        raise UsageError("--tune compiles the model: give MODEL as for compile, not a directory of generated C",
                         "e.g. mcuforge bench zoo:ds_cnn --quantize int8 --tune")
    with tempfile.TemporaryDirectory(prefix="mcuforge-tune-") as tmp, \
            StatusHook(console, args.model, quiet=args.quiet or args.json, lazy=bool(args.quantize)) as status:
        art = _compile(args, ["c"], Path(tmp) / "compiled", [status])  # the C backend's pipeline
        status.update(f"{args.model}: every layer shared and specialized, two QEMU runs with layer markers")
        t = bench.tune_layers(art.graph, art.plan, art.target, tmp, exits=art.ctx.exits)
    modes = {m: t.choice(m) for m in tune.OPTIMIZE}
    if args.json:
        print(json.dumps({"model": args.model, "qemu_board": t.board, "qemu_dsp": t.dsp, "cache": str(t.cache),
                          "layers": [dict(zip(("index", "name", "op", "kind", "shared", "specialized", "code_bytes"),
                                              r)) for r in t.rows],
                          "optimize": {m: dict(zip(("layers", "instructions", "code_bytes"), v))
                                       for m, v in modes.items()}}, indent=2))
        return 0
    from rich.table import Table
    lt = Table(title=f"{args.model}: instructions per layer, shared and specialized kernel (QEMU {t.board}, "
                     f"{'DSP' if t.dsp else 'plain'} build)")
    for col in ("#", "layer", "kind", "shared", "specialized", "saved", "code B", "balanced", "speed"):
        lt.add_column(col, justify="left" if col in ("layer", "kind") else "right", no_wrap=col == "layer")
    for i, name, _, kind, a, b, size in t.rows:
        v = tune.Variant(a - b, size, True)
        lt.add_row(str(i), name, kind, f"{a:,}", f"{b:,}", f"{(a - b) / max(a, 1):.1%}", f"{size:,}",
                   *("yes" if tune.pays(v, m) else "" for m in ("balanced", "speed")))
    console.print(lt)
    mt = Table(title=f"{args.model}: each --optimize on these counts")
    for col in ("optimize", "layers specialized", "instructions", "vs size", "code added"):
        mt.add_column(col, justify="left" if col == "optimize" else "right")
    for m, (n, instructions, size) in modes.items():
        mt.add_row(m, str(n), f"{instructions:,}", f"{instructions / modes['size'][1]:.3f}x", f"{size:,} B")
    console.print(mt)
    console.print(f"cached in {t.cache}: compile --emit c (this model, this target) now chooses from these counts")
    return 0


def cmd_targets(args, console: Console) -> int:
    from rich import box
    from rich.table import Table

    from ..ir.cost import human_bytes
    from .targets import list_targets
    # the numbers, then the descriptions: the names (what --target takes) are never cut at 80 columns
    t = Table(title="targets", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("name", "core", "MHz", "SRAM", "flash", "FPU", "DSP"):
        t.add_column(col, no_wrap=True)
    about = Table(box=None, pad_edge=False, show_header=False)
    about.add_column(no_wrap=True)
    about.add_column(ratio=1)
    for tg in list_targets():
        t.add_row(tg.name, tg.core, str(tg.clock_mhz), human_bytes(tg.sram), human_bytes(tg.flash),
                  "yes" if tg.fpu else "no", "yes" if tg.dsp else "no")
        about.add_row(tg.name, tg.description)
    console.print(t)
    console.print(about)
    return 0


def cmd_passes(args, console: Console) -> int:
    from ..passes import REGISTRY
    from ..passes.manager import format_pipeline
    from ..passes.pipelines import PIPELINES
    for name, p in REGISTRY.items():
        opts = ", ".join(f"{k}={v!r}" for k, v in p.options.items())
        console.print(f"[bold]{name}[/]{'{' + opts + '}' if opts else ''}: {p.summary}")
    for name, pl in PIPELINES.items():
        console.print(f"pipeline [bold]{name}[/]: {format_pipeline(pl) or '(empty)'}")
    return 0


def cmd_ops(args, console: Console) -> int:
    from ..ir.ops import OPS
    for name, d in OPS.items():
        console.print(f"{name}({', '.join(d.inputs)}) {{{', '.join(d.attrs)}}}", markup=False, highlight=False)
    return 0


class StatusHook(Instrumentation):
    """A context manager showing the step a compile or a build is at on a rich status line; with
    `quiet` nothing, calibration's progress bar included. With `lazy` (a quantized compile, whose
    calibration shows that bar first) the line starts at the first emit step."""

    def __init__(self, console: Console, model: str, quiet=False, lazy=False):
        self.console, self.model, self.quiet, self.lazy, self.status = console, model, quiet, lazy, None

    def __enter__(self):
        self.bar_console = rich.get_console()  # where calibration's bar goes
        self.was_quiet, self.bar_console.quiet = self.bar_console.quiet, self.quiet or self.bar_console.quiet
        if not self.lazy:
            self.update(f"compiling {self.model}")
        return self

    def __exit__(self, *exc):
        self.bar_console.quiet = self.was_quiet
        if self.status is not None:
            self.status.stop()
        return False

    def update(self, text: str):
        if self.quiet:
            return
        if self.status is None:
            self.status = self.console.status(text, spinner="dots")
            self.status.start()
        self.status.update(text)

    def stage(self, name):
        if self.status is not None or name.startswith("emit"):
            self.update(f"{self.model}: {name}")

    def before(self, name, graph):
        if self.status is not None:
            self.update(f"{self.model}: pass {name} ({len(graph)} nodes)")


def cmd_completion(args, console: Console) -> int:
    print(completion_script(build_parser(), args.shell))
    return 0


COMMANDS = {"completion": cmd_completion, "compile": cmd_compile, "inspect": cmd_inspect, "bench": cmd_bench,
            "validate": cmd_validate, "targets": cmd_targets, "passes": cmd_passes, "sweep": cmd_sweep,
            "ops": cmd_ops}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=False, highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        return COMMANDS[args.command](args, console)
    except Error as e:
        if getattr(args, "debug", False):
            traceback.print_exc()
        err.print(Text.assemble(("error: ", "bold red"), e.message), soft_wrap=True)
        if e.hint:
            err.print(Text.assemble(("hint: ", "bold"), e.hint), soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug of ours: say so plainly
        if getattr(args, "debug", False):
            traceback.print_exc()
        err.print(Text.assemble(("internal error: ", "bold red"), f"{type(e).__name__}: {e}"), soft_wrap=True)
        err.print("this is a bug in mcuforge; rerun with --debug for the traceback and report it")
        return 1


if __name__ == "__main__":
    sys.exit(main())
