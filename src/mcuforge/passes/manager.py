"""Runs pipelines of passes over a graph, with verification and instrumentation hooks.

A pass is a plain function `fn(graph, ctx, **options) -> changed: bool` declared as a `Pass`
(kebab-case name, the function, its docstring). Passes are listed in one registry,
`mcuforge.passes.REGISTRY`. A pipeline is an ordered list of `(name, options)`; its text form is
`"canonicalize,fold-bn,fuse"` with options in braces: `"quantize{scheme=int8,observer=mse}"`.

The manager verifies the IR before the first pass and after the last, and after every pass when
`debug=True` (or `MCUFORGE_VERIFY=1` in the environment, read only by `PassManager`'s default).
Any failure inside a pass becomes a `PassError` naming the pass, the passes before it and the node.
Observability goes through hooks (`before(pass, graph)`, `after(pass, graph, changed, seconds)`),
never through prints in passes.
"""
from __future__ import annotations

import os
import time

from ..errors import Error, PassError, UsageError, VerifyError
from ..ir.graph import Graph
from ..ir.verify import verify
from .base import PassContext, PassRecord


class Instrumentation:
    """Hook interface; subclass and override what you need. `stage` announces the steps of a
    compile around the pipeline ("load", "emit onnx", ...)."""

    def stage(self, name: str):
        pass

    def before(self, name: str, graph: Graph):
        pass

    def after(self, name: str, graph: Graph, changed: bool, seconds: float):
        pass


class PrintIR(Instrumentation):
    """Prints the IR after the named passes (or all), optionally only when they changed it."""

    def __init__(self, passes: set[str] | None = None, only_changed: bool = False, stream=None, elide: bool = True):
        self.passes, self.only_changed, self.stream, self.elide = passes, only_changed, stream, elide

    def after(self, name, graph, changed, seconds):
        if (self.passes is None or name in self.passes) and (changed or not self.only_changed):
            from ..ir.printer import print_graph
            print(f"// ----- IR after {name}{'' if changed else ' (unchanged)'}", file=self.stream)
            print(print_graph(graph, elide=self.elide), file=self.stream)


def parse_pipeline(spec: str) -> list[tuple[str, dict]]:
    """`"a,b{k=v,k2=[1,2]},c"` -> [("a", {}), ("b", {"k": "v", "k2": [1, 2]}), ("c", {})]."""
    out, i, spec = [], 0, spec.strip()
    while i < len(spec):
        j = i
        while j < len(spec) and spec[j] not in ",{":
            j += 1
        name, opts = spec[i:j].strip(), {}
        if j < len(spec) and spec[j] == "{":
            depth, k = 0, j
            while k < len(spec):
                depth += spec[k] in "{[" and 1 or 0
                depth -= spec[k] in "}]" and 1 or 0
                if depth == 0:
                    break
                k += 1
            if depth:
                raise UsageError(f"unbalanced braces in pipeline '{spec}'")
            opts = _parse_options(spec[j + 1:k], name)
            j = k + 1
        if not name:
            raise UsageError(f"empty pass name in pipeline '{spec}'")
        out.append((name, opts))
        i = j + 1 if j < len(spec) and spec[j] == "," else j
    return out


def _parse_options(text: str, name: str) -> dict:
    opts, depth, cur, parts = {}, 0, "", []
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    for part in parts:
        if "=" not in part:
            raise UsageError(f"option '{part}' of pass '{name}' is not key=value")
        k, v = part.split("=", 1)
        opts[k.strip()] = _literal(v.strip())
    return opts


def _literal(v: str):
    if v.startswith("[") and v.endswith("]"):
        return [_literal(x.strip()) for x in v[1:-1].split(",") if x.strip()]
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v.strip("\"'")


def format_pipeline(pipeline: list[tuple[str, dict]]) -> str:
    def opt(v):
        return "[" + ",".join(map(str, v)) + "]" if isinstance(v, (list, tuple)) else str(v)
    return ",".join(n + ("{" + ",".join(f"{k}={opt(v)}" for k, v in o.items()) + "}" if o else "")
                    for n, o in pipeline)


class PassManager:
    def __init__(self, pipeline: str | list, *, debug: bool | None = None,
                 instrumentations: list[Instrumentation] | None = None, registry: dict | None = None):
        if registry is None:
            from . import REGISTRY as registry
        self.registry = registry
        if isinstance(pipeline, str):
            pipeline = parse_pipeline(pipeline)
        self.pipeline = [(p, {}) if isinstance(p, str) else (p[0], dict(p[1])) for p in pipeline]
        unknown = [n for n, _ in self.pipeline if n not in self.registry]
        if unknown:
            raise UsageError(f"unknown pass(es): {', '.join(unknown)}",
                             f"known passes: {', '.join(sorted(self.registry))}")
        for n, o in self.pipeline:
            accepted = self.registry[n].options
            bad = set(o) - set(accepted)
            if bad:
                raise UsageError(f"pass '{n}' has no option(s) {sorted(bad)}",
                                 f"its options: {', '.join(accepted) or 'none'}")
        self.debug = bool(os.environ.get("MCUFORGE_VERIFY")) if debug is None else debug
        self.instrumentations = list(instrumentations or [])
        self.records: list[PassRecord] = []

    def run(self, graph: Graph, ctx: PassContext | None = None) -> PassContext:
        ctx = ctx or PassContext(debug=self.debug)
        ran: list[str] = []
        self._verify(graph, "input of the pipeline", ran)
        for name, options in self.pipeline:
            p = self.registry[name]
            for h in self.instrumentations:
                h.before(name, graph)
            n_before = len(graph)
            ctx.current_pass = name
            t0 = time.perf_counter()
            try:
                changed = bool(p.fn(graph, ctx, **options))
            except Error as e:
                if isinstance(e, (VerifyError, PassError)):
                    raise PassError(name, ran, e, getattr(e, "node", None)) from e
                raise  # user-facing errors (unsupported, does not fit) pass through as they are
            except Exception as e:
                raise PassError(name, ran, e) from e
            dt = time.perf_counter() - t0
            ran.append(name)
            self.records.append(PassRecord(name, options, changed, dt, n_before, len(graph)))
            if self.debug:
                self._verify(graph, name, ran[:-1])
            for h in self.instrumentations:
                h.after(name, graph, changed, dt)
        ctx.current_pass = ""
        if not self.debug and ran:
            self._verify(graph, ran[-1], ran[:-1])
        return ctx

    @staticmethod
    def _verify(graph: Graph, after: str, before: list[str]):
        try:
            verify(graph)
        except VerifyError as e:
            raise PassError(after, before, e, e.node) from e
