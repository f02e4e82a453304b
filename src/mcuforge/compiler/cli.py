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

from .. import __version__
from ..errors import Error
from .pass_manager import Instrumentation

EXAMPLES = """examples:
  mcuforge compile zoo:resnet8 -o build/resnet8
  mcuforge compile model.onnx -o build/ --passes canonicalize,fold-bn,fuse --print-after fuse
  mcuforge compile nets.py:make_net --input-shape 1,3,32,32 -o build/ --time-passes
  mcuforge inspect zoo:ds_cnn
  mcuforge compile zoo:ds_cnn -o build/ --quantize int8 --calibration calib.npz --observer mse
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
    p.add_argument("--debug", action="store_true", help="verify the IR after every pass; show tracebacks")
    q = p.add_argument_group("quantization")
    q.add_argument("--quantize", choices=["int8", "int16x8"], help="post-training quantization scheme")
    q.add_argument("--calibration", metavar="FILE.npz", help="calibration inputs: arrays named after the model "
                   "inputs (or arr_0, ... in input order), leading axis = samples")
    q.add_argument("--observer", default="minmax", choices=["minmax", "moving_minmax", "percentile", "mse", "entropy"],
                   help="how calibration picks each tensor's range (default minmax)")
    q.add_argument("--io", default="int8", choices=["int8", "float"],
                   help="int8: integer model inputs/outputs; float: quantize/dequantize at the edges")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mcuforge", description="Compile PyTorch and ONNX models for microcontrollers.",
                                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"mcuforge {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile a model and write the outputs", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_args(c)
    c.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory (written atomically)")
    c.add_argument("--emit", default="onnx", help="comma-separated backends (onnx, tflite, c)")
    c.add_argument("--prefix", default="model", help="name of the outputs and of the generated C symbols "
                   "(default: model)")
    c.add_argument("--print-after", action="append", metavar="PASS", help="print the IR after PASS ('all' for every pass)")
    c.add_argument("--print-changed", action="store_true", help="with --print-after: only when the pass changed the IR")
    c.add_argument("--time-passes", action="store_true", help="print the time each pass took")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    c.add_argument("--json", action="store_true", help="print a machine-readable summary")

    i = sub.add_parser("inspect", help="print the per-layer table of a compiled model")
    _model_args(i)
    i.add_argument("--ir", action="store_true", help="also print the IR (constants elided)")
    i.add_argument("--memory", action="store_true", help="also print the memory plan as a timeline")

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


def _compile(args, emit, out, instrumentations=()):
    import mcuforge
    return mcuforge.compile(args.model, emit=emit, out_dir=out, passes=args.passes, target=_target(args),
                            debug=args.debug, input_shapes=args.input_shape, instrumentations=instrumentations,
                            quantize=args.quantize, calibration=args.calibration, observer=args.observer, io=args.io,
                            prefix=getattr(args, "prefix", "model"))


def cmd_compile(args, console: Console) -> int:
    from .pass_manager import PrintIR
    hooks: list[Instrumentation] = []
    if args.print_after:
        names = None if "all" in args.print_after else set(args.print_after)
        hooks.append(PrintIR(names, only_changed=args.print_changed, stream=sys.stdout))
    emit = [e.strip() for e in args.emit.split(",") if e.strip()]
    t0 = time.perf_counter()
    quiet = args.quiet or args.json
    spin = not quiet and not args.quantize  # quantize shows calibration's progress bar instead
    bar_console, was_quiet = rich.get_console(), rich.get_console().quiet  # where that bar goes
    bar_console.quiet = quiet or was_quiet
    try:
        with console.status(f"compiling {args.model}", spinner="dots") if spin else _Null() as status:
            art = _compile(args, emit, args.out, hooks + ([StatusHook(status, args.model)] if spin else []))
    finally:
        bar_console.quiet = was_quiet
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
        for m in art.report.missed:
            console.print(Text.assemble(("not done ", "yellow"), f"{m.pass_name}: {m.node} ({m.op}): {m.reason}"))
        for k, v in art.files.items():
            console.print(f"[green]wrote[/] {k}: {v}")
        console.print(f"compiled in {seconds:.2f} s")
    return 0


def cmd_inspect(args, console: Console) -> int:
    art = _compile(args, (), None)
    if args.ir:
        from ..ir.printer import print_graph
        console.print(print_graph(art.graph, elide=True, locs=True), markup=False, highlight=False)
    console.print(art.report.to_rich())
    if args.memory:
        from ..errors import UsageError
        from .memory import format_timeline
        if art.plan is None:
            raise UsageError("the pipeline made no memory plan", "drop --passes, or end it with schedule,memory-plan")
        console.print(format_timeline(art.plan), markup=False, highlight=False)
    return 0


def cmd_targets(args, console: Console) -> int:
    from rich.table import Table
    from .report import human_bytes
    from .targets import list_targets
    t = Table(title="targets")
    for col in ("name", "core", "MHz", "SRAM", "flash", "FPU", "DSP", "description"):
        t.add_column(col)
    for tg in list_targets():
        t.add_row(tg.name, tg.core, str(tg.clock_mhz), human_bytes(tg.sram), human_bytes(tg.flash),
                  "yes" if tg.fpu else "no", "yes" if tg.dsp else "no", tg.description)
    console.print(t)
    return 0


def cmd_passes(args, console: Console) -> int:
    from ..passes import REGISTRY
    from .pass_manager import format_pipeline
    from .pipelines import PIPELINES
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
    """Shows the step a compile is at on the CLI's status line."""

    def __init__(self, status, model: str):
        self.status, self.model = status, model

    def stage(self, name):
        self.status.update(f"{self.model}: {name}")

    def before(self, name, graph):
        self.status.update(f"{self.model}: pass {name} ({len(graph)} nodes)")


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def cmd_completion(args, console: Console) -> int:
    print(completion_script(build_parser(), args.shell))
    return 0


COMMANDS = {"completion": cmd_completion, "compile": cmd_compile, "inspect": cmd_inspect, "targets": cmd_targets, "passes": cmd_passes,
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
