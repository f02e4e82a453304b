"""The compile report: a per-layer table (op, output shape, MACs, parameters, activation bytes),
totals, the passes that ran, and the optimizations that did not happen with their reasons.

MACs are `ir.cost.macs` (convolutions, linear, matmul; elementwise work is not counted). Parameters are the elements of constant operands; flash bytes
are their bytes. Activation bytes are the bytes of a layer's results. A quantized model also gets
a quantization table: per layer the scheme, the input/output scale and zero point and the range
of the per-channel weight scales, the SQNR (dB) of its output in the quantized model against the
float model, the sensitivity (output SQNR with only that layer quantized, when measured), and
the weights' bytes before and after.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.cost import macs, stored_bytes
from ..ir.graph import Graph, Node
from ..passes.base import Missed, PassRecord


@dataclass
class Layer:
    name: str
    op: str
    shape: tuple
    macs: int
    params: int
    param_bytes: int
    act_bytes: int
    source: str | None = None
    scheme: str = ""  # quantized models: int8 / int16x8 / float (why), and the scales
    scales: str = ""
    sqnr: float | None = None
    sensitivity: float | None = None


def _quant_cells(n: Node) -> tuple[str, str]:
    """(scheme, scales) of a node of a quantized graph."""
    def qp(t):
        return f"{t.quant.scale[0]:.4g}/{t.quant.zero_point[0]}" if t.quant else "float"
    out, acts = n.outputs[0].type, [v for v in n.inputs if not v.is_const]
    scheme = {"i8": "int8", "i16": "int16x8"}.get(out.dtype.value, f"float ({n.meta.get('float', '')})")
    scheme += f", {n.attrs['wfmt']} weights" if n.attrs.get("wfmt", "int8") != "int8" else ""
    scheme += f", auto_mixed: +{n.meta['mixed_gain']:.1f} dB" if "mixed_gain" in n.meta else ""
    scales = f"{qp(acts[0].type) if acts else '-'} -> {qp(out)}"
    w = n.inputs[1].type.quant if len(n.inputs) > 1 and n.inputs[1].is_const else None
    if w is not None:
        scales += f", w {min(w.scale):.3g}..{max(w.scale):.3g}" if len(w.scale) > 1 else f", w {w.scale[0]:.3g}"
    return scheme, scales


@dataclass
class Report:
    model: str
    layers: list[Layer]
    passes: list[PassRecord] = field(default_factory=list)
    missed: list[Missed] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    quant: dict | None = None  # the quantize pass's summary (scheme, observer, float weight bytes, SQNR)
    plan: object = None  # the MemoryPlan, when the pipeline planned memory
    mcu: object = None  # backends.c.size.McuSize, when C was emitted: flash and RAM on the target's core
    latency: object = None  # backends.c.bench.Latency, with compile(latency=True): per-layer estimates

    @classmethod
    def build(cls, graph: Graph, passes=(), missed=(), stats=None, quant=None, plan=None) -> "Report":
        layers = []
        for n in graph.nodes:
            consts = [v for v in n.inputs if v.is_const]
            layers.append(Layer(n.name, n.op, n.outputs[0].shape, macs(n),
                                sum(v.type.numel for v in consts), sum(stored_bytes(n, v) for v in consts),
                                sum(v.type.nbytes for v in n.outputs), n.meta.get("source")))
            if quant is not None and n.op not in ("quantize", "dequantize", "requantize"):
                layers[-1].scheme, layers[-1].scales = _quant_cells(n)
                layers[-1].sqnr, layers[-1].sensitivity = n.meta.get("sqnr"), n.meta.get("sensitivity")
        return cls(graph.name, layers, list(passes), list(missed), dict(stats or {}), quant, plan)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def flash_bytes(self) -> int:
        return sum(layer.param_bytes for layer in self.layers)

    def rows(self) -> list[list[str]]:
        counts = {c.name: c.instructions for c in self.latency.profile.layers} if self.latency else {}
        return [[layer.name, layer.op, "x".join(map(str, layer.shape)) or "scalar", f"{layer.macs:,}",
                 f"{layer.params:,}", f"{layer.param_bytes:,}", f"{layer.act_bytes:,}",
                 *self._latency_cells(counts.get(layer.name))] for layer in self.layers]

    HEADER = ["layer", "op", "output", "MACs", "params", "flash bytes", "act bytes"]

    def columns(self) -> list[str]:
        """HEADER, and the latency estimate's columns when there is one."""
        if self.latency is None:
            return self.HEADER
        return [*self.HEADER, "est. cycles", *(["est. ms"] if self.latency.clock_mhz else [])]

    def _latency_cells(self, instructions) -> list[str]:
        if self.latency is None:
            return []
        cycles, ms = self.latency.cycles(instructions), self.latency.ms(instructions)
        return [f"{cycles:,.0f}" if cycles is not None else "-", *([f"{ms:.3f}" if ms is not None else "-"]
                                                                   if self.latency.clock_mhz else [])]

    def totals(self) -> list[str]:
        return ["total", f"{len(self.layers)} layers", "", f"{self.total_macs:,}", f"{self.total_params:,}",
                f"{self.flash_bytes:,}", f"{max((layer.act_bytes for layer in self.layers), default=0):,} max",
                *self._latency_cells(self.latency.profile.whole if self.latency else None)]

    QUANT_HEADER = ["layer", "scheme", "scales in -> out, weights", "SQNR dB", "sensitivity dB"]

    def quant_rows(self) -> list[list[str]]:
        def db(x):
            return "" if x is None else f"{x:.1f}"
        return [[layer.name, layer.scheme, layer.scales, db(layer.sqnr), db(layer.sensitivity)]
                for layer in self.layers if layer.scheme]

    def quant_summary(self) -> str:
        q, before = self.quant, self.quant["float_weight_bytes"]
        return (f"{q['scheme']} ({q['observer']} observer, {q['samples']} calibration samples): weights "
                f"{before:,} B float -> {self.flash_bytes:,} B ({before / max(self.flash_bytes, 1):.2f}x smaller), "
                f"output SQNR {q['output_sqnr']:.1f} dB against float"
                + (f"; then weights compressed to {q['weights']}, " + (
                    f"output SQNR {q['compressed_sqnr']:.1f} dB" if "compressed_sqnr" in q else
                    "SQNR not remeasured (the compressed layers have no counterpart in the QDQ graph)")
                   if q.get("weights") else "")
                + (f"\nWARNING: {q['warning']}" if q.get("warning") else ""))

    def plan_summary(self) -> str:
        p = self.plan
        return (f"arena {p.arena_bytes:,} B (lower bound {p.lower_bound_bytes:,} B, "
                f"{p.arena_bytes / max(p.lower_bound_bytes, 1):.2f}x), algorithm {p.algorithm}, "
                f"{len(p.aliases)} buffers shared in place"
                + (f"; {p.below_bound()}" if p.below_bound() else "")
                + (f"; state {p.state_bytes:,} B outside the arena, kept between calls" if p.state_bytes else ""))

    def to_rich(self):
        from rich.console import Group
        from rich.table import Table
        captions = [self.plan_summary()] if self.plan is not None else []
        captions += [f"latency, an estimate: {self.latency.caption}"] if self.latency is not None else []
        t = Table(title=f"{self.model}: per-layer report", show_footer=True, caption="\n".join(captions) or None)
        for h, f in zip(self.columns(), self.totals()):
            t.add_column(h, footer=f, justify="right" if h in ("MACs", "params", "act bytes", "est. cycles", "est. ms")
                         else "left")
        for r in self.rows():
            t.add_row(*r)
        if not self.quant:
            return t
        qt = Table(title="quantization", caption=self.quant_summary())
        for h in self.QUANT_HEADER:
            qt.add_column(h, justify="right" if h.endswith("dB") else "left")
        for r in self.quant_rows():
            qt.add_row(*r)
        return Group(t, qt)

    def to_markdown(self) -> str:
        lines = [f"# {self.model}", "", "| " + " | ".join(self.columns()) + " |",
                 "|" + "---|" * len(self.columns())]
        lines += ["| " + " | ".join(r) + " |" for r in [*self.rows(), self.totals()]]
        if self.plan is not None:
            lines += ["", "## Memory plan", "", self.plan_summary()]
        if self.mcu is not None:
            lines += ["", "## On the microcontroller", "", str(self.mcu)]
        if self.latency is not None:
            lines += ["", "## Latency (estimate)", "", self.latency.caption]
        if self.quant:
            lines += ["", "## Quantization", "", self.quant_summary(), "", "| " + " | ".join(self.QUANT_HEADER) + " |",
                      "|" + "---|" * len(self.QUANT_HEADER)]
            lines += ["| " + " | ".join(r) + " |" for r in self.quant_rows()]
        if self.passes:
            lines += ["", "## Passes", "", "| pass | changed | ms | nodes before -> after |", "|---|---|---|---|"]
            lines += [f"| {p.name} | {'yes' if p.changed else 'no'} | {p.seconds * 1e3:.1f} | "
                      f"{p.nodes_before} -> {p.nodes_after} |" for p in self.passes]
        if self.stats:  # e.g. low-rank.macs_saved, low-rank.output_sqnr_db, exit-order.macs_to_exit0
            lines += ["", "## Pass statistics", "", "| statistic | value |", "|---|---|"]
            lines += [f"| {k} | {v:,} |" for k, v in sorted(self.stats.items())]
        if self.missed:
            lines += ["", "## Not done, and why", "", "| pass | node | op | reason |", "|---|---|---|---|"]
            lines += [f"| {m.pass_name} | {m.node} | {m.op} | {m.reason} |" for m in self.missed]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in [*self.rows(), self.totals()])) for i, h in enumerate(self.columns())]
        fmt = lambda r: "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        text = "\n".join([fmt(self.columns()), rule, *map(fmt, self.rows()), rule, fmt(self.totals())])
        if self.plan is not None:
            text += "\n" + self.plan_summary()
        if self.latency is not None:
            text += "\nlatency, an estimate: " + self.latency.caption
        if self.quant:
            text += "\n\n" + self.quant_summary() + "".join(f"\n  {'  '.join(r)}" for r in self.quant_rows())
        return text
